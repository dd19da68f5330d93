"""Compute many fusion metrics at once, for one result or for a folder of results.

- :func:`compute_metrics`: one fused image against its sources -> ``{key: value}``.
- :func:`score_folder`: a folder of fused results against a folder of source sets -> a
  :class:`MetricsTable`, optionally written as CSV and markdown.

Folder layout (``score_folder``): the sources folder holds sets ``<name>_A.ext``, ``<name>_B.ext``
(also ``-A``/``-B``, ``_1``/``_2``; more sources ``_C``, ``_3``, ...) and optionally the ground truth
``<name>_GT.ext``; the fused folder holds ``<name>.ext`` or ``<name>_F.ext`` (``-F``). The tag ``F`` is
reserved for fused images and is never taken as a source.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mfif.errors import InputError, OutputError
from mfif.metrics._common import Metric, to_grey_255

__all__ = ["compute_metrics", "score_folder", "MetricsTable", "SourceSet", "find_source_sets",
           "load_image", "select_metrics", "MetricWarning"]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".pgm")


class MetricWarning(UserWarning):
    """A metric could not be computed for an input (its value is NaN in the result)."""


def _registry() -> dict[str, Metric]:
    from mfif.metrics import METRICS  # late import: the families import _common, not this module

    return METRICS


# --------------------------------------------------------------------------------------------
# image loading
# --------------------------------------------------------------------------------------------


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file for scoring: float32 (C, H, W) in [0, 1] via :func:`mfif.io.read_image`
    (alpha dropped with a warning). The metrics quantise it back to 8-bit grey exactly as the
    reference does (8-bit files round-trip exactly; 16-bit files give round(v / 257))."""
    from mfif.io import read_image

    return read_image(path)


# --------------------------------------------------------------------------------------------
# one result
# --------------------------------------------------------------------------------------------


def select_metrics(names: Iterable[str] | None, *, n_sources: int, has_ground_truth: bool) -> list[Metric]:
    """Metrics to compute. ``names=None``: every metric that applies (ground-truth metrics only with
    a ground truth, two-source metrics only with exactly 2 sources). Explicit names must all apply,
    otherwise :class:`InputError`."""
    registry = _registry()
    if names is None:
        return [m for m in registry.values()
                if (has_ground_truth or not m.needs_ground_truth)
                and (m.n_sources in (None, 0) or m.n_sources == n_sources)]
    chosen = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        if name not in registry:
            raise InputError(f"unknown metric '{name}' (known: {', '.join(registry)})")
        m = registry[name]
        if m.needs_ground_truth and not has_ground_truth:
            raise InputError(f"{name} needs a ground-truth image")
        if m.n_sources not in (None, 0) and m.n_sources != n_sources:
            raise InputError(f"{name} takes exactly {m.n_sources} sources, got {n_sources}")
        if m not in chosen:
            chosen.append(m)
    if not chosen:
        raise InputError("no metric selected")
    return chosen


def compute_metrics(sources: Sequence[np.ndarray], fused: np.ndarray, *, names: Iterable[str] | None = None,
                    ground_truth: np.ndarray | None = None) -> dict[str, float]:
    """Compute fusion metrics of ``fused`` against ``sources`` (and ``ground_truth``).

    Args:
        sources: the source images (uint8, uint16 or float in [0, 1]; grey or RGB; all the same size).
        fused: the fused image, same size.
        names: metric keys to compute (see :data:`mfif.metrics.METRICS`). ``None``: all that apply --
            ground-truth metrics only when ``ground_truth`` is given, two-source metrics only when
            there are exactly 2 sources. Naming a metric that does not apply is an error.
        ground_truth: optional all-in-focus reference image, same size.

    Returns:
        ``{key: value}`` in registry order (or in the order of ``names``). With ``names=None`` a
        metric that is undefined for these images (e.g. ``Q_Y`` with a window flat in both sources,
        where the reference code returns NaN) gives NaN and a :class:`MetricWarning` with the reason;
        when it was named explicitly its :class:`InputError` propagates.

    Raises:
        InputError: fewer than 2 sources, mismatched sizes, unreadable arrays, unknown or inapplicable
            metric names.
    """
    sources = list(sources)
    if len(sources) < 2:
        raise InputError(f"need at least 2 source images, got {len(sources)}")
    # Convert once to the reference's 8-bit grey (every metric would do the same conversion).
    grey_sources = [to_grey_255(s, f"source {i}").astype(np.uint8) for i, s in enumerate(sources)]
    grey_fused = to_grey_255(fused, "fused").astype(np.uint8)
    grey_gt = None if ground_truth is None else to_grey_255(ground_truth, "ground truth").astype(np.uint8)
    for label, img in [(f"source {i}", s) for i, s in enumerate(grey_sources)] + [("ground truth", grey_gt)]:
        if img is not None and img.shape != grey_fused.shape:
            raise InputError(f"{label} has size {img.shape[1]}x{img.shape[0]} but the fused image is "
                             f"{grey_fused.shape[1]}x{grey_fused.shape[0]}")
    explicit = names is not None
    metrics = select_metrics(names, n_sources=len(sources), has_ground_truth=ground_truth is not None)
    values: dict[str, float] = {}
    done: dict[object, float | InputError] = {}  # keys sharing one function (Q_CB / Q_CB_vifb) run once
    for m in metrics:
        if m.function not in done:
            try:
                done[m.function] = float(m.function(grey_sources, grey_fused, ground_truth=grey_gt))
            except InputError as exc:
                done[m.function] = exc
        result = done[m.function]
        if isinstance(result, InputError):
            if explicit:
                raise result
            message = str(result)
            warnings.warn(message if message.startswith(m.name) else f"{m.name}: {message}",
                          MetricWarning, stacklevel=2)
            result = math.nan
        values[m.name] = result
    return values


