"""IFCNN speed and memory.

1. A 520x520 colour pair (multi-focus mode), warm, best of ``--repeats``:
   - "authors-style": the released forward as the authors run it (NCHW, BatchNorm as a layer,
     the whole image in one pass, frames one after the other), in this process;
   - ours: :func:`mfif.models.ifcnn.pipeline.ifcnn_fusion` with the default options (fp32), and with
     ``precision="bf16"`` (its quality cost vs fp32, in grey levels, is printed too).
2. A 2048x2048 pair through ``ifcnn_fusion`` (tiled), each in a fresh subprocess: seconds and the
   subprocess's peak RSS (``ru_maxrss``). ``--untiled-2048`` also runs the authors-style forward at
   2048 (needs ~9 GB).
3. CUDA timings when a GPU is present.

Weights: the authors' ``IFCNN-MAX.pth`` when ``../shared`` is present, else random (speed does
not depend on the values). Run on a quiet machine: ``flock /tmp/mfif-heavy.lock python
benchmarks/ifcnn_speed.py``.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mfif.models.ifcnn.pipeline import IFCNNOptions, ifcnn_fusion  # noqa: E402
from mfif.models.ifcnn.network import IMAGENET_MEAN, IMAGENET_STD, build_ifcnn  # noqa: E402

AUTHORS = REPO.parent / "shared" / "reference" / "ifcnn" / "weights" / "IFCNN-MAX.pth"


def weights():
    return str(AUTHORS) if AUTHORS.is_file() else build_ifcnn("max").state_dict()


def test_pair(size: int, seed: int = 0) -> np.ndarray:
    """A textured colour pair (2, 3, S, S) float32: smooth noise at several scales, the left half
    blurred in frame 0 and the right half in frame 1."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.float32)
    for cells in (8, 32, 128):
        small = rng.random((cells, cells, 3)).astype(np.float32)
        img += cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    img = (img - img.min()) / (img.max() - img.min())
    blur = cv2.GaussianBlur(img, (0, 0), 3.0)
    a, b = img.copy(), img.copy()
    a[:, : size // 2] = blur[:, : size // 2]
    b[:, size // 2:] = blur[:, size // 2:]
    return np.stack([np.moveaxis(a, -1, 0), np.moveaxis(b, -1, 0)]).astype(np.float32)


def authors_style(net, stack: np.ndarray, device="cpu") -> np.ndarray:
    """The released forward: normalise, whole image, one frame at a time, max, de-normalise."""
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    with torch.no_grad():
        feats = [net.encode((torch.from_numpy(f)[None].to(device) - mean) / std) for f in stack]
        fused = feats[0]
        for f in feats[1:]:
            fused = torch.max(fused, f)
        out = (net.decode(fused) * std + mean).clamp(0, 1)
    return out[0].cpu().numpy()


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _child(size: int, precision: str, tile: int | None, untiled_authors: bool) -> None:
    stack = test_pair(size)
    t = time.perf_counter()
    if untiled_authors:
        net = build_ifcnn("max", weights()).eval()
        authors_style(net, stack)
    else:
        opts = IFCNNOptions(weights=weights(), device="cpu", precision=precision)
        if tile is not None:
            opts.tile = tile
        ifcnn_fusion(stack, opts)
    seconds = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"seconds": seconds, "peak_rss_gb": peak_gb}))


