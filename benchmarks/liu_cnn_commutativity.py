"""Commutativity of the Liu CNN methods: fused SSIM between f(A, B) and f(B, A) on liu-grayscale.

    python benchmarks/liu_cnn_commutativity.py

Rows: cnn-slight and cnn with the default (both orders scored) and with symmetric=False (the
paper's one-order pipeline). The issue asks for SSIM >= 0.9999 (the paper reports 0.99996).
"""
import glob
import time

import numpy as np

import mfif
from mfif.io import read_stack
from mfif.metrics import METRICS
ssim = METRICS["SSIM_GT"].function
names = sorted({p.rsplit("_", 1)[0] for p in glob.glob("../shared/data/mf-real/liu-grayscale/*_A.png")})
for method, sym, limit in [("cnn-slight", None, 10), ("cnn-slight", False, 10), ("cnn", None, 3), ("cnn", False, 3)]:
    vals, secs = [], []
    for n in names[:limit]:
        st = read_stack([n + "_A.png", n + "_B.png"]).images
        t = time.perf_counter(); f1 = mfif.fuse(st, method=method, symmetric=sym).fused; secs.append(time.perf_counter() - t)
        f2 = mfif.fuse(st[::-1].copy(), method=method, symmetric=sym).fused
        vals.append(ssim([st[0], st[1]], np.clip(f2, 0, 1), ground_truth=np.clip(f1, 0, 1)))
    print(f"{method} symmetric={sym}: pairs {len(vals)} SSIM(f(A,B), f(B,A)) min {min(vals):.6f} mean {np.mean(vals):.6f}; s/pair {np.mean(secs):.2f}", flush=True)
