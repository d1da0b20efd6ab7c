"""The ``h5forge`` command line.

One module per subcommand (``tree``, later ``config``, ``repack``, ``versions``, ``follow``,
``flow``). Each exposes ``add_parser(subparsers)``, which adds its parser and sets
``func(args) -> int`` as the parser default; :func:`h5forge.cli.main.main` finds them by
scanning this package (modules whose name starts with ``_`` are helpers, not subcommands).
Subcommand modules import heavy or optional libraries inside ``func``, not at import time.
Nothing else in h5forge imports this package.
"""

from h5forge.cli.main import build_parser, main

__all__ = ["main", "build_parser"]
