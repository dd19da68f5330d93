"""Speed and memory benchmark of the fusion methods (``mfif bench``).

Each (method, size) runs in a fresh subprocess on a synthetic textured colour pair: one warm-up
run, then the median wall time of ``repeats`` runs, and the process's peak RSS (``ru_maxrss``)
next to its RSS before the first fusion (imports and inputs), so ``peak - base`` is what the
method itself needed. The whole ``mfif fuse`` command (process start, reading, fusing, writing)
is timed too, at the first size.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfif.io import write_bytes_atomic


@dataclass
class BenchRow:
    method: str
    size: int
    seconds: float | None
    peak_mb: float | None
    base_mb: float | None
    cli_seconds: float | None = None
    error: str = ""


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def synthetic_pair(size: int, seed: int = 0) -> list[np.ndarray]:
    """Two complementary-blurred RGB frames of a smoothed-noise texture, (3, size, size) each."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.random((max(8, size // 8), max(8, size // 8), 3)).astype(np.float32)
    gt = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    gt += 0.15 * rng.random((size, size, 3)).astype(np.float32)
    gt = np.clip((gt - gt.min()) / (gt.max() - gt.min()), 0, 1)
    blurred = cv2.GaussianBlur(gt, (0, 0), 2.0)
    mask = np.zeros((size, size, 1), bool)
    mask[:, : size // 2] = True
    a, b = np.where(mask, gt, blurred), np.where(mask, blurred, gt)
    return [np.ascontiguousarray(np.moveaxis(x, -1, 0)) for x in (a, b)]


def _worker(method: str, size: int, repeats: int, device: str) -> dict:
    import mfif
    from mfif.methods import get_method

    spec = get_method(method)
    _, opts = spec.load()
    import dataclasses

    options = {"device": device} if "device" in {f.name for f in dataclasses.fields(opts)} else {}
    pair = synthetic_pair(size)
    base = _rss_now_mb()
    mfif.fuse(pair, method=method, **options)
    times = []
    for _ in range(repeats):
        if device == "cuda":
            import torch

            torch.cuda.synchronize()
        t0 = time.perf_counter()
        mfif.fuse(pair, method=method, **options)
        if device == "cuda":
            import torch

            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"seconds": statistics.median(times), "peak_mb": peak, "base_mb": base}


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def run_one(method: str, size: int, repeats: int = 3, device: str = "cpu", timeout: float = 900,
            memory_budget_mb: float | None = None) -> BenchRow:
    """Run one (method, size) in a fresh subprocess. With ``memory_budget_mb`` the subprocess is
    watched and stopped as soon as its resident memory exceeds the budget (reported, not an error
    of the method)."""
    cmd = [sys.executable, "-m", "mfif.evaluation.bench", "--worker", method, str(size), str(repeats), device]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        t0 = time.perf_counter()
        peak_seen = 0.0
        while proc.poll() is None:
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                proc.wait()
                return BenchRow(method, size, None, None, None, error=f"timed out after {timeout:.0f} s")
            rss = _rss_mb(proc.pid) if memory_budget_mb is not None else None
            if rss is not None:
                peak_seen = max(peak_seen, rss)
                if rss > memory_budget_mb:
                    proc.kill()
                    proc.wait()
                    return BenchRow(method, size, None, None, None,
                                    error=f"over the {memory_budget_mb:.0f} MB budget (stopped at {rss:.0f} MB "
                                          f"after {time.perf_counter() - t0:.0f} s; use tiles: mfif fuse --tile)")
            time.sleep(0.05)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        last = (stderr.strip().splitlines() or ["failed"])[-1]
        return BenchRow(method, size, None, None, None, error=last[:200])
    data = json.loads(stdout.strip().splitlines()[-1])
    return BenchRow(method, size, data["seconds"], data["peak_mb"], data["base_mb"])


def time_cli(method: str, size: int) -> float | None:
    """Wall time of the whole ``mfif fuse`` process on a pair of PNGs of the given size."""
    from mfif.io import write_image

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, img in enumerate(synthetic_pair(size)):
            paths.append(write_image(Path(tmp) / f"f_{i}.png", img))
        cmd = [sys.executable, "-m", "mfif.cli", "fuse", *map(str, paths), "-o", str(Path(tmp) / "out.png"),
               "-m", method, "-q"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        return elapsed if proc.returncode == 0 else None


def benchmark(methods: list[str], sizes: list[int], *, repeats: int = 3, device: str = "cpu",
              cli: bool = True, progress: bool = True, memory_budget_mb: float | None = None) -> list[BenchRow]:
    """One row per (method, size). With ``memory_budget_mb``, a run whose resident memory exceeds
    the budget is stopped and reported (the larger sizes of that method are then not tried)."""
    from tqdm import tqdm

    rows = []
    for method in tqdm(methods, desc="bench", unit="method", disable=None if progress else True):
        over = None
        for size in sorted(sizes):
            if over is not None:
                rows.append(BenchRow(method, size, None, None, None,
                                     error=f"not run: size {over} was already over the {memory_budget_mb:.0f} MB budget"))
                continue
            row = run_one(method, size, repeats, device, memory_budget_mb=memory_budget_mb)
            if row.error.startswith("over the"):
                over = size
            if cli and size == min(sizes) and row.error == "":
                row.cli_seconds = time_cli(method, size)
            rows.append(row)
    return rows


def format_table(rows: list[BenchRow]) -> str:
    lines = [f"{'method':<12} {'size':>6} {'seconds':>9} {'peak MB':>8} {'base MB':>8} {'method MB':>9} {'CLI s':>7}"]
    for r in rows:
        if r.error:
            lines.append(f"{r.method:<12} {r.size:>6}  error: {r.error}")
            continue
        cli = f"{r.cli_seconds:7.2f}" if r.cli_seconds is not None else f"{'':>7}"
        lines.append(f"{r.method:<12} {r.size:>6} {r.seconds:9.4f} {r.peak_mb:8.0f} {r.base_mb:8.0f} "
                     f"{r.peak_mb - r.base_mb:9.0f} {cli}")
    return "\n".join(lines)


def write_outputs(rows: list[BenchRow], out_dir: Path) -> dict[str, Path]:
    from mfif.evaluation.plotting import pyplot

    plt = pyplot()

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "size", "pixels", "seconds", "peak_mb", "base_mb", "cli_seconds", "error"])
    for r in rows:
        w.writerow([r.method, r.size, r.size * r.size, r.seconds, r.peak_mb, r.base_mb, r.cli_seconds, r.error])
    write_bytes_atomic(out_dir / "bench.csv", buf.getvalue().encode())
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for method in dict.fromkeys(r.method for r in rows):
        pts = [(r.size * r.size, r.seconds) for r in rows if r.method == method and r.seconds]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=method)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("pixels per frame (pair)")
    ax.set_ylabel("seconds (median)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("fusion time vs image size")
    fig.tight_layout()
    img = io.BytesIO()
    fig.savefig(img, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(out_dir / "bench.png", img.getvalue())
    write_bytes_atomic(out_dir / "bench.txt", (format_table(rows) + "\n").encode())
    return {"csv": out_dir / "bench.csv", "plot": out_dir / "bench.png", "table": out_dir / "bench.txt"}


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        result = _worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        print(json.dumps(result))
    else:
        print("internal worker; use `mfif bench`", file=sys.stderr)
        sys.exit(2)
