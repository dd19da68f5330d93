"""Many stacks: one stack per subfolder of a folder, fused in this process or on a Dask cluster,
with a manifest that drives resume.

    discover -> (skip what the manifest proves done) -> one task per stack -> manifest + summary

- **discover** (:func:`discover_stacks`): every subfolder of ``STACKS_DIR`` holding images is one
  stack; it becomes ``OUT_DIR/<name>.<format>`` (plus ``<name>_map.png``, ``<name>_depth.png``,
  ``<name>_transforms.json`` when asked).
- **tasks** (:func:`fuse_stack_job`): a task carries paths, not pixels. The worker reads the frames,
  fuses them (the same per-stack code as ``mfif fuse``), writes every output atomically (a temporary
  file renamed into place) and returns one record. A learned method's network is loaded once per
  worker process and kept (the methods' own caches); ``network_loads`` in the record counts the loads
  (``torch.nn.Module.load_state_dict`` calls) a task caused. With ``tile`` unset, a stack too large
  for the worker's memory limit (per thread) runs in tiles (:func:`tile_for_memory`).
- **executors**: ``sequential`` (in this process, one stack after another: ``mfif fuse --batch``)
  or a ``dask.distributed`` client (``mfif batch --scheduler local|tcp://host:8786``): a
  LocalCluster on this machine or any existing scheduler (dask-jobqueue on SLURM/PBS, Kubernetes).
  A worker that dies (killed, out of memory) has its stacks rescheduled by Dask on the others.
- **manifest** (``OUT_DIR/manifest.jsonl``, JSON Lines, one record per finished stack, the last one
  for a stack counts): inputs (path, size, mtime, sha256), method, options, weights digests,
  version, outputs (with digests), seconds, peak memory, worker, status, error. A stack is skipped
  only when its record says ``done`` with the same key -- the sha256 of the inputs' names and
  content digests, the method, its options (all of them, defaults included), the shipped weights'
  digests and the output settings -- and every output it wrote is still there unchanged. Anything
  else is recomputed; an existing output file that is not, unchanged, what a record says mfif wrote
  (another program's file, or one edited since) is never overwritten: the stack is reported as
  failed (``overwrite=True`` replaces it).
- **receipts** (``OUT_DIR/.mfif-batch/<xx>/<name>.json``): the worker's own copy of a stack's record,
  written before (attempts) and after the work. A task whose result was lost with a dead worker is
  rescheduled by Dask; the new attempt finds the receipt and returns it instead of writing the
  stack twice. The receipts also list every attempt (worker, pid), so retries are visible.

The package version is recorded but is not part of the key (a new mfif version does not redo a
finished batch by itself; ``overwrite=True`` does).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from mfif.errors import InputError, MfifError

MANIFEST_NAME = "manifest.jsonl"
RECEIPTS_DIR = ".mfif-batch"
OUTPUT_FORMATS = ("png", "tif", "jpg")

# Working memory per pixel of one frame pair (method MB / megapixels at 1024-2048 px in
# benchmarks/results/bench/bench.txt, rounded up): classical <= 190 B, learned <= 680 B (hf-seg).
_BYTES_PER_PIXEL = {"classical": 200, "learned": 700}
_MIN_MEMORY_TILE = 256
_EXTRAS = ("save_map", "depth_map", "save_transforms")


@dataclass
class BatchSettings:
    """How every stack of a batch is fused and saved (small: it travels with each task).

    Attributes:
        method: method name (``mfif list``); ``options`` its options (``KEY=VALUE`` values).
        align: register the frames (None: on for more than two frames); ``align_model`` its model.
        tile: tile size in pixels (0: never; None: the automatic choice, which on a worker with a
            memory limit also tiles stacks too large for it, :func:`tile_for_memory`).
        batch_frames: frames fused at once by methods without a running reduction.
        bit_depth: output bits (None: as the input). ``format``: png, tif or jpg.
        save_map / depth_map / save_transforms: also write ``<name>_map.png`` /
            ``<name>_depth.png`` (+ ``_raw``) / ``<name>_transforms.json`` where the stack has them.
    """

    method: str = "gff"
    options: dict = field(default_factory=dict)
    align: bool | None = None
    align_model: str = "affine"
    tile: int | None = None
    batch_frames: int = 8
    bit_depth: int | None = None
    format: str = "png"
    save_map: bool = False
    depth_map: bool = False
    save_transforms: bool = False

    def check(self) -> None:
        """Refuse bad settings before any work (unknown method or option, bad sizes)."""
        from mfif.methods import get_method

        get_method(self.method).make_options(**self.options)
        if self.tile is not None and self.tile != 0 and self.tile < 16:
            raise InputError(f"--tile must be 0 (off) or at least 16 pixels, got {self.tile}")
        if self.batch_frames < 2:
            raise InputError(f"--batch-frames must be at least 2, got {self.batch_frames}")
        if self.format not in OUTPUT_FORMATS:
            raise InputError(f"output format must be one of {', '.join(OUTPUT_FORMATS)}, got '{self.format}'")

    def output_settings(self) -> dict:
        """The settings besides the method options that change the fused image (part of the key)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("method", "options", *_EXTRAS)}

    def extras(self) -> dict:
        """Which further files are asked for (a record that wrote them serves a run asking for fewer)."""
        return {k: getattr(self, k) for k in _EXTRAS}


