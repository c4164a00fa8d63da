"""Face classification, HW2P2-style (SEEDS.md 3): ablations around the best configuration.

As in the write-up: a ResNet-50 whose bottleneck convolutions carry biases (its layer summary:
37,877,528 parameters with the 7000-way classifier; conv 1x1 64->64 has 4,160 parameters, so a
bias, while the 7x7 stem has 9,408, so none; the stride sits in the 3x3 convolution). No library
builds that exact net (timm's and torchvision's resnet50 have no conv biases, 26,496 parameters
fewer), so it is defined below as `BiasedResNet50` and used as model "hw2p2_resnet50". SGD,
cross-entropy with label smoothing, CosineAnnealingWarmRestarts (T_0=10, T_mult=2), mixed
precision; best configuration batch 128, lr 0.1, 80 epochs, weight
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

import torch
from torch import nn

from ablate import Study, verification


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here) -> 1x1 x4, each convolution with a bias, then batch norm."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1, self.bn1 = nn.Conv2d(in_planes, planes, 1), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, stride, 1), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, out, 1), nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv2d(in_planes, out, 1, stride), nn.BatchNorm2d(out))
            if stride != 1 or in_planes != out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + self.downsample(x))


class BiasedResNet50(nn.Module):
    """The write-up's net: a ResNet-50 layout (3, 4, 6, 3 bottlenecks) with biased convolutions."""

    # freeze= and lr_groups= name these, input side first, the head last.
    stages = ("stem", "layer1", "layer2", "layer3", "layer4", "head")

    def __init__(self, num_classes: int, in_chans: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        planes, layers = 64, []
        for i, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
            stride = 1 if i == 0 else 2
            layer = [Bottleneck(planes, width, stride)]
            planes = width * Bottleneck.expansion
            layer += [Bottleneck(planes, width) for _ in range(blocks - 1)]
            layers.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(planes, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.head(x)


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
        model="hw2p2_resnet50",  # BiasedResNet50 above
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
    models={"hw2p2_resnet50": BiasedResNet50},
    evaluations=[verification(pairs="verification/pairs_val.txt")],
)
