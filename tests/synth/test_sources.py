"""Photo folders and bad input (mfif.synth.sources)."""
import warnings

import numpy as np
import pytest

from mfif.errors import InputError
from mfif.synth.sources import PhotoSource, read_label_map, scan_folder

from synth_helpers import make_labels, make_photo, write_png


def test_bsds_layout_pairs_masks_by_stem_and_holds_out_test(bsds_like):
    src = PhotoSource.from_folder(bsds_like)
    assert len(src) == 4  # train only: the test split is held out by default
    assert all(e.image.parent.name == "train" for e in src.entries)
    assert all(len(e.label_maps) == 2 and e.alpha is None for e in src.entries)
    assert [p.stem for p in src[0].label_maps] == ["train0_1", "train0_2"]
    test = PhotoSource.from_folder(bsds_like, split="test")
    assert len(test) == 3 and all("test" in str(e.label_maps[0]) for e in test.entries)
    assert src.image(0).shape == (72, 88, 3) and src.image(0).dtype == np.float32
    assert src.label_map(0, 1).max() == 5


def test_alpha_and_plain_subfolders_are_combined(alpha_like):
    src = PhotoSource.from_folder(alpha_like)
    assert len(src) == 6
    assert len(src.with_alpha()) == 3 and len(src.without_alpha()) == 3
    a = src.alpha(src.with_alpha()[0])
    assert a.shape == (140, 150) and a.min() == 0.0 and a.max() == 1.0


def test_plain_folder_without_masks(plain_folder):
    src = PhotoSource.from_folder(plain_folder)
    assert len(src) == 6 and all(not e.label_maps and e.alpha is None for e in src.entries)
    assert src[0].size == (80, 96)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(InputError, match="not found"):
        PhotoSource.from_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no photos found"):
        PhotoSource.from_folder(tmp_path / "empty")
    f = write_png(tmp_path / "one.png", make_photo(np.random.default_rng(0), 8, 8))
    with pytest.raises(InputError, match="is a file"):
        PhotoSource.from_folder(f)


def test_unreadable_photo_is_named(tmp_path):
    d = tmp_path / "broken"
    write_png(d / "good.png", make_photo(np.random.default_rng(0), 30, 30))
    (d / "bad.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(InputError, match=r"bad\.jpg"):
        PhotoSource.from_folder(d)
    (d / "bad.jpg").write_bytes(b"")
    with pytest.raises(InputError, match=r"bad\.jpg: file is empty"):
        PhotoSource.from_folder(d)


def test_mask_of_wrong_size_is_refused_at_scan_and_at_load(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "wrong"
    write_png(d / "a.png", make_photo(rng, 40, 50))
    write_png(d / "masks" / "a.png", make_labels(rng, 40, 49))
    with pytest.raises(InputError, match=r"masks/a\.png: mask size 49x40 differs from its photo"):
        PhotoSource.from_folder(d)
    lazy = PhotoSource.from_folder(d, check=False)
    with pytest.raises(InputError, match="mask size 49x40"):
        lazy.label_map(0)


def test_photos_smaller_than_the_crop(plain_folder):
    src = PhotoSource.from_folder(plain_folder)
    with pytest.raises(InputError, match=r"all 6 photos are smaller than the 128x128 crop"):
        src.require_min_side(128)
    write_png(plain_folder / "big.png", make_photo(np.random.default_rng(5), 130, 140))
    src = PhotoSource.from_folder(plain_folder)
    with pytest.warns(UserWarning, match="skipping 6 of 7 photos"):
        kept = src.require_min_side(128)
    assert len(kept) == 1 and kept[0].image.name == "big.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert src.require_min_side(64) is src


def test_label_maps_rgb_and_split_errors(tmp_path, bsds_like):
    rgb = np.zeros((6, 6, 3), np.uint8)
    rgb[:3] = (255, 0, 0)
    rgb[3:, :2] = (0, 0, 255)
    lab = read_label_map(write_png(tmp_path / "rgb.png", rgb))
    assert lab.shape == (6, 6) and len(np.unique(lab)) == 3
    with pytest.raises(InputError, match="no split 'val'"):
        scan_folder(bsds_like, split="val")


@pytest.mark.shared
def test_shared_training_folders(shared_dir):
    src = PhotoSource.from_folder(shared_dir / "data" / "train")
    by = {}
    for e in src.entries:
        by.setdefault(e.collection, []).append(e)
    assert len(by["bsds500"]) == 300  # train + val; test held out
    assert len(by["coco128-seg"]) == 128 and all(len(e.label_maps) == 1 for e in by["coco128-seg"])
    assert len(by["alphamatting"]) == 27 and all(e.alpha is not None for e in by["alphamatting"])
    assert all(4 <= len(e.label_maps) <= 9 for e in by["bsds500"])
