"""`mfif eval` and `mfif bench` subcommands (thin adapters over runner/report/bench)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mfif.errors import InputError


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="run methods over datasets and write tables and figures",
                              description="Evaluate fusion methods on dataset folders (pairs <name>_A/_B[/_GT] "
                                          "or one sub-folder per stack). Results are cached in REPORT_DIR/cache.")
    p.add_argument("--data", action="append", required=True, metavar="DIR", help="dataset folder (repeatable)")
    p.add_argument("--methods", help="comma-separated methods (default: every classical method)")
    p.add_argument("--metrics", help="comma-separated metric keys (default: a standard set, + PSNR/SSIM with GT); "
                                     "PSNR_band[K], SSIM_band[K]: vs GT within K px (default 8) of the true focus "
                                     "boundary, from the focus maps in focus/ beside the sources")
    p.add_argument("--variant", action="append", metavar="LABEL=METHOD[:KEY=VALUE...]",
                   help="also run METHOD with these options, reported as LABEL (repeatable), e.g. "
                        "'ba-initial=ba:refine=false' or 'ifcnn-max-authors=ifcnn-max:weights=IFCNN-MAX.pth'")
    p.add_argument("-o", "--output", required=True, metavar="REPORT_DIR")
    p.add_argument("--cache", metavar="DIR", help="cache folder (default REPORT_DIR/cache)")
    p.add_argument("--cached-only", action="store_true",
                   help="report only the results already in the cache; skip (and count) the runs it lacks")
    p.add_argument("--grid", help="comma-separated item names for the visual grids (default: first 2 per dataset)")
    p.add_argument("--grid-count", type=int, default=2)
    p.add_argument("--no-align", action="store_true",
                   help="fuse stacks of more than two frames as stored (default: aligned first, as mfif fuse does)")
    p.set_defaults(func=run_eval)

    p = subparsers.add_parser("bench", help="time and memory per method and image size",
                              description="Benchmark methods on synthetic pairs (each run in a fresh process).")
    p.add_argument("--methods", help="comma-separated methods (default: all)")
    p.add_argument("--sizes", default="520,1024", help="comma-separated square sizes (default 520,1024)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-cli", action="store_true", help="skip the whole-process CLI timing")
    p.add_argument("--memory-budget", type=float, metavar="MB",
                   help="stop (and report) a run whose resident memory exceeds MB")
    p.add_argument("-o", "--output", default="bench-out", metavar="DIR")
    p.add_argument("--stack", nargs="+", metavar="IMG",
                   help="time this stack (files, globs or a folder) end to end and by stage (default methods: "
                        "the default and sml) instead of synthetic pairs")
    p.add_argument("--external", action="append", default=[], metavar="CMD",
                   help="--stack: also time this shell command on the same frames, interleaved with mfif "
                        "(placeholders {inputs} and {output}), e.g. 'enfuse --exposure-weight=0 "
                        "--saturation-weight=0 --contrast-weight=1 --hard-mask -o {output} {inputs}'")
    p.add_argument("--no-align", action="store_true", help="--stack: fuse without alignment")
    p.set_defaults(func=run_bench)


def parse_variant(text: str) -> tuple[str, tuple[str, dict]]:
    """``LABEL=METHOD[:KEY=VALUE...]`` -> (label, (method, options)); values typed by the method's
    options dataclass, as ``mfif fuse --opt``."""
    from mfif.methods import get_method
    from mfif.options import split_pairs

    label, sep, rest = text.partition("=")
    if not sep or not label.strip() or not rest.strip():
        raise InputError(f"--variant expects LABEL=METHOD[:KEY=VALUE...], got '{text}'")
    method, *pairs = rest.split(":")
    options = get_method(method.strip()).parse_options(split_pairs(pairs, what=f"--variant '{text}': option"))
    return label.strip(), (method.strip(), options)


def run_eval(args: argparse.Namespace) -> int:
    from mfif.evaluation.report import write_report
    from mfif.evaluation.runner import EvalConfig, evaluate
    from mfif.methods import METHODS

    methods = _split(args.methods) or [n for n, s in METHODS.items() if s.kind == "classical"]
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    variants = dict(parse_variant(v) for v in args.variant or [])
    config = EvalConfig(methods=methods, out_dir=out, metrics=_split(args.metrics),
                        cache_dir=Path(args.cache) if args.cache else None, variants=variants,
                        align=not args.no_align, cached_only=args.cached_only)
    result = evaluate(args.data, config)
    if not result.rows:  # nothing to tabulate: say why, on stderr, without an empty report
        more = f" (and {len(result.problems) - 1} more problem(s))" if len(result.problems) > 1 else ""
        raise InputError(f"no results: {result.problems[0] if result.problems else 'no items found'}{more}")
    paths = write_report(result, out, cache_dir=config.cache_dir, grid_items=_split(args.grid),
                         grid_count=args.grid_count)
    print(f"{len(result.rows)} results ({result.method_runs} computed, {len(result.rows) - result.method_runs} "
          f"from cache{f', {result.skipped} not in the cache, skipped' if result.skipped else ''}); "
          f"report: {paths['markdown']}")
    for problem in result.problems:
        print(f"mfif: warning: {problem}", file=sys.stderr)
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from mfif.evaluation.bench import benchmark, format_table, write_outputs
    from mfif.methods import METHODS, get_method

    if getattr(args, "stack", None):
        return run_stack_bench(args)
    methods = _split(args.methods) or list(METHODS)
    for m in methods:
        get_method(m)
    try:
        sizes = [int(s) for s in _split(args.sizes) or []]
    except ValueError:
        raise InputError(f"--sizes expects comma-separated integers, got '{args.sizes}'") from None
    if not sizes or min(sizes) < 16:
        raise InputError("--sizes needs at least one size >= 16")
    rows = benchmark(methods, sizes, repeats=args.repeats, device=args.device, cli=not args.no_cli,
                     memory_budget_mb=args.memory_budget)
    print(format_table(rows))
    paths = write_outputs(rows, Path(args.output))
    print(f"saved {paths['csv']} and {paths['plot']}")
    return 0


def run_stack_bench(args: argparse.Namespace) -> int:
    """``mfif bench --stack``: see :mod:`mfif.evaluation.stack_bench`."""
    from mfif.evaluation.stack_bench import end_to_end, format_report, profile_stages, stack_frames
    from mfif.io import write_bytes_atomic
    from mfif.methods import DEFAULT_METHOD, get_method
    inputs = stack_frames(args.stack)
    if len(inputs) < 2:
        raise InputError(f"--stack needs at least 2 frames, found {len(inputs)}")
    methods = _split(args.methods) or list(dict.fromkeys([DEFAULT_METHOD, "sml"]))
    for m in methods:
        get_method(m)
    align = not args.no_align
    from PIL import Image

    with Image.open(inputs[0]) as im:
        shape = (len(inputs), len(im.getbands()), im.size[1], im.size[0])
    stages = {m: profile_stages(inputs, m, align=align) for m in methods}
    rows = end_to_end(inputs, methods, args.external, repeats=args.repeats, align=align)
    report = format_report(rows, stages, inputs=inputs, shape=shape, repeats=args.repeats)
    print(report)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "stack_bench.md", report.encode())
    print(f"saved {out / 'stack_bench.md'}")
    return 0
