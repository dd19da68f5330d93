"""Run methods over datasets and score them, with an on-disk cache.

Stages per dataset: discover items (:mod:`mfif.dataset_folders`) -> for each item and method: fuse
(cached as ``<cache>/<dataset>/<method>/<item>.png``) -> score with :mod:`mfif.metrics` (cached
next to it as ``.json``) -> rows for the report. A re-run with the same sources, method and options
loads both from the cache and does no method work. An item that cannot be read (missing ``_B``,
size mismatch, corrupt file) is reported and the rest are still evaluated.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfif.dataset_folders import Dataset, DatasetItem, discover
from mfif.digests import file_digest as _file_digest
from mfif.digests import option_signature as _option_signature
from mfif.digests import weights_signature as _weights_signature
from mfif.errors import InputError, MfifError
from mfif.io import read_image, read_stack, write_bytes_atomic, write_image

# Reported for every item (reference-free, cheap enough for hundreds of items); GT metrics are
# added when the item has a ground truth. Any key of mfif.metrics.METRICS can be asked for.
DEFAULT_METRICS = ("Q_MI", "Q_G_yl", "Q_Y_stable", "Q_CB", "Q_P", "SSIM", "EN", "SF", "AG", "SD")
GT_METRICS = ("PSNR_GT", "SSIM_GT")


@dataclass
class EvalConfig:
    """Options of :func:`evaluate`.

    Attributes:
        methods: method names (``mfif list``).
        metrics: metric keys (default :data:`DEFAULT_METRICS`, plus :data:`GT_METRICS` with GT).
        out_dir: report folder.
        cache_dir: fused results and per-item scores (default ``out_dir / "cache"``).
        method_options: per-method option overrides, e.g. ``{"sml": {"window_radius": 5}}``.
        variants: extra labelled runs of a method with other options, ``{label: (method, options)}``,
            e.g. ``{"ba-initial": ("ba", {"refine": False})}``; reported next to ``methods`` under
            their label (the same method with two option sets, or the authors' weights).
        progress: show a progress bar.
        align: align stacks of more than two frames before fusing (as ``mfif fuse``); False:
            fuse the frames as stored.
        cached_only: report only what the cache holds; a run that would compute is skipped (counted
            in :attr:`EvalResult.skipped`): a partial report while slow methods are still running.
    """

    methods: list[str]
    out_dir: Path
    metrics: list[str] | None = None
    cache_dir: Path | None = None
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    variants: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    progress: bool = True
    align: bool = True  # stacks of > 2 frames aligned first, as mfif fuse does (mfif.evaluation.stack_items)
    cached_only: bool = False


@dataclass
class EvalRow:
    dataset: str
    item: str
    method: str
    seconds: float | None
    values: dict[str, float]
    cached: bool = False


@dataclass
class EvalResult:
    rows: list[EvalRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    datasets: list[Dataset] = field(default_factory=list)
    method_runs: int = 0  # how many fusions were actually computed (0 on a fully cached re-run)
    metric_runs: int = 0
    skipped: int = 0  # runs not in the cache with cached_only


def _source_signature(item: DatasetItem) -> list:
    """File names and content digests (not paths or mtimes: a moved or re-mounted dataset stays cached)."""
    return [[p.name, _file_digest(p)] for p in [*item.sources, *([item.ground_truth] if item.ground_truth else [])]]


def _cache_key(item: DatasetItem, method: str, options: dict, weights: tuple[str, ...] | list[str] = (), *,
               aligned: bool = True) -> str:
    from mfif import __version__
    from mfif.evaluation.stack_items import needs_alignment

    aligned = {"aligned": "mfif fuse default"} if aligned and needs_alignment(len(item.sources)) else {}
    payload = json.dumps({"sources": _source_signature(item), "method": method,
                          "options": _option_signature(options), "version": __version__,
                          "weights": _weights_signature(weights), **aligned},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _metrics_for(item: DatasetItem, requested: list[str] | None, has_focus_maps: bool = False) -> list[str]:
    from mfif.metrics import METRICS
    from mfif.metrics.boundary import band_metric

    names = list(requested) if requested else [*DEFAULT_METRICS, *(GT_METRICS if item.ground_truth else ())]
    out = []
    for name in names:
        metric = METRICS.get(name) or band_metric(name)
        if metric is None:
            raise InputError(f"unknown metric '{name}'; available: {', '.join(METRICS)}, PSNR_band[K], SSIM_band[K]")
        if metric.needs_ground_truth and item.ground_truth is None:
            continue
        if metric.name not in METRICS and not has_focus_maps:  # band metrics need the focus maps
            continue
        if metric.n_sources == 2 and len(item.sources) != 2:
            continue
        out.append(name)
    return out


def _score(names: list[str], sources: np.ndarray, fused: np.ndarray, gt: np.ndarray | None,
           focus_maps: np.ndarray | None = None) -> dict[str, float]:
    from mfif.metrics import METRICS
    from mfif.metrics.boundary import band_metric

    values = {}
    for name in names:
        metric = METRICS.get(name) or band_metric(name)
        extra = {} if name in METRICS else {"focus_maps": focus_maps}
        try:
            value = metric.function(list(sources), fused, ground_truth=gt, **extra)
        except MfifError:
            value = float("nan")
        values[name] = float(value) if value is not None else float("nan")
    return values


def _load_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def evaluate(data_dirs: list[str | Path], config: EvalConfig) -> EvalResult:
    """Run ``config.methods`` on every item of every dataset folder and score the results."""
    from tqdm import tqdm

    from mfif.api import fuse
    from mfif.evaluation.stack_items import align_item, fuse_aligned, needs_alignment
    from mfif.methods import METHODS, get_method

    from mfif.metrics import METRICS
    from mfif.metrics.boundary import is_band_metric

    # (label, spec, options); unknown method or metric: error before any work
    runs = [(m, get_method(m), dict(config.method_options.get(m, {}))) for m in config.methods]
    for label, (method, options) in config.variants.items():
        if label in config.methods or label in METHODS:
            raise InputError(f"variant label '{label}' clashes with a method name; choose another label")
        runs.append((label, get_method(method), dict(options)))
    for label, spec, options in runs:
        spec.make_options(**options)  # an unknown option is an error now, not once per item
    unknown = [m for m in (config.metrics or []) if m not in METRICS and not is_band_metric(m)]
    if unknown:
        raise InputError(f"unknown metric(s) {', '.join(unknown)}; available: {', '.join(METRICS)}")
    cache_root = Path(config.cache_dir or Path(config.out_dir) / "cache")
    result = EvalResult()
    datasets = [discover(d) for d in data_dirs]
    result.datasets = datasets
    for ds in datasets:
        result.problems.extend(ds.problems)
    total = sum(len(ds.items) for ds in datasets) * len(runs)
    bar = tqdm(total=total, desc="evaluating", unit="run", disable=None if config.progress else True)
    broken_methods: set[str] = set()
    for ds in datasets:
        for item in ds.items:
            try:
                stack = read_stack(item.sources)
                gt = read_image(item.ground_truth) if item.ground_truth else None
                if gt is not None and gt.shape[-2:] != stack.images.shape[-2:]:
                    raise InputError(f"{item.ground_truth}: ground truth size differs from the sources")
                focus = None
                if any(is_band_metric(m) for m in config.metrics or ()):
                    from mfif.evaluation.focus_maps import read_focus_maps

                    focus = read_focus_maps(item)
                names = _metrics_for(item, config.metrics, focus is not None)
                aligned = config.align and needs_alignment(len(stack))  # as mfif fuse: sources, GT cropped alike
                if aligned:
                    images, gt, (x, y, w, h) = align_item(stack.images, gt)
                    stack.images = images
                    if focus is not None:  # the focus maps are in the GT's geometry: cropped alike
                        focus = np.ascontiguousarray(focus[:, y:y + h, x:x + w])
            except InputError as exc:
                result.problems.append(f"{ds.name}/{item.name}: {exc}")
                bar.update(len(runs))
                continue
            for label, spec, options in runs:
                bar.set_postfix_str(f"{ds.name}/{item.name} {label}", refresh=False)
                if label in broken_methods:
                    bar.update(1)
                    continue
                key = _cache_key(item, spec.name, options, spec.weights, aligned=config.align)
                folder = cache_root / ds.name / label
                folder.mkdir(parents=True, exist_ok=True)
                fused_path = folder / f"{item.name}.png"
                meta_path = folder / f"{item.name}.json"
                meta = _load_json(meta_path) or {}
                cached = meta.get("key") == key and fused_path.exists()
                if not cached and config.cached_only:
                    result.skipped += 1
                    bar.update(1)
                    continue
                seconds = meta.get("seconds") if cached else None
                try:
                    if cached:
                        fused = read_image(fused_path)
                    else:
                        t0 = time.perf_counter()
                        fused = (fuse_aligned(stack.images, spec, options) if aligned
                                 else fuse(stack, method=spec.name, **options).fused)
                        seconds = time.perf_counter() - t0
                        result.method_runs += 1
                        write_image(fused_path, fused, bit_depth=8)
                        fused = read_image(fused_path)  # score exactly what was saved
                        meta = {"key": key, "seconds": seconds, "metrics": {}}
                except MfifError as exc:
                    result.problems.append(f"{ds.name}/{item.name}: method {label} failed: {exc}")
                    if isinstance(exc, InputError) is False and "weights" in str(exc).lower():
                        broken_methods.add(label)
                    bar.update(1)
                    continue
                values = {k: v for k, v in meta.get("metrics", {}).items() if k in names}
                missing = [n for n in names if n not in values]
                if missing:
                    values.update(_score(missing, stack.images, fused, gt, focus))
                    result.metric_runs += len(missing)
                    meta["metrics"] = {**meta.get("metrics", {}), **values}
                    write_bytes_atomic(meta_path, json.dumps(meta, indent=1, allow_nan=True).encode())
                result.rows.append(EvalRow(ds.name, item.name, label, seconds,
                                           {n: values[n] for n in names}, cached))
                bar.update(1)
    bar.close()
    return result


def finite(values) -> list[float]:
    return [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
