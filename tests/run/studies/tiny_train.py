"""Real training of a tiny CNN on synthetic data: long enough to be killed in the middle."""

from ablate import Study

study = Study(
    name="tiny_train",
    base=dict(dataset="synthetic", num_classes=4, synthetic_samples=1024, image_size=16,
              model="cnn", cnn_blocks=1, cnn_filters=4, cnn_dense=16, epochs=6, batch_size=32,
              lr=0.05, augment="none", device="cpu"),
    factors=dict(lr=[0.05]),
    seeds=[0],
)
