"""CIFAR-100: ResNet-50 from scratch vs fine-tuned from ImageNet weights (SEEDS.md 2).

Two complete recipes, compared as one factor (`pretrained`) whose levels carry every setting
that differs between them:

- from scratch: CIFAR stem (3x3 conv, no max-pool) at 32 px, SGD lr 0.1, StepLR(50), 200 epochs,
  crop+flip+RandomErasing, MixUp 0.2, CutMix 0.2, label smoothing 0.1, early stopping 20;
- pretrained: ImageNet weights at 224 px, SGD lr 0.01, ReduceLROnPlateau, 100 epochs,
  ColorJitter+RandomErasing, three parameter groups (last block + classifier at the base LR, the
  block before at 1/2, stem and first two blocks at 1/4).

Pretrained weights are read offline: put timm's resnet50 weights in the local Hugging Face cache,
or set weights_path to a .pth/.safetensors file.
"""

from ablate import Study

scratch = dict(
    pretrained=False,
    image_size=32,
    cifar_stem=True,
    lr=0.1,
    scheduler="step",
    step_size=50,
    epochs=200,
    augment="heavy",
    rotation=0.0,
    color_jitter=0.0,
    grayscale_p=0.0,
    erasing_p=0.25,
    mixup_alpha=0.2,
    cutmix_alpha=0.2,
    label_smoothing=0.1,
    early_stopping=20,
)
pretrained = dict(
    pretrained=True,
    image_size=224,  # resize 256, crop 224, as for ImageNet
    lr=0.01,
    scheduler="plateau",
    epochs=100,
    augment="heavy",
    rotation=0.0,
    color_jitter=0.2,
    grayscale_p=0.0,
    erasing_p=0.25,
    normalize="imagenet",
    lr_groups=[1.0, 0.5, 0.25],
    early_stopping=20,
)

study = Study(
    name="cifar100_pretrain",
    description="ResNet-50 on CIFAR-100: from scratch (32 px) vs ImageNet-pretrained (224 px).",
    base=dict(
        dataset="cifar100",
        model="resnet50",
        optimizer="sgd",
        momentum=0.9,
        weight_decay=5e-4,
        batch_size=64,
        amp="auto",
        pin_memory=True,
        num_workers=2,
    ),
    factors=dict(pretrained=[scratch, pretrained]),
    seeds=[0, 1],
    design="grid",
    metric="val_acc",
)
