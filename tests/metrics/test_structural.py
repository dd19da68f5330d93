"""Structural (SSIM-family) metrics: SSIM, SSIM_vifb, Q_S, Q_S_yl, Q_W_yl, Q_C, Q_C_yl, Q_Y, Q_Y_yl.

Reference values: ``shared/refmetrics/cases/*/refmetrics_F_*.json`` (MATLAB code run unmodified under
GNU Octave, see ``shared/refmetrics/README.md``). Largest measured relative deviation over all 12
case/fused pairs:

    SSIM, SSIM_vifb 4e-14   Q_S 7e-14   Q_S_yl 3e-14   Q_W_yl 2e-15   Q_C_yl 2e-14
    Q_C 5e-12   Q_Y 1.5e-11   Q_Y_yl 2e-11

Tolerances: 1e-9 relative for the first group; 1e-8 for Q_C / Q_Y / Q_Y_yl (C = 2e-16: the windows
near round-off are recomputed the Octave way, the rest agree to ~1e-11).

Reference ``null`` (NaN in MATLAB): Q_C on r1, r2/F_avg, t1, t2/F_avg, t3/F_avg and Q_Y on r1, t1;
ours raises InputError("... undefined ...") there; the ``_yl`` variants are finite everywhere.
"""
from __future__ import annotations

import json
import math
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mfif.errors import InputError
from mfif.metrics import METRICS
from mfif.metrics import structural as st
from tests.conftest import SHARED
from tests.metrics.refcases import load_png as _png
from tests.metrics.refcases import reference_files as _reference_files
from tests.helpers import complementary_pair, textured_image

RTOL = {
    "SSIM": 1e-9,
    "SSIM_vifb": 1e-9,
    "Q_S": 1e-9,
    "Q_S_yl": 1e-9,
    "Q_W_yl": 1e-9,
    "Q_C_yl": 1e-9,
    "Q_C": 1e-8,
    "Q_Y": 1e-8,
    "Q_Y_yl": 1e-8,
}
# keys whose reference is NaN on some cases (MATLAB's 0/0); everything else must never be null
MAY_BE_UNDEFINED = {"Q_C", "Q_Y"}






@lru_cache(maxsize=None)
def _case(shared: Path, name: str):
    case, fused = name.split("/")
    d = shared / "refmetrics" / "cases" / case
    ref = json.loads((d / f"refmetrics_{fused}.json").read_text())
    return _png(d / "A.png"), _png(d / "B.png"), _png(d / f"{fused}.png"), ref


@lru_cache(maxsize=None)
def _score(shared: Path, name: str, key: str) -> float:  # an InputError is raised again, not cached
    a, b, f, _ = _case(shared, name)
    return METRICS[key].function([a, b], f)


@pytest.mark.shared
@pytest.mark.parametrize("key", sorted(RTOL))
@pytest.mark.parametrize("name", _reference_files())
def test_matches_matlab_reference(shared_dir, name, key):
    expected = _case(shared_dir, name)[3][key]
    if expected is None:
        assert key in MAY_BE_UNDEFINED, f"{name}: reference {key} is null"
        with pytest.raises(InputError, match=f"{key} is undefined"):
            _score(shared_dir, name, key)
        return
    ours = _score(shared_dir, name, key)
    assert isinstance(ours, float)
    assert ours == pytest.approx(expected, rel=RTOL[key], abs=0.0), f"{name}: {key}"


@pytest.mark.shared
def test_yang_yl_equals_yang_where_defined(shared_dir):
    checked = 0
    for param in _reference_files():
        name = param.values[0]
        if _case(shared_dir, name)[3]["Q_Y"] is not None:
            assert _score(shared_dir, name, "Q_Y_yl") == _score(shared_dir, name, "Q_Y"), name
            checked += 1
    assert checked == 8


