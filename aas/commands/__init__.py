"""One module per ``aas`` command, each with a ``Config`` dataclass and ``run``."""
