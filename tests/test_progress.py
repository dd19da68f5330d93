"""Stage progress bars of a stack fusion (mfif.progress): one per stage, counted in frames."""
from __future__ import annotations

from mfif import progress
from mfif.stacking import fold_in_batches, fuse_stack
from mfif.methods import get_method
from tests.test_stacking import band_stack


def test_each_stage_of_a_stack_shows_a_bar(capsys, monkeypatch):
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.0)  # the CLI shows stages over 1 s only
    stack, _ = band_stack(n=5)
    with progress.enable(force=True):
        fuse_stack(list(stack), "sml", align=True)
    err = capsys.readouterr().err
    for name in ("decoding + aligning", "focus measure", "blending"):
        assert f"{name}: 100%" in err and "5/5" in err, err


def test_bars_are_off_unless_enabled(capsys, monkeypatch):
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.0)
    stack, _ = band_stack(n=4)
    fuse_stack(list(stack), "sml", align=True)
    assert capsys.readouterr().err == ""


def test_batches_count_their_folds(capsys, monkeypatch):
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.0)
    stack, _ = band_stack(n=7)
    spec = get_method("laplacian")  # any method: the batch path is forced here
    with progress.enable(force=True):
        fold_in_batches(stack, spec, spec.make_options(), batch_frames=3)
    err = capsys.readouterr().err
    assert "fusing in batches of 3: 100%" in err and "3/3" in err, err  # 3 + 2 + 2 frames
