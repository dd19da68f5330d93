"""The halo dev set (mfif.synth.halo): deterministic files, frames equal to the ground truth where
their plane is sharp and no blurred layer reaches, and the glow of blurred bright detail present."""
from __future__ import annotations

import csv
import numpy as np
import pytest

from mfif.metrics.boundary import boundary_band
from mfif.synth.blur import defocus_support
from mfif.synth.halo import HALO_KINDS, halo_pair, halo_stack, paint_detail
from mfif.synth.sources import PhotoSource
from mfif.synth.write import write_halo


@pytest.fixture
def source(bsds_like):
    return PhotoSource.from_folder(bsds_like, split="test")


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_detail_is_bright_fine_and_antialiased():
    colour, cover = paint_detail(321, 481, np.random.default_rng(0))
    assert colour.shape == (3, 321, 481) and cover.shape == (321, 481)
    assert 0.005 < cover.mean() < 0.1  # fine detail: a small share of the frame
    assert ((cover > 0.05) & (cover < 0.95)).any()  # anti-aliased edges
    # bright: every element's max channel is >= 0.85 (pixels mixing two elements average them)
    assert np.median(colour.max(axis=0)[cover > 0.5]) >= 0.85


def test_write_halo_is_deterministic_with_maps_and_index(source, tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        write_halo(source, tmp_path / d, seed=7, offset=0, pair_ids=[0, 1, 2], stack_ids=[0, 2], progress=False)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a == b
    for name in ("halo/halo_00_A.png", "halo/halo_02_B.png", "halo/halo_01_GT.png", "halo/focus/halo_00_A.png",
                 "halo/halo_stack_00/halo_stack_00_3.png", "halo/halo_stack_02/halo_stack_02_5.png",
                 "halo/halo_stack_02/GT.png", "halo/halo_stack_02/focus/halo_stack_02_1.png", "index_halo.csv",
                 "contact_sheet_halo.png"):
        assert name in a, name
    assert "halo/halo_stack_02/halo_stack_02_6.png" not in a  # stack j has 3 + j % 3 frames
    rows = list(csv.DictReader(open(tmp_path / "a" / "index_halo.csv")))
    assert [r["name"] for r in rows] == ["halo_00", "halo_01", "halo_02", "halo_stack_00", "halo_stack_02"]
    assert [r["frames"] for r in rows] == ["2", "2", "2", "3", "5"]


@pytest.mark.parametrize("index", [1, 4])  # 'detail behind' pairs (the others have floating detail
def test_frames_match_gt_where_sharp_and_out_of_reach_of_blur(source, index):  # within reach everywhere at 72x88)
    s = halo_pair(source, index, 3, offset=0)
    assert s.info["kind"] == "detail behind"
    np.testing.assert_array_equal(s.focus.sum(0), 1.0)
    reach = defocus_support(s.info["max_radius"]) + 1  # how far the largest blur spreads a value
    checked = 0
    for k in range(len(s.frames)):
        blurred = (s.blur[k] > 0).astype(np.int32)
        far = (s.blur[k] == 0) & ~boundary_band(blurred, reach)
        checked += far.sum()
        if far.any():
            assert np.abs(s.frames[k] - s.gt)[:, far].max() < 1e-4
    assert checked > 0


def test_stack_frames_are_near_to_far(source):
    s = halo_stack(source, 1, 3, offset=0)  # 3 + 1 % 3 = 4 frames: background, 2 occluders, detail
    assert s.info["layers"] == ["background", "occluder", "occluder", "detail"]
    assert s.info["focus_planes"] == [3, 2, 1, 0]  # layers are far -> near, frames near -> far
    for k, plane in enumerate(s.info["focus_planes"]):
        radii = s.info["plane_radii"][k]
        assert radii[plane] == 0 and min(r for i, r in enumerate(radii) if i != plane) > 1
    assert max(max(r) for r in s.info["plane_radii"]) == pytest.approx(s.info["max_radius"], rel=1e-2)
    np.testing.assert_array_equal(s.focus.sum(0), 1.0)


def test_blurred_bright_detail_glows_over_the_sharp_background(source):
    s = halo_pair(source, 0, 3, offset=0)
    assert s.info["kind"] == HALO_KINDS[0] and s.info["max_radius"] >= 8
    far = int(np.argmax([r[0] == 0 for r in s.info["plane_radii"]]))  # the frame focused on the background
    labels = np.argmax(s.focus, axis=0)
    # background pixels (in focus in the far frame) next to the detail: the far frame carries the glow
    ring = (labels == far) & boundary_band(labels, 3)
    glow = np.abs(s.frames[far] - s.gt).max(axis=0)[ring]
    assert ring.any() and glow.mean() > 0.01
