# expect: metric 'val_top5' needs more than 5 classes
from ablate import Study
study = Study(name="s", base=dict(dataset="synthetic", num_classes=5), factors=dict(lr=[0.1, 0.01]), metric="val_top5")
