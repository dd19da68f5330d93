"""The one network cache: built networks are kept by a key (network, weights file and its mtime,
device, ...) so that fusing many stacks loads each weights file once."""
from __future__ import annotations

from typing import Callable, Hashable

MAX_NETWORKS = 4
_CACHE: dict[Hashable, object] = {}


def cached_network(key: Hashable, build: Callable[[], object]):
    """The network cached under ``key``, built with ``build()`` on a miss (the cache holds at most
    :data:`MAX_NETWORKS`; it is emptied when full)."""
    net = _CACHE.get(key)
    if net is None:
        net = build()
        if len(_CACHE) >= MAX_NETWORKS:
            _CACHE.clear()
        _CACHE[key] = net
    return net


def clear_network_cache() -> None:
    _CACHE.clear()


def file_key(weights) -> tuple:
    """The part of a cache key that names a weights file: (resolved path, mtime in ns), so an
    overwritten file is reloaded; (None, None) for the shipped weights."""
    if not weights or isinstance(weights, dict):
        return (None, None)
    import os
    from pathlib import Path

    try:
        mtime = os.stat(weights).st_mtime_ns
    except OSError:
        mtime = None
    return (str(Path(weights).resolve()), mtime)
