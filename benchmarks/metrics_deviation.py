"""Largest relative deviation of every metric in ``mfif.metrics.METRICS`` from the MATLAB reference.

Runs each metric on every reference case in ``shared/refmetrics/cases`` (each fused image
``F_*.png`` against its ``refmetrics_F_*.json``) and prints, per metric key, the largest
``|ours - ref| / max(|ref|, 1e-12)``, the case where it happens, and how many reference values
were null (the MATLAB code returned NaN/Inf) together with what ours returned there.

Usage::

    python benchmarks/metrics_deviation.py [KEY ...] [--shared PATH]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from mfif.metrics import METRICS

REPO = Path(__file__).resolve().parents[1]


def load(path: Path) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3), as stored."""
    with Image.open(path) as im:
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGB")
        return np.asarray(im, dtype=np.uint8)


def iter_cases(cases_dir: Path):
    """Yield (case name, fused name, A, B, F, GT or None, reference dict)."""
    for case in sorted(p for p in cases_dir.iterdir() if p.is_dir()):
        a, b = load(case / "A.png"), load(case / "B.png")
        gt = load(case / "GT.png") if (case / "GT.png").exists() else None
        for fpath in sorted(case.glob("F_*.png")):
            ref = json.loads((case / f"refmetrics_{fpath.stem}.json").read_text())
            yield case.name, fpath.stem, a, b, load(fpath), gt, ref


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keys", nargs="*", help="metric keys (default: all)")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = parser.parse_args(argv)
    cases_dir = args.shared / "refmetrics" / "cases"
    if not cases_dir.is_dir():
        print(f"no reference cases at {cases_dir}", file=sys.stderr)
        return 2
    keys = args.keys or list(METRICS)
    unknown = [k for k in keys if k not in METRICS]
    if unknown:
        print(f"unknown metric keys: {unknown}", file=sys.stderr)
        return 2

    worst: dict[str, tuple[float, str]] = {k: (-1.0, "") for k in keys}
    nulls: dict[str, list[str]] = {k: [] for k in keys}
    missing: dict[str, int] = {k: 0 for k in keys}
    errors: dict[str, list[str]] = {k: [] for k in keys}
    for case, fname, a, b, f, gt, ref in iter_cases(cases_dir):
        label = f"{case}/{fname}"
        for key in keys:
            metric = METRICS[key]
            if key not in ref:
                missing[key] += 1
                continue
            if metric.needs_ground_truth and gt is None:
                continue
            try:
                ours = float(metric.function([a, b], f, ground_truth=gt))
            except Exception as exc:  # report and carry on
                ours = None
                err = f"{label}: {type(exc).__name__}: {exc}"
            r = ref[key]
            if r is None:
                nulls[key].append(f"{label} -> {ours if ours is not None else err}")
                continue
            if ours is None:
                errors[key].append(err)
                continue
            dev = abs(ours - r) / max(abs(r), 1e-12) if math.isfinite(ours) else math.inf
            if dev >= worst[key][0]:
                worst[key] = (dev, label)

    print(f"{'metric':<18} {'max rel. dev':>13}  where")
    for key in keys:
        dev, where = worst[key]
        shown = f"{dev:13.3e}" if dev >= 0 else f"{'n/a':>13}"
        line = f"{key:<18} {shown}  {where}"
        if errors[key]:
            line += f"  ERRORS: {len(errors[key])} ({errors[key][0]})"
        if missing[key]:
            line += f"  (no reference in {missing[key]} files)"
        print(line)
        for n in nulls[key]:
            print(f"{'':<18} reference null: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