def in_subprocess(size: int, precision="fp32", tile=None, untiled_authors=False) -> dict:
    cmd = [sys.executable, __file__, "--child", str(size), "--precision", precision]
    if tile is not None:
        cmd += ["--tile", str(tile)]
    if untiled_authors:
        cmd.append("--untiled-authors")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="IFCNN speed and memory")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--untiled-2048", action="store_true", help="also time the authors-style forward at 2048 (~9 GB)")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--tile", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--untiled-authors", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.child:
        _child(args.child, args.precision, args.tile, args.untiled_authors)
        return 0

    res: dict = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    stack = test_pair(520)
    net = build_ifcnn("max", weights()).eval()
    w = weights()
    fp32 = IFCNNOptions(weights=w, device="cpu")
    bf16 = IFCNNOptions(weights=w, device="cpu", precision="bf16")
    chain = IFCNNOptions(weights=w, device="cpu", fast=False)
    ref = authors_style(net, stack)
    ours = ifcnn_fusion(stack, fp32).fused
    low = ifcnn_fusion(stack, bf16).fused
    res["520_authors_style_s"] = best_of(lambda: authors_style(net, stack), args.repeats)
    res["520_ours_fp32_s"] = best_of(lambda: ifcnn_fusion(stack, fp32), args.repeats)
    res["520_ours_bf16_s"] = best_of(lambda: ifcnn_fusion(stack, bf16), args.repeats)
    res["520_ours_released_chain_s"] = best_of(lambda: ifcnn_fusion(stack, chain), args.repeats)
    res["520_fp32_vs_authors_max_abs_grey_levels"] = float(np.abs(ours - ref).max() * 255)
    res["520_bf16_vs_fp32_mean_abs_grey_levels"] = float(np.abs(low - ours).mean() * 255)
    res["520_bf16_vs_fp32_max_abs_grey_levels"] = float(np.abs(low - ours).max() * 255)
    print(f"520x520 pair, CPU, {torch.get_num_threads()} threads (best of {args.repeats}, warm):")
    print(f"  authors-style forward      {res['520_authors_style_s']:.3f} s")
    print(f"  ours fp32                  {res['520_ours_fp32_s']:.3f} s  "
          f"(x{res['520_authors_style_s'] / res['520_ours_fp32_s']:.2f}; max |diff| vs authors-style "
          f"{res['520_fp32_vs_authors_max_abs_grey_levels']:.3f} grey levels)")
    print(f"  ours fp32, released chain  {res['520_ours_released_chain_s']:.3f} s  (fast=False: tiling only, no merged conv)")
    print(f"  ours bf16                  {res['520_ours_bf16_s']:.3f} s  "
          f"(x{res['520_authors_style_s'] / res['520_ours_bf16_s']:.2f}; vs fp32 mean |diff| "
          f"{res['520_bf16_vs_fp32_mean_abs_grey_levels']:.3f}, max {res['520_bf16_vs_fp32_max_abs_grey_levels']:.1f} grey levels)")
    big = in_subprocess(2048)
    res["2048_ours_fp32"] = big
    print(f"2048x2048 pair, ours fp32 tiled (fresh process): {big['seconds']:.2f} s, peak RSS {big['peak_rss_gb']:.2f} GB")
    big16 = in_subprocess(2048, precision="bf16")
    res["2048_ours_bf16"] = big16
    print(f"2048x2048 pair, ours bf16 tiled (fresh process): {big16['seconds']:.2f} s, peak RSS {big16['peak_rss_gb']:.2f} GB")
    if args.untiled_2048:
        ua = in_subprocess(2048, untiled_authors=True)
        res["2048_authors_style_untiled"] = ua
        print(f"2048x2048 pair, authors-style untiled: {ua['seconds']:.2f} s, peak RSS {ua['peak_rss_gb']:.2f} GB")
    if torch.cuda.is_available():
        gnet = build_ifcnn("max", w).eval().cuda()
        gopt = IFCNNOptions(weights=w, device="cuda")

        def sync(fn):
            def run():
                fn()
                torch.cuda.synchronize()
            return run

        res["520_cuda_authors_style_s"] = best_of(sync(lambda: authors_style(gnet, stack, "cuda")), args.repeats)
        res["520_cuda_ours_s"] = best_of(sync(lambda: ifcnn_fusion(stack, gopt)), args.repeats)
        big_stack = test_pair(2048)
        res["2048_cuda_ours_s"] = best_of(sync(lambda: ifcnn_fusion(big_stack, gopt)), 2)
        print(f"CUDA ({torch.cuda.get_device_name()}): 520 authors-style {res['520_cuda_authors_style_s']:.4f} s, "
              f"ours {res['520_cuda_ours_s']:.4f} s; 2048 ours {res['2048_cuda_ours_s']:.3f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
