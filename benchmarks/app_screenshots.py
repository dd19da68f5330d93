"""Screenshots of each view of ``mfif app`` for the README (docs/app/*.png), taken in headless
Chromium on a real stack: the 7-frame PCB macro stack in ../shared/data/mf-stacks/pcb (focus-stack
project example, MIT), aligned, fused with gff and laplacian.

    python benchmarks/app_screenshots.py [--stack DIR] [--out docs/app]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mfif.app.browser import chrome, start_app, wait_for, wait_idle  # noqa: E402


def _set(driver, element_id: str, value) -> None:
    driver.execute_script("const e = document.getElementById(arguments[0]); e.value = arguments[1]; "
                          "e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change'));", element_id, value)


def _shot(driver, out: Path, name: str) -> None:
    wait_idle(driver, 120)
    time.sleep(0.3)
    driver.save_screenshot(str(out / name))
    print(out / name)


def main() -> int:
    from selenium.webdriver.common.action_chains import ActionChains

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default=str(REPO.parent / "shared" / "data" / "mf-stacks" / "pcb"))
    parser.add_argument("--out", default=str(REPO / "docs" / "app"))
    args = parser.parse_args()
    stack, out = Path(args.stack), Path(args.out)
    if not stack.is_dir():
        print(f"{stack}: not found (the screenshots use the shared PCB stack)", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    app = start_app(stack)
    driver = chrome(1400, 1000)
    try:
        driver.get(app.url)
        wait_for(driver, "document.body.dataset.ready", 120)
        driver.find_element("id", "open").click()
        wait_for(driver, "document.querySelectorAll('#thumbs .thumb').length > 2", 120)
        driver.find_element("css selector", "[data-method=laplacian]").click()
        driver.find_element("id", "run").click()
        wait_for(driver, "document.querySelectorAll('#results .result').length === 2 && "
                         "!document.getElementById('run').disabled", 600, "two results")
        results = {r.method: r.id for r in app.session.results.values()}
        # side by side: frame 0, gff, laplacian (fit)
        driver.execute_script("S.shown = ['frame:0', 'result:%s', 'result:%s']; refreshThumbs(); refreshResults(); "
                              "S.fitted = false; buildPanes();" % (results["gff"], results["laplacian"]))
        _shot(driver, out, "side-by-side.png")
        # zoomed beyond 1:1 on a detail, synchronised panes
        driver.execute_script("S.view.scale = 2; S.view.cx = 1130; S.view.cy = 700; S.fitted = true; render();")
        _shot(driver, out, "zoom-200.png")
        # before/after slider: the sharpest-near frame against the gff result
        driver.find_element("id", "mode-compare").click()
        _set(driver, "compare-a", "frame:6")
        _set(driver, "compare-b", f"result:{results['gff']}")
        _set(driver, "slider", 45)
        driver.execute_script("fit(); S.fitted = false;")
        _shot(driver, out, "before-after.png")
        # depth map overlay on the result
        driver.find_element("id", "mode-side").click()
        driver.execute_script("S.shown = ['result:%s']; S.fitted = false; buildPanes();" % results["gff"])
        driver.find_element("id", "overlay").click()
        _set(driver, "overlay-opacity", 60)
        _shot(driver, out, "depth-map.png")
        driver.find_element("id", "overlay").click()
        # retouch: paint frame 0 back along a stroke, brush cursor shown
        driver.find_element("id", "mode-retouch").click()
        _set(driver, "retouch-result", results["gff"])
        _set(driver, "brush-frame", "0")
        _set(driver, "brush-size", 60)
        wait_idle(driver)
        canvas = driver.find_element("css selector", "#panes canvas")
        ActionChains(driver).move_to_element_with_offset(canvas, -260, 80).click_and_hold() \
            .move_by_offset(120, -40).move_by_offset(120, -20).release() \
            .move_by_offset(80, 40).perform()
        wait_for(driver, "S.results.find(r => r.id === '%s').strokes === 1" % results["gff"], 60)
        _shot(driver, out, "retouch.png")
    finally:
        driver.quit()
        app.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
