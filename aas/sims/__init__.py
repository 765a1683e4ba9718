"""LIBERO runtime setup, environments, scripted demo generation and evaluation."""
