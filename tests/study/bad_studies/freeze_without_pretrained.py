# expect: 'freeze'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", base=dict(model="resnet18"), factors=dict(freeze=["none", "layer3"]))
