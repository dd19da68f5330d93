"""``mfif metrics``: score fused images.

    mfif metrics A B F [--gt GT] [--only Q_G,Q_Y] [--json]
    mfif metrics A B C F ...                 (more sources: the last image is the fused one)
    mfif metrics --folder FUSED_DIR --sources SRC_DIR [-o table.csv] [--only ...] [--json]

Plain output is an aligned table with the direction of each metric (↑ higher is better, ↓ lower);
``--json`` prints one object ``{key: value}`` (folder mode: ``{image: {key: value}}``), non-finite
values (an undefined metric, PSNR of identical images) as ``null``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

from mfif.errors import InputError
from mfif.metrics.compute import MetricWarning, compute_metrics, load_image, score_folder

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``metrics`` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser(
        "metrics", help="score fused images with the fusion-quality metrics",
        description="Score a fused image against its sources (and optional ground truth), or a "
                    "folder of fused images against a folder of source sets.")
    p.add_argument("images", nargs="*", metavar="IMAGE",
                   help="source images followed by the fused image (at least 3 files)")
    p.add_argument("--gt", metavar="GT", help="ground-truth (all-in-focus) image")
    p.add_argument("--only", metavar="KEYS", help="comma-separated metric keys, e.g. Q_G,Q_Y")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--folder", metavar="FUSED_DIR", help="folder of fused images <name>.png / <name>_F.png")
    p.add_argument("--sources", metavar="SRC_DIR",
                   help="folder of source sets <name>_A.png, <name>_B.png[, <name>_GT.png] (with --folder)")
    p.add_argument("-o", "--output", metavar="TABLE.csv",
                   help="with --folder: write the table as CSV there and as markdown next to it (.md)")
    p.set_defaults(func=run)
    return p


def _json_value(v: float):
    return v if math.isfinite(v) else None


def _format(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.6f}" if abs(v) < 1e5 else f"{v:.6g}"


def _table(values: dict[str, float]) -> str:
    from mfif.metrics import METRICS

    width = max(len(k) for k in values)
    lines = [f"{'metric'.ljust(width)}     value"]
    for k, v in values.items():
        arrow = "↑" if METRICS[k].higher_is_better else "↓"
        flag = ""
        if math.isfinite(v) and not METRICS[k].in_range(v):
            low, high = METRICS[k].value_range
            flag = f"  ⚠ outside [{low:g}, {high:g}]: round-off, not a quality (use Q_Y_stable)" if k.startswith("Q_Y") \
                else f"  ⚠ outside [{low:g}, {high:g}]"
        lines.append(f"{k.ljust(width)}  {arrow}  {_format(v)}{flag}")
    return "\n".join(lines)


def _names(only: str | None):
    if only is None:
        return None
    names = [n.strip() for n in only.split(",") if n.strip()]
    if not names:
        raise InputError("--only: no metric names given")
    return names


def run(args) -> int:
    """Run ``mfif metrics`` for parsed ``args``; returns the exit code (0). Errors raise MfifError."""
    names = _names(args.only)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MetricWarning)
        if args.folder or args.sources:
            out = _run_folder(args, names)
        else:
            out = _run_single(args, names)
    for w in caught:
        if issubclass(w.category, MetricWarning):
            print(f"mfif: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    print(out)
    return 0


def _run_single(args, names) -> str:
    if args.output:
        raise InputError("-o/--output is for --folder mode")
    if len(args.images) < 3:
        raise InputError(f"need at least 2 source images and the fused image, got {len(args.images)} file(s)")
    *source_paths, fused_path = args.images
    sources = [load_image(p) for p in source_paths]
    fused = load_image(fused_path)
    gt = load_image(args.gt) if args.gt else None
    values = compute_metrics(sources, fused, names=names, ground_truth=gt)
    if args.json:
        return json.dumps({k: _json_value(v) for k, v in values.items()})
    return _table(values)


def _run_folder(args, names) -> str:
    if not (args.folder and args.sources):
        raise InputError("folder mode needs both --folder FUSED_DIR and --sources SRC_DIR")
    if args.images:
        raise InputError("give either image files or --folder/--sources, not both")
    if args.gt:
        raise InputError("--gt is for single images; in folder mode put <name>_GT files next to the sources")
    table = score_folder(args.sources, args.folder, names=names, csv_path=args.output)
    if args.json:
        return json.dumps({n: {k: _json_value(v) for k, v in row.items()} for n, row in table.rows.items()})
    if args.output:
        return f"scored {len(table.rows)} image(s): wrote {args.output} and {Path(args.output).with_suffix('.md')}"
    return table.to_markdown().rstrip("\n")
