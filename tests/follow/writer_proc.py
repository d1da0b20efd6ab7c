"""Writer processes for the ``h5forge.follow`` tests: run as a script in a subprocess.

    python writer_proc.py live   PATH --count N --interval S [options]
    python writer_proc.py raw    PATH --count N --interval S [options]
    python writer_proc.py static PATH --count N [--scan R,C] [--libver latest]
    python writer_proc.py chunks PATH --count N --chunk C [--growing]

``raw --grow row|point --scan R,C`` starts keys and frames at (1, 1) with maxshape the scan
and resizes them as it goes (``--scan N --grow row``: a stack started at 1 frame).
``static`` writes a complete file (keys set, finished = 1) without SWMR, in HDF5's default
(earliest) format unless ``--libver latest``, with chunked keys and frames (a v1 B-tree chunk
index), then exits.

``live`` writes with :class:`h5forge.follow.LiveWriter`; ``raw`` writes with plain h5py (it
does not import h5forge) to show the follower works with writers that know nothing of it.

Frame ``i`` is ``np.full(frame_shape, i + 1)``, so a reader can check every frame it gets and
a fill-value (0) frame is never mistaken for a written one.

The writer reports on stdout, one flushed line per event, so the test can synchronise with it:

    created <t>    the file exists (declared, SWMR not on yet)
    swmr <t>       SWMR is on: readers may open the file
    frame <i> <t>  frame i and its keys are written and flushed
    filled <i> <t> (raw --gap) the held-back key of frame i is written and flushed
    stalled <t>    (--stall) all frames written; the writer now sleeps without finishing
    finished <t>   the finished flag is set and flushed
    closed <t>     the file is closed
"""

from __future__ import annotations

import argparse
import sys
import time

import h5py
import numpy as np

FRAME_SHAPE = (4, 5)
DTYPE = "u2"


def frame(index: int, shape: tuple[int, ...] = FRAME_SHAPE, dtype: str = DTYPE) -> np.ndarray:
    """The frame the writers write at flat ``index``."""
    return np.full(shape, index + 1, dtype=dtype)


def say(*words: object) -> None:
    print(*words, f"{time.time():.6f}", flush=True)


def _shape(text: str | None) -> tuple[int, ...] | None:
    return None if not text else tuple(int(n) for n in text.split(","))


def run_live(args: argparse.Namespace) -> None:
    from h5forge.follow import LiveWriter

    scan = _shape(args.scan)
    with LiveWriter(args.path) as w:
        w.create_key("entry/keys", scan_shape=scan)
        w.create_frames("entry/data", frame_shape=FRAME_SHAPE, dtype=DTYPE,
                        n_frames=args.count if args.fixed else None)
        w.create_finished("entry/finished")
        w.attrs["sample"] = "Si"
        say("created")
        if args.swmr_delay:
            time.sleep(args.swmr_delay)
        w.start()
        say("swmr")
        time.sleep(args.first_delay)
        for i in range(args.count):
            time.sleep(args.interval)
            w.append(data=frame(i))
            say("frame", i)
        if args.stall:
            say("stalled")
            time.sleep(args.stall)
        if not args.no_finish:
            w.finish()
            say("finished")
    say("closed")


def run_static(args: argparse.Namespace) -> None:
    scan = _shape(args.scan) or (args.count,)
    with h5py.File(args.path, "w", libver=args.libver) as f:
        block = np.stack([frame(i) for i in range(args.count)])
        f.create_dataset("entry/data", data=block.reshape(scan + FRAME_SHAPE),
                         chunks=(1,) * len(scan) + FRAME_SHAPE)
        keys = np.full(scan + ((1, 1) if len(scan) > 1 else ()), 7, "i4")
        f.create_dataset("entry/keys/k1", data=keys, chunks=True)
        f.create_dataset("entry/finished", data=np.array([1], "i1"), chunks=(1,))
    say("closed")


def run_chunks(args: argparse.Namespace) -> None:
    """Whole chunks of ``--chunk`` frames at a time (what swmr_tools' ChunkSource expects),
    blosc-compressed; fixed size, or (``--growing``) resized a chunk at a time."""
    import hdf5plugin

    f = h5py.File(args.path, "w", libver="latest")
    n, c = args.count, args.chunk
    data = f.create_dataset("entry/data", shape=(0 if args.growing else n,) + FRAME_SHAPE,
                            maxshape=(None if args.growing else n,) + FRAME_SHAPE,
                            dtype=DTYPE, chunks=(c,) + FRAME_SHAPE,
                            **hdf5plugin.Blosc(cname="lz4", clevel=5))
    f.swmr_mode = True
    say("swmr")
    for start in range(0, n, c):
        time.sleep(args.interval)
        stop = min(start + c, n)
        if args.growing:
            data.resize(stop, axis=0)
        data[start:stop] = np.stack([frame(i) for i in range(start, stop)])
        data.flush()
        say("frame", stop - 1)
    f.close()
    say("closed")


