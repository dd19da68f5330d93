"""Register the frames of a focus stack to a reference frame.

Real stacks are not registered: focus breathing changes the scale between frames, a hand-held or
rail-mounted camera shifts a little, exposure and white balance drift. This module estimates, for
every frame i, a 3x3 matrix ``T_i`` that maps pixel coordinates of the reference frame to pixel
coordinates of frame i (``aligned_i(x) = frame_i(T_i x)``), in stages:

1. grey + pyramid: luminance of the frame, downscaled so the long side is at most ``max_size``
   (pixel-centre convention: ``x_level = s (x_full + 0.5) - 0.5``), then halved with
   ``cv2.pyrDown``-like area resizing until the coarsest level is about ``min_size`` pixels.
2. neighbour to neighbour: frames k and k+1 differ little in focus, so they are matched with each
   other (as focus-stack does) and the matrices are chained to the reference
   (``T_i = A_i ... A_{r+1}`` above the reference, inverses below it). Neighbour matching is ECC
   (Evangelidis & Psarakis 2008, ``cv2.findTransformECC``, Gaussian pre-blur) coarse to fine,
   starting from the identity.
   Model selection by evidence: frames that differ only in focus make ECC invent motion (defocus
   spreading over occlusions), so the step is kept only as far as 4x4 tiles, matched one by one,
   support it (F tests: translation over identity, similarity/affine over translation); otherwise
   it is the translation or the identity (:func:`_select_model`, note in the step's diagnostics).
3. fallback: when ECC raises, its correlation is below ``min_correlation`` or the motion is
   implausible (scale outside ``1 +- max_scale_change``, shift over ``max_shift`` of the size), the
   pair is matched with AKAZE (ORB when absent) features + RANSAC (then refined by ECC from that start when possible);
   when that fails too the step is the identity and a warning names the frame.
4. exposure / white balance: per-channel gain that brings the frame's mean over the common valid
   rectangle to the reference's mean (:meth:`Alignment.gain_for`; defocus preserves the mean).
5. warp + crop: every frame is warped into the reference geometry (bilinear, or bicubic) and the
   largest axis-aligned rectangle valid in every frame (:func:`common_valid_rectangle`) is kept, so
   no invalid border leaks into the fused image. The output is therefore slightly smaller than the
   input when frames moved; the rectangle is recorded in the transforms file.

Models: ``translation``, ``similarity`` (ECC affine projected onto rotation + uniform scale +
shift; features: ``estimateAffinePartial2D``), ``affine`` (default) and ``homography``.

Example:
    >>> import numpy as np
    >>> from mfif.align import AlignOptions, estimate_alignment
    >>> rng = np.random.default_rng(0)
    >>> frames = [rng.random((1, 64, 64)).astype(np.float32) for _ in range(3)]
    >>> al = estimate_alignment(frames, AlignOptions(model="translation"))
    >>> al.reference, len(al.matrices)
    (1, 3)
"""
from __future__ import annotations

import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from mfif.errors import InputError, OutputError

MODELS = ("translation", "similarity", "affine", "homography")
_ECC_MOTION = {"translation": cv2.MOTION_TRANSLATION, "similarity": cv2.MOTION_AFFINE,
               "affine": cv2.MOTION_AFFINE, "homography": cv2.MOTION_HOMOGRAPHY}


@dataclass
class AlignOptions:
    """Options of the alignment stage.

    Attributes:
        model: ``translation``, ``similarity``, ``affine`` or ``homography``.
        reference: index of the reference frame; None = the middle frame (N // 2).
        max_size: long side (pixels) of the finest level used for matching (larger frames are
            downscaled for matching; the matrices are always in full-resolution pixels). 1024:
            on the 2048x1536 pcb stack the alignment takes 3.7 s instead of 15.2 s at 2048 and
            its matrices move the frame corners by at most 0.23 px from the 2048 ones.
        min_size: long side of the coarsest pyramid level.
        iterations: ECC iterations per level (the finest level gets half).
        epsilon: ECC convergence threshold on the correlation increment.
        blur: ECC Gaussian pre-blur kernel size (odd).
        min_correlation: ECC results below this correlation are rejected (fallback to features).
        max_scale_change: per-step plausibility bound on |scale - 1|.
        max_shift: per-step plausibility bound on the shift, as a fraction of the long side.
        normalize_exposure: per-channel gain to the reference over the common valid area.
        crop: keep only the rectangle valid in every frame (False: keep the full size, the
            invalid border is filled by replicating the frame's edge).
        interpolation: ``linear`` or ``cubic`` warping.
    """

    model: str = "affine"
    reference: int | None = None
    max_size: int = 1024
    min_size: int = 160
    iterations: int = 60
    epsilon: float = 1e-6
    blur: int = 5
    min_correlation: float = 0.6
    max_scale_change: float = 0.15
    max_shift: float = 0.15
    normalize_exposure: bool = True
    crop: bool = True
    interpolation: str = "linear"


