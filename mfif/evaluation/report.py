"""Turn evaluation rows into a CSV, a markdown table, box plots and visual grids."""
from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from mfif.evaluation.runner import EvalResult, EvalRow, finite
from mfif.io import write_bytes_atomic


def _metric_names(rows: list[EvalRow]) -> list[str]:
    names: list[str] = []
    for r in rows:
        for k in r.values:
            if k not in names:
                names.append(k)
    return names


def write_csv(rows: list[EvalRow], path: Path) -> Path:
    """Per-item values, one row per (dataset, item, method)."""
    names = _metric_names(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["dataset", "item", "method", "seconds", *names])
    for r in rows:
        writer.writerow([r.dataset, r.item, r.method, "" if r.seconds is None else f"{r.seconds:.6g}",
                         *["" if (v := r.values.get(n)) is None or math.isnan(v) else repr(float(v)) for n in names]])
    write_bytes_atomic(Path(path), buf.getvalue().encode())
    return Path(path)


def read_csv(path: Path) -> list[EvalRow]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = []
        for rec in reader:
            values = {k: (float(v) if v != "" else float("nan")) for k, v in rec.items()
                      if k not in ("dataset", "item", "method", "seconds")}
            rows.append(EvalRow(rec["dataset"], rec["item"], rec["method"],
                                float(rec["seconds"]) if rec["seconds"] else None, values))
    return rows


def _in_range(name: str, value: float) -> bool:
    """Whether ``value`` lies in the declared range of metric ``name`` (no range: always)."""
    from mfif.metrics import METRICS

    return name not in METRICS or METRICS[name].in_range(value)


def out_of_range_counts(rows: list[EvalRow]) -> dict[tuple[str, str, str], int]:
    """{(dataset, metric, method): number of items whose value is outside the metric's declared
    range} (only nonzero counts). Such values are flagged in tables and never ranked."""
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for r in rows:
        for name, v in r.values.items():
            if v is not None and not math.isnan(v) and not _in_range(name, v):
                counts[r.dataset, name, r.method] += 1
    return dict(counts)


def summarize(rows: list[EvalRow]):
    """Per dataset: {metric: {method: (mean, std, n, wins)}} with wins = items where the method is
    best on that metric (ties count for every tied method). A value outside the metric's declared
    range (:attr:`mfif.metrics.Metric.value_range`) wins nothing (see :func:`out_of_range_counts`)."""
    from mfif.metrics import METRICS

    out: dict[str, dict[str, dict[str, tuple[float, float, int, int]]]] = {}
    by_ds: dict[str, list[EvalRow]] = defaultdict(list)
    for r in rows:
        by_ds[r.dataset].append(r)
    for ds, ds_rows in by_ds.items():
        methods = list(dict.fromkeys(r.method for r in ds_rows))
        table: dict[str, dict[str, tuple[float, float, int, int]]] = {}
        for name in _metric_names(ds_rows):
            higher = METRICS[name].higher_is_better if name in METRICS else True
            per_item: dict[str, dict[str, float]] = defaultdict(dict)
            for r in ds_rows:
                v = r.values.get(name)
                if v is not None and not math.isnan(v) and _in_range(name, v):
                    per_item[r.item][r.method] = v
            wins = defaultdict(int)
            for item_vals in per_item.values():
                if len(item_vals) < 2:
                    continue
                best = max(item_vals.values()) if higher else min(item_vals.values())
                for m, v in item_vals.items():
                    if v == best:
                        wins[m] += 1
            table[name] = {}
            for m in methods:
                vals = finite(r.values.get(name) for r in ds_rows if r.method == m)
                if vals:
                    table[name][m] = (float(np.mean(vals)), float(np.std(vals)), len(vals), wins[m])
        out[ds] = table
    return out


