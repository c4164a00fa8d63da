# expect: 'num_classes'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", base=dict(dataset="synthetic"), factors=dict(image_size=[8]))
