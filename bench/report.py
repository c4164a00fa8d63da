"""Report time against a plain pandas read of the same rows, measured in one run.

A SQLite database gets two studies of 2,000 trials x 50 epochs each: a grid (400 configurations
x 5 seeds: model x lr x scheduler x batch size) and a random search (2,000 configurations x 1
seed over lr, weight decay, filters, activation, dropout). Studies and trials are planned
through the store's API (register_study, add_trials); the results (final metrics, 100,000 epoch
rows per study, a few failed and pruned trials) are bulk-inserted into the store's own tables,
because 100,000 record_epoch transactions would take minutes and measure the store, not the
report.

Then, alternating A B A B:
  A. the baseline: ``pd.read_sql`` of the study's rows of the trials and epochs tables;
  B. ``build_report(study)``, what ``ablate report`` runs: read through the store, compute every
     statistic, draw every plot (PNG; SVG only with --svg), write index.html, report.md and the
     tables.
The first report of a process also pays for importing scipy, statsmodels, matplotlib and optuna:
it is reported separately as "cold". The target is report <= 3x the read.

    .venv/bin/python bench/report.py [--trials 2000] [--epochs 50] [--repeats 5] [--out bench/results/report.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HISTORY = "## Earlier versions"
MODELS = ["cnn", "resnet18", "resnet34", "resnet50", "efficientnet_b0"]
LRS = [0.1, 0.05, 0.01, 0.001]
SCHEDULERS = ["step", "plateau", "cosine", "none"]
BATCHES = [32, 64, 128, 256, 512]


def make_studies(trials: int) -> tuple[Any, Any, list[Any]]:
    from ablate.study import Study, TrialSpec, loguniform, uniform

    seeds = max(1, trials // (len(MODELS) * len(LRS) * len(SCHEDULERS) * len(BATCHES)))
    base = dict(dataset="synthetic", num_classes=100, epochs=50)
    grid = Study(
        name="bench_grid",
        base=base,
        factors=dict(model=MODELS, lr=LRS, scheduler=SCHEDULERS, batch_size=BATCHES),
        seeds=list(range(seeds)),
    )
    random = Study(
        name="bench_random",
        base={**base, "model": "cnn"},
        factors=dict(lr=loguniform(1e-4, 0.3), weight_decay=loguniform(1e-6, 1e-3),
                     cnn_filters=[16, 32, 64, 128], cnn_activation=["relu", "gelu", "silu", "mish"],
                     cnn_dropout=uniform(0.0, 0.5)),
        design="random",
        n_trials=trials,
    )
    rng = np.random.default_rng(0)
    specs = []
    for i in range(trials):
        params = dict(lr=float(10 ** rng.uniform(-4, np.log10(0.3))), weight_decay=float(10 ** rng.uniform(-6, -3)),
                      cnn_filters=int(rng.choice([16, 32, 64, 128])),
                      cnn_activation=str(rng.choice(["relu", "gelu", "silu", "mish"])),
                      cnn_dropout=float(rng.uniform(0, 0.5)))
        specs.append(TrialSpec(i, params, 0, random.config_for(params, 0)))
    return grid, random, specs


def fill(url: str, trials: int, epochs: int) -> None:
    """Plan both studies through the store's API, then bulk-insert their results."""
    from sqlalchemy import bindparam, insert, select, update

    from ablate.store import ResultStore
    from ablate.store._models import Epoch, Trial

    grid, random, random_specs = make_studies(trials)
    rng = np.random.default_rng(1)
    with ResultStore(url) as store:
        for study, specs in ((grid, grid.validate()), (random, random_specs)):
            info = store.register_study(study)
            store.add_trials(study, specs)
            with store.session() as session:
                ids = session.execute(select(Trial.id).where(Trial.study_id == info.study_id).order_by(Trial.number)).scalars().all()
                finals, rows = [], []
                for trial_id in ids:
                    status = rng.choice(["completed", "failed", "pruned"], p=[0.96, 0.02, 0.02])
                    quality = rng.uniform(0.3, 0.8)
                    ran = epochs if status == "completed" else int(rng.integers(1, epochs))
                    for e in range(1, ran + 1):
                        f = 1 - np.exp(-4 * e / epochs)
                        rows.append(dict(trial_id=trial_id, epoch=e, train_loss=4.6 * (1 - f) + 0.2, train_acc=quality * f + 0.05,
                                         val_loss=4.6 * (1 - f) + 0.5, val_acc=quality * f, val_top5=min(1.0, quality * f + 0.2),
                                         lr=0.1 * (1 - e / epochs), seconds=12.0, images_per_s=4000.0, peak_mem_mb=900.0))
                    finals.append(dict(
                        b_id=trial_id, b_status=str(status), b_train_acc=quality + 0.05, b_val_acc=quality,
                        b_best_val_acc=quality + 0.01, b_test_acc=quality - 0.01, b_train_loss=0.2, b_val_loss=0.5,
                        b_duration_s=12.0 * ran + rng.normal(0, 5), b_images_per_s=4000.0 + rng.normal(0, 100),
                        b_epochs_run=ran, b_device="cuda:0", b_worker="w0", b_attempt=1))
                session.connection().execute(
                    update(Trial).where(Trial.id == bindparam("b_id")).values(
                        **{c: bindparam(f"b_{c}") for c in ("status", "train_acc", "val_acc", "best_val_acc", "test_acc",
                                                             "train_loss", "val_loss", "duration_s", "images_per_s",
                                                             "epochs_run", "device", "worker", "attempt")}),
                    finals,
                )
                session.connection().execute(insert(Epoch), rows)


