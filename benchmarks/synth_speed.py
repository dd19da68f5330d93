"""Samples per second of each synthetic-data generator (one process, one OpenCV thread).

Usage::

    python benchmarks/synth_speed.py [--source ../shared/data/train] [--seconds 3]

Photos are decoded once first (the datasets cache them per process), so the numbers are the
steady state of a training run. Access is random (``shuffle=True``), except "BA (scene order)"
which uses :class:`mfif.synth.datasets.SceneShuffleSampler` so patches of one scene are drawn
together, as a training loop should. A DataLoader with W workers scales these by about W.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from mfif.synth.datasets import BAPatchDataset, LiuPatchDataset, PairDataset, SceneShuffleSampler
from mfif.synth.sources import PhotoSource


def _rate(ds, order, seconds: float) -> tuple[float, int]:
    n, t0 = 0, time.perf_counter()
    for i in order:
        ds[int(i)]
        n += 1
        if time.perf_counter() - t0 > seconds:
            break
    return n / (time.perf_counter() - t0), n


def main(argv=None) -> None:
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(here.parent / "shared" / "data" / "train"))
    ap.add_argument("--seconds", type=float, default=3.0, help="time per generator")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    src = PhotoSource.from_folder(args.source, cache_mb=2048)
    t0 = time.perf_counter()
    for i in range(len(src)):
        src.raw_image(i)
    warm = BAPatchDataset(src, seed=2)  # BA's scaled foregrounds are memoised too
    for g in range(len(warm.fg_pool)):
        warm.scene(g)
    print(f"{len(src)} photos from {args.source} decoded in {time.perf_counter() - t0:.1f} s")
    rng = np.random.default_rng(0)
    cases = [
        ("Liu 16x16 patch pairs", LiuPatchDataset(src, seed=0), None),
        ("BA 64x64x2 patches (random)", BAPatchDataset(src, seed=0), None),
        ("BA 64x64x2 patches (scene order)", BAPatchDataset(src, seed=1), "scene"),
        ("IFCNN pairs 224x224", PairDataset(src, "ifcnn", seed=0), None),
        ("Hourglass pairs 256x256", PairDataset(src, "hourglass", seed=0), None),
        ("layered pairs 256x256", PairDataset(src, "layered", seed=0), None),
        ("layered 3-frame stacks 256x256", PairDataset(src, "layered", frames=3, seed=0), None),
    ]
    print(f"{'generator':36s} {'samples/s':>10s} {'n':>6s}")
    for name, ds, mode in cases:
        order = iter(SceneShuffleSampler(ds, seed=0)) if mode == "scene" else rng.permutation(len(ds))
        rate, n = _rate(ds, order, args.seconds)
        print(f"{name:36s} {rate:10.1f} {n:6d}")


if __name__ == "__main__":
    main()
