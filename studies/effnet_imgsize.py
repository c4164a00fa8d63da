"""EfficientNet-B0 on ImageNet-100: does image size matter, and does augmentation help at 128 px?

From the ImageNet-100 write-up (SEEDS.md 1). Not a full grid: a baseline (128 px, no
augmentation) with one factor changed at a time, which is the table they reported:

    | EfficientNet B0                   | 64x64   | train 0.348 | val 0.316 |
    | EfficientNet B0                   | 128x128 | train 0.61  | val 0.58  |
    | EfficientNet B0 with augmentation | 128x128 | train 0.552 | val 0.557 |

As in the write-up: batch 128, mixed precision, early stopping with the best checkpoint kept,
10 epochs for CNNs (their Kaggle GPU budget); the validation folder measures "Final Val Acc".

Not stated in the write-up, chosen here:
- from scratch (no pretrained weights); AdamW lr 1e-3, weight decay 0.05, cosine schedule with
  one warm-up epoch; early-stopping patience 3 on val_acc;
- "augmentation" is the basic preset (random crop of the resized image, 4 px padding, flip);
  images resized to size / 0.875 on the short side and cropped (centre crop for validation);
  ImageNet's mean/std;
- one seed (they ran one).

Data: ImageNet-100 in ImageFolder layout (train/<class>/*.JPEG, val/<class>/*.JPEG) under
data/imagenet100 (Kaggle's copy splits train into train.X1-X4: merge them into train/, and
rename val.X to val/), or change `dataset`. Check the whole study on a CPU first with
`ablate run studies/effnet_imgsize.py --smoke`.
"""

from ablate import Study

study = Study(
    name="effnet_imgsize",
    description="EfficientNet-B0 on ImageNet-100: image size and augmentation, one at a time.",
    base=dict(
        dataset="imagefolder:data/imagenet100",
        train_split="train",
        val_split="val",  # ImageNet's validation images: what their "Final Val Acc" is measured on
        test_split=None,  # ImageNet-100 has no labelled test set
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
