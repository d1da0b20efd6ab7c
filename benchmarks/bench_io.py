#!/usr/bin/env python
"""Benchmark ``h5forge.io`` (buffered writes, default chunk shapes) side by side with its peers.

Three sections, each printed as tables with ratios:

1. **buffered write** - ``h5forge.io.write_dataset`` fills an uncompressed ``(N, 256)`` dataset
   (int16 by default, ``--dtype``) of about 4 GB (``--size-gb``; ``--quick``: 0.5 GB) from a
   generated array-like source, with the default 10 MB chunks and a 100 MB buffer
   (``--buffer-gb``).  The peer is raw h5py writing the same chunks by hand: create the dataset
   with the same chunk shape, then generate and write one chunk at a time.  Both sides generate
   their data through the same source object (cheap broadcast ``np.arange`` offsets of the
   region's indices, a new array per request), which also times itself: the table shows the
   time spent generating and the throughput without it, since a 100 MB block costs more per
   byte to allocate and fill than a 10 MB one.  Each side runs in its own subprocess
   (``bench_io.py --child ...``), which reports its wall time (dataset creation to file close),
   its peak RSS (``getrusage``), minor page faults and the largest block it asked the source
   for, as JSON.  Before its clock starts each child touches and frees (data size + 3 buffers)
   of memory and then resets its peak RSS (``/proc/self/clear_refs``): on VMs that hand free
   memory back to the host the first touch of a page costs ~10x a warm one, which otherwise
   swamps the comparison (``--no-prefault`` to skip).
   Targets: h5forge throughput at least 0.9x h5py's; h5forge peak RSS at most
   1.5 x buffer + 200 MB; the largest block h5forge requests no larger than the buffer.
   Each child reads back a sample of rows after the timed write, so a broken writer cannot
   produce a bogus ratio.  Writes end in the page cache unless ``--fsync`` (fsync before the
   clock stops).

2. **default chunk shapes** - for six typical shapes, h5forge's
   ``estimate_default_chunk_shape(shape, dtype)`` beside NeuroConv's generic estimate
   (``neuroconv.tools.hdmf.SliceableDataChunkIterator.estimate_default_chunk_shape``, 10 MB
   target; ``n/a`` when neuroconv is not installed).  Then each array is written (generated
   data, uncompressed, ``--quick``: axis 0 shrunk 10x) once per chunking, and two reads are
   timed: a 1-second window (30,000 rows along axis 0, every other axis whole; clipped to
   axis 0) and one full channel (all of axis 0 at index 0 of the other axes), each with two
   HDF5 chunk caches: h5py's default 1 MiB (smaller than a 10 MB chunk, so HDF5 reads the
   selected elements of an uncompressed chunk straight from the file) and 64 MiB (whole chunks
   are read, then copied from).  The file is reopened for every read (empty chunk cache), the
   best of ``--read-repeat`` (3) is kept (a read slower than ``--slow-read-s`` is done once),
   and the page cache is warm (the file was just written) unless ``--cold`` (fsync +
   ``POSIX_FADV_DONTNEED`` before every read).  Every read is checked against the generated
   data.

3. **compression on every core** (``--sections compress``) - a noisy-sine int16 "recording"
   of ``--compress-gb`` (2 GB; ``--quick``: 0.25 GB) with the default chunks and the
   ``--buffer-gb`` buffer, written buffer by buffer with gzip-4 and with zstd (clevel 3), then
   repacked (the h5py-written file into a new one with the same plan), each by h5py's own filter
   pipeline and by h5forge (``write_dataset`` / ``repack``) with every ``--threads`` count
   (default 1 .. ``os.cpu_count()``). Each run is a subprocess reporting wall time, CPU time
   (``cores busy`` = CPU / wall: how many cores it really got, which shows a loaded machine),
   peak RSS, and the stored size; each output is then read back through h5py's normal path and
   compared block by block with the source data. Targets: >= 1.8x h5py's time on the largest
   thread count, peak RSS <= 1.5 x buffer + 200 MB. The load average is printed before and
   after.

Ratios: ``h5forge/h5py`` = h5forge throughput / h5py's (>= 0.9 is the target);
``NC/h5forge`` = NeuroConv chunking's read time / h5forge chunking's (> 1: h5forge's chunks
read faster).  Targets print PASS or MISS; the script never fails because of them.
Files live in a temporary directory (``--dir``) and are deleted as soon as they are measured.

    .venv/bin/python benchmarks/bench_io.py --quick   # smoke run: 0.5 GB write, shapes / 10
    .venv/bin/python benchmarks/bench_io.py           # full run (a few minutes)
    .venv/bin/python benchmarks/bench_io.py --sections write --size-gb 8 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

MB = 10**6  # chunk and buffer targets are given in MB/GB of 10**6/10**9 bytes
SECTIONS = ("write", "chunks", "compress")
WINDOW_ROWS = 30_000  # one second at 30 kHz

# The shapes of section 2: (label, shape, dtype).
CHUNK_CASES = (
    ("ephys 384 ch", (1_000_000, 384), "int16"),
    ("1-D trace", (100_000_000,), "float64"),
    ("4-col table", (100_000_000, 4), "float32"),
    ("ephys 128 ch", (10_000_000, 128), "int16"),
    ("movie", (3600, 304, 608), "uint16"),
    ("small", (10, 20), "float64"),
)


def _import_h5forge():
    try:
        import h5forge.io  # noqa: F401
    except ImportError:  # running from a checkout without `pip install -e .`
        src = Path(__file__).resolve().parents[1] / "src"
        sys.path.insert(0, str(src))
        import h5forge.io  # noqa: F401
    import h5forge
    return h5forge


h5forge = _import_h5forge()
from _common import (  # noqa: E402  (benchmarks/ is on sys.path)
    drop_cache,
    fmt_ratio,
    machine_line,
    package_version,
    print_table,
    ratio,
    report_target,
    timed,
)

from h5forge.io import (  # noqa: E402
    DatasetConfiguration,
    estimate_default_buffer_shape,
    estimate_default_chunk_shape,
    write_dataset,
)

# ----------------------------------------------------------------------------- generated data

# Per-axis multipliers: element value = sum over axes of index * multiplier, in the dtype
# (integers wrap).  Any region is cheap to generate, and the same element always gets the same
# value whichever block it is generated in.
_MULTIPLIERS = (7919, 31, 3, 1)


def generate(region: tuple[slice, ...], dtype: np.dtype) -> np.ndarray:
    """The values of ``region`` (a tuple of ``slice(start, stop)``, one per axis): two passes
    over a block of the dtype (fill, add), no temporary as large as the block."""
    dtype = np.dtype(dtype)
    ndim = len(region)
    out = np.empty(tuple(s.stop - s.start for s in region), dtype=dtype)
    for axis, s in enumerate(region):
        index = (np.arange(s.start, s.stop, dtype=np.int64)
                 * _MULTIPLIERS[min(axis, len(_MULTIPLIERS) - 1)]).astype(dtype)
        index = index.reshape([-1 if a == axis else 1 for a in range(ndim)])
        if axis == 0:
            out[...] = index
        else:
            out += index
    return out


def _region(key: Any, shape: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[Any, ...]]:
    """A basic index (slices with step 1, ints, Ellipsis) as one ``slice(start, stop)`` per axis
    (an int becomes a length-1 slice), and the index that drops the int axes again."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (len(shape) - len(key) + 1) + key[i + 1:]
    key = key + (slice(None),) * (len(shape) - len(key))
    region, drop = [], []
    for k, n in zip(key, shape):
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            if step != 1:
                raise IndexError("GeneratedSource takes slices with step 1 only")
            region.append(slice(start, max(start, stop)))
            drop.append(slice(None))
        else:
            i = int(k) + (n if int(k) < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"index {k} out of range for an axis of size {n}")
            region.append(slice(i, i + 1))
            drop.append(0)
    return tuple(region), tuple(drop)


