"""Atomic action slicing for LIBERO demonstrations."""

__version__ = "0.1.0"
