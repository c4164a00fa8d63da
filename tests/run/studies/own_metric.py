"""A study metric of the study's own: the mean probability of the true class, by TPE, pruned on."""

from ablate import Evaluation, Metric, Study, loguniform


def true_class_probability(model, split):
    total, n = 0.0, 0
    for inputs, labels in split.batches():
        probs = model(inputs).float().softmax(dim=1)
        total += float(probs.gather(1, labels[:, None]).sum())
        n += len(labels)
    return {"val_conf": total / n}


confidence = Evaluation(
    true_class_probability,
    metrics=[Metric("val_conf", direction="maximize", low=0.0, high=1.0, label="val true-class probability")],
)

study = Study(
    name="own_metric",
    base=dict(dataset="synthetic", num_classes=4, synthetic_samples=64, image_size=8, model="cnn",
              cnn_blocks=1, cnn_filters=4, cnn_dense=8, epochs=3, batch_size=32, augment="none",
              device="cpu", test_split="test"),
    factors=dict(lr=loguniform(1e-3, 0.3)),
    design="tpe",
    n_trials=5,
    pruner="median",
    metric="val_conf",
    evaluations=[confidence],
)
