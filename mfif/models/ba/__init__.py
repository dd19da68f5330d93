"""``ba``: the boundary-aware method (Ma et al. 2019). ``network`` (the two-channel ResNet, its
weights), ``pipeline`` (the fusion method), ``trainer`` (``mfif train ba``)."""
