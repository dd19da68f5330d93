"""Pre-render multi-focus training pairs to disk once, and stream them back without decoding.

The layered and thin-lens recipes make ~15-25 samples/s on one core: slower than a trainer
consumes them. :func:`prerender` writes ``N`` samples of an image recipe into a folder of raw
uint8 arrays (NumPy ``.npy``, read back memory-mapped by :class:`PrerenderedPairs`: no decoding,
random access, any number of DataLoader workers)::

    OUT/frames.npy   (N, K, C, S, S) uint8   the K frames, value = round(255 x)
    OUT/gt.npy       (N, C, S, S)    uint8   all-in-focus ground truth
    OUT/focus.npy    (N, K, S, S)    uint8   focus map of each frame (255 = in focus)
    OUT/meta.json    recipe settings, seed, source, counts, shapes; "complete": true when done

Bytes per sample: ``S^2 (K C + C + K)``; 224 px, 2 RGB frames: 552 KB (10 000 pairs: 5.5 GB).
8 bits are what a camera's JPEG gives, so the quantisation adds nothing a network should not see.

Sample ``i`` is the on-the-fly :class:`mfif.synth.datasets.PairDataset` item ``i`` for the same
recipe, frames and seed (quantised to 8 bits), so a render can be stopped and resumed: an
unfinished render lives in ``OUT.partial/`` with its progress in ``progress.json`` and is renamed
to ``OUT`` when complete; ``resume=True`` continues it.

Example:
    >>> prerender("shared/data/train", "thinlens", 1000, "pairs-thinlens")  # doctest: +SKIP
    >>> ds = PrerenderedPairs("pairs-thinlens")                              # doctest: +SKIP
    >>> ds[0]["frames"].shape                                                # doctest: +SKIP
    torch.Size([2, 3, 224, 224])
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path

import numpy as np

from mfif.errors import InputError, OutputError
from mfif.synth import recipes as R

FORMAT_VERSION = 1
FIELDS = ("frames", "gt", "focus")


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


_DATASETS: dict = {}  # per process: the dataset a worker renders from (keeps its photo cache)


def _render_chunk(job):
    """Worker: samples [start, stop) of the dataset as uint8 arrays."""
    from mfif.synth.datasets import PairDataset

    source, recipe, frames, seed, length, start, stop, single_thread = job
    key = (source, recipe, frames, seed, length)
    ds = _DATASETS.get(key)
    if ds is None:
        if single_thread:  # a spawned worker: one OpenCV thread each, the workers share the cores
            import cv2

            cv2.setNumThreads(1)
        _DATASETS.clear()
        ds = _DATASETS[key] = PairDataset(source, recipe, frames=frames, seed=seed, length=length)
    out = []
    for i in range(start, stop):
        s = ds.sample(i)
        out.append((_to_u8(s.frames), _to_u8(s.gt), _to_u8(s.focus)))
    return start, out


def _shapes(recipe, frames: int, channels: int = 3) -> dict:
    size = recipe.size
    return {"frames": (frames, channels, size, size), "gt": (channels, size, size), "focus": (frames, size, size)}


def prerender(source, recipe, n: int, out: str | os.PathLike, *, frames: int = 2, seed: int = 0,
              workers: int = 1, chunk: int = 8, resume: bool = False, force: bool = False,
              progress: bool = True) -> dict:
    """Render ``n`` samples of an image ``recipe`` (name or config) into ``out``.

    Args:
        source: photo folder (str or path; the workers open it themselves).
        recipe: ``"thinlens"``, ``"layered"``, ``"ifcnn"``, ``"hourglass"`` or one of their
            configs; it must have a fixed ``size``.
        n: number of samples; frames: frames per sample (>= 2); seed: fixes every sample.
        workers: processes rendering in parallel (spawned; 1 = in this process).
        chunk: samples per job handed to a worker.
        resume: continue ``OUT.partial`` left by an interrupted run (same settings).
        force: replace an existing complete ``out``.

    Returns the metadata (also in ``out/meta.json``), with ``seconds`` and ``pairs_per_s`` of
    this run.
    """
    recipe = R.get_recipe(recipe) if isinstance(recipe, str) else recipe
    if recipe.kind != "images":
        raise InputError(f"recipe {recipe.name} makes patches; pre-rendering is for frame recipes")
    if getattr(recipe, "size", None) is None:
        raise InputError(f"recipe {recipe.name} has no fixed crop size; set size to pre-render")
    if n < 1:
        raise InputError(f"number of samples must be at least 1, got {n}")
    if frames < 2:
        raise InputError(f"frames must be at least 2, got {frames}")
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    if out.exists():
        if not force:
            raise OutputError(f"{out} already exists (use force to replace it)")
    from mfif.synth.write import recipe_settings

    source = str(source)
    meta = {"format": "mfif-prerendered", "version": FORMAT_VERSION, "recipe": recipe_settings(recipe),
            "frames": frames, "samples": n, "seed": seed, "source": source,
            "shapes": {k: [n, *v] for k, v in _shapes(recipe, frames).items()}, "dtype": "uint8",
            "scale": "value = uint8 / 255"}
    done = 0
    prog_path = partial / "progress.json"
    if resume and prog_path.exists():
        old = json.loads(prog_path.read_text())
        if old.get("meta") != json.loads(json.dumps(meta)):
            raise InputError(f"{partial} was started with other settings; remove it or run without resume")
        done = int(old["done"])
        mode = "r+"
    else:
        if partial.exists():
            if not resume and not force:
                raise OutputError(f"{partial} holds an unfinished render (resume it, or use force to restart)")
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        mode = "w+"
    arrays = {}
    for name, shape in _shapes(recipe, frames).items():
        path = partial / f"{name}.npy"
        if mode == "w+":
            arrays[name] = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, *shape))
        else:
            arrays[name] = np.load(path, mmap_mode="r+")

    def save_progress(count: int) -> None:
        for a in arrays.values():
            a.flush()
        tmp = prog_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"done": count, "meta": meta}))
        os.replace(tmp, prog_path)

    if mode == "w+":
        save_progress(0)
    first = done
    jobs = [(source, recipe, frames, seed, n, s, min(s + chunk, n), workers > 1) for s in range(done, n, chunk)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, initial=done, desc=f"prerender {recipe.name}", unit="pair", dynamic_ncols=True)
    t0 = time.perf_counter()
    pool = None
    try:
        if workers > 1:
            pool = mp.get_context("spawn").Pool(workers)
            results = pool.imap(_render_chunk, jobs)  # in order: progress is a prefix
        else:
            results = map(_render_chunk, jobs)
        for start, items in results:
            for j, (f, g, m) in enumerate(items):
                arrays["frames"][start + j] = f
                arrays["gt"][start + j] = g
                arrays["focus"][start + j] = m
            done = start + len(items)
            if bar is not None:
                bar.update(len(items))
            if done % (chunk * 16) == 0:
                save_progress(done)
        seconds = time.perf_counter() - t0
    finally:
        if pool is not None:
            pool.terminate()
        if bar is not None:
            bar.close()
        save_progress(done)
    rendered = n - first
    meta.update({"complete": True, "bytes_per_sample": int(sum(int(np.prod(s)) for s in _shapes(recipe, frames).values()))})
    (partial / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    prog_path.unlink()
    del arrays
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return dict(meta, seconds=seconds, rendered=rendered, pairs_per_s=rendered / seconds if seconds > 0 else float("inf"))


class PrerenderedPairs:
    """A torch-style dataset over a :func:`prerender` folder (memory-mapped, opened lazily per
    process so it is safe with ``DataLoader(num_workers=W)``).

    Items: ``{"frames": (K, C, S, S), "gt": (C, S, S), "focus": (K, S, S)}`` tensors, float32
    in [0, 1], or uint8 as stored with ``as_uint8=True`` (convert a whole batch at once: faster).
    """

    def __init__(self, folder: str | os.PathLike, *, as_uint8: bool = False):
        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        if not meta_path.is_file():
            partial = self.folder.with_name(self.folder.name + ".partial")
            hint = f" ({partial} holds an unfinished render: resume it)" if partial.exists() else ""
            raise InputError(f"{self.folder}: not a pre-rendered dataset (no meta.json){hint}")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != "mfif-prerendered" or not self.meta.get("complete"):
            raise InputError(f"{meta_path}: not a complete mfif pre-rendered dataset")
        self.length = int(self.meta["samples"])
        self.as_uint8 = bool(as_uint8)
        self._arrays = None
        for name in FIELDS:
            p = self.folder / f"{name}.npy"
            if not p.is_file():
                raise InputError(f"{p}: missing")

    def _open(self) -> dict:
        if self._arrays is None:
            arrays = {}
            for name in FIELDS:
                a = np.load(self.folder / f"{name}.npy", mmap_mode="r")
                expected = tuple(self.meta["shapes"][name])
                if a.shape != expected or a.dtype != np.uint8:
                    raise InputError(f"{self.folder / (name + '.npy')}: shape {a.shape} {a.dtype}, expected "
                                     f"{expected} uint8")
                arrays[name] = a
            self._arrays = arrays
        return self._arrays

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_arrays"] = None  # reopened in the worker
        return state

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        import torch

        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} pre-rendered samples")
        arrays = self._open()
        item = {}
        for name in FIELDS:
            t = torch.from_numpy(np.array(arrays[name][index]))
            item[name] = t if self.as_uint8 else t.float().mul_(1.0 / 255.0)
        return item


__all__ = ["FORMAT_VERSION", "prerender", "PrerenderedPairs"]
