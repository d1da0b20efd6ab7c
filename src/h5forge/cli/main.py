"""``h5forge``: argument parsing, subcommand discovery and error reporting.

A subcommand is a module of :mod:`h5forge.cli` with ``add_parser(subparsers)``; that function
adds its parser to ``subparsers`` and sets ``func`` (``func(args) -> int``, the exit code) with
``set_defaults``. Dropping a new module into the package is all it takes to add a subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from types import ModuleType
from typing import Sequence

import h5forge
from h5forge.errors import H5ForgeError

__all__ = ["main", "build_parser", "subcommand_modules", "PROG", "EXIT_ERROR"]

PROG = "h5forge"
#: Exit code for every error h5forge reports (bad arguments, missing files, h5forge errors).
EXIT_ERROR = 2


def subcommand_modules() -> list[ModuleType]:
    """The subcommand modules of :mod:`h5forge.cli`, sorted by name."""
    package = importlib.import_module("h5forge.cli")
    modules = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "main":
            continue
        module = importlib.import_module(f"h5forge.cli.{info.name}")
        if callable(getattr(module, "add_parser", None)):
            modules.append(module)
    return modules


def build_parser() -> argparse.ArgumentParser:
    """The ``h5forge`` parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Keep scientific data in plain HDF5: inspect, configure, version, follow "
                    "and process h5forge files.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {h5forge.__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in subcommand_modules():
        module.add_parser(subparsers)
    return parser


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _stdout_closed() -> int:
    """The reader of our output went away (``h5forge tree big.h5 | head``): exit quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (e.g. captured by a test)
        pass
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``h5forge`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit
    code. Errors h5forge raises on purpose, and OS errors such as a missing file, are printed
    as ``h5forge: error: <message>`` with exit code 2, without a traceback."""
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        return _stdout_closed()
    except H5ForgeError as exc:
        if not getattr(exc, "h5forge_report", True):  # an MPI rank whose peer failed and
            return EXIT_ERROR                           # reported it there
        return _error(str(exc))
    except OSError as exc:
        if exc.filename is not None and exc.strerror:
            return _error(f"{exc.filename}: {exc.strerror}")
        return _error(str(exc))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
