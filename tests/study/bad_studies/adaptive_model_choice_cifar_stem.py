# expect: field 'cifar_stem' is true but model 'efficientnet_b0'
from ablate import Study, choice, loguniform
study = Study(name="s", base=dict(cifar_stem=True, dataset="synthetic", num_classes=3), factors=dict(model=choice("resnet18", "efficientnet_b0"), lr=loguniform(1e-3, 1e-1)), design="tpe", n_trials=4)
