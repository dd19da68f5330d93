"""``hf-seg`` / ``hf-reg``: the Guerrero Pena et al. 2019 hourglass U-Net. ``network`` (the net, its
weights), ``pipeline`` (the fusion methods), ``trainer`` (``mfif train hf-seg|hf-reg``)."""
