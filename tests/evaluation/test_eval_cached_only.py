"""`mfif eval --cached-only`: a report of what the cache holds, without running anything."""
from __future__ import annotations

from mfif.evaluation.runner import EvalConfig, evaluate
from mfif.io import write_image
from tests.helpers import complementary_pair, textured_image


def test_cached_only_reports_the_cache_and_skips_the_rest(tmp_path):
    root = tmp_path / "set"
    root.mkdir()
    for i in range(2):
        gt = textured_image(32, 40, 3, seed=i)
        a, b, _ = complementary_pair(gt, sigma=2.0)
        write_image(root / f"s{i}_A.png", a)
        write_image(root / f"s{i}_B.png", b)
    cache = tmp_path / "cache"
    evaluate([root], EvalConfig(methods=["average"], out_dir=tmp_path / "r1", metrics=["EN"], cache_dir=cache,
                                progress=False))
    both = EvalConfig(methods=["average", "sml"], out_dir=tmp_path / "r2", metrics=["EN", "SF"], cache_dir=cache,
                      progress=False, cached_only=True)
    result = evaluate([root], both)
    assert result.method_runs == 0 and result.skipped == 2  # sml on both items: not in the cache
    assert sorted((r.item, r.method) for r in result.rows) == [("s0", "average"), ("s1", "average")]
    assert all(set(r.values) == {"EN", "SF"} for r in result.rows)  # missing metrics of cached results are computed
    assert not (cache / "set" / "sml").exists() or not list((cache / "set" / "sml").glob("*.png"))
