"""`mfif eval` aligns stacks of more than two frames (as `mfif fuse` does) before it scores them."""
from __future__ import annotations

import cv2
import numpy as np

from mfif.evaluation.runner import EvalConfig, evaluate
from mfif.io import write_image
from mfif.metrics import METRICS
from tests.helpers import textured_image


def _shifted(image: np.ndarray, dx: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, 0]])
    h, w = image.shape[1:]
    return np.stack([cv2.warpAffine(c, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
                     for c in image]).astype(np.float32)


def _shifted_stack(root, h: int, w: int, seed: int):
    """Three sharp copies of a textured ground truth moved by -3, 0, +3 px, written as a stack
    item (GT in the middle frame's geometry, as the dev set's breathing sweeps)."""
    gt = textured_image(h, w, 3, seed=seed)
    stack = root / "data" / "shifted"
    stack.mkdir(parents=True)
    frames = [_shifted(gt, dx) for dx in (-3.0, 0.0, 3.0)]
    for k, frame in enumerate(frames):
        write_image(stack / f"shifted_{k + 1}.png", frame)
    write_image(stack / "GT.png", gt)
    return frames, gt


def test_eval_aligns_a_stack_and_crops_the_ground_truth(tmp_path):
    """Unaligned, the average of the shifted copies is a blur of the GT; aligned (and GT cropped
    alike), it is the GT up to interpolation."""
    frames, gt = _shifted_stack(tmp_path, 96, 128, seed=4)
    result = evaluate([tmp_path / "data"], EvalConfig(methods=["average"], out_dir=tmp_path / "r",
                                                       metrics=["PSNR_GT"], progress=False))
    assert not result.problems, result.problems
    aligned_psnr = result.rows[0].values["PSNR_GT"]
    psnr = METRICS["PSNR_GT"].function
    unaligned_psnr = psnr(frames, np.mean(frames, axis=0), ground_truth=gt)
    assert unaligned_psnr < 30.0 and aligned_psnr > 45.0, (unaligned_psnr, aligned_psnr)


def test_eval_can_fuse_stacks_as_stored(tmp_path):
    frames, gt = _shifted_stack(tmp_path, 64, 80, seed=5)
    config = EvalConfig(methods=["average"], out_dir=tmp_path / "r", metrics=["PSNR_GT"], progress=False, align=False)
    result = evaluate([tmp_path / "data"], config)
    psnr = METRICS["PSNR_GT"].function
    expected = psnr(frames, np.mean(frames, axis=0), ground_truth=gt)
    assert abs(result.rows[0].values["PSNR_GT"] - expected) < 0.05  # the saved 8-bit result
