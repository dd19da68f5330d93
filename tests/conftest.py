"""Shared fixtures. ``shared_dir`` is the project's ../shared folder (data, references);
tests that need it skip with a clear reason when it is absent (a user's clone)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_shared() -> Path | None:
    env = os.environ.get("MFIF_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared")
    for c in candidates:
        if (c / "data").is_dir():
            return c
    return None


SHARED = find_shared()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if SHARED is None:
        pytest.skip("../shared (data and reference values) is not present next to this checkout")
    return SHARED


@pytest.fixture
def one_torch_thread():
    """Run a test on one torch thread: on tiny tensors it is as fast, and it does not stall (10x
    slower) when the two CPU cores are shared with other work. Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
