"""One weights format (safetensors + header metadata), one loader, one network cache."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from mfif.errors import WeightsError
from mfif.methods import METHODS
from mfif.models.cache import cached_network, clear_network_cache, file_key
from mfif.models.weights import WEIGHTS_DIR, data_digest, is_safetensors, read_weights, write_weights


def test_every_shipped_weight_file_is_safetensors_with_metadata():
    shipped = sorted(p.name for p in WEIGHTS_DIR.iterdir() if p.suffix != ".md")
    assert shipped and all(name.endswith(".safetensors") for name in shipped), shipped
    for name in shipped:
        w = read_weights(WEIGHTS_DIR / name)
        assert is_safetensors(WEIGHTS_DIR / name)
        assert w.format.startswith("mfif-") and w.arch, name
        assert "train" in w.meta["training_command"] and len(w.meta["data_digest"]) == 16, name
    # the method table names the files it loads (evaluation caches key on them)
    named = {f for spec in METHODS.values() for f in spec.weights}
    assert set(shipped) <= named


def test_write_read_round_trip_keeps_dtypes_and_header(tmp_path):
    tensors = {"a": torch.arange(6, dtype=torch.float16).reshape(2, 3), "q": torch.tensor([-127, 5], dtype=torch.int8)}
    path = write_weights(tmp_path / "w.safetensors", tensors, format="mfif-test/1", arch={"variant": "x"},
                         meta={"steps": 3}, training_command="mfif train x", data_digest="abc")
    w = read_weights(path)
    assert w.format == "mfif-test/1" and w.arch == {"variant": "x"}
    assert w.meta == {"steps": 3, "training_command": "mfif train x", "data_digest": "abc"}
    for key, value in tensors.items():
        assert w.tensors[key].dtype == value.dtype and torch.equal(w.tensors[key], value)
    assert not list(tmp_path.glob("*.tmp"))  # atomic: no temp file left
    assert w.as_legacy_dict()["variant"] == "x" and set(w.as_legacy_dict()["state_dict"]) == {"a", "q"}


class ScenePool:
    """Stands for any Python object a checkpoint might pickle (BA's scene pool did)."""


def test_pickled_objects_are_refused_in_one_line(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "pool": ScenePool()}, path)
    with pytest.raises(WeightsError) as info:
        read_weights(path)
    message = str(info.value)
    assert "refused" in message and "pickled" in message and str(path) in message
    assert "\n" not in message and "weights_only" not in message
    # every network's loader goes through it
    from mfif.models.ba.network import load_ba_weights
    from mfif.models.hourglass.network import read_hourglass_weights
    from mfif.models.ifcnn.network import build_ifcnn
    from mfif.models.liu_cnn.network import build_liu_cnn

    for load in (load_ba_weights, read_hourglass_weights, lambda p: build_ifcnn("max", p),
                 lambda p: build_liu_cnn("slight", p)):
        with pytest.raises(WeightsError, match="refused"):
            load(path)


def test_plain_torch_files_still_import(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "plain.pth")  # e.g. the authors' IFCNN .pth
    w = read_weights(tmp_path / "plain.pth")
    assert w.format is None and torch.equal(w.tensors["w"], torch.ones(2))


def test_data_digest_follows_names_and_sizes(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.png").write_bytes(b"12")
    first = data_digest(tmp_path / "d")
    assert len(first) == 16 and first == data_digest(tmp_path / "d")
    (tmp_path / "d" / "b.png").write_bytes(b"1")
    assert data_digest(tmp_path / "d") != first
    assert data_digest(tmp_path / "missing") == ""


def test_network_cache_builds_once_and_sees_a_rewritten_file(tmp_path):
    clear_network_cache()
    built = []
    path = tmp_path / "w.bin"
    path.write_bytes(b"1")

    def build():
        built.append(1)
        return object()

    first = cached_network(("net", *file_key(path)), build)
    assert cached_network(("net", *file_key(path)), build) is first and len(built) == 1
    import os

    os.utime(path, ns=(1, 1))  # an overwritten file has a new mtime
    cached_network(("net", *file_key(path)), build)
    assert len(built) == 2
    clear_network_cache()


@pytest.mark.parametrize("build, kwargs, message", [
    ("mfif.models.liu_cnn.network:build_liu_cnn", {"variant": "original"},
     "no shipped weights for the original Liu CNN at {p}/liu_cnn_original.safetensors; train them with 'mfif train cnn' or pass --weights"),
    ("mfif.models.ba.network:build_ba_resnet", {"role": "boundary"},
     "no shipped weights for the BA boundary net at {p}/ba_boundary.safetensors; "
     "train them with 'mfif train ba --net boundary' or pass the weights file"),
    ("mfif.models.hourglass.network:build_hourglass", {"variant": "reg"},
     "no shipped weights for hf-reg at {p}/hf_reg.safetensors; train them with 'mfif train hf-reg' or pass --weights"),
    ("mfif.models.ifcnn.network:default_weights_path", {"fuse_rule": "sum"},
     "no shipped IFCNN weights for fuse rule 'sum' at {p}/ifcnn-sum.safetensors; train them with 'mfif train ifcnn' "
     "or pass weights=<file.pth> (e.g. the authors' IFCNN-MAX.pth)"),
])
def test_missing_shipped_weights_is_one_message_from_one_helper(build, kwargs, message, tmp_path, monkeypatch):
    import importlib

    from mfif.errors import WeightsError
    from mfif.models.weights import shipped_weights_file

    module, _, name = build.partition(":")
    module = importlib.import_module(module)
    monkeypatch.setattr(module, "WEIGHTS_DIR", tmp_path)  # a checkout without the shipped files
    with pytest.raises(WeightsError) as err:
        getattr(module, name)(**({"pretrained": True} if "default_weights" not in name else {}), **kwargs)
    assert str(err.value) == message.format(p=tmp_path)
    (tmp_path / "x.safetensors").write_bytes(b"")
    assert shipped_weights_file(tmp_path / "x.safetensors", what="w", train_command="c") == tmp_path / "x.safetensors"
