"""Image input/output at the edges of the library.

Inside mfif an image is float32 (C, H, W) in [0, 1] with C = 1 (grey) or 3 (RGB) and a stack is
(N, C, H, W). This module converts from and to files:

- read: PNG (8/16-bit), TIFF (8/16-bit, float), JPEG and anything else Pillow opens; grey, RGB;
  RGBA/LA lose alpha with a warning; palette and CMYK become RGB; EXIF orientation is applied.
  Camera RAW through :mod:`mfif.raw`; a multi-page TIFF given as one input is a z-stack
  (:mod:`mfif.tiff_pages`). Every declared size is checked against the pixel budget
  (:mod:`mfif.pixel_budget`) before decoding. The ICC profile and resolution are recorded.
- write: PNG and TIFF at 8 or 16 bits, JPEG at 8 bits; atomic (temporary file + rename, an
  existing file's permissions kept); never overwrites one of the inputs; ICC profile and
  resolution embedded when given (:mod:`mfif.colour_meta`).

Every problem raises :class:`mfif.errors.InputError` / :class:`mfif.errors.OutputError` with a
one-line message that names the file.
"""
from __future__ import annotations

import contextvars
import glob
import os
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mfif.errors import InputError, OutputError
from mfif.pixel_budget import pillow_open
from mfif.raw import RAW_SUFFIXES, is_raw, read_raw
from mfif.tiff_pages import TiffFrame, read_tiff, tiff_frame_count

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".pgm")
INPUT_SUFFIXES = IMAGE_SUFFIXES + RAW_SUFFIXES  # what a folder of frames may hold (RAW via rawpy)
_TIFF = (".tif", ".tiff")
_JPEG = (".jpg", ".jpeg")


@dataclass
class ImageInfo:
    """What was learned about a file while reading it."""

    path: Path
    bit_depth: int  # 8 or 16 (float TIFFs report 16: they are written back at 16 bits)
    channels: int  # after conversion: 1 or 3
    had_alpha: bool = False
    exif: bytes | None = None
    icc: bytes | None = None  # embedded ICC colour profile
    resolution: tuple[float, float, str] | None = None  # (x, y, 'inch' | 'cm' | 'none')


@dataclass
class Stack:
    """A registered-size stack of frames.

    Attributes:
        images: float32 (N, C, H, W) in [0, 1].
        paths: the file of each frame (None for frames given as arrays).
        bit_depth: the largest input bit depth (8 or 16): the default output depth.
        infos: per-frame :class:`ImageInfo` (empty for arrays).
    """

    images: np.ndarray
    paths: list[Path | None] = field(default_factory=list)
    bit_depth: int = 8
    infos: list[ImageInfo] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def name(self, index: int) -> str:
        p = self.paths[index] if index < len(self.paths) else None
        return str(p) if p is not None else f"frame {index}"


# ----------------------------------------------------------------------------------------------
# reading


