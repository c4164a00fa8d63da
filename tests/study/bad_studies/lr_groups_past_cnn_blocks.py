# expect: field 'lr_groups' has 4 multipliers but model 'cnn' has 1 stages
from ablate import Study
# Only the second level of cnn_blocks is too shallow for the four multipliers.
study = Study(name="s", base=dict(model="cnn", dataset="synthetic", num_classes=3, image_size=16, lr_groups=[1.0, 1.0, 1.0, 1.0]), factors=dict(cnn_blocks=[4, 1]))
