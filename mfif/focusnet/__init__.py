"""focusnet: our fusion method (multi-scale focus measures, a small learned refinement, pyramid blend); see pipeline.py."""
