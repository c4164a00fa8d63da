"""iNaturalist 10-class, Part B: fine-tuning an ImageNet-pretrained ResNet-50 (SEEDS.md 4).

As in the write-up: torchvision's ResNet50 with its ImageNet weights, input resized and
normalised for it, the classifier replaced for 10 classes; three strategies: freeze everything but
the classifier, freeze up to `layer3`, or fine-tune everything; compared with the CNN from scratch
(studies/inat_scratch.py) on accuracy, training time and generalisation:
`ablate report inat_scratch inat_finetune` (one table with the train/val gap, the cost plot, each
study's best-by-validation configuration tested on the test split). Same data declaration as
Part A, which that comparison checks: 20 % of train held out for validation (stratified,
split_seed 0), val/ as the test set.

Not stated in the write-up, chosen here:
- 224 px: short side resized to 256, random 224 crop + flip for training, centre crop for
  evaluation; ImageNet's mean/std;
- SGD lr 0.01, momentum 0.9, weight decay 1e-4, cosine schedule, batch 64, 10 epochs,
  early-stopping patience 3; 2 seeds.

Pretrained weights are read offline (torch hub's checkpoint folder, or weights_path).
"""

from ablate import Study

study = Study(
    name="inat_finetune",
    description="ResNet-50 from ImageNet on iNaturalist-10: freeze head_only / up to layer3 / none.",
    base=dict(
        dataset="imagefolder:data/inaturalist_12K",
        train_split="train",
        val_split=0.2,
        test_split="val",
        num_classes=10,
        image_size=224,
        train_resize="crop",
        eval_resize="crop",
        crop_ratio=0.875,  # 224 / 256
        model="tv:resnet50",
        pretrained=True,
        normalize="imagenet",
        epochs=10,
        batch_size=64,
        optimizer="sgd",
        lr=0.01,
        momentum=0.9,
        weight_decay=1e-4,
        scheduler="cosine",
        augment="basic",
        crop_padding=0,
        early_stopping=3,
        amp="auto",
        num_workers=4,
    ),
    factors=dict(freeze=["head_only", "layer3", "none"]),
    seeds=[0, 1],
    design="grid",
    metric="val_acc",
)
