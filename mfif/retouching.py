"""Retouching: paint chosen source frames back into a fused image with a soft round brush.

No fusion method is right everywhere; the commercial stackers let the user paint the frame where a
region is sharp over the result. A retouch is a list of strokes, each a polyline in the result's
pixel coordinates with a brush radius, a softness and the index of the frame it paints from. The
strokes are kept (JSON, :func:`save_strokes` / :func:`load_strokes`) so an edit can be re-applied
to the same result: ``mfif.retouch(result, frames, strokes)`` and ``mfif fuse --retouch S.json``.

Brush mask of one stroke at a pixel whose distance to the polyline is ``d`` (pixels)::

    m(d) = 1                                  d <= r (1 - s)
           (r - d) / (r s)                    r (1 - s) < d < r
           0                                  d >= r

with radius ``r`` and softness ``s`` in [0, 1] (0: a hard edge). Strokes are composited in order,
``out = out (1 - m) + frame_k m``, so inside the hard core of a stroke the result equals frame k.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mfif.errors import InputError
from mfif.result import FusionResult

STROKES_FORMAT = "mfif-strokes"


@dataclass
class Stroke:
    """One brush stroke.

    Attributes:
        frame: index (0-based, input order) of the source frame painted in.
        points: polyline [(x, y), ...] in result pixels (x to the right, y down; pixel centres at
            integers). One point is a dab.
        radius: brush radius in pixels (> 0).
        softness: feathered fraction of the radius, 0 (hard) .. 1 (all feather).
    """

    frame: int
    points: list[tuple[float, float]]
    radius: float = 20.0
    softness: float = 0.5

    def __post_init__(self):
        try:
            self.points = [(float(p[0]), float(p[1])) for p in self.points]
            self.frame = int(self.frame)
            self.radius = float(self.radius)
            self.softness = float(self.softness)
        except (TypeError, ValueError, IndexError):
            raise InputError("a stroke needs an integer 'frame', points [[x, y], ...], a number 'radius' "
                             "and a number 'softness'") from None
        if not self.points:
            raise InputError("a stroke has no points")
        if not np.all(np.isfinite(self.points)):
            raise InputError("a stroke has a point that is not a finite number")
        if not (self.radius > 0 and np.isfinite(self.radius)):
            raise InputError(f"stroke radius must be a positive number, got {self.radius}")
        if not 0.0 <= self.softness <= 1.0:
            raise InputError(f"stroke softness must be in [0, 1], got {self.softness}")


@dataclass
class Retouch:
    """The strokes of one edit and the result size they refer to ((height, width), or None)."""

    strokes: list[Stroke] = field(default_factory=list)
    size: tuple[int, int] | None = None

    def to_json(self) -> dict:
        return {"format": STROKES_FORMAT, "version": 1, "size": list(self.size) if self.size else None,
                "strokes": [asdict(s) for s in self.strokes]}


def as_retouch(strokes) -> Retouch:
    """A :class:`Retouch` from a path to a strokes JSON file, its parsed dict, a list of
    :class:`Stroke` / dicts, or a :class:`Retouch`."""
    if isinstance(strokes, Retouch):
        return strokes
    if isinstance(strokes, (str, os.PathLike)):
        return load_strokes(strokes)
    size = None
    if isinstance(strokes, dict):
        if strokes.get("format", STROKES_FORMAT) != STROKES_FORMAT or "strokes" not in strokes:
            raise InputError(f"not an mfif strokes file (expected \"format\": \"{STROKES_FORMAT}\" and \"strokes\")")
        size = strokes.get("size")
        if size is not None:
            if not (isinstance(size, (list, tuple)) and len(size) == 2):
                raise InputError(f"strokes 'size' must be [height, width], got {size!r}")
            size = (int(size[0]), int(size[1]))
        strokes = strokes["strokes"]
    if not isinstance(strokes, (list, tuple)):
        raise InputError(f"strokes must be a list, got {type(strokes).__name__}")
    out = []
    for i, s in enumerate(strokes):
        if isinstance(s, Stroke):
            out.append(s)
        elif isinstance(s, dict):
            unknown = set(s) - {"frame", "points", "radius", "softness"}
            if unknown or "frame" not in s or "points" not in s:
                raise InputError(f"stroke {i}: expected keys frame, points[, radius, softness], got {sorted(s)}")
            out.append(Stroke(**s))
        else:
            raise InputError(f"stroke {i}: expected an object, got {type(s).__name__}")
    return Retouch(out, size)


def load_strokes(path: str | os.PathLike) -> Retouch:
    """Read a strokes JSON file written by :func:`save_strokes` (or the app)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the strokes file ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    try:
        return as_retouch(data)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def save_strokes(path: str | os.PathLike, strokes, *, size: tuple[int, int] | None = None) -> Path:
    """Write strokes as JSON (atomically); ``size`` = (height, width) of the result they paint."""
    from mfif.io import write_bytes_atomic

    retouch = as_retouch(strokes)
    if size is not None:
        retouch = Retouch(retouch.strokes, (int(size[0]), int(size[1])))
    path = Path(path)
    write_bytes_atomic(path, (json.dumps(retouch.to_json(), indent=1) + "\n").encode("utf-8"))
    return path


