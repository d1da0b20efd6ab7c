"""``h5forge config FILE``: print (or save) the dataset I/O plan of a file.

By default the plan ``h5forge repack`` would apply (default chunks and compression for every
dataset there); ``--current`` shows how the datasets are written now. ``--yaml``/``-o`` give the
plan as YAML, to edit and pass to ``h5forge repack --config``.
"""

from __future__ import annotations

import argparse

from h5forge.cli._plan_options import add_plan_arguments, apply_compression_arguments
from h5forge.io import get_current_configuration, get_default_configuration

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``config`` subcommand."""
    parser = subparsers.add_parser(
        "config",
        help="print the chunking/compression plan of a file's datasets",
        description="Print the dataset I/O plan for every dataset in FILE: dtype, shape, size, "
                    "buffer, chunks and compression. Default: the plan `h5forge repack` would "
                    "apply; --current: how the datasets are stored now.",
    )
    parser.add_argument("file", metavar="FILE", help="an HDF5 file")
    parser.add_argument("--current", action="store_true",
                        help="show the chunks and compression the datasets have now")
    parser.add_argument("--yaml", action="store_true", help="print the plan as YAML")
    parser.add_argument("-o", "--output", metavar="PLAN.yaml",
                        help="save the plan as YAML (for `h5forge repack --config`)")
    add_plan_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print or save the plan for the parsed ``config`` arguments; return the exit code."""
    read = get_current_configuration if args.current else get_default_configuration
    plan = read(args.file)
    apply_compression_arguments(plan, args)
    if args.output:
        plan.to_yaml(args.output)
        print(f"wrote the plan for {len(plan)} dataset(s) to {args.output}")
    elif args.yaml:
        print(plan.to_yaml(), end="")
    else:
        print(plan)
    return 0
