"""``mfif synth`` (mfif.synth.cli / mfif.synth.write): files on disk, contact sheets, the dev set."""
import argparse
import json

import numpy as np
import pytest

from mfif.errors import InputError, OutputError
from mfif.io import read_image
from mfif.synth.cli import add_parser, main, run
from mfif.synth.write import make_devset


def _args(argv):
    parser = argparse.ArgumentParser(prog="mfif")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["synth", *argv])


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("recipe,folder,extra", [
    ("ifcnn", "bsds_like", ["--size", "48"]),
    ("hourglass", "plain_folder", ["--size", "48", "--frames", "3"]),
    ("layered", "bsds_like", ["--size", "48", "--noise", "0.01", "--jpeg", "80-95"]),
])
def test_image_recipes_write_frames_ground_truth_maps_and_sheet(recipe, folder, extra, request, tmp_path):
    out = tmp_path / "out"
    assert run(_args(["--source", str(request.getfixturevalue(folder)), "--recipe", recipe, "-n", "3",
                      "-o", str(out), "--quiet", *extra])) == 0
    frames = 3 if "--frames" in extra else 2
    letters = "ABC"[:frames]
    for i in range(3):
        name = f"{recipe}_{i:06d}"
        imgs = [read_image(out / f"{name}_{c}.png") for c in letters]
        gt = read_image(out / f"{name}_GT.png")
        maps = [read_image(out / "focus" / f"{name}_{c}.png")[0] for c in letters]
        assert all(im.shape == gt.shape == (3, 48, 48) for im in imgs)
        np.testing.assert_allclose(sum(maps), 1.0, atol=2 / 255)
        if recipe != "layered":  # hard masks: in-focus pixels are byte-identical on disk too
            for im, m in zip(imgs, maps):
                assert np.array_equal(im[:, m == 1], gt[:, m == 1])
    assert (out / "contact_sheet.png").is_file() and read_image(out / "contact_sheet.png").shape[0] == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"]["name"] == recipe and manifest["samples"] == 3 and manifest["frames"] == frames
    assert len((out / "index.csv").read_text().splitlines()) == 4


@pytest.mark.parametrize("recipe,folder", [("liu", "bsds_like"), ("ba", "alpha_like")])
def test_patch_recipes_write_patches_and_labels(recipe, folder, request, tmp_path):
    out = tmp_path / "out"
    run(_args(["--source", str(request.getfixturevalue(folder)), "--recipe", recipe, "-n", "6", "-o", str(out),
               "--quiet"]))
    size = 16 if recipe == "liu" else 64
    rows = (out / "index.csv").read_text().splitlines()[1:]
    labels = [int(r.split(",")[1]) for r in rows]
    assert labels[0::2] == [1 - x for x in labels[1::2]]  # each pair in both orders
    a, b = read_image(out / f"{recipe}_000000_A.png"), read_image(out / f"{recipe}_000001_B.png")
    assert a.shape == (1, size, size) and np.array_equal(a, b)  # item 1 is item 0 swapped
    assert (out / "contact_sheet.png").is_file()


def test_same_seed_same_bytes_on_disk(bsds_like, tmp_path):
    argv = ["--source", str(bsds_like), "--recipe", "layered", "-n", "2", "--size", "48", "--quiet", "--seed", "9"]
    run(_args(argv + ["-o", str(tmp_path / "a")]))
    run(_args(argv + ["-o", str(tmp_path / "b")]))
    run(_args(argv[:-1] + ["10", "-o", str(tmp_path / "c")]))
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b
    assert a["layered_000000_A.png"] != c["layered_000000_A.png"]


def test_bad_input(tmp_path, bsds_like, plain_folder, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no photos found"):
        run(_args(["--source", str(tmp_path / "empty"), "--recipe", "liu", "-n", "2", "-o", str(tmp_path / "o1")]))
    with pytest.raises(InputError, match="--frames must be 2"):
        run(_args(["--source", str(bsds_like), "--recipe", "liu", "-n", "2", "--frames", "3", "-o",
                   str(tmp_path / "o2")]))
    with pytest.raises(InputError, match="smaller than the 256x256 crop"):
        run(_args(["--source", str(plain_folder), "--recipe", "layered", "-n", "2", "-o", str(tmp_path / "o3")]))
    with pytest.raises(InputError, match="--psf applies to the layered recipe"):
        run(_args(["--source", str(plain_folder), "--recipe", "hourglass", "--psf", "disk", "-n", "1", "-o",
                   str(tmp_path / "o4")]))
    with pytest.raises(InputError, match="-n must be at least 1"):
        run(_args(["--source", str(plain_folder), "--recipe", "liu", "-n", "0", "-o", str(tmp_path / "o5")]))
    with pytest.raises(InputError, match="do not combine"):
        run(_args(["--source", str(plain_folder), "--devset", "--recipe", "liu", "-o", str(tmp_path / "o6")]))
    with pytest.raises(InputError, match="BSDS500 test split"):
        run(_args(["--source", str(plain_folder), "--devset", "-o", str(tmp_path / "o7")]))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.txt").write_text("x")
    with pytest.raises(OutputError, match="not empty"):
        run(_args(["--source", str(plain_folder), "--recipe", "liu", "-n", "1", "-o", str(busy)]))
    # the stand-alone entry point prints one line and exits 2
    assert main(["synth", "--source", str(tmp_path / "nope"), "--recipe", "liu", "-n", "1", "-o",
                 str(tmp_path / "o8")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "source folder not found" in err[0]


@pytest.mark.shared
def test_devset_items_are_reproducible(shared_dir, tmp_path):
    bsds = shared_dir / "data" / "train" / "bsds500"
    kw = dict(pair_ids=[0, 3], stack_ids=[1], sweep_ids=[1], stack8_ids=[0], halo_ids=[2], halo_stack_ids=[1],
              progress=False)
    make_devset(bsds, tmp_path / "a", **kw)
    make_devset(bsds, tmp_path / "b", **kw)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a == b
    for name in ("pairs/pair_000_A.png", "pairs/pair_000_B.png", "pairs/pair_000_GT.png",
                 "pairs/focus/pair_003_A.png", "stacks/stack_01/stack_01_1.png", "stacks/stack_01/stack_01_3.png",
                 "stacks/stack_01/GT.png", "stacks/stack_01/focus/stack_01_2.png", "index.csv", "README.md",
                 "sweeps/sweep_01/sweep_01_01.png", "sweeps/sweep_01/sweep_01_06.png", "sweeps/sweep_01/GT.png",
                 "sweeps/sweep_01/focus/sweep_01_03.png", "stacks8/stack8_00/stack8_00_8.png", "stacks8/stack8_00/GT.png",
                 "index_sweeps.csv", "halo/halo_02_A.png", "halo/halo_02_GT.png", "halo/focus/halo_02_B.png",
                 "halo/halo_stack_01/halo_stack_01_4.png", "halo/halo_stack_01/GT.png", "index_halo.csv"):
        assert name in a, name
    rows = (tmp_path / "a" / "index.csv").read_text().splitlines()
    assert rows[1].startswith("pair_000,pair,layered,bsds500/") and rows[2].startswith("pair_003,pair,ifcnn,")
    assert "/train/" not in (tmp_path / "a" / "index.csv").read_text()
