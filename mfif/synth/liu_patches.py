"""Liu et al. 2017's training data: (clear, blurred) 16x16 grey patch pairs cut from sharp photos and
their Gaussian-blurred copies at 5 cumulative levels (sigma 2, 7x7 kernel, :func:`mfif.synth.blur.liu_blur_levels`),
at places whose clear patch is not flat (window variance over a threshold). Bulk sampling, as the
paper's data preparation: ``mfif train cnn`` draws its training and validation sets with
:func:`make_liu_pairs`; :class:`mfif.synth.recipes.LiuRecipe` is the per-sample form of the same recipe.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mfif.errors import InputError


def grey255(path: Path) -> np.ndarray:
    from mfif.decision import GREY_WEIGHTS
    from mfif.io import read_image

    img = read_image(path)  # (C, H, W) float32 [0, 1]
    grey = img[0] if img.shape[0] == 1 else np.tensordot(GREY_WEIGHTS, img, axes=([0], [0]))
    return (grey * 255.0).astype(np.float32)


def window_variance(grey: np.ndarray, size: int = 16) -> np.ndarray:
    """Variance of every size x size window, indexed by its top-left corner, (H-size+1, W-size+1)."""
    g = grey.astype(np.float64)
    c1 = np.zeros((g.shape[0] + 1, g.shape[1] + 1))
    c2 = np.zeros_like(c1)
    c1[1:, 1:] = g.cumsum(0).cumsum(1)
    c2[1:, 1:] = (g * g).cumsum(0).cumsum(1)

    def win(c):
        return c[size:, size:] - c[:-size, size:] - c[size:, :-size] + c[:-size, :-size]

    n = size * size
    mean = win(c1) / n
    return win(c2) / n - mean * mean


def make_liu_pairs(files: list[Path], n_pairs: int, seed: int, *, levels: int = 5,
                   variance_threshold: float = 25.0, progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample ``n_pairs`` (clear, blurred) 16x16 grey patch pairs from ``files``.

    Photos are visited in rounds; each visit draws the same number of pairs from each of the
    ``levels`` cumulative blur levels (the paper: 20 per level per photo), at random positions whose
    clear patch has variance > ``variance_threshold`` (on 0..255 values).

    Returns:
        clear (n, 16, 16) uint8, blurred (n, 16, 16) uint8, level (n,) int8 (1..levels).
    """
    from tqdm import tqdm

    from mfif.synth.blur import liu_blur_levels

    rng = np.random.default_rng(seed)
    per_visit = 20 * levels
    visits = math.ceil(n_pairs / per_visit)
    order = np.concatenate([rng.permutation(len(files)) for _ in range(math.ceil(visits / len(files)))])[:visits]
    clear = np.empty((visits * per_visit, 16, 16), np.uint8)
    blurred = np.empty_like(clear)
    level = np.empty(visits * per_visit, np.int8)
    cache: dict[int, tuple] = {}
    filled = 0
    for idx in tqdm(order, desc="sampling Liu patch pairs", unit="photo", disable=not progress, leave=False):
        if idx not in cache:
            grey = grey255(files[idx])
            blurs = liu_blur_levels(grey, levels=levels, sigma=2.0, ksize=7)
            ok = np.argwhere(window_variance(grey) > variance_threshold)
            cache[idx] = (grey, blurs, ok)
            if len(cache) > 64:  # bound memory: photos are revisited in a later round
                cache.pop(next(iter(cache)))
        grey, blurs, ok = cache[idx]
        if len(ok) == 0:
            continue
        for k in range(levels):
            pos = ok[rng.integers(0, len(ok), 20)]
            rows = pos[:, 0, None, None] + np.arange(16)[None, :, None]
            cols = pos[:, 1, None, None] + np.arange(16)[None, None, :]
            sl = slice(filled, filled + 20)
            clear[sl] = np.clip(np.rint(grey[rows, cols]), 0, 255)
            blurred[sl] = np.clip(np.rint(blurs[k][rows, cols]), 0, 255)
            level[sl] = k + 1
            filled += 20
    if filled < n_pairs:
        raise InputError(f"only {filled} patch pairs could be sampled (photos too flat?), wanted {n_pairs}")
    perm = rng.permutation(filled)[:n_pairs]
    return clear[perm], blurred[perm], level[perm]
