"""Networks: one file per network (class, builder, weights loader). Imported lazily by the method
table (``mfif.methods``) so that classical methods never import torch."""
