"""Time of the learned methods on stacks of N = 3, 5, 10, 20 frames (does it grow linearly in N?).

    python benchmarks/stack_learned_scaling.py [--size 256] [--methods cnn-slight,hf-seg,ba] [--out FILE]

Frames: one textured colour image, frame i sharp in vertical band i and Gaussian-blurred elsewhere
(seeded). Each (method, N) is one in-process call after a warm-up on 3 frames (network load);
the table gives seconds, seconds per frame, and the time relative to N = 3 scaled by N / 3 (1.0 =
exactly linear), and the process's peak resident memory so far (``ru_maxrss``: it only grows, so
a row's value is the largest of it and the rows above). Cores shared with other work: read the
ratios, not the seconds.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mfif.stacking import fuse_frames  # noqa: E402


def band_stack(n: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.random((size // 8, size // 8, 3)).astype(np.float32), (size, size),
                      interpolation=cv2.INTER_CUBIC)
    gt = np.clip(base + 0.25 * (rng.random((size, size, 3)).astype(np.float32) - 0.5), 0, 1)
    blurred = cv2.GaussianBlur(gt, (0, 0), 3.0)
    band = np.minimum(np.arange(size) * n // size, n - 1)
    frames = [np.where((band == i)[None, :, None], gt, blurred) for i in range(n)]
    return np.stack([np.moveaxis(f, -1, 0) for f in frames]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--methods", default="cnn-slight,hf-seg,ba")
    parser.add_argument("--counts", default="3,5,10,20")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    counts = [int(c) for c in args.counts.split(",")]
    lines = [f"learned methods, {args.size}x{args.size} colour frames, one call each (2 cores, shared)", "",
             "| method | N | s | s / frame | vs linear from N=3 | peak RSS so far (MB) |",
             "|---|---:|---:|---:|---:|---:|"]
    for method in args.methods.split(","):
        fuse_frames(band_stack(3, 64), method)  # load the network
        base = None
        for n in counts:
            stack = band_stack(n, args.size)
            t0 = time.perf_counter()
            res = fuse_frames(stack, method)
            s = time.perf_counter() - t0
            base = base if base is not None else s / n
            how = res.info.get("mode") or res.info.get("merge", "")
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            lines.append(f"| {method} ({how}) | {n} | {s:.1f} | {s / n:.2f} | {s / n / base:.2f} | {peak:.0f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
