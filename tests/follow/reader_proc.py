"""A reader process for the ``h5forge.follow`` tests whose failure mode is a crash.

    python reader_proc.py PATH --hold data,key --scan-rank 2 [--datasets] [--mode r]

It opens PATH itself (``--mode swmr``: SWMR reading, retried until the writer switched SWMR
on; ``--mode r``: a plain read), keeps the h5py objects named by ``--hold`` open as a
swmr_tools user would, follows with ``h5forge.follow`` and prints one JSON line per frame
(``index``, ``min``, ``max``, ``shape``: every element equals ``index + 1`` iff min == max ==
index + 1) and a last line with how it ended. Run in a subprocess so that a segfault fails
the one test instead of ending the suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import h5py
import numpy as np

from h5forge.follow import Follower, follow_frames

KEY, DATA, FINISHED = "entry/keys/k1", "entry/data", "entry/finished"


def open_file(path: str, mode: str, timeout: float = 15) -> h5py.File:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if mode == "swmr":
                return h5py.File(path, "r", libver="latest", swmr=True)
            return h5py.File(path, "r")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--hold", default="", help="comma-separated: data, key, finished")
    parser.add_argument("--datasets", action="store_true",
                        help="pass h5py.Dataset objects (no file) instead of paths")
    parser.add_argument("--mode", choices=["swmr", "r"], default="swmr")
    parser.add_argument("--timeout", type=float, default=3)
    parser.add_argument("--direct", choices=["auto", "yes", "no"], default="no")
    args = parser.parse_args(argv)
    f = open_file(args.path, args.mode)
    held = {name: f[path] for name, path in
            (("data", DATA), ("key", KEY), ("finished", FINISHED))
            if name in args.hold.split(",")}
    if args.datasets:
        follower = Follower(None, [held.get("key") or f[KEY]],
                            finished=held.get("finished") or f[FINISHED], timeout=args.timeout)
        data = {"d": held.get("data") or f[DATA]}
    else:
        follower = Follower(f, KEY, finished=FINISHED, timeout=args.timeout)
        data = {"d": DATA}
    direct = {"auto": None, "yes": True, "no": False}[args.direct]
    with follower:
        for index, frames in follow_frames(follower, data, direct=direct):
            values = np.asarray(frames["d"])
            print(json.dumps({"index": index, "min": int(values.min()),
                              "max": int(values.max()), "shape": list(values.shape)}),
                  flush=True)
        print(json.dumps({"end": True, "finished": follower.finished,
                          "timed_out": follower.timed_out,
                          "scan_rank": follower.scan_rank,
                          "complete": follower.are_keys_complete(),
                          "held_valid": all(bool(obj.id.valid) for obj in held.values())}),
              flush=True)
    # the held handles are still usable by their owner after following
    for obj in held.values():
        obj.refresh() if args.mode == "swmr" else None
        obj[()]
    f.close()
    print(json.dumps({"closed": True}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
