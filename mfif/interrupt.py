"""Run a command's work in a worker thread so that Ctrl-C is answered at once, with a ticker.

Python acts on Ctrl-C only between bytecodes of the main thread, so a long call into C (OpenCV's
ECC alignment of a large frame, a big convolution) used to delay ``mfif: interrupted`` by 15 s or
more. :func:`run_interruptibly` runs the work in a daemon thread while the main thread waits in
short, interruptible steps: Ctrl-C cancels the worker (:func:`cancelled` becomes true in it), removes
the outputs staged so far (:func:`mfif.io.all_or_nothing` checks :func:`cancelled` before it renames
anything into place) and raises
:class:`KeyboardInterrupt` in the main thread right away; the CLI then exits with code 130 and the
abandoned worker dies with the process.

While waiting, the main thread can show elapsed time on a terminal (``label: 12 s``), so long
work that has no progress bar of its own (a learned method on a large stack) is not silent.
"""
from __future__ import annotations

import contextvars
import signal
import sys
import threading
import time
from typing import Callable

from mfif import progress

_CANCEL: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("mfif_cancel", default=None)
_ON_CANCEL: list[Callable[[], None]] = []  # run when Ctrl-C abandons a worker (mfif.io: discard staged outputs)


def on_cancel(fn: Callable[[], None]) -> None:
    """Run ``fn()`` whenever Ctrl-C abandons a worker of :func:`run_interruptibly` (registered once;
    :func:`mfif.io.all_or_nothing` registers the removal of staged outputs, so this module needs no
    import of :mod:`mfif.io`)."""
    if fn not in _ON_CANCEL:
        _ON_CANCEL.append(fn)


def cancelled() -> bool:
    """True inside a worker of :func:`run_interruptibly` whose command was interrupted."""
    event = _CANCEL.get()
    return event is not None and event.is_set()


def _install_sigint_flag(flag: threading.Event):
    """In the main thread, wrap the Ctrl-C handler so that it also sets ``flag`` (then does what the
    handler did: Python's default raises KeyboardInterrupt). Returns the handler to restore, or None
    when nothing was changed (not the main thread; Ctrl-C ignored or left to the OS)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # SIG_IGN (e.g. a background job), SIG_DFL, or not set from Python
        return None

    def on_sigint(signum, frame):
        flag.set()
        previous(signum, frame)

    signal.signal(signal.SIGINT, on_sigint)
    return previous


def run_interruptibly(fn: Callable, *args, label: str | None = None, ticker_after: float = 2.0, **kwargs):
    """``fn(*args, **kwargs)`` in a worker thread; returns its result or raises its exception.

    Args:
        label: show ``label: N s`` on stderr (a terminal only) once the work has run
            ``ticker_after`` seconds; cleared when it ends.
    """
    cancel = threading.Event()  # this run's own: a later run is not affected by an abandoned one
    outcome: dict = {}

    def work():
        _CANCEL.set(cancel)
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="mfif-work", daemon=True)
    start = time.monotonic()
    show = bool(label) and sys.stderr.isatty()
    shown = False
    # Ctrl-C also sets a flag that ends the wait: when a host program (a test runner, a library that
    # installed its own SIGINT handler) does not raise KeyboardInterrupt, or when Python drops the
    # exception because the main thread was running a finaliser (``__del__``, gc).
    interrupted = threading.Event()
    previous = _install_sigint_flag(interrupted)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
            if interrupted.is_set():
                raise KeyboardInterrupt
            elapsed = time.monotonic() - start
            if show and elapsed >= ticker_after and not progress.bar_open():
                now = progress.ticker_text()  # the stage without a bar of its own (mfif.progress)
                sys.stderr.write(f"\r\033[K{label}{f' ({now})' if now else ''}: {elapsed:.0f} s")
                sys.stderr.flush()
                shown = True
    except KeyboardInterrupt:
        cancel.set()
        for fn in list(_ON_CANCEL):
            fn()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        if shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
