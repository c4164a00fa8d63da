# expect: 'milestones'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", base=dict(scheduler="multistep"), factors=dict(image_size=[8]))
