"""What the pruner's history read costs per epoch: the full reload it was against the
incremental read (:class:`ablate.run.PruningHistory`), in one run, as a ratio.

For each size, a SQLite study holds N-1 finished trials of E epochs each (stamped as if each
epoch had taken ``--epoch-s`` seconds, one after another), and a current trial then records its
E epochs. After each of them both reads run, in alternating order, and must return the same
history: the full reload is what the worker did before (``load_epochs`` + ``load_trials`` of
the whole study, grouped by trial), the incremental one keeps what it read and fetches only the
statuses and the epochs recorded since. The Optuna decision itself (``should_prune``, which
rebuilds an in-memory study from every curve) is timed too, for scale.

    .venv/bin/python bench/pruner_history.py [--sizes 50x20 200x50 500x50] [--epoch-s 10]
        [--out bench/results/pruner_history.md]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]
METRIC = "val_acc"


def _noop(config: Any, reporter: Any) -> dict[str, float]:
    return {METRIC: 0.5}


def full_history(store: Any, name: str, trial_id: int) -> list[tuple[str, dict[int, float]]]:
    """The history as the worker read it before PruningHistory: the whole study, every epoch."""
    epochs = store.load_epochs(name)
    trials = store.load_trials(name)
    status = dict(zip(trials["trial_id"], trials["status"], strict=True))
    out = []
    for tid, rows in epochs.groupby("trial_id"):
        if tid == trial_id:
            continue
        curve = {int(e): float(v) for e, v in zip(rows["epoch"], rows[METRIC], strict=True) if v == v}
        out.append((status.get(tid, "running"), curve))
    return out


def _study(n: int) -> Any:
    from ablate import Study

    return Study(name="bench_pruner", factors=dict(i=list(range(n))), train=_noop, pruner="median")


def populate(store: Any, n: int, epochs: int, epoch_s: float) -> int:
    """N-1 completed trials with E epochs each; return the id of the claimed current trial."""
    from ablate.store._models import Epoch

    study = _study(n)
    store.register_study(study)
    store.add_trials(study, study.validate())
    start = datetime.now(UTC) - timedelta(seconds=n * epochs * epoch_s)
    rows = []
    for k in range(n - 1):
        claimed = store.claim_next_trial(study.name, worker="w", lease_s=600)
        store.finish_trial(claimed.trial_id, "w", status="completed", metrics={METRIC: 0.5 + k / (4 * n)})
        for e in range(1, epochs + 1):
            at = start + timedelta(seconds=(k * epochs + e) * epoch_s)
            rows.append({"trial_id": claimed.trial_id, "epoch": e, METRIC: (0.5 + k / (4 * n)) * e / epochs,
                         "recorded_at": at})  # fmt: skip
    with store.session() as session:
        session.execute(insert(Epoch), rows)
    current = store.claim_next_trial(study.name, worker="me", lease_s=600)
    return int(current.trial_id)


def measure(n: int, epochs: int, epoch_s: float) -> dict[str, Any]:
    from ablate.run import PruningCheck, PruningHistory
    from ablate.store import ResultStore

    with tempfile.TemporaryDirectory() as tmp, ResultStore(f"sqlite:///{Path(tmp) / 'bench.db'}") as store:
        me = populate(store, n, epochs, epoch_s)
        history = PruningHistory(store, "bench_pruner", METRIC)
        check = PruningCheck("median", METRIC, "maximize")
        full_s, incremental_s, ratios, prune_s = [], [], [], []
        first_incremental = None
        for e in range(1, epochs + 1):
            store.record_epoch(me, {"epoch": e, METRIC: 0.4 * e / epochs})
            timed: dict[str, float] = {}
            results: dict[str, Any] = {}
            order = ("full", "incremental") if e % 2 else ("incremental", "full")
            for which in order:
                t0 = time.perf_counter()
                results[which] = full_history(store, "bench_pruner", me) if which == "full" else history.others(me)
                timed[which] = time.perf_counter() - t0
            assert results["full"] == results["incremental"], f"histories differ at epoch {e}"
            if e == 1:  # the first incremental read is a full one (nothing kept yet)
                first_incremental = timed["incremental"]
                continue
            full_s.append(timed["full"])
            incremental_s.append(timed["incremental"])
            ratios.append(timed["full"] / timed["incremental"])
            t0 = time.perf_counter()
            check.should_prune({k: 0.4 * k / epochs for k in range(1, e + 1)}, results["incremental"])
            prune_s.append(time.perf_counter() - t0)
        return {
            "size": f"{n} x {epochs}",
            "rows": (n - 1) * epochs,
            "full_ms": 1000 * statistics.median(full_s),
            "incremental_ms": 1000 * statistics.median(incremental_s),
            "first_ms": 1000 * (first_incremental or 0.0),
            "ratio": statistics.median(ratios),
            "prune_ms": 1000 * statistics.median(prune_s),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["50x20", "200x50", "500x50"],
                        help="studies as TRIALSxEPOCHS")  # fmt: skip
    parser.add_argument("--epoch-s", type=float, default=10.0, help="seconds each stored epoch is stamped apart")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pruner_history.md")
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        n, epochs = (int(x) for x in size.lower().split("x"))
        results.append(measure(n, epochs, args.epoch_s))
        r = results[-1]
        print(f"{r['size']}: full {r['full_ms']:.1f} ms, incremental {r['incremental_ms']:.1f} ms, "
              f"ratio {r['ratio']:.1f}x, should_prune {r['prune_ms']:.1f} ms", flush=True)  # fmt: skip
    command = "bench/pruner_history.py --sizes " + " ".join(args.sizes) + f" --epoch-s {args.epoch_s:g}"
    lines = [
        "# Pruner history read per epoch (bench/pruner_history.py)",
        "",
        f"Command: `.venv/bin/python {command}`, SQLite, {datetime.now(UTC):%Y-%m-%d}. Medians over the",
        "current trial's epochs 2..E (epoch 1 is the incremental reader's first, full, read); the",
        "ratio is the median of each epoch's full / incremental pair, measured back to back.",
        "",
        "| trials x epochs | stored epochs | full reload (ms) | incremental (ms) | ratio | first incremental read (ms) | should_prune (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['size']} | {r['rows']:,} | {r['full_ms']:.1f} | {r['incremental_ms']:.1f} | "
            f"**{r['ratio']:.1f}x** | {r['first_ms']:.1f} | {r['prune_ms']:.1f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
