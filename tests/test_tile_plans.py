"""Tile plans of the learned methods (mfif.models.<name>.tile_plan): tiled == one pass to within 1/255
with the shipped weights (IFCNN: random weights, none are shipped yet), and each declared halo
covers the measured reach of the network (a changed input pixel never changes an output pixel
farther away than the halo)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mfif.models.hourglass.tile_plan import hourglass_receptive_radius
from mfif.models.liu_cnn.tile_plan import LIU_DECIDE_HALO
from mfif.methods import METHODS
from mfif.stacking import auto_tile, fuse_frames
from mfif.tiling import tile_plan, tiled_fusion
from tests.test_stacking import band_stack


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _ifcnn_weights():
    from mfif.models.ifcnn.network import build_ifcnn

    torch.manual_seed(0)
    return build_ifcnn("max").state_dict()


# (method, options, frames, H, W, tile): each image is larger than a tile plus its halo, so tiles
# really are partial views (hf-seg's halo is 140 px: a 64x320 strip, three tiles across)
CASES = [
    ("cnn-slight", {}, 2, 96, 96, 48),
    ("cnn-slight", {}, 3, 96, 96, 48),  # N-way: N-way small-region removal on the full map
    ("cnn-slight", {"nframe_strategy": "series"}, 3, 96, 96, 48),  # one global step per pairwise fold
    ("hf-seg", {}, 2, 64, 320, 96),
    ("hf-reg", {}, 2, 64, 320, 96),
    ("ifcnn-max", {"weights": "random"}, 2, 96, 96, 48),
    ("ba", {}, 2, 96, 128, 48),
    pytest.param("ba", {}, 3, 96, 128, 48, marks=pytest.mark.slow),  # ~4 s
]


@pytest.mark.parametrize("method,options,n,h,w,tile", CASES)
def test_learned_tiled_equals_untiled(method, options, n, h, w, tile):
    if options.get("weights") == "random":
        options = {**options, "weights": _ifcnn_weights()}
    stack, _ = band_stack(n=n, h=h, w=w, seed=3)
    spec = METHODS[method]
    opts = spec.make_options(**options)
    full = spec.load()[0](stack, opts)
    tiled = tiled_fusion(stack, spec, opts, tile=tile)
    assert tiled.fused.shape == full.fused.shape
    assert np.abs(tiled.fused - full.fused).max() <= 1 / 255
    if full.decision is not None:
        assert (tiled.decision != np.asarray(full.decision)).mean() < 1e-3
    assert not tiled.info.get("approximate")


def test_global_step_of_learned_methods_sees_the_full_map():
    # a region that is small for the whole image but large within one tile must still go
    stack, _ = band_stack(n=2, h=96, w=96, seed=3)
    spec = METHODS["cnn-slight"]
    opts = spec.make_options(area_fraction=0.3)
    full = spec.load()[0](stack, opts)
    tiled = tiled_fusion(stack, spec, opts, tile=48)
    np.testing.assert_array_equal(tiled.decision, full.decision)
    assert tiled.info["global_step"] == "full-size decision map"


@pytest.mark.parametrize("depth", [2, 3])
def test_hourglass_halo_covers_its_receptive_field(depth):
    from mfif.models.hourglass.network import HourglassConfig, HourglassNet

    torch.manual_seed(0)
    net = HourglassNet(HourglassConfig(variant="seg", base=2, depth=depth)).eval()
    size = 2 * hourglass_receptive_radius(depth) + 2 ** depth * 4
    x = torch.rand(1, 6, size, size, requires_grad=True)
    c = size // 2
    net(x)[0, 0, c, c].backward()
    ys, xs = np.nonzero(x.grad.abs().sum(dim=(0, 1)).numpy())
    reach = max(np.abs(ys - c).max(), np.abs(xs - c).max())
    radius = hourglass_receptive_radius(depth)
    assert reach <= radius
    assert reach >= radius // 2  # the formula is not wildly generous either


def test_liu_decide_halo_covers_the_focus_map_reach():
    from mfif.models.liu_cnn.pipeline import LiuCNNOptions, focus_map_from_scores, load_network, pair_score_map

    net = load_network(LiuCNNOptions(variant="slight", init="random"))
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 80, 80)).astype(np.float32)
    base = focus_map_from_scores(pair_score_map(net, a, b), 80, 80)
    a2 = a.copy()
    a2[40, 40] += 0.5
    changed = np.abs(focus_map_from_scores(pair_score_map(net, a2, b), 80, 80) - base) > 0
    ys, xs = np.nonzero(changed)
    assert len(ys) and max(np.abs(ys - 40).max(), np.abs(xs - 40).max()) < LIU_DECIDE_HALO


def test_learned_methods_have_plans_and_tile_automatically():
    for name, spec in METHODS.items():
        if spec.kind != "learned":
            continue
        assert auto_tile(spec, (2, 3, 4000, 4000)) == 1024, name
    opts = METHODS["ba"].make_options()
    assert tile_plan(METHODS["ba"], opts, (4, 3, 500, 500)).series
    assert not tile_plan(METHODS["ba"], opts, (2, 3, 500, 500)).series


def test_ifcnn_exposure_enhance_is_marked_approximate():
    spec = METHODS["ifcnn-mean"]
    opts = spec.make_options(modality="exposure", weights=_ifcnn_weights())
    with pytest.warns(UserWarning, match="non-local"):
        plan = tile_plan(spec, opts, (2, 3, 64, 64))
    assert plan.approximate


def test_fuse_frames_tiles_a_learned_pair():
    stack, _ = band_stack(n=2, h=96, w=96, seed=3)
    result = fuse_frames(stack, "cnn-slight", tile=48)
    direct = METHODS["cnn-slight"].load()[0](stack, METHODS["cnn-slight"].make_options())
    assert np.abs(result.fused - direct.fused).max() <= 1 / 255
    assert result.info["tiles"] == 48
