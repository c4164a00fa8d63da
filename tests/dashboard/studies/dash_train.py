"""Real training, as short as it gets: a tiny CNN on synthetic data, 2 x 2 levels x 2 seeds, 3 epochs."""

from ablate import Study

study = Study(
    name="dash_train",
    base=dict(dataset="synthetic", num_classes=4, synthetic_samples=256, image_size=8,
              model="cnn", cnn_blocks=1, cnn_dense=8, epochs=3, batch_size=64,
              augment="none", device="cpu"),
    factors=dict(lr=[0.05, 0.1], cnn_filters=[4, 8]),
    seeds=[0, 1],
)
