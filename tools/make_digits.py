"""Write ablate/data/digits.npz from scikit-learn's digits (run once; the package then needs no sklearn).

The 8x8 images hold 0..16; they are stored scaled to 0..255 uint8 as (N, 8, 8, 1), the layout every
in-memory dataset of ablate uses, with the labels and class names.

    .venv/bin/python tools/make_digits.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits


def main() -> None:
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    out = Path(__file__).resolve().parents[1] / "ablate" / "data" / "digits.npz"
    np.savez_compressed(
        out, images=images, labels=labels, class_names=np.array([str(i) for i in range(10)])
    )
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(labels)} images)")


if __name__ == "__main__":
    main()
