"""Orchestration overhead and scaling, measured in one run (ratios, not absolute times).

1. No-op trials through ablate (claim, lease, heartbeat thread, finish, all in SQLite) against
   Optuna's own `study.optimize` with RDB storage on a SQLite file: trials per second, alternated
   A B A B, medians.
2. Trials that sleep 0.5 s on PostgreSQL with 1 and with 4 worker processes: the speed-up of the
   makespan (first trial start to last trial end, from the database's own timestamps, so process
   start-up is not counted) and the number of duplicate executions (must be 0).

    .venv/bin/python bench/orchestration.py [--trials 200] [--repeats 3] [--out bench/results/orchestration.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

NOOP_STUDY = """
import os, time
from ablate import Study

def noop(config, reporter):
    log = os.environ.get("BENCH_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{{config.extra['i']}},{{config.seed}}\\n")
    time.sleep({sleep})
    return {{"val_acc": 0.5}}

study = Study(name="{name}", factors=dict(i=list(range({n}))), train=noop)
"""


def _write_study(directory: Path, name: str, n: int, sleep: float) -> Path:
    path = directory / f"{name}.py"
    path.write_text(NOOP_STUDY.format(name=name, n=n, sleep=sleep))
    return path


def ablate_noop(n: int, directory: Path) -> float:
    """Trials per second of no-op trials through ablate with one in-process worker."""
    from ablate.run import run_study

    db = directory / f"ablate-{time.monotonic_ns()}.db"
    study = _write_study(directory, "noop", n, 0.0)
    with open(os.devnull, "w") as devnull:
        stdout, sys.stdout = sys.stdout, devnull
        try:
            start = time.perf_counter()
            (outcome,) = run_study(study, db=f"sqlite:///{db}", runs_dir=directory / "runs")
            elapsed = time.perf_counter() - start
        finally:
            sys.stdout = stdout
    assert outcome.summary.completed == n, outcome
    return n / elapsed


def optuna_noop(n: int, directory: Path) -> float:
    """Trials per second of Optuna's study.optimize with RDB storage on a SQLite file."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = directory / f"optuna-{time.monotonic_ns()}.db"
    start = time.perf_counter()
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name="noop")
    study.optimize(lambda t: t.suggest_int("i", 0, n), n_trials=n)
    elapsed = time.perf_counter() - start
    assert len(study.trials) == n
    return n / elapsed


def pg_scaling(workers: int, n: int, directory: Path) -> tuple[float, int]:
    """Makespan of n trials sleeping 0.5 s with `workers` processes; duplicate executions."""
    import sqlalchemy as sa

    schema = f"bench_{os.getpid()}_{workers}_{time.monotonic_ns() % 10**6}"
    engine = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG}?options=-csearch_path%3D{schema}"
    log = directory / f"exec-{schema}.log"
    study = _write_study(directory, "sleepy", n, 0.5)
    try:
        subprocess.run(
            [sys.executable, "-m", "ablate", "run", str(study), "--db", url, "--workers", str(workers),
             "--runs-dir", str(directory / "runs")],
            env={**os.environ, "BENCH_LOG": str(log)}, check=True, capture_output=True, cwd=ROOT,
        )
        from ablate.store import load_trials

        trials = load_trials("sleepy", db=url)
        makespan = (trials["finished_at"].max() - trials["started_at"].min()).total_seconds()
        lines = log.read_text().splitlines()
        duplicates = len(lines) - len(set(lines))
        assert len(set(lines)) == n
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    return makespan, duplicates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sleep-trials", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/orchestration.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        ablate_noop(10, directory)  # warm-up: imports, first database
        optuna_noop(10, directory)
        ours, theirs, ratios = [], [], []
        for _ in range(args.repeats):
            a = ablate_noop(args.trials, directory)
            b = optuna_noop(args.trials, directory)
            ours.append(a)
            theirs.append(b)
            ratios.append(a / b)
        one, dup1 = pg_scaling(1, args.sleep_trials, directory)
        four, dup4 = pg_scaling(4, args.sleep_trials, directory)
    lines = [
        "## Orchestration (`bench/orchestration.py`)",
        "",
        f"Command: `.venv/bin/python bench/orchestration.py --trials {args.trials} --repeats {args.repeats}`",
        f"on {os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')}.",
        "",
        "| measure | median | runs |",
        "| --- | --- | --- |",
        f"| ablate, no-op trials/s (SQLite, 1 worker) | {statistics.median(ours):.1f} | {', '.join(f'{x:.1f}' for x in ours)} |",
        f"| Optuna `study.optimize`, trials/s (RDB on SQLite) | {statistics.median(theirs):.1f} | {', '.join(f'{x:.1f}' for x in theirs)} |",
        f"| ratio ablate / Optuna (pairwise) | **{statistics.median(ratios):.2f}x** | {', '.join(f'{x:.2f}' for x in ratios)} |",
        "",
        f"PostgreSQL, {args.sleep_trials} trials of 0.5 s each (makespan from the database's "
        "started_at/finished_at, process start-up excluded):",
        "",
        "| workers | makespan (s) | speed-up | duplicate executions |",
        "| --- | --- | --- | --- |",
        f"| 1 | {one:.2f} | 1.00x | {dup1} |",
        f"| 4 | {four:.2f} | **{one / four:.2f}x** | {dup4} |",
        "",
    ]
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
