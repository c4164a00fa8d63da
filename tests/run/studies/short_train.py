"""Real training, as short as it gets: two trials of a tiny CNN for three epochs."""

from ablate import Study

study = Study(
    name="short_train",
    base=dict(dataset="synthetic", num_classes=4, synthetic_samples=256, image_size=8,
              model="cnn", cnn_blocks=1, cnn_filters=4, cnn_dense=8, epochs=3, batch_size=64,
              lr=0.05, augment="none", device="cpu"),
    factors=dict(lr=[0.05, 0.1]),
    seeds=[0],
)
