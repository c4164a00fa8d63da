"""CIFAR-100: ResNet-50 from scratch vs fine-tuned from ImageNet weights (SEEDS.md 2).

Two complete recipes, compared as one factor (`pretrained`) whose levels carry every setting
that differs between them, as the write-up states them:

- from scratch: first convolution and max-pool changed for 32x32 inputs (the CIFAR stem), SGD
  lr 0.1, StepLR(step_size=50), 200 epochs, weight decay 5e-4, RandomCrop + flip + RandomErasing
  ("heavy"), MixUp alpha 0.2, CutMix alpha 0.2, label smoothing 0.1, early-stopping patience 20;
- pretrained: ImageNet weights, images resized to 256 and cropped to 224, SGD lr 0.01,
  ReduceLROnPlateau, 100 epochs, weight decay 5e-4, ColorJitter + RandomErasing, three parameter
  groups: last block + classifier at the base LR, the block before at 1/2, stem and first two
  blocks at 1/4.

Not stated in the write-up, chosen here:
- a validation split: 20 % of train held out (stratified, split_seed 0), because early stopping
  and ReduceLROnPlateau need one that is not the test set; the test set is evaluated once;
- RandomErasing with torchvision's defaults (p 0.5, scale 0.02-0.33, ratio 0.3-3.3); ColorJitter
  0.2 brightness/contrast/saturation; RandomCrop(32, padding=4) from scratch; the pretrained
  recipe's random crop is the 224 crop of the 256-px image, plus a horizontal flip;
- ImageNet's mean/std for the pretrained model (to match its weights), CIFAR-100's from scratch;
- evaluation of the pretrained model: resize to 256, centre crop 224;
- batch 64 for both (their ResNet-50 batch in the sweep); SGD momentum 0.9; plateau factor 0.1,
  patience 10; 2 seeds.

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
    crop_padding=4,
    rotation=0.0,
    color_jitter=0.0,
    grayscale_p=0.0,
    erasing_p=0.5,
    normalize="dataset",
    mixup_alpha=0.2,
    cutmix_alpha=0.2,
    label_smoothing=0.1,
)
pretrained = dict(
    pretrained=True,
    image_size=224,
    train_resize="crop",  # 32 -> 256, random 224 crop
    eval_resize="crop",  # 32 -> 256, centre 224 crop
    crop_ratio=0.875,  # 224 / 256
    lr=0.01,
    scheduler="plateau",
    plateau_patience=10,
    plateau_factor=0.1,
    epochs=100,
    augment="heavy",
    crop_padding=0,
    rotation=0.0,
    color_jitter=0.2,
    grayscale_p=0.0,
    erasing_p=0.5,
    normalize="imagenet",
    lr_groups=[1.0, 0.5, 0.25],
)

study = Study(
    name="cifar100_pretrain",
    description="ResNet-50 on CIFAR-100: from scratch (32 px) vs ImageNet-pretrained (224 px).",
    base=dict(
        dataset="cifar100",
        val_split=0.2,
        test_split="test",
        model="resnet50",
        optimizer="sgd",
        momentum=0.9,
        weight_decay=5e-4,
        batch_size=64,
        early_stopping=20,
        amp="auto",
        pin_memory=True,
        num_workers=2,
    ),
    factors=dict(pretrained=[scratch, pretrained]),
    seeds=[0, 1],
    design="grid",
    metric="val_acc",
)
