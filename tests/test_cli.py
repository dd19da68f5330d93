"""The `mfif` command: fuse real pairs and a real stack with every classical method, 16-bit
round trip, and every bad input as a one-line message with exit code 1 and no traceback."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from mfif.cli import main
from mfif.io import read_image_with_info
from mfif.methods import METHODS

CLASSICAL = [name for name, spec in METHODS.items() if spec.kind == "classical"]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code, err, *fragments):
    assert code == 1
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("mfif: error: ") and "Traceback" not in err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture(scope="module")
def pcb_small(shared_dir, tmp_path_factory):
    """The 7-frame pcb stack downscaled to 256x192 (keeps CI fast)."""
    out = tmp_path_factory.mktemp("pcb")
    for p in sorted((shared_dir / "data/mf-stacks/pcb").glob("*.jpg")):
        im = cv2.imread(str(p))
        cv2.imwrite(str(out / (p.stem + ".png")), cv2.resize(im, (256, 192), interpolation=cv2.INTER_AREA))
    return out


@pytest.mark.parametrize("method", CLASSICAL)
def test_fuse_real_pair(method, shared_dir, tmp_path, capsys):
    d = shared_dir / "data/mf-real/mfifb"
    a, b = d / "aymaz_01_A.png", d / "aymaz_01_B.png"
    out = tmp_path / "f.png"
    code, stdout, _ = _run(capsys, "fuse", a, b, "-o", out, "--method", method, "--save-map", tmp_path / "m.png")
    assert code == 0 and out.exists() and method in stdout
    fused, info = read_image_with_info(out)
    src, _ = read_image_with_info(a)
    assert fused.shape == src.shape and info.bit_depth == 8
    assert (tmp_path / "m.png").exists()


@pytest.mark.parametrize("method", CLASSICAL)
def test_fuse_seven_frame_stack_folder(method, pcb_small, tmp_path, capsys):
    out = tmp_path / "pcb.png"
    code, _, err = _run(capsys, "fuse", pcb_small, "-o", out, "-m", method)
    assert code == 0, err
    fused, _ = read_image_with_info(out)
    # alignment is on by default for > 2 frames: the invalid border is cropped (a few pixels here)
    assert fused.shape[0] == 3 and 180 <= fused.shape[1] <= 192 and 240 <= fused.shape[2] <= 256
    if method != "average":  # sharper than the mean of the frames
        grey = cv2.cvtColor((np.moveaxis(fused, 0, -1) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        frames = np.stack([cv2.imread(str(p), 0) for p in sorted(pcb_small.glob("*.png"))]).astype(np.float32)
        mean_lap = cv2.Laplacian(frames.mean(0), cv2.CV_32F).var()
        assert cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F).var() > mean_lap


def test_glob_input(pcb_small, tmp_path, capsys):
    code, _, err = _run(capsys, "fuse", str(pcb_small / "pcb_00[1-3].png"), "-o", tmp_path / "o.jpg", "-m", "laplacian")
    assert code == 0, err


def test_16bit_in_16bit_out_exact(tmp_path, capsys):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 65536, size=(24, 32, 3), dtype=np.uint16)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), raw)
    code, _, err = _run(capsys, "fuse", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "o.tif", "-m", "average")
    assert code == 0, err
    back, info = read_image_with_info(tmp_path / "o.tif")
    assert info.bit_depth == 16
    np.testing.assert_array_equal(np.round(np.moveaxis(back, 0, -1) * 65535).astype(np.uint16), raw[..., ::-1])
    code, _, _ = _run(capsys, "fuse", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "o8.png", "--bit-depth", "8")
    assert code == 0 and read_image_with_info(tmp_path / "o8.png")[1].bit_depth == 8


def test_list(capsys):
    code, out, _ = _run(capsys, "list")
    assert code == 0
    for name in CLASSICAL:
        assert name in out


@pytest.fixture
def pair(tmp_path):
    img = (np.random.default_rng(1).random((16, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(img[::-1]).save(tmp_path / "b.png")
    return tmp_path / "a.png", tmp_path / "b.png"


def test_error_missing_file(pair, tmp_path, capsys):
    code, _, err = _run(capsys, "fuse", pair[0], tmp_path / "ghost.png", "-o", tmp_path / "o.png")
    _assert_one_line_error(code, err, "ghost.png", "file not found")


def test_error_truncated_file(pair, tmp_path, capsys):
    data = pair[1].read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 3])
    code, _, err = _run(capsys, "fuse", pair[0], tmp_path / "cut.png", "-o", tmp_path / "o.png")
    _assert_one_line_error(code, err, "cut.png", "truncated or corrupt")
    assert not (tmp_path / "o.png").exists()


def test_error_one_frame(pair, tmp_path, capsys):
    code, _, err = _run(capsys, "fuse", pair[0], "-o", tmp_path / "o.png")
    _assert_one_line_error(code, err, "at least 2 frames", "a.png")


def test_error_mismatched_sizes(pair, tmp_path, capsys):
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "small.png")
    code, _, err = _run(capsys, "fuse", pair[0], tmp_path / "small.png", "-o", tmp_path / "o.png")
    _assert_one_line_error(code, err, "small.png", "size 12x10 differs", "16x16")


def test_mixed_grey_and_colour_is_converted(pair, tmp_path, capsys):
    Image.fromarray(np.full((16, 16), 100, np.uint8)).save(tmp_path / "grey.png")
    code, _, err = _run(capsys, "fuse", pair[0], tmp_path / "grey.png", "-o", tmp_path / "o.png")
    assert code == 0, err
    # the CLI prints a warning as one 'mfif: warning:' line, without Python's file:line prefix
    warning_lines = [l for l in err.splitlines() if "converting grey frame" in l]
    assert len(warning_lines) == 1 and warning_lines[0].startswith("mfif: warning: mixed grey"), err
    assert read_image_with_info(tmp_path / "o.png")[0].shape[0] == 3


def test_error_unknown_method(pair, tmp_path, capsys):
    code, _, err = _run(capsys, "fuse", *pair, "-o", tmp_path / "o.png", "-m", "magic")
    _assert_one_line_error(code, err, "unknown method 'magic'", "gff")


def test_error_unknown_option(pair, tmp_path, capsys):
    code, _, err = _run(capsys, "fuse", *pair, "-o", tmp_path / "o.png", "-m", "sml", "--opt", "radius_of_doom=3")
    _assert_one_line_error(code, err, "radius_of_doom", "window_radius")


def test_error_output_is_an_input(pair, capsys):
    before = pair[1].read_bytes()
    code, _, err = _run(capsys, "fuse", *pair, "-o", pair[1])
    _assert_one_line_error(code, err, "b.png", "one of the input files")
    assert pair[1].read_bytes() == before


def test_error_unwritable_output_dir(pair, tmp_path, capsys, monkeypatch):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(ro) else real_access(p, mode))
    code, _, err = _run(capsys, "fuse", *pair, "-o", ro / "o.png")
    _assert_one_line_error(code, err, "ro/o.png", "not writable")
    code, _, err = _run(capsys, "fuse", *pair, "-o", tmp_path / "nowhere" / "o.png")
    _assert_one_line_error(code, err, "does not exist")


def test_entry_point_exit_codes(pair, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "mfif.cli", "fuse", *map(str, pair), "-o", str(tmp_path / "o.png")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "mfif.cli", "fuse", str(pair[0]), "-o", str(tmp_path / "p.png")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


def test_depth_map_needs_a_method_that_chooses_frames(tmp_path, capsys):
    # the mean of the frames (uniform weights with --save-map, none in the running reduction)
    # chooses no frame: a one-line error, found from the result, not from the method's name
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8))
    for extra in ((), ("--save-map", tmp_path / "m.png")):
        code, _, err = _run(capsys, "fuse", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "o.png",
                            "-m", "average", "--depth-map", tmp_path / "d.png", *extra)
        _assert_one_line_error(code, err, "does not choose a frame per pixel")
    code, _, err = _run(capsys, "fuse", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "o2.png",
                        "-m", "sml", "--depth-map", tmp_path / "d.png", "--save-map", tmp_path / "m2.png")
    assert code == 0, err


def test_closed_output_pipe_is_not_an_internal_error():
    """`mfif list | head -1`: the reader closes the pipe early; mfif stops quietly, no traceback."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "mfif.cli", "list", "-v"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # before mfif writes anything
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "internal error" not in err and "Traceback" not in err and "Exception ignored" not in err, err
