"""Face verification: the scores against scikit-learn, embeddings, pairs files, and a real run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve

from ablate.errors import DataNotFoundError, StudyError
from ablate.metrics import Evaluation
from ablate.train import (
    embeddings,
    read_pairs,
    smoke_faces,
    train_trial,
    verification,
    verification_scores,
)

from .helpers import tiny


def _similarities(seed: int, n: int = 400, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = rng.normal(labels * 0.8, 1.0)
    if ties:  # rounded: many tied similarities across both classes
        scores = np.round(scores, 1)
    return np.tanh(scores), labels


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_equals_scikit_learn(seed: int, ties: bool) -> None:
    sims, labels = _similarities(seed, ties=ties)
    assert verification_scores(sims, labels)["auc"] == pytest.approx(roc_auc_score(labels, sims), abs=1e-12)


def test_eer_and_best_accuracy_against_a_brute_force() -> None:
    sims, labels = _similarities(3)
    scores = verification_scores(sims, labels)
    fpr, tpr, _ = roc_curve(labels, sims)
    fnr = 1 - tpr
    i = int(np.argmin(np.abs(fnr - fpr)))
    # The interpolated crossing lies between the nearest ROC points' two rates.
    assert min(fpr[i], fnr[i]) - 0.01 <= scores["eer"] <= max(fpr[i], fnr[i]) + 0.01
    thresholds = np.r_[np.inf, np.unique(sims)]
    best = max(((sims >= t) == labels.astype(bool)).mean() for t in thresholds)
    assert scores["acc"] == pytest.approx(best, abs=1e-12)


def test_perfect_and_reversed_separation() -> None:
    labels = np.array([1, 1, 0, 0])
    assert verification_scores([0.9, 0.8, 0.1, 0.2], labels) == {"auc": 1.0, "eer": 0.0, "acc": 1.0}
    assert verification_scores([0.1, 0.2, 0.9, 0.8], labels)["auc"] == 0.0
    with pytest.raises(ValueError, match="same and different pairs"):
        verification_scores([0.1, 0.2], [1, 1])


def test_embeddings_are_the_input_of_the_last_linear_layer() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    x = torch.randn(5, 3, 2, 2)
    expected = torch.relu(model[1](x.flatten(1)))
    assert torch.equal(embeddings(model, x), expected)
    with pytest.raises(StudyError, match="has none"):
        embeddings(torch.nn.Conv2d(3, 4, 1), x)


def test_timm_embeddings_are_its_pre_logits() -> None:
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet18", pretrained=False, num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        emb = embeddings(model, x)
        assert emb.shape == (2, 512)
        assert torch.allclose(model.get_classifier()(emb), model(x), atol=1e-5)


def test_pairs_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"pairs file .*nope\.txt not found"):
        read_pairs(tmp_path / "nope.txt", tmp_path)
    bad = tmp_path / "pairs.txt"
    bad.write_text("a.png b.png 1\na.png b.png same\n")
    with pytest.raises(StudyError, match=r"pairs.txt:2: expected 'path1 path2 label'"):
        read_pairs(bad, tmp_path)


def test_verification_declares_its_metrics_without_torch_code_running() -> None:
    e = verification(pairs="v.txt", test_pairs="t.txt")
    assert isinstance(e, Evaluation)
    assert [m.name for m in e.declared()] == [
        "val_auc", "val_eer", "val_verify_acc", "test_auc", "test_eer", "test_verify_acc",
    ]
    assert {m.name: m.direction for m in e.declared()}["val_eer"] == "minimize"
    assert not verification().on_test


def test_smoke_faces_have_same_and_different_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path))
    root = smoke_faces(16)
    left, right, labels = read_pairs(root / "verification" / "pairs_val.txt", root)
    assert set(labels) == {0, 1} and all(p.is_file() for p in left + right)
    assert smoke_faces(16) == root  # made once


def _face_folder(root: Path, identities: int = 4, pictures: int = 4, side: int = 16) -> None:
    """An image folder whose classes are identities (base image plus noise), with a pairs file."""
    rng = np.random.default_rng(0)
    lines = []
    for k in range(identities):
        base = rng.uniform(0, 255, (side, side, 3))
        for split in ("train", "val"):
            d = root / split / f"id{k}"
            d.mkdir(parents=True)
            for i in range(pictures):
                pixels = np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(d / f"{i}.png")
        lines.append(f"val/id{k}/0.png val/id{k}/1.png 1")
        lines.append(f"val/id{k}/2.png val/id{(k + 1) % identities}/3.png 0")
    (root / "verification").mkdir()
    (root / "verification" / "pairs_val.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_verification_trains_on_an_image_folder_with_its_pairs_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    _face_folder(tmp_path / "faces")
    config = tiny(dataset=f"imagefolder:{tmp_path / 'faces'}", num_classes=None, image_size=16,
                  val_split="val", test_split=None, eval_resize="none", train_resize="none")
    seen: list[dict[str, float]] = []

    class Reporter:
        def report_epoch(self, m: object) -> None:
            seen.append(m.as_dict())  # type: ignore[attr-defined]

    result = train_trial(config, reporter=Reporter(), metric="val_auc", direction="maximize",
                         evaluations=[verification(pairs="verification/pairs_val.txt")])
    assert result.status == "completed", result.error
    assert len(seen) == 2 and all(0.0 <= e["val_auc"] <= 1.0 and 0.0 <= e["val_eer"] <= 1.0 for e in seen)
    assert result.metrics_dict()["val_auc"] == seen[-1]["val_auc"]
    assert result.best_metric == max(e["val_auc"] for e in seen)
