"""The name -> method table. Every method, classical or learned, is one kind of callable:

    function(stack: float32 (N, C, H, W) in [0, 1], options: <its options dataclass>) -> FusionResult

Entries load their module lazily (so ``mfif list`` and the classical methods never import torch);
the table itself is explicit: add a line here for a new method.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable

from mfif.errors import InputError


@dataclass(frozen=True)
class MethodSpec:
    """One fusion method.

    Attributes:
        name: the CLI/API name (``gff``, ``cnn-slight``, ...).
        summary: one-line description for ``mfif list``.
        module: module that implements it.
        function: name of the fusion function in that module.
        options: name of the options dataclass in that module.
        kind: ``"classical"`` or ``"learned"``.
        defaults: option values that differ between variants sharing one function.
        stream: optional name of a running-reduction function in that module,
            ``fn(frames, options) -> FusionResult`` where ``frames`` only supports ``len`` and
            ``frames[i]`` -> (C, H, W); it must equal ``function`` on the stacked frames
            (:mod:`mfif.stacking`). None: the method merges long stacks in batches.
        stream_tile: the running reduction takes ``tile=`` (the tile size of its per-frame filters).
        tile_plan: optional ``fn(options, shape) -> mfif.tiling.TilePlan`` (halo, grid, global
            step), as a name in ``module`` or ``"other.module:name"``; None: the method declares no
            receptive field (tiles only on request, approximately).
        weights: file names in ``mfif/weights`` that the method loads by default (learned methods):
            a retrained file invalidates exactly this method's cached evaluation results.
        order_independent: the fused image does not depend on the order of the frames (with the
            default options; checked by ``tests/test_methods.py``).
    """

    name: str
    summary: str
    module: str
    function: str
    options: str
    kind: str = "classical"
    defaults: tuple[tuple[str, Any], ...] = ()
    stream: str | None = None
    stream_tile: bool = False
    tile_plan: str | None = None
    weights: tuple[str, ...] = ()
    order_independent: bool = False

    def load(self) -> tuple[Callable, type]:
        mod = importlib.import_module(self.module)
        return getattr(mod, self.function), getattr(mod, self.options)

    def _resolve(self, name: str) -> Callable:
        module, sep, attr = name.rpartition(":")
        return getattr(importlib.import_module(module if sep else self.module), attr)

    def load_stream(self) -> Callable | None:
        """The running reduction, ``fn(frames, options[, tile=])``, or None."""
        return self._resolve(self.stream) if self.stream else None

    def load_tile_plan(self) -> Callable | None:
        """The tile plan function ``fn(options, shape) -> TilePlan``, or None."""
        return self._resolve(self.tile_plan) if self.tile_plan else None

    def parse_options(self, texts: dict[str, str]) -> dict[str, Any]:
        """``{"key": "text"}`` (``--opt KEY=VALUE``) -> values typed from the options dataclass fields."""
        from mfif.options import parse_options

        return parse_options(self.load()[1], texts, owner=f"method '{self.name}'")

    def make_options(self, **overrides):
        """Build the options dataclass from this entry's defaults and ``overrides`` (checked)."""
        from mfif.options import renamed_options

        _, options_cls = self.load()
        overrides = renamed_options(options_cls, overrides, owner=f"method '{self.name}'")
        names = {f.name for f in dataclasses.fields(options_cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise InputError(f"method '{self.name}' has no option(s) {', '.join(unknown)}; "
                             f"valid options: {', '.join(sorted(names)) or '(none)'}")
        values = dict(self.defaults)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return options_cls(**values)


_SPECS = (
    MethodSpec("average", "pixel-wise mean of the frames (the reference baseline)",
               "mfif.classical.average", "average_fusion", "AverageOptions", stream="average_stream",
               tile_plan="average_tile_plan", order_independent=True),
    MethodSpec("laplacian", "Laplacian pyramid, max-abs detail with consistency check, averaged base (Burt & Adelson 1983)",
               "mfif.classical.laplacian", "laplacian_pyramid_fusion", "LaplacianOptions", stream="laplacian_pyramid_stream",
               tile_plan="laplacian_tile_plan", order_independent=True),
    MethodSpec("dwt", "discrete wavelet transform, max-abs detail, averaged approximation (Li et al. 1995)",
               "mfif.classical.dwt", "wavelet_fusion", "WaveletOptions", stream="wavelet_stream",
               tile_plan="wavelet_tile_plan", order_independent=True),
    MethodSpec("gff", "guided filtering fusion, two-scale (Li, Kang, Hu 2013)",
               "mfif.classical.gff", "guided_filtering_fusion", "GFFOptions", stream="guided_filtering_stream",
               stream_tile=True, tile_plan="gff_tile_plan", order_independent=True),
    MethodSpec("dct-cv", "DCT-domain block variance with consistency verification (Haghighat et al. 2011)",
               "mfif.classical.dct_cv", "dct_variance_fusion", "DCTOptions", stream="dct_variance_stream",
               tile_plan="dct_tile_plan", order_independent=True),
    MethodSpec("sml", "sum-modified-Laplacian choose-max, small-region removal, guided refinement",
               "mfif.classical.sml", "sml_fusion", "SMLOptions", stream="sml_stream",
               stream_tile=True, tile_plan="sml_tile_plan", order_independent=True),
    MethodSpec("hf-seg", "hourglass U-Net focus-map segmentation, weighted average (Guerrero Pena et al. 2019)",
               "mfif.models.hourglass.pipeline", "hf_seg_fusion", "HFSegOptions", kind="learned",
               weights=("hf_seg.safetensors",), tile_plan="mfif.models.hourglass.tile_plan:hf_seg_tile_plan"),
    MethodSpec("hf-reg", "hourglass U-Net regressing the all-in-focus image, optional Near (Guerrero Pena et al. 2019)",
               "mfif.models.hourglass.pipeline", "hf_reg_fusion", "HFRegOptions", kind="learned",
               weights=("hf_reg.safetensors",), tile_plan="mfif.models.hourglass.tile_plan:hf_reg_tile_plan"),
    MethodSpec("cnn", "siamese CNN focus map, small-region removal, guided filter (Liu et al. 2017)",
               "mfif.models.liu_cnn.pipeline", "liu_cnn_fusion", "LiuCNNOptions", kind="learned",
               defaults=(("variant", "original"),), weights=("liu_cnn_original.safetensors",), tile_plan="mfif.models.liu_cnn.tile_plan:liu_cnn_tile_plan"),
    MethodSpec("cnn-slight", "Liu et al. 2017 CNN without fc1 (the authors' released 'slight' model)",
               "mfif.models.liu_cnn.pipeline", "liu_cnn_fusion", "LiuCNNOptions", kind="learned",
               defaults=(("variant", "slight"),), weights=("liu_cnn_slight.safetensors",), tile_plan="mfif.models.liu_cnn.tile_plan:liu_cnn_tile_plan"),
    MethodSpec("ifcnn-max", "IFCNN, elementwise-max feature fusion (Zhang et al. 2020); --opt modality=multifocus|infrared|medical|exposure",
               "mfif.models.ifcnn.pipeline", "ifcnn_fusion", "IFCNNOptions", kind="learned",
               defaults=(("fuse_rule", "max"),), weights=("ifcnn-max.safetensors",), tile_plan="mfif.models.ifcnn.tile_plan:ifcnn_tile_plan",
               order_independent=True),
    MethodSpec("ifcnn-mean", "IFCNN, elementwise-mean feature fusion (the paper's choice for multi-exposure stacks)",
               "mfif.models.ifcnn.pipeline", "ifcnn_fusion", "IFCNNOptions", kind="learned",
               defaults=(("fuse_rule", "mean"),), weights=("ifcnn-mean.safetensors",), tile_plan="mfif.models.ifcnn.tile_plan:ifcnn_tile_plan",
               order_independent=True),
    MethodSpec("ifcnn-sum", "IFCNN, elementwise-sum feature fusion",
               "mfif.models.ifcnn.pipeline", "ifcnn_fusion", "IFCNNOptions", kind="learned",
               defaults=(("fuse_rule", "sum"),), weights=("ifcnn-sum.safetensors",), tile_plan="mfif.models.ifcnn.tile_plan:ifcnn_tile_plan",
               order_independent=True),
    MethodSpec("ba", "boundary-aware 2-channel ResNets: initial net + boundary refinement net (Ma et al. 2019)",
               "mfif.models.ba.pipeline", "ba_fusion", "BAOptions", kind="learned",
               weights=("ba_initial.safetensors", "ba_boundary.safetensors"), tile_plan="mfif.models.ba.tile_plan:ba_tile_plan",
               order_independent=True),
    MethodSpec("focusnet", "ours: multi-scale focus measures, small learned weight refinement (N-frame, no torch), pyramid blend",
               "mfif.focusnet.pipeline", "focusnet_fusion", "FocusNetOptions", kind="learned",
               weights=("focusnet.safetensors",), stream="focusnet_stream", stream_tile=True, tile_plan="focusnet_tile_plan",
               order_independent=True),
)

METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in _SPECS}

DEFAULT_METHOD = "gff"


def get_method(name: str | MethodSpec) -> MethodSpec:
    """Look a method up by name (a :class:`MethodSpec` is returned as it is, so a spec resolved
    once travels on); an unknown name is an error listing the known ones."""
    if isinstance(name, MethodSpec):
        return name
    try:
        return METHODS[name]
    except KeyError:
        raise InputError(f"unknown method '{name}'; available: {', '.join(METHODS)}") from None


def available_methods() -> list[str]:
    return list(METHODS)
