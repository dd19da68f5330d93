"""Practical focus stacking: the pipeline for real stacks as named stages.

    load -> align -> merge -> (global steps) -> save

- **load** (:class:`FrameSource`): frames are read one at a time (from files, or taken from an
  array) and prepared on every access: channels unified, warped into the reference geometry and
  cropped (:mod:`mfif.align`), exposure / white balance normalised. Besides the current frame,
  only the decoded samples of the files (8/16-bit, :class:`DecodedFrames`, up to 768 MB; beyond
  that frames are read again) are held, so each file is decoded once by the alignment pass.
- **merge** (:func:`fuse_frames`), one of three ways, chosen per method:

  1. *running reduction* — methods whose :class:`~mfif.methods.MethodSpec` names a ``stream``
     function: every classical method (``average`` 1 pass, ``dwt`` 1, ``laplacian`` 3; ``gff``,
     ``sml``, ``dct-cv``: 2 passes with more than two frames (the N-frame rule of
     :mod:`mfif.stack_rule`), 2 / 3 / 3 for a pair). Passes over the frames keep the best score, the frame
     index, vote counts and running sums; the result equals the all-in-memory method up to float
     rounding (tested); peak memory is a few full-size maps whatever N is.
  2. *all in memory* — any method without a stream function when N <= ``batch_frames``, or
     ``stream=False`` (the CLI's ``--save-map`` on a pair): the method itself (all its maps).
  3. *batches* — methods without a stream function (today: the learned ones) when
     N > ``batch_frames``: frames 0..k-1 are fused, then the running result with the next k-1
     frames, and so on (a series fold in input order; the depth map is composed through the
     folds). Memory is bounded by k frames; the result depends (a little) on k and the order.

  The per-frame work (decoding, the alignment steps, preparing and measuring frames, their
  pyramids) runs in worker threads (:mod:`mfif.parallel`, ``MFIF_THREADS``), overlapping the
  reductions, which stay in frame order: the result does not depend on the number of threads.
  Each stage shows a progress bar in ``mfif fuse`` once it runs over a second (:mod:`mfif.progress`).

  Large images run tile by tile (:mod:`mfif.tiling`) when ``tile`` is given (the in-memory and
  batch paths, every method, learned ones included; global steps on the full-size decision map);
  the running reductions of ``gff`` and ``sml`` run their per-frame filters tile by tile
  themselves, the others work on whole frames.
- **save**: fused image (16-bit from 16-bit input), depth map (:func:`write_depth_map`: colour
  PNG + raw 16-bit frame index), EXIF from the reference frame (see :func:`mfif.io.write_image`),
  transforms (:meth:`mfif.align.Alignment.save`).
"""
from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mfif import progress
from mfif.align import AlignOptions, Alignment, channel_means, estimate_alignment, exposure_gain
from mfif.errors import InputError
from mfif.io import ImageInfo, read_samples_with_info, to_float_image
from mfif.methods import DEFAULT_METHOD, MethodSpec, get_method
from mfif.parallel import ordered_map
from mfif.result import FusionResult


# ----------------------------------------------------------------------------------------------
# load


