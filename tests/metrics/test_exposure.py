"""MEF-SSIM (MEF_SSIM, MEF_SSIM_scale1), for any number of sources.

Reference values: ``shared/refmetrics/cases/*/refmetrics_F_*.json`` (Kede Ma's ``mef_ms_ssim.m`` /
``mef_ssim.m`` run unmodified under GNU Octave, two sources). Largest measured relative deviation:
MEF_SSIM 9e-15, MEF_SSIM_scale1 1.1e-13. Tolerance: 1e-9 relative for both. No reference value is
null. Three or more sources (not in the reference data) are checked against an independent
patch-by-patch implementation of the published algorithm.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mfif.errors import InputError
from mfif.metrics import METRICS
from mfif.metrics import exposure as ex
from tests.conftest import SHARED
from tests.metrics.refcases import load_png as _png
from tests.metrics.refcases import reference_files as _reference_files
from tests.helpers import textured_image

RTOL = {"MEF_SSIM": 1e-9, "MEF_SSIM_scale1": 1e-9}






@lru_cache(maxsize=None)
def _case(shared: Path, name: str):
    case, fused = name.split("/")
    d = shared / "refmetrics" / "cases" / case
    ref = json.loads((d / f"refmetrics_{fused}.json").read_text())
    return _png(d / "A.png"), _png(d / "B.png"), _png(d / f"{fused}.png"), ref


@pytest.mark.shared
@pytest.mark.parametrize("key", sorted(RTOL))
@pytest.mark.parametrize("name", _reference_files())
def test_matches_matlab_reference(shared_dir, name, key):
    a, b, f, ref = _case(shared_dir, name)
    assert ref[key] is not None, f"{name}: reference {key} is null"
    ours = METRICS[key].function([a, b], f)
    assert isinstance(ours, float)
    assert ours == pytest.approx(ref[key], rel=RTOL[key], abs=0.0), f"{name}: {key}"


@pytest.mark.shared
def test_sharp_fusion_beats_average_on_reference_cases(shared_dir):
    for case in sorted(p.name for p in (shared_dir / "refmetrics" / "cases").iterdir() if p.name.startswith("t")):
        a, b, sharp, _ = _case(shared_dir, f"{case}/F_sharp")
        avg = _case(shared_dir, f"{case}/F_avg")[2]
        assert ex.mef_ssim([a, b], sharp) > ex.mef_ssim([a, b], avg), case


# ---------------------------------------------------------------------------------------------
# an independent, literal (slow) implementation of the published single-scale model


def _naive_mef_ssim(seq: np.ndarray, fused: np.ndarray) -> float:
    """Ma et al. 2015 patch by patch: seq (K, H, W) and fused (H, W) as float64 in [0, 255]."""
    k, h, w = seq.shape
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5 ** 2))
    g = (np.outer(g, g) / np.outer(g, g).sum()).ravel()
    eps = np.finfo(float).eps
    c = (0.03 * 255) ** 2
    q = []
    for i in range(h - 10):
        for j in range(w - 10):
            x = seq[:, i:i + 11, j:j + 11].reshape(k, -1)
            d = x - x.mean(axis=1, keepdims=True)
            norms = np.linalg.norm(d, axis=1)
            ed = norms + 0.001
            r = (np.linalg.norm(d.sum(axis=0)) + eps) / (norms.sum() + eps)
            r = 1 - eps if r > 1 else max(r, eps)
            p = min(math.tan(math.pi / 2 * r), 10.0)
            wk = (ed / 11) ** p + eps
            wk = wk / wk.sum()
            ref = (wk / ed) @ d
            n = np.linalg.norm(ref)
            if n > 0:
                ref = ref / n * ed.max()
            f = fused[i:i + 11, j:j + 11].ravel()
            m1, m2 = g @ ref, g @ f
            s1, s2 = g @ (ref - m1) ** 2, g @ (f - m2) ** 2
            s12 = g @ ((ref - m1) * (f - m2))
            q.append((2 * s12 + c) / (s1 + s2 + c))
    return float(np.mean(q))


def _exposures(n: int, h: int = 48, w: int = 52, seed: int = 4):
    """n synthetic exposures of one scene (gain and clipping), plus a plausible fused image."""
    scene = textured_image(h, w, 1, seed=seed)[0]
    gains = np.geomspace(0.35, 2.8, n)
    seq = [np.clip(scene * gk * 255, 0, 255).round().astype(np.uint8) for gk in gains]
    fused = np.clip(np.mean([s.astype(float) for s in seq], axis=0) * 0.6 + scene * 255 * 0.4, 0, 255)
    return seq, fused.round().astype(np.uint8)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_single_scale_matches_patch_by_patch_implementation(n):
    seq, fused = _exposures(n, 30, 34)
    expected = _naive_mef_ssim(np.stack(seq).astype(float), fused.astype(float))
    assert ex.mef_ssim_scale1(seq, fused) == pytest.approx(expected, rel=1e-9)


def test_three_sources_multiscale_matches_patch_by_patch_implementation():
    seq, fused = _exposures(3)
    assert METRICS["MEF_SSIM"].n_sources is None and METRICS["MEF_SSIM_scale1"].n_sources is None
    scores = ex.mef_ssim_scores(seq, fused)
    assert len(scores) == 3
    s = np.stack(seq).astype(float)
    f = fused.astype(float)
    expected = []
    for level in range(3):
        if level:
            s = np.stack([ex._downsample(x) for x in s])
            f = ex._downsample(f)
        expected.append(_naive_mef_ssim(s, f))
    np.testing.assert_allclose(scores, expected, rtol=1e-9)
    w = np.array([0.0448, 0.2856, 0.3001])
    assert ex.mef_ssim(seq, fused) == pytest.approx(float(np.prod(np.array(expected) ** (w / w.sum()))), rel=1e-9)
    assert ex.mef_ssim_scale1(seq, fused) == pytest.approx(expected[0], rel=1e-9)


def test_many_sources_run_and_order_does_not_matter():
    seq, fused = _exposures(5)
    v = ex.mef_ssim(seq, fused)
    assert 0 < v <= 1
    assert ex.mef_ssim(seq[::-1], fused) == pytest.approx(v, rel=1e-12)
    colour = [np.repeat(s[..., None], 3, axis=2) for s in seq]
    assert ex.mef_ssim(colour, np.repeat(fused[..., None], 3, axis=2)) == pytest.approx(v, rel=1e-12)


def test_textbook_values():
    seq, fused = _exposures(2)
    x = seq[1]
    assert ex.mef_ssim([x, x], x) == pytest.approx(1.0, abs=1e-9)
    assert ex.mef_ssim([x, x, x], x) == pytest.approx(1.0, abs=1e-9)
    c = np.full_like(x, 60)
    # no structure anywhere: the desired patch is flat, so is F -> (0 + C) / (0 + 0 + C) = 1
    assert ex.mef_ssim([c, c], c) == 1.0
    # structured sources, structureless result: finite and well below a structured result
    assert 0 < ex.mef_ssim_scale1(seq, c) < ex.mef_ssim_scale1(seq, fused) - 0.2


def test_downsample_is_symmetric_padded_2x2_mean():
    x = np.arange(15, dtype=float).reshape(3, 5)
    d = ex._downsample(x)
    assert d.shape == (2, 3)
    assert d[0, 0] == x[:2, :2].mean()
    assert d[1, 2] == x[2, 4]  # last row and column repeated past the edge


def test_bad_inputs_raise_input_error():
    seq, fused = _exposures(2)
    for fn in (ex.mef_ssim, ex.mef_ssim_scale1):
        with pytest.raises(InputError, match="at least 2 sources"):
            fn([seq[0]], fused)
        with pytest.raises(InputError, match="size"):
            fn(seq, fused[:-1])
    small = [s[:40, :40] for s in seq]
    with pytest.raises(InputError, match="needs images of at least 44x44"):
        ex.mef_ssim(small, fused[:40, :40])
    assert math.isfinite(ex.mef_ssim_scale1(small, fused[:40, :40]))
    with pytest.raises(InputError, match="at least 11x11"):
        ex.mef_ssim_scale1([s[:10, :10] for s in seq], fused[:10, :10])
