# expect: 'epochs'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", base=dict(epochs=2.5), factors=dict(image_size=[8]))