class GeneratedSource:
    """An array-like (``shape``, ``dtype``, ``__getitem__``) whose data is generated on demand by
    :func:`generate`. Records the largest block (in bytes), the number of blocks requested and
    the time spent generating them."""

    def __init__(self, shape, dtype):
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.largest_request = 0
        self.requests = 0
        self.generate_s = 0.0

    @property
    def ndim(self):
        return len(self.shape)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        region, drop = _region(key, self.shape)
        start = time.perf_counter()
        block = generate(region, self.dtype)
        self.generate_s += time.perf_counter() - start
        if any(d == 0 for d in drop if not isinstance(d, slice)):
            block = block[drop]
        self.requests += 1
        self.largest_request = max(self.largest_request, block.nbytes)
        return block


def chunk_slices(shape, chunks):
    """Every chunk of ``shape`` as a tuple of slices, in C order."""
    import itertools
    ranges = [range(0, n, c) for n, c in zip(shape, chunks)]
    for starts in itertools.product(*ranges):
        yield tuple(slice(s, min(s + c, n)) for s, c, n in zip(starts, chunks, shape))


def sample_rows(n_rows, chunk_rows):
    """Rows to check after a write: the ends, chunk boundaries near the middle, a few others."""
    mid = n_rows // 2 // chunk_rows * chunk_rows
    rows = {0, 1, n_rows - 1, n_rows // 3, mid, mid - 1, 2 * n_rows // 3 + 7}
    return sorted(r for r in rows if 0 <= r < n_rows)


def verify(dset, chunk_rows) -> str:
    """Compare a sample of rows of ``dset`` with :func:`generate`; raise on a difference."""
    for r in sample_rows(dset.shape[0], chunk_rows):
        region = (slice(r, r + 1),) + tuple(slice(0, n) for n in dset.shape[1:])
        if not np.array_equal(dset[r:r + 1], generate(region, dset.dtype)):
            raise AssertionError(f"row {r} differs from the generated data")
    return "ok"


# ----------------------------------------------------------------------------- timing helpers


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path):
    if os.path.exists(path):
        os.remove(path)


