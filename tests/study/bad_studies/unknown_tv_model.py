# expect: 'model'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(model=["tv:resnet500"]))
