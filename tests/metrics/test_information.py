"""Information-theory metrics (Q_MI, Q_TE, Q_TE_nava, Q_NCIE, MI_vifb, CE_vifb).

Reference values: ``shared/refmetrics/cases/*/refmetrics_F_*.json``, made by running the MATLAB
code (Zheng Liu's ``metricMI``/``metricWang``, VIFB's ``metricsMutinf``/``metricsCross_entropy``)
unmodified under GNU Octave on the same PNGs (see ``shared/refmetrics/README.md``).
Measured agreement (``benchmarks/metrics_deviation.py``): <= 1e-12 relative for every key, so the
tolerance below is 1e-9 relative for all six (histogram arithmetic, no iterative numerics).
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
from mfif.metrics import information as info
from tests.conftest import SHARED
from tests.metrics.refcases import load_png as _png
from tests.metrics.refcases import reference_files as _reference_files
from tests.helpers import complementary_pair, textured_image

# metric key -> relative tolerance against the MATLAB reference
RTOL = {
    "Q_MI": 1e-9,
    "Q_TE": 1e-9,
    "Q_TE_nava": 1e-9,
    "Q_NCIE": 1e-9,
    "MI_vifb": 1e-9,
    "CE_vifb": 1e-9,
}






@lru_cache(maxsize=None)
def _case(shared: Path, name: str):
    case, fused = name.split("/")
    d = shared / "refmetrics" / "cases" / case
    ref = json.loads((d / f"refmetrics_{fused}.json").read_text())
    return _png(d / "A.png"), _png(d / "B.png"), _png(d / f"{fused}.png"), ref


@lru_cache(maxsize=None)
def _score(shared: Path, name: str, key: str) -> float:
    a, b, f, _ = _case(shared, name)
    return METRICS[key].function([a, b], f)


@pytest.mark.shared
@pytest.mark.parametrize("key", sorted(RTOL))
@pytest.mark.parametrize("name", _reference_files())
def test_matches_matlab_reference(shared_dir, name, key):
    expected = _case(shared_dir, name)[3][key]
    # No case has a null (NaN/Inf in MATLAB) for these keys; a null appearing means the data changed.
    assert expected is not None, f"{name}: reference {key} is null"
    ours = _score(shared_dir, name, key)
    assert isinstance(ours, float)
    assert ours == pytest.approx(expected, rel=RTOL[key], abs=0.0), f"{name}: {key}"


# ---------------------------------------------------------------------------------------------
# properties that do not need the reference data


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def grey():
    return _u8(textured_image(80, 96, 1, seed=11)[0])


def _histogram(x: np.ndarray) -> np.ndarray:
    p = np.bincount(info._normalize1(x.astype(np.float64)).astype(int).ravel(), minlength=256) / x.size
    return p[p > 0]


def test_identical_inputs_give_textbook_values(grey):
    x = grey
    p = _histogram(x)
    h_bits = -np.sum(p * np.log2(p))
    # Q_MI: MI(A, A) = H(A)  ->  2 * (1/2 + 1/2) = 2
    assert info.normalized_mutual_information([x, x], x) == pytest.approx(2.0, rel=1e-12)
    # Q_TE: diagonal joint histogram; with the transposed marginals the only non-zero terms are
    # p_i^q / (p_i p_i)^(q-1) = p_i^(2-q)  ->  2 * (1 - sum p^(2-q)) / (1 - q)
    q = 1.85
    expected_te = 2 * (1 - np.sum(p ** (2 - q))) / (1 - q)
    assert info.tsallis_mutual_information([x, x], x) == pytest.approx(expected_te, rel=1e-12)
    # Q_NCIE: NCC(X, X) = H / 8 -> R has eigenvalues 1 + 2c, 1 - c, 1 - c
    c = h_bits / 8
    lam = np.array([1 + 2 * c, 1 - c, 1 - c]) / 3
    expected_ncie = 1 + np.sum(lam * np.log(lam) / np.log(256))
    assert info.nonlinear_correlation_information_entropy([x, x], x) == pytest.approx(expected_ncie, rel=1e-12)
    # MI_vifb: 2 H in nats (the image spans 0..255, so VIFB's rescaling is the identity)
    assert x.min() == 0 and x.max() == 255
    expected_mi = 2 * -np.sum(p * np.log(p))
    assert info.mutual_information_vifb([x, x], x) == pytest.approx(expected_mi, rel=1e-12)
    # CE_vifb: KL(A || A) = 0
    assert info.cross_entropy_vifb([x, x], x) == 0.0


def test_sharp_fusion_has_more_information_than_average():
    gt = textured_image(96, 128, 1, seed=5)
    a, b, _ = complementary_pair(gt, sigma=3.0)
    a8, b8, gt8 = _u8(a[0]), _u8(b[0]), _u8(gt[0])
    avg8 = _u8((a[0] + b[0]) / 2)
    for fn in (info.normalized_mutual_information, info.nonlinear_correlation_information_entropy,
               info.mutual_information_vifb):
        assert fn([a8, b8], gt8) > fn([a8, b8], avg8), fn.__name__


def test_normalize1_rounds_half_away_from_zero_and_handles_constant():
    x = np.array([[0.0, 1.0, 2.0]])  # (1 - 0) / 2 * 255 = 127.5 -> MATLAB round gives 128
    np.testing.assert_array_equal(info._normalize1(x), [[0, 128, 255]])
    np.testing.assert_array_equal(info._normalize1(np.full((2, 2), 9.0)), np.zeros((2, 2)))


def test_constant_images_are_defined_or_refused(grey):
    c7 = np.full_like(grey, 7)
    c9 = np.full_like(grey, 9)
    # 0/0 in the formula -> a message, never a NaN
    with pytest.raises(InputError, match="Q_MI is undefined"):
        info.normalized_mutual_information([c7, c9], c7)
    with pytest.raises(InputError, match="Q_TE_nava is undefined"):
        info.tsallis_mutual_information_nava([c7, c9], grey)
    # defined values: constant images carry no information
    assert info.normalized_mutual_information([c7, c9], grey) == 0.0
    assert info.tsallis_mutual_information([c7, c9], c7) == 0.0
    assert info.mutual_information_vifb([c7, c9], grey) == 0.0
    # three independent (constant) images: R = I, Q_NCIE = 1 - log_256(3)
    assert info.nonlinear_correlation_information_entropy([c7, c9], c7) == pytest.approx(
        1 - math.log(3, 256), rel=1e-12)
    for key in RTOL:
        for sources, fused in (([c7, c9], grey), ([grey, 255 - grey], c7)):
            try:
                value = METRICS[key].function(sources, fused)
            except InputError:
                continue
            assert math.isfinite(value), key


@pytest.mark.parametrize("key", sorted(RTOL))
def test_bad_inputs_raise_input_error(key, grey):
    fn = METRICS[key].function
    with pytest.raises(InputError, match="size"):
        fn([grey, grey], grey[:-1])
    with pytest.raises(InputError, match="size"):
        fn([grey, grey[:, :-2]], grey)
    with pytest.raises(InputError, match="2 sources"):
        fn([grey], grey)
    with pytest.raises(InputError, match="2 sources"):
        fn([grey, grey, grey], grey)


@pytest.mark.parametrize("key", sorted(RTOL))
def test_colour_and_float_inputs_are_converted_like_the_reference(key, grey):
    """RGB goes through the reference's rgb2gray + uint8 rounding; a grey image replicated to
    3 channels therefore scores like the grey image, and float [0, 1] like its uint8 rounding."""
    fn = METRICS[key].function
    a, b = grey, np.roll(grey, 7, axis=1)
    f = ((a.astype(np.uint16) + b) // 2).astype(np.uint8)
    rgb = lambda x: np.repeat(x[..., None], 3, axis=2)  # noqa: E731
    assert fn([rgb(a), rgb(b)], rgb(f)) == pytest.approx(fn([a, b], f), rel=1e-12)
    assert fn([a / 255.0, b / 255.0], f / 255.0) == pytest.approx(fn([a, b], f), rel=1e-12)
