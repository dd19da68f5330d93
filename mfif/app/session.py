"""The app's state, without the web layer: the opened folder, the loaded stack and its previews,
fusion jobs with progress events, results with their retouch history, and export.

Memory: frames are never all held at full size. A stack keeps one preview per frame (at most
``PREVIEW_SIDE`` pixels on the long side, uint8); full-resolution crops for zoom are read on demand
through a small cache; a result keeps its fused image (float32) and its prepared frames as a
:class:`mfif.stacking.FrameSource` (read again when a stroke needs one).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mfif.errors import InputError, MfifError

PREVIEW_SIDE = 1600  # long side of previews: a screen's worth of pixels
THUMB_SIDE = 160
FULL_CACHE_ITEMS = 4  # full-resolution uint8 images kept for zoomed views
PREVIEW_FIRST_PIXELS = 4_000_000  # above this, a stack is fused from its previews first ...
QUICK_LOOK_SIDE = 1024  # ... shrunk to this long side (a second or two for gff on 5 frames)
IN_MEMORY_BYTES = 256 * 1024**2  # a pair up to this size is fused in memory


class AccessError(MfifError, PermissionError):
    """A request for something outside the opened folder."""


def inside(root: Path, relative: str) -> Path:
    """``root / relative`` resolved, refused unless it stays inside ``root`` (no ``..``, no
    absolute paths, no symlinks leading out)."""
    relative = relative or "."
    if "\x00" in relative or Path(relative).is_absolute():
        raise AccessError(f"'{relative}' is not a path inside the opened folder")
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise AccessError(f"'{relative}' is outside the opened folder")
    return target


def image_files(folder: Path) -> list[Path]:
    from mfif.io import IMAGE_SUFFIXES

    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


def to_uint8_hwc(image: np.ndarray) -> np.ndarray:
    """float (C, H, W) in [0, 1] -> uint8 (H, W, 3) for the browser."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.shape[0] == 1:
        arr = np.repeat(arr, 3, axis=0)
    return np.round(np.clip(np.moveaxis(arr, 0, -1), 0.0, 1.0) * 255.0).astype(np.uint8)