@dataclass
class StepEstimate:
    """One neighbour step: frame k -> frame k+1 (``matrix`` maps frame-k pixels to frame-(k+1) pixels)."""

    matrix: np.ndarray
    method: str  # "ecc", "features", "features+ecc" or "identity"
    correlation: float | None = None
    note: str = ""


@dataclass
class Alignment:
    """The estimated geometry of a stack.

    Attributes:
        matrices: per frame, 3x3 float64 mapping reference pixels -> frame pixels (reference: identity).
        reference: index of the reference frame.
        size: (width, height) of the frames.
        crop: (x, y, width, height) of the valid rectangle in reference pixels.
        steps: per neighbour pair (k, k+1) the :class:`StepEstimate`.
        model: the motion model.
        gains: per frame, per-channel exposure gains once known (filled by :meth:`gain_for`).
    """

    matrices: list[np.ndarray]
    reference: int
    size: tuple[int, int]
    crop: tuple[int, int, int, int]
    steps: list[StepEstimate] = field(default_factory=list)
    model: str = "affine"
    gains: dict[int, list[float]] = field(default_factory=dict)
    options: AlignOptions = field(default_factory=AlignOptions)

    def warp(self, image: np.ndarray, index: int) -> np.ndarray:
        """Warp frame ``index`` (C, H, W) into the reference geometry and crop it: (C, h, w) float32."""
        return warp_frame(image, self.matrices[index], self.crop, self.options.interpolation)

    def to_json(self, paths: Sequence[str | os.PathLike | None] = ()) -> dict:
        frames = []
        for i, m in enumerate(self.matrices):
            entry = {"index": i, "matrix": np.asarray(m).round(10).tolist()}
            if i < len(paths) and paths[i] is not None:
                entry["path"] = str(paths[i])
            if i in self.gains:
                entry["gain"] = [round(g, 6) for g in self.gains[i]]
            frames.append(entry)
        steps = [{"from": k, "to": k + 1, "method": s.method,
                  "correlation": None if s.correlation is None else round(float(s.correlation), 6),
                  "matrix": np.asarray(s.matrix).round(10).tolist(), **({"note": s.note} if s.note else {})}
                 for k, s in enumerate(self.steps)]
        x, y, w, h = self.crop
        return {"convention": "matrix maps reference pixel (x, y, 1) to frame pixel; pixel centres at integers",
                "model": self.model, "reference": self.reference, "size": list(self.size),
                "crop": {"x": x, "y": y, "width": w, "height": h}, "frames": frames, "steps": steps}

    def save(self, path: str | os.PathLike, paths: Sequence[str | os.PathLike | None] = ()) -> Path:
        from mfif.io import write_bytes_atomic

        path = Path(path)
        if not (path.parent if str(path.parent) else Path(".")).is_dir():
            raise OutputError(f"{path}: output folder {path.parent} does not exist")
        text = json.dumps(self.to_json(paths), indent=1)
        # one line per innermost list of numbers (matrix rows, gains, size)
        text = re.sub(r"\[\s*([-+0-9.eE,\s]+?)\s*\]", lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
        write_bytes_atomic(path, (text + "\n").encode())
        return path


# ----------------------------------------------------------------------------------------------
# helpers


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        return image
    if image.shape[0] == 1:
        return image[0]
    from mfif.decision import GREY_WEIGHTS

    return np.tensordot(GREY_WEIGHTS, image, axes=(0, 0)).astype(np.float32)


def _level_matrix(sx: float, sy: float) -> np.ndarray:
    """Full-resolution pixel -> level pixel for a level scaled by (sx, sy) (pixel-centre convention)."""
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


@dataclass
class _Pyramid:
    levels: list[np.ndarray]  # coarse -> fine
    to_level: list[np.ndarray]  # full -> level pixel matrices
    size: tuple[int, int] = (0, 0)  # (width, height) of the full-resolution frame


def _pyramid(grey: np.ndarray, max_size: int, min_size: int) -> _Pyramid:
    h, w = grey.shape
    scale = min(1.0, max_size / max(h, w))
    levels, mats = [], []
    cur_w, cur_h = max(1, round(w * scale)), max(1, round(h * scale))
    img = grey if (cur_w, cur_h) == (w, h) else cv2.resize(grey, (cur_w, cur_h), interpolation=cv2.INTER_AREA)
    levels.append(img)
    mats.append(_level_matrix(cur_w / w, cur_h / h))
    while max(cur_w, cur_h) // 2 >= min_size and min(cur_w, cur_h) // 2 >= 16:
        cur_w, cur_h = cur_w // 2, cur_h // 2
        img = cv2.resize(img, (cur_w, cur_h), interpolation=cv2.INTER_AREA)
        levels.append(img)
        mats.append(_level_matrix(cur_w / w, cur_h / h))
    return _Pyramid(levels[::-1], mats[::-1])


def _to_level(m_full: np.ndarray, p: np.ndarray) -> np.ndarray:
    return p @ m_full @ np.linalg.inv(p)


def _from_level(m_level: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.linalg.inv(p) @ m_level @ p


def _project(m: np.ndarray, model: str, size: tuple[int, int]) -> np.ndarray:
    """Project a 3x3 matrix onto the model (least squares on a grid of points)."""
    m = np.asarray(m, np.float64)
    if model == "homography":
        return m / m[2, 2]
    w, h = size
    gx, gy = np.meshgrid(np.linspace(0, w - 1, 5), np.linspace(0, h - 1, 5))
    src = np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)])
    dst = m @ src
    dst = dst[:2] / dst[2]
    out = np.eye(3)
    if model == "translation":
        out[:2, 2] = (dst - src[:2]).mean(axis=1)
    elif model == "affine":
        sol, *_ = np.linalg.lstsq(src.T, dst.T, rcond=None)
        out[:2] = sol.T
    else:  # similarity: x' = a x - b y + tx, y' = b x + a y + ty
        x, y = src[0], src[1]
        rows = np.concatenate([np.stack([x, -y, np.ones_like(x), np.zeros_like(x)], 1),
                               np.stack([y, x, np.zeros_like(x), np.ones_like(x)], 1)])
        a, b, tx, ty = np.linalg.lstsq(rows, np.concatenate([dst[0], dst[1]]), rcond=None)[0]
        out[:2] = [[a, -b, tx], [b, a, ty]]
    return out


