"""Pre-rendered pairs (mfif.synth.prerender): the files hold exactly the on-the-fly samples
quantised to 8 bits, an interrupted render resumes to the same bytes, and bad folders are named."""
import json

import numpy as np
import pytest
import torch

from mfif.errors import InputError, OutputError
from mfif.synth import prerender as P
from mfif.synth import recipes as R
from mfif.synth.augment import Augment
from mfif.synth.datasets import PairDataset

RECIPE = R.ThinLensRecipe(size=32, max_radius=(1.0, 3.0), augment=Augment(noise=0.01, exposure=0.1, shift=0.3))


def test_prerendered_items_equal_on_the_fly_samples(bsds_like, tmp_path):
    meta = P.prerender(bsds_like, RECIPE, 5, tmp_path / "pairs", seed=3, chunk=2, progress=False)
    assert meta["complete"] and meta["rendered"] == 5 and meta["bytes_per_sample"] == 32 * 32 * (6 + 3 + 2)
    assert not (tmp_path / "pairs.partial").exists()
    ds = P.PrerenderedPairs(tmp_path / "pairs")
    live = PairDataset(bsds_like, RECIPE, seed=3, length=5)
    assert len(ds) == 5
    raw = P.PrerenderedPairs(tmp_path / "pairs", as_uint8=True)
    for i in (0, 4, -1):
        item, stored, s = ds[i], raw[i], live.sample(i)
        assert item["frames"].shape == (2, 3, 32, 32) and item["frames"].dtype == torch.float32
        for name, ref in (("frames", s.frames), ("gt", s.gt), ("focus", s.focus)):
            assert stored[name].dtype == torch.uint8
            assert np.array_equal(stored[name].numpy(), np.round(np.clip(ref, 0, 1) * 255).astype(np.uint8))
            assert torch.allclose(item[name], stored[name].float() / 255, rtol=0, atol=1e-7)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert batch["frames"].shape == (5, 2, 3, 32, 32)
    with pytest.raises(IndexError):
        ds[5]


def test_interrupted_render_resumes_to_the_same_bytes(bsds_like, tmp_path, monkeypatch):
    P.prerender(bsds_like, RECIPE, 6, tmp_path / "whole", chunk=2, progress=False)
    real = P._render_chunk
    calls = []

    def flaky(job):
        calls.append(job[5])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(P, "_render_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        P.prerender(bsds_like, RECIPE, 6, tmp_path / "cut", chunk=2, progress=False)
    assert json.loads((tmp_path / "cut.partial" / "progress.json").read_text())["done"] == 2
    with pytest.raises(InputError, match="unfinished render"):
        P.PrerenderedPairs(tmp_path / "cut")
    with pytest.raises(OutputError, match="unfinished render"):
        P.prerender(bsds_like, RECIPE, 6, tmp_path / "cut", chunk=2, progress=False)
    with pytest.raises(InputError, match="other settings"):
        P.prerender(bsds_like, RECIPE, 6, tmp_path / "cut", chunk=2, seed=9, resume=True, progress=False)
    monkeypatch.setattr(P, "_render_chunk", real)
    meta = P.prerender(bsds_like, RECIPE, 6, tmp_path / "cut", chunk=2, resume=True, progress=False)
    assert meta["rendered"] == 4
    for name in P.FIELDS:
        assert (tmp_path / "cut" / f"{name}.npy").read_bytes() == (tmp_path / "whole" / f"{name}.npy").read_bytes()


def test_bad_arguments(bsds_like, tmp_path):
    with pytest.raises(InputError, match="patches"):
        P.prerender(bsds_like, "liu", 2, tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="fixed crop size"):
        P.prerender(bsds_like, R.ThinLensRecipe(size=None), 2, tmp_path / "x", progress=False)
    (tmp_path / "exists").mkdir()
    with pytest.raises(OutputError, match="already exists"):
        P.prerender(bsds_like, RECIPE, 2, tmp_path / "exists", progress=False)
    with pytest.raises(InputError, match="no meta.json"):
        P.PrerenderedPairs(tmp_path / "exists")


@pytest.mark.slow
def test_two_workers_write_the_same_bytes(bsds_like, tmp_path):
    P.prerender(bsds_like, RECIPE, 6, tmp_path / "one", chunk=2, progress=False)
    P.prerender(bsds_like, RECIPE, 6, tmp_path / "two", chunk=2, workers=2, progress=False)
    for name in P.FIELDS:
        assert (tmp_path / "one" / f"{name}.npy").read_bytes() == (tmp_path / "two" / f"{name}.npy").read_bytes()


def test_cli_prerender_reports_pairs_per_second(bsds_like, tmp_path, capsys):
    from mfif.synth.cli import main

    out = tmp_path / "cli"
    assert main(["synth", "--prerender", "--source", str(bsds_like), "--recipe", "thinlens", "--size", "32",
                 "-n", "3", "-o", str(out), "--quiet"]) == 0
    assert "pairs/s" in capsys.readouterr().out
    assert len(P.PrerenderedPairs(out)) == 3
    assert main(["synth", "--prerender", "--source", str(bsds_like), "--recipe", "liu", "-n", "3",
                 "-o", str(tmp_path / "liu"), "--quiet"]) == 2
    assert "patches" in capsys.readouterr().err
