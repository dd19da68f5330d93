"""Training: one plain loop per network, configs as dataclasses (``mfif train NET``, see :mod:`mfif.train.cli`)."""