def _plausible(m: np.ndarray, size: tuple[int, int], o: AlignOptions) -> str:
    """'' when a step matrix is a plausible focus-stack motion, otherwise the reason."""
    if not np.all(np.isfinite(m)):
        return "not finite"
    w, h = size
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float).T
    mapped = m @ corners
    if np.any(mapped[2] <= 1e-6):
        return "degenerate"
    mapped = mapped[:2] / mapped[2]
    shift = np.abs(mapped - corners[:2]).max()
    if shift > o.max_shift * max(w, h) + abs(o.max_scale_change) * max(w, h):
        return f"moves a corner by {shift:.0f} px"
    a = m[:2, :2] / (m[2, 2] if abs(m[2, 2]) > 1e-12 else 1.0)
    sv = np.linalg.svd(a, compute_uv=False)
    if sv.max() > 1 + o.max_scale_change or sv.min() < 1 - o.max_scale_change:
        return f"scale {sv.min():.3f}..{sv.max():.3f}"
    centre = m @ np.array([(w - 1) / 2, (h - 1) / 2, 1.0])
    if np.abs(centre[:2] / centre[2] - [(w - 1) / 2, (h - 1) / 2]).max() > o.max_shift * max(w, h):
        return "shift too large"
    return ""


def _ecc(template: np.ndarray, moving: np.ndarray, init: np.ndarray, model: str, iterations: int,
         o: AlignOptions) -> tuple[np.ndarray, float]:
    motion = _ECC_MOTION[model]
    warp = init.astype(np.float32) if motion == cv2.MOTION_HOMOGRAPHY else init[:2].astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, int(iterations), float(o.epsilon))
    cc, warp = cv2.findTransformECC(template, moving, warp, motion, criteria, None, int(o.blur))
    out = np.eye(3)
    if motion == cv2.MOTION_HOMOGRAPHY:
        out = warp.astype(np.float64)
    else:
        out[:2] = warp
    return out, float(cc)


