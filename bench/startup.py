"""How long `ablate` commands take to start, against a bare interpreter measured in the same run.

Every command runs as a fresh process (``python -m ablate ...``, this checkout first on the path),
as a user types it. The rounds are interleaved (bare, sql, status, ls, report, bare, sql, ...),
so load on a shared machine hits every command alike; each figure is the median over rounds,
quoted as seconds over ``python -c pass`` and as a ratio to it. Targets (issue 15): ``sql``,
``status`` and ``ls`` within 0.5 s of the bare interpreter, the demo's report within 2.5 s;
``--help`` within 1 s (issue 14: the threshold the test suite asserted before it moved here,
as a wall-clock figure on a shared machine is a measurement, not a test).

The database is the digits demo, run once with ``--set epochs=1`` into a temporary folder
(about a minute), unless ``--db`` names one that has the digits_quick study already.

    .venv/bin/python bench/startup.py [--rounds 5] [--db ablate.db] [--out bench/results/startup.md]

``--before-tree DIR`` also times every ablate command from another checkout (an older commit,
``PYTHONPATH=DIR``) in the same rounds, each tree's run of a command next to the other's, and
adds its figures as "before" columns.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    return elapsed


def _modules(command: list[str], cwd: Path, env: dict[str, str]) -> int:
    """How many modules the command imports: a count that load on the machine cannot skew."""
    traced = [command[0], "-X", "importtime", *command[1:]]
    done = subprocess.run(traced, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return sum(1 for line in done.stderr.splitlines() if line.startswith("import time:")) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", help="a database with the digits_quick study (default: run it)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "startup.md")
    parser.add_argument("--before-tree", type=Path, help="another checkout to time alongside (before)")
    args = parser.parse_args()

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    env.pop("ABLATE_DB", None)
    work = Path(tempfile.mkdtemp(prefix="ablate-startup-"))
    ablate = [sys.executable, "-m", "ablate"]
    if args.db:
        db = str(Path(args.db).resolve())
    else:
        db = str(work / "demo.db")
        print("running the digits demo with --set epochs=1 (about a minute) ...", flush=True)
        _timed([*ablate, "run", str(ROOT / "studies" / "digits_quick.py"), "--set", "epochs=1",
                "--db", db], work, env)  # fmt: skip

    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "ablate --version": [*ablate, "--version"],
        "ablate --help": [*ablate, "--help"],
        'ablate sql "select 1"': [*ablate, "sql", "select 1", "--db", db],
        "ablate status digits_quick": [*ablate, "status", "digits_quick", "--db", db],
        "ablate ls": [*ablate, "ls", "--db", db],
        "ablate report digits_quick": [*ablate, "report", "digits_quick", "--db", db, "--out", str(work / "report")],
    }
    before_env = None
    if args.before_tree:
        before_env = {**env, "PYTHONPATH": str(args.before_tree.resolve())}
    times: dict[str, list[float]] = {name: [] for name in commands}
    before: dict[str, list[float]] = {name: [] for name in commands}
    for round_number in range(args.rounds):
        for name, command in commands.items():
            # Alternate which tree goes first, so neither always runs on the warmer cache.
            runs = [(times, env)] + ([(before, before_env)] if before_env and name != "python -c pass" else [])
            for into, run_env in runs if round_number % 2 == 0 else runs[::-1]:
                into[name].append(_timed(command, work, run_env))
        print(f"round {round_number + 1}/{args.rounds} done", flush=True)

    modules = {name: _modules(command, work, env) for name, command in commands.items()}
    bare = statistics.median(times["python -c pass"])
    targets = {
        "ablate --help": 1.0, "ablate sql": 0.5, "ablate status": 0.5, "ablate ls": 0.5, "ablate report": 2.5,
    }
    lines = [
        "# Start-up time (bench/startup.py)",
        "",
        f"`{' '.join(['.venv/bin/python', 'bench/startup.py', *sys.argv[1:]])}` on "
        f"{platform.node()} ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end), "
        f"Python {platform.python_version()}; {args.rounds} interleaved rounds, each command a fresh "
        "process; medians.",
        "",
    ]
    if before_env is None:
        lines += [
            "| command | median (s) | over `python -c pass` (s) | ratio | target | met | modules imported |",
            "| --- | ---: | ---: | ---: | --- | --- | ---: |",
        ]
    else:
        before_modules = {name: _modules(command, work, before_env) for name, command in commands.items()}
        lines += [
            f"Before: `PYTHONPATH={args.before_tree}`; after: `PYTHONPATH={ROOT}`.",
            "",
            "| command | before: median (s) | before: over bare (s) | after: median (s) | after: over bare (s) "
            "| ratio to bare, before -> after | target | met (after) | modules, before -> after |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |",
        ]
    for name, values in times.items():
        median = statistics.median(values)
        target = next((t for prefix, t in targets.items() if name.startswith(prefix)), None)
        over = median - bare
        met = "" if target is None else ("yes" if over <= target else "no")
        target_text = "" if target is None else f"<= +{target} s"
        if before_env is None:
            lines.append(
                f"| `{name}` | {median:.2f} | {over:+.2f} | {median / bare:.1f}x | {target_text} | {met} "
                f"| {modules[name]} |"
            )
            continue
        old = statistics.median(before[name]) if before[name] else median
        lines.append(
            f"| `{name}` | {old:.2f} | {old - bare:+.2f} | {median:.2f} | {over:+.2f} "
            f"| {old / bare:.1f}x -> {median / bare:.1f}x | {target_text} | {met} "
            f"| {before_modules[name]} -> {modules[name]} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