def _png_is_16bit_colour(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(26)
    # IHDR: bytes 24 (bit depth) and 25 (colour type: 2 RGB, 6 RGBA)
    return len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16 and head[25] in (2, 6)


def _apply_orientation(arr: np.ndarray, orientation: int | None) -> np.ndarray:
    """Apply an EXIF orientation tag (1..8) to an (H, W[, C]) array."""
    if orientation in (None, 1):
        return arr
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    op = ops.get(int(orientation))
    return np.ascontiguousarray(op(arr)) if op else arr


def _decode_jpeg(path: Path, im) -> np.ndarray | None:
    """The samples of a complete grey or RGB JPEG decoded by OpenCV (the same libjpeg-turbo
    decoder and settings as Pillow here: bit-identical, tested, and 2-4x faster, no copy out of
    Pillow); None for anything else (Pillow decodes it). A file whose data does not end with the
    EOI marker goes to Pillow, which refuses a truncated file (OpenCV would fill it with grey)."""
    if im.format != "JPEG" or im.mode not in ("L", "RGB"):
        return None
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    end = data[-64:].tobytes().rstrip(b"\x00")
    if not end.endswith(b"\xff\xd9"):
        return None
    flags = cv2.IMREAD_IGNORE_ORIENTATION | (cv2.IMREAD_GRAYSCALE if im.mode == "L" else cv2.IMREAD_COLOR)
    arr = cv2.imdecode(data, flags)
    if arr is None or arr.shape[:2] != (im.size[1], im.size[0]):
        return None
    return arr if arr.ndim == 2 else cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def _read_pillow(path: Path) -> tuple[np.ndarray, bytes | None, dict]:
    from PIL import Image, UnidentifiedImageError

    try:
        with pillow_open(path) as im:
            arr = _decode_jpeg(path, im)
            if arr is None:
                im.load()
            exif = im.info.get("exif")
            meta = {"icc": im.info.get("icc_profile") or None, "resolution": None}
            dpi = im.info.get("dpi")
            if dpi and len(dpi) == 2 and min(dpi) > 0:
                meta["resolution"] = (float(dpi[0]), float(dpi[1]), "inch")
            orientation = im.getexif().get(0x0112)
            mode = im.mode
            if arr is not None:
                pass
            elif _png_is_16bit_colour(path):
                arr = None
            elif mode in ("1", "L", "RGB", "RGBA", "LA"):
                arr = np.asarray(im.convert("L") if mode == "1" else im)
            elif mode in ("I;16", "I;16B", "I;16L", "I", "I;16N"):
                arr = np.asarray(im)
                if arr.dtype != np.uint16:
                    if arr.min() < 0 or arr.max() > 65535:
                        raise InputError(f"{path}: integer image values outside 0..65535")
                    arr = arr.astype(np.uint16)
            elif mode == "F":
                arr = np.asarray(im).astype(np.float32)
            elif mode in ("P", "PA"):
                arr = np.asarray(im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB"))
            else:  # CMYK, YCbCr, LAB, HSV ...
                arr = np.asarray(im.convert("RGB"))
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image file (or an unsupported format)") from None
    except Image.DecompressionBombError as exc:  # a frame of a multi-frame file (GIF)
        raise InputError(f"{path}: refused as a decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: cannot decode image, file truncated or corrupt ({exc})") from None
    if arr is None:  # 16-bit RGB PNG: Pillow would reduce it to 8 bits
        import cv2

        raw = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise InputError(f"{path}: cannot decode 16-bit PNG")
        arr = raw[..., ::-1] if raw.shape[2] == 3 else raw[..., [2, 1, 0, 3]]
    return _apply_orientation(arr, orientation), exif, meta


def to_float_image(arr: np.ndarray, name: str = "image") -> tuple[np.ndarray, int, bool]:
    """Convert an (H, W) / (H, W, C) array to float32 (C, H, W) in [0, 1].

    Returns (image, bit_depth, had_alpha). uint8 -> /255, uint16 -> /65535, float must already be
    in [0, 1] (checked), bool -> {0, 1}.
    """
    arr, depth, had_alpha = check_samples(arr, name)
    planes = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    out = np.empty(planes.shape, np.float32)
    for plane, dest in zip(planes, out):  # plane by plane: no full-size temporaries
        if arr.dtype == np.uint8:
            np.divide(plane, np.float32(255.0), out=dest, dtype=np.float32)
        elif arr.dtype == np.uint16:
            np.divide(plane, np.float32(65535.0), out=dest, dtype=np.float32)
        else:  # bool, or float32 checked by check_samples
            dest[...] = plane
    return out, depth, had_alpha


def check_samples(arr: np.ndarray, name: str = "image") -> tuple[np.ndarray, int, bool]:
    """The checks of :func:`to_float_image` without its conversion: (H, W[, C]) samples ->
    ((H, W) or (H, W, 3) samples without alpha (float input as float32), bit_depth, had_alpha)."""
    arr = np.asarray(arr)
    if arr.size == 0:
        raise InputError(f"{name}: image has zero size (shape {arr.shape})")
    had_alpha = False
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        had_alpha = True
        arr = arr[..., : arr.shape[2] - 1]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise InputError(f"{name}: unsupported image shape {arr.shape} (expected grey or RGB)")
    if arr.dtype in (np.uint8, np.bool_):
        return arr, 8, had_alpha
    if arr.dtype == np.uint16:
        return arr, 16, had_alpha
    if np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise InputError(f"{name}: contains NaN or Inf values")
        if out.min() < 0.0 or out.max() > 1.0:
            raise InputError(f"{name}: float image values must lie in [0, 1], found [{out.min():.4g}, {out.max():.4g}]")
        return out, 16, had_alpha
    raise InputError(f"{name}: unsupported pixel type {arr.dtype} (use uint8, uint16 or float in [0, 1])")


def read_image_with_info(path: str | os.PathLike) -> tuple[np.ndarray, ImageInfo]:
    """Read one file into float32 (C, H, W) in [0, 1] plus its :class:`ImageInfo`.

    ``path`` may be a :class:`mfif.tiff_pages.TiffFrame` (one page of a multi-page TIFF)."""
    samples, info = read_samples_with_info(path)
    return to_float_image(samples, str(path))[0], info


def read_samples_with_info(path: str | os.PathLike) -> tuple[np.ndarray, ImageInfo]:
    """Read one file without the float conversion: ((H, W) or (H, W, 3) samples as decoded, alpha
    dropped (uint8 / uint16 / bool / float32), :class:`ImageInfo`); ``to_float_image(samples)[0]``
    is the frame :func:`read_image_with_info` returns (stacks keep the compact samples)."""
    page = path.index if isinstance(path, TiffFrame) else None
    name = str(path)
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise InputError(f"{path}: broken symbolic link or symbolic link loop")
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: file is not readable (permission denied)")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (0 bytes)")
    exif, meta = None, {}
    if path.suffix.lower() in _TIFF:
        arr, meta = read_tiff(path, page)
    elif is_raw(path):
        arr = read_raw(path)
    else:
        arr, exif, meta = _read_pillow(path)
    samples, depth, had_alpha = check_samples(arr, name)
    if had_alpha:
        warnings.warn(f"{name}: alpha channel dropped", stacklevel=3)
    return samples, ImageInfo(path=path, bit_depth=depth, channels=1 if samples.ndim == 2 else 3, had_alpha=had_alpha,
                              exif=exif, icc=meta.get("icc"), resolution=meta.get("resolution"))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one file into float32 (C, H, W) in [0, 1] (C = 1 or 3)."""
    return read_image_with_info(path)[0]


def _unify_channels(images: list[np.ndarray], names: list[str]) -> list[np.ndarray]:
    """Mixed grey and RGB frames: grey frames are converted to RGB (replicated), with a warning."""
    channels = {im.shape[0] for im in images}
    if channels == {1, 3}:
        grey = [n for im, n in zip(images, names) if im.shape[0] == 1]
        warnings.warn(f"mixed grey and colour frames: converting grey frame(s) {', '.join(grey)} to RGB", stacklevel=3)
        images = [np.repeat(im, 3, axis=0) if im.shape[0] == 1 else im for im in images]
    return images


def _check_sizes(images: Sequence[np.ndarray], names: Sequence[str]) -> None:
    h0, w0 = images[0].shape[-2:]
    for im, name in zip(images[1:], names[1:]):
        if im.shape[-2:] != (h0, w0):
            raise InputError(
                f"{name}: size {im.shape[-1]}x{im.shape[-2]} differs from {names[0]} ({w0}x{h0}); "
                "frames must have the same size (register or crop them first)")


def read_stack(paths: Sequence[str | os.PathLike], *, min_frames: int = 2) -> Stack:
    """Read frames into a :class:`Stack` (float32 (N, C, H, W)).

    Mixed grey/RGB frames are converted to RGB with a warning; frames of different sizes are refused.
    """
    paths = [Path(p) for p in paths]
    if len(paths) < min_frames:
        raise InputError(f"need at least {min_frames} frames to fuse, got {len(paths)}" +
                         (f" ({paths[0]})" if paths else ""))
    images, infos = [], []
    for p in paths:
        im, info = read_image_with_info(p)
        images.append(im)
        infos.append(info)
    names = [str(p) for p in paths]
    _check_sizes(images, names)
    images = _unify_channels(images, names)
    return Stack(images=np.stack(images), paths=list(paths), bit_depth=max(i.bit_depth for i in infos), infos=infos)


def as_stack(images, *, min_frames: int = 2) -> Stack:
    """Accept what users pass to :func:`mfif.fuse` and return a checked :class:`Stack`.

    ``images`` may be a list of paths, a list of arrays ((H, W), (H, W, C) or (C, H, W); uint8,
    uint16 or float in [0, 1]), an array (N, C, H, W) / (N, H, W), or a :class:`Stack`.
    """
    if isinstance(images, Stack):
        stack = images
        if len(stack) < min_frames:
            raise InputError(f"need at least {min_frames} frames to fuse, got {len(stack)}")
        return stack
    if isinstance(images, (str, os.PathLike)):
        raise InputError(f"{images}: a single file was given; pass a list of at least {min_frames} frames")
    if isinstance(images, np.ndarray) and images.ndim in (3, 4) and images.dtype != object:
        frames = list(images)
    else:
        try:
            frames = list(images)
        except TypeError:
            raise InputError(f"cannot fuse an object of type {type(images).__name__}; pass a list of images or paths") from None
    if frames and all(isinstance(f, (str, os.PathLike)) for f in frames):
        return read_stack(frames, min_frames=min_frames)
    if len(frames) < min_frames:
        raise InputError(f"need at least {min_frames} frames to fuse, got {len(frames)}")
    converted, depth = [], 8
    for i, f in enumerate(frames):
        if isinstance(f, (str, os.PathLike)):
            im, info = read_image_with_info(f)
            depth = max(depth, info.bit_depth)
        else:
            arr = np.asarray(f)
            if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 2, 3, 4):
                arr = np.moveaxis(arr, 0, -1)  # (C, H, W) -> (H, W, C)
            im, d, had_alpha = to_float_image(arr, f"frame {i}")
            if had_alpha:
                warnings.warn(f"frame {i}: alpha channel dropped", stacklevel=2)
            depth = max(depth, d)
        converted.append(im)
    names = [str(f) if isinstance(f, (str, os.PathLike)) else f"frame {i}" for i, f in enumerate(frames)]
    _check_sizes(converted, names)
    converted = _unify_channels(converted, names)
    paths = [Path(f) if isinstance(f, (str, os.PathLike)) else None for f in frames]
    return Stack(images=np.stack(converted), paths=paths, bit_depth=depth)


def expand_inputs(items: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand CLI inputs: files as given, globs (``*.png``) and folders (their image files, sorted).

    A pattern or folder that matches nothing is an error; the result keeps the order given. A
    multi-page TIFF becomes its frames (:class:`mfif.tiff_pages.TiffFrame`, a z-stack).
    """
    out: list[Path] = []
    for item in items:
        s = str(item)
        p = Path(s)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in INPUT_SUFFIXES)
            if not files:
                stacks = [d for d in p.iterdir() if d.is_dir() and any(
                    f.suffix.lower() in INPUT_SUFFIXES for f in d.iterdir() if f.is_file())]
                hint = (f"; it holds {len(stacks)} stack folder(s): fuse each as one stack with "
                        f"'mfif fuse --batch {p} -o OUT_DIR'") if stacks else ""
                raise InputError(f"{p}: folder contains no image files{hint}")
            out.extend(files)
        elif any(ch in s for ch in "*?[") and not p.exists():
            files = sorted(Path(f) for f in glob.glob(s) if Path(f).is_file())
            if not files:
                raise InputError(f"{s}: pattern matches no files")
            out.extend(files)
        else:
            out.append(p)
    return [frame for p in out for frame in _tiff_frames(p)]


