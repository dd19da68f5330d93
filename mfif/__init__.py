"""mfif: multi-focus image fusion (focus stacking).

Images inside the library are float32 in [0, 1]; a stack is (N, C, H, W) with C = 1 or 3.
"""
from mfif.errors import MfifError, InputError
from mfif.methods import DEFAULT_METHOD
from mfif.result import FusionResult

__version__ = "0.1.0"


def fuse(images, method: str = DEFAULT_METHOD, **options) -> FusionResult:
    """Fuse a stack of images with the named method (see :func:`mfif.methods.available_methods`)."""
    from mfif.api import fuse as _fuse

    return _fuse(images, method=method, **options)


def retouch(result, frames, strokes):
    """Paint source frames into a fused image along brush strokes (see :func:`mfif.retouching.retouch`)."""
    from mfif.retouching import retouch as _retouch

    return _retouch(result, frames, strokes)


__all__ = ["fuse", "retouch", "FusionResult", "MfifError", "InputError", "__version__"]
