"""Warm report time of a small study (the demo), this tree against another one, in one run.

Each tree reports its own database of the same study (a database written by a newer schema is
refused by an older ablate) in its own long-lived process: ``build_report`` once cold (imports
and all), then warm reports one at a time, the two processes taking turns (A B A B ...) so that a
burst of machine load hits a pair, not one side. Prints the medians, the median of the pairs'
ratios, and stops if the two trees did not write the same figures (a prediction artifact that
was not found would make one tree look faster).

Artifact paths in the database are relative to where ``ablate run`` ran: ``--cwd`` (default: each
tree's own folder) is where the reports run.

    .venv/bin/python bench/report_demo.py --db /tmp/new.db --before-tree /tmp/before --before-db /tmp/old.db
    .venv/bin/python bench/report_demo.py --db /tmp/demo.db --before-tree /tmp/main --before-db /tmp/demo.db --cwd /tmp
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# One report per line read from stdin; one JSON line per report on stdout.
CHILD = """
import json, pathlib, sys, tempfile, time
t0 = time.perf_counter()
from ablate.report import build_report
study, db = sys.argv[1], sys.argv[2]
with tempfile.TemporaryDirectory() as out:
    build_report(study, db=db, out=out)
    print(json.dumps({"cold": time.perf_counter() - t0,
                      "figures": sorted(p.name for p in pathlib.Path(out).glob("*.png"))}), flush=True)
    for _ in sys.stdin:
        a, c = time.perf_counter(), time.process_time()
        build_report(study, db=db, out=out)
        print(json.dumps({"warm": time.perf_counter() - a, "cpu": time.process_time() - c}), flush=True)
"""


class Tree:
    """A process reporting the study with one tree's code."""

    def __init__(self, tree: Path, db: str, study: str, cwd: Path | None) -> None:
        env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen([sys.executable, "-c", CHILD, study, db], env=env, cwd=cwd or tree,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        first = self._read()
        self.cold, self.figures = float(first["cold"]), list(first["figures"])

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            sys.exit(f"a report process failed (exit {self.process.wait()})")
        return dict(json.loads(line))

    def warm(self) -> tuple[float, float]:
        """One warm report: wall-clock and CPU seconds of this process."""
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        r = self._read()
        return float(r["warm"]), float(r["cpu"])

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="digits_quick")
    parser.add_argument("--db", required=True, help="this tree's database of the study")
    parser.add_argument("--before-tree", type=Path, required=True)
    parser.add_argument("--before-db", required=True)
    parser.add_argument("--pairs", type=int, default=12, help="warm reports per tree, taken in turns")
    parser.add_argument("--processes", type=int, default=2, help="fresh process pairs (each gives one cold time)")
    parser.add_argument("--cwd", type=Path, help="where the reports run (artifact paths are relative to it)")
    parser.add_argument("--new-figures", default="", help="comma-separated figures only this tree draws (seeds.png), "
                        "whose cost is part of what is measured")
    args = parser.parse_args()
    cold: dict[str, list[float]] = {"before": [], "after": []}
    warm: dict[str, list[float]] = {"before": [], "after": []}
    cpu: dict[str, list[float]] = {"before": [], "after": []}
    loads = []
    for p in range(args.processes):
        # Which tree starts alternates, so neither always gets the cold file cache.
        order = [("before", args.before_tree, args.before_db), ("after", ROOT, args.db)][:: 1 if p % 2 == 0 else -1]
        trees = {name: Tree(tree, db, args.study, args.cwd) for name, tree, db in order}
        new = {f.strip() for f in args.new_figures.split(",") if f.strip()}
        if trees["before"].figures != [f for f in trees["after"].figures if f not in new]:
            sys.exit(f"the trees wrote different figures: {trees['before'].figures} vs {trees['after'].figures}")
        for name, tree in trees.items():
            cold[name].append(tree.cold)
        for i in range(args.pairs // args.processes):
            for name in (("before", "after") if i % 2 == 0 else ("after", "before")):
                wall, used = trees[name].warm()
                warm[name].append(wall)
                cpu[name].append(used)
            loads.append(os.getloadavg()[0])
        for tree in trees.values():
            tree.close()
    ratios = [a / b for a, b in zip(warm["after"], warm["before"], strict=True)]
    figures = trees["after"].figures
    print(f"study {args.study}: {len(ratios)} pairs of warm reports in turns, {len(figures)} figures each, "
          f"1-min load {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
    for name in ("before", "after"):
        w = warm[name]
        print(f"  {name:6}  warm median {statistics.median(w):.2f} s (min {min(w):.2f}, max {max(w):.2f}), "
              f"CPU median {statistics.median(cpu[name]):.2f} s, cold median {statistics.median(cold[name]):.2f} s")
    print(f"  after / before, warm: {statistics.median(warm['after']) / statistics.median(warm['before']):.2f}x "
          f"(median of the pairs' ratios {statistics.median(ratios):.2f}x, "
          f"quartiles {statistics.quantiles(ratios, n=4)[0]:.2f}-{statistics.quantiles(ratios, n=4)[2]:.2f}); "
          f"CPU time {statistics.median(cpu['after']) / statistics.median(cpu['before']):.2f}x")


if __name__ == "__main__":
    main()
