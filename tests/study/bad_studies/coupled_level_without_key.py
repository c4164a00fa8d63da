# expect: 'model'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(model=[dict(batch_size=64)]))
