#!/usr/bin/env python
"""Benchmark in-place updates of a stored tree against rewriting the tree, and against h5io.

The tree: ``{"meta": {...}, "trials": {"t0": 1000 float64, ... N trials}, "events": 100,000
ints}`` (N = 500 by default: 4 MB of trials. Up to 512 keys a dict keeps named members; with
more, ``--trials 2000``, it keeps its keys as a list and the trials as rows of one stacked
dataset). Each case changes one thing:

* ``add``      -- a new trial: ``h5forge.dump(arr, f, "trials/tN")``
* ``replace``  -- a small scalar: ``h5forge.dump(4, f, "meta/n", overwrite=True)``
* ``append``   -- one int to the packed ``events`` list: ``h5forge.append(7, f, "events")``
  (the first append rewrites the list as an extendable dataset, later ones write one row; both
  are shown)
* ``delete``   -- a trial: ``h5forge.delete(f, "trials/t3")``

against the two ways to get the same file otherwise: ``h5forge.dump(tree, f, overwrite=True)``
(the whole tree rewritten) and h5io's ``write_hdf5(f, tree, title="rec", overwrite="update")``.
h5io updates whole titles only, so its time is a rewrite of the tree (timed once: it stores each
list element as its own dataset); writing a nested title such as ``rec/trials/tN`` leaves a
group h5io cannot read back, which this script checks and reports. Times are the median of
``--repeat`` runs; ``speed-up`` = rewrite time / update time.

    python benchmarks/bench_update.py --quick     # 100 trials, 3 repeats
    python benchmarks/bench_update.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import h5forge


def make_tree(n_trials: int) -> dict:
    rng = np.random.default_rng(0)
    return {"meta": {"subject": "M12", "n": 3, "gain": 2.5},
            "trials": {f"t{i}": rng.random(1000) for i in range(n_trials)},
            "events": list(range(100_000))}


def timed(fn, repeat: int, setup=None) -> float:
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def h5io_nested_title_works(tmp: str) -> str:
    try:
        import h5io
    except ImportError:
        return "h5io not installed"
    path = os.path.join(tmp, "h5io-nested.h5")
    h5io.write_hdf5(path, {"trials": {"t1": np.arange(5)}}, title="rec", overwrite=True)
    h5io.write_hdf5(path, np.arange(7), title="rec/trials/t2", overwrite="update")
    try:
        h5io.read_hdf5(path, title="rec")
    except Exception as exc:  # noqa: BLE001 - reporting the peer's failure
        return f"h5io nested title update breaks reading 'rec': {type(exc).__name__}: {exc}"
    return "h5io nested title update: readable"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.repeat = 100, 3
    tree = make_tree(args.trials)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tree.h5")
        h5forge.dump(tree, path)
        counter = iter(range(10**9))

        def add():
            h5forge.dump(np.ones(1000), path, f"trials/new{next(counter)}")

        def replace():
            h5forge.dump(4, path, "meta/n", overwrite=True)

        first_append = timed(lambda: h5forge.append(7, path, "events"), args.repeat,
                             setup=lambda: h5forge.dump(tree, path, overwrite=True))

        def append():
            h5forge.append(7, path, "events")

        deleted = iter(range(args.trials))

        def delete():
            h5forge.delete(path, f"trials/t{next(deleted)}")

        rewrite = timed(lambda: h5forge.dump(tree, path, overwrite=True), args.repeat)
        h5forge.dump(tree, path, overwrite=True)
        h5forge.append(7, path, "events")
        rows = [("add a trial", timed(add, args.repeat)),
                ("replace a scalar", timed(replace, args.repeat)),
                ("append (first: rewrite)", first_append),
                ("append (in place)", timed(append, args.repeat)),
                ("delete a trial", timed(delete, args.repeat))]
        h5io_time = None
        try:
            import h5io

            h5io_path = os.path.join(tmp, "h5io.h5")
            h5io.write_hdf5(h5io_path, tree, title="rec", overwrite=True)
            h5io_time = timed(lambda: h5io.write_hdf5(h5io_path, tree, title="rec",
                                                      overwrite="update"), 1)
        except ImportError:
            pass
        print(f"tree: {args.trials} trials x 1000 float64 + 100,000 packed ints; "
              f"median of {args.repeat}")
        print(f"  rewrite whole tree (h5forge.dump overwrite=True): {rewrite * 1e3:9.2f} ms")
        if h5io_time is not None:
            print(f"  h5io write_hdf5(overwrite='update') of the title: {h5io_time * 1e3:9.2f} ms")
        print(f"  {'update':28s} {'time':>10s} {'speed-up vs rewrite':>20s} {'vs h5io':>9s}")
        for name, seconds in rows:
            vs_h5io = f"{h5io_time / seconds:8.0f}x" if h5io_time else "n/a"
            print(f"  {name:28s} {seconds * 1e3:8.2f}ms {rewrite / seconds:19.0f}x {vs_h5io:>9s}")
        print(" ", h5io_nested_title_works(tmp))


if __name__ == "__main__":
    main()
