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


def matmul_gflops(n: int = 4096, dtype: torch.dtype = torch.float32, repeats: int = 5) -> float:
    """This CPU's matrix-multiply throughput in GFLOP/s: ``torch.mm`` of two random ``n x n``
    ``dtype`` matrices, best of ``repeats`` after one warm-up (the peak that the benchmarks state
    achieved GFLOP/s against, measured in the same process)."""
    import time

    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9
