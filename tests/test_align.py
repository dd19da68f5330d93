"""Alignment: sub-pixel accuracy on a synthetic stack with known shifts and scales (focus breathing)
and spatially varying defocus, the crop rectangle, the transforms file, fallbacks.

The synthetic stack: a textured 200x260 image; frame i is sharp around column band i and
progressively blurred (Gaussian sigma 0.3..5, interpolated) elsewhere, then warped by a known
similarity (scale 1 + 0.006 (i - r), shift uniform in +-3 px) with bicubic interpolation. The error is
the largest displacement, over a 9x9 grid covering the central 80 % of the frame, between the
estimated and the true reference->frame mapping. Measured with this generator (5 frames, seeds
0-2): worst frame 0.04-0.09 px (similarity), 0.05-0.10 px (affine), 0.09-0.16 px (homography);
the tolerance is 0.2 px.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mfif.align import (AlignOptions, align_stack, chain, common_valid_rectangle, estimate_alignment, warp_frame)
from tests.helpers import textured_image


def synthetic_stack(n=5, h=200, w=260, seed=0, scale_step=0.006, max_shift=3.0):
    rng = np.random.default_rng(seed)
    base = textured_image(h, w, 3, seed=seed)
    r = n // 2
    levels = [0.3, 1, 2, 3, 4, 5]
    blurred = np.stack([np.stack([cv2.GaussianBlur(ch, (0, 0), s) for ch in base]) for s in levels])
    frames, mats = [], []
    for i in range(n):
        s = 1 + scale_step * (i - r)
        t = rng.uniform(-max_shift, max_shift, 2) if i != r else np.zeros(2)
        c = np.array([(w - 1) / 2, (h - 1) / 2])
        m = np.eye(3)
        m[:2, :2] = s * np.eye(2)
        m[:2, 2] = c - s * c + t
        mats.append(m)
        sigma = 0.3 + np.abs(np.linspace(0, n - 1, w)[None, :] - i) * 0.8 * np.ones((h, 1))
        idx = np.interp(sigma, levels, np.arange(len(levels)))
        lo = np.floor(idx).astype(int)
        hi = np.minimum(lo + 1, len(levels) - 1)
        frac = (idx - lo)[None]
        img = (np.take_along_axis(blurred, lo[None, None].repeat(3, 1), 0)[0] * (1 - frac)
               + np.take_along_axis(blurred, hi[None, None].repeat(3, 1), 0)[0] * frac)
        inv = np.linalg.inv(m)  # frame(y) = image(T^-1 y)
        frames.append(np.clip(np.stack([cv2.warpAffine(ch.astype(np.float32), inv[:2], (w, h),
                                                       flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                                       borderMode=cv2.BORDER_REFLECT) for ch in img]), 0, 1))
    return frames, mats


def displacement_error(est, true, w, h):
    gx, gy = np.meshgrid(np.linspace(0.1 * w, 0.9 * w, 9), np.linspace(0.1 * h, 0.9 * h, 9))
    p = np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)])
    out = []
    for e, t in zip(est, true):
        a, b = e @ p, t @ p
        out.append(np.sqrt(((a[:2] / a[2] - b[:2] / b[2]) ** 2).sum(0)).max())
    return np.array(out)


@pytest.fixture(scope="module")
def stack():
    return synthetic_stack()


@pytest.mark.parametrize("model", ["similarity", "affine", "homography"])
def test_subpixel_accuracy(stack, model):
    frames, mats = stack
    al = estimate_alignment(frames, AlignOptions(model=model))
    assert al.reference == 2
    assert all(s.method == "ecc" for s in al.steps)
    err = displacement_error(al.matrices, mats, 260, 200)
    assert err.max() < 0.2, err


def test_downscaled_matching_is_still_subpixel(stack):
    frames, mats = stack
    al = estimate_alignment(frames, AlignOptions(model="similarity", max_size=130))  # match at half size
    assert displacement_error(al.matrices, mats, 260, 200).max() < 0.35


def test_crop_is_valid_in_every_frame_and_tight(stack):
    frames, mats = stack
    al = estimate_alignment(frames, AlignOptions(model="similarity"))
    x, y, w, h = al.crop
    corners = np.array([[x, y, 1], [x + w - 1, y, 1], [x, y + h - 1, 1], [x + w - 1, y + h - 1, 1]], float).T
    for m in al.matrices:
        q = m @ corners
        q = q[:2] / q[2]
        assert (q >= 0).all() and (q[0] <= 259).all() and (q[1] <= 199).all()
    # shifts <= 3 px and scale <= 1.2 %: the crop loses only a thin border
    assert w >= 260 - 2 * 6 and h >= 200 - 2 * 6


def test_aligned_frames_match_the_reference(stack):
    frames, _ = stack
    aligned, al = align_stack(np.stack(frames), AlignOptions(model="similarity"))
    x, y, w, h = al.crop
    assert aligned.shape == (5, 3, h, w)
    ref = aligned[al.reference].mean(0)
    # compare a frame with the reference where both are equally blurred: low-pass both
    for i in (0, 4):
        a = cv2.GaussianBlur(aligned[i].mean(0), (0, 0), 5)
        b = cv2.GaussianBlur(ref, (0, 0), 5)
        raw = cv2.GaussianBlur(frames[i].mean(0)[y:y + h, x:x + w], (0, 0), 5)
        assert np.abs(a - b).mean() < 0.5 * np.abs(raw - b).mean()


def test_exposure_is_normalised():
    frames, _ = synthetic_stack(n=3, scale_step=0.0, max_shift=1.0, seed=3)
    frames[0] = frames[0] * np.array([0.8, 0.9, 0.7], np.float32)[:, None, None]
    aligned, al = align_stack(np.stack(frames), AlignOptions(model="translation"))
    g = np.array(al.gains[0])
    np.testing.assert_allclose(g, 1 / np.array([0.8, 0.9, 0.7]), rtol=0.02)


def test_chain_composes_neighbour_steps():
    a = np.array([[1.01, 0, 2], [0, 1.01, -1], [0, 0, 1]])
    b = np.array([[0.99, 0, -0.5], [0, 0.99, 3], [0, 0, 1]])
    mats = chain([a, b], reference=1)
    np.testing.assert_allclose(mats[1], np.eye(3))
    np.testing.assert_allclose(mats[2], b)
    np.testing.assert_allclose(mats[0], np.linalg.inv(a))


def test_large_shift_uses_feature_fallback():
    img = textured_image(240, 320, 1, seed=5)[0]
    big = cv2.copyMakeBorder(img, 0, 0, 0, 0, cv2.BORDER_REFLECT)
    shifted = np.roll(big, (-19, -43), axis=(0, 1))  # frame1(y) = frame0(y + t)
    o = AlignOptions(model="translation", min_size=400, max_shift=0.3)  # a single level: ECC cannot reach 43 px
    al = estimate_alignment([img[None], shifted[None]], o)
    m = al.matrices[1] @ np.linalg.inv(al.matrices[0])  # frame0 pixels -> frame1 pixels
    np.testing.assert_allclose(m[:2, 2], [-43, -19], atol=0.3)
    assert al.steps[0].method in ("ecc", "features", "features+ecc")


def test_unrelated_frames_fall_back_to_identity_with_warning():
    rng = np.random.default_rng(0)
    a = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 1)[None]
    b = np.full((1, 96, 96), 0.5, np.float32)  # flat: nothing to match
    with pytest.warns(UserWarning, match="alignment of .* failed"):
        al = estimate_alignment([a, b], AlignOptions())
    assert al.steps[0].method == "identity"
    np.testing.assert_allclose(al.matrices[1], np.eye(3))


def test_transforms_file(stack, tmp_path):
    frames, _ = stack
    aligned, al = align_stack(np.stack(frames), AlignOptions(model="affine"))
    path = al.save(tmp_path / "t.json", [f"f{i}.png" for i in range(5)])
    data = json.loads(path.read_text())
    assert data["reference"] == 2 and data["model"] == "affine" and len(data["frames"]) == 5
    assert data["frames"][1]["path"] == "f1.png" and len(data["frames"][1]["gain"]) == 3
    np.testing.assert_allclose(np.array(data["frames"][4]["matrix"]), al.matrices[4], atol=1e-9)
    assert set(data["crop"]) == {"x", "y", "width", "height"} and len(data["steps"]) == 4


def test_identity_crop_is_full_frame():
    m = [np.eye(3)] * 3
    assert common_valid_rectangle(m, (50, 40)) == (0, 0, 50, 40)
    img = np.random.default_rng(0).random((3, 40, 50)).astype(np.float32)
    np.testing.assert_array_equal(warp_frame(img, np.eye(3), (0, 0, 50, 40)), img)


def layered_flat_stack(n=6, h=240, w=320, seed=0, max_radius=7.0):
    """A registered layered scene of flat shapes with sharp edges (like the dev set's layered stacks):
    each shape on one of n depth planes, frame i focused on plane i (disk PSF of radius
    |plane - i| * max_radius / (n - 1)), layers composited far to near so defocus spreads over
    occlusions. Nothing moves between frames."""
    rng = np.random.default_rng(seed)
    depth = np.zeros((h, w), np.int32)
    colour = np.zeros((3, h, w), np.float32) + rng.random((3, 1, 1)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for k in range(40):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(8, 50)
        if k % 2:
            m = (np.abs(xx - cx) < r) & (np.abs(yy - cy) < r * rng.uniform(0.4, 1.0))
        else:
            m = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        depth[m] = rng.integers(0, n)
        colour[:, m] = rng.random((3, 1)).astype(np.float32)

    def disk(img, radius):
        if radius < 0.5:
            return img
        k = int(np.ceil(radius))
        ky, kx = np.mgrid[-k:k + 1, -k:k + 1]
        ker = (kx ** 2 + ky ** 2 <= radius * radius).astype(np.float32)
        return cv2.filter2D(img, -1, ker / ker.sum(), borderType=cv2.BORDER_REFLECT)

    frames = []
    for i in range(n):
        out = np.zeros((3, h, w), np.float32)
        for p in range(n - 1, -1, -1):
            radius = abs(p - i) * max_radius / (n - 1)
            out = np.stack([disk(c * (depth == p), radius) for c in colour]) \
                + (1 - disk((depth == p).astype(np.float32), radius)) * out
        frames.append(np.clip(out, 0, 1))
    return frames


def corner_displacement(m, w, h):
    c = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float).T
    q = m @ c
    return float(np.sqrt(((q[:2] / q[2] - c[:2]) ** 2).sum(0)).max())


@pytest.mark.parametrize("seed", [0, 1])
def test_registered_stack_with_different_focus_gets_no_invented_motion(seed):
    """Defocus that differs between frames is not motion. Before the tile evidence check
    (mfif.align._select_model) affine ECC moved the corners of these stacks by 0.35-0.97 px
    (seeds 0-3); now 0 (every step the identity). On the dev set's registered layered stacks: up
    to 4.3 px before, 0 after."""
    frames = layered_flat_stack(seed=seed)
    h, w = frames[0].shape[-2:]
    for model in ("affine", "similarity"):
        al = estimate_alignment(frames, AlignOptions(model=model))
        assert max(corner_displacement(m, w, h) for m in al.matrices) < 0.25, model


def test_shifted_layered_stack_is_still_recovered():
    """The same scene with every frame shifted by up to 2 px: recovered to 0.25 px (measured: worst
    frame 0.19 px, the same as the translation model; focus breathing is pinned by
    test_subpixel_accuracy)."""
    frames = layered_flat_stack(seed=0)
    h, w = frames[0].shape[-2:]
    rng = np.random.default_rng(3)
    moved, truth = [], []
    for i, f in enumerate(frames):
        m = np.eye(3)
        m[:2, 2] = rng.uniform(-2, 2, 2) if i != len(frames) // 2 else 0
        truth.append(m)
        inv = np.linalg.inv(m)  # frame(y) = image(m^-1 y)
        moved.append(np.clip(np.stack([cv2.warpAffine(ch, inv[:2], (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                                      borderMode=cv2.BORDER_REFLECT) for ch in f]), 0, 1))
    al = estimate_alignment(moved, AlignOptions())
    assert displacement_error(al.matrices, truth, w, h).max() < 0.25