def _tiff_frames(path: Path) -> list:
    """A multi-page TIFF -> one :class:`TiffFrame` per page; any other file -> [path]."""
    if path.suffix.lower() not in _TIFF or not path.is_file() or path.stat().st_size == 0:
        return [path]  # reading it gives the message
    n = tiff_frame_count(path)
    return [TiffFrame(path, i) for i in range(n)] if n > 1 else [path]


# ----------------------------------------------------------------------------------------------
# writing


def to_integer_image(image: np.ndarray, bit_depth: int) -> np.ndarray:
    """float (C, H, W) or (H, W) in [0, 1] -> uint8/uint16 (H, W[, C]), rounded and clipped."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
    if bit_depth == 8:
        return np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    if bit_depth == 16:
        return np.round(np.clip(arr, 0.0, 1.0) * 65535.0).astype(np.uint16)
    raise InputError(f"bit depth must be 8 or 16, got {bit_depth}")


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # a symbolic link loop (RuntimeError before Python 3.13)
        return a.absolute() == b.absolute()


def check_output_path(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Refuse an output that is one of the inputs, or whose folder is missing or not writable."""
    path = Path(path)
    for inp in inputs:
        if inp is not None and _same_file(path, Path(inp)):
            raise OutputError(f"{path}: output path is one of the input files; refusing to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{path}: output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: output folder {parent} is not writable")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, not a file name")
    suffix = path.suffix.lower()
    if suffix not in (".png", *_TIFF, *_JPEG):
        raise OutputError(f"{path}: unsupported output format '{suffix or '(none)'}' (use .png, .tif or .jpg)")
    return path


