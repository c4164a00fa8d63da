# expect: field 'model' is 'tv:fasterrcnn_resnet50_fpn', a torchvision detection model; the trainer trains image classifiers only
from ablate import Study
study = Study(name="s", base=dict(dataset="synthetic", num_classes=3), factors=dict(model=["tv:resnet18", "tv:fasterrcnn_resnet50_fpn"]))