def _distance_to_polyline(xs: np.ndarray, ys: np.ndarray, points: Sequence[tuple[float, float]]) -> np.ndarray:
    """Euclidean distance of each pixel (xs[None, :], ys[:, None]) to the polyline."""
    px = xs[None, :].astype(np.float32)
    py = ys[:, None].astype(np.float32)
    pts = np.asarray(points, np.float32)
    best = np.full((len(ys), len(xs)), np.inf, np.float32)
    if len(pts) == 1:
        pts = np.concatenate([pts, pts])
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        if length2 > 0:
            t = np.clip(((px - x0) * dx + (py - y0) * dy) / length2, 0.0, 1.0)
        else:
            t = np.zeros((1, 1), np.float32)
        np.minimum(best, np.hypot(px - (x0 + t * dx), py - (y0 + t * dy)), out=best)
    return best


def stroke_mask(stroke: Stroke, shape: tuple[int, int]) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """The brush mask of one stroke on an image of ``shape`` (H, W), cut to its bounding box.

    Returns ((row slice, column slice), float32 mask of that box in [0, 1]), or None when the
    stroke lies outside the image.
    """
    h, w = shape
    pts = np.asarray(stroke.points, np.float64)
    r = stroke.radius
    x0 = max(int(np.floor(pts[:, 0].min() - r)), 0)
    x1 = min(int(np.ceil(pts[:, 0].max() + r)) + 1, w)
    y0 = max(int(np.floor(pts[:, 1].min() - r)), 0)
    y1 = min(int(np.ceil(pts[:, 1].max() + r)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return None
    d = _distance_to_polyline(np.arange(x0, x1), np.arange(y0, y1), stroke.points)
    feather = r * stroke.softness
    if feather > 0:
        mask = np.clip((r - d) / feather, 0.0, 1.0)
    else:
        mask = (d <= r).astype(np.float32)
    return (slice(y0, y1), slice(x0, x1)), mask.astype(np.float32)


def apply_stroke(image: np.ndarray, frame: np.ndarray, stroke: Stroke, *,
                 coverage: np.ndarray | None = None) -> tuple[slice, slice, np.ndarray] | None:
    """Paint ``frame`` (C, H, W) into ``image`` (C, H, W) in place under one stroke; ``coverage``
    (H, W), when given, is raised to the stroke's mask (the union of all strokes' masks).

    Returns (rows, cols, the region's pixels before the stroke) for undo, or None when the stroke
    lies outside the image."""
    cut = stroke_mask(stroke, image.shape[-2:])
    if cut is None:
        return None
    (rows, cols), mask = cut
    region = image[:, rows, cols]
    before = region.copy()
    region += (frame[:, rows, cols] - region) * mask[None]
    if coverage is not None:
        np.maximum(coverage[rows, cols], mask, out=coverage[rows, cols])
    return rows, cols, before


def retouch(result, frames, strokes) -> FusionResult | np.ndarray:
    """Paint source frames into a fused image along brush strokes.

    Args:
        result: a :class:`FusionResult` or its fused image, float (C, H, W) in [0, 1].
        frames: the frames the result was fused from, in the result's geometry (aligned and
            cropped as fused): an (N, C, H, W) array, a list of (C, H, W) arrays or file paths, a
            :class:`mfif.io.Stack` or a :class:`mfif.stacking.FrameSource` (frames are read only
            when a stroke uses them).
        strokes: a strokes JSON path, its dict, a list of :class:`Stroke` or dicts, or a
            :class:`Retouch`.

    Returns:
        A new :class:`FusionResult` (``fused`` retouched; ``maps["retouch"]`` the union of the
        stroke masks, (H, W); ``info["retouch_strokes"]`` the count) when given one, else the
        retouched float32 (C, H, W) array. The input is not modified.

    Example:
        >>> import numpy as np, mfif
        >>> fused = np.zeros((1, 9, 9), np.float32); frames = np.ones((2, 1, 9, 9), np.float32)
        >>> out = mfif.retouch(fused, frames, [{"frame": 1, "points": [[4, 4]], "radius": 2, "softness": 0}])
        >>> int(out.sum())  # the 13 pixels within 2 px of (4, 4)
        13
    """
    edit = as_retouch(strokes)
    fused = result.fused if isinstance(result, FusionResult) else result
    image = np.array(fused, dtype=np.float32, copy=True)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise InputError(f"the fused image must be (C, H, W) or (H, W), got shape {np.shape(fused)}")
    h, w = image.shape[-2:]
    if edit.size is not None and tuple(edit.size) != (h, w):
        raise InputError(f"the strokes were painted on a {edit.size[1]}x{edit.size[0]} result; this one is {w}x{h}")
    if isinstance(frames, (list, tuple)) and frames and isinstance(frames[0], (str, os.PathLike)):
        from mfif.io import read_image

        paths = list(frames)
        frames = _LazyFrames(paths, read_image)
    elif hasattr(frames, "images") and not hasattr(frames, "__getitem__"):  # mfif.io.Stack
        frames = frames.images
    n = len(frames)
    coverage = np.zeros((h, w), np.float32)
    cache: dict[int, np.ndarray] = {}
    for i, stroke in enumerate(edit.strokes):
        if not 0 <= stroke.frame < n:
            raise InputError(f"stroke {i} paints frame {stroke.frame}, but the stack has {n} frames (0..{n - 1})")
        if stroke.frame not in cache:
            cache.clear()  # one frame held at a time
            cache[stroke.frame] = _frame_like(frames[stroke.frame], image, stroke.frame)
        apply_stroke(image, cache[stroke.frame], stroke, coverage=coverage)
    if isinstance(result, FusionResult):
        maps = dict(result.maps)
        maps["retouch"] = coverage
        info = dict(result.info)
        info["retouch_strokes"] = len(edit.strokes)
        return FusionResult(fused=image, weights=result.weights, decision=result.decision, score=result.score,
                            maps=maps, info=info)
    return image


class _LazyFrames:
    def __init__(self, paths: list, reader):
        self.paths, self.reader = paths, reader

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.reader(self.paths[i])


def _frame_like(frame, image: np.ndarray, index: int) -> np.ndarray:
    frame = np.asarray(frame, dtype=np.float32)
    if frame.ndim == 2:
        frame = frame[None]
    if frame.shape[-2:] != image.shape[-2:]:
        raise InputError(f"frame {index} is {frame.shape[-1]}x{frame.shape[-2]}, the result "
                         f"{image.shape[-1]}x{image.shape[-2]}: retouch with the frames as fused (aligned and cropped)")
    if frame.shape[0] != image.shape[0]:
        if frame.shape[0] == 1:
            frame = np.repeat(frame, image.shape[0], axis=0)
        else:
            raise InputError(f"frame {index} has {frame.shape[0]} channels, the result {image.shape[0]}")
    return frame

