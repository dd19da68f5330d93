"""Blur kernels and schedules (mfif.synth.blur).

Reference numbers: IFCNN's sigma rule 0.3 (kr - 1) + 0.8 (Zhang et al. 2020, Eq. 4 footnote =
OpenCV's getGaussianKernel rule for size 2 kr + 1); Liu's schedule (sigma 2, 7x7, cumulative)
checked against an explicit 2-D convolution with the outer-product kernel.
"""
import cv2
import numpy as np
import pytest

from mfif.synth import blur


def test_ifcnn_sigma_schedule_matches_opencv_rule():
    assert blur.ifcnn_sigma(1) == pytest.approx(0.8)
    assert blur.ifcnn_sigma(15) == pytest.approx(5.0)
    for kr in range(5, 16):
        # OpenCV's default sigma for ksize = 2 kr + 1 is the same rule (sizes <= 9 use fixed tables)
        k = cv2.getGaussianKernel(2 * kr + 1, 0)
        k2 = cv2.getGaussianKernel(2 * kr + 1, blur.ifcnn_sigma(kr))
        np.testing.assert_allclose(k, k2, atol=1e-9)


def test_liu_levels_are_cumulative_7x7_sigma2():
    rng = np.random.default_rng(0)
    img = rng.random((40, 50)).astype(np.float32)
    levels = blur.liu_blur_levels(img, 5)
    k = blur.gaussian_kernel(2.0, 7)
    assert k.shape == (7, 7) and k.sum() == pytest.approx(1.0, abs=1e-6)
    ref = img
    for lev in levels:
        ref = cv2.filter2D(ref, -1, k, borderType=cv2.BORDER_REFLECT_101)
        np.testing.assert_allclose(lev, ref, atol=1e-5)
    # each level is blurrier than the one before
    var = [float(np.var(np.diff(x, axis=1))) for x in [img] + levels]
    assert all(a > b for a, b in zip(var, var[1:]))


@pytest.mark.parametrize("radius", [0.0, 0.4, 1.0, 2.5, 4.0])
def test_disk_kernel_sums_to_one_and_is_symmetric(radius):
    k = blur.disk_kernel(radius)
    assert k.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(k, k.T, atol=1e-7)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)
    if radius < 0.5:
        assert k.shape == (1, 1)
    else:
        # the covered area is close to pi r^2 (in units of the centre weight)
        area = k.sum() / k.max()
        assert area == pytest.approx(np.pi * radius ** 2, rel=0.1)


@pytest.mark.parametrize("radius", [3.0, 7.5, 13.0])
def test_defocus_blur_keeps_constants_and_stays_within_support(radius):
    const = np.full((64, 64, 2), 0.3, np.float32)
    np.testing.assert_allclose(blur.defocus_blur(const, radius), 0.3, atol=1e-5)
    delta = np.zeros((80, 80), np.float32)
    delta[40, 40] = 1.0
    out = blur.defocus_blur(delta, radius)
    assert out.sum() == pytest.approx(1.0, abs=1e-4)
    ys, xs = np.nonzero(out)
    s = blur.defocus_support(radius)
    assert max(abs(ys - 40).max(), abs(xs - 40).max()) <= s
    # the blur reaches roughly the radius
    assert max(abs(ys - 40).max(), abs(xs - 40).max()) >= radius - 1


def test_coc_radius_zero_inside_depth_of_field_and_linear_outside():
    assert blur.coc_radius(0.30, 0.25, 10.0, dof=0.1) == 0.0
    assert blur.coc_radius(0.60, 0.25, 10.0, dof=0.1) == pytest.approx(2.5)
    r = blur.coc_radius(np.array([0.0, 0.5, 1.0]), 0.5, 8.0)
    np.testing.assert_allclose(r, [4.0, 0.0, 4.0])


def test_psf_blur_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown PSF"):
        blur.psf_blur(np.zeros((4, 4), np.float32), "box", 1.0)
