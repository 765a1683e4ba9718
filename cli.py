"""Run the ``aas`` command from a checkout: ``python cli.py <command> ...``."""

import sys

from aas.cli import main

if __name__ == "__main__":
    sys.exit(main())