# --------------------------------------------------------------------------------------------
# folders
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceSet:
    """One test case: its name, source image files (in order) and optional ground-truth file."""

    name: str
    sources: tuple[Path, ...]
    ground_truth: Path | None = None


_TAGGED = re.compile(r"^(?P<name>.+?)[_-](?P<tag>GT|[A-Za-z]|\d+)$", re.IGNORECASE)


def _tag_order(tag: str):
    return (0, int(tag)) if tag.isdigit() else (1, tag.upper())


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def find_source_sets(folder: str | os.PathLike) -> list[SourceSet]:
    """Source sets in ``folder``: ``<name>_A.ext``, ``<name>_B.ext`` (``-A``, ``_1`` ...), optional
    ``<name>_GT.ext``. Sets with fewer than 2 sources are an error (named in the message)."""
    folder = Path(folder)
    groups: dict[str, dict[str, Path]] = {}
    for p in _image_files(folder):
        m = _TAGGED.match(p.stem)
        if not m or m["tag"].upper() == "F":
            continue
        tag = m["tag"].upper()
        group = groups.setdefault(m["name"], {})
        if tag in group:
            raise InputError(f"{folder}: two files for '{m['name']}' tag {tag}: {group[tag].name}, {p.name}")
        group[tag] = p
    sets = []
    for name in sorted(groups):
        tags = groups[name]
        gt = tags.pop("GT", None)
        if len(tags) < 2:
            raise InputError(f"{folder}: '{name}' has {len(tags)} source image(s) "
                             f"({', '.join(p.name for p in tags.values()) or 'none'}); need at least 2")
        ordered = tuple(tags[t] for t in sorted(tags, key=_tag_order))
        sets.append(SourceSet(name, ordered, gt))
    if not sets:
        raise InputError(f"{folder}: no source sets found (expected <name>_A.png, <name>_B.png, ...)")
    return sets


def _find_fused(fused_files: list[Path], name: str, folder: Path) -> Path | None:
    want = {name.lower(), f"{name}_f".lower(), f"{name}-f".lower()}
    hits = [p for p in fused_files if p.stem.lower() in want]
    if len(hits) > 1:
        raise InputError(f"{folder}: several fused images for '{name}': {', '.join(p.name for p in hits)}")
    return hits[0] if hits else None


