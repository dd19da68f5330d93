"""``focusnet`` (mfif/focusnet): features, the numpy network against the torch one, the blend,
the weights file, no torch during ``mfif fuse``, and a tiny training run with resume."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import complementary_pair, psnr, textured_image
from mfif.errors import WeightsError
from mfif.focusnet import features as F
from mfif.focusnet.network import read_weights_numpy
from mfif.focusnet.pipeline import FocusNetOptions, focusnet_fusion
from mfif.models.weights import WEIGHTS_DIR

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = WEIGHTS_DIR / "focusnet.safetensors"


def test_max_of_the_other_frames_by_hand():
    x = np.array([[3.0, 1.0], [5.0, 1.0], [2.0, 0.0]], np.float32)  # (N=3, 2)
    top, second = F.top_two(x)
    np.testing.assert_array_equal([F.other_max(v, top, second) for v in x], [[5, 1], [3, 1], [5, 1]])


def test_cell_mean_by_hand_with_edge_extension():
    x = np.arange(30, dtype=np.float32).reshape(5, 6)
    cells = F.cell_mean(x)
    assert cells.shape == (2, 2)
    assert cells[0, 0] == pytest.approx(x[:4, :4].mean())
    # right cell: columns 4, 5, 5, 5 (the last column repeated); bottom: row 4 four times
    assert cells[0, 1] == pytest.approx(np.concatenate([x[:4, 4:6], x[:4, 5:6], x[:4, 5:6]], 1).mean())
    assert cells[1, 0] == pytest.approx(np.repeat(x[4:5, :4], 4, 0).mean())


def test_base_measures_are_logs_of_mean_modified_laplacians():
    grey = textured_image(24, 24, 1, seed=1)[0]
    bases, logs = F.frame_measures(grey)
    ml = F.modified_laplacian(grey, 1)
    y, x = 12, 10
    for k, r in enumerate(F.BASE_RADII):
        assert bases[k, y, x] == pytest.approx(np.log(ml[y - r:y + r + 1, x - r:x + r + 1].mean() + F.EPS), rel=1e-5)
    np.testing.assert_array_equal(logs[:2], bases[[0, 2]])


def test_numpy_inference_equals_the_torch_model(tmp_path):
    """The whole numpy path (features, network, softmax, pyramid blend; the running form that
    ``mfif fuse`` uses) against the torch model of training, with a non-zero head."""
    torch = pytest.importorskip("torch")
    from mfif.decision import luminance
    from mfif.focusnet.network import FORMAT
    from mfif.focusnet.pipeline import focusnet_stream
    from mfif.focusnet.torch_net import FocusNet, pyramid_blend
    from mfif.models.weights import write_weights

    torch.manual_seed(1)
    net = FocusNet()
    with torch.no_grad():
        net.head.weight.normal_(0.0, 0.3)
        net.head.bias.copy_(torch.tensor([0.2, 0.5, -0.3, 0.0]))
    path = write_weights(tmp_path / "w.safetensors", net.export_tensors(), format=FORMAT, arch={})
    stack = np.random.default_rng(0).random((3, 3, 48, 64)).astype(np.float32)  # even at every level (training crops are)
    stack[1] = stack[0]  # a tie in every feature: the exchange must treat it the same way
    options = FocusNetOptions(weights=str(path), levels=3)
    res = focusnet_fusion(stack, options)
    bases, inputs = F.stack_features(luminance(stack))
    with torch.no_grad():
        logits = net(torch.from_numpy(inputs), torch.from_numpy(bases))
        weights = torch.softmax(logits, dim=0)
    np.testing.assert_allclose(res.weights, weights.numpy(), atol=1e-5)
    assert np.abs(res.weights - 1 / 3).max() > 0.1  # the head does change the weights
    with torch.no_grad():
        expected = pyramid_blend(torch.from_numpy(stack), weights, 3).clamp(0, 1).numpy()
    np.testing.assert_allclose(res.fused, expected, atol=1e-5)
    frames = [stack[i] for i in range(3)]  # the running form on a plain sequence
    np.testing.assert_allclose(focusnet_stream(frames, options).fused, res.fused, atol=1e-6)


def test_pyramid_blend_in_torch_equals_opencv():
    torch = pytest.importorskip("torch")
    from mfif.focusnet.torch_net import pyramid_blend
    from mfif.stack_rule import PyramidBlend

    frames = np.random.default_rng(1).random((3, 3, 32, 32)).astype(np.float32)
    w = np.random.default_rng(2).random((3, 32, 32)).astype(np.float32)
    blend = PyramidBlend(3)
    for i in range(3):
        blend.add(frames[i], w[i])
    with torch.no_grad():
        ours = pyramid_blend(torch.from_numpy(frames), torch.from_numpy(w), 3).clamp(0, 1).numpy()
    np.testing.assert_allclose(ours, blend.result(), atol=1e-5)


def test_shipped_weights_read_and_fuse_a_pair_close_to_ground_truth():
    w = read_weights_numpy(SHIPPED)
    assert w.tensors["conv1.weight"].shape == (16, 7, 3, 3)
    gt = textured_image(64, 64, 3, seed=5)
    a, b, _ = complementary_pair(gt, sigma=3.0)
    res = focusnet_fusion(np.stack([a, b]).astype(np.float32))
    assert psnr(res.fused, gt) > max(psnr(a, gt), psnr(b, gt)) + 6.0
    np.testing.assert_allclose(res.weights.sum(axis=0), 1.0, atol=1e-5)


def test_weights_of_another_format_are_refused(tmp_path):
    pytest.importorskip("torch")
    from mfif.models.weights import write_weights
    import torch

    path = tmp_path / "x.safetensors"
    write_weights(path, {"beta": torch.ones(1)}, format="mfif-other/1", arch={})
    with pytest.raises(WeightsError, match="not focusnet weights"):
        read_weights_numpy(path)
    with pytest.raises(WeightsError, match="not found"):
        focusnet_fusion(np.zeros((2, 1, 16, 16), np.float32), FocusNetOptions(weights=str(tmp_path / "none")))


def test_mfif_fuse_with_focusnet_never_imports_torch(tmp_path):
    from mfif.io import write_image

    gt = textured_image(40, 40, 3, seed=2)
    a, b, _ = complementary_pair(gt)
    write_image(tmp_path / "a.png", a)
    write_image(tmp_path / "b.png", b)
    code = ("import sys\n"
            "from mfif.cli import main\n"
            f"rc = main(['fuse', {str(tmp_path / 'a.png')!r}, {str(tmp_path / 'b.png')!r}, '-o', "
            f"{str(tmp_path / 'f.png')!r}, '--method', 'focusnet', '--quiet'])\n"
            "print('torch' in sys.modules, rc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False 0", out.stdout + out.stderr
    assert (tmp_path / "f.png").is_file()


def test_tiny_training_run_resumes_and_exports(tmp_path):
    pytest.importorskip("torch")
    from mfif.focusnet.trainer import FocusNetTrainConfig, train

    pool = tmp_path / "pool"
    pool.mkdir()
    for i in range(4):  # 0 is held out for validation
        gt = textured_image(48, 48, 3, seed=10 + i)
        a, b, focus = complementary_pair(gt, sigma=2.0)
        u8 = lambda x: np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)  # noqa: E731
        np.savez(pool / f"{i:05d}.npz", frames=u8(np.stack([a, b])), gt=u8(gt),
                 focus=np.stack([focus, 1 - focus]).astype(np.uint8))
    cfg = FocusNetTrainConfig(out=str(tmp_path / "run"), pool=str(pool), pool_size=4, min_pool=1, steps=4, batch=2,
                              crop=32, val_every=2, threads=1, export=str(tmp_path / "w.safetensors"), max_steps=2)
    first = train(cfg, progress=False)
    assert first["step"] == 2 and first["stopped_early"]
    second = train(cfg, resume=True, progress=False)
    assert second["step"] == 4
    w = read_weights_numpy(tmp_path / "w.safetensors")
    assert w.meta["step"] == 4 and np.isfinite(w.beta)


def test_running_form_in_tiles_equals_one_pass(monkeypatch):
    import mfif.focusnet.pipeline as P

    monkeypatch.setattr(P, "MIN_TILE", 16)
    gt = textured_image(72, 88, 3, seed=4)
    a, b, _ = complementary_pair(gt, sigma=2.0)
    frames = [a.astype(np.float32), b.astype(np.float32), gt.astype(np.float32)]
    whole = P.focusnet_stream(frames)
    tiled = P.focusnet_stream(frames, tile=32)
    assert tiled.info.get("tiles") == 32
    np.testing.assert_allclose(tiled.fused, whole.fused, atol=1 / 255)
