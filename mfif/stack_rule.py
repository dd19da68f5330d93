"""The N-frame decision rule: how a method turns per-frame focus scores into a fused stack.

The two-frame rules of the papers do not carry over to long stacks. In a stack of N frames each
frame is in focus on a thin slice of the scene, and:

- small-region removal at a fixed fraction of H*W (Liu et al. 2017: 1 %) deletes those slices and
  fills them from a defocused frame ("blobs" in place of fine text and specks);
- wide guided-filter refinement (GFF's base weights: r = 45) mixes several frames around every
  edge (soft double edges, a glow around bright specks).

This rule (used by the classical decision-map methods when a stack has more than two frames, see
:func:`use_nframe_rule`) keeps every frame's thin slices and hides the seams instead:

1. **scores**: the method's own focus measure s_i of every frame, as a running reduction
   (:func:`argmax_decision_stream`: the best score s_max and its frame; one frame in memory);
2. **blend**: a multiresolution spline (P. J. Burt, E. H. Adelson, "A multiresolution spline
   with application to image mosaics", ACM TOG 2(4), 1983; :class:`PyramidBlend`): each frame's
   Laplacian pyramid weighted by the Gaussian pyramid of its weight w_i = (s_i / s_max)^8
   (:func:`sharpness_weighted_blend`), each level normalised by the summed weights. Every pixel
   keeps the detail of the frames that are sharpest there -- however thin the region, there is no
   area threshold -- and the transitions between frames are as wide as each frequency band needs,
   so no seam and no halo. Frames about as sharp as the best (neighbours in a focal sweep) are
   averaged, which averages their noise;
3. **depth map** (the ``decision`` returned): the argmax, then a label-consistency filter (each
   label becomes the most frequent of its 3x3 window, the pixel's own label winning ties;
   :func:`label_consistency`). :func:`fill_unconfident` (labels of unconfident pixels from the
   nearest confident one) is available but off: in a focal sweep the runner-up is the
   neighbouring frame, about as sharp, so a best/runner-up ratio marks most pixels.

Pairwise learned methods make their own hard decision (:func:`champion_decision`, or their N-way
scores) and use steps 3 and the spline of the binary maps (:func:`nframe_fusion_from_decision`).

Measured on the dev stacks (PSNR_GT, ``benchmarks/results/eval-stacks``): this rule against the
two-frame rules and ``laplacian``. Memory does not grow with N (a pyramid accumulator of about
20 bytes per pixel for colour, one frame's pyramid, and a few (H, W) maps); each frame is read
twice.
"""
from __future__ import annotations

import time
from typing import Callable

import cv2
import numpy as np

from mfif.errors import InputError
from mfif.result import FusionResult

STACK_RULES = ("auto", "nframe", "pair")


def use_nframe_rule(rule: str, n_frames: int) -> bool:
    """Resolve a method's ``stack_rule`` option: ``"auto"`` = the N-frame rule for more than two
    frames and the paper's rule for a pair; ``"nframe"`` / ``"pair"`` force one of them."""
    if rule not in STACK_RULES:
        raise InputError(f"stack_rule must be one of {', '.join(STACK_RULES)}, got {rule!r}")
    return rule == "nframe" or (rule == "auto" and n_frames > 2)


