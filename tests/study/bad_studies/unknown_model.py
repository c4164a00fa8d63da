# expect: 'model'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(model=["cnn", "resnet_18"]))
