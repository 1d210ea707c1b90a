"""Fuzz targets for every byte parser labeler owns, and a runner (``bash fuzz/run``)."""