def encode_image(image: np.ndarray, suffix: str, bit_depth: int = 8, *, jpeg_quality: int = 95,
                 icc: bytes | None = None, resolution=None) -> bytes:
    """Encode float (C, H, W) in [0, 1] as PNG/TIFF (8/16-bit) or JPEG (8-bit) bytes, with the ICC
    profile and resolution embedded when given (:mod:`mfif.colour_meta`)."""
    from mfif.colour_meta import add_colour_metadata, tiff_arguments

    suffix = suffix.lower()
    if suffix in _JPEG and bit_depth == 16:
        warnings.warn("JPEG cannot hold 16 bits; writing 8 bits", stacklevel=3)
        bit_depth = 8
    arr = to_integer_image(image, bit_depth)
    if suffix in _TIFF:
        import io

        import tifffile

        buf = io.BytesIO()
        tifffile.imwrite(buf, arr, photometric="rgb" if arr.ndim == 3 else "minisblack",
                         **tiff_arguments(icc=icc, resolution=resolution))
        return buf.getvalue()
    import cv2

    if arr.ndim == 3:
        arr = np.ascontiguousarray(arr[..., ::-1])  # RGB -> BGR for OpenCV
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if suffix in _JPEG else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(suffix if suffix != ".jpeg" else ".jpg", arr, params)
    if not ok:
        raise OutputError(f"cannot encode image as {suffix}")
    return add_colour_metadata(buf.tobytes(), suffix, icc=icc, resolution=resolution)