class FrameSource:
    """A stack whose frames are prepared on demand: ``len(src)``, ``src[i]`` -> float32 (C, H, W).

    Build it with :func:`prepare_frames`. ``src.shape`` is (N, C, H, W) of the prepared frames.
    """

    prepared_on_access = True  # frames[i] decodes/warps: passes may keep what they read (stack_rule.PassCache)

    def __init__(self, items: Sequence, *, channels: int, size: tuple[int, int], bit_depth: int = 8,
                 infos: Sequence[ImageInfo | None] = (), alignment: Alignment | None = None,
                 reference: int | None = None, normalize_exposure: bool = True):
        self.items = list(items)
        self.channels = channels
        self.full_size = size
        self.bit_depth = bit_depth
        self.infos = list(infos)
        self.alignment = alignment
        self.reference = alignment.reference if alignment is not None else (
            reference if reference is not None else len(self.items) // 2)
        self.normalize_exposure = normalize_exposure and alignment is not None
        self._ref_means: np.ndarray | None = None
        self._ref_lock = threading.Lock()
        self.reads = 0
        self.decoded: DecodedFrames | None = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        if self.alignment is not None:
            _, _, w, h = self.alignment.crop
        else:
            w, h = self.full_size
        return len(self.items), self.channels, h, w

    @property
    def paths(self) -> list[Path | None]:
        return [Path(i) if isinstance(i, (str, os.PathLike)) else None for i in self.items]

    def name(self, i: int) -> str:
        item = self.items[i]
        return str(item) if isinstance(item, (str, os.PathLike)) else f"frame {i}"

    def raw(self, i: int) -> np.ndarray:
        """Frame i as read: float32 (C, H, W), channels unified, not warped."""
        item = self.items[i]
        image = self.decoded.get(i) if self.decoded is not None else None
        if image is not None:
            pass  # decoded once by prepare_frames, kept as its integer samples
        elif isinstance(item, (str, os.PathLike)):
            image = to_float_image(read_samples_with_info(item)[0], str(item))[0]
        else:
            image = _as_chw(item, f"frame {i}")
        self.reads += 1
        if image.shape[0] != self.channels:
            image = np.repeat(image, self.channels, axis=0)
        return image

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        image = self.raw(i)
        if self.alignment is None:
            return image
        warped = self.alignment.warp(image, i)
        del image
        image = warped
        if self.normalize_exposure and i != self.reference:
            gain = self.alignment.gains.get(i)
            if gain is None:
                with self._ref_lock:  # frames may be prepared in worker threads
                    if self._ref_means is None:
                        self._ref_means = channel_means(self[self.reference])
                gain = [float(g) for g in exposure_gain(channel_means(image), self._ref_means)]
                self.alignment.gains[i] = gain
            image *= np.asarray(gain, np.float32)[:, None, None]
            np.clip(image, 0.0, 1.0, out=image)
        elif i == self.reference:
            self.alignment.gains.setdefault(i, [1.0] * image.shape[0])
        return image

    def load(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """Prepared frames stacked in memory: (n, C, H, W) float32."""
        indices = range(len(self)) if indices is None else indices
        n, c, h, w = self.shape
        out = np.empty((len(indices), c, h, w), np.float32)
        for k, i in enumerate(indices):
            out[k] = self[i]
        return out

    @property
    def reference_info(self) -> ImageInfo | None:
        """What was read from the reference frame's file (ICC profile, resolution), or None."""
        if 0 <= self.reference < len(self.infos):
            return self.infos[self.reference]
        return None

    @property
    def reference_exif(self) -> bytes | None:
        if 0 <= self.reference < len(self.infos) and self.infos[self.reference] is not None:
            return self.infos[self.reference].exif
        return None


DECODED_CACHE_BYTES = 768 * 2**20


class DecodedFrames:
    """Decoded frames kept as their samples as read (8/16-bit: a quarter or half of float32), up
    to ``budget`` bytes, so a stack that fits is decoded once (by the alignment pass) however many
    passes the merge makes; frames beyond the budget are read from their files again. ``get``
    converts them as :func:`mfif.io.read_image_with_info` would (the same float32 frame)."""

    def __init__(self, budget: int = DECODED_CACHE_BYTES):
        self.budget = budget
        self.used = 0
        self.frames: dict[int, tuple[np.ndarray, str]] = {}
        self.hits = 0

    def put(self, i: int, samples: np.ndarray, name: str = "") -> None:
        """Keep (H, W[, C]) integer samples of frame i (other sample types are not kept)."""
        if samples.dtype not in (np.uint8, np.uint16) or self.used + samples.nbytes > self.budget:
            return
        self.frames[i] = (samples, name)
        self.used += samples.nbytes

    def get(self, i: int) -> np.ndarray | None:
        hit = self.frames.get(i)
        if hit is None:
            return None
        self.hits += 1
        return to_float_image(hit[0], hit[1])[0]


def _as_chw(item, name: str) -> np.ndarray:
    arr = np.asarray(item)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 2, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.dtype == np.float32 and arr.ndim == 3 and arr.shape[-1] in (1, 3):
        return np.ascontiguousarray(np.moveaxis(arr, -1, 0))
    return to_float_image(arr, name)[0]


def prepare_frames(items: Sequence, *, align: bool | None = None, align_options: AlignOptions | None = None,
                   min_frames: int = 2, reference: int | None = None) -> FrameSource:
    """The load (+ align) stages: one pass over the frames, one frame in memory at a time.

    Args:
        items: file paths or arrays ((H, W), (H, W, C) or (C, H, W)).
        align: register the frames (None = on for more than two frames).
        align_options: :class:`mfif.align.AlignOptions`.
        reference: reference frame (EXIF and, when aligning, geometry); None = the middle frame.

    Frames of different sizes are refused (with or without alignment: alignment corrects small
    motions between frames of one camera, not crops); mixed grey/colour frames become colour.
    """
    items = list(items)
    if len(items) < min_frames:
        first = f" ({items[0]})" if items and isinstance(items[0], (str, os.PathLike)) else ""
        raise InputError(f"need at least {min_frames} frames to fuse, got {len(items)}{first}")
    if align is None:
        align = len(items) > 2
    names = [str(it) if isinstance(it, (str, os.PathLike)) else f"frame {i}" for i, it in enumerate(items)]
    cache = DecodedFrames()
    infos: list[ImageInfo | None] = []
    sizes: list[tuple[int, int]] = []
    channels: set[int] = set()
    depth = 8
    ref_index = reference if reference is not None else len(items) // 2

    def decode(i: int):  # in a worker thread: only the decoding
        it = items[i]
        if isinstance(it, (str, os.PathLike)):
            samples, info = read_samples_with_info(it)
            return to_float_image(samples, names[i])[0], samples, info
        arr = np.asarray(it)
        return _as_chw(arr, names[i]), arr, None

    def read(decoded, i: int) -> np.ndarray:
        nonlocal depth
        image, samples, info = decoded
        if info is not None:
            info.exif = info.exif if i == ref_index else None
            depth = max(depth, info.bit_depth)
            cache.put(i, samples, names[i])
        else:
            d = 16 if samples.dtype != np.uint8 and samples.dtype != np.bool_ else 8
            depth = max(depth, d)
        infos.append(info)
        size = (image.shape[-1], image.shape[-2])
        if sizes and size != sizes[0]:
            raise InputError(f"{names[i]}: size {size[0]}x{size[1]} differs from {names[0]} ({sizes[0][0]}x{sizes[0][1]}); "
                             "frames must have the same size (alignment corrects small motions, not crops: "
                             "crop or resize them first)")
        sizes.append(size)
        channels.add(image.shape[0])
        return image

    def counted(bar):
        # decoding the next frames (worker threads) overlaps the alignment of the current ones
        for i, d in enumerate(ordered_map(decode, range(len(items)))):
            yield read(d, i)
            bar.update()

    alignment = None
    with progress.stage("decoding + aligning" if align else "decoding", len(items)) as bar:
        if align:
            o = align_options or AlignOptions()
            if reference is not None:
                o = AlignOptions(**{**o.__dict__, "reference": reference})
            alignment = estimate_alignment(counted(bar), o, n_frames=len(items), labels=names)
        else:
            for _ in counted(bar):
                pass
    if channels == {1, 3}:
        grey = [n for n, info in zip(names, infos) if info is not None and info.channels == 1]
        warnings.warn(f"mixed grey and colour frames: converting grey frame(s) {', '.join(grey) or '(arrays)'} to RGB",
                      stacklevel=2)
    source = FrameSource(items, channels=max(channels), size=sizes[0], bit_depth=depth, infos=infos,
                         alignment=alignment, reference=reference,
                         normalize_exposure=(align_options or AlignOptions()).normalize_exposure)
    source.decoded = cache
    return source


# ----------------------------------------------------------------------------------------------
# merge


def _decision_of(result: FusionResult) -> np.ndarray | None:
    if result.decision is not None:
        return np.asarray(result.decision)
    if result.weights is not None:
        return np.argmax(result.weights, axis=0)
    return None


def run_method(stack: np.ndarray, spec: MethodSpec, options, *, tile: int | None = None) -> FusionResult:
    """Run a method on an in-memory (N, C, H, W) stack, tile by tile when ``tile`` is set and the
    image is larger than one tile."""
    function, _ = spec.load()
    if tile and max(stack.shape[2:]) > tile:
        from mfif.tiling import tiled_fusion

        return tiled_fusion(stack, spec, options, tile=tile)
    return function(stack, options)


def fold_in_batches(frames, spec: MethodSpec, options, *, batch_frames: int = 8,
                    tile: int | None = None) -> FusionResult:
    """Series fold in input order: fuse frames [0, k), then (result, next k-1 frames), ...

    The depth map follows the folds: a pixel taken from the running result keeps its earlier frame
    index. Memory: at most k frames at a time."""
    n = len(frames)
    k = max(2, int(batch_frames))
    if n <= k:
        return run_method(frames.load() if hasattr(frames, "load") else np.asarray(frames), spec, options, tile=tile)
    folds_total = 1 + -(-(n - k) // (k - 1))
    with progress.stage(f"fusing in batches of {k}", folds_total, unit="batch") as bar:
        stack = np.stack([frames[i] for i in range(k)])
        result = run_method(stack, spec, options, tile=tile)
        bar.update()
        del stack
        depth = _decision_of(result)
        depth = None if depth is None else depth.astype(np.int32)
        start = k
        folds = 1
        while start < n:
            idx = list(range(start, min(n, start + k - 1)))
            stack = np.stack([result.fused] + [frames[i] for i in idx])
            result = run_method(stack, spec, options, tile=tile)
            bar.update()
            del stack
            d = _decision_of(result)
            if depth is not None and d is not None:
                lookup = np.array([-1] + idx, np.int32)
                depth = np.where(d == 0, depth, lookup[np.asarray(d)]).astype(np.int32)
            else:
                depth = None
            start = idx[-1] + 1
            folds += 1
    return FusionResult(fused=result.fused, decision=depth,
                        info={"merge": f"batches of {k} frames ({folds} folds, series in input order)"})


AUTO_TILE_PIXELS = 12_000_000
AUTO_TILE_SIZE = 1024


def auto_tile(spec: MethodSpec, shape) -> int | None:
    """Tile size chosen for ``tile="auto"``: 1024 for frames over 12 MP when the method declares
    its receptive field (:mod:`mfif.tiling`), otherwise None (one pass)."""
    h, w = shape[-2:]
    if h * w > AUTO_TILE_PIXELS and spec.tile_plan:
        return AUTO_TILE_SIZE
    return None


def fuse_frames(frames, method: str | MethodSpec = DEFAULT_METHOD, options=None, *, tile: int | str | None = None, batch_frames: int = 8,
                stream: bool | None = None, **overrides) -> FusionResult:
    """Merge stage: fuse a :class:`FrameSource` (or any sequence of (C, H, W) frames / an array).

    Args:
        frames: the stack; ``len`` and ``frames[i]`` are all that is needed.
        method: method name or its resolved :class:`MethodSpec`; ``options`` its options dataclass
            (or ``**overrides``).
        tile: tile size for in-memory / batch merging of large images (None: whole image;
            ``"auto"``: :func:`auto_tile`).
        batch_frames: frames fused at once by methods without a running reduction.
        stream: force (True) or forbid (False) the running reduction; None = use it whenever the
            method has one, a pair included, so peak memory is the same for 2 and 100 frames
            (``tile`` then sets the tiles of its per-frame filters, where it has them). The
            reduction returns the fused image and the decision map; ``stream=False`` runs the
            method itself on the frames in memory (all its maps), tiled when asked.
    """
    spec = get_method(method)
    opts = options if options is not None else spec.make_options(**overrides)
    n = len(frames)
    if n < 2:
        raise InputError(f"need at least 2 frames to fuse, got {n}")
    if tile == "auto":
        tile = auto_tile(spec, frames.shape if hasattr(frames, "shape") else np.shape(frames))
    start = time.perf_counter()
    stream_fn = spec.load_stream()
    use_stream = stream_fn is not None and (stream if stream is not None else True)
    if stream and stream_fn is None:
        raise InputError(f"method '{spec.name}' has no running reduction; it merges in batches")
    if use_stream:
        if tile and spec.stream_tile:
            result = stream_fn(frames, opts, tile=tile)
        else:
            result = stream_fn(frames, opts)
        result.info.setdefault("merge", "running reduction")
    else:
        result = fold_in_batches(frames, spec, opts, batch_frames=batch_frames, tile=tile)
        result.info.setdefault("merge", "all frames in memory" + (f", tiles of {tile}" if tile else ""))
    result.info.setdefault("method", spec.name)
    result.info.setdefault("seconds", time.perf_counter() - start)
    return result


# ----------------------------------------------------------------------------------------------
# save


def depth_colours(depth: np.ndarray, n_frames: int) -> np.ndarray:
    """(H, W) frame index -> float32 (3, H, W) colour image (turbo colour map, frame 0 blue)."""
    import cv2

    scaled = np.round(np.asarray(depth, np.float64) * (255.0 / max(n_frames - 1, 1))).astype(np.uint8)
    bgr = cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO)
    return np.ascontiguousarray(np.moveaxis(bgr[..., ::-1], -1, 0)).astype(np.float32) / 255.0


def raw_depth_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}_raw.png")


def write_depth_map(path: str | os.PathLike, depth: np.ndarray, n_frames: int, *, inputs=()) -> list[Path]:
    """Write the frame-index map: ``path`` (colour-coded, 8-bit) and ``<stem>_raw.png`` (16-bit
    grey, value = 0-based frame index in input order)."""
    from mfif.io import check_output_path, encode_image, write_bytes_atomic, write_image

    path = Path(path)
    depth = np.asarray(depth)
    written = [write_image(path, depth_colours(depth, n_frames), bit_depth=8, inputs=inputs)]
    raw = check_output_path(raw_depth_path(path), inputs=inputs)
    write_bytes_atomic(raw, encode_image(depth.astype(np.float64)[None] / 65535.0, ".png", 16))
    written.append(raw)
    return written


@dataclass
class StackResult:
    """What :func:`fuse_stack` returns: the fusion result, the prepared frames and the alignment."""

    result: FusionResult
    frames: FrameSource
    alignment: Alignment | None
    seconds: dict[str, float] = field(default_factory=dict)


def fuse_stack(items: Sequence, method: str | MethodSpec = DEFAULT_METHOD, *, align: bool | None = None,
               align_options: AlignOptions | None = None, tile: int | str | None = None, batch_frames: int = 8,
               stream: bool | None = None, reference: int | None = None, **options) -> StackResult:
    """Load, align and merge a stack of files or arrays (the library form of ``mfif fuse``).

    Example:
        >>> import numpy as np
        >>> from mfif.stacking import fuse_stack
        >>> frames = [np.full((16, 16), v, np.float32) for v in (0.2, 0.4, 0.6)]
        >>> r = fuse_stack(frames, "average", align=False)
        >>> round(float(r.result.fused.mean()), 3)
        0.4
    """
    spec = get_method(method)
    opts = spec.make_options(**options)
    t0 = time.perf_counter()
    frames = prepare_frames(items, align=align, align_options=align_options, reference=reference)
    t1 = time.perf_counter()
    result = fuse_frames(frames, spec, opts, tile=tile, batch_frames=batch_frames, stream=stream)
    t2 = time.perf_counter()
    result.info.setdefault("bit_depth", frames.bit_depth)
    if frames.alignment is not None:
        result.info["crop"] = frames.alignment.crop
    return StackResult(result=result, frames=frames, alignment=frames.alignment,
                       seconds={"load+align": t1 - t0, "merge": t2 - t1})
