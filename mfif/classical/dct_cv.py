"""DCT-variance fusion with consistency verification (DCT+Var+CV): M. B. A. Haghighat,
A. Aghagolzadeh, H. Seyedarabi, "Multi-focus image fusion for visual sensor networks in DCT
domain", Computers & Electrical Engineering 37(5), 2011.

The (luminance of the) frames is cut into 8x8 blocks; each block's variance is computed from its
orthonormal DCT coefficients (sum of squared AC coefficients / 64); the block of the frame with the
largest variance is chosen, then consistency verification replaces each block choice by the
majority choice of its 3x3 block neighbourhood. Sizes that are not multiples of the block are
padded by reflection and cropped back.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import dctn

from mfif.classical.laplacian import majority_vote
from mfif.decision import luminance, one_hot
from mfif.result import FusionResult


@dataclass
class DCTOptions:
    block: int = 8
    consistency: int = 1  # radius, in blocks, of the majority filter (0 disables)


def dct_block_variance(grey: np.ndarray, block: int) -> np.ndarray:
    """(H, W) with H, W multiples of ``block`` -> (H/b, W/b) variance of each block from its DCT."""
    h, w = grey.shape
    blocks = grey.reshape(h // block, block, w // block, block).transpose(0, 2, 1, 3).astype(np.float64)
    coeffs = dctn(blocks, type=2, norm="ortho", axes=(2, 3))
    energy = (coeffs ** 2).sum(axis=(2, 3)) - coeffs[:, :, 0, 0] ** 2
    return energy / (block * block)


def dct_variance_fusion(stack: np.ndarray, options: DCTOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) frames by DCT block variance; returns fused (C, H, W) and the decision map."""
    o = options or DCTOptions()
    n, c, h, w = stack.shape
    b = o.block
    ph, pw = (-h) % b, (-w) % b
    grey = luminance(stack)
    if ph or pw:
        grey = np.pad(grey, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(h, w) > max(ph, pw) else "edge")
    variance = np.stack([dct_block_variance(g, b) for g in grey])
    choice = majority_vote(np.argmax(variance, axis=0), n, o.consistency, variance)
    decision = np.repeat(np.repeat(choice, b, axis=0), b, axis=1)[:h, :w]
    weights = one_hot(decision, n)
    fused = np.take_along_axis(stack, decision[None, None].repeat(c, axis=1), axis=0)[0]
    return FusionResult(fused=fused.astype(np.float32), weights=weights, decision=decision.astype(np.int64))


def dct_variance_stream(frames, options: DCTOptions | None = None) -> FusionResult:
    """Running-reduction form of :func:`dct_variance_fusion` for long stacks (``frames``: ``len``
    and ``frames[i]`` -> (C, H, W)): pass 1 keeps the largest block variance and its frame, pass 2
    runs the consistency vote as a running reduction, pass 3 gathers the chosen pixels."""
    from mfif.classical.laplacian import _StreamingVote

    o = options or DCTOptions()
    n = len(frames)
    b = o.block

    def variance_of(frame):
        c, h, w = frame.shape
        ph, pw = (-h) % b, (-w) % b
        grey = luminance(frame[None])[0]
        if ph or pw:
            grey = np.pad(grey, ((0, ph), (0, pw)), mode="reflect" if min(h, w) > max(ph, pw) else "edge")
        return dct_block_variance(grey, b)

    best = choice = None
    for i in range(n):
        v = variance_of(frames[i])
        if best is None:
            best, choice = v, np.zeros(v.shape, np.int64)
        else:
            better = v > best
            best = np.where(better, v, best)
            choice[better] = i
    del best
    if o.consistency > 0:
        vote = _StreamingVote(choice, o.consistency)
        for i in range(n):
            vote.update(i, variance_of(frames[i]))
        choice = vote.winner
    fused = decision = None
    for i in range(n):
        frame = frames[i]
        if fused is None:
            c, h, w = frame.shape
            decision = np.repeat(np.repeat(choice, b, axis=0), b, axis=1)[:h, :w]
            fused = np.empty((c, h, w), np.float32)
        mask = decision == i
        fused[:, mask] = frame[:, mask]
    return FusionResult(fused=fused, decision=decision.astype(np.int64))


def dct_tile_plan(options: DCTOptions, shape: tuple[int, ...]):
    """Tile plan (:mod:`mfif.tiling`): block * (consistency + 1) on the block grid."""
    from mfif.tiling import TilePlan

    return TilePlan(halo=options.block * (max(options.consistency, 0) + 1), grid=options.block, options=options)