def argmax_decision_stream(frames, measure: Callable[[np.ndarray], np.ndarray], *, confidence: float = 0.0
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Running argmax of a focus measure over frames, unconfident pixels marked.

    Args:
        frames: ``len`` and ``frames[i]`` -> float32 (C, H, W), at least 2.
        measure: (C, H, W) frame -> (H, W) non-negative focus score (larger = sharper).
        confidence: a pixel whose best score is below ``confidence`` times the runner-up's gets
            the label -1 (for :func:`fill_unconfident`); <= 1: no pixel is marked.

    Returns:
        (best score (H, W) float32, decision (H, W) int32 in [-1, N)); ties go to the lowest index.
    """
    best = second = decision = None
    for i in range(len(frames)):
        score = np.asarray(measure(frames[i]), np.float32)
        if best is None:
            best, decision = score.copy(), np.zeros(score.shape, np.int32)
            second = np.full(score.shape, -np.inf, np.float32)
        else:
            better = score > best
            np.copyto(second, np.where(better, best, np.maximum(second, score)))
            best[better] = score[better]
            decision[better] = i
        del score
    if confidence > 1.0 and len(frames) > 1:
        decision[best <= confidence * second] = -1  # also flat areas (0 <= 0)
    return best, decision


def fill_unconfident(decision: np.ndarray) -> np.ndarray:
    """Give every pixel marked -1 the label of the nearest unmarked pixel (Euclidean distance).

    Flat and noisy areas, where no frame is clearly sharper, then continue the decisions of the
    textured areas around them (in a focal sweep: the frames in focus nearby) instead of taking a
    frame at random. A map with no unmarked pixel becomes all 0.

    Args:
        decision: (H, W) int map, -1 = no confident label.

    Returns:
        (H, W) int32 map without -1.
    """
    decision = np.asarray(decision, np.int32)
    marked = decision < 0
    if not marked.any():
        return decision
    if marked.all():
        return np.zeros(decision.shape, np.int32)
    # the label of the nearest zero pixel of the source: zero pixels are numbered 1.. in row-major
    # order, the order of decision[~marked]
    _, labels = cv2.distanceTransformWithLabels(marked.astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    return decision[~marked][labels - 1]


def global_step(decision: np.ndarray, n_sources: int, consistency: int = 1) -> np.ndarray:
    """The non-local part of the rule on the full-size map: :func:`fill_unconfident`, then
    :func:`label_consistency`. (H, W) int in [-1, N) -> (H, W) int32."""
    return label_consistency(fill_unconfident(decision), n_sources, consistency)


def label_consistency(decision: np.ndarray, n_sources: int, radius: int = 1) -> np.ndarray:
    """Majority filter of an index map: each pixel takes the most frequent label of its
    (2r+1)x(2r+1) window (reflected borders); the pixel's own label wins a tie, other ties go to
    the lowest label. Runs over the labels present, one count map at a time.

    Args:
        decision: (H, W) int map with values in [0, n_sources).
        radius: window radius r (0 = unchanged).

    Returns:
        (H, W) int32 map.
    """
    decision = np.asarray(decision)
    if decision.ndim != 2:
        raise InputError(f"label_consistency: expected an (H, W) map, got shape {decision.shape}")
    if radius <= 0:
        return decision.astype(np.int32)
    k = 2 * radius + 1
    best = winner = None
    for label in np.unique(decision):
        mine = decision == label
        count = cv2.boxFilter(mine.astype(np.float32), -1, (k, k), normalize=False, borderType=cv2.BORDER_REFLECT)
        count[mine] += 0.5  # own label wins ties (counts are integers)
        if best is None:
            best, winner = count, np.full(decision.shape, label, np.int32)
        else:
            better = count > best
            best[better] = count[better]
            winner[better] = label
    return winner


def auto_levels(h: int, w: int) -> int:
    """Pyramid depth: as many levels as leave a coarsest level of >= 8 pixels, at most 8."""
    return int(max(1, min(8, np.floor(np.log2(max(min(h, w), 8) / 8.0)))))


class PyramidBlend:
    """Running multiresolution spline: ``add(frame, weight)`` for every frame, then ``result()``.

    ``frame``: (C, H, W) float32; ``weight``: (H, W) non-negative map. Holds one Laplacian pyramid
    of weighted sums (H, W, C per level) and the Gaussian pyramid of the summed weights; each level
    is normalised by its summed weights (for binary maps that sum to 1 these are 1).
    """

    def __init__(self, levels: int):
        self.levels = levels
        self.sums: list[np.ndarray] | None = None
        self.totals: list[np.ndarray] | None = None
        self.shape = None

    def add(self, frame: np.ndarray, weight: np.ndarray) -> None:
        image = np.ascontiguousarray(np.moveaxis(np.asarray(frame, np.float32), 0, -1))
        w = np.array(weight, np.float32)  # a copy: the first frame's pyramid becomes the accumulator
        if self.shape is None:
            self.shape = image.shape
        gaussian = [image]
        weights = [w]
        for _ in range(self.levels):
            gaussian.append(cv2.pyrDown(gaussian[-1]))
            weights.append(cv2.pyrDown(weights[-1]))
        terms = []
        for level in range(self.levels):
            fine, coarse = gaussian[level], gaussian[level + 1]
            up = cv2.pyrUp(coarse, dstsize=(fine.shape[1], fine.shape[0])).reshape(fine.shape)
            detail = fine - up
            detail *= weights[level].reshape(weights[level].shape + (1,) * (detail.ndim - 2))
            terms.append(detail)
        top = gaussian[-1].reshape(gaussian[-1].shape[:2] + (-1,)) * weights[-1][..., None]
        terms.append(top.reshape(gaussian[-1].shape))
        if self.sums is None:
            self.sums, self.totals = terms, weights
        else:
            for acc, t in zip(self.sums, terms):
                acc += t
            for acc, t in zip(self.totals, weights):
                acc += t

    def result(self) -> np.ndarray:
        """Collapse the sums: float32 (C, H, W), clipped to [0, 1]."""
        if self.sums is None:
            raise InputError("PyramidBlend: no frames were added")
        levels = []
        for acc, total in zip(self.sums, self.totals):  # weights need not sum to 1: normalise per level
            total = np.maximum(total, 1e-12)
            levels.append(acc / total.reshape(total.shape + (1,) * (acc.ndim - 2)))
        image = levels[-1]
        for detail in reversed(levels[:-1]):
            image = cv2.pyrUp(image, dstsize=(detail.shape[1], detail.shape[0])).reshape(detail.shape) + detail
        out = np.moveaxis(image.reshape(self.shape), -1, 0)
        return np.clip(out, 0.0, 1.0).astype(np.float32)


def fuse_by_decision(frames, decision: np.ndarray, *, levels: int = 0) -> np.ndarray:
    """Multiresolution spline of the frames under a hard decision map.

    Args:
        frames: ``len`` and ``frames[i]`` -> float32 (C, H, W) (an (N, C, H, W) array works).
        decision: (H, W) int frame index per pixel.
        levels: pyramid levels (0 = :func:`auto_levels`).

    Returns:
        float32 (C, H, W) in [0, 1]. Frames chosen nowhere are not read.
    """
    decision = np.asarray(decision)
    h, w = decision.shape
    blend = PyramidBlend(levels or auto_levels(h, w))
    used = np.unique(decision)
    for i in used:
        blend.add(frames[int(i)], (decision == i).astype(np.float32))
    return blend.result()


SHARPNESS_POWER = 8.0


def sharpness_weighted_blend(frames, measure: Callable[[np.ndarray], np.ndarray], best: np.ndarray, *,
                             power: float = SHARPNESS_POWER, levels: int = 0) -> np.ndarray:
    """Multiresolution spline under soft weights w_i = (s_i / s_max)^power, s_i = ``measure`` of
    frame i and ``best`` = s_max per pixel: the sharpest frame has weight 1, a frame half as sharp
    0.4 %. Frames about as sharp as the best (neighbours in a focal sweep) are averaged, which
    averages their noise; a frame whose weight stays below 1e-3 everywhere is skipped.

    Returns float32 (C, H, W) in [0, 1]."""
    h, w = best.shape
    blend = PyramidBlend(levels or auto_levels(h, w))
    scale = 1.0 / np.maximum(best, 1e-12)
    added = 0
    for i in range(len(frames)):
        frame = frames[i]
        weight = np.power(np.asarray(measure(frame), np.float32) * scale, power, dtype=np.float32)
        if weight.max() < 1e-3 and not (i == len(frames) - 1 and added == 0):
            continue
        blend.add(frame, weight)
        added += 1
        del frame, weight
    return blend.result()


def nframe_fusion(frames, measure: Callable[[np.ndarray], np.ndarray], *, confidence: float = 0.0,
                  consistency: int = 1, levels: int = 0, power: float = SHARPNESS_POWER) -> FusionResult:
    """The whole N-frame rule (module docstring) for one focus measure.

    Args:
        frames: ``len`` and ``frames[i]`` -> float32 (C, H, W), N >= 2.
        measure: (C, H, W) -> (H, W) non-negative focus score.
        confidence: the ratio of :func:`argmax_decision_stream` (<= 1 disables; off by default:
            in a focal sweep the runner-up is the neighbouring frame, about as sharp, so the ratio
            marks most pixels).
        consistency: radius of :func:`label_consistency` (0 disables).
        levels: pyramid levels (0 = automatic).
        power: the blend's weights (:func:`sharpness_weighted_blend`); 0 = the hard decision map.

    Returns:
        FusionResult with ``fused`` (C, H, W), ``decision`` (H, W) int64 (the depth map: argmax
        after the global step) and ``score`` (the best score per pixel).
    """
    n = len(frames)
    frames = ReadClock(frames)
    t0 = time.perf_counter()
    best, decision = argmax_decision_stream(frames, measure, confidence=confidence)
    t1, r1 = time.perf_counter(), frames.seconds
    decision = global_step(decision, n, consistency)
    t2 = time.perf_counter()
    if power > 0:
        fused = sharpness_weighted_blend(frames, measure, best, power=power, levels=levels)
    else:
        fused = fuse_by_decision(frames, decision, levels=levels)
    t3 = time.perf_counter()
    phases = {"focus measure + argmax": t1 - t0 - r1, "global step (depth map)": t2 - t1,
              "weights + pyramid blend": t3 - t2 - (frames.seconds - r1), "frame_reads": frames.seconds}
    return FusionResult(fused=fused, decision=decision.astype(np.int64), score=best,
                        info={"stack_rule": f"nframe (sharpness^{power:g}-weighted pyramid blend; depth map: argmax, "
                                            f"consistency r={consistency})", "phase_seconds": phases})


class ReadClock:
    """Frames whose reads are timed (``seconds``), for the stage breakdown of ``mfif bench --stack``."""

    def __init__(self, frames):
        self.frames = frames
        self.seconds = 0.0

    def __len__(self):
        return len(self.frames)

    @property
    def shape(self):
        return self.frames.shape

    def __getitem__(self, i):
        t0 = time.perf_counter()
        try:
            return self.frames[i]
        finally:
            self.seconds += time.perf_counter() - t0


def nframe_tile_plan(measure: Callable[[np.ndarray], np.ndarray], measure_halo: int, options, shape):
    """:class:`mfif.tiling.TilePlan` of the rule for a stack of ``shape`` (N, C, H, W): decide =
    the argmax per tile (halo: the measure's reach), the global step on the full-size map, finish =
    the pyramid blend per tile with the levels of the full image (halo: the pyramid's reach; tile
    origins on its grid)."""
    from mfif.tiling import TilePlan

    levels = auto_levels(*shape[-2:])
    return TilePlan(halo=measure_halo + 2, grid=2 ** levels, options=options,
                    decide=lambda st, o: argmax_decision_stream(st, measure)[1],
                    global_step=lambda d, n, o: global_step(d, n),
                    finish=lambda st, d, o: FusionResult(fused=sharpness_weighted_blend(
                        st, measure, argmax_decision_stream(st, measure)[0], levels=levels), decision=d),
                    finish_halo=measure_halo + 2 + 6 * 2 ** levels)


def champion_decision(frames, pair_score: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """N-frame decision of a pairwise method in N - 1 comparisons (linear in N).

    The running composite starts as frame 0; each next frame k is compared with it
    (``pair_score(composite, frame_k)`` -> (H, W) p(composite sharper)) and takes the pixels where
    p < 0.5; the composite is a mosaic of original pixels, never a blend, so a frame competes with
    what was sharp so far and no fused pixel is fed back into the network. The result depends on
    the order of the frames (a focal sweep in camera order is the intended one).

    Args:
        frames: ``len`` and ``frames[i]`` -> float32 (C, H, W), N >= 2.
        pair_score: (a (C, H, W), b (C, H, W)) -> (H, W) probability that a is sharper.

    Returns:
        (H, W) int32 frame index per pixel.
    """
    composite = np.array(frames[0], np.float32, copy=True)
    decision = np.zeros(composite.shape[1:], np.int32)
    for k in range(1, len(frames)):
        frame = frames[k]
        wins = np.asarray(pair_score(composite, frame)) < 0.5
        decision[wins] = k
        composite[:, wins] = frame[:, wins]
        del frame, wins
    return decision


def nframe_fusion_from_decision(frames, decision: np.ndarray, *, consistency: int = 1, score=None,
                                info: dict | None = None) -> FusionResult:
    """Steps 3-4 of the rule for a method that makes its own decision (learned methods):
    :func:`label_consistency` on the (H, W) index map, then the multiresolution spline."""
    n = len(frames)
    decision = global_step(np.asarray(decision, np.int32), n, consistency)
    fused = fuse_by_decision(frames, decision)
    return FusionResult(fused=fused, decision=decision.astype(np.int64), score=score,
                        info={"stack_rule": f"nframe (method's decision, consistency r={consistency}, pyramid blend)",
                              **(info or {})})
