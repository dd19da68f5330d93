"""The app in a real headless Chromium (Selenium, the system chromium): open a 3-frame stack, fuse
with two methods, move the before/after slider, paint a stroke and check the result's pixels
under it equal the chosen frame's, undo, export a 16-bit TIFF and read it back.

Skips (with the reason) only when no chromium/chromedriver or selenium can be found; CI installs
them (.ci/run).
"""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the app's extra is not installed (pip install 'mfif[app]')")

from mfif.app.browser import (canvas_pixels, chrome, find_chromium, start_app, wait_for, wait_idle,  # noqa: E402
                              write_test_stack)
from mfif.io import read_image, to_integer_image  # noqa: E402
from mfif.retouching import as_retouch, stroke_mask  # noqa: E402



FOUND = find_chromium()
pytestmark = pytest.mark.skipif(isinstance(FOUND, str), reason=str(FOUND))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    write_test_stack(root / "stack", n=3)
    running = start_app(root)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def driver():
    d = chrome(1300, 800)
    yield d
    d.quit()


def _full_result(app, rid: str) -> np.ndarray:
    import cv2

    data = app.get(f"/api/result/{rid}/full.png")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return bgr[..., ::-1]  # uint16 (H, W, 3)


def _select(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", element_id)).select_by_value(value)


def test_fuse_compare_retouch_undo_export(app, driver):
    from selenium.webdriver.common.action_chains import ActionChains

    driver.get(app.url)
    wait_for(driver, "document.body.dataset.ready", what="the page to start")
    _select(driver, "folder", "stack")
    driver.find_element("id", "open").click()
    wait_for(driver, "document.querySelectorAll('#thumbs .thumb').length === 3", what="3 thumbnails")

    # two methods: gff (the default, checked) and laplacian; alignment off (two clicks on the
    # undecided box) so the frames on disk are the frames the result is painted from
    assert driver.execute_script("return document.querySelector('[data-method=gff]').checked")
    driver.find_element("css selector", "[data-method=laplacian]").click()
    align = driver.find_element("id", "align")
    align.click()
    align.click()
    assert not align.is_selected()
    driver.find_element("id", "run").click()
    wait_for(driver, "document.querySelectorAll('#results .result').length === 2 && "
                     "!document.getElementById('run').disabled", what="two results")
    results = {r.method: r for r in app.session.results.values()}
    assert set(results) == {"gff", "laplacian"}
    gff = results["gff"]
    assert not np.array_equal(gff.fused, results["laplacian"].fused)

    # before/after: left = frame 0, right = the gff result; the slider moves the cut
    driver.find_element("id", "mode-compare").click()
    _select(driver, "compare-a", "frame:0")
    _select(driver, "compare-b", f"result:{gff.id}")
    slider = driver.find_element("id", "slider")
    driver.execute_script("arguments[0].value = 100; arguments[0].dispatchEvent(new Event('input'));", slider)
    wait_idle(driver)
    only_a = canvas_pixels(driver)
    driver.execute_script("arguments[0].value = 0; arguments[0].dispatchEvent(new Event('input'));", slider)
    wait_idle(driver)
    only_b = canvas_pixels(driver)
    width = only_a.shape[1]
    ActionChains(driver).move_to_element_with_offset(slider, -slider.size["width"] // 2 + 2, 0).click_and_hold() \
        .move_by_offset(int(slider.size["width"] * 0.3), 0).release().perform()
    position = float(slider.get_attribute("value"))
    assert 20 < position < 40, position
    wait_idle(driver)
    mixed = canvas_pixels(driver)
    cut = round(width * position / 100)
    assert np.mean(only_a != only_b) > 0.2  # the two sides differ, so the checks below mean something
    assert np.array_equal(mixed[:, : cut - 2], only_a[:, : cut - 2])
    assert np.array_equal(mixed[:, cut + 2:], only_b[:, cut + 2:])

    # retouch: paint frame 2 into the gff result with a 10 px brush, softness 0.4
    before = _full_result(app, gff.id)
    driver.find_element("id", "mode-retouch").click()
    _select(driver, "retouch-result", gff.id)
    _select(driver, "brush-frame", "2")
    for element_id, value in (("brush-size", 10), ("brush-soft", 40)):
        driver.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));",
                              driver.find_element("id", element_id), value)
    wait_idle(driver)
    canvas = driver.find_element("css selector", "#panes canvas")
    ActionChains(driver).move_to_element_with_offset(canvas, -150, -40).click_and_hold() \
        .move_by_offset(60, 10).move_by_offset(60, 10).move_by_offset(60, 20).release().perform()
    wait_for(driver, f"S.results.find(r => r.id === '{gff.id}').strokes === 1", what="the stroke to be applied")
    wait_idle(driver)
    edit = as_retouch(json.loads(app.get(f"/api/result/{gff.id}/strokes")))
    (stroke,) = edit.strokes
    assert stroke.frame == 2 and stroke.radius == 10 and stroke.softness == pytest.approx(0.4)
    assert len(stroke.points) >= 2
    (rows, cols), mask = stroke_mask(stroke, gff.fused.shape[-2:])
    full_mask = np.zeros(gff.fused.shape[-2:], np.float32)
    full_mask[rows, cols] = mask
    core = full_mask == 1.0
    outside = full_mask == 0.0
    assert core.sum() > 500
    after = _full_result(app, gff.id)
    frame2 = to_integer_image(read_image(app.session.frames[2].path), 16).astype(np.int32)
    assert np.abs(after[core].astype(np.int32) - frame2[core]).max() <= 1  # = frame 2 (16-bit rounding)
    assert np.array_equal(after[outside], before[outside])
    assert np.abs(before[core].astype(np.int32) - frame2[core]).mean() > 1000  # it was not frame 2 before
    assert driver.execute_script("return !document.getElementById('undo').disabled")

    # undo restores the result exactly
    driver.find_element("id", "undo").click()
    wait_for(driver, f"S.results.find(r => r.id === '{gff.id}').strokes === 0", what="undo")
    assert np.array_equal(_full_result(app, gff.id), before)

    # export a 16-bit TIFF into the opened folder and read it back
    import tifffile

    _select(driver, "export-result", gff.id)
    _select(driver, "export-format", "tif")
    _select(driver, "export-bits", "16")
    name = driver.find_element("id", "export-name")
    name.clear()
    name.send_keys("fused16.tif")
    driver.find_element("id", "export").click()
    wait_for(driver, "document.getElementById('export-msg').textContent.includes('fused16.tif')", what="the export")
    written = tifffile.imread(app.session.folder / "fused16.tif")
    assert written.dtype == np.uint16 and written.shape == (*gff.fused.shape[-2:], 3)
    assert np.array_equal(written, to_integer_image(gff.fused, 16))
    assert np.array_equal(written, before)

    # exporting again under the same name is refused in the page, the file kept
    driver.find_element("id", "export").click()
    message = wait_for(driver, "!document.getElementById('error').hidden && "
                               "document.getElementById('error-text').textContent", what="the error")
    assert message == "fused16.tif exists in the folder; choose another name (nothing is overwritten)"
    assert np.array_equal(tifffile.imread(io.BytesIO((app.session.folder / "fused16.tif").read_bytes())), before)
