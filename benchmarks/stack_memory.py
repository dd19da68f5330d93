"""Peak memory of fusing N = 2, 10, 50 frames: it must not grow with N (running reduction / batches).

    python benchmarks/stack_memory.py [--size 1200x900] [--methods gff,sml,laplacian] [--counts 2,10,50]

Synthetic stack: one textured image, frame i sharp in vertical band i (Gaussian blur elsewhere),
shifted by up to +-2 px and scaled by focus breathing (0.1 % per frame), saved as JPEG (quality 95).
Each (method, N) runs ``mfif.stacking.fuse_stack`` with alignment on, in a fresh subprocess that
reports its own peak RSS (``ru_maxrss``). Every N, a pair included, takes the running reduction by
default (``mfif.stacking.fuse_frames``); were a pair to take another path, the reduction alone
would also be measured for it (``stream=True``). A child that only imports mfif and reads one frame
gives the baseline. For comparison the table also shows the bytes of N frames held in memory as float32.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
paths = sorted(Path({folder!r}).glob("*.jpg"))[:{n}]
t0 = time.perf_counter()
if {method!r} == "baseline":
    from mfif.io import read_image
    import mfif.stacking, cv2, scipy.ndimage, pywt  # same imports as a real run
    read_image(paths[0])
    shape = None
else:
    from mfif.stacking import fuse_stack
    r = fuse_stack(paths, {method!r}, align=True, stream={stream!r})
    shape = list(r.result.fused.shape)
    merge = r.result.info.get("merge")
print(json.dumps({{"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": time.perf_counter() - t0,
                  "shape": shape, "merge": None if shape is None else merge}}))
"""


def make_stack(folder: Path, n: int, width: int, height: int) -> None:
    import cv2
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from tests.helpers import textured_image

    rng = np.random.default_rng(0)
    base = textured_image(height + 40, width + 40, 3, seed=0)
    base = np.moveaxis(base, 0, -1)
    blurred = cv2.GaussianBlur(base, (0, 0), 3.0)
    band = np.arange(width + 40) * n // (width + 40)
    for i in range(n):
        img = np.where((band == i)[None, :, None], base, blurred)
        s = 1 + 0.001 * (i - n // 2)
        t = rng.uniform(-2, 2, 2)
        c = np.array([(width + 39) / 2, (height + 39) / 2])
        m = np.array([[s, 0, c[0] - s * c[0] + t[0] - 20], [0, s, c[1] - s * c[1] + t[1] - 20]])
        # frame(y) = img(m^-1 ...): warp the sharp/blurred composite, then cut the frame
        frame = cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        cv2.imwrite(str(folder / f"frame_{i:03d}.jpg"), np.round(frame[..., ::-1] * 255).astype(np.uint8),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])


def run_child(folder: Path, method: str, n: int, stream: bool | None = None) -> dict:
    code = CHILD.format(root=str(ROOT), folder=str(folder), n=n, method=method, stream=stream)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "child failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1200x900")
    parser.add_argument("--methods", default="gff,sml,laplacian")
    parser.add_argument("--counts", default="2,10,50")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    counts = [int(c) for c in args.counts.split(",")]
    with tempfile.TemporaryDirectory(prefix="mfif-mem-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        make_stack(folder, max(counts), width, height)
        print(f"synthetic stack: {max(counts)} frames {width}x{height} RGB JPEG ({time.perf_counter() - t0:.0f} s to make)")
        base = run_child(folder, "baseline", 1)
        print(f"baseline (imports + one frame read): {base['rss_mb']:.0f} MB")
        frame_mb = width * height * 3 * 4 / 2**20
        print(f"{'method':<10} {'N':>4} {'peak RSS MB':>12} {'N frames f32 MB':>16} {'seconds':>8}  merge")
        for method in args.methods.split(","):
            default, streamed = [], []
            for n in counts:
                r = run_child(folder, method, n)
                default.append(r["rss_mb"])
                if r["merge"] == "running reduction":
                    streamed.append(r["rss_mb"])
                print(f"{method:<10} {n:>4} {r['rss_mb']:>12.0f} {n * frame_mb:>16.0f} {r['seconds']:>8.1f}  {r['merge']}",
                      flush=True)
                if n <= 2 and r["merge"] != "running reduction":  # also measure the reduction alone
                    r = run_child(folder, method, n, stream=True)
                    streamed.append(r["rss_mb"])
                    print(f"{method:<10} {n:>4} {r['rss_mb']:>12.0f} {n * frame_mb:>16.0f} {r['seconds']:>8.1f}  "
                          f"{r['merge']} (forced)", flush=True)

            def spread(rows):
                return (max(rows) - min(rows)) / min(rows) * 100

            print(f"{method:<10} spread of peak RSS over N: running reduction {spread(streamed):.1f} %, "
                  f"default path {spread(default):.1f} % (max/min: {max(default) / min(default):.2f}, "
                  f"N={counts[default.index(max(default))]} highest) (target <= 20 %)", flush=True)


if __name__ == "__main__":
    main()
