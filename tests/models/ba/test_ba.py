"""The ``ba`` method (:mod:`mfif.models.ba.pipeline`) and its trainer (:mod:`mfif.models.ba.trainer`): exact tiled
refinement and strips, the maps, swapped inputs, shipped weights, N > 2, bad options and weights,
and a tiny training run that lowers the loss and resumes."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

import mfif
from mfif.errors import InputError, WeightsError
from mfif.models.ba.pipeline import BAOptions, ba_fusion, boundary_mask, load_network, pixel_scores, refine_scores
from mfif.models.ba.network import default_weights_path, save_ba_weights
from tests.helpers import complementary_pair, textured_image

SHIPPED = default_weights_path("initial").is_file() and default_weights_path("boundary").is_file()


def _grey_pair(h=70, w=90, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((2, h, w)).astype(np.float32)


def test_refinement_tiles_equal_full_dense_pass():
    net = load_network("boundary", None, "cpu", "random")
    g = _grey_pair()
    full = pixel_scores(net, g[0], g[1])
    near = np.random.default_rng(1).random(full.shape) > 0.8
    initial = np.full(full.shape, 0.25, np.float32)
    refined = refine_scores(net, g[0], g[1], initial, near, tile=32, max_strip_bytes=1)  # one tile per batch
    np.testing.assert_allclose(refined[near], full[near], atol=1e-5)
    assert (refined[~near] == 0.25).all()
    strips = pixel_scores(net, g[0], g[1], max_strip_bytes=1)  # 8 output rows per strip
    np.testing.assert_allclose(strips, full, atol=1e-5)


def test_boundary_mask_band():
    """A straight step in the score map: pixels within ~tau * window of it are 'near'."""
    scores = np.zeros((40, 60), np.float32)
    scores[:, 30:] = 1.0
    near = boundary_mask(scores, window=21, tau=0.3)
    cols = np.flatnonzero(near[20])
    assert cols.min() >= 30 - 7 and cols.max() <= 30 + 6 and near[:, 27:33].all()
    assert not boundary_mask(np.ones((20, 20), np.float32), 21, 0.3).any()


def test_random_weights_pair_maps_and_swap():
    a, b, _ = complementary_pair(textured_image(64, 80, 3, seed=2), sigma=2.0)
    stack = np.stack([a, b])
    o = BAOptions(init="random", symmetric=True, area_fraction=0.0, window=15, tau=0.3)
    res = ba_fusion(stack, o)
    assert res.fused.shape == (3, 64, 80) and res.fused.dtype == np.float32
    assert set(res.maps) >= {"initial", "refined", "final"}
    for name in ("initial", "refined", "final"):
        assert res.maps[name].shape == (64, 80) and np.isfinite(res.maps[name]).all()
    assert set(np.unique(res.decision)) <= {0, 1}
    np.testing.assert_array_equal(res.maps["final"] == 1, res.decision == 0)
    expected = np.where(res.decision[None] == 0, a, b)
    np.testing.assert_allclose(res.fused, expected, atol=1e-6)
    # near-boundary pixels changed, others kept
    near = res.maps["boundary"] > 0
    np.testing.assert_array_equal(res.maps["refined"][~near], res.maps["initial"][~near])
    # swapped inputs: complementary score maps and decision (symmetric scoring is exact)
    swapped = ba_fusion(stack[::-1].copy(), o)
    np.testing.assert_allclose(swapped.maps["initial"], 1.0 - res.maps["initial"], atol=1e-5)
    settled = np.abs(res.maps["refined"] - 0.5) > 1e-4
    np.testing.assert_array_equal(swapped.decision[settled], 1 - res.decision[settled])


def test_without_refinement_and_three_frames():
    gt = textured_image(48, 64, 1, seed=3)
    frames = np.stack([cv2.GaussianBlur(gt[0], (0, 0), s)[None] for s in (0.5, 2.0, 3.0)]).astype(np.float32)
    res = mfif.fuse(frames, method="ba", init="random", refine=False, stack_rule="pair")
    np.testing.assert_array_equal(res.maps["refined"], res.maps["initial"])
    assert res.weights.shape == (3, 48, 64)
    np.testing.assert_allclose(res.weights.sum(0), 1.0)
    assert res.info["mode"] == "series" and res.decision.max() <= 2
    champion = mfif.fuse(frames, method="ba", init="random", refine=False)  # the N-frame default
    assert champion.info["mode"] == "champion" and champion.fused.shape == (1, 48, 64)
    assert champion.decision.shape == (48, 64) and 0 <= champion.decision.min() <= champion.decision.max() <= 2


@pytest.mark.parametrize("bad", [dict(window=4), dict(window=0), dict(tau=0.0), dict(tau=0.7), dict(threshold=1.0),
                                 dict(area_fraction=-1.0), dict(tile=3)])
def test_bad_options(bad):
    stack = np.random.default_rng(0).random((2, 1, 40, 40)).astype(np.float32)
    with pytest.raises(InputError):
        ba_fusion(stack, BAOptions(init="random", **bad))


def test_bad_stack():
    with pytest.raises(InputError):
        ba_fusion(np.zeros((1, 1, 40, 40), np.float32), BAOptions(init="random"))
    with pytest.raises(InputError):
        ba_fusion(np.zeros((2, 2, 40, 40), np.float32), BAOptions(init="random"))


def test_wrong_weights_files(tmp_path):
    stack = np.random.default_rng(0).random((2, 1, 40, 40)).astype(np.float32)
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError):
        ba_fusion(stack, BAOptions(weights=str(tmp_path / "junk.pt"), refine=False))
    net = load_network("boundary", None, "cpu", "random")
    save_ba_weights(net, tmp_path / "boundary.pt", "boundary")
    with pytest.raises(WeightsError, match="boundary net, not the initial"):
        ba_fusion(stack, BAOptions(weights=str(tmp_path / "boundary.pt"), refine=False))
    with pytest.raises(WeightsError, match="not found"):
        ba_fusion(stack, BAOptions(weights=str(tmp_path / "missing.pt")))


@pytest.mark.skipif(not SHIPPED, reason="shipped BA weights not present")
def test_shipped_weights_on_a_synthetic_pair():
    a, b, mask = complementary_pair(textured_image(96, 128, 3, seed=5), sigma=2.5)
    res = mfif.fuse([a, b], method="ba")
    chosen_a = res.decision == 0
    assert (chosen_a == mask).mean() > 0.95
    swapped = mfif.fuse([b, a], method="ba")
    assert (swapped.decision != res.decision).mean() > 0.98
    for name in ("initial", "refined", "final"):
        assert res.maps[name].shape == (96, 128)


# ---------------------------------------------------------------------------------------------
# training


def _tiny_data(root):
    """alphamatting/{input,alpha} (3 train + 1 val foreground) and bsds500/images/{train,val}."""
    rng = np.random.default_rng(0)

    def photo(h, w):
        low = cv2.resize(rng.random((5, 5, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        return np.round(np.clip(0.2 + 0.5 * low + 0.3 * rng.random((h, w, 1)), 0, 1) * 255).astype(np.uint8)

    for name in ("GT01", "GT02", "GT03", "GT24"):
        (root / "alphamatting" / "input").mkdir(parents=True, exist_ok=True)
        (root / "alphamatting" / "alpha").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "alphamatting" / "input" / f"{name}.png"), photo(176, 200))
        yy, xx = np.mgrid[:176, :200]
        alpha = ((yy - 88) ** 2 + (xx - 100) ** 2 < 60 ** 2).astype(np.float32)
        alpha = cv2.GaussianBlur(alpha, (0, 0), 2.0)
        cv2.imwrite(str(root / "alphamatting" / "alpha" / f"{name}.png"), np.round(alpha * 255).astype(np.uint8))
    for split, n in (("train", 3), ("val", 2)):
        (root / "bsds500" / "images" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cv2.imwrite(str(root / "bsds500" / "images" / split / f"{split}{i}.png"), photo(96, 112))
    return root


def test_tiny_training_lowers_loss_and_resumes(tmp_path, monkeypatch):
    from mfif.models.ba.network import build_ba_resnet
    from mfif.models.ba.trainer import BATrainConfig, photo_sources, train_ba

    data = _tiny_data(tmp_path / "data")
    train_src, val_src = photo_sources(data)
    assert len(val_src.with_alpha()) == 1 and len(train_src.with_alpha()) == 3
    common = dict(net="initial", data=str(data), steps=24, crops=2, crop_size=72, lr=3e-3, pool=2, refresh=0,
                  mix="ba-hard:1,ba-layered:1", val_scenes=2, val_patches=4, threads=1, checkpoint_minutes=100.0)
    full = train_ba(BATrainConfig(out=str(tmp_path / "full"), **common), progress=False)
    hist = [h["loss"] for h in json.loads((tmp_path / "full" / "history.json").read_text()) if "loss" in h]
    assert np.mean(hist[-2:]) < hist[0]
    assert full["steps"] == 24 and "random_accuracy" in full["validation"]
    # interrupted after 12 steps, then resumed: the same final weights
    part = train_ba(BATrainConfig(out=str(tmp_path / "part"), max_steps=12, **common), progress=False)
    assert part["stopped_early"] and part["steps"] == 12
    resumed = train_ba(BATrainConfig(out=str(tmp_path / "part"), resume=str(tmp_path / "part" / "last.pt"), **common),
                       progress=False)
    assert resumed["steps"] == 24
    a = torch.load(tmp_path / "full" / "final.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "part" / "final.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-4, rtol=1e-4)
    # the boundary net starts from the initial net's weights and exports the shipped format (in bf16:
    # the config's precision reaches fit())
    import mfif.models.ba.trainer as trainer

    precisions, real_fit = [], trainer.fit
    monkeypatch.setattr(trainer, "fit", lambda *a, **k: precisions.append(k["precision"]) or real_fit(*a, **k))
    out = train_ba(BATrainConfig(**{**common, "net": "boundary", "steps": 2}, out=str(tmp_path / "b"),
                                 init=str(tmp_path / "full" / "final.pt"), export=str(tmp_path / "b.pt"),
                                 precision="bf16"), progress=False)
    assert out["steps"] == 2 and precisions == ["bf16"] and out["config"]["precision"] == "bf16"
    assert build_ba_resnet(weights=tmp_path / "b.pt", role="boundary").weights_info.role == "boundary"
    with pytest.raises(InputError, match="checkpoint has"):
        train_ba(BATrainConfig(out=str(tmp_path / "part"), resume=str(tmp_path / "part" / "last.pt"),
                               **{**common, "crops": 3}), progress=False)