@dataclass
class MetricsTable:
    """Scores of several fused results: ``rows[name][key] = value`` (NaN where not computed)."""

    keys: list[str]
    rows: dict[str, dict[str, float]]
    higher_is_better: dict[str, bool]
    missing: list[str] = field(default_factory=list)

    def mean(self) -> dict[str, float]:
        """Mean of each column over the images where it is defined (not NaN); NaN if none."""
        out = {}
        for k in self.keys:
            vals = [r[k] for r in self.rows.values() if not math.isnan(r.get(k, math.nan))]
            out[k] = float(np.mean(vals)) if vals else math.nan
        return out

    def to_csv(self) -> str:
        """CSV text: header ``image,<keys>``, one row per image, full precision (``repr`` floats)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["image", *self.keys])
        for name, row in self.rows.items():
            w.writerow([name, *(repr(float(row.get(k, math.nan))) for k in self.keys)])
        return buf.getvalue()

    def to_markdown(self, digits: int = 4) -> str:
        """Markdown table with a direction arrow per column (↑ higher is better, ↓ lower) and a mean row."""
        def fmt(v: float) -> str:
            return "–" if math.isnan(v) else f"{v:.{digits}f}"

        head = ["image", *(f"{k} {'↑' if self.higher_is_better[k] else '↓'}" for k in self.keys)]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(self.keys)) + "|"]
        for name, row in self.rows.items():
            lines.append("| " + " | ".join([name, *(fmt(row.get(k, math.nan)) for k in self.keys)]) + " |")
        if len(self.rows) > 1:
            mean = self.mean()
            lines.append("| " + " | ".join(["**mean**", *(fmt(mean[k]) for k in self.keys)]) + " |")
        return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None


def score_folder(sources_dir_or_items: str | os.PathLike | Iterable[SourceSet], fused_dir: str | os.PathLike, *,
                 names: Iterable[str] | None = None, csv_path: str | os.PathLike | None = None,
                 markdown_path: str | os.PathLike | None = None, use_ground_truth: bool = True) -> MetricsTable:
    """Score every fused image in ``fused_dir`` against its source set.

    Args:
        sources_dir_or_items: folder of source sets (see the module docstring) or an iterable of
            :class:`SourceSet`.
        fused_dir: folder with ``<name>.ext`` / ``<name>_F.ext`` for each set name.
        names: metric keys (``None``: all that apply to each set, see :func:`compute_metrics`).
        csv_path: write the table as CSV there; ``markdown_path`` defaults to the same path with
            ``.md`` when only ``csv_path`` is given.
        use_ground_truth: score against ``<name>_GT`` files when present.

    Returns:
        the :class:`MetricsTable` (sets without a fused image are listed in ``missing``).

    Raises:
        InputError: no sets, no fused image for any set, unreadable images, size mismatches.
        OutputError: a table file cannot be written.
    """
    fused_dir = Path(fused_dir)
    if isinstance(sources_dir_or_items, (str, os.PathLike)):
        sets = find_source_sets(sources_dir_or_items)
    else:
        sets = list(sources_dir_or_items)
        if not sets:
            raise InputError("no source sets given")
    registry = _registry()
    if names is not None:
        names = [n.strip() for n in names if n.strip()]
        for n in names:
            if n not in registry:
                raise InputError(f"unknown metric '{n}' (known: {', '.join(registry)})")
    fused_files = _image_files(fused_dir)
    rows: dict[str, dict[str, float]] = {}
    missing: list[str] = []
    for s in sets:
        fused_path = _find_fused(fused_files, s.name, fused_dir)
        if fused_path is None:
            missing.append(s.name)
            continue
        srcs = [load_image(p) for p in s.sources]
        gt = load_image(s.ground_truth) if (use_ground_truth and s.ground_truth is not None) else None
        fused = load_image(fused_path)
        # a named ground-truth metric is left empty (NaN) for sets without a ground truth
        set_names = names
        if names is not None and gt is None:
            set_names = [n for n in names if not registry[n].needs_ground_truth]
        if set_names == []:
            rows[s.name] = {}
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MetricWarning)
            try:
                rows[s.name] = compute_metrics(srcs, fused, names=set_names, ground_truth=gt)
            except InputError as exc:
                raise InputError(f"{s.name}: {exc}") from None
        for w in caught:  # name the image in the warnings of undefined metrics
            warnings.warn(f"{s.name}: {w.message}", w.category, stacklevel=2)
    if not rows:
        raise InputError(f"{fused_dir}: no fused image found for any of the {len(sets)} source sets "
                         f"(expected e.g. {sets[0].name}.png or {sets[0].name}_F.png)")
    if missing:
        warnings.warn(f"no fused image in {fused_dir} for: {', '.join(missing)}", MetricWarning, stacklevel=2)
    if names is not None:
        keys = list(dict.fromkeys(names))  # every named column, NaN where it does not apply
    else:
        present = {k for r in rows.values() for k in r}
        keys = [k for k in registry if k in present]
    table = MetricsTable(keys=keys, rows={n: {k: r.get(k, math.nan) for k in keys} for n, r in rows.items()},
                         higher_is_better={k: registry[k].higher_is_better for k in keys}, missing=missing)
    if csv_path is not None:
        csv_path = Path(csv_path)
        if markdown_path is None:
            markdown_path = csv_path.with_suffix(".md")
        if Path(markdown_path) == csv_path:
            raise OutputError(f"{csv_path}: the CSV and markdown tables would be the same file; use a .csv name")
        _write_text(csv_path, table.to_csv())
    if markdown_path is not None:
        _write_text(Path(markdown_path), table.to_markdown())
    return table
