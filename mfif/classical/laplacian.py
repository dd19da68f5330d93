"""Laplacian-pyramid fusion (Burt & Adelson 1983; detail selection as in Burt & Kolczynski 1993).

Each frame is decomposed into a Laplacian pyramid; at every detail level each pixel takes the
coefficient of the frame with the largest absolute value (summed over channels, so all channels
come from one frame), followed by a consistency check: a 3x3 majority vote on the choice map.
The coarsest (base) level is the mean of the frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mfif.result import FusionResult


@dataclass
class LaplacianOptions:
    """levels: number of detail levels (0 = automatic: as many as leave a base of >= 8 pixels,
    at most 6). consistency: radius of the majority vote on the choice map (0 disables)."""

    levels: int = 0
    consistency: int = 1


def _auto_levels(h: int, w: int) -> int:
    return int(max(1, min(6, np.floor(np.log2(min(h, w) / 8.0)))))


def _pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """(H, W, C) float32 -> [L_0 (finest), ..., L_{levels-1}, base]."""
    gaussian = [image]
    for _ in range(levels):
        gaussian.append(cv2.pyrDown(gaussian[-1]))
    pyramid = []
    for fine, coarse in zip(gaussian[:-1], gaussian[1:]):
        up = cv2.pyrUp(coarse, dstsize=(fine.shape[1], fine.shape[0]))
        pyramid.append(fine - up.reshape(fine.shape))
    pyramid.append(gaussian[-1])
    return pyramid


def _collapse(pyramid: list[np.ndarray]) -> np.ndarray:
    image = pyramid[-1]
    for detail in reversed(pyramid[:-1]):
        up = cv2.pyrUp(image, dstsize=(detail.shape[1], detail.shape[0])).reshape(detail.shape)
        image = detail + up
    return image


def majority_vote(choice: np.ndarray, n_sources: int, radius: int, activity: np.ndarray | None = None) -> np.ndarray:
    """Replace each label by the most frequent label in its (2r+1)^2 window.

    Ties are broken by the window sum of ``activity`` (N, H, W) when given, so the result does not
    depend on the order of the sources.
    """
    if radius <= 0:
        return choice
    k = 2 * radius + 1
    counts = np.stack([
        cv2.boxFilter((choice == i).astype(np.float32), -1, (k, k), normalize=False, borderType=cv2.BORDER_REFLECT)
        for i in range(n_sources)]).astype(np.float64)
    if activity is not None:
        local = np.stack([cv2.boxFilter(a.astype(np.float32), -1, (k, k), borderType=cv2.BORDER_REFLECT)
                          for a in activity]).astype(np.float64)
        counts += 0.5 * local / (local.max(axis=0, keepdims=True) + 1e-30)  # < 1: only breaks ties
    return np.argmax(counts, axis=0)


def laplacian_pyramid_fusion(stack: np.ndarray, options: LaplacianOptions | None = None) -> FusionResult:
    """Fuse (N, C, H, W) frames with a Laplacian pyramid; returns fused (C, H, W)."""
    options = options or LaplacianOptions()
    n, c, h, w = stack.shape
    levels = options.levels or _auto_levels(h, w)
    pyramids = [_pyramid(np.ascontiguousarray(np.moveaxis(frame, 0, -1)), levels) for frame in stack]
    fused_pyramid = []
    finest_choice = None
    for level in range(levels):
        coeffs = np.stack([p[level].reshape(p[level].shape[0], p[level].shape[1], -1) for p in pyramids])
        activity = np.abs(coeffs).sum(axis=-1)
        choice = majority_vote(np.argmax(activity, axis=0), n, options.consistency, activity)
        if level == 0:
            finest_choice = choice
        picked = np.take_along_axis(coeffs, choice[None, :, :, None], axis=0)[0]
        fused_pyramid.append(picked.reshape(pyramids[0][level].shape))
    fused_pyramid.append(np.mean([p[-1] for p in pyramids], axis=0, dtype=np.float64).astype(np.float32))
    fused = _collapse(fused_pyramid).reshape(h, w, c)
    fused = np.clip(np.moveaxis(fused, -1, 0), 0.0, 1.0).astype(np.float32)
    return FusionResult(fused=fused, decision=finest_choice.astype(np.int64), info={"levels": levels})


class _StreamingVote:
    """:func:`majority_vote` as a running reduction over sources: feed (i, activity_i) in order;
    the winner is the largest (window count, window activity) pair, ties to the lowest index --
    the same order as ``majority_vote``'s count + 0.5 * activity / max(activity) (which breaks
    count ties only), up to float rounding of that division."""

    def __init__(self, choice: np.ndarray, radius: int):
        self.choice = choice
        self.k = 2 * radius + 1
        self.best_count = self.best_local = self.winner = None

    def update(self, i: int, activity: np.ndarray) -> None:
        k = self.k
        count = cv2.boxFilter((self.choice == i).astype(np.float32), -1, (k, k), normalize=False,
                              borderType=cv2.BORDER_REFLECT)
        local = cv2.boxFilter(activity.astype(np.float32), -1, (k, k), borderType=cv2.BORDER_REFLECT)
        if self.winner is None:
            self.best_count, self.best_local = count, local
            self.winner = np.zeros(count.shape, np.int32)
            return
        better = (count > self.best_count) | ((count == self.best_count) & (local > self.best_local))
        self.best_count[better] = count[better]
        self.best_local[better] = local[better]
        self.winner[better] = i


def laplacian_pyramid_stream(frames, options: LaplacianOptions | None = None) -> FusionResult:
    """Running-reduction form of :func:`laplacian_pyramid_fusion` for long stacks.

    ``frames``: ``len`` and ``frames[i]`` -> (C, H, W). Pass 1: per level the largest activity and
    its frame index, and the sum of the base levels; pass 2: the consistency vote
    (:class:`_StreamingVote`); pass 3: the chosen coefficients. Each pass rebuilds one frame's
    pyramid at a time, so memory does not grow with N (2 passes without the vote)."""
    options = options or LaplacianOptions()
    n = len(frames)
    levels = h = w = c = None
    best: list[np.ndarray] = []
    choice: list[np.ndarray] = []
    base = None

    def pyramid_of(i, frame=None):
        frame = frames[i] if frame is None else frame
        return _pyramid(np.ascontiguousarray(np.moveaxis(frame, 0, -1)), levels)

    def coeffs_of(level_img):
        return level_img.reshape(level_img.shape[0], level_img.shape[1], -1)

    for i in range(n):
        frame = frames[i]
        if levels is None:
            c, h, w = frame.shape
            levels = options.levels or _auto_levels(h, w)
        pyr = pyramid_of(i, frame)
        del frame
        base = pyr[-1].astype(np.float64) if base is None else base + pyr[-1]
        for level in range(levels):
            activity = np.abs(coeffs_of(pyr[level])).sum(axis=-1)
            if i == 0:
                best.append(activity)
                choice.append(np.zeros(activity.shape, np.int32))
            else:
                better = activity > best[level]
                best[level][better] = activity[better]
                choice[level][better] = i
    del best
    if options.consistency > 0:
        votes = [_StreamingVote(ch, options.consistency) for ch in choice]
        for i in range(n):
            pyr = pyramid_of(i)
            for level in range(levels):
                votes[level].update(i, np.abs(coeffs_of(pyr[level])).sum(axis=-1))
        choice = [v.winner for v in votes]
        del votes
    fused_pyramid: list[np.ndarray] = [None] * levels
    for i in range(n):
        pyr = pyramid_of(i)
        for level in range(levels):
            if fused_pyramid[level] is None:
                fused_pyramid[level] = np.empty_like(pyr[level])
            mask = choice[level] == i
            fused_pyramid[level][mask] = pyr[level][mask]
    fused_pyramid.append((base / n).astype(np.float32))
    fused = _collapse(fused_pyramid).reshape(h, w, c)
    fused = np.clip(np.moveaxis(fused, -1, 0), 0.0, 1.0).astype(np.float32)
    return FusionResult(fused=fused, decision=choice[0].astype(np.int64), info={"levels": levels})


def laplacian_tile_plan(options: LaplacianOptions, shape: tuple[int, ...]):
    """Tile plan (:mod:`mfif.tiling`): ~6 * 2^levels (5-tap kernels down and up, vote) on the
    2^levels grid; automatic levels fixed from the full image."""
    import dataclasses

    from mfif.tiling import TilePlan

    levels = options.levels or _auto_levels(*shape[-2:])
    return TilePlan(halo=6 * 2 ** levels, grid=2 ** levels, options=dataclasses.replace(options, levels=levels))
