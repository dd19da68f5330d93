"""Time every fusion method on a 520x520 colour pair; print seconds and the ratio to `average`.

    python benchmarks/speed.py [--repeats 5] [--methods gff,sml] [--size 520]

The pair is the refmetrics t1 case (../shared) when present, otherwise a synthetic textured pair.
Median of ``repeats`` runs after one warm-up run, all in this process.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mfif  # noqa: E402
from mfif.methods import METHODS  # noqa: E402


def load_pair(size: int):
    shared = ROOT.parent / "shared" / "refmetrics" / "cases" / "t1_china520_lr_s2"
    if shared.is_dir() and size == 520:
        from mfif.io import read_image

        return [read_image(shared / "A.png"), read_image(shared / "B.png")], "refmetrics t1 (520x520 RGB)"
    from tests.helpers import complementary_pair, textured_image

    gt = textured_image(size, size, 3, seed=0)
    a, b, _ = complementary_pair(gt)
    return [a, b], f"synthetic texture ({size}x{size} RGB)"


def time_method(name: str, pair, repeats: int) -> float:
    mfif.fuse(pair, method=name)  # warm-up (imports, weight loading)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mfif.fuse(pair, method=name)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=520)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    pair, label = load_pair(args.size)
    import torch

    print(f"pair: {label}; median of {args.repeats} runs after warm-up; torch threads {torch.get_num_threads()}")
    base = time_method("average", pair, args.repeats)
    print(f"{'method':<12} {'seconds':>9} {'x average':>10}")
    for name in args.methods.split(","):
        try:
            t = base if name == "average" else time_method(name, pair, args.repeats)
        except mfif.MfifError as exc:
            print(f"{name:<12} {'skipped':>9}  ({exc})")
            continue
        print(f"{name:<12} {t:9.4f} {t / base:10.1f}")


if __name__ == "__main__":
    main()
