"""Synthetic multi-focus data: blur models, focus-map sources, layered compositing, the papers'
recipes, on-the-fly torch datasets, and writers (datasets, contact sheets, the dev set).

Modules: :mod:`~mfif.synth.blur`, :mod:`~mfif.synth.focus_maps`, :mod:`~mfif.synth.compose`,
:mod:`~mfif.synth.sources`, :mod:`~mfif.synth.augment`, :mod:`~mfif.synth.recipes`,
:mod:`~mfif.synth.datasets` (imports torch), :mod:`~mfif.synth.write`, :mod:`~mfif.synth.cli`,
:mod:`~mfif.synth.thinlens` (thin-lens rendering of layered scenes, focal sweeps),
:mod:`~mfif.synth.prerender` (training pairs written once to disk and streamed back). See README.md.
"""
from mfif.synth.augment import Augment
from mfif.synth.compose import LayerStack, composite_hard
from mfif.synth.recipes import (RECIPES, BARecipe, HourglassRecipe, IfcnnRecipe, LayeredRecipe, LiuRecipe,
                                MultiFocusSample, PatchSample, ThinLensRecipe, get_recipe)
from mfif.synth.sources import PhotoSource

__all__ = [
    "Augment", "LayerStack", "composite_hard", "RECIPES", "BARecipe", "HourglassRecipe", "IfcnnRecipe",
    "LayeredRecipe", "LiuRecipe", "MultiFocusSample", "PatchSample", "ThinLensRecipe", "get_recipe", "PhotoSource",
]
