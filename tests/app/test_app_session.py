"""The app's state without a browser: fusion jobs and their events, the preview-first path for big
stacks, retouch with undo/redo and re-applied strokes, zoom crops, export with EXIF and ICC."""
from __future__ import annotations


import time

import numpy as np
import pytest

from mfif.app import session as session_module
from mfif.app.browser import write_test_stack
from mfif.app.session import AppSession
from mfif.errors import InputError
from mfif.io import read_image, to_integer_image, write_image


def _finish(session: AppSession, jid: str) -> list[dict]:
    deadline = time.monotonic() + 120
    while True:
        events, finished = session.events(jid, 0)
        if finished:
            return events
        if time.monotonic() > deadline:
            raise TimeoutError(events)
        time.sleep(0.02)


@pytest.fixture
def session(tmp_path):
    write_test_stack(tmp_path / "stack", n=3, height=48, width=60)
    s = AppSession(tmp_path)
    s.open("stack")
    yield s
    s.close()


def test_fusion_job_events_and_result(session):
    events = _finish(session, session.start_fusion(["gff", "average"], align=False))
    kinds = [e["event"] for e in events]
    assert kinds.count("result") == 2 and kinds[-1] == "done" and "failed" not in kinds
    # live progress from the frame reads: 3 frames, 1 load pass + 3 merge passes expected
    assert any(e.get("message", "") == "gff: read 1 of about 12 frames" for e in events)
    gff = next(r for r in session.results.values() if r.method == "gff")
    import mfif

    expected = mfif.fuse([f.path for f in session.frames], method="gff").fused
    np.testing.assert_allclose(gff.fused, expected, atol=2e-6)  # running reduction vs in memory
    metrics = next(e for e in events if e["event"] == "metrics")["result"]["metrics"]
    assert set(metrics) == {"EN", "SF", "AG"}


def test_bad_options_and_failures(session, monkeypatch):
    with pytest.raises(InputError, match="method 'gff' has no option 'r1'"):
        session.start_fusion(["gff"], align=False, options={"gff": {"r1": 0}})
    with pytest.raises(InputError, match="option 'base_radius' of 'gff' must be a int"):
        session.start_fusion(["gff"], align=False, options={"gff": {"base_radius": "big"}})
    import mfif.stacking

    for exc, message in ((InputError("frame1.png: cannot read"), "frame1.png: cannot read"),
                         (RuntimeError("boom"), "internal error: RuntimeError: boom")):
        def failing(*args, exc=exc, **kwargs):
            raise exc

        monkeypatch.setattr(mfif.stacking, "fuse_stack", failing)
        events = _finish(session, session.start_fusion(["gff"], align=False))
        assert events[-1] == {"event": "failed", "message": message}


def test_big_stacks_show_a_preview_fusion_first(tmp_path, monkeypatch):
    monkeypatch.setattr(session_module, "PREVIEW_SIDE", 30)
    monkeypatch.setattr(session_module, "PREVIEW_FIRST_PIXELS", 1000)
    write_test_stack(tmp_path / "stack", n=2, height=48, width=60)
    s = AppSession(tmp_path)
    s.open("stack")
    events = _finish(s, s.start_fusion(["average"], align=False))
    first, final = [e["result"] for e in events if e["event"] == "result"]
    assert first["id"] == final["id"] and final["version"] == first["version"] + 1
    assert first["provisional"] and not final["provisional"]
    assert (first["width"], first["height"]) == (final["width"], final["height"]) == (60, 48)
    r = s.results[final["id"]]
    assert r.fused.shape == (3, 48, 60)
    s.close()


def test_strokes_undo_redo_and_reapply(session):
    _finish(session, session.start_fusion(["gff"], align=False))
    (rid,) = session.results
    r = session.results[rid]
    original = r.fused.copy()
    session.full_rgb("result", rid)  # cached for views before the stroke
    frame1 = read_image(session.frames[1].path)
    stroke = {"frame": 1, "points": [[10, 10], [40, 30]], "radius": 6, "softness": 0.5}
    session.stroke(rid, stroke)
    from mfif.retouching import retouch

    expected = retouch(original, [f.path for f in session.frames], [stroke])
    np.testing.assert_allclose(r.fused, expected, atol=1e-6)
    assert np.abs(r.fused[:, 10, 10] - frame1[:, 10, 10]).max() < 1e-6
    from mfif.app.session import to_uint8_hwc

    assert np.array_equal(session.full_rgb("result", rid), to_uint8_hwc(r.fused))  # the view cache follows
    saved = session.strokes(rid)
    assert saved["size"] == [48, 60] and len(saved["strokes"]) == 1
    desc = session.undo(rid)
    assert np.array_equal(r.fused, original) and desc["can_redo"] and not desc["can_undo"]
    assert np.array_equal(session.full_rgb("result", rid), to_uint8_hwc(original))
    session.redo(rid)
    np.testing.assert_allclose(r.fused, expected, atol=1e-6)
    with pytest.raises(InputError, match="nothing to redo"):
        session.redo(rid)
    session.undo(rid)
    session.apply_strokes(rid, saved)  # the saved edit, re-applied
    np.testing.assert_allclose(r.fused, expected, atol=1e-6)
    with pytest.raises(InputError, match="painted on a 10x10 result"):
        session.apply_strokes(rid, {**saved, "size": [10, 10]})
    with pytest.raises(InputError, match=r"no frame 3 \(the stack has 3\)"):
        session.stroke(rid, {**stroke, "frame": 3})


def test_view_is_the_crop_resampled(session):
    rgb = session.full_rgb("frame", "0")
    zoomed = session.view("frame", "0", 10, 5, 8, 4, 32, 16)  # 4x, nearest neighbour
    assert np.array_equal(zoomed, np.repeat(np.repeat(rgb[5:9, 10:18], 4, axis=0), 4, axis=1))
    with pytest.raises(InputError, match="outside the image"):
        session.view("frame", "0", 100, 100, 5, 5, 5, 5)


def test_export_keeps_exif_and_icc(tmp_path):
    from PIL import Image, ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    folder = tmp_path / "stack"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        im = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
        exif = Image.Exif()
        exif[0x010F] = f"camera{k}"  # Make
        im.save(folder / f"f{k}.jpg", quality=95, icc_profile=icc, exif=exif.tobytes())
    s = AppSession(tmp_path)
    s.open("stack")
    _finish(s, s.start_fusion(["average"], align=False))
    (rid,) = s.results
    for name, bits in (("o.tif", 16), ("o.png", 8), ("o.jpg", 8)):
        s.export(rid, name=name, bit_depth=bits)
        with Image.open(folder / name) as im:
            assert im.info.get("icc_profile") == icc, name
            if name != "o.tif":  # TIFF outputs carry no EXIF (mfif.io.write_image)
                assert im.getexif().get(0x010F) == "camera1", name  # the reference (middle) frame's
        # the bytes mfif.io.write_image writes with the same metadata: one ICC/EXIF writer
        r = s.results[rid]
        assert (folder / name).read_bytes() == write_image(tmp_path / name, r.fused, bit_depth=bits, exif=r.exif,
                                                           icc=r.icc).read_bytes(), name
    import tifffile

    assert np.array_equal(tifffile.imread(folder / "o.tif"), to_integer_image(s.results[rid].fused, 16))
    with pytest.raises(InputError, match="exists in the folder"):
        s.export(rid, name="o.png", bit_depth=8)
    s.close()

