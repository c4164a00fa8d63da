"""What ``check_trial_config`` costs per planned config, measured in one run.

The pipeline calls it for every planned config (not a de-duplicated subset), so repeated calls
must be cheap: a stage layout is built once per model shape (on the meta device) and looked up
after. 1,000 digits_quick-like configs of the small CNN (image size x augmentation x lr x blocks x
dropout x weight decay: 18 shapes) are checked twice: the first pass pays for the builds, the
second only for the look-ups. Also timed: importing timm and listing its names (what checking a
timm model name costs a process once).

    .venv/bin/python bench/trial_checks.py [--out bench/results/trial_checks.md]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from ablate.study import make_config
from ablate.train import check_trial_config

BASE = dict(
    dataset="digits", model="cnn", cnn_blocks=2, cnn_filters=16, cnn_dense=64, epochs=6, batch_size=64,
    lr=0.05, val_split=0.2, crop_padding=1, hflip=False,
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/trial_checks.md"))
    args = parser.parse_args()
    grid = itertools.product([4, 8, 16], ["none", "basic"], [0.01, 0.02, 0.05, 0.1, 0.2], [1, 2, 3],
                             [0.0, 0.3], [1e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2])
    configs = [
        make_config({**BASE, "image_size": s, "augment": a, "lr": lr, "cnn_blocks": b, "cnn_dropout": d,
                     "weight_decay": wd}, where="bench")
        for s, a, lr, b, d, wd in itertools.islice(grid, 1000)
    ]
    t = time.perf_counter()
    for config in configs:
        check_trial_config(config)
    first = time.perf_counter() - t
    t = time.perf_counter()
    for config in configs:
        check_trial_config(config)
    again = time.perf_counter() - t
    t = time.perf_counter()
    import timm

    imported = time.perf_counter() - t
    t = time.perf_counter()
    n = len(timm.list_models())
    listed = time.perf_counter() - t
    lines = [
        "# check_trial_config",
        "",
        f"- {len(configs)} CNN configs, first pass (builds per shape included): {first:.3f} s",
        f"- the same configs again (cached stage layouts): {again:.3f} s ({again / len(configs) * 1e6:.0f} us each)",
        f"- `import timm`: {imported:.2f} s; `timm.list_models()`: {listed * 1e3:.1f} ms ({n} names)",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
