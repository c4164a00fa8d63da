"""Digits, as small as a real run gets: three trials of a tiny CNN on the CPU, a tenth of a second
per epoch, each epoch checkpointed. The tests register it with more epochs (30, 300) so that a
worker can be killed or cancelled in the middle of a trial."""

from ablate import Study

study = Study(
    name="ray_digits",
    base=dict(dataset="digits", image_size=8, model="cnn", cnn_blocks=1, cnn_filters=4,
              cnn_dense=16, epochs=6, batch_size=64, lr=0.05, augment="none", val_split=0.2,
              device="cpu"),
    factors=dict(lr=[0.05, 0.1, 0.2]),
    seeds=[0],
)
