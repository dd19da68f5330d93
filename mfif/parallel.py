"""Ordered, bounded-lookahead parallel map for the per-frame work of the stack pipeline.

The stages of :mod:`mfif.stacking` spend their time in OpenCV, Pillow and large numpy operations,
which release the GIL, so worker *threads* overlap decoding, warping and filtering of the next
frames with the reduction of the current one (the reduction itself stays in the calling thread,
in frame order, so results do not depend on the number of workers). At most ``workers`` results
are pending at a time, which bounds the extra memory to that many frames.

``MFIF_THREADS`` (environment) sets the default number of workers; 1 runs everything in the
calling thread (what ``mfif bench --stack`` uses for its stage breakdown).
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """``MFIF_THREADS`` when set (>= 1), else min(4, CPU count)."""
    text = os.environ.get("MFIF_THREADS", "").strip()
    if text:
        try:
            return max(1, int(text))
        except ValueError:
            pass
    return max(1, min(4, os.cpu_count() or 1))


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int | None = None) -> Iterator[R]:
    """``fn`` over ``items`` in worker threads, results yielded in input order; at most ``workers``
    calls run or wait ahead of the consumer. ``workers`` None = :func:`default_workers`; 1 = plain
    ``map`` in the calling thread. An exception in ``fn`` is raised at its item."""
    n = default_workers() if workers is None else max(1, int(workers))
    if n == 1:
        yield from map(fn, items)
        return
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="mfif-frames") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= n:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()
