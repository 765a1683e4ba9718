"""Shared pytest fixtures, imported from the modules that define them."""

from fixtures_hdf5 import no_noops_file, original_file, pick_place_demos  # noqa: F401
