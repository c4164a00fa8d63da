"""iNaturalist 10-class, Part A: a 5-block CNN from scratch, Bayesian sweep (SEEDS.md 4).

As in the write-up: 5 blocks of conv, activation, max-pool, one dense layer, 10 outputs; a sweep
(their W&B Bayesian sweep, here Optuna's TPE sampler) over filters 32/64, activation
ReLU/GELU/SiLU/Mish, filter organisation same/doubling/halving, augmentation yes/no, batch norm
yes/no, dropout 0.2/0.3, with early stopping. 20 % of train is held out for validation with equal
class representation (stratified, split_seed 0, the same images for every trial); the dataset's
val/ folder is the test set, used only for the final evaluation of each trial and the 10 x 3 grid
of test predictions, never to choose configurations, epochs or stopping points.

Not stated in the write-up, chosen here:
- input 224 px (images resized to 256 on the short side, centre/random 224 crop), the dataset's
  own mean/std computed from the training split;
- "augmentation yes" is the basic preset: random crop and horizontal flip;
- 3x3 convolutions, a dense layer of 256 units, AdamW lr 1e-3, weight decay 1e-4, cosine
  schedule, batch 64, 15 epochs, early-stopping patience 4;
- 30 sampled configurations and the median pruner (their "smart strategies ... early stopping").

Data: the iNaturalist 12K subset (nature_12K.zip) under data/inaturalist_12K: train/<class>/ and
val/<class>/.
"""

from ablate import Study, choice

study = Study(
    name="inat_scratch",
    description="5-block CNN on iNaturalist-10: TPE over filters, activation, organisation, aug, BN, dropout.",
    base=dict(
        dataset="imagefolder:data/inaturalist_12K",
        train_split="train",
        val_split=0.2,  # stratified hold-out of train
        test_split="val",  # the dataset's val/ folder is the assignment's test set
        num_classes=10,
        image_size=224,
        model="cnn",
        cnn_blocks=5,
        cnn_dense=256,
        epochs=15,
        batch_size=64,
        optimizer="adamw",
        lr=1e-3,
        weight_decay=1e-4,
        scheduler="cosine",
        early_stopping=4,
        normalize="computed",
        amp="auto",
        num_workers=4,
        prediction_samples=30,  # the 10 x 3 grid
    ),
    factors=dict(
        cnn_filters=choice(32, 64),
        cnn_activation=choice("relu", "gelu", "silu", "mish"),
        cnn_organisation=choice("same", "double", "half"),
        augment=choice("none", "basic"),
        cnn_batch_norm=choice(True, False),
        cnn_dropout=choice(0.2, 0.3),
    ),
    design="tpe",
    n_trials=30,
    seeds=[0],
    metric="val_acc",
    pruner="median",
)
