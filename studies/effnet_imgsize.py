"""EfficientNet-B0 on ImageNet-100: does image size matter, and does augmentation help at 128 px?

From the ImageNet-100 write-up (SEEDS.md 1). Not a full grid: a baseline (128 px, no
augmentation) with one factor changed at a time, which is the table they reported:

    | EfficientNet B0                   | 64x64   | train 0.348 | val 0.316 |
    | EfficientNet B0                   | 128x128 | train 0.61  | val 0.58  |
    | EfficientNet B0 with augmentation | 128x128 | train 0.552 | val 0.557 |

Data: ImageNet-100 in ImageFolder layout (train/<class>/*.JPEG, val/<class>/*.JPEG) under
data/imagenet100, or change `dataset`. Check the whole study on a CPU first with
`ablate run studies/effnet_imgsize.py --smoke`.
"""

from ablate import Study

study = Study(
    name="effnet_imgsize",
    description="EfficientNet-B0 on ImageNet-100: image size and augmentation, one at a time.",
    base=dict(
        dataset="imagefolder:data/imagenet100",
        num_classes=100,
        model="efficientnet_b0",
        pretrained=False,
        epochs=10,  # their Kaggle budget: 10 epochs for CNNs
        batch_size=128,
        optimizer="adamw",
        lr=1e-3,
        weight_decay=0.05,
        scheduler="cosine",
        warmup_epochs=1,
        amp="auto",  # bf16/fp16 on the GPU, as they trained
        early_stopping=3,
        num_workers=4,
        normalize="imagenet",
    ),
    factors=dict(
        image_size=[128, 64],
        augment=["none", "basic"],
    ),
    baseline=dict(image_size=128, augment="none"),
    seeds=[0],
    design="ofat",
    metric="val_acc",
)
