"""Architecture comparison on ImageNet-100 at 224 px (SEEDS.md 1).

ResNet, Swin Transformer, EfficientNet, ViT and MobileNet under one recipe. GPU time was 10-12
hours a week on Kaggle, so CNNs train 10 epochs and transformers 6: each model level carries its
own epoch count (a coupled level), and the table shows the model as the factor.
"""

from ablate import Study

study = Study(
    name="imagenet100_arch",
    description="Five architecture families on ImageNet-100, 224 px, mixed precision.",
    base=dict(
        dataset="imagefolder:data/imagenet100",
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
