"""Generated from the method table (:data:`mfif.methods.METHODS`): every method fuses a tiny pair,
does not depend on the frame order where its entry says so, and gives the same image tiled as in
one pass (its declared tile plan, :mod:`mfif.tiling`). A method added to the table is tested here
without a new line."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from helpers import complementary_pair, textured_image
from mfif.methods import METHODS
from mfif.models.weights import WEIGHTS_DIR
from mfif.tiling import tiled_fusion

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 48  # tiles of 24: a 2 x 2 grid


@pytest.fixture(scope="module")
def pair():
    gt = textured_image(SIZE, SIZE, 3, seed=3)
    a, b, _ = complementary_pair(gt, sigma=2.5)
    return gt, np.stack([a, b]).astype(np.float32)


def _spec_and_options(name):
    spec = METHODS[name]
    missing = [f for f in spec.weights if not (WEIGHTS_DIR / f).is_file()]
    if missing:
        pytest.skip(f"{name}: no shipped weights {', '.join(missing)}")
    function, _ = spec.load()
    has_device = "device" in {f.name for f in dataclasses.fields(spec.load()[1])}
    return spec, function, spec.make_options(**({"device": "cpu"} if has_device else {}))


@pytest.mark.parametrize("name", list(METHODS))
def test_method_fuses_is_order_independent_where_declared_and_tiles_equal_one_pass(name, pair):
    gt, stack = pair
    spec, function, options = _spec_and_options(name)
    result = function(stack, options)
    fused = result.fused
    assert fused.shape == (3, SIZE, SIZE) and fused.dtype == np.float32
    assert np.isfinite(fused).all() and fused.min() >= 0.0 and fused.max() <= 1.0
    # an image of the scene: no farther from the all-in-focus image than the frames are (the
    # frames' mean is exactly as far; every selecting method is closer, which its own tests pin)
    assert np.abs(fused - gt).mean() <= 1.1 * max(np.abs(frame - gt).mean() for frame in stack)
    if spec.order_independent:
        swapped = function(np.ascontiguousarray(stack[::-1]), options).fused
        np.testing.assert_allclose(swapped, fused, atol=1e-6)
    assert spec.tile_plan, f"{name} declares no tile plan"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a declared plan is exact: no "approximate" warning
        tiled = tiled_fusion(stack, spec, options, tile=SIZE // 2).fused
    np.testing.assert_allclose(tiled, np.clip(fused, 0.0, 1.0), atol=1.0 / 255)
