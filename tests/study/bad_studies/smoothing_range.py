# expect: 'label_smoothing'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(label_smoothing=[0.1, 1.5]))
