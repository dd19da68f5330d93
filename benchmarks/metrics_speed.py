"""Time every metric in ``mfif.metrics.METRICS`` on one reference triple (default: the 520x520 t1 case).

The issue's budget: all two-source metrics on a 520x520 colour triple in <= 3 s total on 2 cores.
The t1 images are grey; ``--colour`` stacks them to 3 identical channels so the grey conversion
is timed too. Each metric runs ``--repeat`` times (the best time is kept) after one warm-up call
(the warm-up fills size-dependent caches, e.g. the phase-congruency filter bank; its time is
printed separately as "first call"). "cpu s" is the best process CPU time (all threads), a
fairer figure than wall time when other jobs share the cores.

Usage::

    python benchmarks/metrics_speed.py [--case t1_china520_lr_s2] [--colour] [--repeat 3] [KEY ...]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mfif.errors import MfifError
from mfif.metrics import METRICS

REPO = Path(__file__).resolve().parents[1]


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGB")
        return np.asarray(im, dtype=np.uint8)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keys", nargs="*", help="metric keys (default: all)")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--case", default="t1_china520_lr_s2")
    parser.add_argument("--fused", default="F_sharp")
    parser.add_argument("--colour", action="store_true", help="use 3-channel copies of the images")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    case = args.shared / "refmetrics" / "cases" / args.case
    if not case.is_dir():
        print(f"no reference case at {case}", file=sys.stderr)
        return 2
    a, b, f = (load(case / n) for n in ("A.png", "B.png", f"{args.fused}.png"))
    gt = load(case / "GT.png") if (case / "GT.png").exists() else None
    if args.colour:
        a, b, f = (np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x for x in (a, b, f))
        gt = np.repeat(gt[..., None], 3, axis=2) if gt is not None and gt.ndim == 2 else gt
    keys = args.keys or list(METRICS)

    print(f"case {args.case}/{args.fused}, size {f.shape}, best of {args.repeat}")
    print(f"{'metric':<18} {'first call s':>12} {'best s':>9} {'cpu s':>9}")
    total_two = total_all = total_first = total_cpu = total_two_cpu = 0.0
    for key in keys:
        metric = METRICS[key]
        if metric.needs_ground_truth and gt is None:
            continue
        kwargs = {"ground_truth": gt} if metric.needs_ground_truth else {}
        note = ""
        times, cpus = [], []
        for _ in range(args.repeat + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                metric.function([a, b], f, **kwargs)
            except MfifError as exc:  # a documented refusal (e.g. NaN in the reference) still costs time
                note = f"  (raised {type(exc).__name__})"
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        first, best, cpu = times[0], min(times), min(cpus)
        print(f"{key:<18} {first:12.4f} {best:9.4f} {cpu:9.4f}{note}")
        total_all += best
        total_first += first
        total_cpu += cpu
        if metric.n_sources != 0 and not metric.needs_ground_truth:
            total_two += best
            total_two_cpu += cpu
    print(f"{'total two-source':<18} {'':>12} {total_two:9.4f} {total_two_cpu:9.4f}")
    print(f"{'total all':<18} {total_first:12.4f} {total_all:9.4f} {total_cpu:9.4f}")
    print(f"load average (1 min) {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs: wall times are only "
          "meaningful on an idle machine; CPU times count all threads of this process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
