"""iNaturalist 10-class, Part A: a 5-block CNN from scratch, Bayesian sweep (SEEDS.md 4).

Their W&B Bayesian sweep, here as Optuna's TPE sampler over the same space: filters 32/64,
activation ReLU/GELU/SiLU/Mish, filter organisation same/doubling/halving, augmentation yes/no,
batch norm yes/no, dropout 0.2/0.3; early stopping. 20 % of train is held out for validation
with equal class representation; the test set is only used for the final evaluation, and the
report shows a 10 x 3 grid of test predictions for the best trial.

Data: the iNaturalist 12K subset in ImageFolder layout under data/inaturalist_12K (train/ and
val/, the latter used as the test split).
"""

from ablate import Study, choice

study = Study(
    name="inat_scratch",
    description="5-block CNN on iNaturalist-10: TPE over filters, activation, organisation, aug, BN, dropout.",
    base=dict(
        dataset="imagefolder:data/inaturalist_12K",
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
        val_split=0.2,
        normalize="dataset",
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
