"""The ablation table's writers: the EfficientNet OFAT table of SEEDS.md, Markdown, CSV, LaTeX."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from ablate.report import ablation_table, latex_table, markdown_table, write_tables
from ablate.report._tables import table_cells

from .frames import make_trials

# SEEDS.md, experiment 1: EfficientNet-B0 at 64/128 px, and 128 px with augmentation.
EFFNET = [
    dict(image_size=128, augment="none", train_acc=0.61, val_acc=0.58),
    dict(image_size=64, augment="none", train_acc=0.348, val_acc=0.316),
    dict(image_size=128, augment="basic", train_acc=0.552, val_acc=0.557),
]


def effnet_table():  # type: ignore[no-untyped-def]
    trials = make_trials(["image_size", "augment"], EFFNET)
    table = ablation_table(trials, factors=["image_size", "augment"], metric="val_acc", direction="maximize",
                           design="ofat", study_baseline={"image_size": 128, "augment": "none"})
    table.constants = {"model": "efficientnet_b0", **table.constants}
    return table


def md_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


def test_effnet_ofat_table_renders_the_write_up_numbers(tmp_path: Path) -> None:
    table = effnet_table()
    text = markdown_table(table)
    assert text.splitlines()[0] == "Constant: model = efficientnet_b0. Seeds: 0."
    header = [c.strip() for c in text.splitlines()[2].strip("|").split("|")]
    assert header[:5] == ["image_size", "augment", "n", "final train acc", "final val acc"]
    rows = md_rows(text)
    # Baseline first, then each factor changed alone; best per column in bold.
    assert [r[:5] for r in rows] == [
        ["128", "none", "1", "**0.610**", "**0.580**"],
        ["64", "none", "1", "0.348", "0.316"],
        ["128", "basic", "1", "0.552", "0.557"],
    ]
    assert [r[header.index("Δ val_acc")] for r in rows] == ["baseline", "-0.264", "-0.023"]
    assert [r[header.index("p (Bonferroni)")] for r in rows] == ["", "–", "–"]
    assert "n = 1: no test" in rows[1][-1]
    assert "Rows with a single seed (n = 1) on either side have no test" in text

    paths = write_tables(table, tmp_path)
    csv = pd.read_csv(paths[1])
    assert csv[["image_size", "augment", "train_acc_mean", "val_acc_mean"]].values.tolist() == [
        [128, "none", 0.61, 0.58], [64, "none", 0.348, 0.316], [128, "basic", 0.552, 0.557]]
    assert csv["val_acc_diff"].tolist() == pytest.approx([0.0, -0.264, -0.023])
    assert csv["model"].tolist() == ["efficientnet_b0"] * 3
    assert csv["val_acc_best"].tolist() == [True, False, False]


def test_latex_is_a_booktabs_tabular_with_escaped_names() -> None:
    tex = latex_table(effnet_table(), study="effnet_imgsize")
    lines = tex.splitlines()
    assert lines[1:3] == [r"\begin{table}[t]", r"\centering"]
    assert lines[3].startswith(r"\caption{Ablation of final val acc: mean $\pm$ std over 1 seed(s)")
    assert lines[4] == r"\label{tab:effnet_imgsize}"
    assert lines[5] == r"\begin{tabular}{llrrrrrrrl}"
    assert lines[lines.index(r"\end{tabular}") + 1] == r"\end{table}"
    assert [r"\toprule" in tex, r"\midrule" in tex, r"\bottomrule" in tex] == [True, True, True]
    assert r"image\_size & augment & n & final train acc" in tex
    assert r"128 & none & 1 & \textbf{0.610} & \textbf{0.580}" in tex
    assert r"$\Delta$ val\_acc" in tex
    assert r"64 & none & 1 & 0.348 & 0.316 & $-$0.264 & -- & -- & -- & n = 1: no test" in tex
    # Every body row has as many cells as the header.
    body = lines[lines.index(r"\midrule") + 1 : lines.index(r"\bottomrule")]
    assert {row.count("&") for row in body} == {lines[7].count("&")}
    assert not re.search(r"(?<!\\)_", "\n".join(body))


def test_cells_show_mean_std_and_excluded_counts() -> None:
    rows = [dict(lr=0.1, seed=s, val_acc=v, duration_s=30.0 + s) for s, v in enumerate([0.5, 0.6, 0.7])]
    rows += [dict(lr=0.05, seed=s, val_acc=v, duration_s=40.0) for s, v in enumerate([0.4, 0.45])]
    rows += [dict(lr=0.05, seed=2, status="failed")]
    table = ablation_table(make_trials(["lr"], rows), factors=["lr"], metric="val_acc", direction="maximize")
    header, cells, _, _ = table_cells(table)
    by_lr = {c[0].text: c for c in cells}
    assert by_lr["0.1"][header.index("final val acc")].text == "0.600 ± 0.100"
    assert by_lr["0.05"][header.index("n")].text == "2 (1 excl.)"
    assert header[:4] == ["lr", "n", "final val acc", "train time (s)"]  # train time right after the metric
    assert by_lr["0.1"][header.index("train time (s)")].text == "31.0 ± 1.0"
    assert by_lr["0.05"][header.index("train time (s)")].text == "40.0 ± 0.0"
    notes = "\n".join(markdown_table(table).splitlines()[-4:])
    assert "Excluded from every statistic: 1 failed trial(s)." in notes
    assert "Welch's t-test" in notes


def test_columns_choose_the_table_and_unknown_ones_are_refused() -> None:
    from ablate.errors import StudyError

    table = effnet_table()
    cells = table_cells(table, ["val_acc", "image_size", "diff"])
    assert cells.keys == ["image_size", "val_acc", "diff"]  # table order, not the order asked
    assert cells.header == ["image_size", "final val acc", "Δ val_acc"]
    assert [r[1].text for r in cells.rows] == ["0.580", "0.316", "0.557"]
    with pytest.raises(StudyError, match=r"--columns 'accuracy' is not a column of the table; allowed: image_size"):
        table_cells(table, ["accuracy"])


def test_per_configuration_settings_come_from_the_stored_configs() -> None:
    # A coupled level: the transformer ran at lr 5e-4, the CNN at the base's 1e-3.
    rows = [dict(model="cnn", seed=0, val_acc=0.5), dict(model="vit", seed=0, val_acc=0.6)]
    trials = make_trials(["model"], rows, base={"lr": 0.001, "epochs": 3})
    trials.loc[1, "config"]["lr"] = 0.0005
    table = ablation_table(trials, factors=["model"], metric="val_acc", direction="maximize",
                           base={"lr": 0.001, "epochs": 3})
    assert table.constants == {"epochs": 3}  # lr is not constant: it is not on the Constant line
    assert table.rows["settings"].tolist() == ["lr=0.001", "lr=0.0005"]
    text = markdown_table(table)
    assert text.splitlines()[0].startswith("Constant: epochs = 3.")
    assert "| cnn | lr=0.001 | 1 |" in text and "| vit | lr=0.0005 | 1 |" in text


def test_per_seed_table_lists_every_replicate() -> None:
    from ablate.report._tables import per_seed_cells

    rows = [dict(lr=lr, seed=s, val_acc=0.5 + lr + s / 100) for lr in (0.1, 0.2) for s in (0, 1, 2)]
    rows[5]["status"] = "failed"
    table = ablation_table(make_trials(["lr"], rows), factors=["lr"], metric="val_acc", direction="maximize")
    header, body = per_seed_cells(table)
    assert header == ["configuration", "seed 0", "seed 1", "seed 2"]
    assert body == [["lr=0.1", "0.600", "0.610", "0.620"], ["lr=0.2", "0.700", "0.710", "–"]]
