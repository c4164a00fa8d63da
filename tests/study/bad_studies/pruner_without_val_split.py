# expect: pruner 'median' compares trials on a per-epoch validation metric
from ablate import Study, loguniform
study = Study(name="s", base=dict(val_split=0), factors=dict(lr=loguniform(1e-3, 1e-1)), metric="train_loss", design="random", n_trials=4, pruner="median")
