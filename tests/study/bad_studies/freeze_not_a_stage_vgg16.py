# expect: field 'freeze' is 'layer3', not a stage of model 'tv:vgg16'
from ablate import Study
study = Study(name="s", base=dict(model="tv:vgg16", pretrained=True, dataset="synthetic", num_classes=3), factors=dict(freeze=["none", "layer3"]))
