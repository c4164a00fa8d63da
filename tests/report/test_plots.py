"""Figures as files a paper can use: PNG with its DPI, PDF, readable units, readable axes."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ablate.report import _plots as P
from ablate.report._tables import time_unit
from ablate.study import make_config
from ablate.train import train_trial

from .checks import assert_real_image


def hours_frame(hours: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"factor": ["lr"] * len(hours), "level": [str(i) for i in range(len(hours))],
                         "device": ["CPU"] * len(hours), "hours": hours, "trials": [3] * len(hours)})


@pytest.mark.parametrize(("seconds", "unit"), [([5.4], "s"), ([0.0015 * 3600, 90.0], "s"), ([600.0, 900.0], "min"),
                                               ([3 * 3600.0, 5 * 3600.0], "h")])
def test_times_get_a_unit_their_size_reads_in(seconds: list[float], unit: str) -> None:
    name, scale = time_unit(pd.Series(seconds))
    assert name == unit
    assert 0.5 <= np.median(seconds) / scale < 200, "a readable number of that unit"


def test_compute_figure_shows_seconds_not_thousandths_of_an_hour(tmp_path: Path) -> None:
    fig = P.plot_compute_hours(hours_frame([0.0015, 0.003]))
    ax = fig.axes[-1]
    assert ax.get_xlabel() == "device time (s)"
    fig.canvas.draw()
    assert max(ax.get_xlim()) == pytest.approx(0.003 * 3600, rel=0.1), "bars drawn in seconds"


def test_png_records_its_dpi_and_pdf_is_vector(tmp_path: Path) -> None:
    from PIL import Image

    with P.report_style():
        fig = P.plot_compute_hours(hours_frame([2.0, 4.0, 1.0]))
        png = P.save_figure(fig, tmp_path, "compute_hours", vector=("pdf", "svg"))
    assert_real_image(png)
    with Image.open(png) as img:
        dpi = img.info["dpi"]
        size = img.size
    assert dpi == pytest.approx((P.PNG_DPI, P.PNG_DPI), abs=0.01) and P.PNG_DPI >= 200
    width, height = fig.get_size_inches()
    assert size == (round(width * P.PNG_DPI), round(height * P.PNG_DPI))
    pdf = (tmp_path / "compute_hours.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"/Subtype /Image" not in pdf, "vector: no embedded bitmap"
    assert b"/Type3" in pdf, "text as vector glyphs"
    assert (tmp_path / "compute_hours.svg").read_text().lstrip().startswith("<?xml")


def test_parallel_axis_ticks_are_round_and_never_overlap() -> None:
    # The data's ticks over a continuous lr range: even positions at odd values.
    odd = [(0.0, "0.000123"), (1 / 3, "0.00119"), (2 / 3, "0.0116"), (1.0, "0.113")]
    ticks = P._evened(odd)
    values = [float(label) for _, label in ticks]
    assert all(np.log10(v) % 1 in (0.0, pytest.approx(np.log10(2)), pytest.approx(np.log10(5))) or v % 1 == 0
               for v in values), values
    assert values == sorted(values) and all(0 <= p <= 1 for p, _ in ticks)
    linear = P._even_ticks(0.913, 0.987)
    assert [label for _, label in linear] == ["0.92", "0.94", "0.96", "0.98"]
    levels = [(0.0, "4"), (0.3, "8"), (0.31, "8.5"), (1.0, "16")]  # two levels 1 % of the axis apart
    assert P._evened(levels) == levels, "one tick per level stays"
    kept = P._thinned(levels)
    assert [label for _, label in kept] == ["4", "8", "16"]
    assert all(b[0] - a[0] >= P._MIN_TICK_GAP for a, b in itertools.pairwise(kept))


@pytest.mark.slow
def test_predictions_sit_beside_the_confusion_matrix_of_their_split(tmp_path: Path) -> None:
    config = make_config(dict(dataset="synthetic", num_classes=4, image_size=16, epochs=1, model="cnn", batch_size=32,
                              synthetic_samples=64, prediction_samples=12, seed=3), where="test")
    result = train_trial(config, checkpoint_dir=tmp_path)
    with np.load(result.artifacts["predictions"]) as data:
        arrays = {k: data[k] for k in data.files}
    assert str(arrays["split"]) == "test"
    confusion = arrays["confusion"]
    assert confusion.shape == (4, 4)
    # The whole split's matrix: its diagonal is the test accuracy the trainer reported.
    assert np.trace(confusion) / confusion.sum() == pytest.approx(result.test_acc)
    with P.report_style():
        fig = P.plot_predictions(arrays["images"], arrays["labels"], arrays["preds"], list(arrays["class_names"]),
                                 title="Best trial 0, lr=0.1, seed 3: test split predictions", confusion=confusion,
                                 confusion_title="confusion matrix, test split")
        png = P.save_figure(fig, tmp_path, "predictions")
    assert_real_image(png)
    grid, matrix = fig.axes
    assert matrix.get_title() == "confusion matrix, test split" and matrix.get_ylabel() == "true class"
    assert grid.get_position().x1 <= matrix.get_position().x0, "side by side"
    assert "seed 3" in fig.get_suptitle() and "test split" in fig.get_suptitle()


def test_one_layout_solve_gives_the_pixels_of_matplotlibs_own_savefig(tmp_path: Path) -> None:
    # save_figure solves the constrained layout once and removes the engine (savefig would solve
    # it in a draw of its own first): the PNG must be what plain savefig writes, pixel for pixel.
    from PIL import Image

    curves = pd.DataFrame({"config_hash": ["a"] * 4 + ["b"] * 4, "series": ["val_acc", "val_acc", "val_loss", "val_loss"] * 2,
                           "epoch": [1, 2] * 4, "mean": [0.5, 0.7, 1.2, 0.8, 0.4, 0.6, 1.4, 1.0],
                           "std": [0.05, 0.02, 0.1, 0.05] * 2, "n": [3] * 8})
    colors = P.config_colors(["a", "b"])

    def figure() -> Any:
        return P.plot_learning_curves(curves, {"a": "lr 0.1, long label", "b": "lr 0.01"}, colors, key_title="lr:")

    with P.report_style():
        png = P.save_figure(figure(), tmp_path, "ours")
        reference = figure()
        assert reference.get_layout_engine() is not None
        reference.savefig(tmp_path / "reference.png", dpi=P.PNG_DPI, facecolor="white")
    with Image.open(png) as a, Image.open(tmp_path / "reference.png") as b:
        assert a.size == b.size
        assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))


def test_drawing_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    import gc

    from ablate.report._build import _figure_garbage_freed_each

    assert gc.isenabled()
    with _figure_garbage_freed_each():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with _figure_garbage_freed_each():
            pass
        assert not gc.isenabled(), "a caller's choice to run without it is kept"
    finally:
        gc.enable()
