"""One weights format and one loader for every network mfif ships or trains.

What we ship and what ``mfif train`` exports is a `safetensors`_ file: the tensors, and in its
header (string -> string) the metadata, kept apart from the architecture as timm does:

==================  ==========================================================================
header key          value
==================  ==========================================================================
``format``          ``mfif-<network>/<version>`` (``mfif-liu-cnn/1``, ``mfif-hourglass/1``, ...)
``arch``            JSON: what builds the network (``variant``, ``role``, ``config``, ...)
``meta``            JSON: training summary (steps, validation, wall time, ...)
``training_command``  the command line that trained it ("" if not recorded)
``data_digest``     :func:`data_digest` of the training data ("" if not recorded)
==================  ==========================================================================

:func:`read_weights` also opens torch ``.pt``/``.pth`` files of plain tensors and data (the
authors' IFCNN ``.pth``, old exports, training checkpoints) with ``torch.load(weights_only=True)``;
one that holds other pickled Python objects is refused in one line (it could run code).

.. _safetensors: https://huggingface.co/docs/safetensors
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from mfif.errors import WeightsError

SUFFIX = ".safetensors"
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


@dataclass
class WeightsFile:
    """The content of a weights file.

    Attributes:
        tensors: name -> tensor, as stored (dtype kept: fp16, int8 scales, ...).
        format: ``mfif-<network>/<version>``, or None (a bare state dict, e.g. the authors').
        arch: what builds the network (``variant``/``role``/``config``).
        meta: training metadata (with ``training_command`` and ``data_digest`` where recorded).
        path: the file.
    """

    tensors: dict
    format: str | None = None
    arch: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    def as_legacy_dict(self) -> dict:
        """``{"format", **arch, "state_dict", "meta"}``: the layout of the old ``.pt`` exports."""
        if self.format is None:
            return dict(self.tensors)
        return {"format": self.format, **self.arch, "state_dict": self.tensors, "meta": self.meta}


def shipped_weights_file(path: str | os.PathLike, *, what: str, train_command: str,
                         alternative: str = "pass --weights") -> Path:
    """``path`` (a shipped file in :data:`WEIGHTS_DIR`) if it is there; otherwise the one
    :class:`WeightsError` every network gives: ``no shipped <what> at <path>; train them with
    '<train_command>' or <alternative>``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no shipped {what} at {path}; train them with '{train_command}' or {alternative}")
    return path


def is_safetensors(path: str | os.PathLike) -> bool:
    """True if the file starts like a safetensors file (8-byte header length, then a JSON object)."""
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    length = int.from_bytes(head[:8], "little")
    return 0 < length <= os.path.getsize(path) - 8


def torch_load_plain(path: str | os.PathLike, what: str = "weights file", expected: str | None = None):
    """``torch.load(path, weights_only=True)`` on CPU; a file with pickled Python objects other than
    tensors and plain data is refused, and any failure is one :class:`WeightsError` line
    (:func:`mfif.errors.weights_load_error`) that ends with ``expected``."""
    from mfif.errors import load_torch_weights

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: {what} not found")
    return load_torch_weights(path, expected or f"a {what} (safetensors, or a torch file of tensors and plain data)")


def read_weights(path: str | os.PathLike, expected: str | None = None) -> WeightsFile:
    """Read a weights file: safetensors (ours), or a torch ``.pt``/``.pth`` of plain tensors/data
    (``expected``: what the caller wanted, for the error message).

    Raises:
        WeightsError: missing, unreadable, or holding pickled objects (one line, naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if is_safetensors(path):
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                header = fh.metadata() or {}
                tensors = {key: fh.get_tensor(key) for key in fh.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None
        try:
            arch = json.loads(header.get("arch", "{}"))
            meta = json.loads(header.get("meta", "{}"))
        except json.JSONDecodeError as exc:
            raise WeightsError(f"{path}: the safetensors header's metadata is not JSON ({exc})") from None
        for key in ("training_command", "data_digest"):
            if header.get(key):
                meta[key] = header[key]
        return WeightsFile(tensors, header.get("format"), arch, meta, path)
    obj = torch_load_plain(path, expected=expected)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        arch = {k: v for k, v in obj.items() if k not in ("format", "state_dict", "meta")}
        return WeightsFile(obj["state_dict"], obj.get("format"), arch, obj.get("meta") or {}, path)
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return WeightsFile(obj, None, {}, {}, path)


def write_weights(path: str | os.PathLike, tensors: dict, *, format: str, arch: dict, meta: dict | None = None,
                  training_command: str = "", data_digest: str = "") -> Path:
    """Write ``tensors`` and the metadata as a safetensors file, atomically (temp file + rename).
    ``arch`` and ``meta`` must be JSON-serialisable."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": format, "arch": json.dumps(arch, sort_keys=True), "meta": json.dumps(meta or {}, sort_keys=True),
              "training_command": training_command, "data_digest": data_digest}
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=header)
    os.replace(tmp, path)
    return path


def data_digest(root: str | os.PathLike) -> str:
    """A short digest of a training-data folder: SHA-256 of every file's relative path and size
    (cheap: no file is read), first 16 hex digits; "" if the folder does not exist."""
    root = Path(root)
    if not root.is_dir():
        return ""
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(root).as_posix()}\t{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def provenance(data_root: str | os.PathLike | None) -> dict[str, str]:
    """``{"training_command", "data_digest"}`` for an export's header: the command line of this
    process and :func:`data_digest` of the training-data folder."""
    import shlex
    import sys

    return {"training_command": shlex.join(sys.argv), "data_digest": data_digest(data_root) if data_root else ""}


def check_state_dict(state: dict, expected: dict[str, tuple[int, ...]], *, source: str, network: str) -> None:
    """Raise :class:`WeightsError` unless ``state`` has exactly the keys of ``expected`` (name ->
    shape), each a tensor of that shape with finite values; the message names ``source`` (the file)
    and ``network`` (e.g. "the slight Liu CNN") and the first offending keys."""
    import torch

    def listed(keys: list[str]) -> str:
        return ", ".join(keys[:6]) + (" ..." if len(keys) > 6 else "")

    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = ([f"missing {listed(missing)}"] if missing else []) + (
            [f"unexpected {listed(unexpected)}"] if unexpected else [])
        raise WeightsError(f"{source}: not weights of {network} ({'; '.join(parts)})")
    for key, shape in expected.items():
        value = state[key]
        if not torch.is_tensor(value):
            raise WeightsError(f"{source}: '{key}' is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != tuple(shape):
            raise WeightsError(f"{source}: '{key}' has shape {tuple(value.shape)}, expected {tuple(shape)} for {network}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise WeightsError(f"{source}: '{key}' contains NaN or infinite values")