def prefault(nbytes: int) -> bool:
    """Touch ``nbytes`` of fresh memory and free it again, then reset the peak RSS (Linux
    ``/proc/self/clear_refs``).  On VMs that hand free memory back to the host (free page
    reporting, balloons), the first touch of a page costs ~10x a warm one; prefaulting lets the
    timed write (its buffers and the page cache it fills) reuse warm pages, as on bare metal.
    Returns False (and does nothing) where the peak RSS cannot be reset."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    warm = np.empty(nbytes, dtype=np.uint8)
    warm.fill(0)
    del warm
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # the peak RSS of the prefault is not the write's
    return True


def max_rss_bytes() -> int:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


# ----------------------------------------------------------------------------- section 1: children


def write_plan(shape, dtype, buffer_gb):
    chunks = estimate_default_chunk_shape(shape, dtype)
    buffer = estimate_default_buffer_shape(shape, chunks, dtype, buffer_gb=buffer_gb)
    return chunks, buffer


def child_write(kind: str, path: str, shape, dtype, buffer_gb: float, fsync: bool,
                warm: bool) -> dict:
    """One side of section 1, in a fresh process. Returns what is printed as JSON."""
    dtype = np.dtype(dtype)
    chunks, buffer = write_plan(shape, dtype, buffer_gb)
    nbytes = math.prod(shape) * dtype.itemsize
    result: dict[str, Any] = {"kind": kind, "nbytes": nbytes, "chunks": list(chunks),
                              "buffer": list(buffer),
                              "buffer_bytes": math.prod(buffer) * dtype.itemsize}
    source = GeneratedSource(shape, dtype)  # both sides generate through it
    if kind == "write-h5forge":
        config = DatasetConfiguration("data", dtype, shape, chunk_shape=chunks,
                                      buffer_shape=buffer, compression_method=None)

        def run():
            with h5py.File(path, "w") as f:
                write_dataset(f, "data", source, config, progress=False)
            if fsync:
                fsync_path(path)
    elif kind == "write-h5py":
        def run():
            with h5py.File(path, "w") as f:
                dset = f.create_dataset("data", shape=shape, dtype=dtype, chunks=chunks)
                for region in chunk_slices(shape, chunks):
                    dset[region] = source[region]
            if fsync:
                fsync_path(path)
    else:
        raise ValueError(f"unknown child {kind!r}")
    result["prefaulted"] = warm and prefault(nbytes + 3 * result["buffer_bytes"] + 100 * MB)
    result["rss_before"] = max_rss_bytes()
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    seconds, _ = timed(run)
    result["seconds"] = seconds
    result["max_rss"] = max_rss_bytes()
    result["page_faults"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
    result["largest_request"], result["requests"] = source.largest_request, source.requests
    result["generate_s"] = source.generate_s
    with h5py.File(path, "r") as f:
        dset = f["data"]
        if dset.chunks != tuple(chunks) or dset.compression is not None:
            raise AssertionError(f"written with chunks {dset.chunks}, compression "
                                 f"{dset.compression}; expected {tuple(chunks)}, none")
        result["check"] = verify(dset, chunks[0])
    return result


def run_child(kind, path, shape, dtype, buffer_gb, fsync, warm) -> dict:
    """Run one side of section 1 in a subprocess; its JSON result, or ``{"error": ...}``."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--path", path,
           "--shape", ",".join(map(str, shape)), "--dtype", str(np.dtype(dtype)),
           "--buffer-gb", repr(buffer_gb)] + (["--fsync"] if fsync else []) \
        + ([] if warm else ["--no-prefault"])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        remove(path)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    tail = (proc.stderr.strip().splitlines() or lines or ["no output"])[-1]
    return {"kind": kind, "error": f"exit {proc.returncode}: {tail}"[:300]}


# ----------------------------------------------------------------------------- reporting


def fmt_mb(n):
    if n is None:
        return "n/a"
    if n < 100_000:
        return f"{n / 1000:,.1f} KB"
    return f"{n / MB:,.1f} MB"


def fmt_ms(s):
    if s is None:
        return "n/a"
    return f"{s * 1e3:.2f}" if s < 0.1 else f"{s * 1e3:.0f}"


def fmt_shape(shape):
    return "(" + ", ".join(f"{n:,}".replace(",", "_") for n in shape) + \
        ("," if len(shape) == 1 else "") + ")"


# ----------------------------------------------------------------------------- section 1


