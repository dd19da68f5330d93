"""``mfif train NET [flags]``: the table of trainers.

Each trainer module provides ``add_arguments(parser, name)`` (its flags, without importing torch)
and ``run(args)``. Add a line to :data:`TRAINERS` for a new network.
"""
from __future__ import annotations

import importlib

# name -> (module, one-line summary)
TRAINERS: dict[str, tuple[str, str]] = {
    "cnn": ("mfif.models.liu_cnn.trainer", "Liu et al. 2017 siamese CNN, original (fc1 with 256 units)"),
    "cnn-slight": ("mfif.models.liu_cnn.trainer", "Liu et al. 2017 siamese CNN, slight (no fc1)"),
    "hf-seg": ("mfif.models.hourglass.trainer", "Guerrero Pena et al. 2019 hourglass HF-Seg (focus-map segmentation, BCE)"),
    "hf-reg": ("mfif.models.hourglass.trainer", "Guerrero Pena et al. 2019 hourglass HF-Reg (image regression, NPS/L1/MSE)"),
    "ifcnn": ("mfif.models.ifcnn.trainer", "Zhang et al. 2020 IFCNN (two phases: MSE, then BN frozen + SSIM/gradient loss)"),
    "ba": ("mfif.models.ba.trainer", "Ma et al. 2019 boundary-aware ResNet, --net initial | boundary"),
    "focusnet": ("mfif.focusnet.trainer", "ours: multi-scale focus measures + small refinement net, pyramid blend"),
}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a network on synthetic data",
                                   description="Train one of the networks (see 'mfif train NET --help').")
    nets = parser.add_subparsers(dest="net", metavar="NET")
    nets.required = True
    for name, (module_name, summary) in TRAINERS.items():
        p = nets.add_parser(name, help=summary, description=summary)
        importlib.import_module(module_name).add_arguments(p, name)
        p.set_defaults(func=run, train_module=module_name)
    parser.set_defaults(func=run)


def run(args) -> int:
    return int(importlib.import_module(args.train_module).run(args) or 0)


def main(argv=None) -> int:
    """Stand-alone entry (``python -m mfif.models.train_cli cnn-slight ...``)."""
    import argparse

    top = argparse.ArgumentParser(prog="mfif")
    sub = top.add_subparsers(dest="command")
    add_parser(sub)
    args = top.parse_args(["train", *(argv if argv is not None else __import__("sys").argv[1:])])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
