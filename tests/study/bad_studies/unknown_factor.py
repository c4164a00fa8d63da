# expect: 'imgsize'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(imgsize=[8, 16]))