def section_write(args, workdir):
    dtype = np.dtype(args.dtype)
    cols = 256
    rows = max(1, round(args.size_gb * 1e9 / (cols * dtype.itemsize)))
    shape = (rows, cols)
    chunks, buffer = write_plan(shape, dtype, args.buffer_gb)
    buffer_bytes = math.prod(buffer) * dtype.itemsize
    nbytes = math.prod(shape) * dtype.itemsize
    kinds = ["write-h5forge", "write-h5py"]
    runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for rep in range(args.repeat):
        for kind in (kinds if rep % 2 == 0 else kinds[::-1]):  # alternate who goes first
            if any("error" in r for r in runs[kind]):
                continue
            if hasattr(os, "sync"):
                os.sync()  # no dirty pages of the previous run still pending
            path = os.path.join(workdir, f"{kind}.h5")
            runs[kind].append(run_child(kind, path, shape, dtype, args.buffer_gb, args.fsync,
                                        not args.no_prefault))
    best: dict[str, dict] = {}
    for kind, results in runs.items():
        failed = [r for r in results if "error" in r]
        if failed or not results:
            best[kind] = failed[0] if failed else {"error": "not run"}
            continue
        best[kind] = dict(min(results, key=lambda r: r["seconds"]),
                          max_rss=max(r["max_rss"] for r in results))  # peak: the worst run

    chunk_bytes = math.prod(chunks) * dtype.itemsize
    title = (f"[1] buffered write: {fmt_shape(shape)} {dtype} ({nbytes / 1e9:.2f} GB), "
             f"uncompressed, chunks {fmt_shape(chunks)} ({fmt_mb(chunk_bytes)}), "
             f"buffer {fmt_shape(buffer)} ({fmt_mb(buffer_bytes)}); best of {args.repeat}, "
             f"{'fsync before the clock stops' if args.fsync else 'ends in the page cache'}"
             f"{'' if args.no_prefault else '; memory prefaulted'}")
    headers = ["writer", "time", "MB/s", "vs h5py", "of which generating",
               "MB/s w/o generating", "page faults", "peak RSS", "RSS at start",
               "largest block", "blocks", "check"]
    names = {"write-h5forge": "h5forge write_dataset", "write-h5py": "h5py, chunk by chunk"}
    rows_out = []
    ref = best.get("write-h5py", {})
    for kind in kinds:
        r = best.get(kind, {"error": "not run"})
        if "error" in r:
            rows_out.append([names[kind]] + ["n/a"] * (len(headers) - 2) + [f"n/a: {r['error']}"])
            continue
        speed = r["nbytes"] / r["seconds"]
        ref_speed = ref["nbytes"] / ref["seconds"] if "seconds" in ref else None
        rest = r["seconds"] - r["generate_s"]
        rows_out.append([names[kind], f"{r['seconds']:.2f} s", f"{speed / MB:,.0f}",
                         fmt_ratio(ratio(speed, ref_speed)), f"{r['generate_s']:.2f} s",
                         f"{r['nbytes'] / rest / MB:,.0f}" if rest > 0 else "n/a",
                         f"{r['page_faults']:,}",
                         fmt_mb(r["max_rss"]),
                         fmt_mb(r["rss_before"]), fmt_mb(r["largest_request"]),
                         f"{r['requests']:,}",
                         r["check"] + ("" if r["prefaulted"] or args.no_prefault
                                       else " (prefault impossible: RSS not resettable)")])
    print_table(title, headers, rows_out)

    ours, peer = best.get("write-h5forge", {}), best.get("write-h5py", {})
    print("targets:")
    if "seconds" in ours and "seconds" in peer:
        r = (ours["nbytes"] / ours["seconds"]) / (peer["nbytes"] / peer["seconds"])
        report_target("h5forge/h5py write throughput >= 0.9x", fmt_ratio(r), r >= 0.9)
        rest = ratio(peer["seconds"] - peer["generate_s"], ours["seconds"] - ours["generate_s"])
        print(f"  info  h5forge/h5py throughput with the generating time taken out: "
              f"{fmt_ratio(rest)} (the source makes a new array per request, as real sources "
              f"do; big blocks cost more per byte to allocate and fill)")
    else:
        report_target("h5forge/h5py write throughput >= 0.9x", "not measured", None)
    limit = 1.5 * buffer_bytes + 200 * MB
    if "max_rss" in ours:
        report_target(f"h5forge peak RSS <= 1.5 x buffer + 200 MB = {fmt_mb(limit)}",
                      f"{fmt_mb(ours['max_rss'])} (h5py: "
                      f"{fmt_mb(peer.get('max_rss')) if 'max_rss' in peer else 'n/a'})",
                      ours["max_rss"] <= limit)
        report_target(f"largest block h5forge requests <= buffer ({fmt_mb(buffer_bytes)})",
                      fmt_mb(ours["largest_request"]), ours["largest_request"] <= buffer_bytes)
    else:
        report_target("h5forge peak RSS and largest block", "not measured", None)


# ----------------------------------------------------------------------------- section 3


COMPRESS_METHODS = (("gzip", {"level": 4}), ("zstd", {"clevel": 3}))
_NOISE_ROWS = 1 << 16  # rows in the noise table blocks are gathered from


