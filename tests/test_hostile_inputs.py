"""Hostile input (issue 18): decompression bombs in every format, symbolic link loops, outputs
left behind on failure, and the small CLI defects. Every case must end in one ``mfif: error:``
line naming the file, exit code 1, and no new file."""
from __future__ import annotations

import os
import struct
import time
import warnings
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from mfif.cli import main
from mfif.errors import InputError
from mfif.io import all_or_nothing, read_image, read_image_with_info, write_image
from mfif.pixel_budget import DEFAULT_MAX_PIXELS, check_pixels, pillow_open, set_max_pixels
from tests.helpers import textured_image


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(code, err, *fragments):
    assert code == 1, err
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("mfif: error: "), err
    assert "internal error" not in err and "Traceback" not in err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture(autouse=True)
def _default_budget():
    set_max_pixels(None)
    yield
    set_max_pixels(None)


def _tiff_bomb(path, side=30000, tile=1024):
    """A real, decodable tiled zlib TIFF declaring side x side grey pixels: each tile is the same
    pre-compressed block of zeros, so the file is ~1 MB and takes milliseconds to make (the
    issue's reproduction compresses 900 tiles itself)."""
    block = zlib.compress(bytes(tile * tile), 9)
    n = (-(-side // tile)) ** 2
    tifffile.imwrite(path, (block for _ in range(n)), shape=(side, side), dtype=np.uint8,
                     tile=(tile, tile), compression="zlib")
    return path


def _png_declaring(path, width, height):
    """A PNG whose header declares width x height (8-bit grey); the data is one short row."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def _jpeg_declaring(path, width, height):
    """A small real JPEG whose SOF0 header is patched to declare width x height."""
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path, quality=90)
    data = bytearray(path.read_bytes())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def pair(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    write_image(a, textured_image(32, 40, 3, seed=1))
    write_image(b, textured_image(32, 40, 3, seed=2))
    return a, b


# ---------------------------------------------------------------------------------------------
# defect 1: the pixel budget, every format, before decoding


def test_tiff_bomb_is_refused_before_decoding(tmp_path, capsys):
    bomb = _tiff_bomb(tmp_path / "bomb.tif")
    assert bomb.stat().st_size < 2_000_000
    start = time.perf_counter()
    code, _, err = _run(capsys, "fuse", bomb, bomb, "-o", tmp_path / "f.png", "-m", "average")
    # on main this decoded 900 MP (8 GB resident, tens of seconds); refused from the header now
    assert time.perf_counter() - start < 5
    _one_error_line(code, err, "bomb.tif", "30000x30000", "pixel budget", "--max-pixels")
    assert not (tmp_path / "f.png").exists()


@pytest.mark.parametrize("maker,name", [(_png_declaring, "big.png"), (_jpeg_declaring, "big.jpg")])
def test_oversized_png_and_jpeg_are_one_line(tmp_path, capsys, maker, name):
    big = maker(tmp_path / name, 20000, 20000)  # 400 MP > the 268 MP default budget
    for argv in (["fuse", big, big, "-o", tmp_path / "f.png"], ["metrics", big, big, big]):
        code, _, err = _run(capsys, *argv)
        _one_error_line(code, err, name, "20000x20000", "pixel budget")
    assert not (tmp_path / "f.png").exists()


def test_synth_refuses_an_oversized_photo_in_one_line(tmp_path, capsys):
    src = tmp_path / "photos"
    src.mkdir()
    _png_declaring(src / "huge.png", 20000, 20000)
    code, _, err = _run(capsys, "synth", "--source", src, "--recipe", "ifcnn", "-n", "1", "-o", tmp_path / "out")
    _one_error_line(code, err, "huge.png", "pixel budget")


def test_budget_is_configurable_and_applies_to_tiff_pages(tmp_path, capsys, pair):
    # 32x40 = 1280 pixels: a budget of 1000 refuses it, in every format and on the command line
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((32, 40), np.uint8))
    set_max_pixels(1000)
    for path in (pair[0], tmp_path / "a.tif"):
        with pytest.raises(InputError, match="40x32 .* over the pixel budget"):
            read_image(path)
    set_max_pixels(None)
    code, _, err = _run(capsys, "fuse", *pair, "-o", tmp_path / "f.png", "--max-pixels", "1000")
    _one_error_line(code, err, "a.png", "= 1280 pixels, over the pixel budget of 1000 pixels")
    code, _, err = _run(capsys, "--max-pixels", "1000", "metrics", pair[0], pair[1], pair[0])
    _one_error_line(code, err, "a.png", "pixel budget")
    code, _, err = _run(capsys, "fuse", *pair, "-o", tmp_path / "f.png", "--max-pixels", "lots")
    _one_error_line(code, err, "--max-pixels", "'lots'")
    assert main(["fuse", str(pair[0]), str(pair[1]), "-o", str(tmp_path / "f.png"), "--max-pixels", "2000", "-q"]) == 0


def test_a_legitimate_large_png_opens_without_pillows_bomb_warning(tmp_path):
    # 12000 x 12000 is over Pillow's 89 MP warning threshold but inside mfif's budget
    big = _png_declaring(tmp_path / "legit.png", 12000, 12000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pillow_open(big) as im:
            assert im.size == (12000, 12000)
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own limit is left in place for others
    check_pixels(big, 16384, 16384)  # the default budget admits 16384^2
    with pytest.raises(InputError):
        check_pixels(big, 16385, 16384)
    assert DEFAULT_MAX_PIXELS == 16384 * 16384


# ---------------------------------------------------------------------------------------------
# defect 2: symbolic link loops


def test_symlink_loop_is_an_input_error(tmp_path, capsys, pair):
    loop = tmp_path / "loop.png"
    os.symlink(loop, loop)
    code, _, err = _run(capsys, "fuse", pair[0], loop, "-o", tmp_path / "f.png")
    _one_error_line(code, err, "loop.png", "symbolic link")
    code, _, err = _run(capsys, "metrics", pair[0], loop, pair[1])
    _one_error_line(code, err, "loop.png", "symbolic link")
    assert not (tmp_path / "f.png").exists()


# ---------------------------------------------------------------------------------------------
# defect 3: nothing left behind on failure


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_depth_map_of_average_fails_before_writing(tmp_path, capsys, pair):
    before = _listing(tmp_path)
    code, _, err = _run(capsys, "fuse", *pair, "-o", tmp_path / "f.png", "-m", "average", "--depth-map", tmp_path / "d.png")
    _one_error_line(code, err, "average", "depth map")
    assert _listing(tmp_path) == before


def test_transforms_in_a_missing_folder_fail_before_any_work(tmp_path, capsys, pair, monkeypatch):
    import mfif.stacking

    def no_work(*args, **kwargs):
        raise AssertionError("fusion ran although an output could not be written")

    monkeypatch.setattr(mfif.stacking, "fuse_stack", no_work)
    before = _listing(tmp_path)
    code, _, err = _run(capsys, "fuse", *pair, pair[0], "-o", tmp_path / "f.png", "--save-transforms",
                        tmp_path / "nodir" / "t.json")
    _one_error_line(code, err, "t.json", "does not exist")
    assert _listing(tmp_path) == before


def test_a_failure_while_writing_the_second_output_removes_the_first(tmp_path, capsys, pair, monkeypatch):
    import mfif.stacking

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mfif.stacking, "write_depth_map", disk_full)
    (tmp_path / "f.png").write_bytes(b"old")  # an existing output stays as it was
    before = _listing(tmp_path)
    code, _, err = _run(capsys, "fuse", *pair, "-o", tmp_path / "f.png", "-m", "sml", "--depth-map", tmp_path / "d.png")
    assert code == 1, err
    assert _listing(tmp_path) == before and (tmp_path / "f.png").read_bytes() == b"old"


# ---------------------------------------------------------------------------------------------
# defect 6: the smaller ones


def test_replaced_output_keeps_its_permissions(tmp_path, pair):
    out = tmp_path / "f.png"
    out.write_bytes(b"old")
    os.chmod(out, 0o600)
    assert main(["fuse", str(pair[0]), str(pair[1]), "-o", str(out), "-q"]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    assert read_image(out).shape == (3, 32, 40)


def test_jpeg_output_reports_the_bits_it_holds(tmp_path, capsys, pair):
    code, out, err = _run(capsys, "fuse", *pair, "-o", tmp_path / "f.jpg", "--bit-depth", "16")
    assert code == 0, err
    assert "(8-bit" in out and "16-bit" not in out
    assert [l for l in err.splitlines() if l] == ["mfif: warning: JPEG cannot hold 16 bits; writing 8 bits"]


def test_alpha_warning_once_and_one_line(tmp_path, capsys, pair):
    rgba = np.dstack([np.full((32, 40, 3), 90, np.uint8), np.full((32, 40), 200, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    code, _, err = _run(capsys, "fuse", pair[0], tmp_path / "alpha.png", pair[1], "-o", tmp_path / "f.png",
                        "--no-align")
    assert code == 0, err
    lines = [l for l in err.splitlines() if l]
    assert lines == [f"mfif: warning: {tmp_path / 'alpha.png'}: alpha channel dropped"], err


def test_folder_of_stack_folders_points_to_batch(tmp_path, capsys, pair):
    for name in ("s1", "s2"):
        (tmp_path / "stacks" / name).mkdir(parents=True)
        write_image(tmp_path / "stacks" / name / "x.png", textured_image(8, 8, 1))
    code, _, err = _run(capsys, "fuse", tmp_path / "stacks", "-o", tmp_path / "f.png")
    _one_error_line(code, err, "no image files", "2 stack folder(s)", "--batch")


# ---------------------------------------------------------------------------------------------
# defect 4: bad weights files, one line for every loader


class _Payload:
    """Unpickling this runs a command: what a hostile weights file does to ``weights_only=False``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bad_weights(tmp_path):
    import pickle

    import torch

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(_Payload(tmp_path / "PWNED"), protocol=4))
    torch.save({"w": torch.zeros(4)}, tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pt").write_text("hello, I am not a weights file")
    return {"evil.pt": "Python objects other than tensors", "truncated.pt": "truncated or damaged",
            "text.pt": "starts with b'hell"}


@pytest.mark.parametrize("method,expected", [("ifcnn-max", "IFCNN weights"), ("cnn", "Liu CNN weights"),
                                             ("ba", "BA weights"), ("hf-seg", "hourglass")])
def test_bad_weights_are_one_line_for_every_loader(tmp_path, capsys, pair, method, expected):
    for name, reason in _bad_weights(tmp_path).items():
        code, _, err = _run(capsys, "fuse", *pair, "-o", tmp_path / "f.png", "-m", method, "--weights", tmp_path / name)
        _one_error_line(code, err, name, "not a readable torch weights file", reason,
                        *([expected] if name != "text.pt" else []))  # (cnn checks the magic bytes itself)
        assert "weights_only" not in err
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "f.png").exists()


def test_list_verbose_shows_each_methods_own_defaults(capsys):
    code, out, _ = _run(capsys, "list", "-v")
    assert code == 0
    lines = {l.split(":")[0].strip(): l for l in out.splitlines() if l.startswith("  ")}
    for name, rule in (("ifcnn-max", "max"), ("ifcnn-mean", "mean"), ("ifcnn-sum", "sum")):
        assert f"fuse_rule='{rule}'" in lines[name], lines[name]


def test_ctrl_c_is_answered_at_once_during_a_long_c_call(tmp_path, capsys, pair, monkeypatch):
    """Ctrl-C arriving while the work sits in C code (simulated: SIGINT blocked in the working
    thread for 2.5 s, as during OpenCV's ECC) ends the command within a second, writing nothing."""
    import signal
    import threading

    import mfif.stacking

    real = mfif.stacking.fuse_stack

    started = []

    def stuck_in_c(*args, **kwargs):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        started.append(time.perf_counter())
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()  # Ctrl-C, mid-work
        try:
            time.sleep(2.5)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        return real(*args, **kwargs)

    monkeypatch.setattr(mfif.stacking, "fuse_stack", stuck_in_c)
    # a terminal's Ctrl-C: Python's handler (a shell starts background jobs, e.g. `pytest &`, with
    # SIGINT ignored, and then no Ctrl-C reaches the command at all)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code, _, err = _run(capsys, "fuse", *pair, "-o", tmp_path / "f.png")
    finally:
        signal.signal(signal.SIGINT, before)
    assert code == 130 and "mfif: interrupted" in err
    assert time.perf_counter() - started[0] < 1.5
    time.sleep(3)  # the abandoned worker finishes its "C call" and must still write nothing
    assert not (tmp_path / "f.png").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # and the next command in this process writes as usual
    monkeypatch.setattr(mfif.stacking, "fuse_stack", real)
    assert main(["fuse", str(pair[0]), str(pair[1]), "-o", str(tmp_path / "f.png"), "-q"]) == 0
    with all_or_nothing():
        write_image(tmp_path / "g.png", textured_image(8, 8, 1))
    assert (tmp_path / "f.png").exists() and (tmp_path / "g.png").exists()


def test_ctrl_c_whose_exception_is_swallowed_still_ends_the_wait():
    """Python drops a KeyboardInterrupt raised while the main thread runs a finaliser (``__del__``,
    gc), and a host program may have its own SIGINT handler that raises nothing; the handler of
    run_interruptibly also sets a flag, so the wait ends anyway. Simulated both ways."""
    import signal

    import pytest

    from mfif.interrupt import run_interruptibly

    def work():
        try:
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        except KeyboardInterrupt:
            pass  # swallowed, as in a finaliser
        time.sleep(3.0)

    calls = []
    for host_handler in (signal.default_int_handler, lambda signum, frame: calls.append(signum)):
        before = signal.signal(signal.SIGINT, host_handler)
        try:
            t0 = time.perf_counter()
            with pytest.raises(KeyboardInterrupt):
                run_interruptibly(work)
            assert time.perf_counter() - t0 < 1.5
            assert signal.getsignal(signal.SIGINT) is host_handler  # restored
        finally:
            signal.signal(signal.SIGINT, before)
    assert calls == [signal.SIGINT]  # the host's own handler still ran