def shrink(rgb: np.ndarray, side: int) -> np.ndarray:
    """uint8/float (H, W, 3) scaled so the long side is at most ``side`` (area averaging)."""
    import cv2

    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def encode_png(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise MfifError("cannot encode a preview image")
    return buf.tobytes()


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise MfifError("cannot encode a preview image")
    return buf.tobytes()


def read_preview(path: Path) -> tuple[np.ndarray, tuple[int, int], int]:
    """One frame -> (uint8 (h, w, 3) preview, full (width, height), bit depth). JPEGs are decoded
    at a reduced size when that still covers the preview (libjpeg's DCT scaling)."""
    from PIL import Image

    from mfif.io import read_image_with_info

    if path.suffix.lower() in (".jpg", ".jpeg"):
        with Image.open(path) as im:
            full = im.size
            orientation = im.getexif().get(0x0112, 1)
            if orientation in (1, None) and im.mode in ("RGB", "L"):
                im.draft("RGB", (max(1, full[0] * PREVIEW_SIDE // max(full)), max(1, full[1] * PREVIEW_SIDE // max(full))))
                rgb = np.asarray(im.convert("RGB"))
                return shrink(rgb, PREVIEW_SIDE), full, 8
    image, info = read_image_with_info(path)
    full = (image.shape[-1], image.shape[-2])
    small = shrink(np.moveaxis(image if image.shape[0] == 3 else np.repeat(image, 3, axis=0), 0, -1), PREVIEW_SIDE)
    del image
    return np.round(np.clip(small, 0, 1) * 255).astype(np.uint8), full, info.bit_depth


def _display_rgb(path: Path, read_image) -> np.ndarray:
    """A frame as uint8 (H, W, 3) for display: decoded straight to 8 bits by OpenCV (EXIF
    orientation applied, as mfif.io does), through mfif.io for what OpenCV does not read."""
    import cv2

    if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None:
            return np.ascontiguousarray(bgr[..., ::-1])
    return to_uint8_hwc(read_image(path))


class _WatchedPath(os.PathLike):
    """A frame path that reports each time the pipeline opens it: fusion progress without hooks
    in the library (every stage reads frames through ``os.fspath``)."""

    def __init__(self, path: Path, on_read):
        self.path, self.on_read = path, on_read

    def __fspath__(self) -> str:
        self.on_read()
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


@dataclass
class Frame:
    path: Path
    preview: np.ndarray  # uint8 (h, w, 3)
    size: tuple[int, int]  # full (width, height)
    bit_depth: int


@dataclass
class StrokeRecord:
    stroke: object  # mfif.retouching.Stroke
    rows: slice
    cols: slice
    before: np.ndarray  # the fused region before the stroke (C, h, w)


@dataclass
class Result:
    id: str
    method: str
    options: dict
    fused: np.ndarray  # float32 (C, H, W), full resolution (retouched in place)
    frames: object  # FrameSource: the frames as fused (aligned, cropped)
    crop: tuple[int, int, int, int]  # (x, y, w, h) of the result in frame coordinates
    decision: np.ndarray | None
    seconds: float
    bit_depth: int
    exif: bytes | None
    icc: bytes | None
    metrics: dict = field(default_factory=dict)
    done: list[StrokeRecord] = field(default_factory=list)
    undone: list = field(default_factory=list)  # strokes, newest last
    frame_cache: tuple[int, np.ndarray] | None = None
    version: int = 0
    scale: float = 1.0  # > 1: a provisional result fused from the previews (full pixels per pixel)

    def describe(self) -> dict:
        h, w = self.fused.shape[-2:]
        s = self.scale
        return {"id": self.id, "method": self.method, "options": self.options, "width": round(w * s),
                "height": round(h * s), "crop": [round(v * s) for v in self.crop], "provisional": s != 1.0,
                "seconds": round(self.seconds, 3), "metrics": self.metrics,
                "has_map": self.decision is not None, "strokes": len(self.done), "can_undo": bool(self.done),
                "can_redo": bool(self.undone), "version": self.version,
                "preview_scale": min(1.0, PREVIEW_SIDE / max(h, w)) / s}


@dataclass
class Job:
    id: str
    events: list = field(default_factory=list)
    finished: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def emit(self, kind: str, **data) -> None:
        with self.lock:
            self.events.append({"event": kind, **data})


@functools.lru_cache(maxsize=1)
def method_table() -> list[dict]:
    """Every method with its options (from its dataclass) for the page's forms."""
    from mfif.methods import DEFAULT_METHOD, METHODS

    table = []
    for name, spec in METHODS.items():
        try:
            _, options_cls = spec.load()
        except Exception as exc:  # a method whose module cannot load (missing extra) is listed, disabled
            table.append({"name": name, "summary": spec.summary, "kind": spec.kind, "options": [],
                          "unavailable": f"{exc.__class__.__name__}: {exc}"})
            continue
        defaults = dict(spec.defaults)
        options = []
        for f in dataclasses.fields(options_cls):
            if f.name in defaults or f.name in ("device", "weights"):
                continue
            default = f.default if f.default is not dataclasses.MISSING else None
            if not isinstance(default, (bool, int, float, str, type(None))):
                continue
            kind = ("bool" if isinstance(default, bool) else "int" if isinstance(default, int)
                    else "float" if isinstance(default, float) else "str")
            options.append({"name": f.name, "type": kind, "default": default})
        table.append({"name": name, "summary": spec.summary, "kind": spec.kind, "options": options,
                      "default": name == DEFAULT_METHOD})
    return table


def _clean_options(spec, raw: dict) -> dict:
    table = {m["name"]: m for m in method_table()}
    types = {o["name"]: o["type"] for o in table[spec.name]["options"]}
    out = {}
    for key, value in (raw or {}).items():
        if key not in types:
            raise InputError(f"method '{spec.name}' has no option '{key}' in the app")
        if value is None or value == "":
            continue
        try:
            if types[key] == "bool":
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
            elif types[key] == "int":
                value = int(value)
            elif types[key] == "float":
                value = float(value)
            else:
                value = str(value)
        except (TypeError, ValueError):
            raise InputError(f"option '{key}' of '{spec.name}' must be a {types[key]}, got {value!r}") from None
        out[key] = value
    spec.make_options(**out)  # the dataclass checks what it checks
    return out


def _reference_icc(path: Path) -> bytes | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.info.get("icc_profile") or None
    except Exception:
        return None


class AppSession:
    """Everything one launch of ``mfif app`` holds. Thread-safe enough for one user: fusion runs
    on one worker thread; other calls are short and serialised by a lock."""

    def __init__(self, root: str | os.PathLike, *, upload_limit: int = 2 * 1024**3):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise InputError(f"{root}: not a folder")
        self.upload_limit = upload_limit
        self.upload_dir: Path | None = None
        self.folder: Path | None = None
        self.frames: list[Frame] = []
        self.results: dict[str, Result] = {}
        self.jobs: dict[str, Job] = {}
        self.lock = threading.RLock()
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="mfif-fuse")
        self.readers = ThreadPoolExecutor(2, thread_name_prefix="mfif-read")
        self.full_cache: OrderedDict = OrderedDict()
        self._ids = itertools.count(1)

    # ---- folders and frames -------------------------------------------------------------

    def folders(self) -> list[dict]:
        """The opened folder and its subfolders (two levels) that hold images."""
        out = []
        for depth, pattern in ((0, "."), (1, "*"), (2, "*/*")):
            dirs = [self.root] if depth == 0 else sorted(d for d in self.root.glob(pattern) if d.is_dir())
            for d in dirs:
                if any(part.startswith(".") for part in d.relative_to(self.root).parts):
                    continue
                try:
                    n = len(image_files(d))
                except OSError:
                    continue
                if n:
                    out.append({"path": d.relative_to(self.root).as_posix(), "frames": n})
        return out

    def open(self, relative: str) -> dict:
        folder = inside(self.root, relative)
        if not folder.is_dir():
            raise InputError(f"'{relative}' is not a folder")
        paths = image_files(folder)
        if len(paths) < 2:
            raise InputError(f"'{relative or '.'}' holds {len(paths)} image(s); a stack needs at least 2")
        return self._load(paths, folder)

    def upload(self, files: list[tuple[str, bytes]]) -> dict:
        """Frames dropped on the page: saved in a folder of this launch (never in the user's)."""
        from mfif.io import IMAGE_SUFFIXES

        if len(files) < 2:
            raise InputError(f"drop at least 2 frames (got {len(files)})")
        if self.upload_dir is None:
            self.upload_dir = Path(tempfile.mkdtemp(prefix="mfif-app-"))
        target = Path(tempfile.mkdtemp(dir=self.upload_dir))
        paths = []
        for name, data in files:
            base = Path(name).name
            if Path(base).suffix.lower() not in IMAGE_SUFFIXES or base.startswith("."):
                raise InputError(f"{base}: not an image file this app reads ({', '.join(IMAGE_SUFFIXES)})")
            path = target / base
            path.write_bytes(data)
            paths.append(path)
        return self._load(sorted(paths), target)

    def _load(self, paths: list[Path], folder: Path) -> dict:
        frames = list(self.readers.map(self._read_frame, paths))
        sizes = {f.size for f in frames}
        if len(sizes) > 1:
            first = frames[0]
            other = next(f for f in frames if f.size != first.size)
            raise InputError(f"{other.path.name}: size {other.size[0]}x{other.size[1]} differs from "
                             f"{first.path.name} ({first.size[0]}x{first.size[1]}); frames must have the same size")
        with self.lock:
            self.folder, self.frames = folder, frames
            self.results.clear()
            self.full_cache.clear()
        return self.describe()

    @staticmethod
    def _read_frame(path: Path) -> Frame:
        preview, size, depth = read_preview(path)
        return Frame(path, preview, size, depth)

    def describe(self) -> dict:
        with self.lock:
            folder = None
            if self.folder is not None:
                folder = (self.folder.relative_to(self.root).as_posix() if self.root in (self.folder, *self.folder.parents)
                          else "(dropped files)")
            return {"root": self.root.name or str(self.root), "folder": folder,
                    "frames": [{"index": i, "name": f.path.name, "width": f.size[0], "height": f.size[1],
                                "bit_depth": f.bit_depth,
                                "preview_scale": f.preview.shape[1] / f.size[0]} for i, f in enumerate(self.frames)],
                    "results": [r.describe() for r in self.results.values()]}

    def frame(self, index: int) -> Frame:
        if not 0 <= index < len(self.frames):
            raise InputError(f"no frame {index} (the stack has {len(self.frames)})")
        return self.frames[index]

    def result(self, rid: str) -> Result:
        try:
            return self.results[rid]
        except KeyError:
            raise InputError(f"no result '{rid}' (it was replaced when another stack was opened)") from None

    # ---- images for the page ---------------------------------------------------------------

    def _full_rgb(self, key: tuple, make) -> np.ndarray:
        with self.lock:
            if key in self.full_cache:
                self.full_cache.move_to_end(key)
                return self.full_cache[key]
        rgb = make()
        with self.lock:
            self.full_cache[key] = rgb
            while len(self.full_cache) > FULL_CACHE_ITEMS:
                self.full_cache.popitem(last=False)
        return rgb

    def full_rgb(self, kind: str, ident: str) -> np.ndarray:
        """uint8 (H, W, 3) at full resolution: a frame as read, a result, or a result's map."""
        from mfif.io import read_image

        if kind == "frame":
            f = self.frame(int(ident))
            return self._full_rgb(("frame", str(f.path)), lambda: _display_rgb(f.path, read_image))
        r = self.result(ident)
        if kind == "result":
            return self._full_rgb(("result", r.id, r.version), lambda: to_uint8_hwc(r.fused))
        if kind == "map":
            if r.decision is None:
                raise InputError(f"method '{r.method}' has no decision map")
            return self._full_rgb(("map", r.id, r.version), lambda: self._map_rgb(r))
        raise InputError(f"unknown image kind '{kind}'")

    def _map_rgb(self, r: Result) -> np.ndarray:
        from mfif.stacking import depth_colours

        return to_uint8_hwc(depth_colours(r.decision, len(self.frames)))

    def preview(self, kind: str, ident: str) -> np.ndarray:
        if kind == "frame":
            return self.frame(int(ident)).preview
        if kind == "aligned":  # "rid:index": a frame as fused (aligned, cropped), at preview size
            rid, _, index = ident.partition(":")
            r = self.result(rid)
            return self._full_rgb(("aligned", rid, r.scale, index),
                                  lambda: shrink(to_uint8_hwc(self._result_frame(r, int(index))), PREVIEW_SIDE))
        return shrink(self.full_rgb(kind, ident), PREVIEW_SIDE)

    def view(self, kind: str, ident: str, x: float, y: float, w: float, h: float, out_w: int, out_h: int) -> np.ndarray:
        """The region (x, y, w, h) of an image in its full-resolution pixels, resampled to
        (out_w, out_h): what a zoomed pane shows (nearest neighbour beyond 1:1)."""
        import cv2

        if not (0 < out_w <= 4096 and 0 < out_h <= 4096 and w > 0 and h > 0):
            raise InputError("a view must be 1..4096 pixels on each side and cover a non-empty region")
        rgb = self.full_rgb(kind, ident)
        if kind in ("result", "map") and self.result(ident).scale != 1.0:  # provisional: its own pixels
            f = 1.0 / self.result(ident).scale
            x, y, w, h = x * f, y * f, w * f, h * f
        H, W = rgb.shape[:2]
        x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
        x1, y1 = min(int(np.ceil(x + w)), W), min(int(np.ceil(y + h)), H)
        if x0 >= x1 or y0 >= y1:
            raise InputError("the requested view lies outside the image")
        crop = rgb[y0:y1, x0:x1]
        zoom_in = out_w >= (x1 - x0)
        return cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_NEAREST if zoom_in else cv2.INTER_AREA)

    # ---- fusion ---------------------------------------------------------------------------

    def start_fusion(self, methods: list[str], *, align: bool | None, options: dict | None = None) -> str:
        from mfif.methods import get_method

        if not self.frames:
            raise InputError("open a folder (or drop frames) first")
        if not methods:
            raise InputError("choose at least one method")
        specs = [get_method(m) for m in methods]
        cleaned = {s.name: _clean_options(s, (options or {}).get(s.name, {})) for s in specs}
        job = Job(f"j{next(self._ids)}")
        self.jobs[job.id] = job
        paths = [f.path for f in self.frames]
        self.worker.submit(self._run_fusion, job, paths, specs, cleaned, align)
        return job.id

    def _run_fusion(self, job: Job, paths, specs, options, align) -> None:
        from mfif.stacking import fuse_stack

        try:
            n = len(specs)
            job.emit("progress", fraction=0.0, message=f"fusing {len(paths)} frames with {n} method(s)")
            for k, spec in enumerate(specs):
                job.emit("progress", fraction=k / n, message=f"{spec.name}: loading" + (" and aligning" if align or (align is None and len(paths) > 2) else ""))
                start = time.perf_counter()
                provisional = None
                width, height = self.frames[0].size
                if width * height > PREVIEW_FIRST_PIXELS:  # a quick look first, full resolution next
                    quick = [shrink(f.preview, QUICK_LOOK_SIDE) for f in self.frames]
                    sr = fuse_stack(quick, spec.name, align=align, **options[spec.name])
                    provisional = self._add_result(spec.name, options[spec.name], sr, time.perf_counter() - start,
                                                   paths, scale=width / quick[0].shape[1])
                    job.emit("result", result=provisional.describe())
                    job.emit("progress", fraction=(k + 0.2) / n,
                             message=f"{spec.name}: preview shown; full resolution ({width}x{height}) in tiles")
                # a small pair runs the method itself: 2x faster than the running reduction, which
                # decodes every frame once per pass (benchmarks/app_latency.py); longer stacks stream
                in_memory = len(paths) == 2 and 2 * width * height * 3 * 4 <= IN_MEMORY_BYTES
                watched = self._watch(job, paths, spec.name, k, n, passes=1 if in_memory else 3)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    sr = fuse_stack(watched, spec.name, align=align, tile="auto", stream=False if in_memory else None,
                                    **options[spec.name])
                sr.frames.items = list(paths)  # later reads (retouching) are not this job's progress
                for w in caught:
                    job.emit("warning", message=str(w.message))
                seconds = time.perf_counter() - start
                result = self._add_result(spec.name, options[spec.name], sr, seconds, paths,
                                          replaces=provisional)
                job.emit("progress", fraction=(k + 0.9) / n, message=f"{spec.name}: done in {seconds:.2f} s")
                job.emit("result", result=result.describe())
                self._add_metrics(result)
                job.emit("metrics", result=result.describe())
            job.emit("progress", fraction=1.0, message="done")
            job.emit("done")
        except MfifError as exc:
            job.emit("failed", message=str(exc))
        except MemoryError:
            job.emit("failed", message="out of memory while fusing (try fewer or smaller frames)")
        except Exception as exc:  # shown in the page, one sentence
            job.emit("failed", message=f"internal error: {exc.__class__.__name__}: {exc}")
        finally:
            job.finished = True

    @staticmethod
    def _watch(job: Job, paths: list[Path], method: str, k: int, n: int, *, passes: int) -> list[_WatchedPath]:
        """Paths that turn frame reads into progress events (at most 5 a second). The expected
        number of reads (one load/align pass + the merge passes) only scales the bar."""
        state = {"reads": 0, "last": 0.0}
        expected = len(paths) * (1 + passes)

        def on_read():
            state["reads"] += 1
            now = time.monotonic()
            if now - state["last"] > 0.2:
                state["last"] = now
                done = min(state["reads"] / expected, 0.95)
                job.emit("progress", fraction=(k + done) / n,
                         message=f"{method}: read {state['reads']} of about {expected} frames")
        return [_WatchedPath(p, on_read) for p in paths]

    def _add_result(self, method: str, options: dict, sr, seconds: float, paths: list[Path], *,
                    scale: float = 1.0, replaces: Result | None = None) -> Result:
        """Keep a fusion result; ``scale`` > 1 marks a provisional one fused from the previews
        (full-resolution pixels = ``scale`` x its pixels); ``replaces`` is the provisional result
        this one takes the place of (same id, next version)."""
        result = sr.result
        h, w = result.fused.shape[-2:]
        crop = tuple(sr.alignment.crop) if sr.alignment is not None else (0, 0, w, h)
        decision = result.decision
        if decision is None and result.weights is not None and method != "average":
            decision = result.weights.argmax(axis=0)
        if [f.path for f in self.frames] != list(paths):
            raise InputError("another stack was opened while fusing; fuse it again")
        ref = sr.frames.reference
        r = Result(id=replaces.id if replaces else f"r{next(self._ids)}", method=method, options=options,
                   fused=np.ascontiguousarray(result.fused, dtype=np.float32), frames=sr.frames, crop=crop,
                   decision=decision, seconds=seconds, bit_depth=sr.frames.bit_depth,
                   exif=sr.frames.reference_exif, icc=_reference_icc(paths[ref]), scale=scale,
                   version=replaces.version + 1 if replaces else 0)
        with self.lock:
            self.results[r.id] = r
        return r

    def _add_metrics(self, r: Result) -> None:
        from mfif.metrics.noreference import average_gradient_yl, entropy, spatial_frequency

        image = r.fused
        if image.shape[-1] * image.shape[-2] > 4_000_000:  # the preview's statistics: a second, not ten
            image = np.moveaxis(shrink(np.moveaxis(image, 0, -1), 2048), -1, 0) if image.shape[0] > 1 else \
                shrink(image[0], 2048)[None]
        fused = np.moveaxis(image, 0, -1) if image.shape[0] == 3 else image[0]
        r.metrics = {"EN": round(entropy(None, fused), 4), "SF": round(spatial_frequency(None, fused), 4),
                     "AG": round(average_gradient_yl(None, fused), 4)}

    def events(self, jid: str, since: int) -> tuple[list, bool]:
        job = self.jobs.get(jid)
        if job is None:
            raise InputError(f"no job '{jid}'")
        with job.lock:
            return job.events[since:], job.finished

    # ---- retouching -----------------------------------------------------------------------

    def _result_frame(self, r: Result, index: int) -> np.ndarray:
        if r.frame_cache is not None and r.frame_cache[0] == index:
            return r.frame_cache[1]
        if not 0 <= index < len(r.frames):
            raise InputError(f"no frame {index} (the stack has {len(r.frames)})")
        r.frame_cache = None
        frame = np.asarray(r.frames[index], np.float32)
        if frame.shape[0] != r.fused.shape[0]:
            frame = np.repeat(frame, r.fused.shape[0], axis=0)
        r.frame_cache = (index, frame)
        return frame

    def final_result(self, rid: str) -> Result:
        r = self.result(rid)
        if r.scale != 1.0:
            raise InputError(f"the full-resolution {r.method} result is still being computed; wait for it")
        return r

    def stroke(self, rid: str, data: dict) -> dict:
        from mfif.retouching import apply_stroke, as_retouch

        r = self.final_result(rid)
        (stroke,) = as_retouch([data]).strokes
        with self.lock:
            frame = self._result_frame(r, stroke.frame)
            painted = apply_stroke(r.fused, frame, stroke)
            if painted is None:
                raise InputError("the stroke lies outside the image")
            rows, cols, before = painted
            r.done.append(StrokeRecord(stroke, rows, cols, before))
            r.undone.clear()
            self._changed(r, rows, cols)
        return r.describe()

    def _changed(self, r: Result, rows: slice, cols: slice) -> None:
        """A region of a result was repainted: next version; the cached 8-bit copy (for views) is
        updated in that region instead of converted again whole (a 24 MP result takes ~1 s)."""
        cached = self.full_cache.pop(("result", r.id, r.version), None)
        r.version += 1
        if cached is not None:
            cached[rows, cols] = to_uint8_hwc(r.fused[:, rows, cols])
            self.full_cache[("result", r.id, r.version)] = cached

    def undo(self, rid: str) -> dict:
        r = self.result(rid)
        with self.lock:
            if not r.done:
                raise InputError("nothing to undo")
            rec = r.done.pop()
            r.fused[:, rec.rows, rec.cols] = rec.before
            r.undone.append(rec.stroke)
            self._changed(r, rec.rows, rec.cols)
        return r.describe()

    def redo(self, rid: str) -> dict:
        from dataclasses import asdict

        r = self.result(rid)
        with self.lock:
            if not r.undone:
                raise InputError("nothing to redo")
            stroke = r.undone.pop()
            undone = list(r.undone)
        out = self.stroke(rid, asdict(stroke))
        with self.lock:
            r.undone = undone
        return {**out, "can_redo": bool(undone)}

    def strokes(self, rid: str) -> dict:
        from mfif.retouching import Retouch

        r = self.result(rid)
        return Retouch([rec.stroke for rec in r.done], tuple(r.fused.shape[-2:])).to_json()

    def apply_strokes(self, rid: str, data: dict) -> dict:
        """Re-apply a saved edit: its strokes, one by one (each can be undone)."""
        from dataclasses import asdict

        from mfif.retouching import as_retouch

        r = self.result(rid)
        edit = as_retouch(data)
        if edit.size is not None and tuple(edit.size) != tuple(r.fused.shape[-2:]):
            raise InputError(f"the strokes were painted on a {edit.size[1]}x{edit.size[0]} result; "
                             f"this one is {r.fused.shape[-1]}x{r.fused.shape[-2]}")
        for s in edit.strokes:
            self.stroke(rid, asdict(s))
        return r.describe()

    # ---- export ---------------------------------------------------------------------------

    def export(self, rid: str, *, name: str, bit_depth: int = 16) -> dict:
        """Write a result into the opened folder (never over an existing file), with the
        reference frame's EXIF (PNG, JPEG) and ICC profile."""
        from mfif.io import encode_with_metadata, write_bytes_atomic

        r = self.final_result(rid)
        if self.folder is None:
            raise InputError("open a folder first")
        base = Path(name).name
        if base != name or not base or base.startswith("."):
            raise AccessError(f"'{name}' must be a plain file name (it is written into the opened folder)")
        # dropped frames live in a folder of this launch that goes away: their results go to the root
        folder = self.folder if self.root in (self.folder, *self.folder.parents) else self.root
        target = folder / base
        if target.exists():
            raise InputError(f"{base} exists in the folder; choose another name (nothing is overwritten)")
        if bit_depth not in (8, 16):
            raise InputError(f"bit depth must be 8 or 16, got {bit_depth}")
        with self.lock:
            image = r.fused.copy()
        data = encode_with_metadata(image, target.suffix, bit_depth, exif=r.exif, icc=r.icc)
        write_bytes_atomic(target, data)
        return {"name": base, "bytes": len(data)}

    def close(self) -> None:
        self.worker.shutdown(wait=False, cancel_futures=True)
        self.readers.shutdown(wait=False, cancel_futures=True)
        if self.upload_dir is not None:
            import shutil

            shutil.rmtree(self.upload_dir, ignore_errors=True)

