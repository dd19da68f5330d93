"""Evaluation (`mfif eval`) and speed benchmarks (`mfif bench`)."""
