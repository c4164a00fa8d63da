"""Architecture comparison on ImageNet-100 at 224 px (SEEDS.md 1).

ResNet, Swin Transformer, EfficientNet, ViT and MobileNet under one recipe. GPU time was 10-12
hours a week on Kaggle, so CNNs train 10 epochs and transformers 6: each model level carries its
own epoch count (a coupled level), and the table shows the model as the factor. As in the
write-up: batch 128, 224 px, mixed precision, early stopping with the best checkpoint kept;
validation on ImageNet's val/ folder (there is no test split).

Not stated in the write-up, chosen here:
- the exact models: timm's resnet50, efficientnet_b0, mobilenetv3_large_100,
  swin_tiny_patch4_window7_224, vit_small_patch16_224, from scratch;
- AdamW lr 1e-3 (5e-4 for the transformers), weight decay 0.05, cosine schedule with one
  warm-up epoch, early-stopping patience 3;
- augmentation: resize to 256, random 224 crop with 16 px padding, flip; validation: resize 256,
  centre crop 224; ImageNet's mean/std; one seed.

Data: as studies/effnet_imgsize.py (data/imagenet100 with train/ and val/).
"""

from ablate import Study

study = Study(
    name="imagenet100_arch",
    description="Five architecture families on ImageNet-100, 224 px, mixed precision.",
    base=dict(
        dataset="imagefolder:data/imagenet100",
        train_split="train",
        val_split="val",  # ImageNet's validation images: what their "Final Val Acc" is measured on
        test_split=None,  # ImageNet-100 has no labelled test set
        num_classes=100,
        image_size=224,
        batch_size=128,
        optimizer="adamw",
        lr=1e-3,
        weight_decay=0.05,
        scheduler="cosine",
        warmup_epochs=1,
        augment="basic",
        crop_padding=16,
        amp="auto",
        early_stopping=3,
        num_workers=4,
        normalize="imagenet",
    ),
    factors=dict(
        model=[
            dict(model="resnet50", epochs=10),
            dict(model="efficientnet_b0", epochs=10),
            dict(model="mobilenetv3_large_100", epochs=10),
            dict(model="swin_tiny_patch4_window7_224", epochs=6, lr=5e-4),
            dict(model="vit_small_patch16_224", epochs=6, lr=5e-4),
        ],
    ),
    seeds=[0],
    design="grid",
    metric="val_acc",
)
