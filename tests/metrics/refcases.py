"""Shared access to the MATLAB reference cases in ``shared/refmetrics/cases`` for the metric tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SHARED


def reference_files():
    """One pytest param ``"<case>/<F_name>"`` per fused image of every reference case."""
    if SHARED is None:
        return [pytest.param(None, id="no-shared")]
    cases = SHARED / "refmetrics" / "cases"
    return [pytest.param(f"{c.name}/{f.stem}", id=f"{c.name}/{f.stem}")
            for c in sorted(p for p in cases.iterdir() if p.is_dir()) for f in sorted(c.glob("F_*.png"))]


def load_png(path: Path) -> np.ndarray:
    """uint8 as stored: 'L' -> (H, W), 'RGB' -> (H, W, 3); colour stays colour (the metric converts)."""
    with Image.open(path) as im:
        return np.asarray(im, dtype=np.uint8)
