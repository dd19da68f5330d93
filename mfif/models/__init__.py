"""The learned methods, one folder each (its network, fusion pipeline, trainer; see
``MethodSpec.tile_plan`` for its tile plan), and the shared torch parts once: weights I/O in
safetensors (:mod:`~mfif.models.weights`), the network cache (:mod:`~mfif.models.cache`), device
choice (:mod:`~mfif.models.device`) and the training loop (:mod:`~mfif.models.training`)."""
