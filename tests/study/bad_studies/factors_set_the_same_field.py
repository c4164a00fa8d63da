# expect: factors 'lr' and 'optimizer' both set field 'lr' ('lr' is that field, a level of 'optimizer' sets it)
from ablate import Study
study = Study(name="s", factors=dict(lr=[1e-3, 2e-3], optimizer=[dict(optimizer="adamw"), dict(optimizer="sgd", lr=0.1)]), design="ofat")
