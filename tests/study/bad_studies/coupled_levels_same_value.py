# expect: factor 'model' has two levels with the value 'resnet18'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(model=[dict(model="resnet18", batch_size=32), dict(model="resnet18", batch_size=64)]))
