"""Follow a file with swmr_tools or with ``h5forge.follow.compat``, the same code for both.

    python peer_proc.py {swmr_tools,compat} PATH --kind datasource [--direct] [--timeout S]

The reader module is imported as ``st``, so every call below is swmr_tools' API, run
unchanged against either implementation. It prints one JSON line per item (index, scan
slices, maxshape, and per frame: shape, dtype, sha1 of the bytes, min and max) and an end
line. Run in a subprocess: two readers of one file in one process would share HDF5's
dataset records, and swmr_tools' handles would get in the way of the other reader.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys

import numpy as np
from reader_proc import open_file  # the script's folder is on sys.path

KEY, DATA, FINISHED = "entry/keys/k1", "entry/data", "entry/finished"


def describe(frame: np.ndarray) -> dict:
    frame = np.ascontiguousarray(frame)
    return {"shape": list(frame.shape), "dtype": frame.dtype.str,
            "sha1": hashlib.sha1(frame.tobytes()).hexdigest(),
            "min": frame.min().item(), "max": frame.max().item()}


def _int(n):
    return None if n is None else int(n)


def slices(meta) -> list:
    return [[_int(s.start), _int(s.stop)] for s in meta]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("impl", choices=["swmr_tools", "compat"])
    parser.add_argument("path")
    parser.add_argument("--kind", default="datasource",
                        choices=["datasource", "keyfollower", "rowkeyfollower", "chunksource",
                                 "interleaved"])
    parser.add_argument("--direct", action="store_true")
    parser.add_argument("--timeout", type=float, default=3)
    args = parser.parse_args(argv)
    st = importlib.import_module("swmr_tools" if args.impl == "swmr_tools"
                                 else "h5forge.follow.compat")
    f = open_file(args.path, "swmr")
    out = print
    if args.kind == "datasource":
        source = st.DataSource([f[KEY]], {"data": f[DATA]}, timeout=args.timeout,
                               finished_dataset=f[FINISHED], use_direct_chunk=args.direct)
        for item in source:
            out(json.dumps({"index": int(item.index), "slices": slices(item.slice_metadata),
                            "maxshape": [_int(n) for n in item.maxshape],
                            **describe(item["data"])}))
        end = {"finished": bool(source.is_scan_finished()),
               "timed_out": bool(source.has_timed_out())}
    elif args.kind == "interleaved":
        parts = [f[f"entry/part{n}"] for n in range(2)]
        source = st.DataSource([f[KEY]], None, timeout=args.timeout,
                               finished_dataset=f[FINISHED],
                               interleaved_datasets={"data": parts})
        for item in source:
            out(json.dumps({"index": int(item.index), "slices": slices(item.slice_metadata),
                            "maxshape": [_int(n) for n in item.maxshape],
                            **describe(item["data"])}))
        end = {"finished": bool(source.is_scan_finished()),
               "timed_out": bool(source.has_timed_out())}
    elif args.kind in ("keyfollower", "rowkeyfollower"):
        cls = st.KeyFollower if args.kind == "keyfollower" else st.RowKeyFollower
        follower = cls([f[KEY]], timeout=args.timeout, finished_dataset=f[FINISHED])
        follower.check_datasets()
        for index in follower:
            out(json.dumps({"index": int(index)}))
        inner = getattr(follower, "inner_key_follower", follower)
        end = {"finished": bool(inner.finished_set), "timed_out": bool(inner.timed_out),
               "scan_rank": follower.scan_rank, "maxshape": [_int(n) for n in follower.maxshape],
               "complete": bool(inner.are_keys_complete())}
    else:  # chunksource
        source = st.ChunkSource({"data": f[DATA]}, timeout=args.timeout)
        for item in source:
            out(json.dumps({"index": int(item.index), **describe(item["data"])}))
        end = {}
    out(json.dumps({"end": True, **end}))
    f.close()


if __name__ == "__main__":
    main(sys.argv[1:])