@dataclass(frozen=True)
class StackJob:
    """One stack: its name, its frames (paths, in fusion order) and the output folder."""

    name: str
    inputs: tuple[str, ...]
    out_dir: str

    @property
    def receipt(self) -> Path:
        """``OUT_DIR/.mfif-batch/<xx>/<name>.json``, spread over 256 folders by a hash of the name
        (a million stacks make 4,000 files per folder, not a million in one)."""
        import hashlib

        shard = hashlib.sha1(self.name.encode()).hexdigest()[:2]
        return Path(self.out_dir) / RECEIPTS_DIR / shard / f"{self.name}.json"

    def outputs(self, settings: BatchSettings) -> dict[str, Path]:
        """Every file this stack may write: ``fused`` always, the others when asked."""
        out = Path(self.out_dir)
        paths = {"fused": out / f"{self.name}.{settings.format}"}
        if settings.save_map:
            paths["map"] = out / f"{self.name}_map.png"
        if settings.depth_map:
            paths["depth"] = out / f"{self.name}_depth.png"
        if settings.save_transforms:
            paths["transforms"] = out / f"{self.name}_transforms.json"
        return paths


# ----------------------------------------------------------------------------------------------
# discover


def discover_stacks(root: str | os.PathLike, out_dir: str | os.PathLike) -> list[StackJob]:
    """One :class:`StackJob` per subfolder of ``root`` that holds image files (sorted by name;
    hidden folders skipped); its frames are the folder's images (camera RAW included) sorted by name."""
    from mfif.io import INPUT_SUFFIXES

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: expected a folder of stack folders (one subfolder per stack)")
    jobs = []
    for d in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        frames = sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in INPUT_SUFFIXES)
        if frames:
            jobs.append(StackJob(d.name, tuple(str(f) for f in frames), str(out_dir)))
    if not jobs:
        raise InputError(f"{root}: no subfolders with image files (one subfolder per stack)")
    return jobs


# ----------------------------------------------------------------------------------------------
# keys and records


def _file_entry(path: str | Path, previous: dict | None = None) -> dict:
    """path, size, mtime and sha256 of a file; the digest is taken from ``previous`` when path,
    size and mtime are unchanged (so a resume check hashes only files that changed)."""
    from mfif.digests import file_digest

    st = os.stat(path)
    entry = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if previous and all(previous.get(k) == entry[k] for k in ("path", "size", "mtime_ns")):
        entry["sha256"] = previous.get("sha256")
    else:
        entry["sha256"] = file_digest(path, remember=False)
    return entry


def _method_signature(settings: BatchSettings) -> dict:
    """Method, every option value (defaults included; a file option with its digest) and the
    digests of the shipped weights it loads."""
    from mfif.digests import option_signature, weights_signature
    from mfif.methods import get_method

    spec = get_method(settings.method)
    opts = spec.make_options(**settings.options)
    values = {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)}
    return {"method": spec.name, "options": option_signature(values), "weights": weights_signature(spec.weights)}


