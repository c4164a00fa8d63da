"""Two digits trials long enough (20 short epochs) to cancel a SLURM task in the middle of one."""

from ablate import Study

study = Study(
    name="digits_resume",
    base=dict(dataset="digits", model="cnn", cnn_blocks=2, cnn_filters=16, cnn_dense=32, epochs=20,
              batch_size=32, optimizer="sgd", lr=0.05, momentum=0.9, val_split=0.2, image_size=32,
              augment="none", device="cpu"),
    factors=dict(lr=[0.02, 0.05]),
    seeds=[0],
)
