"""Options dataclasses from text and renamed options (mfif.options): each method option has one
meaning, the old ``mode`` spelling of the renamed ones still works with a deprecation warning."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from PIL import Image

from mfif.cli import main
from mfif.errors import InputError
from mfif.methods import METHODS
from mfif.options import parse_options, renamed_options

@pytest.mark.parametrize("name", list(METHODS))
def test_no_method_option_is_called_mode_and_renames_point_at_fields(name):
    _, cls = METHODS[name].load()
    fields = {f.name for f in dataclasses.fields(cls)}
    for old, new in (getattr(cls, "RENAMED_OPTIONS", None) or {}).items():
        assert new in fields and old not in fields, (old, new)
    assert "mode" not in fields


@pytest.mark.parametrize("name, new, value", [("dwt", "border", "zero"), ("cnn-slight", "nframe_strategy", "series"), ("hf-seg", "nframe_strategy", "series"),
                          ("ifcnn-max", "modality", "medical")])
def test_old_name_mode_reads_as_the_new_option_with_a_warning(name, new, value):
    spec = METHODS[name]
    with pytest.warns(FutureWarning, match=f"option 'mode' is deprecated, use '{new}'"):
        opts = spec.make_options(mode=value)
    assert getattr(opts, new) == value
    with pytest.warns(FutureWarning, match=new):
        assert spec.parse_options({"mode": value}) == {new: value}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name: no warning
        assert getattr(spec.make_options(**{new: value}), new) == value
    with pytest.raises(InputError, match=f"give {new} only"):
        spec.make_options(**{"mode": value, new: value})


def test_renamed_options_leaves_classes_without_renames_alone():
    @dataclasses.dataclass
    class Plain:
        mode: int = 0

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert renamed_options(Plain, {"mode": 3}) == {"mode": 3}
        assert parse_options(Plain, {"mode": "3"}) == {"mode": 3}


def test_cli_deprecated_mode_flag_gives_the_same_image_as_the_new_option(tmp_path, capsys):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(paths[-1])
    outs = {}
    for label, flags in (("old", ["--mode", "zero"]), ("new", ["--opt", "border=zero"]), ("default", [])):
        outs[label] = tmp_path / f"{label}.png"
        code = main(["fuse", *map(str, paths), "-o", str(outs[label]), "-m", "dwt", "-q", *flags])
        _, err = capsys.readouterr()
        assert code == 0
        assert ("mfif: warning: method 'dwt': option 'mode' is deprecated, use 'border'" in err) == (label == "old")
    old, new, default = (np.asarray(Image.open(outs[k])) for k in ("old", "new", "default"))
    np.testing.assert_array_equal(old, new)
    assert np.abs(new.astype(int) - default).max() > 0  # the option reached the method
