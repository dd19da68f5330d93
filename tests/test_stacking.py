"""Long stacks and huge images: the running reduction equals the all-in-memory method, batches fold
correctly, tiles equal one pass (to within 1/255), depth maps, 16-bit, EXIF, bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mfif.cli import main
from mfif.errors import InputError
from mfif.io import read_image_with_info
from mfif.methods import METHODS
from mfif.stacking import FrameSource, fuse_frames, fuse_stack, prepare_frames, write_depth_map
from mfif.tiling import tiled_fusion
from tests.helpers import gaussian_blur, textured_image

CLASSICAL = [name for name, spec in METHODS.items() if spec.kind == "classical"]
STREAMING = [name for name, spec in METHODS.items() if spec.stream]


def band_stack(n=5, h=72, w=100, channels=3, seed=0):
    """Frame i is sharp in vertical band i and blurred elsewhere; returns (stack, band index map)."""
    gt = textured_image(h, w, channels, seed=seed)
    blurred = gaussian_blur(gt, 2.5)
    band = np.minimum(np.arange(w) * n // w, n - 1)
    frames = [np.where((band == i)[None, None, :], gt, blurred).astype(np.float32) for i in range(n)]
    return np.stack(frames), np.broadcast_to(band, (h, w))


def test_streaming_methods_are_declared():
    assert set(STREAMING) == {"average", "gff", "sml", "dwt", "laplacian", "dct-cv", "focusnet"}


@pytest.mark.parametrize("method", STREAMING)
def test_running_reduction_equals_in_memory(method):
    stack, _ = band_stack()
    spec = METHODS[method]
    function, _ = spec.load()
    opts = spec.make_options()
    full = function(stack, opts)
    streamed = fuse_frames(stack, method, opts, stream=True)
    assert streamed.info["merge"] == "running reduction"
    np.testing.assert_allclose(streamed.fused, full.fused, atol=1e-5)
    if full.decision is not None:
        np.testing.assert_array_equal(streamed.decision, full.decision)


def test_running_reduction_reads_frames_from_disk_one_at_a_time(tmp_path, monkeypatch):
    stack, _ = band_stack(n=4)
    paths = []
    for i, frame in enumerate(stack):
        p = tmp_path / f"f{i}.png"
        Image.fromarray(np.round(np.moveaxis(frame, 0, -1) * 255).astype(np.uint8)).save(p)
        paths.append(p)
    import mfif.stacking as stacking

    decodes = []
    original = stacking.read_samples_with_info
    stacking.read_samples_with_info = lambda p: decodes.append(p) or original(p)
    try:
        frames = prepare_frames(paths, align=False)
        assert isinstance(frames, FrameSource) and frames.reads == 0 and frames.shape == (4, 3, 72, 100)
        result = fuse_frames(frames, "sml")
        # the N-frame rule: two passes; the second takes the frames the first kept (PassCache)
        assert frames.reads == 4
        assert len(decodes) == 4  # each file decoded once (prepare_frames), its samples kept
        uncached = prepare_frames(paths, align=False)
        uncached.decoded = stacking.DecodedFrames(budget=0)  # nothing kept: the passes read the files
        import mfif.stack_rule as stack_rule

        monkeypatch.setattr(stack_rule, "PASS_CACHE_BYTES", 0)
        again = fuse_frames(uncached, "sml")
        assert uncached.reads == 2 * 4
        assert len(decodes) == 4 + 4 + 8
    finally:
        stacking.read_samples_with_info = original
    np.testing.assert_allclose(again.fused, result.fused, atol=1e-5)  # kept frames: 16-bit samples
    np.testing.assert_array_equal(again.decision, result.decision)
    in_memory = METHODS["sml"].load()[0](frames.load(), METHODS["sml"].make_options())
    np.testing.assert_allclose(result.fused, in_memory.fused, atol=1e-5)


@pytest.mark.parametrize("method", ["laplacian", "dct-cv"])
def test_batches_fold_and_compose_the_depth_map(method):
    # the batch path serves methods without a running reduction (the learned ones); force it here
    stack, band = band_stack(n=7, w=140)
    result = fuse_frames(stack, method, batch_frames=3, stream=False)
    assert "batches of 3" in result.info["merge"]
    assert result.fused.shape == stack.shape[1:]
    assert result.decision.min() >= 0 and result.decision.max() <= 6
    # away from band edges, each pixel comes from the frame that is sharp there
    inner = np.abs((np.arange(140) % 20) - 10) < 6
    assert (result.decision[:, inner] == band[:, inner]).mean() > 0.9
    def detail(img):
        return np.abs(np.diff(img, axis=-1)).mean()

    assert detail(result.fused) > 1.5 * detail(stack.mean(0))
    # N <= batch_frames: exactly the method
    direct = METHODS[method].load()[0](stack, METHODS[method].make_options())
    np.testing.assert_array_equal(fuse_frames(stack, method, batch_frames=8, stream=False).fused, direct.fused)


@pytest.mark.parametrize("method", CLASSICAL)
def test_tiled_equals_untiled(method):
    stack, _ = band_stack(n=3, h=230, w=300, seed=2)
    spec = METHODS[method]
    function, _ = spec.load()
    opts = spec.make_options()
    full = function(stack, opts)
    tiled = tiled_fusion(stack, spec, opts, tile=96)
    assert np.abs(tiled.fused - full.fused).max() <= 1 / 255
    if full.decision is not None:
        assert (tiled.decision != full.decision).mean() < 1e-3


def test_tiles_run_the_global_step_on_the_full_map():
    # one tiny sharp speck: small-region removal must see the whole map, not one tile
    stack, _ = band_stack(n=2, h=200, w=200)
    opts = METHODS["sml"].make_options(area_fraction=0.05)
    full = METHODS["sml"].load()[0](stack, opts)
    tiled = tiled_fusion(stack, METHODS["sml"], opts, tile=64)
    np.testing.assert_array_equal(tiled.decision, full.decision)
    assert tiled.info["global_step"] == "full-size decision map"


def test_tiling_a_method_without_receptive_field_warns():
    from mfif.methods import MethodSpec

    spec = MethodSpec("x", "", "mfif.classical.average", "average_fusion", "AverageOptions")
    with pytest.warns(UserWarning, match="declares no receptive field"):
        result = tiled_fusion(np.full((2, 1, 64, 64), 0.5, np.float32), spec, None, tile=32)
    assert result.info["approximate"] and np.allclose(result.fused, 0.5)


def test_depth_map_values_and_files(tmp_path):
    stack, band = band_stack(n=5)
    result = fuse_frames(stack, "sml", stream=True, area_fraction=0.0)
    inner = np.abs((np.arange(100) % 20) - 10) < 6
    assert (result.decision[:, inner] == band[:, inner]).mean() > 0.95
    written = write_depth_map(tmp_path / "d.png", result.decision, 5)
    colour, info = read_image_with_info(written[0])
    assert colour.shape == (3, 72, 100) and info.bit_depth == 8
    raw = np.asarray(Image.open(written[1]))
    assert written[1].name == "d_raw.png" and raw.dtype in (np.uint16, np.int32)
    np.testing.assert_array_equal(raw, result.decision)
    # colour-coded: different frames, different colours
    assert not np.allclose(colour[:, :, 5], colour[:, :, 95])


def _save_frames(stack, folder, bits=8, exif=None, suffix=".png"):
    folder.mkdir(exist_ok=True)
    paths = []
    for i, frame in enumerate(stack):
        arr = np.moveaxis(frame, 0, -1)
        p = folder / f"f{i}{suffix}"
        if bits == 16:
            import cv2

            cv2.imwrite(str(p), np.round(arr[..., ::-1] * 65535).astype(np.uint16))
        else:
            im = Image.fromarray(np.round(arr * 255).astype(np.uint8))
            im.save(p, **({"exif": exif} if exif is not None else {}), **({"quality": 95} if suffix == ".jpg" else {}))
        paths.append(p)
    return paths


def test_cli_16bit_stack_with_alignment_gives_16bit(tmp_path, capsys):
    stack, _ = band_stack(n=3)
    paths = _save_frames(stack, tmp_path / "in", bits=16)
    out = tmp_path / "o.tif"
    code = main(["fuse", *map(str, paths), "-o", str(out), "-m", "gff", "--depth-map", str(tmp_path / "d.png"),
                 "--save-transforms", str(tmp_path / "t.json")])
    _, err = capsys.readouterr()
    assert code == 0, err
    fused, info = read_image_with_info(out)
    assert info.bit_depth == 16 and fused.shape[0] == 3
    assert (tmp_path / "d.png").exists() and (tmp_path / "d_raw.png").exists() and (tmp_path / "t.json").exists()


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_cli_copies_exif_of_the_reference_frame(tmp_path, capsys, suffix):
    stack, _ = band_stack(n=3)
    folder = tmp_path / "in"
    folder.mkdir()
    for i, frame in enumerate(stack):
        exif = Image.Exif()
        exif[0x010F] = f"maker-{i}"  # Make: tells the frames apart
        exif[0x0112] = 1
        Image.fromarray(np.round(np.moveaxis(frame, 0, -1) * 255).astype(np.uint8)).save(folder / f"f{i}.jpg", exif=exif, quality=95)
    out = tmp_path / f"o{suffix}"
    code = main(["fuse", str(folder), "-o", str(out), "-m", "average", "--no-align"])
    assert code == 0, capsys.readouterr().err
    with Image.open(out) as im:
        got = im.getexif()
    assert got.get(0x010F) == "maker-1"  # the middle (reference) frame
    assert got.get(0x0112) == 1


def test_mismatched_sizes_are_refused_even_with_align(tmp_path, capsys):
    stack, _ = band_stack(n=3)
    paths = _save_frames(stack, tmp_path / "in")
    Image.fromarray(np.zeros((60, 90, 3), np.uint8)).save(paths[1])
    for flag in ("--align", "--no-align"):
        code = main(["fuse", *map(str, paths), "-o", str(tmp_path / "o.png"), flag])
        err = capsys.readouterr().err
        assert code == 1 and "f1.png: size 90x60 differs" in err and len(err.strip().splitlines()) == 1


def test_one_frame_stack_is_one_line_error(tmp_path, capsys):
    stack, _ = band_stack(n=1)
    paths = _save_frames(stack, tmp_path / "in")
    code = main(["fuse", str(tmp_path / "in"), "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 1 and "need at least 2 frames" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(InputError, match="at least 2 frames"):
        fuse_stack(paths, "gff")


def test_save_transforms_needs_alignment(tmp_path, capsys):
    stack, _ = band_stack(n=3)
    paths = _save_frames(stack, tmp_path / "in")
    code = main(["fuse", *map(str, paths), "-o", str(tmp_path / "o.png"), "--no-align", "--save-transforms",
                 str(tmp_path / "t.json")])
    assert code == 1 and "--save-transforms needs alignment" in capsys.readouterr().err


def test_cli_tiled_matches_untiled(tmp_path, capsys):
    stack, _ = band_stack(n=2, h=150, w=170)
    paths = _save_frames(stack, tmp_path / "in")
    for name, extra in (("a.png", []), ("b.png", ["--tile", "64"])):
        assert main(["fuse", *map(str, paths), "-o", str(tmp_path / name), "-m", "gff", *extra]) == 0
    a = read_image_with_info(tmp_path / "a.png")[0]
    b = read_image_with_info(tmp_path / "b.png")[0]
    assert np.abs(a - b).max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("method", STREAMING)
def test_running_reduction_memory_does_not_grow_with_frames(method, monkeypatch):
    """numpy allocations (traced by tracemalloc) during the merge: 12 frames need no more than
    3 frames (+10 %); the frames themselves exist before tracing starts. One thread: with worker
    threads (mfif.parallel) up to that many more frames are in flight, at times that vary."""
    import tracemalloc

    monkeypatch.setenv("MFIF_THREADS", "1")

    peaks = {}
    for n in (3, 12):
        stack, _ = band_stack(n=n, h=96, w=120)
        frames = [f for f in stack]
        tracemalloc.start()
        fuse_frames(frames, method, stream=True)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[12] <= 1.1 * peaks[3], peaks


@pytest.mark.parametrize("method", ["gff", "sml"])
def test_running_reduction_in_tiles_equals_in_memory(method):
    """gff and sml run their per-frame filters tile by tile (large frames); small tiles here."""
    stack, _ = band_stack(n=4, h=150, w=170)
    spec = METHODS[method]
    module = __import__(spec.module, fromlist=[spec.stream])
    full = spec.load()[0](stack, spec.make_options())
    tiled = getattr(module, spec.stream)(list(stack), spec.make_options(), tile=40)
    np.testing.assert_allclose(tiled.fused, full.fused, atol=1e-5)
    np.testing.assert_array_equal(tiled.decision, full.decision)


@pytest.mark.parametrize("method", ["gff", "sml"])
def test_a_pair_merges_with_the_running_reduction_by_default(method, monkeypatch):
    """Peak memory flat in N includes N = 2: a pair takes the running reduction too (traced numpy
    allocations of a pair within 20 % of 12 frames), with the method's result (one thread: see
    test_running_reduction_memory_does_not_grow_with_frames)."""
    import tracemalloc

    monkeypatch.setenv("MFIF_THREADS", "1")

    stack, _ = band_stack(n=2, h=96, w=120)
    full = METHODS[method].load()[0](stack, METHODS[method].make_options())
    pair = fuse_frames(list(stack), method)
    assert pair.info["merge"] == "running reduction"
    np.testing.assert_allclose(pair.fused, full.fused, atol=1e-5)
    assert fuse_frames(list(stack), method, stream=False).weights is not None  # all maps on request
    peaks = {}
    fuse_frames(list(band_stack(n=3, h=16, w=16)[0]), method)  # first-call imports are not per-frame memory
    for n in (2, 3, 12):
        frames = list(band_stack(n=n, h=96, w=120)[0])
        tracemalloc.start()
        fuse_frames(frames, method)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # 3 and 12 frames: the N-frame rule (mfif.stack_rule), flat in N; a pair: the paper's rule
    assert peaks[3] <= 1.2 * peaks[12] and peaks[12] <= 1.2 * peaks[3], peaks
    assert peaks[2] <= 200 * 96 * 120, peaks  # bytes per pixel, whatever the rule


def test_cli_save_map_of_a_pair_keeps_the_weight_maps(tmp_path, capsys):
    stack, _ = band_stack(n=2)
    paths = _save_frames(stack, tmp_path / "in")
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "o.png"), "-m", "gff", "--save-map",
                 str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").exists() and (tmp_path / "m_weight0.png").exists()


@pytest.mark.parametrize("method", ["gff", "sml", "laplacian"])
def test_worker_threads_do_not_change_the_result(method, tmp_path, monkeypatch):
    """Decoding, alignment steps and the per-frame merge work run in worker threads
    (mfif.parallel); the reductions stay in frame order, so the result is bit-identical."""
    stack, _ = band_stack(n=5, h=90, w=110)
    paths = []
    for i, frame in enumerate(stack):
        p = tmp_path / f"f{i}.png"
        Image.fromarray(np.round(np.moveaxis(frame, 0, -1) * 255).astype(np.uint8)).save(p)
        paths.append(p)
    results = {}
    for threads in ("1", "3"):
        monkeypatch.setenv("MFIF_THREADS", threads)
        sr = fuse_stack(paths, method, align=True)
        results[threads] = sr
    np.testing.assert_array_equal(results["1"].result.fused, results["3"].result.fused)
    np.testing.assert_array_equal(results["1"].result.decision, results["3"].result.decision)
    for a, b in zip(results["1"].alignment.matrices, results["3"].alignment.matrices):
        np.testing.assert_array_equal(a, b)
