"""Face classification, HW2P2-style (SEEDS.md 3): ablations around the best configuration.

Best configuration (train 99.92 %, validation 89.39 %): a ResNet-50-like network, SGD lr 0.1,
batch 128, 80 epochs, weight decay 1e-4, label smoothing 0.2, CosineAnnealingWarmRestarts
(T_0=10, T_mult=2), mixed precision; flip, rotation 12 deg, grayscale p=0.1, ColorJitter
0.2/0.2/0.2, RandomErasing, normalised with the dataset's own mean/std. The design changes one
thing at a time from it, so each row of the table answers "what did this choice buy?".

Data: an ImageFolder tree under data/hw2p2 (train/, val/, test/ of 112 px face crops); set
num_classes to your split's identity count. The verification half of the task (are two faces the
same person?) is scored from embeddings and is not part of this classification study.
"""

from ablate import Study

study = Study(
    name="hw2p2",
    description="Face classification: label smoothing, LR and schedule, one at a time from the best run.",
    base=dict(
        dataset="imagefolder:data/hw2p2",
        num_classes=7001,
        image_size=112,
        model="resnet50",
        pretrained=False,
        epochs=80,
        batch_size=128,
        optimizer="sgd",
        momentum=0.9,
        weight_decay=1e-4,
        t_0=10,
        t_mult=2,
        augment="heavy",
        hflip=True,
        rotation=12.0,
        grayscale_p=0.1,
        color_jitter=0.2,
        erasing_p=0.25,
        normalize="dataset",
        amp="auto",
        num_workers=4,
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
)