def _ecc_pyramid(a: _Pyramid, b: _Pyramid, model: str, o: AlignOptions, size: tuple[int, int],
                 init: np.ndarray | None = None, start_level: int = 0) -> tuple[np.ndarray, float]:
    m = np.eye(3) if init is None else init
    cc = float("nan")
    n = len(a.levels)
    for lvl in range(start_level, n):
        p = a.to_level[lvl]
        ml = _to_level(m, p)
        iters = o.iterations if lvl < n - 1 else max(10, o.iterations // 2)
        ml, cc = _ecc(a.levels[lvl], b.levels[lvl], ml, model, iters, o)
        m = _project(_from_level(ml, p), model, size)
    return m, cc


def _to_uint8(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [0.5, 99.5])
    scaled = (img - lo) / max(hi - lo, 1e-6)
    return np.clip(scaled * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _detector():
    """AKAZE (binary descriptors) where this OpenCV build has it (moved to xfeatures2d in OpenCV 5),
    ORB otherwise."""
    for factory in (getattr(cv2, "AKAZE_create", None), getattr(getattr(cv2, "xfeatures2d", None), "AKAZE_create", None)):
        if factory is not None:
            try:
                return factory()
            except cv2.error:
                pass
    return cv2.ORB_create(nfeatures=5000)


def _features(a: np.ndarray, b: np.ndarray, p: np.ndarray, model: str) -> np.ndarray | None:
    """AKAZE + ratio test + RANSAC on one level; returns the full-resolution matrix or None."""
    detector = _detector()
    ka, da = detector.detectAndCompute(_to_uint8(a), None)
    kb, db = detector.detectAndCompute(_to_uint8(b), None)
    if da is None or db is None or len(ka) < 8 or len(kb) < 8:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(da, db, k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(good) < 8:
        return None
    src = np.float32([ka[m.queryIdx].pt for m in good])
    dst = np.float32([kb[m.trainIdx].pt for m in good])
    out = np.eye(3)
    if model == "homography":
        h, inl = cv2.findHomography(src, dst, cv2.RANSAC, 2.0)
        if h is None:
            return None
        out = h
    elif model == "affine":
        m, inl = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=2.0)
        if m is None:
            return None
        out[:2] = m
    else:
        m, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=2.0)
        if m is None:
            return None
        out[:2] = m
        if model == "translation":
            out[:2, :2] = np.eye(2)
            sel = inl.ravel().astype(bool)
            out[:2, 2] = np.median(dst[sel] - src[sel], axis=0)
    if inl is None or int(inl.sum()) < 8:
        return None
    return _from_level(out, p)


def _tile_shifts(a: _Pyramid, b: _Pyramid, m: np.ndarray, o: AlignOptions, grid: int = 4):
    """Local evidence for a step: per tile of a fine level, the translation (ECC, started from
    ``m``) that matches b to a. Returns (tile centres, their matched positions in b), full-resolution
    pixels, for the tiles where ECC converged."""
    # the coarsest level with a long side of at least 480 px (the size the thresholds were measured
    # at; a coarser one loses the evidence of focus breathing on the dev sweeps)
    fine = len(a.levels) - 1
    while fine > 0 and max(a.levels[fine - 1].shape) >= 480:
        fine -= 1
    p = a.to_level[fine]
    pa, pb = a.levels[fine], b.levels[fine]
    h, w = pa.shape
    ml = _to_level(m, p)
    src, dst = [], []
    th, tw = h // grid, w // grid
    if min(th, tw) < 24:
        return np.zeros((0, 2)), np.zeros((0, 2))
    for ty in range(grid):
        for tx in range(grid):
            x0, y0 = tx * tw, ty * th
            centre = np.array([x0 + (tw - 1) / 2, y0 + (th - 1) / 2, 1.0])
            start = ml @ centre
            start = start[:2] / start[2]
            # the tile found in b by a pure translation, started at the position m predicts
            init = np.array([[1.0, 0, start[0] - centre[0] + x0], [0, 1.0, start[1] - centre[1] + y0], [0, 0, 1]])
            tile = np.ascontiguousarray(pa[y0:y0 + th, x0:x0 + tw])
            if float(tile.std()) < 1e-3:
                continue
            try:
                t, cc = _ecc(tile, pb, init, "translation", o.iterations, o)
            except cv2.error:
                continue
            if cc < o.min_correlation:
                continue
            src.append(centre[:2])
            dst.append(t[:2, 2] - [x0, y0] + centre[:2])
    if not src:
        return np.zeros((0, 2)), np.zeros((0, 2))
    pin = np.linalg.inv(p)
    to_full = lambda q: (pin @ np.c_[q, np.ones(len(q))].T)[:2].T  # noqa: E731
    return to_full(np.array(src)), to_full(np.array(dst))


def _tile_design(pts: np.ndarray, model: str) -> np.ndarray:
    """Least-squares design matrix of a motion model's tile displacements (x block, then y block)."""
    x, y = pts[:, 0], pts[:, 1]
    one, zero = np.ones_like(x), np.zeros_like(x)
    cols = [np.r_[one, zero], np.r_[zero, one]]
    if model == "similarity":
        cols += [np.r_[x, y], np.r_[-y, x]]
    elif model == "affine":
        cols += [np.r_[x, zero], np.r_[y, zero], np.r_[zero, x], np.r_[zero, y]]
    return np.stack(cols, 1)


def _evidence(src: np.ndarray, dst: np.ndarray) -> dict[str, float]:
    """F statistics of the tile displacements ``dst - src``: translation over identity, and
    similarity and affine over translation (variance explained per extra parameter over the
    residual variance of the richer fit). Tiles more than 3x the median residual away from the
    affine fit (occlusions, defocus spreading) are left out first."""
    pts = src - src.mean(axis=0)
    pts = pts / max(float(np.abs(pts).max()), 1e-9)
    dx, dy = dst[:, 0] - src[:, 0], dst[:, 1] - src[:, 1]

    def residual(model, keep):
        x = _tile_design(pts[keep], model)
        b = np.r_[dx[keep], dy[keep]]
        return x @ np.linalg.lstsq(x, b, rcond=None)[0] - b, x.shape[1]

    r, _ = residual("affine", np.ones(len(pts), bool))
    norm = np.hypot(r[:len(pts)], r[len(pts):])
    keep = norm <= 3 * np.median(norm) + 1e-9
    n = 2 * int(keep.sum())
    rss = {"identity": (float((dx[keep] ** 2).sum() + (dy[keep] ** 2).sum()), 0)}
    for model in ("translation", "similarity", "affine"):
        r, p = residual(model, keep)
        rss[model] = (float((r ** 2).sum()), p)

    def f_stat(simple, rich):
        (r0, p0), (r1, p1) = rss[simple], rss[rich]
        return ((r0 - r1) / (p1 - p0)) / max(r1 / max(n - p1, 1), 1e-12)

    return {"translation": f_stat("identity", "translation"), "similarity": f_stat("translation", "similarity"),
            "affine": f_stat("translation", "affine")}


# F statistic a step's motion must reach on the tiles. On the dev set (481x321, 4x4 tiles):
# registered layered stacks and sweeps without breathing reach at most 12, focus breathing
# (0.12 % scale per step) 17..1459; registered synthetic flat-shape stacks at most 5.
EVIDENCE_F = 15.0


def _select_model(a: _Pyramid, b: _Pyramid, m: np.ndarray, size: tuple[int, int],
                  o: AlignOptions) -> tuple[np.ndarray, str]:
    """Keep an ECC step only as far as local evidence supports it: identity, else translation,
    else the requested richer model.

    Frames of a focus stack differ in focus, and defocus spreading over an occlusion looks, to a
    global ECC fit, like a shift, scale or shear of up to a few pixels where nothing moved (on the
    registered layered dev stacks: up to 1.65 px per step, 4.3 px chained to the reference). Even
    0.1-0.3 px of invented shift costs 1-7 dB PSNR against the ground truth (misregistration plus
    the interpolation blur of a sub-pixel warp). Real motion (a shift, focus breathing) moves every
    part of the frame coherently; invented motion does not. So 4x4 tiles of a fine level are
    matched one by one (translation, :func:`_tile_shifts`), and a model is kept over the simpler
    one only when it explains their displacements significantly better (:func:`_evidence`, F
    statistic >= :data:`EVIDENCE_F`). The matrix kept is ECC's (global, more precise than the tiles)."""
    try:
        # the best translation near ECC's result: one ECC run at the finest level
        mt = m if o.model == "translation" else _ecc_pyramid(a, b, "translation", o, size,
                                                              init=_project(m, "translation", size),
                                                              start_level=len(a.levels) - 1)[0]
    except cv2.error:
        return m, ""
    src, dst = _tile_shifts(a, b, mt, o)
    if len(src) < 8:
        return m, ""
    f = _evidence(src, dst)
    simple, name = (mt, "translation") if f["translation"] >= EVIDENCE_F else (np.eye(3), "identity")
    if o.model == "translation":
        return simple, "" if name == "translation" else f"shift not supported by the tiles (F {f['translation']:.1f})"
    rich = f["similarity"] if o.model == "similarity" else max(f["similarity"], f["affine"])
    if rich >= EVIDENCE_F:
        return m, ""
    return simple, f"{o.model} not supported by the tiles (F {rich:.1f}); step = {name}"


def estimate_step(a: _Pyramid, b: _Pyramid, size: tuple[int, int], o: AlignOptions, label: str = "") -> StepEstimate:
    """Match neighbour b to a: the matrix maps pixels of frame a to pixels of frame b."""
    reason = ""
    try:
        m, cc = _ecc_pyramid(a, b, o.model, o, size)
        if cc < o.min_correlation:
            reason = f"ECC correlation {cc:.3f} < {o.min_correlation}"
        else:
            reason = _plausible(m, size, o)
            if reason:
                reason = f"ECC result implausible ({reason})"
        if not reason:
            m, note = _select_model(a, b, m, size, o)
            return StepEstimate(m, "ecc", cc, note)
    except cv2.error as exc:
        reason = f"ECC failed ({str(exc).strip().splitlines()[-1][:80]})"
    fine = len(a.levels) - 1
    try:
        m = _features(a.levels[fine], b.levels[fine], a.to_level[fine], o.model)
    except cv2.error:
        m = None
    if m is not None and not _plausible(m, size, o):
        try:
            refined, cc = _ecc_pyramid(a, b, o.model, o, size, init=m, start_level=fine)
            if cc >= o.min_correlation and not _plausible(refined, size, o):
                return StepEstimate(refined, "features+ecc", cc, reason)
        except cv2.error:
            pass
        return StepEstimate(m, "features", None, reason)
    warnings.warn(f"alignment of {label or 'a frame'} failed ({reason}; feature matching failed too); "
                  "using the identity for this step", stacklevel=3)
    return StepEstimate(np.eye(3), "identity", None, reason + "; features failed")


def chain(steps: Sequence[np.ndarray], reference: int) -> list[np.ndarray]:
    """Neighbour steps (k -> k+1) to per-frame matrices reference -> frame."""
    n = len(steps) + 1
    mats: list[np.ndarray] = [np.eye(3) for _ in range(n)]
    for i in range(reference + 1, n):
        mats[i] = steps[i - 1] @ mats[i - 1]
    for i in range(reference - 1, -1, -1):
        mats[i] = np.linalg.inv(steps[i]) @ mats[i + 1]
    return [m / m[2, 2] for m in mats]


def _largest_rectangle(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Largest axis-aligned all-True rectangle (x, y, w, h) of a boolean mask: rows of a convex
    mask (the valid area of warped frames) by their intervals, any other by the histogram method."""
    fast = _largest_rectangle_of_intervals(mask)
    return fast if fast is not None else _largest_rectangle_histogram(mask)


def _largest_rectangle_of_intervals(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest rectangle when every non-empty row of ``mask`` is one interval [l, r] and the
    non-empty rows are contiguous (else None): for each top row, the running max of l and min of r
    over the rows below give every candidate at once (O(H^2) in numpy, no Python loop over pixels).
    Ties: the first top row, then the first bottom row (the histogram method's order may differ)."""
    h, w = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return 0, 0, 0, 0
    if rows[-1] - rows[0] + 1 != rows.size:
        return None
    sub = mask[rows[0]:rows[-1] + 1]
    left = sub.argmax(axis=1)
    right = w - 1 - sub[:, ::-1].argmax(axis=1)
    if int(sub.sum()) != int((right - left + 1).sum()):  # a row with a gap: not intervals
        return None
    best = (0, 0, 0, 0, 0)
    for top in range(sub.shape[0]):
        lo = np.maximum.accumulate(left[top:])
        hi = np.minimum.accumulate(right[top:])
        widths = np.maximum(hi - lo + 1, 0)
        areas = widths * np.arange(1, widths.size + 1)
        k = int(areas.argmax())
        if areas[k] > best[0]:
            best = (int(areas[k]), int(lo[k]), int(rows[0] + top), int(widths[k]), k + 1)
    return best[1], best[2], best[3], best[4]


def _largest_rectangle_histogram(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Largest axis-aligned all-True rectangle (x, y, w, h) of a boolean mask (histogram method)."""
    h, w = mask.shape
    heights = np.zeros(w, np.int64)
    best = (0, 0, 0, 0, 0)
    for y in range(h):
        heights = np.where(mask[y], heights + 1, 0)
        stack: list[int] = []
        for x in range(w + 1):
            cur = heights[x] if x < w else 0
            while stack and heights[stack[-1]] >= cur:
                top = stack.pop()
                left = stack[-1] + 1 if stack else 0
                area = heights[top] * (x - left)
                if area > best[0]:
                    best = (int(area), left, y - int(heights[top]) + 1, x - left, int(heights[top]))
            stack.append(x)
    return best[1], best[2], best[3], best[4]


def common_valid_rectangle(matrices: Sequence[np.ndarray], size: tuple[int, int], grid: int = 384) -> tuple[int, int, int, int]:
    """Largest axis-aligned rectangle (x, y, w, h) of reference pixels whose warped position lies
    inside every frame, bilinear neighbours included.

    Evaluated on a grid of at most ``grid`` cells along the long side; a cell counts as valid when
    its four corners are valid in every frame (the valid region of each frame is convex), so the
    result is conservative by at most one cell."""
    w, h = size
    if all(np.allclose(m, np.eye(3)) for m in matrices):
        return 0, 0, w, h
    step = max(1.0, max(w, h) / grid)
    xs = np.append(np.arange(0, w - 1, step), w - 1.0)
    ys = np.append(np.arange(0, h - 1, step), h - 1.0)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)])
    ok = np.ones(gx.size, bool)
    for m in matrices:
        q = m @ pts
        with np.errstate(divide="ignore", invalid="ignore"):
            qx, qy = q[0] / q[2], q[1] / q[2]
        ok &= (q[2] > 0) & (qx >= 0) & (qx <= w - 1) & (qy >= 0) & (qy <= h - 1)
    corners = ok.reshape(gy.shape)
    cells = corners[:-1, :-1] & corners[1:, :-1] & corners[:-1, 1:] & corners[1:, 1:]
    if not cells.any():
        raise InputError("the frames do not overlap after alignment (no common valid area); "
                         "check the stack or use --no-align")
    cx, cy, cw, ch = _largest_rectangle(cells)
    x0, y0 = int(math.ceil(xs[cx])), int(math.ceil(ys[cy]))
    x1, y1 = int(math.floor(xs[cx + cw])), int(math.floor(ys[cy + ch]))
    return x0, y0, x1 - x0 + 1, y1 - y0 + 1


def warp_frame(image: np.ndarray, matrix: np.ndarray, crop: tuple[int, int, int, int],
               interpolation: str = "linear") -> np.ndarray:
    """Warp (C, H, W) into reference geometry (``out(x) = image(matrix x)``) and crop to (x, y, w, h)."""
    x, y, w, h = crop
    if np.allclose(matrix, np.eye(3), atol=1e-12):
        return np.ascontiguousarray(image[:, y:y + h, x:x + w], dtype=np.float32)
    # shift so output pixel (0, 0) is reference pixel (x, y)
    m = np.asarray(matrix, np.float64) @ np.array([[1, 0, x], [0, 1, y], [0, 0, 1.0]])
    flags = (cv2.INTER_CUBIC if interpolation == "cubic" else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    out = np.empty((image.shape[0], h, w), np.float32)
    homography = not np.allclose(m[2], [0, 0, 1], atol=1e-12)
    for c in range(image.shape[0]):
        src = np.asarray(image[c], np.float32)
        if homography:
            out[c] = cv2.warpPerspective(src, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        else:
            out[c] = cv2.warpAffine(src, m[:2], (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    if interpolation == "cubic":
        np.clip(out, 0.0, 1.0, out=out)
    return out


def estimate_alignment(frames: Iterable[np.ndarray], options: AlignOptions | None = None, *,
                       n_frames: int | None = None, labels: Sequence[str] = (),
                       on_frame: Callable[[int, np.ndarray], None] | None = None) -> Alignment:
    """Estimate the per-frame matrices of a stack, reading frames one at a time.

    Args:
        frames: an iterable of (C, H, W) frames (e.g. a generator that reads files); one frame
            is held at a time, and the small grey pyramids (<= ``max_size``) of the neighbour
            steps still running (in worker threads, :mod:`mfif.parallel`).
        options: :class:`AlignOptions`.
        n_frames: number of frames, when known (checked against the frames read).
        labels: names of the frames for warnings.
        on_frame: called with (index, frame) for every frame read (lets a caller collect
            metadata in the same pass).

    Returns:
        :class:`Alignment` (matrices reference -> frame, crop rectangle, per-step diagnostics).
    """
    o = options or AlignOptions()
    if o.model not in MODELS:
        raise InputError(f"unknown alignment model '{o.model}'; choose one of {', '.join(MODELS)}")
    if o.interpolation not in ("linear", "cubic"):
        raise InputError(f"interpolation must be 'linear' or 'cubic', got '{o.interpolation}'")
    from concurrent.futures import ThreadPoolExecutor

    from mfif.parallel import default_workers

    prev: _Pyramid | None = None
    size = None
    pending = []  # neighbour steps run in worker threads (ECC releases the GIL) while frames are read
    count = 0
    workers = default_workers()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mfif-align") if workers > 1 else None
    try:
        for i, frame in enumerate(frames):
            prev = _add_frame(i, frame, prev, size, o, labels, on_frame, pending, pool)
            size = (prev.size if size is None else size)
            count += 1
        steps = [p.result() if pool is not None else p for p in pending]
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if count == 0:
        raise InputError("no frames to align")
    if n_frames is not None and n_frames != count:
        raise InputError(f"expected {n_frames} frames, read {count}")
    reference = o.reference if o.reference is not None else count // 2
    if not 0 <= reference < count:
        raise InputError(f"reference frame {reference} out of range for {count} frames")
    matrices = chain([s.matrix for s in steps], reference)
    crop = common_valid_rectangle(matrices, size) if o.crop else (0, 0, size[0], size[1])
    return Alignment(matrices=matrices, reference=reference, size=size, crop=crop, steps=steps, model=o.model,
                     options=o)


def _add_frame(i, frame, prev, size, o, labels, on_frame, pending, pool) -> _Pyramid:
    """One frame of :func:`estimate_alignment`: its pyramid, and the step from the previous frame
    submitted to ``pool`` (or run here when None), appended to ``pending``."""
    frame = np.asarray(frame)
    if on_frame is not None:
        on_frame(i, frame)
    fsize = (frame.shape[-1], frame.shape[-2])
    if size is not None and fsize != size:
        raise InputError(f"{labels[i] if i < len(labels) else f'frame {i}'}: size {fsize[0]}x{fsize[1]} differs "
                         f"from the first frame ({size[0]}x{size[1]}); frames must have the same size")
    pyr = _pyramid(_grey(frame), o.max_size, o.min_size)
    pyr.size = fsize
    if prev is not None:
        label = f"{labels[i] if i < len(labels) else f'frame {i}'} (to its neighbour)"
        if pool is None:
            pending.append(estimate_step(prev, pyr, fsize, o, label))
        else:
            pending.append(pool.submit(estimate_step, prev, pyr, fsize, o, label))
    return pyr


def channel_means(image: np.ndarray) -> np.ndarray:
    """Per-channel mean of (C, H, W), float64 (accumulated in float64; no float64 copy of the frame)."""
    image = np.asarray(image)
    return image.reshape(image.shape[0], -1).mean(axis=1, dtype=np.float64)


def exposure_gain(frame_means: np.ndarray, reference_means: np.ndarray, limit: float = 2.0) -> np.ndarray:
    """Per-channel gain that maps a frame's means to the reference's, clipped to [1/limit, limit]."""
    gain = np.where(frame_means > 1e-6, reference_means / np.maximum(frame_means, 1e-6), 1.0)
    return np.clip(gain, 1.0 / limit, limit)


def align_stack(stack: np.ndarray, options: AlignOptions | None = None) -> tuple[np.ndarray, Alignment]:
    """In-memory convenience: (N, C, H, W) -> aligned, cropped, exposure-normalised stack + Alignment."""
    o = options or AlignOptions()
    al = estimate_alignment(list(stack), o)
    out = np.stack([al.warp(f, i) for i, f in enumerate(stack)])
    if o.normalize_exposure:
        ref = channel_means(out[al.reference])
        for i in range(len(out)):
            g = exposure_gain(channel_means(out[i]), ref) if i != al.reference else np.ones(out.shape[1])
            al.gains[i] = [float(v) for v in g]
            if i != al.reference:
                out[i] = np.clip(out[i] * g[:, None, None].astype(np.float32), 0.0, 1.0)
    return out, al
