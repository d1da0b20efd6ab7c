"""``h5forge flow -c CONFIG... -o OUTPUT``: run YAML pipelines over table-like HDF5."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``flow`` subcommand."""
    parser = subparsers.add_parser(
        "flow", help="run YAML pipelines (h5flow's model) over table-like HDF5",
        description="Run the flows of CONFIG files one after another into OUTPUT: the source "
                    "is looped over in chunks through each config's stages.")
    parser.add_argument("-c", "--configs", nargs="+", required=True, metavar="CONFIG",
                        help="YAML flow configurations, run in order")
    parser.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                        help="the HDF5 file to write (created if missing)")
    parser.add_argument("-i", "--input", metavar="INPUT",
                        help="the HDF5 file the first source is read from (read-only)")
    parser.add_argument("-s", "--start", type=int, metavar="START",
                        help="first source row to process")
    parser.add_argument("-e", "--end", type=int, metavar="END", help="source row to stop at")
    parser.add_argument("-d", "--drop", nargs="+", default=[], metavar="DROP",
                        help="tables to leave out of the output (exact paths)")
    parser.add_argument("-z", "--compression", metavar="METHOD",
                        help="compression for every table created (e.g. gzip, lzf, zstd)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the summary per stage, and whether MPI is used and why")
    parser.add_argument("--nompi", action="store_true",
                        help="run on one rank even under mpiexec (also: H5FORGE_NOMPI=1)")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from h5forge.flow import run as run_flow
    from h5forge.flow.mpi import ranks

    here = ranks(True if args.nompi else None)
    if args.verbose and here.rank == 0 and here.active:
        print(f"h5forge flow: {here.reason}")
    summary = run_flow(args.configs, args.output, input=args.input, start=args.start,
                       end=args.end, drop=args.drop, compression=args.compression,
                       progress=False if args.no_progress else None,
                       nompi=True if args.nompi else None)
    if here.rank != 0 or not here.active:  # one report, from rank 0
        return 0
    on = f" on {summary.ranks} ranks" if summary.ranks > 1 else ""
    print(f"{args.output}: {summary.rows} rows in {summary.chunks} chunks{on}, "
          f"{summary.seconds:.2f} s")
    if args.verbose:
        for name, seconds in summary.stage_seconds.items():
            print(f"  {name}: {seconds:.3f} s")
    return 0
