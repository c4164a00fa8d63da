"""CIFAR-100 from scratch: ResNet-18 vs ResNet-50 x LR x scheduler (SEEDS.md 2).

Their single-run results (test accuracy %, minutes on one GPU):

    r18 0.1 Step 74.53 (15.1)   r18 0.1 Plateau 74.68 (13.8)
    r18 0.05 Step 74.71 (15.3)  r18 0.05 Plateau 73.56 (13.1)
    r50 0.1 Step 71.98 (50.6)   r50 0.1 Plateau 75.96 (50.6)
    r50 0.05 Step 76.06 (48.4)  r50 0.05 Plateau 77.05 (49.6)

Differences of one or two points between single runs are within seed noise, so this study runs
three seeds per configuration and the report tests each difference.

Data: torchvision's CIFAR-100 under data/ (data/cifar-100-python), or set ABLATE_DATA; add
download=True to base on a machine with internet.
"""

from ablate import Study

study = Study(
    name="cifar100_sweep",
    description="ResNet-18/50 x LR {0.1, 0.05} x StepLR/ReduceLROnPlateau on CIFAR-100, 200 epochs.",
    base=dict(
        dataset="cifar100",
        image_size=32,
        cifar_stem=True,  # 3x3 first conv, no max-pool: the usual CIFAR ResNet
        pretrained=False,
        epochs=200,
        optimizer="sgd",
        momentum=0.9,
        weight_decay=5e-4,
        augment="basic",  # RandomCrop(32, padding=4) + RandomHorizontalFlip
        crop_padding=4,
        normalize="dataset",  # CIFAR-100 mean/std
        amp="auto",
        pin_memory=True,
        num_workers=2,
        step_size=50,
        gamma=0.1,
        plateau_patience=10,
        plateau_factor=0.1,
    ),
    factors=dict(
        # ResNet-50 trained with batch 64 to fit their GPU: the batch size travels with the model.
        model=[dict(model="resnet18", batch_size=128), dict(model="resnet50", batch_size=64)],
        lr=[0.1, 0.05],
        scheduler=["step", "plateau"],
    ),
    seeds=[0, 1, 2],
    design="grid",
    metric="val_acc",
)
