# expect: 'batch_size'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(model=[dict(model="cnn", batch_size=-1)]))
