"""Learned fusion methods: one file per method (pipeline around a network from :mod:`mfif.nets`)."""
