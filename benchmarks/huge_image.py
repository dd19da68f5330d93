"""A 24 MP pair (6000x4000 RGB) fused within 3 GB: time and peak RSS of ``mfif fuse --tile``.

    python benchmarks/huge_image.py [--methods gff] [--tile 1024] [--size 6000x4000] [--frames 2]

The frames (frame i sharp in vertical band i, blurred elsewhere; synthetic texture, JPEG quality
95) are written by a separate process; with more than two frames the command aligns them and
merges with the running reduction (per-frame filters tile by tile); each fusion runs the command line (``python -m mfif.cli fuse A B -o out.jpg
--tile T -m M``) in a fresh subprocess, whose peak RSS is read from ``ru_maxrss`` of the children.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MAKE = r"""
import sys, cv2, numpy as np
width, height, out = {width}, {height}, {out!r}
rng = np.random.default_rng(0)
img = np.zeros((height, width, 3), np.float32)
for scale, weight in ((1.0, 0.35), (3.0, 0.35), (9.0, 0.3)):
    noise = rng.random((height, width, 3), dtype=np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), scale)
    noise -= noise.min(); noise /= noise.max()
    img += weight * noise
    del noise
img -= img.min(); img /= img.max()
blur = cv2.GaussianBlur(img, (0, 0), 2.5)
n = {frames}
for i in range(n):
    x = blur.copy()
    x0, x1 = i * width // n, (i + 1) * width // n
    x[:, x0:x1] = img[:, x0:x1]
    cv2.imwrite(out + "/frame_%03d.jpg" % i, np.round(x[..., ::-1] * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])
    del x
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="gff")
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--size", default="6000x4000")
    parser.add_argument("--frames", type=int, default=2, help="frames (default a pair; more: aligned + running reduction)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="mfif-huge-") as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", MAKE.format(width=width, height=height, out=tmp, frames=args.frames)],
                       check=True)
        print(f"{args.frames} frames: {width}x{height} RGB JPEG ({width * height / 1e6:.0f} MP), made in "
              f"{time.perf_counter() - t0:.0f} s; frame i sharp in vertical band i")
        print(f"{'method':<10} {'tile':>5} {'seconds':>8} {'peak RSS MB':>12}  status")
        for method in args.methods.split(","):
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            cmd = [sys.executable, "-c",
                   f"import sys, resource; sys.path.insert(0, {str(ROOT)!r}); from mfif.cli import main; rc = main(sys.argv[1:]); "
                   "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)",
                   "fuse", *[f"{tmp}/frame_{i:03d}.jpg" for i in range(args.frames)], "-o", f"{tmp}/out_{method}.jpg", "-m", method,
                   "--tile", str(args.tile), "-q"]
            t0 = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            rss = [int(l.split()[1]) for l in out.stdout.splitlines() if l.startswith("RSS ")]
            rss_mb = rss[0] / 1024 if rss else float("nan")
            status = "ok" if out.returncode == 0 else out.stderr.strip().splitlines()[-1]
            verdict = "within 3 GB" if rss_mb <= 3072 else "OVER 3 GB"
            print(f"{method:<10} {args.tile:>5} {seconds:>8.1f} {rss_mb:>12.0f}  {status}, {verdict}", flush=True)
            del before


if __name__ == "__main__":
    main()
