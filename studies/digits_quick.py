"""The embedded demo: how much does input resolution matter on scikit-learn's digits, and does
augmentation help?

Digits are 8x8 grey images of handwritten numbers (1,797 of them, shipped with ablate). The grid
shows them at 4 px (downsampled: detail is lost), 8 px (native) and 16 px (upsampled), with and
without random-crop augmentation, three seeds each: 18 trials of a small CNN, one to two minutes on
two CPU cores.

    ablate run studies/digits_quick.py && ablate report --study digits_quick
"""

from ablate import Study

study = Study(
    name="digits_quick",
    description="Image size x augmentation on scikit-learn digits (small CNN, CPU).",
    base=dict(
        dataset="digits",
        model="cnn",
        cnn_blocks=2,
        cnn_filters=16,
        cnn_dense=64,
        epochs=6,
        batch_size=64,
        optimizer="sgd",
        lr=0.05,
        momentum=0.9,
        weight_decay=5e-4,
        scheduler="cosine",
        val_split=0.2,
        crop_padding=1,
        hflip=False,  # a flipped 2 is not a 2
    ),
    factors=dict(
        image_size=[4, 8, 16],
        augment=["none", "basic"],
    ),
    seeds=[0, 1, 2],
    design="grid",
    metric="val_acc",
)
