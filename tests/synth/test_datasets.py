"""On-the-fly torch datasets (mfif.synth.datasets): deterministic per index, worker-safe."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mfif.errors import InputError
from mfif.synth import recipes as R
from mfif.synth.datasets import BAPatchDataset, LiuPatchDataset, PairDataset, SceneShuffleSampler


def test_liu_dataset_pairs_come_in_both_orders(bsds_like):
    ds = LiuPatchDataset(bsds_like, seed=3)
    assert len(ds) == 4 * 200
    for j in (0, 7, 123, 399):
        a, b = ds[2 * j], ds[2 * j + 1]
        assert a["inputs"].shape == (2, 16, 16) and a["inputs"].dtype == torch.float32
        assert int(a["label"]) == 1 and int(b["label"]) == 0  # labels flip when the pair is swapped
        assert torch.equal(a["inputs"], b["inputs"].flip(0))
    # blur level grows with the pair index inside a photo's group
    assert ds.sample(0).info["level"] == 1 and ds.sample(199).info["level"] == 5


def test_datasets_same_seed_same_bytes_in_any_order(bsds_like, alpha_like):
    for make in (lambda s: LiuPatchDataset(bsds_like, seed=s),
                 lambda s: BAPatchDataset(alpha_like, R.BARecipe(patch=32), seed=s),
                 lambda s: PairDataset(bsds_like, R.LayeredRecipe(size=64), seed=s, length=8)):
        d1, d2, d3 = make(5), make(5), make(6)
        order = [3, 0, 7, 3]
        first = [d1[i] for i in order]
        for i, item in zip(order[::-1], first[::-1]):  # d2 visits the items in the reverse order
            other = d2[i]
            for key in item:
                assert item[key].numpy().tobytes() == other[key].numpy().tobytes()
        key = "inputs" if "inputs" in first[0] else "frames"
        assert first[0][key].numpy().tobytes() != d3[order[0]][key].numpy().tobytes()


def test_ba_dataset_swaps_and_boundary_only(alpha_like):
    ds = BAPatchDataset(alpha_like, R.BARecipe(patch=32), seed=0, length=200)
    for j in range(5):
        a, b = ds.sample(2 * j), ds.sample(2 * j + 1)
        assert b.label == 1 - a.label and np.array_equal(a.inputs, b.inputs[::-1])
    near = BAPatchDataset(alpha_like, R.BARecipe(patch=32), seed=0, boundary_only=True, length=60)
    assert all(bool(near[i]["boundary"]) for i in range(0, 60, 3))


def test_pair_dataset_items_and_bad_arguments(bsds_like, plain_folder):
    ds = PairDataset(bsds_like, R.HourglassRecipe(size=64), frames=3, seed=1, length=5)
    item = ds[4]
    assert item["frames"].shape == (3, 3, 64, 64) and item["gt"].shape == (3, 64, 64)
    assert item["focus"].shape == (3, 64, 64) and torch.allclose(item["focus"].sum(0), torch.ones(64, 64))
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(InputError, match="makes patches"):
        PairDataset(bsds_like, "liu")
    with pytest.raises(InputError, match="at least 2 frames"):
        PairDataset(bsds_like, "layered", frames=1)
    with pytest.raises(InputError, match="smaller than the 256x256 crop"):
        PairDataset(plain_folder, "layered")  # photos are 80x96
    with pytest.raises(InputError, match="unknown recipe"):
        PairDataset(plain_folder, "nope")


def test_dataloader_workers_match_direct_indexing(bsds_like):
    # (no worker_init_fn calling cv2.setNumThreads: it can deadlock forked workers, see datasets.py)
    ds = PairDataset(bsds_like, R.IfcnnRecipe(size=48), seed=2, length=4)
    direct = torch.stack([ds[i]["frames"] for i in range(4)])
    loader = DataLoader(ds, batch_size=2, num_workers=2)
    batched = torch.cat([b["frames"] for b in loader])
    assert torch.equal(direct, batched)


def test_scene_shuffle_sampler_keeps_groups_together(alpha_like):
    ds = BAPatchDataset(alpha_like, R.BARecipe(patch=32, patches_per_scene=3), length=30)
    order = list(SceneShuffleSampler(ds, seed=1))
    assert sorted(order) == list(range(30)) and order != list(range(30))
    groups = [i // 6 for i in order]
    assert all(len(set(groups[k:k + 6])) == 1 for k in range(0, 30, 6))
