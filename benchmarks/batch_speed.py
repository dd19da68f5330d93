"""`mfif batch` throughput: many small stacks, sequential in-process vs a 2-worker LocalCluster.

    python benchmarks/batch_speed.py [--stacks 200] [--size 160] [--methods sml,ifcnn-max]
                                     [-o benchmarks/results/batch/batch_speed.md]

The stacks are the 109 real pairs of ../shared/data/mf-real (liu-grayscale, mfifb, sesf-extra),
downscaled to ``--size`` pixels on the long side, one folder per pair, repeated (the repeats
mirrored left-right) up to ``--stacks``. Every run is a fresh ``mfif batch`` process on an empty
output folder:

- ``sequential``: ``--scheduler sequential`` (one stack after another in the command's process;
  what ``mfif fuse --batch`` does);
- ``2 workers``: ``--scheduler local --workers 2 --threads-per-worker 1``.

Reported per run, from the manifest: stacks/s over the batch itself (first task start to last task
end) and over the whole command (imports and, for Dask, starting the cluster), the mean task time,
each worker's peak resident memory (a process high-water mark) and its network loads. Ratios are
against the sequential run of the same method measured in this run.

``--real-stack`` (default on when ../shared is present) also fuses one real stack, the 7-frame
2048x1536 PCB focus series (../shared/data/mf-stacks/pcb), on one worker with one thread: the
per-core cost of a realistic stack that the README's million-stack arithmetic uses.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mfif.dataset_folders import discover  # noqa: E402
from mfif.io import read_image, write_image  # noqa: E402

DATASETS = ("liu-grayscale", "mfifb", "sesf-extra")
EXECUTORS = {"sequential": ["--scheduler", "sequential"],
             "2 workers": ["--scheduler", "local", "--workers", "2", "--threads-per-worker", "1"],
             "1 worker, 1 thread": ["--scheduler", "local", "--workers", "1", "--threads-per-worker", "1"]}
PCB = ROOT.parent / "shared" / "data" / "mf-stacks" / "pcb"


def make_stacks(target: Path, n_stacks: int, size: int) -> int:
    """Write ``n_stacks`` two-frame stack folders under ``target``; returns the number of pairs used."""
    import cv2

    shared = ROOT.parent / "shared" / "data" / "mf-real"
    pairs = [item for name in DATASETS for item in discover(shared / name).items if len(item.sources) == 2]
    if not pairs:
        raise SystemExit(f"no pairs found under {shared} (needs ../shared)")
    for k in range(n_stacks):
        item = pairs[k % len(pairs)]
        folder = target / f"{k:04d}_{item.name}"
        folder.mkdir(parents=True)
        for i, source in enumerate(item.sources):
            image = read_image(source)
            c, h, w = image.shape
            scale = size / max(h, w)
            hwc = cv2.resize(np.moveaxis(image, 0, -1), (max(1, round(w * scale)), max(1, round(h * scale))),
                             interpolation=cv2.INTER_AREA).reshape(round(h * scale), round(w * scale), c)
            frame = np.moveaxis(hwc, -1, 0)
            if (k // len(pairs)) % 2:
                frame = frame[:, :, ::-1]
            write_image(folder / f"f{i}.png", np.ascontiguousarray(frame), bit_depth=8)
    return len(pairs)


def run_one(stacks: Path, out: Path, method: str, executor: str) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mfif.cli", "batch", str(stacks), "-o", str(out), "-m", method,
                           "-q", *EXECUTORS[executor]], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    records = [json.loads(line) for line in open(out / "manifest.jsonl")]
    done = [r for r in records if r["status"] == "done"]
    if proc.returncode != 0 or len(done) != len(records):
        raise SystemExit(f"{method} / {executor} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    span = max(r["finished"] for r in done) - min(r["finished"] - r["seconds"] for r in done)
    workers: dict[str, dict] = {}
    for r in done:
        w = workers.setdefault(r["worker"], {"stacks": 0, "peak_mb": 0.0, "loads": 0})
        w["stacks"] += 1
        w["peak_mb"] = max(w["peak_mb"], r["peak_memory_mb"] or 0.0)
        w["loads"] += r["network_loads"]
    return {"method": method, "executor": executor, "stacks": len(done), "wall": wall, "span": span,
            "rate": len(done) / span, "rate_wall": len(done) / wall,
            "task_mean": statistics.mean(r["seconds"] for r in done), "workers": workers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=200)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--methods", default="sml,ifcnn-max")
    parser.add_argument("--real-stack", action=argparse.BooleanOptionalAction, default=PCB.is_dir())
    parser.add_argument("-o", "--output", default=str(ROOT / "benchmarks" / "results" / "batch" / "batch_speed.md"))
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mfif-batch-bench-"))
    try:
        n_pairs = make_stacks(scratch / "stacks", args.stacks, args.size)
        rows = []
        for method in args.methods.split(","):
            for executor in ("sequential", "2 workers"):
                row = run_one(scratch / "stacks", scratch / f"out-{method}-{executor.replace(' ', '')}", method, executor)
                rows.append(row)
                print(f"{method:10s} {executor:10s} {row['rate']:6.2f} stacks/s (batch), "
                      f"{row['rate_wall']:6.2f} stacks/s (command), task {row['task_mean']:.3f} s", flush=True)
        real = []
        if args.real_stack:
            (scratch / "real").mkdir()
            (scratch / "real" / "pcb").symlink_to(PCB, target_is_directory=True)
            for method in args.methods.split(","):
                row = run_one(scratch / "real", scratch / f"real-{method}", method, "1 worker, 1 thread")
                real.append(row)
                print(f"{method:10s} PCB stack on one core: {row['task_mean']:.2f} s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    lines = [f"# `mfif batch`: {args.stacks} stacks of 2 frames, long side {args.size} px",
             "",
             f"`python benchmarks/batch_speed.py --stacks {args.stacks} --size {args.size} --methods {args.methods}`, "
             f"run under `flock /tmp/mfif-heavy.lock` on {time.strftime('%Y-%m-%d')}.",
             "",
             f"Stacks: the {n_pairs} real pairs of `../shared/data/mf-real` ({', '.join(DATASETS)}) downscaled, "
             "repeats mirrored. **The machine has 2 CPU cores, shared at the time with other engineers' "
             "jobs**: absolute numbers are noisy and low; compare the ratios within a method.",
             "",
             "| method | executor | stacks/s (batch) | ratio | stacks/s (whole command) | ratio | mean task s "
             "| worker: stacks, peak MB, network loads |",
             "|---|---|---|---|---|---|---|---|"]
    base = {}
    for row in rows:
        base.setdefault(row["method"], row)
        b = base[row["method"]]
        per_worker = "; ".join(f"{w['stacks']}, {w['peak_mb']:.0f} MB, {w['loads']}" for w in row["workers"].values())
        lines.append(f"| {row['method']} | {row['executor']} | {row['rate']:.2f} | {row['rate'] / b['rate']:.2f} "
                     f"| {row['rate_wall']:.2f} | {row['rate_wall'] / b['rate_wall']:.2f} | {row['task_mean']:.3f} "
                     f"| {per_worker} |")
    lines += ["",
              "- *batch*: first task start to last task end (from the manifest); *whole command*: the `mfif "
              "batch` process from start to exit (Python imports, and for Dask starting and stopping the "
              "cluster, which dominates at this size).",
              "- *sequential* runs in the command's own process; torch may use both cores there, while each "
              "Dask worker is one process with one thread (Dask sets OMP_NUM_THREADS=1 in its workers).",
              "- Peak MB is the worker process's resident-memory high-water mark (`ru_maxrss`), "
              "network loads are `load_state_dict` calls counted in that process.",
              ""]
    if real:
        lines += ["## One real stack on one core",
                  "",
                  "The PCB focus series (`../shared/data/mf-stacks/pcb`: 7 JPEG frames, 2048x1536, aligned), "
                  "`mfif batch --scheduler local --workers 1 --threads-per-worker 1`:",
                  "",
                  "| method | task seconds (load, align, fuse, write) | worker peak MB | network loads |",
                  "|---|---|---|---|"]
        for row in real:
            w = next(iter(row["workers"].values()))
            lines.append(f"| {row['method']} | {row['task_mean']:.2f} | {w['peak_mb']:.0f} | {w['loads']} |")
        lines.append("")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
