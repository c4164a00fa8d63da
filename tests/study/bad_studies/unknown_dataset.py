# expect: 'dataset'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", base=dict(dataset="cifar1000"), factors=dict(image_size=[8]))
