"""``ifcnn-*``: IFCNN (Zhang et al. 2020). ``network`` (the net, its weights), ``pipeline`` (the
fusion method), ``trainer`` (``mfif train ifcnn``)."""
