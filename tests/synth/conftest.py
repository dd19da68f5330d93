"""Tiny synthetic photo folders for the synth tests (generated, so the tests need no data)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synth_helpers import make_labels, make_photo, write_png


@pytest.fixture
def plain_folder(tmp_path) -> Path:
    """Six 80x96 photos without any masks."""
    rng = np.random.default_rng(1)
    d = tmp_path / "plain"
    for i in range(6):
        write_png(d / f"p{i}.png", make_photo(rng, 80, 96))
    return d


@pytest.fixture
def bsds_like(tmp_path) -> Path:
    """BSDS500 layout: images/{train,test}/<id>.png + segmentations/{split}/<id>_<k>.png."""
    rng = np.random.default_rng(2)
    d = tmp_path / "bsds"
    for split, n in (("train", 4), ("test", 3)):
        for i in range(n):
            stem = f"{split}{i}"
            write_png(d / "images" / split / f"{stem}.png", make_photo(rng, 72, 88))
            for k in (1, 2):
                write_png(d / "segmentations" / split / f"{stem}_{k}.png", make_labels(rng, 72, 88, 3 + k))
    return d


@pytest.fixture
def alpha_like(tmp_path) -> Path:
    """Alpha-matting layout (input/ + alpha/) plus plain background photos next to it."""
    rng = np.random.default_rng(3)
    root = tmp_path / "mixed"
    d = root / "matting"
    for i in range(3):
        write_png(d / "input" / f"GT{i}.png", make_photo(rng, 140, 150))
        yy, xx = np.mgrid[0:140, 0:150]
        a = np.clip((40 - np.hypot(yy - 70, xx - 75)) / 4 + 0.5, 0, 1)
        write_png(d / "alpha" / f"GT{i}.png", np.round(a * 255).astype(np.uint8))
    for i in range(3):
        write_png(root / "backgrounds" / f"b{i}.png", make_photo(rng, 90, 120))
    return root
