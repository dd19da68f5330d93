"""Speed of HF-Seg and HF-Reg at the paper's sizes (Guerrero Pena et al. 2019, Table III).

    python benchmarks/hourglass_speed.py [--sizes 520,260,130] [--repeats 5] [--device cpu|cuda|all]

For each size and network: the bare network forward on one 6-channel pair (``net``), and the whole
method (``mfif.fuse``: numpy in, FusionResult out, including the Near step for hf-reg+near).
Median seconds of ``repeats`` runs after one warm-up, in this process. The paper's Table III
reports ~2.3 ms (HF-Reg) and ~2.6 ms (HF-Seg) at 520x520 on a GTX 1070 for *its* network width;
ours is the narrow CPU network of ``mfif.models.hourglass.network`` (shipped weights when present, else
random weights: the speed does not depend on the values). Run it alone: with another busy process
on a 2-core machine, 2 torch threads stall at every parallel region (~1 s per call whatever the
size); ``--threads 1`` is then the fairer number.
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

import torch  # noqa: E402

import mfif  # noqa: E402
from mfif.models.hourglass.network import build_hourglass, count_parameters, default_weights_path  # noqa: E402


def _median_time(fn, repeats: int, sync=lambda: None) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="520,260,130")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="all", choices=("cpu", "cuda", "all"))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, "
          f"CUDA {'yes: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}")
    rows = []
    for variant in ("seg", "reg"):
        shipped = default_weights_path(variant).is_file()
        net_cpu = build_hourglass(variant, pretrained=shipped).eval()
        print(f"hf-{variant}: {count_parameters(net_cpu) / 1e6:.2f} M parameters, "
              f"{'shipped' if shipped else 'random'} weights")
        for device in devices:
            net = net_cpu.to(device)
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
            for size in sizes:
                x = torch.rand(1, 6, size, size, device=device)
                with torch.inference_mode():
                    t_net = _median_time(lambda: net(x), args.repeats, sync)
                stack = np.random.default_rng(0).random((2, 3, size, size), dtype=np.float32)
                init = "pretrained" if shipped else "random"
                method_runs = [(f"hf-{variant}", {})] + ([("hf-reg", {"near": True})] if variant == "reg" else [])
                for name, extra in method_runs:
                    t_method = _median_time(lambda: mfif.fuse(stack, method=name, device=device, init=init, **extra),
                                            args.repeats)
                    label = name + ("+near" if extra.get("near") else "")
                    rows.append((label, device, size, t_net, t_method))
    print(f"\n{'method':<12} {'device':<6} {'size':>9} {'net s':>9} {'method s':>9}")
    for label, device, size, t_net, t_method in rows:
        print(f"{label:<12} {device:<6} {f'{size}x{size}':>9} {t_net:9.4f} {t_method:9.4f}")


if __name__ == "__main__":
    main()
