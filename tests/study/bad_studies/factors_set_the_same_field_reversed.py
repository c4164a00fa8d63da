# expect: factors 'optimizer' and 'lr' both set field 'lr' (a level of 'optimizer' sets it, 'lr' is that field)
from ablate import Study
study = Study(name="s", factors=dict(optimizer=[dict(optimizer="adamw"), dict(optimizer="sgd", lr=0.1)], lr=[1e-3, 2e-3]), design="ofat")
