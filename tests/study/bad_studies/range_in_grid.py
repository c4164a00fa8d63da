# expect: factor 'lr'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(lr=loguniform(1e-4, 1e-1)), design="grid")
