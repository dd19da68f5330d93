"""Speed of the Liu et al. 2017 CNN fusion (``cnn`` and ``cnn-slight``) on one 520x520 pair.

Prints, per variant: seconds per pair (network part = dense score map, serial part = focus map,
small-region removal, guided filter, blend), the convolution FLOPs per pair, the achieved GFLOP/s
of the network part, and this machine's fp32 matrix-multiply throughput (``torch.mm`` on 4096x4096
matrices, measured in the same process just before) as the practical limit. The paper (GTX TITAN
Black GPU, Caffe): 0.78 s (original) and 0.33 s (slight) per 520x520 pair, Table 6.

Run (heavy: take the shared lock): ``flock /tmp/mfif-heavy.lock python benchmarks/liu_cnn_speed.py``
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from mfif.models.device import matmul_gflops


def bench_variant(variant: str, size: int, repeats: int) -> dict:
    from mfif.models.liu_cnn.pipeline import LiuCNNOptions, liu_cnn_fusion, load_network, pair_score_map
    from mfif.models.liu_cnn.network import default_weights_path, flops_per_pair

    init = "pretrained" if default_weights_path(variant).is_file() else "random"
    opts = LiuCNNOptions(variant=variant, init=init, device="cpu")
    net = load_network(opts)
    rng = np.random.default_rng(0)
    import cv2

    base = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 1.0)
    a = base.copy()
    b = cv2.GaussianBlur(base, (0, 0), 2.0)
    a[:, size // 2:] = b[:, size // 2:]
    b[:, size // 2:] = base[:, size // 2:]
    stack = np.stack([a, b])[:, None]
    pair_score_map(net, a, b)  # warm-up (oneDNN primitive creation)
    net_times, total_times = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        pair_score_map(net, a, b)
        net_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        liu_cnn_fusion(stack, opts)
        total_times.append(time.perf_counter() - t)
    flops = flops_per_pair(variant, size, size)
    t_net, t_total = min(net_times), min(total_times)
    return {"variant": variant, "weights": init, "seconds_per_pair": t_total, "seconds_network": t_net,
            "seconds_serial": max(t_total - t_net, 0.0), "median_seconds_per_pair": statistics.median(total_times),
            "gflop_per_pair": flops["total"] / 1e9, "gflops_network": flops["total"] / t_net / 1e9,
            "flops_by_layer": {k: v / 1e9 for k, v in flops.items() if k != "total"}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=520)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--variants", nargs="+", default=["slight", "original"])
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    mm_before = matmul_gflops()
    rows = [bench_variant(v, args.size, args.repeats) for v in args.variants]
    mm_after = matmul_gflops()
    mm = max(mm_before, mm_after)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; fp32 torch.mm 4096^2: {mm:.1f} GFLOP/s "
          f"(before {mm_before:.1f}, after {mm_after:.1f})")
    print(f"{'variant':<9} {'s/pair':>7} {'median':>7} {'network':>8} {'serial':>7} {'GFLOP/pair':>11} "
          f"{'GFLOP/s':>8} {'% of mm':>8}  paper (GPU)")
    paper = {"original": 0.78, "slight": 0.33}
    for r in rows:
        r["percent_of_matmul"] = 100.0 * r["gflops_network"] / mm
        print(f"{r['variant']:<9} {r['seconds_per_pair']:7.2f} {r['median_seconds_per_pair']:7.2f} "
              f"{r['seconds_network']:8.2f} {r['seconds_serial']:7.2f} {r['gflop_per_pair']:11.1f} "
              f"{r['gflops_network']:8.1f} {r['percent_of_matmul']:7.0f}%  {paper[r['variant']]:.2f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"matmul_gflops": mm, "size": args.size, "threads": torch.get_num_threads(), "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
