"""Face verification as a ready evaluation: are two images the same identity?

The model's embedding of an image is the input of its classifier (timm's
``forward_head(pre_logits=True)``, else the input of its last ``nn.Linear``); two images are
compared by the cosine similarity of their embeddings; the pairs come from a pairs file, one
pair a line: ``path1 path2 label`` (paths relative to the dataset's folder, label 1 for the
same identity, 0 for different ones). Scored as ROC AUC, equal error rate and the accuracy at
the best threshold.

A ``--smoke`` run has no pairs file: it verifies generated faces-like images instead
(identities are a base image each, their pictures that image plus noise), written once to the
cache with a pairs file of the same form. torch is imported when an evaluation runs, not when a
study declares one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ablate.errors import DataNotFoundError, StudyError
from ablate.files import cache_dir
from ablate.metrics import Evaluation, Metric
from ablate.study import TrialConfig

#: The metrics of :func:`verification` (each also as test_... with ``test_pairs``).
VERIFICATION_METRICS = (
    Metric("val_auc", "verification AUC", unit="fraction", direction="maximize", low=0.0, high=1.0),
    Metric("val_eer", "equal error rate", unit="fraction", direction="minimize", low=0.0, high=1.0),
    Metric("val_verify_acc", "verification acc", unit="fraction", direction="maximize", low=0.0, high=1.0),
)
# Generated smoke faces: identities, pictures of each, and the noise on the base image (of 255).
SMOKE_IDENTITIES = 8
SMOKE_PICTURES = 4
SMOKE_NOISE = 40.0


# ---------------------------------------------------------------------------- the scores
def roc_points(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates, thresholds) of every distinct threshold,
    from (0, 0) (nothing accepted) up; tied scores make one point, as in scikit-learn."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        raise ValueError(f"verification needs same and different pairs; got {positives} same, {negatives} different")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    fpr = np.r_[0.0, fp / negatives]
    tpr = np.r_[0.0, tp / positives]
    return fpr, tpr, np.r_[np.inf, s[last_of_tie]]


def verification_scores(similarities: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> dict[str, float]:
    """``auc`` (ROC AUC, equal to scikit-learn's ``roc_auc_score``), ``eer`` (the rate where false
    accepts equal false rejects, interpolated between ROC points) and ``acc`` (accuracy at the
    best threshold) of pair similarities against same (1) / different (0) labels."""
    labels = np.asarray(labels).astype(bool)
    fpr, tpr, _ = roc_points(np.asarray(similarities), labels)
    auc = float(np.trapezoid(tpr, fpr))
    fnr = 1.0 - tpr
    i = int(np.argmax(fnr <= fpr))  # first point where false rejects drop to false accepts
    if i == 0:
        eer = 0.0
    else:
        # The crossing of the segments (fpr, fnr) from point i-1 to point i.
        d_prev, d_here = fnr[i - 1] - fpr[i - 1], fnr[i] - fpr[i]
        t = d_prev / (d_prev - d_here) if d_prev != d_here else 0.0
        eer = float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))
    positives, negatives = int(labels.sum()), int((~labels).sum())
    correct = tpr * positives + (1.0 - fpr) * negatives
    return {"auc": auc, "eer": eer, "acc": float(correct.max() / (positives + negatives))}


# ---------------------------------------------------------------------------- embeddings
def embeddings(model: Any, inputs: Any) -> Any:
    """The model's embedding of a batch: the input of its classifier.

    timm models: ``forward_head(forward_features(x), pre_logits=True)``; any other model (the
    small CNN, torchvision's, a study's own): the input of its last ``nn.Linear``, taken with a
    forward hook. A model without a Linear layer has no embedding to take: StudyError.
    """
    import torch

    if hasattr(model, "forward_features") and hasattr(model, "forward_head"):
        return model.forward_head(model.forward_features(inputs), pre_logits=True).flatten(1)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise StudyError(
            f"verification takes the input of the model's last nn.Linear as the embedding; "
            f"{type(model).__name__} has none"
        )
    taken: list[Any] = []
    handle = linears[-1].register_forward_hook(lambda _m, args, _out: taken.append(args[0]))
    try:
        model(inputs)
    finally:
        handle.remove()
    if not taken:
        raise StudyError(f"verification: the last nn.Linear of {type(model).__name__} is not called by its forward")
    return taken[-1].flatten(1)


# ---------------------------------------------------------------------------- pairs
def data_folder(config: TrialConfig) -> Path:
    """The folder a dataset's files are under: an image folder's root, else the data root."""
    from ablate.data import data_root, imagefolder_root

    if config.dataset.startswith("imagefolder:"):
        return imagefolder_root(config, config.dataset.split(":", 1)[1])
    return data_root(config)


def read_pairs(path: Path, root: Path) -> tuple[list[Path], list[Path], np.ndarray]:
    """A pairs file's two image paths (under ``root``) and labels; StudyError naming a bad line."""
    if not path.is_file():
        raise DataNotFoundError(
            f"verification pairs file {path} not found (lines 'path1 path2 label', paths relative to {root})"
        )
    left: list[Path] = []
    right: list[Path] = []
    labels: list[int] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or parts[2] not in ("0", "1"):
            raise StudyError(f"{path}:{number}: expected 'path1 path2 label' with label 0 or 1, got {line.strip()!r}")
        left.append(root / parts[0])
        right.append(root / parts[1])
        labels.append(int(parts[2]))
    if not labels:
        raise StudyError(f"{path}: no pairs")
    return left, right, np.array(labels)


