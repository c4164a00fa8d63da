# expect: factors 'model' and 'optimizer' both set field 'batch_size' (a level of 'model' sets it, a level of 'optimizer' sets it)
from ablate import Study
study = Study(name="s", factors=dict(model=[dict(model="cnn", batch_size=32), "resnet18"], optimizer=[dict(optimizer="sgd", batch_size=64), "adamw"]))
