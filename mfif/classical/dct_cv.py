"""DCT-variance fusion with consistency verification (DCT+Var+CV): M. B. A. Haghighat,
A. Aghagolzadeh, H. Seyedarabi, "Multi-focus image fusion for visual sensor networks in DCT
domain", Computers & Electrical Engineering 37(5), 2011.

The (luminance of the) frames is cut into 8x8 blocks; each block's variance is computed from its
orthonormal DCT coefficients (sum of squared AC coefficients / 64); the block of the frame with the
largest variance is chosen, then consistency verification replaces each block choice by the
majority choice of its 3x3 block neighbourhood. Sizes that are not multiples of the block are
padded by reflection and cropped back.

Stacks of more than two frames (``stack_rule``): the block grid is too coarse for the thin slice
each frame of a long stack is sharp on, so the DCT score is taken at every pixel offset, and the
N-frame rule of :mod:`mfif.stack_rule` makes the decision and the blend. The score leaves out the
lowest AC coefficients ((0,1), (1,0), (1,1); :func:`sliding_block_detail_energy`): with them (the
plain variance) the smooth ramp of a strongly defocused edge outscores the sharp frame's fine
texture (8-frame layered stacks, PSNR_GT: 35.1 dB with the variance, 38.5 dB without them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import dctn

from mfif.classical.laplacian import majority_vote
from mfif.decision import luminance, one_hot
from mfif.result import FusionResult
from mfif.stack_rule import nframe_fusion, use_nframe_rule


@dataclass
class DCTOptions:
    block: int = 8
    consistency: int = 1  # radius, in blocks, of the majority filter (0 disables)
    stack_rule: str = "auto"  # mfif.stack_rule: "auto" = the N-frame rule for more than 2 frames


def dct_block_variance(grey: np.ndarray, block: int) -> np.ndarray:
    """(H, W) with H, W multiples of ``block`` -> (H/b, W/b) variance of each block from its DCT."""
    h, w = grey.shape
    blocks = grey.reshape(h // block, block, w // block, block).transpose(0, 2, 1, 3).astype(np.float64)
    coeffs = dctn(blocks, type=2, norm="ortho", axes=(2, 3))
    energy = (coeffs ** 2).sum(axis=(2, 3)) - coeffs[:, :, 0, 0] ** 2
    return energy / (block * block)


def sliding_block_detail_energy(grey: np.ndarray, block: int) -> np.ndarray:
    """Energy of the b x b block's orthonormal DCT-II coefficients (u, v) with u > 1 or v > 1, at
    every pixel offset (reflected borders): (H, W) -> (H, W) float32.

    = (sum of squares over the block) - (the squares of the four lowest coefficients (0,0), (0,1),
    (1,0), (1,1)), each a separable correlation with a DCT basis row (Parseval).
    """
    import cv2
    from scipy.fft import dct

    img = np.asarray(grey, np.float32)
    basis = dct(np.eye(block), norm="ortho", axis=0).astype(np.float32)  # row k = k-th basis vector
    energy = cv2.boxFilter(img * img, -1, (block, block), normalize=False, borderType=cv2.BORDER_REFLECT)
    for u in (0, 1):
        for v in (0, 1):
            coeff = cv2.sepFilter2D(img, -1, basis[v], basis[u], borderType=cv2.BORDER_REFLECT)
            energy -= coeff * coeff
    return np.maximum(energy, 0.0)


def dct_stack_measure(o: DCTOptions):
    """The focus measure of the N-frame rule: (C, H, W) frame -> (H, W)
    :func:`sliding_block_detail_energy` of its luminance (reach: one block)."""
    return lambda frame: sliding_block_detail_energy(luminance(frame[None])[0], o.block)


def dct_variance_fusion(stack: np.ndarray, options: DCTOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) frames by DCT block variance; returns fused (C, H, W) and the decision map."""
    o = options or DCTOptions()
    n, c, h, w = stack.shape
    b = o.block
    if use_nframe_rule(o.stack_rule, n):
        return nframe_fusion(stack, dct_stack_measure(o))
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
    if use_nframe_rule(o.stack_rule, n):
        return nframe_fusion(frames, dct_stack_measure(o))

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
    from mfif.stack_rule import nframe_tile_plan
    from mfif.tiling import TilePlan

    if use_nframe_rule(options.stack_rule, shape[0]):  # the N-frame rule: per-pixel argmax of a local measure
        return nframe_tile_plan(dct_stack_measure(options), options.block, options, shape)
    return TilePlan(halo=options.block * (max(options.consistency, 0) + 1), grid=options.block, options=options)
