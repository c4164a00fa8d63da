"""Face classification, HW2P2-style (SEEDS.md 3): ablations around the best configuration.

As in the write-up: a ResNet-50 (37.9 M parameters with its 7000-way classifier; timm's resnet50
has the same layout), SGD, cross-entropy with label smoothing, CosineAnnealingWarmRestarts
(T_0=10, T_mult=2), mixed precision; best configuration batch 128, lr 0.1, 80 epochs, weight
decay 1e-4, label smoothing 0.2. Faces are fed at their native 224 px: no resize and no crop, in
training or evaluation. Training transforms in their order: horizontal flip 0.5, rotation 12 deg,
random grayscale p=0.1, ColorJitter 0.2/0.2/0.2, RandomErasing(scale=(0.1, 0.1)), normalised
with the dataset's own mean/std (0.5116, 0.4026, 0.3519) / (0.3073, 0.2697, 0.2587). Loaders:
4 workers for train with pinned memory, 2 for validation.

Not stated in the write-up, chosen here:
- the folders: train/ for training and dev/ as the validation split (the course's layout; the
  Kaggle test/ folder has no labels, so there is no test split: set test_split="test" if yours
  has class folders, val_split="val" if yours is called val/);
- RandomErasing's probability and aspect ratio: torchvision's defaults (p 0.5, ratio 0.3-3.3);
- SGD momentum 0.9; one seed (they ran one);
- the ablations themselves (their W&B CSV is not part of the write-up): label smoothing, LR,
  restarts vs plain cosine and weight decay, one at a time from the best run.

Data: an ImageFolder tree under data/hw2p2 (train/<identity>/*.jpg, dev/<identity>/*.jpg, 224 px
face crops); set num_classes to your split's identity count.

Verification, the task's other half (are two faces the same person?), is scored after every
epoch from the classifier's embeddings (its penultimate layer): cosine similarity of the pairs
in data/hw2p2/verification/pairs_val.txt (lines `path1 path2 label`, paths relative to
data/hw2p2, label 1 for the same person), as val_auc, val_eer and val_verify_acc (accuracy at
the best threshold): columns of the study's SQL view, and `ablate report hw2p2 --metric val_auc`.
Configurations are still chosen on classification accuracy, as in the write-up. `--smoke`
verifies generated faces-like identities instead; without the pairs file, plan and run say so.
"""

from ablate import Study, verification

study = Study(
    name="hw2p2",
    description="Face classification: label smoothing, LR and schedule, one at a time from the best run.",
    base=dict(
        dataset="imagefolder:data/hw2p2",
        train_split="train",
        val_split="dev",
        test_split=None,
        num_classes=7000,
        image_size=224,
        train_resize="none",  # native 224 px faces
        eval_resize="none",
        model="resnet50",
        pretrained=False,
        epochs=80,
        batch_size=128,
        optimizer="sgd",
        momentum=0.9,
        t_0=10,
        t_mult=2,
        augment="heavy",
        crop_padding=0,  # no RandomCrop in their transforms
        hflip=True,
        rotation=12.0,
        grayscale_p=0.1,
        color_jitter=0.2,
        erasing_p=0.5,
        erasing_scale=[0.1, 0.1],
        normalize="custom",
        mean=[0.5116, 0.4026, 0.3519],
        std=[0.3073, 0.2697, 0.2587],
        amp="auto",
        num_workers=4,
        eval_workers=2,
        pin_memory=True,
    ),
    factors=dict(
        label_smoothing=[0.2, 0.0, 0.1],
        lr=[0.1, 0.05],
        scheduler=["cosine_restarts", "cosine"],
        weight_decay=[1e-4, 5e-4],
    ),
    baseline=dict(label_smoothing=0.2, lr=0.1, scheduler="cosine_restarts", weight_decay=1e-4),
    seeds=[0],
    design="ofat",
    metric="val_acc",
    evaluations=[verification(pairs="verification/pairs_val.txt")],
)