def pandas_read(engine: Any, study_id: int) -> int:
    import pandas as pd

    trials = pd.read_sql(f"SELECT * FROM trials WHERE study_id = {study_id}", engine)
    epochs = pd.read_sql(
        f"SELECT epochs.* FROM epochs JOIN trials ON trials.id = epochs.trial_id WHERE trials.study_id = {study_id}",
        engine,
    )
    return len(trials) + len(epochs)


def stages(url: str, name: str, out: Path) -> dict[str, float]:
    """build_report's stages timed one by one: the store read, the statistics (with the epochs
    of the configurations drawn as curves), drawing and writing."""
    from ablate.report import ReportOptions, collect_report, load_study_data, render_report
    from ablate.store import ResultStore

    t0 = time.perf_counter()
    with ResultStore(url, create=False) as store:
        data = load_study_data(name, store)
        t1 = time.perf_counter()
        report = collect_report(data)
        t2 = time.perf_counter()
    render_report(report, out)
    t3 = time.perf_counter()
    render_report(report, out, ReportOptions(svg=True))
    t4 = time.perf_counter()
    return {"store read (studies, trials, artifacts)": t1 - t0, "statistics (+ curve epochs)": t2 - t1,
            "draw + write (PNG, HTML, MD, tables)": t3 - t2, "the same with --svg": t4 - t3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=50)
    # 5: on a shared 2-core machine one run in five is often twice as slow as the others.
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "report.md")
    args = parser.parse_args()

    import sqlalchemy as sa

    tmp = Path(tempfile.mkdtemp(prefix="ablate-bench-report-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    t = time.perf_counter()
    fill(url, args.trials, args.epochs)
    fill_s = time.perf_counter() - t
    print(f"filled {url} in {fill_s:.1f} s", flush=True)

    from ablate.report import build_report
    from ablate.store import load_study

    engine = sa.create_engine(url)
    results = {}
    cold_done = False
    for name in ("bench_grid", "bench_random"):
        study_id = load_study(name, db=url).study_id
        rows = pandas_read(engine, study_id)  # warms the page cache for both sides alike
        reads, reports, cold = [], [], None
        for i in range(args.repeats + (0 if cold_done else 1)):
            t = time.perf_counter()
            pandas_read(engine, study_id)
            reads.append(time.perf_counter() - t)
            t = time.perf_counter()
            build_report(name, db=url, out=tmp / "reports" / name)
            took = time.perf_counter() - t
            if not cold_done and i == 0:
                cold, cold_done = took, True
            else:
                reports.append(took)
            print(f"{name}: read {reads[-1]:.2f} s, report {took:.2f} s", flush=True)
        pairs = [b / a for a, b in zip(reads[-len(reports):], reports, strict=True)]
        results[name] = dict(rows=rows, read=statistics.median(reads), report=statistics.median(reports), cold=cold,
                             pairs=(statistics.median(pairs), min(pairs), max(pairs)),
                             stages=stages(url, name, tmp / "stages" / name),
                             figures=len(list((tmp / "stages" / name).glob("*.png"))))

    load = os.getloadavg()
    lines = [
        "# Report benchmark",
        "",
        f"`{' '.join(['.venv/bin/python', 'bench/report.py', *sys.argv[1:]])}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min; other jobs shared the machine). "
        f"Python {platform.python_version()}. Database filled in {fill_s:.0f} s: SQLite, "
        f"{args.trials} trials x {args.epochs} epochs per study.",
        "",
        f"Medians of {args.repeats} alternating runs (read, report, read, report, ...). Read = `pd.read_sql` of the study's "
        "rows of the `trials` and `epochs` tables. Report = `build_report()`, what `ablate report` runs: store read, "
        "statistics, every plot as PNG, HTML, Markdown, CSV, LaTeX.",
        "",
        "| study | rows read | pandas read (s) | report (s) | report / read | each pair's ratio: median (min – max) | cold report (s), first in the process |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        cold = f"{r['cold']:.2f}" if r["cold"] is not None else "–"
        mid, low, high = r["pairs"]
        lines.append(f"| {name} | {r['rows']:,} | {r['read']:.2f} | {r['report']:.2f} | {r['report'] / r['read']:.1f}x "
                     f"| {mid:.1f}x ({low:.1f}x – {high:.1f}x) | {cold} |")
    lines += ["", "Where the warm report's time goes (one more run, stage by stage):", "",
              "| study | " + " | ".join(next(iter(results.values()))["stages"]) + " |",
              "| --- |" + " ---: |" * len(next(iter(results.values()))["stages"])]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f} s" for v in r["stages"].values()) + " |")
    lines += ["", "Reading the figures:", ""]
    for name, r in results.items():
        st = list(r["stages"].values())
        verdict = "met" if r["report"] <= 3 * r["read"] else "not met"
        lines.append(
            f"- {name}: target report <= 3x read {verdict} ({r['report'] / r['read']:.1f}x). The data part "
            f"(store read + statistics, everything `load_report()` does) took {st[0] + st[1]:.2f} s = "
            f"{(st[0] + st[1]) / r['read']:.1f}x the pandas read; drawing and writing took {st[2]:.2f} s "
            f"({st[3]:.2f} s with --svg) for {r['figures']} figures, {st[2] / r['figures']:.2f} s each."
        )
    lines += [
        "- Drawing costs per figure, not per trial: the same figures are drawn for 20 trials as for 2,000. "
        "On a machine with 4 or more cores `render_report` draws them in forked worker processes (half the "
        "cores); with 2 cores it draws in-process, as here.",
        "",
    ]
    # Figures of earlier versions, kept below the current ones.
    history = ""
    if args.out.exists():
        old = args.out.read_text(encoding="utf-8")
        history = old[old.index(HISTORY):] if HISTORY in old else ""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + ("\n" + history if history else ""), encoding="utf-8")
    print("\n".join(lines))
    print(f"written to {args.out}; data in {tmp}")


if __name__ == "__main__":
    main()