class NoiseSource:
    """An array-like of ``(rows, cols)`` int16 "recording" data: a slow sine per channel plus
    Gaussian noise (sigma 20), about as compressible as extracellular recordings (gzip-4 keeps
    ~half). Rows are gathered from a fixed 65,536-row table (seeded) plus a per-repeat offset,
    so any block is cheap to make and the same everywhere; times its generating."""

    def __init__(self, shape, dtype="int16"):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        rng = np.random.default_rng(20260601)
        cols = shape[1]
        period = rng.integers(500, 5000, size=cols)[None, :]
        self.table = np.empty((_NOISE_ROWS, cols), dtype=self.dtype)
        for start in range(0, _NOISE_ROWS, 4096):  # small temporaries: RSS is measured
            t = np.arange(start, start + 4096)[:, None]
            part = 200 * np.sin(2 * np.pi * t / period) + rng.normal(0, 20, (4096, cols))
            self.table[start:start + 4096] = part.round()
        self.generate_s = 0.0
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        rows, cols = key
        start = time.perf_counter()
        index = np.arange(rows.start, rows.stop)
        block = self.table[index % _NOISE_ROWS, cols]
        block += (index // _NOISE_ROWS % 7).astype(self.dtype)[:, None]
        self.generate_s += time.perf_counter() - start
        return block


def compress_plan(shape, method, options, buffer_gb):
    chunks, buffer = write_plan(shape, np.dtype("int16"), buffer_gb)
    return DatasetConfiguration("data", "int16", shape, chunk_shape=chunks, buffer_shape=buffer,
                                compression_method=method, compression_options=options)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_compress(spec: dict) -> dict:
    """One run of section 3 in a fresh process: ``spec`` = op (write/repack), side
    (h5py/h5forge), method, options, threads, path, src, shape, buffer_gb."""
    from h5forge.io import BackendConfiguration, repack
    from h5forge.io.write import buffer_slices

    shape = tuple(spec["shape"])
    config = compress_plan(shape, spec["method"], spec["options"], spec["buffer_gb"])
    source = NoiseSource(shape)
    path, blocks = spec["path"], list(buffer_slices(shape, config.buffer_shape))
    result: dict[str, Any] = {"nbytes": config.full_size, "buffer_bytes": config.buffer_size,
                              "chunks": list(config.chunk_shape)}
    if spec["op"] == "write" and spec["side"] == "h5py":
        def run():
            with h5py.File(path, "w") as f:
                dset = f.create_dataset("data", shape=shape, dtype="int16",
                                        **config.h5py_kwargs())
                for block in blocks:
                    dset[block] = source[block]
    elif spec["op"] == "write":
        def run():
            with h5py.File(path, "w") as f:
                write_dataset(f, "data", source, config, progress=False,
                              threads=spec["threads"])
    elif spec["side"] == "h5py":
        def run():
            with h5py.File(spec["src"], "r") as f, h5py.File(path, "w") as out:
                src = f["data"]
                dset = out.create_dataset("data", shape=shape, dtype="int16",
                                          **config.h5py_kwargs())
                for block in blocks:
                    dset[block] = src[block]
    else:
        def run():
            repack(spec["src"], path, BackendConfiguration({"data": config}), progress=False,
                   threads=spec["threads"], overwrite=True)
    rss_before = max_rss_bytes()
    cpu_before = _cpu_seconds()
    seconds, _ = timed(run)
    result.update(seconds=seconds, max_rss=max_rss_bytes(), rss_before=rss_before,
                  cpu_s=_cpu_seconds() - cpu_before,
                  generate_s=source.generate_s if spec["op"] == "write" else 0.0)
    # identical decompressed data: every block read back through h5py's own filter pipeline
    with h5py.File(path, "r") as f:
        dset = f["data"]
        result["stored_bytes"] = dset.id.get_storage_size()
        for block in blocks:
            if not np.array_equal(dset[block], source[block]):
                raise AssertionError(f"rows {block[0].start}:{block[0].stop} differ")
    result["check"] = "identical"
    return result


def run_compress_child(spec: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "compress",
           "--spec", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    tail = (proc.stderr.strip().splitlines() or lines or ["no output"])[-1]
    return {"error": f"exit {proc.returncode}: {tail}"[:300]}


def load_line() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + \
            f" on {os.cpu_count()} cores"
    except OSError:
        return "load average n/a"


def section_compress(args, workdir):
    shape = (max(1, round(args.compress_gb * 1e9 / (256 * 2))), 256)
    threads = sorted(set(args.threads))
    print(f"\n[3] compression on every core: {shape[0]:,} x 256 int16 "
          f"({math.prod(shape) * 2 / 1e9:.2f} GB) of noisy sine 'recording' data, default "
          f"chunks, buffer {args.buffer_gb} GB; threads {threads}.\n    Each run in its own "
          f"process; output verified block by block through h5py's normal read (identical "
          f"data).\n    before: {load_line()}")
    summary = []
    for method, options in COMPRESS_METHODS:
        config = compress_plan(shape, method, options, args.buffer_gb)
        src = os.path.join(workdir, f"compress_src_{method}.h5")
        results = []
        for op in ("write", "repack"):
            sides = [("h5py", None)] + [("h5forge", t) for t in threads]
            for side, t in sides:
                path = src if (op, side) == ("write", "h5py") else \
                    os.path.join(workdir, f"compress_{op}_{side}_{t}.h5")
                spec = {"op": op, "side": side, "method": method, "options": options,
                        "threads": t, "path": path, "src": src, "shape": list(shape),
                        "buffer_gb": args.buffer_gb}
                if op == "repack" and not os.path.exists(src):
                    r = {"error": "no source (its h5py write failed)"}
                else:
                    r = run_compress_child(spec)
                print(f"    {method} {op} {side}{'' if t is None else f' {t} threads'}: "
                      + (r["error"] if "error" in r else
                         f"{r['seconds']:.1f} s, {r['cpu_s']:.1f} s CPU, {load_line()}"),
                      flush=True)
                if path != src:
                    remove(path)
                results.append((op, side, t, r))
        remove(src)
        headers = ["op", "writer", "threads", "time", "MB/s", "vs h5py", "vs 1 thread",
                   "CPU s", "cores busy", "generating", "stored", "peak RSS", "check"]
        rows = []
        limit = 1.5 * config.buffer_size + 200 * MB
        for op in ("write", "repack"):
            ref = next((r for o, s, _, r in results if o == op and s == "h5py"), {})
            one = next((r for o, s, t, r in results if o == op and s == "h5forge" and t == 1),
                       {})
            for o, side, t, r in results:
                if o != op:
                    continue
                if "error" in r:
                    rows.append([op, side, t or "-", "n/a"] + [""] * 8 + [r["error"]])
                    continue
                speed = r["nbytes"] / r["seconds"]
                vs = ratio(ref.get("seconds"), r["seconds"])
                rows.append([op, "h5py filter pipeline" if side == "h5py" else
                             "h5forge", t or "-", f"{r['seconds']:.1f} s",
                             f"{speed / MB:,.0f}", fmt_ratio(vs),
                             fmt_ratio(ratio(one.get("seconds"), r["seconds"]))
                             if side == "h5forge" else "",
                             f"{r['cpu_s']:.1f}", f"{r['cpu_s'] / r['seconds']:.2f}",
                             f"{r['generate_s']:.1f} s" if op == "write" else "-",
                             f"{r['stored_bytes'] / r['nbytes']:.2f}",
                             fmt_mb(r["max_rss"]), r["check"]])
                if side == "h5forge":
                    summary.append((method, op, t, vs, r["max_rss"] <= limit, r["max_rss"]))
        print_table(f"[3] {method} {options}: chunks {fmt_shape(config.chunk_shape)} "
                    f"({fmt_mb(config.chunk_size)}), buffer {fmt_shape(config.buffer_shape)} "
                    f"({fmt_mb(config.buffer_size)}); 'stored' = stored / raw bytes", headers,
                    rows)
    print(f"    after: {load_line()}")
    print("targets:")
    limit = 1.5 * args.buffer_gb * 1e9 + 200 * MB
    best = max(threads)
    for method, op, t, vs, *_ in summary:
        if t == best:
            report_target(f"{method} {op} on {t} threads >= 1.8x h5py's filter pipeline",
                          fmt_ratio(vs), vs is not None and vs >= 1.8)
    worst = max((rss for *_, rss in summary), default=None)
    report_target(f"h5forge peak RSS <= 1.5 x buffer + 200 MB = {fmt_mb(limit)}",
                  fmt_mb(worst), worst is not None and all(ok for *_, ok, _ in summary))


# ----------------------------------------------------------------------------- section 2


NEUROCONV_FUNCTION = "neuroconv.tools.hdmf.SliceableDataChunkIterator.estimate_default_chunk_shape"


def neuroconv_estimator():
    """``(estimate(shape, dtype) -> chunks, version)`` or ``(None, reason)``; imported lazily."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from neuroconv.tools.hdmf import SliceableDataChunkIterator
        from importlib.metadata import version
        nc_version = version("neuroconv")
    except Exception as exc:  # ImportError, or a broken install
        return None, f"n/a (pip install neuroconv; {type(exc).__name__}: {exc})"

    def estimate(shape, dtype):
        # NeuroConv turns numpy overflow warnings into errors globally; keep that local.
        with warnings.catch_warnings():
            chunks = SliceableDataChunkIterator.estimate_default_chunk_shape(
                chunk_mb=10.0, maxshape=tuple(shape), dtype=np.dtype(dtype))
        return tuple(int(c) for c in chunks)

    return estimate, nc_version


def chunks_touched(chunks, region):
    return math.prod(((s.stop - 1) // c) - (s.start // c) + 1 for c, s in zip(chunks, region))


def read_regions(shape):
    """The 1-second window (rows ``start:start+n`` mid-array, other axes whole) and the channel
    (all of axis 0 at index 0 of the other axes), as slices."""
    n = min(WINDOW_ROWS, shape[0])
    start = (shape[0] - n) // 2
    window = (slice(start, start + n),) + tuple(slice(0, k) for k in shape[1:])
    channel = (slice(0, shape[0]),) + tuple(slice(0, 1) for _ in shape[1:])
    return window, channel


#: HDF5 chunk caches the reads are timed with: h5py's default, and one that holds a few chunks.
CHUNK_CACHES = (("1 MiB", 1 << 20), ("64 MiB", 64 << 20))


def measure_reads(path, shape, dtype, chunks, args):
    """Write ``path`` with ``chunks`` (h5forge write_dataset, uncompressed), time the two reads
    with each chunk cache (best of ``args.read_repeat``, the file reopened every time; a read
    slower than ``args.slow_read_s`` is not repeated), delete the file."""
    source = GeneratedSource(shape, dtype)
    buffer = estimate_default_buffer_shape(shape, chunks, dtype, buffer_gb=0.25)
    config = DatasetConfiguration("data", dtype, shape, chunk_shape=chunks, buffer_shape=buffer,
                                  compression_method=None)
    window, channel = read_regions(shape)
    out: dict[str, Any] = {"chunks": chunks,
                           "chunk_bytes": math.prod(chunks) * np.dtype(dtype).itemsize,
                           "window_chunks": chunks_touched(chunks, window),
                           "channel_chunks": chunks_touched(chunks, channel), "notes": []}
    try:
        def write():
            with h5py.File(path, "w") as f:
                write_dataset(f, "data", source, config, progress=False)
        out["write_s"], _ = timed(write)
        for name, region in (("window", window), ("channel", channel)):
            expected = generate(region, dtype)
            for cache_name, cache_bytes in CHUNK_CACHES:
                best = float("inf")
                for rep in range(args.read_repeat):
                    if args.cold:
                        drop_cache(path)
                    with h5py.File(path, "r", rdcc_nbytes=cache_bytes, rdcc_nslots=10007) as f:
                        dset = f["data"]
                        seconds, got = timed(dset.__getitem__, region)
                    if rep == 0 and not np.array_equal(got, expected):
                        raise AssertionError(f"{name} read differs from the generated data")
                    del got
                    best = min(best, seconds)
                    if seconds > args.slow_read_s:
                        if rep + 1 < args.read_repeat:
                            out["notes"].append(f"{name}@{cache_name}: 1 run")
                        break
                out[(name, cache_name)] = best
            del expected
    except Exception as exc:  # reported in the table, never fatal
        out["notes"].append(f"{type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}"[:120])
    finally:
        remove(path)
    return out


def section_chunks(args, workdir):
    estimate_nc, nc_info = neuroconv_estimator()
    nc_missing = nc_info if estimate_nc is None else None

    # (a) the estimates for the listed shapes
    headers = ["data", "shape", "dtype", "h5forge chunks", "chunk size", "NeuroConv chunks",
               "chunk size", "chunks in file (h5forge / NC)"]
    rows = []
    for label, shape, dtype in CHUNK_CASES:
        itemsize = np.dtype(dtype).itemsize
        ours = estimate_default_chunk_shape(shape, dtype)
        n_ours = math.prod(math.ceil(n / c) for n, c in zip(shape, ours))
        if estimate_nc is None:
            theirs_cells = [nc_missing, "", f"{n_ours:,} / n/a"]
        else:
            try:
                theirs = estimate_nc(shape, dtype)
                n_theirs = math.prod(math.ceil(n / c) for n, c in zip(shape, theirs))
                theirs_cells = [fmt_shape(theirs), fmt_mb(math.prod(theirs) * itemsize),
                                f"{n_ours:,} / {n_theirs:,}"]
            except Exception as exc:
                theirs_cells = [f"error: {type(exc).__name__}: {exc}"[:80], "", ""]
        rows.append([label, fmt_shape(shape), dtype, fmt_shape(ours),
                     fmt_mb(math.prod(ours) * itemsize)] + theirs_cells)
    source = NEUROCONV_FUNCTION + (f" (neuroconv {nc_info})" if estimate_nc else "")
    print_table(f"[2a] default chunk shapes, 10 MB target (MB = 10**6 B); NeuroConv: {source}",
                headers, rows, left=(0, 1, 2))

    # (b) read timings per chunking
    cache = "cold page cache (fsync + POSIX_FADV_DONTNEED before each read)" if args.cold \
        else "WARM page cache (files just written)"
    timing_columns = [(name, cache_name) for name in ("window", "channel")
                      for cache_name, _ in CHUNK_CACHES]
    headers = (["data", "shape written", "chunking", "chunk shape", "chunk size", "write s",
                "chunks read (win / chan)"]
               + [f"{name} ms @{cache_name}" for name, cache_name in timing_columns] + ["note"])
    rows, ratio_rows = [], []
    for label, full_shape, dtype in CHUNK_CASES:
        shape = full_shape
        if args.quick and shape[0] >= 1000:
            shape = (shape[0] // 10,) + shape[1:]
        ours = estimate_default_chunk_shape(shape, dtype)
        chunkings: list[tuple[str, Any, str]] = [("h5forge", ours, "")]
        if estimate_nc is None:
            chunkings.append(("NeuroConv", None, nc_missing))
        else:
            try:
                chunkings.append(("NeuroConv", estimate_nc(shape, dtype), ""))
            except Exception as exc:
                chunkings.append(("NeuroConv", None, f"estimate failed: {exc}"))
        results: dict[str, dict] = {}
        for name, chunks, error in chunkings:
            if chunks is None:
                results[name] = {"error": error}
            elif name != "h5forge" and tuple(chunks) == tuple(ours):
                results[name] = dict(results["h5forge"], notes=["same chunks as h5forge"])
            else:
                path = os.path.join(workdir, f"chunks_{name}.h5")
                results[name] = measure_reads(path, shape, dtype, tuple(chunks), args)
        for name, _chunks, _error in chunkings:
            r = results[name]
            if "error" in r:
                rows.append([label, fmt_shape(shape), name]
                            + ["n/a"] * (len(headers) - 4) + [r["error"]])
                continue
            rows.append([label, fmt_shape(shape), name, fmt_shape(r["chunks"]),
                         fmt_mb(r["chunk_bytes"]),
                         f"{r['write_s']:.2f}" if "write_s" in r else "n/a",
                         f"{r['window_chunks']:,} / {r['channel_chunks']:,}"]
                        + [fmt_ms(r.get(column)) for column in timing_columns]
                        + ["; ".join(r["notes"])])
        window, _ = read_regions(shape)
        ours_r, nc_r = results["h5forge"], results.get("NeuroConv", {})
        ratio_rows.append([label, fmt_shape(shape), f"{window[0].stop - window[0].start:,}"]
                          + [fmt_ratio(ratio(nc_r.get(column), ours_r.get(column)))
                             for column in timing_columns])
    print_table(f"[2b] reads per chunking: window = {WINDOW_ROWS:,} rows of axis 0 mid-array "
                f"(clipped to axis 0), every other axis whole; channel = all of axis 0 at index "
                f"0 of the other axes.\n     Uncompressed; file reopened per read; HDF5 chunk "
                f"cache 1 MiB (h5py's default) or 64 MiB; best of {args.read_repeat}; {cache}. "
                f"'write s' (h5forge write_dataset, 250 MB buffer) is for information.",
                headers, rows, left=(0, 1, 2))
    print_table("[2c] read time ratio NeuroConv chunking / h5forge chunking (> 1: h5forge's "
                "chunks read faster)",
                ["data", "shape written", "window rows"]
                + [f"{name} @{cache_name}" for name, cache_name in timing_columns],
                ratio_rows, left=(0, 1))


# ----------------------------------------------------------------------------- main


FULL = {"size_gb": 4.0, "repeat": 1, "compress_gb": 2.0}
QUICK = {"size_gb": 0.5, "repeat": 1, "compress_gb": 0.25}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 0.5 GB write, section 2 shapes with axis 0 / 10 "
                             "(options given explicitly still win)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="which sections to run (default: both)")
    parser.add_argument("--size-gb", type=float, help="section 1 data size in GB (default 4)")
    parser.add_argument("--dtype", default="int16", help="section 1 dtype (default int16)")
    parser.add_argument("--buffer-gb", type=float, default=0.1,
                        help="section 1 buffer in GB (default 0.1)")
    parser.add_argument("--repeat", type=int, help="section 1 runs per writer, best taken "
                                                   "(default 1)")
    parser.add_argument("--fsync", action="store_true",
                        help="section 1: fsync the file before the clock stops")
    parser.add_argument("--no-prefault", action="store_true",
                        help="section 1: do not touch (data size + 3 buffers) of memory before "
                             "the clock starts (see prefault())")
    parser.add_argument("--read-repeat", type=int, default=3,
                        help="section 2 reads per measurement, best taken (default 3)")
    parser.add_argument("--slow-read-s", type=float, default=5.0,
                        help="section 2: a read slower than this is not repeated (default 5)")
    parser.add_argument("--cold", action="store_true",
                        help="section 2: evict the file from the page cache before each read")
    parser.add_argument("--dir", default=None, help="where to write the files (default: a "
                                                    "temporary directory in the system temp dir)")
    # internal: one side of section 1, run in a subprocess
    parser.add_argument("--compress-gb", type=float,
                        help="section 3 data size in GB (default 2; --quick: 0.25)")
    parser.add_argument("--threads", type=int, nargs="+",
                        help="section 3 thread counts (default: 1, 2, ..., os.cpu_count())")
    parser.add_argument("--child", choices=("write-h5forge", "write-h5py", "compress"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name, default in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.threads is None:
        args.threads = list(range(1, (os.cpu_count() or 1) + 1))
    return args


def print_environment():
    print(machine_line(cpus=True))
    print(f"h5forge {getattr(h5forge, '__version__', '?')} ({Path(h5forge.__file__).parent}), "
          f"neuroconv {package_version('neuroconv')}, hdmf {package_version('hdmf')}")


def main(argv=None):
    args = parse_args(argv)
    if args.child == "compress":
        print(json.dumps(child_compress(json.loads(args.spec))))
        return 0
    if args.child:
        shape = tuple(int(n) for n in args.shape.split(","))
        result = child_write(args.child, args.path, shape, args.dtype, args.buffer_gb,
                             args.fsync, not args.no_prefault)
        print(json.dumps(result))
        return 0
    print_environment()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_io_", dir=args.dir) as workdir:
        if "write" in args.sections:
            section_write(args, workdir)
        if "chunks" in args.sections:
            section_chunks(args, workdir)
        if "compress" in args.sections:
            section_compress(args, workdir)
    print(f"\ntotal time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
