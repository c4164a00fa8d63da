# expect: field 'cifar_stem' is true but model 'efficientnet_b0' has no conv1/maxpool stem
from ablate import Study
study = Study(name="s", base=dict(model="efficientnet_b0", dataset="synthetic", num_classes=3), factors=dict(cifar_stem=[False, True]))
