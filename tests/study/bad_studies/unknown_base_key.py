# expect: 'learning_rate'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", base=dict(learning_rate=0.1), factors=dict(image_size=[8]))
