"""CIFAR-100 from scratch: ResNet-18 vs ResNet-50 x LR x scheduler (SEEDS.md 2).

Their single-run results (test accuracy %, minutes on one GPU):

    r18 0.1 Step 74.53 (15.1)   r18 0.1 Plateau 74.68 (13.8)
    r18 0.05 Step 74.71 (15.3)  r18 0.05 Plateau 73.56 (13.1)
    r50 0.1 Step 71.98 (50.6)   r50 0.1 Plateau 75.96 (50.6)
    r50 0.05 Step 76.06 (48.4)  r50 0.05 Plateau 77.05 (49.6)

As in the write-up: no pretraining, SGD, 200 epochs, weight decay 5e-4, AMP, pinned memory, 2
loader workers, batch 128 (ResNet-18) / 64 (ResNet-50); training on all 50,000 training images
(`val_split=0`) with RandomCrop + RandomHorizontalFlip and CIFAR-100's mean/std; evaluation
("TTA") by resize + centre crop; the test accuracy is the metric (reported, never selected on:
no early stopping, the last epoch's weights are tested).

Not stated in the write-up, chosen here:
- the CIFAR stem (3x3 stride-1 first conv, no max-pool): a 224-px ImageNet stem on 32-px images
  tops out far below their 74 %;
- RandomCrop(32, padding=4) (the usual CIFAR setting) and SGD momentum 0.9;
- the evaluation resize: short side 37 (32 / 0.875), centre crop 32;
- StepLR step 50, gamma 0.1; ReduceLROnPlateau factor 0.1, patience 10 (torch's defaults),
  watching the training loss: with all of train used for training there is no validation split,
  and watching test images would select on them;
- 3 seeds per configuration (they ran one): one or two points between single runs is seed noise.

Data: torchvision's CIFAR-100 under data/ (data/cifar-100-python), or set ABLATE_DATA; add
download=True to base on a machine with internet.
"""

from ablate import Study

study = Study(
    name="cifar100_sweep",
    description="ResNet-18/50 x LR {0.1, 0.05} x StepLR/ReduceLROnPlateau on CIFAR-100, 200 epochs.",
    base=dict(
        dataset="cifar100",
        val_split=0,  # train on all of train; report test, as their numbers are
        test_split="test",
        image_size=32,
        cifar_stem=True,
        pretrained=False,
        epochs=200,
        optimizer="sgd",
        momentum=0.9,
        weight_decay=5e-4,
        augment="basic",  # RandomCrop(32, padding=4) + RandomHorizontalFlip
        crop_padding=4,
        train_resize="squash",  # the 32-px images as they are
        eval_resize="crop",  # TTA: resize, centre crop
        crop_ratio=0.875,
        normalize="dataset",  # CIFAR-100's published mean/std
        amp="auto",
        pin_memory=True,
        num_workers=2,
        step_size=50,
        gamma=0.1,
        plateau_patience=10,
        plateau_factor=0.1,
        plateau_metric="train_loss",
    ),
    factors=dict(
        # ResNet-50 trained with batch 64 to fit their GPU: the batch size travels with the model.
        model=[dict(model="resnet18", batch_size=128), dict(model="resnet50", batch_size=64)],
        lr=[0.1, 0.05],
        scheduler=["step", "plateau"],
    ),
    seeds=[0, 1, 2],
    design="grid",
    metric="test_acc",
)
