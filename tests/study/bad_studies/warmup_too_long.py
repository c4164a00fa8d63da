# expect: 'warmup_epochs'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", base=dict(epochs=3, warmup_epochs=3), factors=dict(image_size=[8]))
