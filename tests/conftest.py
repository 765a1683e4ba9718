"""Shared pytest fixtures; each helper module below defines its own."""

from fixtures_hdf5 import no_noops_file, original_file, pick_place_demos  # noqa: F401
