"""``cnn`` / ``cnn-slight``: the Liu et al. 2017 siamese CNN. ``network`` (the net, its weights),
``pipeline`` (the fusion method), ``trainer`` (``mfif train cnn``)."""
