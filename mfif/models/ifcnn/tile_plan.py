"""Tile plan of ``ifcnn-*`` (:mod:`mfif.tiling`): the network's 11x11 receptive field
(:data:`mfif.models.ifcnn.network.RECEPTIVE_RADIUS` + 2). The exposure mode with
``exposure_enhance`` (CLAHE over the whole image) is not local: its plan is approximate (tiles
then differ from one pass, with a warning).
"""
from __future__ import annotations
from mfif.tiling import TilePlan


def ifcnn_tile_plan(options, shape: tuple[int, ...]):
    """Plan of ``ifcnn-*``: the network's 11x11 receptive field; exposure + enhance (CLAHE over the
    whole image) is not local and only approximated."""
    from mfif.models.ifcnn.network import RECEPTIVE_RADIUS

    approximate = options.modality == "exposure" and options.exposure_enhance
    return TilePlan(halo=RECEPTIVE_RADIUS + 2, grid=1, options=options, approximate=approximate)
