"""``h5forge tree FILE [PATH]``: the stored object tree, like ``h5ls -r`` in the store's terms.

Prints the rows of :mod:`h5forge.store.inspect` (which knows the store's format), one line per
node, indented by depth. Only h5py is used to read: no class named in the file is imported.
"""

from __future__ import annotations

import argparse

from h5forge.store.inspect import tree_lines

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``tree`` subcommand."""
    parser = subparsers.add_parser(
        "tree",
        help="print the stored object tree of a file",
        description="Print the object tree stored in FILE under PATH: one line per node with "
                    "its Python type, shape, dtype and size on disk. Reads with h5py only; "
                    "never imports a class named in the file.",
    )
    parser.add_argument("file", metavar="FILE", help="an HDF5 file (written by h5forge or not)")
    parser.add_argument("path", metavar="PATH", nargs="?", default="/",
                        help="the HDF5 path to start at (default: /)")
    parser.add_argument("--depth", type=_depth, default=None, metavar="N",
                        help="show at most N levels below PATH")
    parser.add_argument("--attrs", action="store_true",
                        help="also print each node's metadata attributes (class, keys, ...)")
    parser.set_defaults(func=run)


def _depth(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    """Print the tree for the parsed ``tree`` arguments; return the exit code."""
    for line in tree_lines(args.file, args.path, depth=args.depth, show_attrs=args.attrs):
        print(line)
    return 0
