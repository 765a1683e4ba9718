"""LIBERO HDF5 I/O and dataset exports (GATE-VLAP, WebDataset, LeRobot, Hub)."""
