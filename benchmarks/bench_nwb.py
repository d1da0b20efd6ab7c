#!/usr/bin/env python
"""Benchmark writing an NWB ElectricalSeries with h5forge's default plan next to NeuroConv's.

The data: a (N, 384) int16 recording of about 4 GB (``--size-gb``; ``--quick``: 0.25 GB), kept
uncompressed in an HDF5 file (the raw data a conversion starts from; noise-like values, about
what a real recording compresses to with gzip). Each side runs in its own subprocess, from the
same source, and writes an NWB file with pynwb:

* **h5forge**: ``ElectricalSeries(data=<the h5py.Dataset>)``, then
  ``h5forge.io.get_default_configuration(nwbfile)``, ``configure_nwbfile(nwbfile, plan)`` and
  ``NWBHDF5IO.write`` (h5forge reads the source one 500 MB buffer at a time).
* **NeuroConv**: ``ElectricalSeries(data=SliceableDataChunkIterator(<the h5py.Dataset>))`` (its
  documented wrapper for data that is not in memory; an ``h5py.Dataset`` handed to
  ``configure_backend`` directly is copied as it is, its plan ignored), then
  ``get_default_backend_configuration(nwbfile, backend="hdf5")``, ``configure_backend`` and
  ``NWBHDF5IO.write``. When neuroconv is not importable by ``--neuroconv-python`` (default: this
  interpreter) the peer is pynwb with hdmf's ``GenericDataChunkIterator`` defaults and gzip,
  and the table says so.

Both use gzip level 4 (NeuroConv's default gzip has h5py's level 4). Timed: planning +
configuring + writing (the NWBFile is built before the clock starts), peak RSS of the writing
process (``getrusage``) and its growth over the RSS before planning. Then the one-second-window
read: 30,000 rows x every channel at ``--windows`` fixed random offsets, each read from a
reopened file (best of 3; the page cache holds the file unless ``--cold``), checked against the
source. Ratios are NeuroConv / h5forge (> 1: h5forge is faster or smaller). The machine's load
average is printed before and after: the numbers mean little on a loaded machine.

    .venv/bin/python benchmarks/bench_nwb.py --quick
    .venv/bin/python benchmarks/bench_nwb.py                 # 4 GB, several minutes
    .venv/bin/python benchmarks/bench_nwb.py --neuroconv-python /path/to/neuroconv-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    drop_cache,
    fmt_ratio,
    fmt_time,
    machine_line,
    package_version,
    print_table,
    ratio,
)

RATE = 30_000  # samples per second: a one-second window is 30,000 rows
CHANNELS = 384


def make_source(path: Path, rows: int, channels: int) -> None:
    """An uncompressed (rows, channels) int16 dataset ``data``: one second of noise-like values
    repeated with a shift per second (so it is not one block compressed many times)."""
    rng = np.random.default_rng(7)
    second = rng.integers(-300, 300, (RATE, channels), dtype=np.int16)
    with h5py.File(path, "w") as f:
        dset = f.create_dataset("data", (rows, channels), dtype="int16")
        for i, start in enumerate(range(0, rows, RATE)):
            stop = min(start + RATE, rows)
            dset[start:stop] = np.roll(second, i * 37, axis=1)[:stop - start]


def expected_window(start: int, stop: int, channels: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    second = rng.integers(-300, 300, (RATE, channels), dtype=np.int16)
    parts = []
    for row in range(start, stop):
        parts.append(np.roll(second[row % RATE], (row // RATE) * 37))
    return np.asarray(parts)


# ---- the children: one write each --------------------------------------------------------
def build_nwbfile(data, channels: int):
    import datetime

    from pynwb import NWBFile
    from pynwb.ecephys import ElectricalSeries

    nwb = NWBFile(session_description="benchmark", identifier="bench",
                  session_start_time=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    device = nwb.create_device("probe")
    group = nwb.create_electrode_group("shank", description="d", location="CA1", device=device)
    for _ in range(channels):
        nwb.add_electrode(group=group, location="CA1")
    region = nwb.create_electrode_table_region(list(range(channels)), "all")
    nwb.add_acquisition(ElectricalSeries(name="ElectricalSeries", data=data, electrodes=region,
                                         rate=float(RATE)))
    return nwb


def child(side: str, source: str, out: str) -> None:
    import warnings

    from pynwb import NWBHDF5IO

    location = "acquisition/ElectricalSeries/data"
    with h5py.File(source, "r") as src:
        dset = src["data"]
        channels = dset.shape[1]
        peer = side
        if side == "h5forge":
            import h5forge.io

            nwb = build_nwbfile(dset, channels)
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            start = time.perf_counter()
            plan = h5forge.io.get_default_configuration(nwb)
            h5forge.io.configure_nwbfile(nwb, plan, progress=False)
            entry = plan[location]
            chunk, buffer = entry.chunk_shape, entry.buffer_shape
        else:
            try:
                from neuroconv.tools.hdmf import SliceableDataChunkIterator
                from neuroconv.tools.nwb_helpers import (
                    configure_backend,
                    get_default_backend_configuration,
                )
            except ImportError:
                SliceableDataChunkIterator = None
            if SliceableDataChunkIterator is not None:
                nwb = build_nwbfile(SliceableDataChunkIterator(dset), channels)
                base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    config = get_default_backend_configuration(nwb, backend="hdf5")
                    configure_backend(nwb, config)
                entry = config.dataset_configurations[location]
                chunk, buffer = entry.chunk_shape, entry.buffer_shape
                peer = f"NeuroConv {package_version('neuroconv')}"
            else:  # NeuroConv's documented defaults: hdmf's iterator defaults, gzip
                from hdmf.backends.hdf5.h5_utils import H5DataIO
                from hdmf.data_utils import GenericDataChunkIterator

                class Sliceable(GenericDataChunkIterator):
                    def __init__(self, data, **kwargs):
                        self.data = data
                        super().__init__(**kwargs)

                    def _get_data(self, selection):
                        return self.data[selection]

                    def _get_maxshape(self):
                        return self.data.shape

                    def _get_dtype(self):
                        return self.data.dtype

                iterator = Sliceable(dset)
                nwb = build_nwbfile(H5DataIO(iterator, compression="gzip"), channels)
                base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                start = time.perf_counter()
                chunk, buffer = iterator.chunk_shape, iterator.buffer_shape
                peer = "pynwb + hdmf iterator defaults (neuroconv not installed)"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with NWBHDF5IO(out, "w") as io:
                io.write(nwb)
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with h5py.File(out, "r") as f:
        written = f[location]
        assert written.shape == dset.shape and written.chunks == tuple(chunk), \
            (written.chunks, chunk)
        compression = written.compression
    print(json.dumps({"side": peer, "seconds": seconds, "peak": peak, "base": base,
                      "chunk": list(chunk), "buffer": list(buffer),
                      "compression": compression, "size": os.path.getsize(out)}))


# ---- the parent ----------------------------------------------------------------------------
def run_child(python: str, side: str, source: Path, out: Path) -> dict:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([python, __file__, "--child", side, str(source), str(out)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def read_windows(path: Path, starts: list[int], cold: bool) -> float:
    """Median over the windows of the best of 3 reads of one second (every channel)."""
    times = []
    for start in starts:
        best = None
        for _ in range(3):
            if cold:
                drop_cache(path)
            with h5py.File(path, "r") as f:
                dset = f["acquisition/ElectricalSeries/data"]
                t0 = time.perf_counter()
                window = dset[start:start + RATE]
                elapsed = time.perf_counter() - t0
            best = elapsed if best is None else min(best, elapsed)
        times.append(best)
    with h5py.File(path, "r") as f:
        got = f["acquisition/ElectricalSeries/data"][starts[0]:starts[0] + RATE]
    assert np.array_equal(got, expected_window(starts[0], starts[0] + RATE, window.shape[1]))
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=4.0)
    parser.add_argument("--quick", action="store_true", help="0.25 GB")
    parser.add_argument("--channels", type=int, default=CHANNELS)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="evict the file before each read")
    parser.add_argument("--neuroconv-python", default=sys.executable,
                        help="the interpreter of the NeuroConv side (one that imports neuroconv)")
    parser.add_argument("--dir", default=None, help="where the files go (deleted at the end)")
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "SOURCE", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    size_gb = 0.25 if args.quick else args.size_gb
    rows = int(size_gb * 1e9 // (2 * args.channels))
    print(f"bench_nwb: ElectricalSeries ({rows}, {args.channels}) int16, "
          f"{rows * args.channels * 2 / 1e9:.2f} GB; {machine_line(cpus=True)}")
    print(f"pynwb {package_version('pynwb')}, hdmf {package_version('hdmf')}; load average "
          f"before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        source = tmp / "source.h5"
        t0 = time.perf_counter()
        make_source(source, rows, args.channels)
        print(f"source written in {time.perf_counter() - t0:.1f} s (uncompressed, page cache "
              f"warm for both sides)")
        results = {}
        for side, python in (("h5forge", sys.executable), ("neuroconv", args.neuroconv_python)):
            results[side] = run_child(python, side, source, tmp / f"{side}.nwb")
        rng = np.random.default_rng(1)
        starts = sorted(int(s) for s in rng.integers(0, rows - RATE, args.windows))
        for side in results:
            results[side]["read"] = read_windows(tmp / f"{side}.nwb", starts, args.cold)
    h5f, nc = results["h5forge"], results["neuroconv"]
    rows_out = []
    for key, label in (("h5forge", "h5forge default plan"), ("neuroconv", nc["side"])):
        r = results[key]
        rows_out.append([label, str(tuple(r["chunk"])), str(tuple(r["buffer"])),
                         f"{r['seconds']:.1f} s", f"{r['peak'] / 2**20:.0f} MiB",
                         f"{(r['peak'] - r['base']) / 2**20:.0f} MiB",
                         f"{r['size'] / 1e9:.2f} GB", fmt_time(r["read"])])
    rows_out.append(["NeuroConv / h5forge", "", "",
                     fmt_ratio(ratio(nc["seconds"], h5f["seconds"])),
                     fmt_ratio(ratio(nc["peak"], h5f["peak"])),
                     fmt_ratio(ratio(nc["peak"] - nc["base"], h5f["peak"] - h5f["base"])),
                     fmt_ratio(ratio(nc["size"], h5f["size"])),
                     fmt_ratio(ratio(nc["read"], h5f["read"]))])
    print_table("write (plan + configure + NWBHDF5IO.write, gzip 4) and one-second-window read",
                ["", "chunk", "buffer", "write", "peak RSS", "RSS growth", "file",
                 f"1 s window ({'cold' if args.cold else 'warm'})"], rows_out)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
