"""The learned methods' shared torch parts: weights I/O (:mod:`~mfif.models.weights`, safetensors
with the metadata in the header) and the network cache (:mod:`~mfif.models.cache`)."""
