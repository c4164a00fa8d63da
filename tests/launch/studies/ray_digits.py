"""Digits, as small as a real run gets: three trials of a tiny CNN for six epochs on the CPU,
each epoch checkpointed, so that a worker can be killed between two of them."""

from ablate import Study

study = Study(
    name="ray_digits",
    base=dict(dataset="digits", image_size=8, model="cnn", cnn_blocks=1, cnn_filters=4,
              cnn_dense=16, epochs=6, batch_size=64, lr=0.05, augment="none", val_split=0.2,
              device="cpu"),
    factors=dict(lr=[0.05, 0.1, 0.2]),
    seeds=[0],
)
