"""mfif fuse asks glibc to keep freed frame-sized blocks (mfif.allocator)."""
from __future__ import annotations

import platform

from mfif.allocator import reuse_large_allocations


def test_thresholds_are_set_on_glibc():
    result = reuse_large_allocations()
    assert isinstance(result, bool)
    if platform.libc_ver()[0] == "glibc":
        assert result
