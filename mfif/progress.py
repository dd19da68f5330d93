"""Progress bars for the stages of ``mfif fuse`` on a stack (decode + align, each merge pass, encode).

The library reports, the command line shows: :func:`stage` is a no-op unless :func:`enabled` was
switched on (``mfif fuse`` without ``-q``, stderr a terminal). A bar appears only once its stage
has run for a second, so short stages stay quiet; it counts frames and is
updated by the thread that reduces them, in frame order. Work without frame steps (encoding the
output, one network call) sets :func:`status`, which the elapsed-time ticker of
:func:`mfif.interrupt.run_interruptibly` shows while no bar is on screen.
"""
from __future__ import annotations

import shutil
import sys
import threading
import time
from contextlib import contextmanager

DELAY_SECONDS = 1.0

_lock = threading.Lock()
_state = {"enabled": False, "open": 0, "status": None}


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


def enabled() -> bool:
    return bool(_state["enabled"])


@contextmanager
def enable(on: bool = True, *, force: bool = False):
    """Show stage bars inside the block: when ``on`` and stderr is a terminal (or ``force``)."""
    saved = _state["enabled"]
    _state["enabled"] = bool(on) and (force or sys.stderr.isatty())
    try:
        yield
    finally:
        _state["enabled"] = saved
        _state["status"] = None


class _DelayedBar:
    """A tqdm bar created at the first update after ``DELAY_SECONDS`` (tqdm's own ``delay`` does
    not show here), with the count so far; while it is on screen the ticker stays quiet."""

    def __init__(self, description: str, total: int | None, unit: str):
        self.description, self.total, self.unit = description, total, unit
        self.start = time.monotonic()
        self.n = 0
        self.bar = None

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self.start >= DELAY_SECONDS:
            from tqdm import tqdm

            # the terminal's width; one that reports 0 columns (some ptys) would get an empty bar
            width = shutil.get_terminal_size(fallback=(100, 24)).columns
            sys.stderr.write("\r\033[K")  # the elapsed-time ticker's line
            with _lock:
                _state["open"] += 1
            self.bar = tqdm(total=self.total, initial=self.n, desc=self.description, unit=self.unit, leave=True,
                            file=sys.stderr, ncols=width if width > 0 else 100)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            with _lock:
                _state["open"] -= 1


@contextmanager
def stage(description: str, total: int | None = None, unit: str = "frame"):
    """A bar for one stage: ``with stage("aligning", n) as bar: ... bar.update()``."""
    if not _state["enabled"]:
        yield _NoBar()
        return
    _state["status"] = description
    bar = _DelayedBar(description, total, unit)
    try:
        yield bar
    finally:
        bar.close()


def status(text: str | None) -> None:
    """What the work is doing now, for the ticker (no frame steps to count)."""
    _state["status"] = text


def ticker_text() -> str | None:
    """The ticker's label while no bar is open (None: keep the command's own label)."""
    return None if _state["open"] else _state["status"]


def bar_open() -> bool:
    return _state["open"] > 0
