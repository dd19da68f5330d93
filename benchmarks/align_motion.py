"""Motion that alignment finds on the dev set's stacks (issue #16: invented motion on registered stacks).

For each item: the largest corner displacement of every neighbour step, and of every frame's
matrix against the truth (identity for the registered layered stacks and sweeps without
breathing; for sweeps with focus breathing, the scale about the centre listed in
``index_sweeps.csv``), in pixels, plus the alignment time (machine shared: an upper bound).

    python benchmarks/align_motion.py scratch/devset [stacks8/stack8_00 sweeps/sweep_01 ...]
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from mfif.align import AlignOptions, estimate_alignment
from mfif.io import read_image

DEFAULT_ITEMS = ([f"stacks8/stack8_0{i}" for i in range(3)] + [f"stacks/stack_0{i}" for i in range(4)]
                 + [f"sweeps/sweep_0{i}" for i in range(6)])


def corner_displacement(m: np.ndarray, n: np.ndarray, w: int, h: int) -> float:
    c = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float).T
    a, b = m @ c, n @ c
    return float(np.sqrt(((a[:2] / a[2] - b[:2] / b[2]) ** 2).sum(0)).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("devset")
    ap.add_argument("items", nargs="*", default=DEFAULT_ITEMS)
    ap.add_argument("--model", default="affine")
    args = ap.parse_args()
    dev = Path(args.devset)
    index = dev / "index_sweeps.csv"
    infos = {r["name"]: json.loads(r["info"]) for r in csv.DictReader(open(index))} if index.exists() else {}
    for name in args.items:
        d = dev / name
        frames = [read_image(p) for p in sorted(d.glob("*.png")) if p.name != "GT.png"]
        h, w = frames[0].shape[-2:]
        t0 = time.perf_counter()
        al = estimate_alignment(frames, AlignOptions(model=args.model))
        seconds = time.perf_counter() - t0
        steps = [corner_displacement(s.matrix, np.eye(3), w, h) for s in al.steps]
        scales = infos.get(d.name, {}).get("scales") or [1.0] * len(frames)
        c = np.array([(w - 1) / 2, (h - 1) / 2])
        errors = []
        for i, m in enumerate(al.matrices):
            s = scales[i] / scales[al.reference]
            truth = np.eye(3)
            truth[:2, :2] *= s
            truth[:2, 2] = c - s * c
            errors.append(corner_displacement(m, truth, w, h))
        print(f"{d.name:10s} steps max {max(steps):.2f} px [{' '.join(f'{v:.2f}' for v in steps)}] | "
              f"frames vs truth max {max(errors):.2f} px | {seconds:.2f} s", flush=True)


if __name__ == "__main__":
    main()
