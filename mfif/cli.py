"""Command line: ``mfif fuse | batch | list | metrics | synth | train | app``.

Exit codes: 0 success; 1 an error in the input or output (one line on stderr, no traceback);
2 a usage error (argparse); 130 interrupted. ``--debug`` shows the traceback of unexpected errors.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
import warnings
from pathlib import Path

from mfif.errors import InputError, MfifError
from mfif.fuse_files import _collect_options, _fuse_one

# Subcommands that live next to their feature: command -> (module, one-line help). The module
# provides add_parser(subparsers) and run(args) and is imported only when its command runs, so
# `mfif --help`, `mfif list` and `mfif fuse` with a classical method import no torch.
_FEATURE_COMMANDS: dict[str, tuple[str, str]] = {
    "metrics": ("mfif.metrics.cli", "score fused images with the fusion-quality metrics"),
    "synth": ("mfif.synth.cli", "write a synthetic multi-focus dataset (or the dev set) with a contact sheet"),
    "eval": ("mfif.evaluation.cli", "run methods over datasets and write tables and figures"),
    "bench": ("mfif.evaluation.cli", "time and memory per method and image size"),
    "train": ("mfif.models.train_cli", "train a network on synthetic data"),
    "batch": ("mfif.batch", "fuse every subfolder of a folder as one stack (in parallel, on Dask)"),
    "app": ("mfif.app.cli", "local web app: fuse, compare, inspect and retouch in the browser"),
}


def _cmd_fuse(args) -> int:
    from mfif.interrupt import run_interruptibly
    from mfif.io import expand_inputs
    from mfif.methods import get_method

    spec = get_method(args.method)
    options = _collect_options(args, spec)
    spec.make_options(**options)  # validate option names before any work
    from mfif.raw import RawOptions, set_raw_options

    set_raw_options(RawOptions(colour=getattr(args, "raw_colour", "linear")))
    from mfif.allocator import reuse_large_allocations

    reuse_large_allocations()  # frame-sized arrays reused, not page-faulted in again (mfif.allocator)
    if args.tile is not None and args.tile != 0 and args.tile < 16:
        raise InputError(f"--tile must be 0 (off) or at least 16 pixels, got {args.tile}")
    if args.batch_frames < 2:
        raise InputError(f"--batch-frames must be at least 2, got {args.batch_frames}")
    if args.retouch:
        from mfif.retouching import load_strokes

        load_strokes(args.retouch)  # a bad strokes file fails before any work
    if args.batch:
        if args.retouch:
            raise InputError("--retouch paints one result; it cannot be combined with --batch")
        if args.inputs:
            raise InputError("--batch takes the stacks' parent folder; give no other inputs")
        return _cmd_fuse_batch(args, spec, options)
    if not args.inputs:
        args.usage_error("the following arguments are required: IMG (or --batch DIR)")
    paths = expand_inputs(args.inputs)
    # in a worker thread: Ctrl-C is answered at once even inside a long C call (alignment)
    from mfif import progress

    with progress.enable(not args.quiet):  # a bar per stage that runs over a second
        line = run_interruptibly(_fuse_one, paths, Path(args.output), args, spec, options, save_map=args.save_map,
                                 depth_map=args.depth_map, save_transforms=args.save_transforms,
                                 label=None if args.quiet else f"mfif: fusing {len(paths)} frames with {spec.name}")
    if not args.quiet:
        print(line)
    return 0


def _cmd_fuse_batch(args, spec, options) -> int:
    """One stack per subfolder of --batch DIR -> OUT_DIR/<name>.<format>, one after another in this
    process: the sequential executor of :mod:`mfif.batch` (``mfif batch`` runs the same on Dask)."""
    from mfif.batch import discover_stacks, print_report, run_batch, settings_from_args

    root = Path(args.batch)
    if not root.is_dir():
        raise InputError(f"{root}: --batch expects a folder of stack folders")
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: with --batch, -o names an output folder")
    report = run_batch(discover_stacks(root, out_dir), settings_from_args(args), overwrite=args.overwrite,
                       progress=not args.quiet, debug=args.debug)
    print_report(report, quiet=args.quiet)
    return report.exit_code


def _cmd_list(args) -> int:
    from mfif.methods import DEFAULT_METHOD, METHODS

    width = max(len(n) for n in METHODS)
    for name, spec in METHODS.items():
        mark = " (default)" if name == DEFAULT_METHOD else ""
        print(f"{name:<{width}}  [{spec.kind}] {spec.summary}{mark}")
    if args.verbose:
        for name, spec in METHODS.items():
            opts = spec.make_options()  # the method's own defaults (ifcnn-mean: fuse_rule='mean')
            fields = ", ".join(f"{f.name}={getattr(opts, f.name)!r}" for f in dataclasses.fields(opts))
            print(f"  {name}: {fields or '(no options)'}")
    return 0


_GLOBAL_OPTIONS_WITH_VALUE = ("--max-pixels",)  # top-level options of build_parser that take a value


def _command_of(argv: list[str] | None) -> str | None:
    """The subcommand that ``argv`` runs (its first word that is neither an option nor the value of
    a top-level option such as ``--max-pixels N``; "" if none)."""
    words = iter(argv)
    for word in words:
        if word in _GLOBAL_OPTIONS_WITH_VALUE:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return ""


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``mfif`` parser; with ``argv``, only the feature command that ``argv`` runs is loaded
    (the others stay one-line entries of ``--help``); without, all are."""
    from mfif import __version__
    from mfif.methods import DEFAULT_METHOD

    parser = argparse.ArgumentParser(prog="mfif", description="Multi-focus image fusion (focus stacking).")
    parser.add_argument("--version", action="version", version=f"mfif {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    max_pixels_help = ("largest frame to decode, width x height as declared in the file (default 268M; "
                       "0: no limit); larger files are refused before decoding")
    parser.add_argument("--max-pixels", metavar="N", default=argparse.SUPPRESS, help=max_pixels_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("fuse", help="fuse a stack of frames into one all-in-focus image",
                       description="Fuse frames (files, globs or folders) into one image.")
    p.add_argument("inputs", nargs="*", metavar="IMG", help="frames: files, globs ('*.jpg') or a folder")
    p.add_argument("-o", "--output", required=True, help="output file (.png, .tif, .jpg); with --batch the output folder")
    p.add_argument("-m", "--method", default=DEFAULT_METHOD, help=f"fusion method (default {DEFAULT_METHOD}; see 'mfif list')")
    p.add_argument("--save-map", metavar="FILE", help="write the decision/weight map(s) (other maps as FILE_<name>.png)")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), help="output bits per channel (default: as the input)")
    p.add_argument("--weights", help="network weights file for learned methods")
    p.add_argument("--device", help="torch device for learned methods (cpu, cuda)")
    p.add_argument("--mode", metavar="VALUE", help="deprecated: read as --opt mode=VALUE; use the method's own "
                   "option (--opt nframe_strategy=..., modality=..., border=...)")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="method option (repeatable), see 'mfif list -v'")
    p.add_argument("--retouch", metavar="STROKES.json", help="paint source frames into the result along the brush "
                   "strokes saved by 'mfif app' (mfif.retouch)")
    g = p.add_argument_group("real stacks (alignment, long stacks, huge images, batches)")
    g.add_argument("--align", dest="align", action="store_true", default=None,
                   help="register every frame to the middle frame (default: on for more than 2 frames)")
    g.add_argument("--no-align", dest="align", action="store_false", help="do not register the frames")
    g.add_argument("--align-model", default="affine", choices=("translation", "similarity", "affine", "homography"),
                   help="motion model of the alignment (default affine)")
    g.add_argument("--save-transforms", metavar="FILE.json", help="write the estimated alignment (matrices, crop, gains)")
    g.add_argument("--depth-map", metavar="FILE", help="write the frame-index map: FILE (colour) and FILE_raw.png (16-bit index)")
    g.add_argument("--tile", type=int, metavar="SIZE", help="process images in tiles of SIZE pixels (default: 1024 for frames over 12 MP; 0: never)")
    g.add_argument("--batch-frames", type=int, default=8, metavar="K",
                   help="methods without a running reduction fuse at most K frames at once (default 8)")
    g.add_argument("--batch", metavar="DIR", help="fuse every subfolder of DIR as one stack into the folder -o")
    g.add_argument("--format", default="png", choices=("png", "tif", "jpg"), help="--batch output format (default png)")
    g.add_argument("--overwrite", action="store_true", help="--batch: redo every stack, replacing its outputs "
                   "(without it, stacks the manifest proves done are skipped and changed ones redone)")
    p.add_argument("--max-pixels", metavar="N", default=argparse.SUPPRESS, help=max_pixels_help)
    p.add_argument("--raw-colour", choices=("linear", "camera"), default="linear",
                   help="camera RAW frames: linear sRGB primaries (default) or the camera's own RGB")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_fuse, usage_error=p.error)

    p = sub.add_parser("list", help="list the fusion methods")
    p.add_argument("-v", "--verbose", action="store_true", help="also show each method's options")
    p.set_defaults(func=_cmd_list)

    wanted = None if argv is None else _command_of(argv)
    for module_name in dict.fromkeys(m for name, (m, _) in _FEATURE_COMMANDS.items() if wanted in (None, name)):
        module = importlib.import_module(module_name)
        before = set(sub.choices)
        module.add_parser(sub)
        for name in set(sub.choices) - before:
            if sub.choices[name].get_default("func") is None:
                sub.choices[name].set_defaults(func=module.run)
    for name, (_, summary) in _FEATURE_COMMANDS.items():
        if name not in sub.choices:  # not loaded: a one-line entry of --help
            sub.add_parser(name, help=summary, add_help=False)
    return parser


def _one_line_warning_printer():
    """Warnings as one ``mfif: warning: ...`` line on stderr, each distinct message once (a frame
    is read more than once by the low-memory pipeline; its warning is said once)."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message).splitlines()[0] if str(message) else category.__name__
        if text not in seen:
            seen.add(text)
            print(f"mfif: warning: {text}", file=sys.stderr)

    return show


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    func = args.func
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning_printer()
            if getattr(args, "max_pixels", None) is not None:
                from mfif.pixel_budget import set_max_pixels

                set_max_pixels(args.max_pixels)
            code = int(func(args) or 0)
            sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
            return code
    except BrokenPipeError:  # the reader went away (mfif list | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except MfifError as exc:
        print(f"mfif: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mfif: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("mfif: error: out of memory (try a smaller image or tiling)", file=sys.stderr)
        return 1
    except Exception as exc:  # unexpected: one line unless --debug
        if args.debug:
            raise
        print(f"mfif: internal error: {exc.__class__.__name__}: {exc} (rerun with --debug for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