@pytest.mark.shared
def test_sharp_fusion_beats_average_on_reference_cases(shared_dir):
    cases = sorted(p.name for p in (shared_dir / "refmetrics" / "cases").iterdir() if p.name.startswith("t"))
    assert len(cases) == 4
    for case in cases:
        for key in ("Q_Y_yl", "Q_Y", "Q_S", "Q_S_yl", "Q_W_yl", "Q_C_yl"):
            try:
                sharp, avg = _score(shared_dir, f"{case}/F_sharp", key), _score(shared_dir, f"{case}/F_avg", key)
            except InputError:
                assert key == "Q_Y"  # undefined on t1 (flat windows in both sources)
                continue
            assert sharp > avg, f"{case}: {key} sharp {sharp} <= avg {avg}"


# ---------------------------------------------------------------------------------------------
# properties that do not need the reference data


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def noisy():
    """Textured grey image with +-3 noise, so that no 7x7 / 8x8 window is flat."""
    rng = np.random.default_rng(1)
    t = textured_image(64, 80, 1, seed=3)[0] * 200 + 20
    return np.clip(np.round(t + rng.integers(-3, 4, t.shape)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def pair():
    gt = textured_image(96, 128, 1, seed=5)
    a, b, _ = complementary_pair(gt, sigma=3.0)
    return _u8(a[0]), _u8(b[0]), _u8(gt[0]), _u8((a[0] + b[0]) / 2)


def test_sharp_fusion_beats_average_synthetic(pair):
    a, b, sharp, avg = pair
    for key in ("Q_Y_yl", "Q_Y", "Q_S", "Q_S_yl", "Q_W_yl", "Q_C_yl", "Q_C"):
        fn = METRICS[key].function
        assert fn([a, b], sharp) > fn([a, b], avg), key


def test_identical_inputs_give_textbook_values(noisy):
    x = noisy
    for key in RTOL:
        expected = 2.0 if key == "SSIM_vifb" else 1.0
        assert METRICS[key].function([x, x], x) == pytest.approx(expected, rel=1e-12, abs=0), key


def test_ssim_equals_independent_formula(noisy):
    """SSIM against a direct (slow) evaluation of Wang's formula on a few windows."""
    a = noisy.astype(np.float64)
    b = np.roll(a, 3, axis=0) * 0.5 + 40
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    smap = st.wang_ssim_map(a, b)
    assert smap.shape == (a.shape[0] - 10, a.shape[1] - 10)
    for i, j in [(0, 0), (7, 31), (smap.shape[0] - 1, smap.shape[1] - 1)]:
        pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
        ma, mb = (w * pa).sum(), (w * pb).sum()
        va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
        cov = (w * (pa - ma) * (pb - mb)).sum()
        expected = (2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
        assert smap[i, j] == pytest.approx(expected, rel=1e-10)


def test_constant_images_are_defined_or_refused(noisy):
    c = np.full_like(noisy, 77)
    d = np.full_like(noisy, 90)
    # constant everything: SSIM-type indices with their constants are 1 (same luminance) ...
    for key in ("SSIM", "Q_S", "Q_S_yl", "Q_W_yl", "Q_C_yl"):
        assert METRICS[key].function([c, c], c) == pytest.approx(1.0, rel=1e-12), key
    # ... and below 1 with a different luminance
    assert METRICS["SSIM"].function([c, c], d) < 1
    # C = 2e-16 metrics: 0/0 everywhere -> a message, never a NaN or a round-off number
    with pytest.raises(InputError, match="Q_C is undefined"):
        st.cvejic_quality([noisy, noisy[::-1]], c)
    with pytest.raises(InputError, match="Q_C is undefined"):
        st.cvejic_quality([c, d], noisy)
    for key in ("Q_Y", "Q_Y_yl"):
        with pytest.raises(InputError, match=f"{key} is undefined when both sources are constant"):
            METRICS[key].function([c, d], noisy)
    # defined values where only some inputs are constant; never NaN
    for key in RTOL:
        for sources, fused in (([c, noisy], noisy), ([noisy, noisy[::-1]], c), ([noisy, d], c)):
            try:
                value = METRICS[key].function(sources, fused)
            except InputError as exc:
                assert "undefined" in str(exc)
                continue
            assert math.isfinite(value), key
    # a structureless fused image preserves no structure
    assert st.yang_quality_yl([noisy, noisy[::-1]], c) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("key", sorted(RTOL))
def test_bad_inputs_raise_input_error(key, noisy):
    fn = METRICS[key].function
    with pytest.raises(InputError, match="size"):
        fn([noisy, noisy], noisy[:-1])
    with pytest.raises(InputError, match="size"):
        fn([noisy, noisy[:, :-2]], noisy)
    with pytest.raises(InputError, match="2 sources"):
        fn([noisy], noisy)
    with pytest.raises(InputError, match="2 sources"):
        fn([noisy, noisy, noisy], noisy)
    tiny = noisy[:6, :6]
    with pytest.raises(InputError, match="smaller than"):
        fn([tiny, tiny], tiny)


@pytest.mark.parametrize("key", sorted(RTOL))
def test_colour_and_float_inputs_are_converted_like_the_reference(key, noisy):
    fn = METRICS[key].function
    a, b = noisy, np.roll(noisy, 7, axis=1)
    f = ((a.astype(np.uint16) + b) // 2).astype(np.uint8)
    rgb = lambda x: np.repeat(x[..., None], 3, axis=2)  # noqa: E731
    assert fn([rgb(a), rgb(b)], rgb(f)) == pytest.approx(fn([a, b], f), rel=1e-12)
    assert fn([a / 255.0, b / 255.0], f / 255.0) == pytest.approx(fn([a, b], f), rel=1e-12)


def test_registry_entries():
    for key in RTOL:
        m = METRICS[key]
        assert m.higher_is_better and not m.needs_ground_truth and m.n_sources == 2
        assert m.function.__doc__ and key in m.function.__doc__
        assert m.reference


# ---------------------------------------------------------------------------------------------
# the Octave-accumulation emulation behind Q_C / Q_Y


def test_fma_emulation_is_correctly_rounded():
    rng = np.random.default_rng(7)
    w = rng.random(200) * rng.choice([1e-3, 1.0, 3.0], 200)
    a = rng.integers(0, 65026, 200).astype(np.float64)
    acc = rng.standard_normal(200) * rng.choice([1e-2, 1.0, 1e4], 200)
    for wi, ai, ci in zip(w, a, acc):
        hi, lo = st._split(float(wi))
        ours = st._fma(float(wi), hi, lo, np.array([ai]), np.array([ci]), True)[0]
        general = st._fma(float(wi), hi, lo, np.array([ai]), np.array([ci]), False)[0]
        exact = float(Fraction(float(wi)) * Fraction(float(ai)) + Fraction(float(ci)))  # correctly rounded
        assert ours == exact and general == exact


def _sequential_fma_sum(w, x, r, c):
    acc = 0.0
    for dj in range(6, -1, -1):  # Octave's conv2: kernel column outer, row inner, one FMA per term
        for di in range(6, -1, -1):
            acc = float(Fraction(float(w[di, dj])) * Fraction(float(x[r + di, c + dj])) + Fraction(acc))
    return acc


def test_octave_accumulation_matches_sequential_fma_sum():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (12, 13)).astype(np.float64)
    b = rng.integers(0, 256, (12, 13)).astype(np.float64)
    a[2:9, 3:10] = 201.0  # a flat window: the accumulated round-off is what the reference sees
    w = st._YANG_WINDOW
    rows, cols = np.array([2, 0, 5]), np.array([3, 6, 1])
    got = st._octave_moments_at([a, b], [(0, 1)], w, rows, cols)
    assert got.shape == (5, 3)
    for k, (r, c) in enumerate(zip(rows, cols)):
        for row, x in enumerate([a, b, a * a, b * b, a * b]):
            assert got[row, k] == _sequential_fma_sum(w, x, r, c)
    # constant windows: the same sums, computed once per value
    flat = st._octave_filter2_valid_const(np.array([201.0, 7.0, 201.0 ** 2]), w)
    assert flat[0] == got[0, 0] and flat[2] == got[2, 0]
    assert flat[1] == _sequential_fma_sum(w, np.full((7, 7), 7.0), 0, 0)
    assert w.sum() == pytest.approx(1.0, abs=1e-15) and np.array_equal(w, w.T)