_PROCESS_START = time.time()  # staging files older than this are not this process's


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap check: keep the file unless it is older than this process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's live process
        return True
    return True


def remove_stale_staging(path: Path) -> list[Path]:
    """Remove the staging files of ``path`` (``.NAME.<pid>.<random>.tmp`` beside it) that a killed
    writer left behind: those whose process is gone, and those without a pid (older versions)
    made before this process started. A live writer's files (another process, this one) stay.
    Returns the removed paths."""
    import re

    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?:(\d+)\.)?[A-Za-z0-9_]{{8}}\.tmp$")
    removed = []
    try:
        entries = list(os.scandir(path.parent or "."))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None:
            continue
        pid = int(match.group(1)) if match.group(1) else None
        try:
            if pid == os.getpid() or (pid is not None and _pid_alive(pid)):
                continue
            if pid is None and entry.stat(follow_symlinks=False).st_mtime >= _PROCESS_START:
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass  # gone meanwhile, or not ours to remove
    return removed


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over ``path`` (a file replaced
    keeps its permission bits; a new one gets 0o666 less the umask, as ``open`` would)."""
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    remove_stale_staging(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent or ".")
    staged = _STAGED.get()
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if staged is not None:
            staged.append((tmp, path))
            return
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


_STAGED: contextvars.ContextVar[list | None] = contextvars.ContextVar("mfif_staged_writes", default=None)
_ALL_STAGED: list[list] = []  # the staged lists of every open block, for discard_staged()


@contextmanager
def all_or_nothing():
    """Outputs written inside the block (every writer here goes through :func:`write_bytes_atomic`)
    are staged as temporary files beside their targets and renamed into place together when the
    block ends without error; on any error (or Ctrl-C) the staged files are removed, so a failed
    command leaves no new output behind. A kill between the renames leaves complete files only.
    """
    from mfif.interrupt import cancelled, on_cancel

    on_cancel(discard_staged)
    staged: list[tuple[str, Path]] = []
    token = _STAGED.set(staged)
    _ALL_STAGED.append(staged)
    try:
        yield
        if cancelled():  # Ctrl-C was answered while this worker ran: write nothing
            raise KeyboardInterrupt
    except BaseException:
        _unlink_staged(staged)
        raise
    finally:
        _STAGED.reset(token)
        _ALL_STAGED.remove(staged)
    for tmp, path in staged:
        os.replace(tmp, path)


def _unlink_staged(staged: list) -> None:
    for tmp, _ in list(staged):
        try:
            os.unlink(tmp)
        except OSError:
            pass


def discard_staged() -> None:
    """Remove every output staged by an :func:`all_or_nothing` block still open (in any thread):
    used when Ctrl-C abandons the worker that staged them."""
    for staged in list(_ALL_STAGED):
        _unlink_staged(staged)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _exif_upright(exif: bytes) -> bytes | None:
    """EXIF block (with or without the ``Exif\\0\\0`` header) -> raw TIFF bytes with the
    Orientation tag set to 1 (pixels are written upright), or None when it cannot be parsed."""
    import struct

    tiff = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    order = "<" if tiff[:2] == b"II" else ">"
    buf = bytearray(tiff)
    try:
        ifd = struct.unpack_from(order + "I", buf, 4)[0]
        count = struct.unpack_from(order + "H", buf, ifd)[0]
        for k in range(count):
            entry = ifd + 2 + 12 * k
            tag, typ = struct.unpack_from(order + "HH", buf, entry)
            if tag == 0x0112 and typ == 3:
                struct.pack_into(order + "H", buf, entry + 8, 1)
    except struct.error:
        return None
    return bytes(buf)


def add_exif(data: bytes, suffix: str, exif: bytes | None) -> bytes:
    """Insert an EXIF block into encoded JPEG (APP1 segment) or PNG (eXIf chunk) bytes; other
    formats (TIFF) are returned unchanged. The Orientation tag is reset to 1."""
    import struct
    import zlib

    if not exif:
        return data
    tiff = _exif_upright(exif)
    suffix = suffix.lower()
    if tiff is None:
        return data
    if suffix in _JPEG and data[:2] == b"\xff\xd8":
        payload = b"Exif\x00\x00" + tiff
        if len(payload) + 2 > 0xFFFF:
            return data
        pos = 2
        if data[2:4] == b"\xff\xe0":  # keep JFIF APP0 first
            pos = 4 + struct.unpack(">H", data[4:6])[0]
        return data[:pos] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[pos:]
    if suffix == ".png" and data[:8] == b"\x89PNG\r\n\x1a\n":
        pos = data.find(b"IDAT") - 4
        if pos < 8:
            return data
        chunk = struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", zlib.crc32(b"eXIf" + tiff) & 0xFFFFFFFF)
        return data[:pos] + chunk + data[pos:]
    return data


def encode_with_metadata(image: np.ndarray, suffix: str, bit_depth: int = 8, *, jpeg_quality: int = 95,
                         exif: bytes | None = None, icc: bytes | None = None, resolution=None) -> bytes:
    """The bytes :func:`write_image` writes: :func:`encode_image` (ICC profile, resolution) plus the
    EXIF block (JPEG, PNG; :func:`add_exif`)."""
    return add_exif(encode_image(image, suffix, bit_depth, jpeg_quality=jpeg_quality, icc=icc, resolution=resolution),
                    suffix, exif)


def write_image(path: str | os.PathLike, image: np.ndarray, *, bit_depth: int = 8,
                inputs: Iterable[str | os.PathLike | None] = (), jpeg_quality: int = 95,
                exif: bytes | None = None, icc: bytes | None = None, resolution=None) -> Path:
    """Write float32 (C, H, W) or (H, W) in [0, 1] to ``path`` atomically.

    Args:
        path: .png / .tif / .tiff (8 or 16 bits) or .jpg / .jpeg (8 bits).
        bit_depth: 8 or 16.
        inputs: files that must never be overwritten (the frames that were fused).
        exif: EXIF bytes to copy into the file (JPEG and PNG; TIFF outputs carry none), e.g.
            :attr:`ImageInfo.exif` of the reference frame; Orientation is reset to 1.
        icc, resolution: :attr:`ImageInfo.icc` / :attr:`ImageInfo.resolution` to embed.
    """
    path = check_output_path(path, inputs=inputs)
    data = encode_with_metadata(image, path.suffix, bit_depth, jpeg_quality=jpeg_quality, exif=exif, icc=icc,
                                resolution=resolution)
    try:
        write_bytes_atomic(path, data)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path
