"""Speed of the boundary-aware fusion (``ba``) on one 520x520 pair (issue 7: aim <= 5 s on CPU).

Prints seconds per pair for the whole method (grey conversion, initial score map, boundary mask,
refinement, binarisation, small-region removal, blend) as shipped (``symmetric=True``: both input
orders), as the paper (one order) and without refinement, and the split of one order into the
initial net's dense pass and the boundary net's tiled pass; plus the share of pixels that went to the boundary net, the convolution MACs per pixel and
the achieved GFLOP/s of the dense pass. The pair is synthetic: a textured image, sharp inside a
disk in A and outside it in B (Gaussian sigma 2.5), so the boundary band is realistic.

Uses the shipped weights when present (random ones otherwise: the boundary share is then
meaningless). The paper gives no timing.

Run (heavy: take the shared lock): ``flock /tmp/mfif-heavy.lock python benchmarks/ba_speed.py``
    [--size 520] [--repeats 3] [--device cpu|cuda] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def test_pair(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size), np.float32)
    for s, w in ((1.0, 0.4), (3.0, 0.3), (8.0, 0.3)):
        n = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), s)
        img += w * (n - n.min()) / (n.max() - n.min() + 1e-12)
    yy, xx = np.mgrid[:size, :size]
    disk = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    blurred = cv2.GaussianBlur(img, (0, 0), 2.5)
    a = np.where(disk, img, blurred)
    b = np.where(disk, blurred, img)
    return np.stack([a, b])[:, None].astype(np.float32)


def main() -> int:
    from mfif.models.ba.pipeline import BAOptions, ba_fusion, boundary_mask, load_network, pixel_scores, refine_scores
    from mfif.models.ba.network import default_weights_path, macs_per_pixel

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=520)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    shipped = default_weights_path("initial").is_file() and default_weights_path("boundary").is_file()
    init = "pretrained" if shipped else "random"
    stack = test_pair(args.size)
    grey = stack[:, 0]
    o = BAOptions(init=init, device=args.device)
    net0 = load_network("initial", None, args.device, init)
    net1 = load_network("boundary", None, args.device, init)
    ba_fusion(stack, o)  # warm-up (oneDNN primitives / CUDA kernels)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def best(fn):
        times = []
        for _ in range(args.repeats):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t)
        return min(times), float(np.median(times))

    s0 = pixel_scores(net0, grey[0], grey[1])
    near = boundary_mask(s0, o.window, o.tau)
    rows = {
        "ba (default: symmetric)": best(lambda: ba_fusion(stack, o)),
        "ba (single pass, paper)": best(lambda: ba_fusion(stack, BAOptions(init=init, device=args.device,
                                                                           symmetric=False))),
        "ba (no refinement)": best(lambda: ba_fusion(stack, BAOptions(init=init, device=args.device, refine=False))),
        "initial net dense pass": best(lambda: pixel_scores(net0, grey[0], grey[1])),
        "boundary net tiles": best(lambda: refine_scores(net1, grey[0], grey[1], s0, near, tile=o.tile)),
    }
    macs = macs_per_pixel(net0.config)
    t_dense = rows["initial net dense pass"][0]
    padded = (args.size + 63) ** 2
    result = {
        "size": args.size, "device": args.device, "weights": init, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "torch": str(torch.__version__),
        "boundary_fraction": float(near.mean()), "macs_per_pixel": macs,
        "dense_gflops": 2 * macs * padded / t_dense / 1e9,
        "seconds": {k: {"best": v[0], "median": v[1]} for k, v in rows.items()},
    }
    print(f"BA speed, {args.size}x{args.size} pair, {args.device} ({result['threads']} threads), weights: {init}")
    for k, (b, m) in rows.items():
        print(f"  {k:24s} best {b:6.2f} s   median {m:6.2f} s")
    print(f"  near-boundary pixels: {100 * result['boundary_fraction']:.1f} %; dense pass {macs} MAC/pixel, "
          f"{result['dense_gflops']:.1f} GFLOP/s achieved")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
