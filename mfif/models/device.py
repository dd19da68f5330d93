"""Choosing the torch device for inference and training (shared by every network)."""
from __future__ import annotations

import torch

from mfif.errors import InputError


def resolve_device(name: str | None) -> torch.device:
    """``"auto"`` (or empty/None): CUDA when available, else CPU; otherwise the named device.

    Raises InputError for an unknown device name or a CUDA device on a machine without CUDA.
    """
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"unknown torch device {name!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} requested but CUDA is not available")
    return dev
