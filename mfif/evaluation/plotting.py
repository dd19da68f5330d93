"""matplotlib for the figures of ``mfif eval`` / ``mfif bench`` (the ``[eval]`` extra)."""
from __future__ import annotations

from mfif.errors import MfifError


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend; a one-line error if it is not installed."""
    try:
        import matplotlib
    except ImportError:
        raise MfifError("the figures need matplotlib: pip install 'mfif[eval]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
