"""``h5forge follow FILE --keys PATH``: ``tail -f`` for an HDF5 scan being written (SWMR)."""

from __future__ import annotations

import argparse
import time

import numpy as np

from h5forge.follow import Follower, follow_frames

__all__ = ["add_parser", "run", "frame_stats"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``follow`` subcommand."""
    parser = subparsers.add_parser(
        "follow", help="print each frame of a live (SWMR) file as it completes",
        description="Follow FILE while another process writes it: one line per completed frame "
                    "(index, seconds since the previous one, statistics of each --data frame); "
                    "ends when --finished is set or nothing new comes for --timeout seconds.")
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("--keys", action="append", required=True, metavar="PATH",
                        help="a key dataset (or group of them); repeat for several")
    parser.add_argument("--data", action="append", default=[], metavar="PATH",
                        help="a frame dataset to summarize; repeat for several")
    parser.add_argument("--finished", metavar="PATH", help="the writer's finished flag")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="stop when no frame completes for S seconds (default 10)")
    parser.add_argument("--poll", type=float, default=None, metavar="S",
                        help="poll interval in seconds (default 0.05)")
    parser.set_defaults(func=run)


def frame_stats(frame: np.ndarray) -> str:
    """``mean=1.5 min=0 max=3`` for numbers, the shape otherwise."""
    arr = np.asarray(frame)
    if arr.size and arr.dtype.kind in "biuf":
        return (f"mean={float(arr.mean()):.4g} min={arr.min().item():.4g} "
                f"max={arr.max().item():.4g}")
    return f"shape={arr.shape}"


def run(args: argparse.Namespace) -> int:
    data = {path: path for path in args.data}
    options = {"timeout": args.timeout, "finished": args.finished, "poll_interval": args.poll}
    started = previous = time.monotonic()
    count = 0
    with Follower(args.file, args.keys, **options) as follower:
        for index, frame_data in follow_frames(follower, data):
            now = time.monotonic()
            stats = "  ".join(f"{name}: {frame_stats(frame)}"
                              for name, frame in frame_data.items())
            print(f"frame {index:>7}  +{now - previous:7.3f} s  {stats}".rstrip(), flush=True)
            previous = now
            count += 1
        how = "finished" if follower.finished else f"timed out after {args.timeout:g} s"
    print(f"{count} frame(s) in {time.monotonic() - started:.2f} s; {how}")
    return 0
