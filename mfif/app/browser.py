"""Driving the app in a real headless Chromium (Selenium + the system chromium / chromedriver):
shared by the browser tests, the latency benchmark and the screenshot script.

Nothing here downloads a browser: it uses ``chromium`` and ``chromedriver`` from the system
(Debian: ``apt-get install chromium chromium-driver``), or the paths in ``MFIF_CHROMIUM`` /
``MFIF_CHROMEDRIVER``.
"""
from __future__ import annotations

import base64
import os
import shutil
import threading
import time
from dataclasses import dataclass

import numpy as np

from mfif.app.session import AppSession

_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> tuple[str, str] | str:
    """(browser, driver) paths, or the reason none can be used."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'mfif[test]')"
    browser = os.environ.get("MFIF_CHROMIUM") or next(filter(None, map(shutil.which, _CHROMIUM_NAMES)), None)
    driver = os.environ.get("MFIF_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        return ("no chromium/chromedriver on PATH (Debian: apt-get install chromium chromium-driver; or set "
                "MFIF_CHROMIUM and MFIF_CHROMEDRIVER)")
    return browser, driver


def chrome(width: int = 1400, height: int = 860):
    """A headless Chromium driven by Selenium through the system chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if isinstance(found, str):
        raise RuntimeError(found)
    browser, driver = found
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--force-device-scale-factor=1", "--hide-scrollbars"):
        options.add_argument(arg)
    options.binary_location = browser
    return webdriver.Chrome(service=Service(driver), options=options)


@dataclass
class RunningApp:
    url: str
    base: str
    token: str
    session: AppSession
    server: object
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.session.close()

    def get(self, path: str) -> bytes:
        """GET an API path with the token (as the page would)."""
        import urllib.request

        request = urllib.request.Request(self.base + path, headers={"X-Mfif-Token": self.token})
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read()


def start_app(folder, *, port: int = 0) -> RunningApp:
    """Serve the app on 127.0.0.1 in a background thread of this process."""
    import socket

    import uvicorn

    from mfif.app.server import create_app, new_token

    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    token = new_token()
    session = AppSession(folder)
    app = create_app(session, token, port=port)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app's server did not start")
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    return RunningApp(f"{base}/?token={token}", base, token, session, server, thread)


def wait_for(driver, script: str, timeout: float = 30.0, what: str = ""):
    """Poll a JavaScript expression until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(f"return ({script});")
        if value:
            return value
        if time.monotonic() > deadline:
            error = driver.execute_script("return document.getElementById('error').hidden ? '' : "
                                          "document.getElementById('error-text').textContent")
            raise TimeoutError(f"timed out waiting for {what or script}" + (f"; the page says: {error}" if error else ""))
        time.sleep(0.05)


def wait_idle(driver, timeout: float = 30.0) -> None:
    """Until the page has no image loads or zoom crops pending."""
    wait_for(driver, "window.mfifIdle && window.mfifIdle()", timeout, "the page to finish loading images")


def canvas_pixels(driver, index: int = 0) -> np.ndarray:
    """The index-th pane canvas as uint8 (H, W, 3) (read through toDataURL, PNG)."""
    import cv2

    url = driver.execute_script(f"return document.querySelectorAll('#panes canvas')[{index}].toDataURL('image/png');")
    data = base64.b64decode(url.split(",", 1)[1])
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return bgr[..., ::-1]


def write_test_stack(folder, *, n: int = 3, height: int = 160, width: int = 240, seed: int = 1,
                     suffix: str = ".png") -> list:
    """A synthetic stack for tests and benchmarks: a random texture, frame k sharp in the k-th of n
    vertical bands and blurred (Gaussian, sigma 4) elsewhere. Returns the written paths."""
    from pathlib import Path

    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(height // 4, 1), max(width // 4, 1), 3), dtype=np.uint8)
    sharp = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)  # texture of ~4 px grains
    blurred = cv2.GaussianBlur(sharp, (0, 0), 4)
    paths = []
    for k in range(n):
        frame = blurred.copy()
        band = slice(k * width // n, (k + 1) * width // n)
        frame[:, band] = sharp[:, band]
        path = folder / f"frame{k}{suffix}"
        params = [cv2.IMWRITE_JPEG_QUALITY, 92] if suffix in (".jpg", ".jpeg") else []
        if not cv2.imwrite(str(path), frame[..., ::-1], params):
            raise OSError(f"{path}: cannot write")
        paths.append(path)
    return paths
