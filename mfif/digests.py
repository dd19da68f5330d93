"""Content digests that decide whether a stored result is still the result of its inputs: used by
the evaluation cache (:mod:`mfif.evaluation.runner`) and the batch manifest (:mod:`mfif.batch`)."""
from __future__ import annotations

import hashlib
from pathlib import Path

_FILE_DIGESTS: dict[tuple, str] = {}


def file_digest(path: str | Path, *, remember: bool = True) -> str:
    """sha256 of a file's content, memoised on (path, size, mtime) so a run hashes each file once
    (``remember=False``: not memoised, for callers that see each file once, e.g. a long batch)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _FILE_DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()
        if remember:
            _FILE_DIGESTS[key] = digest
    return digest


def weights_signature(files: tuple[str, ...] | list[str]) -> list:
    """Content digests of the shipped weight files a method loads (``MethodSpec.weights``): a
    retrained network invalidates its own stored results and nobody else's."""
    folder = Path(__file__).resolve().parent / "weights"
    return [[name, file_digest(folder / name) if (folder / name).is_file() else None] for name in files]


def option_signature(options: dict) -> dict:
    """Options as text; an option naming an existing file (e.g. ``weights=``) adds its content digest."""
    out = {}
    for k, v in sorted(options.items()):
        text = repr(v)
        if isinstance(v, (str, Path)) and str(v) and Path(v).is_file():
            text += "#" + file_digest(Path(v))
        out[k] = text
    return out
