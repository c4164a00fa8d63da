"""The dashboard's trial list over ablate's tables (AblateStorage) against Optuna's own RDBStorage
holding the same trials, measured in one run.

bench/report.py's ``fill`` writes a random-search study of N trials x E epochs into a SQLite
database (planned through the store's API, results bulk-inserted). The same trials, read through
the adapter, are then added to an Optuna RDBStorage in a second SQLite file. Alternating A B A B:
  get_all_trials: ``storage.get_all_trials(study_id)``, what the dashboard's trial list reads;
  /api/studies/<id>: the whole request optuna-dashboard's page makes for the study (trials, best
      trial, search space, JSON), on a fresh app each time so its 10 s trial cache never answers.

    .venv/bin/python bench/dashboard.py [--trials 2000] [--epochs 50] [--repeats 3] [--out bench/results/dashboard.md]
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def study_request(storage: Any, study_id: int) -> int:
    """One GET /api/studies/<id> on a fresh optuna-dashboard app; the response's size."""
    from wsgiref.util import setup_testing_defaults

    import optuna_dashboard

    app = optuna_dashboard.wsgi(storage)
    environ: dict[str, Any] = {"PATH_INFO": f"/api/studies/{study_id}", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, e=None: status.append(s)))  # type: ignore[arg-type]
    assert status[0].startswith("200"), status
    return len(body)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dashboard.md")
    args = parser.parse_args()

    import optuna
    from report import fill  # bench/report.py: the same study the report benchmark reads

    from ablate.dashboard import AblateStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/ablate.db"
        start = time.perf_counter()
        fill(url, args.trials, args.epochs)
        ours = AblateStorage(url, studies=["bench_random"])
        ours_id = ours.get_study_id_from_name("bench_random")
        trials = ours.get_all_trials(ours_id)
        n_epochs = sum(len(t.intermediate_values) for t in trials)
        rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp}/optuna.db")
        copy = optuna.create_study(storage=rdb, study_name="bench_random", direction="maximize")
        copy.add_trials(trials)
        rdb_id = copy._study_id
        print(f"filled {len(trials)} trials, {n_epochs} epochs in {time.perf_counter() - start:.0f} s", flush=True)
        assert [t.intermediate_values for t in rdb.get_all_trials(rdb_id)] == [t.intermediate_values for t in trials]

        study_request(ours, ours_id)  # imports optuna-dashboard, not timed
        study_request(rdb, rdb_id)
        times: dict[str, list[float]] = {k: [] for k in ("ours_all", "rdb_all", "ours_api", "rdb_api")}
        for _ in range(args.repeats):
            times["ours_all"].append(timed(lambda: ours.get_all_trials(ours_id)))
            times["rdb_all"].append(timed(lambda: rdb.get_all_trials(rdb_id)))
            times["ours_api"].append(timed(lambda: study_request(ours, ours_id)))
            times["rdb_api"].append(timed(lambda: study_request(rdb, rdb_id)))
            print({k: round(v[-1], 3) for k, v in times.items()}, flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}

    lines = [
        f"{args.trials} trials x {args.epochs} epochs ({n_epochs} intermediate values), SQLite, "
        f"median of {args.repeats}, {platform.python_version()}, optuna {optuna.__version__}.",
        "",
        "| read | AblateStorage (s) | Optuna RDBStorage (s) | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| get_all_trials | {med['ours_all']:.2f} | {med['rdb_all']:.2f} | {med['ours_all'] / med['rdb_all']:.2f}x |",
        f"| GET /api/studies/<id> | {med['ours_api']:.2f} | {med['rdb_api']:.2f} | {med['ours_api'] / med['rdb_api']:.2f}x |",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
