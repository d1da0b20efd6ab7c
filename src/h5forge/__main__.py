"""``python -m h5forge``: the same as the ``h5forge`` command."""

import sys

from h5forge.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
