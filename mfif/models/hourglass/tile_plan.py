"""Tile plan of ``hf-seg`` / ``hf-reg`` (:mod:`mfif.tiling`): the U-Net is local (no global step);
halo :func:`hourglass_receptive_radius` (137 for depth 4) + 3, times the N - 1 chained passes of a
series fold; tile origins on the 2^depth pooling grid.

Tested (``tests/test_tile_plans.py``): tiled == one pass to within 1/255, and the radius equals the
measured reach of the network.
"""
from __future__ import annotations

from mfif.tiling import TilePlan


def hourglass_receptive_radius(depth: int) -> int:
    """Receptive radius (pixels) of :class:`mfif.models.hourglass.network.HourglassNet` with ``depth``
    poolings, along its deepest path: two 3x3 convs per level (2 * 2^k each, encoder and decoder),
    2x2 max-pool (2^k), bilinear x2 upsampling (one coarse pixel, 2^(k+1))."""
    enc = sum(2 * 2 ** k for k in range(depth + 1))
    pools = sum(2 ** k for k in range(depth))
    ups = sum(2 ** (k + 1) for k in range(depth))
    dec = sum(2 * 2 ** k for k in range(depth))
    return enc + pools + ups + dec


def _hourglass_plan(variant: str, options, shape: tuple[int, ...]):
    from mfif.models.hourglass.pipeline import load_network

    depth = load_network(variant, options.weights, options.device, options.init).config.depth
    n = shape[0]
    chained = 1 if (n == 2 or options.nframe_strategy == "nway") else n - 1  # a series fold chains N - 1 passes
    return TilePlan(halo=chained * (hourglass_receptive_radius(depth) + 3), grid=2 ** depth,
                    options=options)


def hf_seg_tile_plan(options, shape: tuple[int, ...]):
    """Plan of ``hf-seg``: the U-Net is local (no global step); tile origins on its pooling grid."""
    return _hourglass_plan("seg", options, shape)


def hf_reg_tile_plan(options, shape: tuple[int, ...]):
    """Plan of ``hf-reg`` (Near is per pixel): as ``hf-seg``."""
    return _hourglass_plan("reg", options, shape)