def run_raw(args: argparse.Namespace) -> None:
    scan = _shape(args.scan)
    key_names = args.keys.split(",")
    f = h5py.File(args.path, "w", libver="latest")
    filters = {}
    if args.blosc:
        import hdf5plugin

        filters = dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))
    if args.grow:  # started (1, ...), maxshape the scan: resized as the scan goes
        one = (1,) * len(scan)
        data = f.create_dataset("entry/data", shape=one + FRAME_SHAPE, dtype=DTYPE,
                                maxshape=scan + FRAME_SHAPE, chunks=one + FRAME_SHAPE, **filters)
        keys = [f.create_dataset(f"entry/keys/{k}", shape=one, maxshape=scan, dtype="i4",
                                 chunks=scan[-1:] if len(scan) == 1 else (1, scan[1]))
                for k in key_names]
    elif scan is None:
        data = f.create_dataset("entry/data", shape=(0,) + FRAME_SHAPE, dtype=DTYPE,
                                maxshape=(None,) + FRAME_SHAPE, chunks=(1,) + FRAME_SHAPE)
        keys = [f.create_dataset(f"entry/keys/{k}", shape=(0,), maxshape=(None,), dtype="i4",
                                 chunks=(64,)) for k in key_names]
    else:  # a grid scan: keys shaped (rows, cols, 1, 1), frames (rows, cols, *frame)
        data = f.create_dataset("entry/data", shape=scan + FRAME_SHAPE, dtype=DTYPE,
                                chunks=(1,) * len(scan) + FRAME_SHAPE, **filters)
        chunks = None if args.contiguous_keys else scan + (1, 1)
        keys = [f.create_dataset(f"entry/keys/{k}", shape=scan + (1, 1), dtype="i4",
                                 chunks=chunks) for k in key_names]
    finished = f.create_dataset("entry/finished", dtype="i1",  # scalar, or (1,) for swmr_tools
                                data=np.zeros((1,) if args.finished_1 else (), "i1"))
    f.flush()
    say("created")
    if args.never_swmr:
        time.sleep(args.never_swmr)
        f.close()
        return
    if args.swmr_delay:
        time.sleep(args.swmr_delay)
    f.swmr_mode = True
    say("swmr")
    held: list[int] = []
    time.sleep(args.first_delay)
    for i in range(args.count):
        time.sleep(args.interval)
        if args.grow and len(scan) == 1:
            for ds in (data, *keys):
                ds.resize(i + 1, axis=0)
            data[i] = frame(i)
        elif args.grow:
            row, col = (int(p) for p in np.unravel_index(i, scan))
            extent = (row + 1, scan[1]) if args.grow == "row" else (
                row + 1, scan[1] if row else col + 1)
            for ds in (data, *keys):
                if ds.shape[:2] != extent:
                    ds.resize(extent + ds.shape[2:])
            data[row, col] = frame(i)
        elif scan is None:
            data.resize(i + 1, axis=0)
            data[i] = frame(i)
        else:
            data[np.unravel_index(i, scan)] = frame(i)
        data.flush()
        for n, key in enumerate(keys):
            if scan is None and key.shape[0] < i + 1:
                key.resize(i + 1, axis=0)
            if n == len(keys) - 1 and i == args.gap:  # the last key of frame `gap` comes late
                held.append(i)
                continue
            key[np.unravel_index(i, scan) if scan else i] = 7
            key.flush()
        say("frame", i)
        if held and i >= args.gap + args.gap_len:
            g = held.pop()
            keys[-1][np.unravel_index(g, scan) if scan else g] = 7
            keys[-1].flush()
            say("filled", g)
    if args.stall:
        say("stalled")
        time.sleep(args.stall)
    if not args.no_finish:
        finished[...] = 1
        finished.flush()
        say("finished")
    f.close()
    say("closed")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["live", "raw", "static", "chunks"])
    parser.add_argument("path")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between frames")
    parser.add_argument("--scan", help="grid scan shape, e.g. 3,4")
    parser.add_argument("--keys", default="k1", help="raw: comma-separated key names")
    parser.add_argument("--gap", type=int, default=-1,
                        help="raw: frame whose last key is written late")
    parser.add_argument("--gap-len", type=int, default=3,
                        help="raw: frames written after the gap before it is filled")
    parser.add_argument("--fixed", action="store_true",
                        help="live: frames dataset of fixed size (n_frames=count)")
    parser.add_argument("--contiguous-keys", action="store_true",
                        help="raw --scan: keys not chunked (contiguous layout)")
    parser.add_argument("--swmr-delay", type=float, default=0.0,
                        help="seconds between creating the file and switching SWMR on")
    parser.add_argument("--never-swmr", type=float, default=0.0,
                        help="raw: hold the file open this long without ever starting SWMR")
    parser.add_argument("--first-delay", type=float, default=0.0,
                        help="extra seconds between starting SWMR and the first frame")
    parser.add_argument("--stall", type=float, default=0.0,
                        help="after the frames, sleep this long before finishing")
    parser.add_argument("--no-finish", action="store_true", help="never set the finished flag")
    parser.add_argument("--grow", choices=["row", "point"],
                        help="raw --scan R,C: keys and frames created (1, 1) with maxshape the "
                             "scan, grown a row at a time or point by point")
    parser.add_argument("--libver", default=None, help="static: h5py libver (default earliest)")
    parser.add_argument("--blosc", action="store_true", help="raw: frames blosc-compressed")
    parser.add_argument("--finished-1", action="store_true",
                        help="raw: the finished flag has shape (1,) (swmr_tools needs it)")
    parser.add_argument("--chunk", type=int, default=10, help="chunks: frames per chunk")
    parser.add_argument("--growing", action="store_true", help="chunks: grow the dataset")
    args = parser.parse_args(argv)
    {"live": run_live, "raw": run_raw, "static": run_static, "chunks": run_chunks}[args.mode](args)


if __name__ == "__main__":
    main(sys.argv[1:])