def job_key(inputs: list[dict], settings: BatchSettings, method_signature: dict | None = None) -> str:
    """sha256 over the inputs' names and digests, the method signature and the output settings
    (paths and mtimes are left out: a moved stack folder stays done)."""
    import hashlib

    payload = {"inputs": [[Path(e["path"]).name, e["sha256"]] for e in inputs],
               **(method_signature or _method_signature(settings)), "settings": settings.output_settings()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def is_up_to_date(record: dict | None, job: StackJob, settings: BatchSettings,
                  method_signature: dict | None = None) -> bool:
    """True when ``record`` proves that this job's outputs are the result of its current inputs,
    method and options: status ``done``, same key, every extra file asked for now asked for then,
    and every output it wrote unchanged."""
    if not record or record.get("status") != "done":
        return False
    if any(wanted and not (record.get("extras") or {}).get(name) for name, wanted in settings.extras().items()):
        return False
    previous = {e.get("path"): e for e in record.get("inputs", [])}
    try:
        inputs = [_file_entry(p, previous.get(p)) for p in job.inputs]
        if record.get("key") != job_key(inputs, settings, method_signature):
            return False
        outputs = record.get("outputs") or []
        if str(job.outputs(settings)["fused"]) not in {e.get("path") for e in outputs}:
            return False
        return all(_file_entry(e["path"], e)["sha256"] == e.get("sha256") for e in outputs)
    except (OSError, KeyError, TypeError):
        return False


def read_manifest(path: str | os.PathLike) -> dict[str, dict]:
    """The last record of every stack in a JSON Lines manifest (a torn last line is ignored)."""
    records: dict[str, dict] = {}
    path = Path(path)
    if not path.is_file():
        return records
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if isinstance(record, dict) and "stack" in record:
                records[record["stack"]] = record
    return records


def _write_json_atomic(path: Path, data: dict) -> None:
    from mfif.io import write_bytes_atomic

    write_bytes_atomic(path, (json.dumps(data, sort_keys=True, default=str) + "\n").encode())


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ----------------------------------------------------------------------------------------------
# the worker side: one stack


_LOADS = [0]
_LOADS_LOCK = threading.Lock()


def _count_network_loads() -> None:
    """Count ``torch.nn.Module.load_state_dict`` calls in this process (every network loader
    ends in one), installed once per process. With several threads per worker, a load is counted
    in the record of whichever task finishes around it."""
    import torch

    with _LOADS_LOCK:
        original = torch.nn.Module.load_state_dict
        if getattr(original, "_mfif_counted", False):
            return

        def load_state_dict(self, *args, **kwargs):
            with _LOADS_LOCK:
                _LOADS[0] += 1
            return original(self, *args, **kwargs)

        load_state_dict._mfif_counted = True
        torch.nn.Module.load_state_dict = load_state_dict


def _worker():
    """The Dask worker running this task, or None (in-process)."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_worker

        return get_worker()
    except ValueError:
        return None


def _peak_memory_mb() -> float | None:
    """This process's peak resident memory so far (a high-water mark, not per task)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


def tile_for_memory(kind: str, size: tuple[int, int], budget_bytes: float | None) -> int | None:
    """Tile size that keeps one stack's working memory within ``budget_bytes`` (a worker's memory
    limit per thread), or None when the whole image fits. ``size`` is (width, height); the cost per
    pixel is measured per method kind (see ``_BYTES_PER_PIXEL``)."""
    if not budget_bytes or not size:
        return None
    per_pixel = _BYTES_PER_PIXEL.get(kind, max(_BYTES_PER_PIXEL.values()))
    if size[0] * size[1] * per_pixel <= budget_bytes:
        return None
    side = int((budget_bytes / per_pixel) ** 0.5) // 64 * 64
    return max(_MIN_MEMORY_TILE, side)


def _image_size(path: str) -> tuple[int, int] | None:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.size
    except Exception:  # unreadable here: the fusion itself reports it properly
        return None


def _remove_stale_temporaries(paths: Iterable[Path]) -> None:
    """Temporary files an attempt killed mid-write left next to its outputs."""
    for path in paths:
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            try:
                tmp.unlink()
            except OSError:
                pass


def fuse_stack_job(job: StackJob, settings: BatchSettings, run_id: str = "", *, overwrite: bool = False,
                   debug: bool = False) -> dict:
    """The task: fuse one stack and write its outputs; returns its manifest record (never raises
    for a bad stack: the record says ``failed`` and why)."""
    from mfif import __version__
    from mfif.methods import get_method

    start = time.perf_counter()
    worker = _worker()
    receipt_path = job.receipt
    outputs = job.outputs(settings)
    signature = _method_signature(settings)
    receipt = _read_json(receipt_path)
    if receipt and is_up_to_date(receipt, job, settings, signature) and (
            receipt.get("run") == run_id or not overwrite):
        # done before (a result lost with a dead worker, or a run whose manifest line was lost)
        return {**receipt, "reused": True}
    attempts = receipt.get("attempts", []) if receipt and receipt.get("run") == run_id else []
    attempts = attempts + [{"worker": worker.address if worker is not None else "in-process",
                            "host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}]
    record = {"stack": job.name, "run": run_id, "status": "running", "method": settings.method,
              "options": {**settings.options, **settings.output_settings()}, "extras": settings.extras(),
              "version": __version__,
              "weights": signature["weights"], "worker": attempts[-1]["worker"], "attempts": attempts}
    loads_before = _LOADS[0]
    written: list[Path] = []
    try:
        receipt_path.parent.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(receipt_path, record)
        _remove_stale_temporaries(outputs.values())
        spec = get_method(settings.method)
        if spec.kind == "learned":
            _count_network_loads()
        record["inputs"] = [_file_entry(p) for p in job.inputs]
        record["key"] = job_key(record["inputs"], settings, signature)
        run_settings = settings
        if settings.tile is None and worker is not None and job.inputs:
            limit = getattr(getattr(worker, "memory_manager", None), "memory_limit", None)
            budget = limit / max(getattr(worker.state, "nthreads", 1), 1) if limit else None
            tile = tile_for_memory(spec.kind, _image_size(job.inputs[0]), budget)
            if tile:
                run_settings = dataclasses.replace(settings, tile=tile)
                record["tile"] = tile
        before = {p: _identity(p) for name, p in outputs.items() for p in _with_raw(name, p)}
        try:
            _fuse_to_files(job, run_settings, outputs)
        finally:  # a file whose identity changed was written by this attempt (atomic rename: new inode)
            written += [p for p, identity in before.items() if _identity(p) not in (None, identity)]
        record["outputs"] = [_file_entry(p) for p in written]
        record["status"] = "done"
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a bad stack must not stop the batch
        if debug and not isinstance(exc, (MfifError, MemoryError)):
            raise
        record.update(status="failed", error=str(exc) if isinstance(exc, MfifError) else (
            "out of memory (try --tile or a larger worker memory limit)" if isinstance(exc, MemoryError)
            else f"internal error: {exc.__class__.__name__}: {exc}"))
        for path in written:  # no half-finished stack: what this attempt wrote goes
            path.unlink(missing_ok=True)
    record["seconds"] = round(time.perf_counter() - start, 4)
    record["peak_memory_mb"] = _peak_memory_mb()
    record["network_loads"] = _LOADS[0] - loads_before
    record["finished"] = time.time()
    try:
        _write_json_atomic(receipt_path, record)
    except OSError:
        pass  # the manifest line is the record that counts
    return record


def _identity(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _with_raw(name: str, path: Path) -> list[Path]:
    from mfif.stacking import raw_depth_path

    return [path, raw_depth_path(path)] if name == "depth" else [path]


def _fuse_to_files(job: StackJob, settings: BatchSettings, outputs: dict[str, Path]) -> str:
    """The per-stack work of ``mfif fuse`` (load, align, merge, save; atomic writes)."""
    from mfif.fuse_files import _fuse_one
    from mfif.methods import get_method

    spec = get_method(settings.method)
    return _fuse_one([Path(p) for p in job.inputs], outputs["fused"], settings, spec, dict(settings.options),
                     save_map=outputs.get("map"), depth_map=outputs.get("depth"),
                     save_transforms=outputs.get("transforms"), batch=True)


# ----------------------------------------------------------------------------------------------
# the driver: plan, execute, record


@dataclass
class BatchReport:
    """What :func:`run_batch` did. ``records``: the manifest records of the stacks run now."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    manifest: Path | None = None
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def summary(self) -> str:
        return (f"batch: {len(self.done)} fused, {len(self.skipped)} skipped (already done), {len(self.failed)} failed"
                + (": " + ", ".join(name for name, _ in self.failed) if self.failed else ""))


def plan_batch(jobs: list[StackJob], settings: BatchSettings, manifest: dict[str, dict], *,
               overwrite: bool = False) -> tuple[list[StackJob], list[StackJob], list[tuple[str, str]]]:
    """Split the jobs into (to run, up to date, refused). A stack whose manifest record does not
    prove it done is also judged by its receipt (a run stopped after the worker's work but before
    its manifest line). Refused: an output file exists that neither accounts for (never
    overwritten unless ``overwrite``)."""
    signature = _method_signature(settings)
    run, done, refused = [], [], []
    for job in jobs:
        if overwrite:
            run.append(job)
            continue
        record = manifest.get(job.name)
        if is_up_to_date(record, job, settings, signature):
            done.append(job)
            continue
        receipt = _read_json(job.receipt)
        fused = job.outputs(settings)["fused"]
        if is_up_to_date(receipt, job, settings, signature):
            done.append(job)
        elif fused.exists() and not (_written_by(record, fused) or _written_by(receipt, fused)):
            refused.append((job.name, f"{fused} exists but is not the file a manifest record says mfif wrote "
                                      "(another program's, or edited since); not overwritten (--overwrite replaces it)"))
        else:
            run.append(job)
    return run, done, refused


def _written_by(record: dict | None, path: Path) -> bool:
    """Whether ``path`` is, unchanged, an output that ``record`` lists."""
    for entry in (record or {}).get("outputs") or []:
        if entry.get("path") == str(path):
            try:
                return _file_entry(path, entry)["sha256"] == entry.get("sha256")
            except OSError:
                return False
    return False


def _run_sequential(jobs, settings, run_id, overwrite, debug, on_record) -> None:
    for job in jobs:
        on_record(fuse_stack_job(job, settings, run_id, overwrite=overwrite, debug=debug))


def _import_method(method: str) -> None:
    """Import what a task needs once per worker before the tasks start (seconds of imports that would
    otherwise land in the first task of every worker)."""
    import cv2
    import PIL.Image  # noqa: F401  (imported lazily by the readers and filters)
    import scipy.ndimage  # noqa: F401

    # one OpenCV thread per task thread, as Dask sets OMP_NUM_THREADS=1 for torch and BLAS (safe
    # here: Dask workers are spawned, not forked, so no OpenCV lock is inherited)
    cv2.setNumThreads(1)

    import mfif.fuse_files  # noqa: F401  (the per-stack code)
    import mfif.stacking  # noqa: F401
    from mfif.methods import get_method

    get_method(method).load()


def _run_on_dask(client, jobs, settings, run_id, overwrite, debug, on_record) -> None:
    """One task per stack, at most a few per worker thread queued at once (so a million stacks do
    not become a million futures); results are collected as they finish."""
    from distributed import KilledWorker, as_completed

    threads = sum(client.nthreads().values()) or 1
    client.run(_import_method, settings.method)
    pending = iter(jobs)
    by_key: dict[str, StackJob] = {}

    def submit(job):
        future = client.submit(fuse_stack_job, job, settings, run_id, overwrite=overwrite, debug=debug,
                               key=f"mfif-stack-{job.name}-{run_id}", pure=False)
        by_key[future.key] = job
        return future

    queue = as_completed([submit(job) for job in itertools.islice(pending, 4 * threads + 4)])
    for future in queue:
        job = by_key.pop(future.key)
        try:
            record = future.result()
        except KeyboardInterrupt:
            raise
        except KilledWorker as exc:
            record = {"stack": job.name, "run": run_id, "status": "failed", "method": settings.method,
                      "error": f"every worker that ran it died ({exc}); out of memory? try --tile or a "
                               "larger --memory-limit"}
        except Exception as exc:  # the task raises only with debug=True, or when it cannot start
            if debug:
                raise
            record = {"stack": job.name, "run": run_id, "status": "failed", "method": settings.method,
                      "error": f"internal error: {exc.__class__.__name__}: {exc}"}
        future.release()
        on_record(record)
        job = next(pending, None)
        if job is not None:
            queue.add(submit(job))


def run_batch(jobs: list[StackJob], settings: BatchSettings, *, client=None, manifest: str | os.PathLike | None = None,
              overwrite: bool = False, progress: bool = True, verbose: bool = False, debug: bool = False,
              print_fn: Callable[[str], None] | None = None) -> BatchReport:
    """Fuse ``jobs`` (from :func:`discover_stacks`) in this process (``client=None``) or on the
    Dask ``client``'s cluster; append one record per finished stack to the manifest (default
    ``<out_dir>/manifest.jsonl``) and return the :class:`BatchReport`. A failed stack is listed and
    the others go on."""
    from tqdm import tqdm

    settings.check()
    start = time.perf_counter()
    if not jobs:
        return BatchReport()
    out_dir = Path(jobs[0].out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: the output must be a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = Path(manifest) if manifest else out_dir / MANIFEST_NAME
    records = read_manifest(manifest_path)
    to_run, up_to_date, refused = plan_batch(jobs, settings, records, overwrite=overwrite)
    report = BatchReport(skipped=[j.name for j in up_to_date], failed=list(refused), manifest=manifest_path)
    say = print_fn or (lambda text: tqdm.write(text, file=sys.stderr))
    if verbose:
        for job in up_to_date:
            say(f"{job.outputs(settings)['fused']}: up to date, skipped (--overwrite to redo)")
    for name, message in refused:
        say(f"mfif: stack {name} failed: {message}")
    run_id = uuid.uuid4().hex
    bar = tqdm(total=len(to_run), unit="stack", disable=not progress or not to_run, file=sys.stderr,
               dynamic_ncols=True)
    with open(manifest_path, "a", encoding="utf-8") as log:
        def on_record(record: dict) -> None:
            log.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            log.flush()
            report.records.append(record)
            name = record["stack"]
            if record.get("status") == "done":
                report.done.append(name)
                if verbose:
                    say(f"{name}: fused in {record.get('seconds', 0):.2f} s on {record.get('worker')}")
            else:
                report.failed.append((name, record.get("error", "failed")))
                say(f"mfif: stack {name} failed: {report.failed[-1][1]}")
            bar.update(1)
            bar.set_postfix(failed=len(report.failed), refresh=False)

        try:
            if client is None:
                _run_sequential(to_run, settings, run_id, overwrite, debug, on_record)
            else:
                _run_on_dask(client, to_run, settings, run_id, overwrite, debug, on_record)
        finally:
            bar.close()
            log.flush()
            os.fsync(log.fileno())
    _compact_manifest(manifest_path)
    report.seconds = time.perf_counter() - start
    return report


def _compact_manifest(path: Path) -> None:
    """Rewrite the manifest with only the last record of each stack, when re-runs superseded some."""
    with open(path, encoding="utf-8") as fh:
        lines = sum(1 for _ in fh)
    records = read_manifest(path)
    if lines > len(records):
        from mfif.io import write_bytes_atomic

        text = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records.values())
        write_bytes_atomic(path, text.encode())


def start_client(scheduler: str = "local", *, workers: int | None = None, threads_per_worker: int = 1,
                 memory_limit: str | float | None = "auto"):
    """A ``dask.distributed`` Client: ``"local"`` starts a LocalCluster of ``workers`` processes on
    this machine (each with ``memory_limit``), an address (``tcp://host:8786``) connects to an
    existing scheduler. Close it with ``client.close()`` (and ``client.cluster.close()`` for a local one)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MfifError("mfif batch needs dask.distributed: pip install 'mfif[batch]'") from None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=threads_per_worker,
                               processes=True, memory_limit=memory_limit, dashboard_address=":0")
        return Client(cluster)
    if "://" not in scheduler and ":" not in scheduler:
        raise InputError(f"--scheduler expects 'local', 'sequential' or a scheduler address such as "
                         f"tcp://host:8786, got '{scheduler}'")
    try:
        return Client(scheduler, timeout="30s")
    except OSError as exc:
        raise MfifError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None


# ----------------------------------------------------------------------------------------------
# command line: mfif batch (registered in mfif.cli)


def print_report(report: BatchReport, *, quiet: bool = False) -> None:
    print(report.summary(), file=sys.stderr if report.failed else sys.stdout)
    for name, message in report.failed:
        print(f"  {name}: {message}", file=sys.stderr)
    if report.records and not quiet:
        done = [r for r in report.records if r.get("status") == "done"]
        if done and report.seconds > 0:
            print(f"  {len(done) / report.seconds:.2f} stacks/s; manifest: {report.manifest}")


def add_parser(sub) -> None:
    from mfif.methods import DEFAULT_METHOD

    p = sub.add_parser("batch", help="fuse every subfolder of a folder as one stack (in parallel, on Dask)",
                       description="Fuse every subfolder of STACKS_DIR as one stack into OUT_DIR on a Dask "
                                   "cluster; a manifest (OUT_DIR/manifest.jsonl) makes re-runs skip "
                                   "finished stacks and redo changed ones.")
    p.add_argument("stacks_dir", metavar="STACKS_DIR", help="folder with one subfolder of frames per stack")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder")
    p.add_argument("-m", "--method", default=DEFAULT_METHOD, help=f"fusion method (default {DEFAULT_METHOD})")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="method option (repeatable)")
    p.add_argument("--weights", help="network weights file for learned methods")
    p.add_argument("--device", help="torch device for learned methods (cpu, cuda)")
    p.add_argument("--mode", metavar="VALUE", help="deprecated: read as --opt mode=VALUE; use the method's own "
                   "option (--opt nframe_strategy=..., modality=..., border=...)")
    p.add_argument("--scheduler", default="local", metavar="local|sequential|ADDRESS",
                   help="'local': a LocalCluster on this machine (default); 'sequential': in this process; "
                        "an address (tcp://host:8786): an existing Dask scheduler")
    p.add_argument("--workers", type=int, metavar="N", help="local workers (default: the number of CPU cores)")
    p.add_argument("--threads-per-worker", type=int, default=1, metavar="T", help="threads per local worker (default 1)")
    p.add_argument("--memory-limit", default="auto", metavar="BYTES",
                   help="memory limit per local worker, e.g. 4GB (default: the machine's memory / N); "
                        "stacks too large for it are tiled")
    p.add_argument("--format", default="png", choices=OUTPUT_FORMATS, help="output format (default png)")
    p.add_argument("--align", dest="align", action="store_true", default=None,
                   help="register the frames (default: on for more than 2 frames)")
    p.add_argument("--no-align", dest="align", action="store_false", help="do not register the frames")
    p.add_argument("--align-model", default="affine", choices=("translation", "similarity", "affine", "homography"))
    p.add_argument("--tile", type=int, metavar="SIZE", help="tile size (default: automatic; 0: never)")
    p.add_argument("--batch-frames", type=int, default=8, metavar="K",
                   help="methods without a running reduction fuse at most K frames at once (default 8)")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), help="output bits per channel (default: as the input)")
    p.add_argument("--save-map", action="store_true", help="also write NAME_map.png")
    p.add_argument("--depth-map", action="store_true", help="also write NAME_depth.png (+ _raw)")
    p.add_argument("--save-transforms", action="store_true", help="also write NAME_transforms.json")
    p.add_argument("--manifest", metavar="FILE.jsonl", help="manifest path (default OUT_DIR/manifest.jsonl)")
    p.add_argument("--overwrite", action="store_true", help="redo every stack, replacing its outputs")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per stack")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def settings_from_args(args) -> BatchSettings:
    """BatchSettings from ``mfif batch`` / ``mfif fuse --batch`` arguments."""
    from mfif.fuse_files import _collect_options
    from mfif.methods import get_method

    return BatchSettings(method=args.method, options=_collect_options(args, get_method(args.method)), align=args.align,
                         align_model=args.align_model, tile=args.tile, batch_frames=args.batch_frames,
                         bit_depth=args.bit_depth, format=args.format, save_map=bool(args.save_map),
                         depth_map=bool(args.depth_map), save_transforms=bool(args.save_transforms))


def run(args) -> int:
    settings = settings_from_args(args)
    settings.check()
    jobs = discover_stacks(args.stacks_dir, args.output)
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    client = None
    if args.scheduler != "sequential":
        client = start_client(args.scheduler, workers=args.workers, threads_per_worker=args.threads_per_worker,
                              memory_limit=args.memory_limit)
        print(f"dask dashboard: {client.dashboard_link}  ({len(client.nthreads())} workers, "
              f"{sum(client.nthreads().values())} threads)", file=sys.stderr)
    try:
        report = run_batch(jobs, settings, client=client, manifest=args.manifest, overwrite=args.overwrite,
                           progress=not args.quiet, verbose=args.verbose, debug=args.debug)
    finally:
        if client is not None:
            cluster = client.cluster if args.scheduler == "local" else None
            client.close()
            if cluster is not None:
                cluster.close()
    print_report(report, quiet=args.quiet)
    return report.exit_code
