"""Three digits trials of a tiny CNN, two short epochs each: what a SLURM job array of 3 tasks runs."""

from ablate import Study

study = Study(
    name="digits_launch",
    base=dict(dataset="digits", model="cnn", cnn_blocks=1, cnn_filters=4, cnn_dense=16, epochs=2,
              batch_size=64, optimizer="sgd", lr=0.05, momentum=0.9, val_split=0.2, image_size=8,
              augment="none", device="cpu"),
    factors=dict(lr=[0.02, 0.05, 0.1]),
    seeds=[0],
)
