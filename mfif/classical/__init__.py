"""Classical (hand-made) fusion baselines, one per file."""
