"""Command line: ``mfif fuse | list | metrics | synth | train``.

Exit codes: 0 success; 1 an error in the input or output (one line on stderr, no traceback);
2 a usage error (argparse); 130 interrupted. ``--debug`` shows the traceback of unexpected errors.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time
from pathlib import Path

from mfif.errors import InputError, MfifError

# Subcommands that live next to their feature: module -> it provides add_parser(subparsers) and run(args).
_FEATURE_COMMANDS: tuple[str, ...] = (
    "mfif.evaluation.cli",
)


def _parse_option_value(text: str):
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _collect_options(args) -> dict:
    options = {}
    for item in args.opt or []:
        if "=" not in item:
            raise InputError(f"--opt expects KEY=VALUE, got '{item}'")
        key, value = item.split("=", 1)
        options[key.strip().replace("-", "_")] = _parse_option_value(value.strip())
    for name in ("weights", "device", "mode"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    return options


def _map_to_image(array):
    import numpy as np

    arr = np.asarray(array, dtype=np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return arr


def _save_maps(result, path: Path, n_sources: int, inputs) -> list[Path]:
    """Write the decision map to ``path`` and every other map next to it (``<stem>_<name>.png``)."""
    import numpy as np

    from mfif.io import write_image

    written = []
    maps = {}
    if result.decision is not None:
        maps["decision"] = np.asarray(result.decision, np.float32) / max(n_sources - 1, 1)
    if result.weights is not None:
        maps["weight0"] = result.weights[0]
    for name, value in result.maps.items():
        value = np.asarray(value)
        if value.ndim == 3:
            value = value[0]
        if value.ndim == 2:
            maps[name] = value
    if not maps:
        raise MfifError(f"method '{result.info.get('method')}' produces no decision or weight map to save")
    first = next(iter(maps))
    for name, value in maps.items():
        target = path if name == first else path.with_name(f"{path.stem}_{name}{path.suffix}")
        written.append(write_image(target, _map_to_image(value), bit_depth=8, inputs=inputs))
    return written


def _cmd_fuse(args) -> int:
    from tqdm import tqdm

    from mfif.api import fuse
    from mfif.io import Stack, check_output_path, expand_inputs, read_image_with_info, write_image
    from mfif.methods import get_method

    spec = get_method(args.method)
    options = _collect_options(args)
    spec.make_options(**options)  # validate option names before any work
    paths = expand_inputs(args.inputs)
    if len(paths) < 2:
        raise InputError(f"need at least 2 frames to fuse, got {len(paths)}" + (f" ({paths[0]})" if paths else ""))
    out = check_output_path(args.output, inputs=paths)
    if args.save_map:
        check_output_path(args.save_map, inputs=paths)
        if Path(args.save_map).resolve() == out.resolve():
            raise InputError(f"{args.save_map}: the map path equals the output path")
    import numpy as np

    from mfif.io import _check_sizes, _unify_channels

    start = time.perf_counter()
    images, infos = [], []
    for p in tqdm(paths, desc="reading", unit="frame", disable=None, leave=False):
        im, info = read_image_with_info(p)
        images.append(im)
        infos.append(info)
    names = [str(p) for p in paths]
    _check_sizes(images, names)
    images = _unify_channels(images, names)
    stack = Stack(images=np.stack(images), paths=list(paths), bit_depth=max(i.bit_depth for i in infos), infos=infos)
    del images
    with tqdm(total=1, desc=f"fusing {len(stack)} frames with {spec.name}", unit="stack", disable=None, leave=False) as bar:
        result = fuse(stack, method=spec.name, **options)
        bar.update(1)
    bit_depth = args.bit_depth or stack.bit_depth
    write_image(out, result.fused, bit_depth=bit_depth, inputs=paths)
    if args.save_map:
        _save_maps(result, Path(args.save_map), len(stack), paths)
    if not args.quiet:
        print(f"{out}: fused {len(stack)} frames with {spec.name} in {time.perf_counter() - start:.2f} s "
              f"({bit_depth}-bit)")
    return 0


def _cmd_list(args) -> int:
    from mfif.methods import DEFAULT_METHOD, METHODS

    width = max(len(n) for n in METHODS)
    for name, spec in METHODS.items():
        mark = " (default)" if name == DEFAULT_METHOD else ""
        print(f"{name:<{width}}  [{spec.kind}] {spec.summary}{mark}")
    if args.verbose:
        for name, spec in METHODS.items():
            _, opts = spec.load()
            fields = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(opts)
                               if f.default is not dataclasses.MISSING)
            print(f"  {name}: {fields or '(no options)'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from mfif import __version__
    from mfif.methods import DEFAULT_METHOD

    parser = argparse.ArgumentParser(prog="mfif", description="Multi-focus image fusion (focus stacking).")
    parser.add_argument("--version", action="version", version=f"mfif {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("fuse", help="fuse a stack of frames into one all-in-focus image",
                       description="Fuse frames (files, globs or folders) into one image.")
    p.add_argument("inputs", nargs="+", metavar="IMG", help="frames: files, globs ('*.jpg') or a folder")
    p.add_argument("-o", "--output", required=True, help="output file (.png, .tif, .jpg)")
    p.add_argument("-m", "--method", default=DEFAULT_METHOD, help=f"fusion method (default {DEFAULT_METHOD}; see 'mfif list')")
    p.add_argument("--save-map", metavar="FILE", help="write the decision/weight map(s) (other maps as FILE_<name>.png)")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), help="output bits per channel (default: as the input)")
    p.add_argument("--weights", help="network weights file for learned methods")
    p.add_argument("--device", help="torch device for learned methods (cpu, cuda)")
    p.add_argument("--mode", help="fusion mode for methods that have several (e.g. IFCNN)")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="method option (repeatable), see 'mfif list -v'")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_fuse)

    p = sub.add_parser("list", help="list the fusion methods")
    p.add_argument("-v", "--verbose", action="store_true", help="also show each method's options")
    p.set_defaults(func=_cmd_list)

    for module_name in _FEATURE_COMMANDS:
        module = importlib.import_module(module_name)
        before = set(sub.choices)
        module.add_parser(sub)
        for name in set(sub.choices) - before:
            if sub.choices[name].get_default("func") is None:
                sub.choices[name].set_defaults(func=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = args.func
    try:
        return int(func(args) or 0)
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
