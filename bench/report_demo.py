"""Warm report time of a small study (the demo), this tree against another one, in one run.

Each tree reports its own database of the same study (a database written by a newer schema is
refused by an older ablate) in its own process: ``build_report`` once cold (imports), then
``--repeats`` warm runs, the two processes alternating round by round (A B A B) so that machine
load hits both alike. Prints the medians and their ratio, and stops if the two trees did not
write the same figures (a prediction artifact not found would make one tree look faster).

Artifact paths in the database are relative to where ``ablate run`` ran: ``--cwd`` (default: each
tree's own folder) is where the reports run.

    .venv/bin/python bench/report_demo.py --db /tmp/new.db --before-tree /tmp/before --before-db /tmp/old.db
    .venv/bin/python bench/report_demo.py --db /tmp/demo.db --before-tree /work/main --before-db /tmp/demo.db --cwd /tmp
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, pathlib, sys, tempfile, time
t0 = time.perf_counter()
from ablate.report import build_report
study, db, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
with tempfile.TemporaryDirectory() as out:
    build_report(study, db=db, out=out)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        a = time.perf_counter()
        build_report(study, db=db, out=out)
        warm.append(time.perf_counter() - a)
    figures = sorted(p.name for p in pathlib.Path(out).glob("*.png"))
print(json.dumps({"cold": cold, "warm": warm, "figures": figures}))
"""


def run(tree: Path, db: str, study: str, repeats: int, cwd: Path | None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, study, db, str(repeats)], env=env, cwd=cwd or tree,
                         capture_output=True, text=True, check=True)
    return cast(dict[str, Any], json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="digits_quick")
    parser.add_argument("--db", required=True, help="this tree's database of the study")
    parser.add_argument("--before-tree", type=Path, required=True)
    parser.add_argument("--before-db", required=True)
    parser.add_argument("--repeats", type=int, default=3, help="warm reports per process")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cwd", type=Path, help="where the reports run (artifact paths are relative to it)")
    args = parser.parse_args()
    figures: dict[str, list[str]] = {}
    results: dict[str, dict[str, list[float]]] = {"before": {"cold": [], "warm": []}, "after": {"cold": [], "warm": []}}
    for _ in range(args.rounds):
        for name, tree, db in (("before", args.before_tree, args.before_db), ("after", ROOT, args.db)):
            r = run(tree, db, args.study, args.repeats, args.cwd)
            results[name]["cold"].append(float(r["cold"]))
            results[name]["warm"] += [float(t) for t in r["warm"]]
            figures[name] = r["figures"]
    if figures["before"] != figures["after"]:
        sys.exit(f"the trees wrote different figures: {figures['before']} vs {figures['after']}")
    med = {k: {m: statistics.median(v[m]) for m in v} for k, v in results.items()}
    print(f"study {args.study}: {args.rounds} rounds x {args.repeats} warm reports per tree, {len(figures['after'])} "
          f"figures each, load {os.getloadavg()[0]:.1f}")
    for name in ("before", "after"):
        warm = results[name]["warm"]
        print(f"  {name:6}  warm median {med[name]['warm']:.2f} s (min {min(warm):.2f}, max {max(warm):.2f}), "
              f"cold median {med[name]['cold']:.2f} s")
    print(f"  after / before, warm: {med['after']['warm'] / med['before']['warm']:.2f}x")


if __name__ == "__main__":
    main()
