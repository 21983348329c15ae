"""``python -m cyclicsess``: the command line (see :mod:`cyclicsess.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