def markdown_table(rows: list[EvalRow], digits: int = 4) -> str:
    """Means ± std per metric (rows) and method (columns); best mean in bold; wins in brackets.
    A mean over values outside the metric's declared range is flagged (``⚠ k out of range``) and
    never bold."""
    from mfif.metrics import METRICS

    parts = []
    flagged = out_of_range_counts(rows)
    for ds, table in summarize(rows).items():
        methods = list(dict.fromkeys(r.method for r in rows if r.dataset == ds))
        n_items = len({r.item for r in rows if r.dataset == ds})
        parts.append(f"### {ds} ({n_items} items)\n")
        parts.append("| metric | " + " | ".join(methods) + " |")
        parts.append("|---|" + "---|" * len(methods))
        for name, per_method in table.items():
            higher = METRICS[name].higher_is_better if name in METRICS else True
            means = {m: v[0] for m, v in per_method.items() if not flagged.get((ds, name, m))}
            best = (max if higher else min)(means.values()) if means else None
            cells = []
            for m in methods:
                if m not in per_method:
                    cells.append("–")
                    continue
                mean, std, _, wins = per_method[m]
                text = f"{mean:.{digits}f} ± {std:.{digits}f} ({wins})"
                if flagged.get((ds, name, m)):
                    cells.append(f"{text} ⚠ {flagged[ds, name, m]} out of range")
                    continue
                cells.append(f"**{text}**" if best is not None and round(mean, digits) == round(best, digits) else text)
            arrow = "↑" if higher else "↓"
            parts.append(f"| {name} {arrow} | " + " | ".join(cells) + " |")
        secs = {m: finite(r.seconds for r in rows if r.dataset == ds and r.method == m) for m in methods}
        parts.append("| seconds/item | " + " | ".join(f"{np.mean(s):.3f}" if s else "–" for s in secs.values()) + " |")
        parts.append("")
    parts.append("Cells: mean ± std over items (per-item wins in brackets; ties count for each). "
                 "Bold: best mean. ↑ higher is better, ↓ lower is better. ⚠: values outside the metric's "
                 "range (round-off, not quality): not ranked.")
    return "\n".join(parts) + "\n"


def box_plots(rows: list[EvalRow], out_dir: Path) -> list[Path]:
    """One PNG per dataset: a box plot per metric, one box per method."""
    from mfif.evaluation.plotting import pyplot

    plt = pyplot()

    written = []
    for ds in dict.fromkeys(r.dataset for r in rows):
        ds_rows = [r for r in rows if r.dataset == ds]
        names = _metric_names(ds_rows)
        methods = list(dict.fromkeys(r.method for r in ds_rows))
        cols = min(4, len(names))
        nrows = math.ceil(len(names) / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.8 * nrows), squeeze=False)
        for ax, name in zip(axes.ravel(), names):
            data = [finite(r.values.get(name) for r in ds_rows if r.method == m) or [np.nan] for m in methods]
            ax.boxplot(data, showfliers=False)
            ax.set_xticks(range(1, len(methods) + 1), methods, rotation=60, fontsize=7)
            ax.set_title(name, fontsize=9)
            ax.tick_params(axis="y", labelsize=7)
        for ax in axes.ravel()[len(names):]:
            ax.axis("off")
        fig.suptitle(f"{ds}: per-item metric values", fontsize=10)
        fig.tight_layout()
        path = Path(out_dir) / f"{ds}_metrics.png"
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        write_bytes_atomic(path, buf.getvalue())
        written.append(path)
    return written


