"""The Python API: ``mfif.fuse(images, method=..., **options)``."""
from __future__ import annotations

import time

from mfif.io import Stack, as_stack
from mfif.methods import DEFAULT_METHOD, MethodSpec, get_method
from mfif.result import FusionResult


def fuse(images, method: str | MethodSpec = DEFAULT_METHOD, **options) -> FusionResult:
    """Fuse a stack of frames into one all-in-focus image.

    Args:
        images: list of file paths, list of arrays ((H, W), (H, W, C) or (C, H, W); uint8, uint16
            or float in [0, 1]), an (N, C, H, W) array, or a :class:`mfif.io.Stack`. N >= 2.
        method: a name from :data:`mfif.methods.METHODS` (``mfif list``), or its :class:`MethodSpec`.
        **options: fields of that method's options dataclass.

    Returns:
        :class:`FusionResult` with ``fused`` float32 (C, H, W) in [0, 1].

    Example:
        >>> import numpy as np, mfif
        >>> a = np.zeros((8, 8), np.float32); b = np.ones((8, 8), np.float32)
        >>> mfif.fuse([a, b], method="average").fused.mean()
        0.5
    """
    spec = get_method(method)
    opts = spec.make_options(**options)
    stack: Stack = as_stack(images)
    function, _ = spec.load()
    start = time.perf_counter()
    result = function(stack.images, opts)
    result.info.setdefault("method", spec.name)
    result.info.setdefault("seconds", time.perf_counter() - start)
    result.info.setdefault("bit_depth", stack.bit_depth)
    return result
