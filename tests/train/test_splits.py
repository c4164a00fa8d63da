"""Explicit splits on fake ImageFolder trees in the layouts of the write-ups (real PNG/JPEG files):
each split's size, class balance and source; no test image before the final evaluation; bad
layouts and declarations refused by `ablate plan` / `ablate run` with one line, nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ablate.cli import app
from ablate.data import check_data, load_dataset
from ablate.errors import AblateError, StudyError
from ablate.study import make_config
from ablate.train import train_trial

from .helpers import tiny

CLASSES = ("cat", "dog", "owl")


def write_tree(root: Path, splits: dict[str, int], *, side: int = 20, classes: tuple[str, ...] = CLASSES) -> Path:
    """``splits``: folder -> images per class; each class a distinct colour, PNG and JPEG mixed."""
    rng = np.random.default_rng(0)
    for split, n in splits.items():
        for k, cls in enumerate(classes):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                pixels = np.full((side, side, 3), 40 + 80 * k, np.uint8) + rng.integers(0, 30, (side, side, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(d / (f"{i}.png" if i % 2 else f"{i}.jpg"))
    return root


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))


def folder_config(root: Path, **kw: Any) -> Any:
    return tiny(dataset=f"imagefolder:{root}", num_classes=None, image_size=16, num_workers=0, **kw)


def test_inat_layout_holds_out_20_percent_of_train_and_keeps_val_folder_as_test(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "inaturalist_12K", {"train": 10, "val": 4})
    ds = load_dataset(folder_config(root, val_split=0.2, test_split="val"))
    assert ds.val is not None and ds.test is not None
    assert (len(ds.train), len(ds.val), len(ds.test)) == (24, 6, 12)
    assert np.bincount(ds.val.labels).tolist() == [2, 2, 2]  # equal class representation
    assert np.bincount(ds.train.labels).tolist() == [8, 8, 8]
    assert ds.val.files is not None and ds.train.files is not None and ds.test.files is not None
    assert all("/train/" in f for f in ds.val.files) and not set(ds.val.files) & set(ds.train.files)
    assert all("/val/" in f for f in ds.test.files)
    assert ds.sources["test"] == f"folder {root / 'val'}/"
    assert ds.sources["val"].startswith("20% of folder") and "split_seed 0" in ds.sources["val"]
    # The hold-out is fixed by split_seed, not by the trial's seed.
    again = load_dataset(folder_config(root, val_split=0.2, test_split="val", seed=7))
    assert again.val is not None and again.val.files == ds.val.files
    other = load_dataset(folder_config(root, val_split=0.2, test_split="val", split_seed=3))
    assert other.val is not None and other.val.files != ds.val.files


@pytest.mark.slow
@pytest.mark.parametrize("feed", ["off", "on"])  # the DataLoader path; the decoded cache
def test_no_test_image_is_decoded_before_the_final_evaluation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, feed: str) -> None:
    import ablate.data._batches as batches
    import ablate.data._cache as image_cache
    from ablate.train import _trainer

    root = write_tree(tmp_path / "inat", {"train": 6, "val": 2})
    decoded: list[str] = []
    real_decode = batches.decode_image
    monkeypatch.setattr(batches, "decode_image", lambda path, min_side=None: decoded.append(path) or real_decode(path, min_side))
    # The decoded cache's builder (in this process: a few images are one decoding task).
    real_square = image_cache.decode_square
    monkeypatch.setattr(image_cache, "decode_square", lambda path, kind, side: decoded.append(path) or real_square(path, kind, side))
    finished_at: list[int] = []
    real_finish = _trainer._Trial._finish

    def finish(self: Any, *args: Any) -> Any:
        finished_at.append(len(decoded))
        return real_finish(self, *args)

    monkeypatch.setattr(_trainer._Trial, "_finish", finish)
    cfg = folder_config(root, val_split=0.2, test_split="val", epochs=3, early_stopping=2, batch_size=6, image_cache=feed)
    result = train_trial(cfg, checkpoint_dir=tmp_path / "ck")
    assert result.status == "completed" and result.test_acc is not None
    before, after = decoded[: finished_at[0]], decoded[finished_at[0] :]
    assert before and not [f for f in before if "/val/" in f]  # epochs and selection: train/ only
    assert {f for f in after if "/val/" in f} == {str(p) for p in (root / "val").rglob("*.*")}
    assert (result.metrics_dict()["n_train"], result.metrics_dict()["n_val"], result.metrics_dict()["n_test"]) == (15, 3, 6)


@pytest.mark.slow
def test_imagenet100_layout_val_folder_as_validation_and_no_test(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "imagenet100", {"train": 4, "val": 2})
    cfg = folder_config(root, val_split="val", test_split=None, epochs=1, prediction_samples=3)
    ds = load_dataset(cfg)
    assert ds.test is None and ds.val is not None and len(ds.val) == 6 and len(ds.train) == 12
    result = train_trial(cfg, checkpoint_dir=tmp_path / "ck")
    assert result.test_acc is None and result.val_acc is not None
    assert result.data["splits"]["val"]["source"] == f"folder {root / 'val'}/"
    assert "test" not in result.data["splits"]


@pytest.mark.slow
def test_hw2p2_layout_three_folders_at_native_size(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "hw2p2", {"train": 4, "dev": 2, "test": 2}, side=16)
    cfg = folder_config(root, val_split="dev", test_split="test", train_resize="none", eval_resize="none", epochs=1)
    ds = load_dataset(cfg)
    assert ds.val is not None and ds.test is not None and (len(ds.train), len(ds.val), len(ds.test)) == (12, 6, 6)
    result = train_trial(cfg)
    assert result.status == "completed"
    # An image of another size cannot be fed at native size: that trial fails naming the file.
    odd = root / "train" / "cat" / "big.png"
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(odd)
    with pytest.raises(RuntimeError, match=f"{odd}: image is 24x24 px"):
        train_trial(cfg)


@pytest.mark.slow
def test_val_split_zero_trains_on_all_of_train_and_selects_nothing() -> None:
    cfg = tiny(dataset="digits", num_classes=None, val_split=0, epochs=2, image_size=8)
    result = train_trial(cfg, metric="test_acc")
    assert result.val_acc is None and all(m.val_acc is None for m in result.history)
    assert result.best_epoch == 2  # the last epoch, not one chosen on test images
    assert result.test_acc is not None and result.best_metric == result.test_acc
    assert result.metrics_dict()["n_val"] is None and result.metrics_dict()["n_train"] == 1438
    for bad in (dict(early_stopping=3), dict(scheduler="plateau")):
        with pytest.raises(StudyError, match="no validation split"):
            make_config({**cfg.to_dict(), **bad}, where="test")


@pytest.mark.slow
def test_a_corrupt_image_met_in_training_fails_that_trial_naming_the_file(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "f", {"train": 4, "val": 2})
    bad = root / "train" / "dog" / "1.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated: the header reads, decoding fails
    cfg = folder_config(root, val_split="val", test_split=None, epochs=1)
    check_data(cfg)  # headers are fine
    with pytest.raises(RuntimeError, match=f"^{bad}: cannot decode image"):
        train_trial(cfg)


def _refused(tmp_path: Path, base: dict[str, Any]) -> str:
    """`ablate plan` and `ablate run` of a one-trial study: both exit 2 with one line; the run
    writes no database."""
    study = tmp_path / "study.py"
    study.write_text(
        "from ablate import Study\n"
        f"study = Study(name='bad', base={base!r}, factors=dict(lr=[0.1]))\n"
    )
    runner = CliRunner()
    plan = runner.invoke(app, ["plan", str(study)])
    assert plan.exit_code == 2, plan.output
    db = tmp_path / "refused.db"
    run = runner.invoke(app, ["run", str(study), "--db", str(db), "--runs-dir", str(tmp_path / "runs")])
    assert run.exit_code == 2, run.output
    assert not db.exists()
    lines = plan.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and run.output == plan.output
    return lines[0]


def _base(root: Path, **kw: Any) -> dict[str, Any]:
    return dict(dataset=f"imagefolder:{root}", image_size=16, epochs=1, **kw)


def test_a_split_contradicting_the_folders_names_the_folders_found(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "inat", {"train": 3, "val": 2})
    line = _refused(tmp_path, _base(root))  # default test_split='test': the old silent swap
    assert "'test_split' is 'test'" in line and "folders found: train, val" in line
    assert line.endswith("set test_split to one of them, to a fraction of train/ to hold out (e.g. 0.1), or to None")
    line = _refused(tmp_path, _base(root, val_split="valid", test_split="val"))
    assert "'val_split' is 'valid'" in line and "folders found: train, val" in line


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (dict(val_split=1.0), "'val_split' is 1: a hold-out of all of train"),
        (dict(val_split="val", test_split="val"), "both declare folder 'val'"),
        (dict(test_split="val", normalize="custom", mean=[0.5], std=[0.2]), "'mean' has 1 values but"),
        (dict(test_split="val", normalize="custom", mean=[0.5, 0.5, 0.5], std=[0.2]), "must have one value per image channel"),
        (dict(test_split="val", val_split=0, early_stopping=2), "no validation split"),
    ],
    ids=["fraction-1", "declared-twice", "mean-length", "std-length", "early-stop-without-val"],
)
def test_bad_split_and_normalisation_declarations(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    root = write_tree(tmp_path / "inat", {"train": 3, "val": 2})
    assert expected in _refused(tmp_path, _base(root, **change))


def test_missing_data_empty_class_folder_and_corrupt_image_are_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "inat", {"train": 3, "val": 2})
    (root / "val" / "fox").mkdir()
    (root / "train" / "fox").mkdir()
    line = _refused(tmp_path, _base(root, test_split="val"))
    assert f"{root / 'train' / 'fox'}: class folder has no images" in line
    (root / "train" / "fox").rmdir()
    (root / "val" / "fox").rmdir()
    corrupt = root / "val" / "owl" / "1.png"
    corrupt.write_bytes(b"not an image at all")
    line = _refused(tmp_path, _base(root, test_split="val"))
    assert f"{corrupt}: not a readable image" in line
    # An absent dataset: `ablate plan` says so and goes on; `ablate run` refuses it.
    study = tmp_path / "study.py"
    study.write_text(
        "from ablate import Study\n"
        f"study = Study(name='gone', base={_base(tmp_path / 'gone')!r}, factors=dict(lr=[0.1]))\n"
    )
    plan = CliRunner().invoke(app, ["plan", str(study)])
    assert plan.exit_code == 0 and "data not checked" in plan.output
    run = CliRunner().invoke(app, ["run", str(study), "--db", str(tmp_path / "gone.db")])
    assert run.exit_code == 2 and "not found" in run.output and not (tmp_path / "gone.db").exists()


def test_plan_shows_each_split_size_and_source(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "inat", {"train": 5, "val": 2})
    study = tmp_path / "study.py"
    study.write_text(
        "from ablate import Study\n"
        f"study = Study(name='ok', base={_base(root, test_split='val')!r}, factors=dict(lr=[0.1]))\n"
    )
    result = CliRunner().invoke(app, ["plan", str(study), "--json"])
    assert result.exit_code == 0, result.output
    import json

    lines = json.loads(result.output)["data"]
    # the splits' line, then the line saying which path (image cache or DataLoader) feeds them
    (line,) = [x for x in lines if "per class" in x]
    assert any("image cache" in x for x in lines if x is not line), lines
    assert "train 12 (4-4 per class" in line and "val 3 (1-1 per class; 20% of folder" in line
    assert f"test 6 (2-2 per class; folder {root / 'val'}/)" in line


def test_validation_metric_or_tpe_on_test_images_is_refused(tmp_path: Path) -> None:
    from ablate.study import Study, choice

    no_val = dict(dataset="digits", val_split=0)
    with pytest.raises(AblateError, match="metric 'val_acc' needs a validation split"):
        Study(name="s", base=no_val, factors=dict(lr=[0.1])).validate()
    Study(name="s", base=no_val, factors=dict(lr=[0.1]), metric="test_acc").validate()
    with pytest.raises(AblateError, match="would select them on test images"):
        Study(name="s", base=dict(dataset="digits"), factors=dict(lr=choice(0.1, 0.01)),
              design="tpe", n_trials=2, metric="test_acc").validate()
    with pytest.raises(AblateError, match="pruner 'median'"):
        Study(name="s", base=no_val, factors=dict(lr=[0.1]), metric="test_acc", pruner="median").validate()


@pytest.mark.slow
def test_a_corrupt_image_fails_each_trial_that_meets_it_and_the_study_goes_on(tmp_path: Path) -> None:
    from ablate.run import run_study
    from ablate.store import load_trials

    root = write_tree(tmp_path / "f", {"train": 4, "val": 2})
    bad = root / "train" / "owl" / "3.png"
    bad.write_bytes(bad.read_bytes()[:60])
    study = tmp_path / "study.py"
    base = _base(root, val_split="val", test_split=None, num_workers=1, model="cnn", cnn_blocks=1, cnn_filters=4, batch_size=6)
    study.write_text(
        "from ablate import Study\n"
        f"study = Study(name='corrupt', base={base!r}, factors=dict(lr=[0.1, 0.01]))\n"
    )
    db = f"sqlite:///{tmp_path / 'r.db'}"
    (outcome,) = run_study(study, db=db, runs_dir=tmp_path / "runs")
    assert outcome.counts == {"failed": 2}  # the second trial ran too
    trials = load_trials("corrupt", db=db)
    for error in trials["error"]:
        first = error.splitlines()[0]
        assert first.endswith(f"ImageDecodeError: {bad}: cannot decode image (OSError: image file is truncated)")


def test_smoke_keeps_each_split_role_on_synthetic_data() -> None:
    from ablate.train import smoke_config

    inat = make_config(dict(dataset="imagefolder:/data/inat", num_classes=10, val_split=0.2, test_split="val"), where="t")
    smoke = smoke_config(inat)
    assert (smoke.train_split, smoke.val_split, smoke.test_split) == ("train", "val", "test")
    assert (smoke.train_resize, smoke.eval_resize) == ("crop", "crop")  # the folder's sizing
    sweep = make_config(dict(dataset="cifar100", val_split=0), where="t")
    ds = load_dataset(smoke_config(sweep))
    assert ds.val is None and ds.test is not None