def _boundary_crop(sources: np.ndarray, size: int) -> tuple[int, int, int]:
    """(y, x, size) of a square crop centred on a focused/defocused boundary between the first
    and last source (where their local sharpness ranking flips)."""
    import cv2

    from mfif.decision import luminance
    from mfif.focus import sum_modified_laplacian

    grey = luminance(sources)
    h, w = grey.shape[-2:]
    radius = max(2, min(h, w) // 40)
    a = sum_modified_laplacian(grey[0], radius)
    b = sum_modified_laplacian(grey[-1], radius)
    eps = 1e-3 * max(float(a.max()), float(b.max()), 1e-12)
    # signed confidence that A is sharper; its steepest change is where confident-A meets confident-B
    signed = cv2.GaussianBlur(np.log((a + eps) / (b + eps)).astype(np.float32), (0, 0), 2 * radius)
    gy, gx = np.gradient(signed)
    edge = np.hypot(gx, gy)
    margin = size // 2
    edge[:margin] = 0
    edge[h - margin:] = 0
    edge[:, :margin] = 0
    edge[:, w - margin:] = 0
    y, x = np.unravel_index(int(np.argmax(edge)), edge.shape)
    return max(0, min(h - size, y - margin)), max(0, min(w - size, x - margin)), size


def visual_grid(sources: np.ndarray, results: dict[str, np.ndarray], path: Path, title: str = "") -> Path:
    """Rows: full images, a zoomed crop around a focus boundary, |difference| maps (fused − source A).

    Args:
        sources: (N, C, H, W); results: method -> (C, H, W).
    """
    from mfif.evaluation.plotting import pyplot

    plt = pyplot()

    panels = [(f"source {chr(65 + i)}", s) for i, s in enumerate(sources)] + list(results.items())
    h, w = sources.shape[-2:]
    size = max(16, min(h, w) // 4)
    y, x, size = _boundary_crop(sources, size)
    cols = len(panels)
    fig, axes = plt.subplots(3, cols, figsize=(2.4 * cols, 7.2), squeeze=False)

    def show(ax, img, cmap=None, vmin=None, vmax=None):
        img = np.asarray(img)
        if img.ndim == 3:
            img = img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)
        if cmap is None:
            img = np.clip(img, 0, 1)
            if img.ndim == 2:
                cmap, vmin, vmax = "gray", 0, 1
        ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])

    for col, (name, img) in enumerate(panels):
        show(axes[0, col], img)
        axes[0, col].add_patch(plt.Rectangle((x, y), size, size, fill=False, color="red", lw=1))
        axes[0, col].set_title(name, fontsize=8)
        show(axes[1, col], img[:, y:y + size, x:x + size])
        diff = np.abs(np.asarray(img, np.float32) - sources[0]).mean(axis=0)
        show(axes[2, col], diff, cmap="magma", vmin=0, vmax=max(0.05, float(np.percentile(diff, 99.5))))
    axes[1, 0].set_ylabel("boundary crop", fontsize=8)
    axes[2, 0].set_ylabel("|fused − A|", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(Path(path), buf.getvalue())
    return Path(path)


def write_report(result: EvalResult, out_dir: Path, *, cache_dir: Path | None = None,
                 grid_items: list[str] | None = None, grid_count: int = 2) -> dict[str, Path]:
    """Write results.csv, results.md, <dataset>_metrics.png and grid_<dataset>_<item>.png."""
    from mfif.io import read_image, read_stack

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache_dir or out_dir / "cache")
    paths = {"csv": write_csv(result.rows, out_dir / "results.csv")}
    md = ["# Evaluation\n", markdown_table(result.rows)]
    if result.problems:
        md.append("\n## Problems (items or runs skipped)\n")
        md.extend(f"- {p}" for p in result.problems)
        md.append("")
    write_bytes_atomic(out_dir / "results.md", "\n".join(md).encode())
    paths["markdown"] = out_dir / "results.md"
    if result.rows:
        for p in box_plots(result.rows, out_dir):
            paths[p.stem] = p
    for ds in result.datasets:
        names = [it.name for it in ds.items]
        chosen = [n for n in (grid_items or names[:grid_count]) if n in names]
        for item in (it for it in ds.items if it.name in chosen):
            fused = {}
            for r in result.rows:
                if r.dataset == ds.name and r.item == item.name:
                    f = cache_dir / ds.name / r.method / f"{item.name}.png"
                    if f.exists():
                        fused[r.method] = read_image(f)
            if not fused:
                continue
            try:
                sources = read_stack(item.sources).images
                if any(v.shape[-2:] != sources.shape[-2:] for v in fused.values()):  # fused after alignment
                    from mfif.evaluation.stack_items import align_item

                    sources = align_item(sources, None)[0]
            except Exception:
                continue
            fused = {m: (np.repeat(v, 3, 0) if v.shape[0] == 1 and sources.shape[1] == 3 else v) for m, v in fused.items()}
            p = visual_grid(sources, fused, out_dir / f"grid_{ds.name}_{item.name}.png", f"{ds.name} / {item.name}")
            paths[p.stem] = p
    return paths