def smoke_faces(side: int, channels: int = 3) -> Path:
    """A folder of generated faces-like identities with ``verification/pairs_{val,test}.txt``
    (made once per image side, in the cache; safe when workers race: built aside, renamed)."""
    from PIL import Image

    key = hashlib.sha256(f"v1-{side}-{channels}-{SMOKE_IDENTITIES}-{SMOKE_PICTURES}".encode()).hexdigest()[:12]
    root = cache_dir() / f"smoke-faces-{key}"
    if (root / "verification" / "pairs_test.txt").exists():
        return root
    rng = np.random.default_rng(0)
    building = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
    files: dict[int, list[str]] = {}
    for identity in range(SMOKE_IDENTITIES):
        # A smooth base image: 8x8 noise blown up, so that identities differ in coarse shape.
        coarse = rng.uniform(0, 255, (8, 8, channels))
        base = np.kron(coarse, np.ones((side // 8 + 1, side // 8 + 1, 1)))[:side, :side]
        folder = building / "faces" / f"id{identity:02d}"
        folder.mkdir(parents=True)
        for k in range(SMOKE_PICTURES):
            picture = np.clip(base + rng.normal(0, SMOKE_NOISE, base.shape), 0, 255).astype(np.uint8)
            image = Image.fromarray(picture[..., 0] if channels == 1 else picture)
            image.save(folder / f"{k}.png")
            files.setdefault(identity, []).append(f"faces/id{identity:02d}/{k}.png")
    (building / "verification").mkdir()
    for split, seed in (("val", 1), ("test", 2)):
        pick = np.random.default_rng(seed)
        lines = []
        for identity, pictures in files.items():
            other = (identity + 1 + int(pick.integers(SMOKE_IDENTITIES - 1))) % SMOKE_IDENTITIES
            lines.append(f"{pictures[0]} {pictures[1 + int(pick.integers(SMOKE_PICTURES - 1))]} 1")
            lines.append(f"{pictures[2]} {files[other][int(pick.integers(SMOKE_PICTURES))]} 0")
        (building / "verification" / f"pairs_{split}.txt").write_text("\n".join(lines) + "\n")
    try:
        os.replace(building, root)
    except OSError:  # another worker renamed its copy first: use that one
        import shutil

        shutil.rmtree(building, ignore_errors=True)
    return root


# ---------------------------------------------------------------------------- the evaluation
class _Verify:
    """The function of :func:`verification`: a picklable object, not a closure."""

    def __init__(self, pairs: str, test_pairs: str | None) -> None:
        self.pairs, self.test_pairs = pairs, test_pairs
        self.__name__ = "verification"
        self.__qualname__ = f"verification({pairs!r}, test_pairs={test_pairs!r})"

    def pairs_file(self, split: str, root: Path) -> Path:
        relative = self.test_pairs if split == "test" else self.pairs
        assert relative is not None
        return root / relative if not Path(relative).is_absolute() else Path(relative)

    def check(self, config: TrialConfig) -> None:
        """Plan time: the pairs files are there (DataNotFoundError naming the one missing)."""
        root = data_folder(config)
        for split in ("val", "test") if self.test_pairs else ("val",):
            path = self.pairs_file(split, root)
            if not path.is_file():
                raise DataNotFoundError(
                    f"verification pairs file {path} not found (lines 'path1 path2 label', paths relative to {root})"
                )

    def __call__(self, model: Any, split: Any) -> dict[str, float]:
        import torch

        if split.smoke:  # synthetic data: generated identities with pairs files of their own
            root = smoke_faces(split.config.image_size)
            path = root / "verification" / f"pairs_{split.name}.txt"
        else:
            root = split.data_folder
            path = self.pairs_file(split.name, root)
        left, right, labels = read_pairs(path, root)
        unique = list(dict.fromkeys([*left, *right]))
        where = {p: i for i, p in enumerate(unique)}
        missing = next((p for p in unique if not p.is_file()), None)
        if missing is not None:
            raise DataNotFoundError(f"{path}: image {missing} not found")
        chunks = []
        for start in range(0, len(unique), split.batch_size):
            images = split.images(unique[start : start + split.batch_size])
            with split.autocast():
                chunks.append(embeddings(model, split.preprocess(images)).float())
        emb = torch.nn.functional.normalize(torch.cat(chunks), dim=1)
        a = emb[[where[p] for p in left]]
        b = emb[[where[p] for p in right]]
        similarity = (a * b).sum(dim=1).cpu().numpy()
        if not np.isfinite(similarity).all():
            raise ValueError("non-finite embeddings (the model diverged)")
        scores = verification_scores(similarity, labels)
        return {"val_auc": scores["auc"], "val_eer": scores["eer"], "val_verify_acc": scores["acc"]}


def verification(pairs: str = "verification/pairs_val.txt", *, test_pairs: str | None = None) -> Evaluation:
    """Face verification from the classifier's embeddings, as an evaluation::

        Study(..., evaluations=[verification(pairs="verification/pairs_val.txt")], metric="val_auc")

    ``pairs`` (and ``test_pairs``, scored once with the best checkpoint as test_auc, test_eer,
    test_verify_acc) are pairs files relative to the dataset's folder. Its metrics: val_auc
    (maximize), val_eer (minimize), val_verify_acc (accuracy at the best threshold).
    """
    fn = _Verify(pairs, test_pairs)
    return Evaluation(fn, VERIFICATION_METRICS, on_test=test_pairs is not None, name="verification", precheck=fn.check)
