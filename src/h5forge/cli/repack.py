"""``h5forge repack SRC DST``: rewrite a file with new chunks and compression, everything else
(groups, attributes, links, the store's objects) as it was."""

from __future__ import annotations

import argparse
import logging
import sys

from h5forge.cli._plan_options import add_plan_arguments, apply_compression_arguments
from h5forge.io import BackendConfiguration, get_default_configuration, repack

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``repack`` subcommand."""
    parser = subparsers.add_parser(
        "repack",
        help="rewrite a file with a new chunking/compression plan",
        description="Copy SRC to DST, writing every dataset with the plan: --config PLAN.yaml "
                    "(from `h5forge config FILE -o PLAN.yaml`), else the default plan; "
                    "--compression overrides the compression of every chunked dataset. "
                    "Groups, attributes and links are kept. DST may be SRC with --overwrite.",
    )
    parser.add_argument("src", metavar="SRC", help="the HDF5 file to read")
    parser.add_argument("dst", metavar="DST", help="the HDF5 file to write")
    parser.add_argument("--config", metavar="PLAN.yaml",
                        help="a YAML plan; datasets it does not name get the defaults")
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads compressing and decompressing chunks (default: every "
                             "core)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="say how each dataset was written: chunks compressed in threads, "
                             "or HDF5's one-core filter pipeline and why")
    add_plan_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Repack for the parsed ``repack`` arguments; return the exit code."""
    plan = None
    if args.config is not None:
        plan = BackendConfiguration.from_yaml(args.config)
    if args.compression is not None:
        if plan is None:
            plan = get_default_configuration(args.src)
        apply_compression_arguments(plan, args)
    else:
        apply_compression_arguments(BackendConfiguration(), args)  # rejects a lone --level
    handler = None
    if args.verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("h5forge: %(message)s"))
        log = logging.getLogger("h5forge.io.parallel")
        log.addHandler(handler)
        level = log.level
        log.setLevel(logging.INFO)
    try:
        reports = repack(args.src, args.dst, plan, progress=False if args.no_progress else None,
                         overwrite=args.overwrite, threads=args.threads)
    finally:
        if handler is not None:
            log.removeHandler(handler)
            log.setLevel(level)
    if args.verbose:
        for report in reports:
            print(report)
    return 0
