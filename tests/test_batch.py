"""`mfif fuse --batch DIR -o OUT_DIR`: one stack per subfolder, finished stacks skipped, a failed
stack (corrupt frame, single frame) reported at the end with exit code 1 while the others are done."""
from __future__ import annotations

import numpy as np
from PIL import Image

from mfif.cli import main
from mfif.io import read_image_with_info
from tests.helpers import gaussian_blur, textured_image


def _stack(folder, n, seed):
    folder.mkdir(parents=True)
    gt = textured_image(48, 64, 3, seed=seed)
    blurred = gaussian_blur(gt, 2.0)
    for i in range(n):
        band = (np.arange(64) * n // 64 == i)[None, None, :]
        frame = np.where(band, gt, blurred)
        Image.fromarray(np.round(np.moveaxis(frame, 0, -1) * 255).astype(np.uint8)).save(folder / f"f{i}.png")


def test_batch_continues_past_failures_and_skips_finished(tmp_path, capsys):
    root = tmp_path / "stacks"
    _stack(root / "a_good", 3, 0)
    _stack(root / "b_corrupt", 3, 1)
    data = (root / "b_corrupt" / "f1.png").read_bytes()
    (root / "b_corrupt" / "f1.png").write_bytes(data[: len(data) // 3])
    _stack(root / "c_single", 1, 2)
    _stack(root / "d_good", 2, 3)
    (root / "notes").mkdir()  # no images: not a stack
    out = tmp_path / "out"
    code = main(["fuse", "--batch", str(root), "-o", str(out), "-m", "sml", "--depth-map", "x", "--save-transforms", "x"])
    captured = capsys.readouterr()
    assert code == 1
    assert (out / "a_good.png").exists() and (out / "d_good.png").exists()
    assert not (out / "b_corrupt.png").exists() and not (out / "c_single.png").exists()
    assert (out / "a_good_depth.png").exists() and (out / "a_good_depth_raw.png").exists()
    assert (out / "a_good_transforms.json").exists()  # 3 frames: aligned
    err = captured.err
    assert "2 fused, 0 skipped (already done), 2 failed: b_corrupt, c_single" in err
    assert "f1.png" in err and "truncated or corrupt" in err and "need at least 2 frames" in err
    assert "Traceback" not in err
    assert read_image_with_info(out / "a_good.png")[0].shape[0] == 3

    # run again: the finished stacks are skipped, the failed ones fail again
    code = main(["fuse", "--batch", str(root), "-o", str(out), "-m", "sml", "-q"])
    captured = capsys.readouterr()
    assert code == 1 and "0 fused, 2 skipped (already done), 2 failed" in captured.err


def test_batch_all_good_exit_zero_and_format(tmp_path, capsys):
    root = tmp_path / "stacks"
    _stack(root / "s1", 2, 0)
    code = main(["fuse", "--batch", str(root), "-o", str(tmp_path / "out"), "--format", "tif", "-m", "average"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "s1.tif").exists()


def test_batch_errors(tmp_path, capsys):
    code = main(["fuse", "--batch", str(tmp_path / "missing"), "-o", str(tmp_path / "out")])
    assert code == 1 and "--batch expects a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    code = main(["fuse", "--batch", str(tmp_path / "empty"), "-o", str(tmp_path / "out")])
    assert code == 1 and "no subfolders with image files" in capsys.readouterr().err


def test_batch_reports_a_stack_with_frames_of_different_sizes(tmp_path, capsys):
    root = tmp_path / "stacks"
    _stack(root / "a_mixed", 3, 0)
    Image.fromarray(np.zeros((40, 64, 3), np.uint8)).save(root / "a_mixed" / "f2.png")
    _stack(root / "b_good", 2, 1)
    code = main(["fuse", "--batch", str(root), "-o", str(tmp_path / "out"), "-m", "average", "-q"])
    err = capsys.readouterr().err
    assert code == 1 and (tmp_path / "out" / "b_good.png").exists()
    assert not (tmp_path / "out" / "a_mixed.png").exists()
    assert "1 failed: a_mixed" in err and "size 64x40 differs" in err and "Traceback" not in err
