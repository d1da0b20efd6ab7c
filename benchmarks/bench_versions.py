#!/usr/bin/env python
"""Benchmark ``h5forge.versions`` (``VersionedFile``) side by side with versioned-hdf5.

The peer is versioned-hdf5 (``VersionedHDF5File`` on an ``h5py.File``, ``stage_version``);
plain h5py is the reference of the read case.  Five cases, each printed as one table:

1. **commits** - a ``(365, 12345)`` float64 dataset (random values, chunks ``(10, 100)``,
   ~36 MB) is created in a first version, then ``--commits`` versions (default 50; ``--quick``
   10) are committed, each changing one element (a different random element each time, the
   same sequence for both tools).  Timed: stage + commit (``with vf.stage_version(name) as g:
   g["data"][i, j] = x``) with the file kept open across commits; then ``--open-commits``
   (default 20; ``--quick`` 5) more such commits that each open the file, commit and close it.
   Reported: the median commit time of each series and the file growth per commit (file size
   after the series minus before, divided by the number of commits; sizes taken with the file
   closed).  Targets: h5forge's median commit time at most 1/20 of versioned-hdf5's; h5forge's
   growth per commit at most one chunk + 8 KB = 8,000 + 8,192 bytes.
2. **vector** - a 1,000,000-element float64 dataset with chunks ``(4096,)``, then
   ``--commits`` one-element versions (file kept open).  Reported: the file growth per version
   (target: h5forge at most one chunk + 8 KB = 32,768 + 8,192 bytes; versioned-hdf5 is said to
   take ~69 KB) and, for information, the median commit time.
3. **reads** - the case-1 dataset, created in a first version plus ``--read-commits`` (5)
   one-element versions, beside a plain h5py file holding the same final data with the same
   chunks.  Timed, best of ``--repeat`` (default 5; ``--quick`` 3): reading the current version
   in full with the file already open (h5forge: ``vf[vf.current_version]["data"][...]``;
   versioned-hdf5: the same through its API; plain: ``f["data"][...]``; also, for h5forge,
   the raw h5py read of the dataset its file root mirrors the current version into), and
   opening the file + reading one row (a different row each repetition, the same rows for
   every reader) + closing it.  Targets: h5forge full read at most 1.2x plain h5py's; h5forge
   open + row read at most 2x plain's.  The page cache is warm unless ``--cold`` (fsync +
   ``POSIX_FADV_DONTNEED`` before every timed read).
4. **history** - a ``(100, 1000)`` float64 dataset, chunks ``(10, 100)``, then ``--versions``
   (default 1,000; ``--quick`` 200) one-element commits, file kept open.  Reported: the median
   commit time around version 10 (commits 5..15) and at the end (the last 10 commits).
   Target: h5forge's late / early ratio at most 1.3.  Also printed: the median commit time
   per tenth of the series.  Each tool runs this series in its own subprocess
   (``bench_versions.py --child-history TOOL``), one after the other: alternating in one
   process, versioned-hdf5's growing memory (~290 MB at 1,000 versions) slowed h5forge's late
   commits by ~1.4x, which would be charged to h5forge's drift.

5. **space** - the disk space deleted versions leave: 11 versions of an 8 MB float64 array
   (1,000,000 random values, all new in every version, default chunks), the first 10 deleted
   (h5forge: ``delete_versions``; versioned-hdf5: ``versioned_hdf5.delete_versions``), then
   ``h5forge.io.repack`` of each file and, for h5forge, ``compact`` (``h5forge versions gc``),
   and ``repack`` after it.  Reported: the file size after each step, the times of delete,
   repack and gc, and the ratios of the sizes to versioned-hdf5's after delete + repack.
   Targets: h5forge after gc at most 1.2x versioned-hdf5 after delete + repack, and at most
   2x the live data + 1 MiB (the live chunks once plus the plain mirror of the current
   version).  The remaining version is read back and compared after every step.

In cases 1-3 both tools run side by side: in every series they commit alternately (the order
swapped every commit), both files open at once, so system noise hits both alike; reads rotate
the order every repetition.  Timed calls run with the garbage collector paused
(``_common.timed``).  ``--tools`` runs only some of the tools.

Correctness: after every commit of cases 1 and 2 (and every 100th of case 4) the changed element
is read back from the current version, untimed, and must be the value written; at the end of
every case each file is reopened read-only and checked: the current version in full, the first
version (the original data), a middle version, the number of versions and, for h5forge, the
plain-HDF5 mirror at the file root.  Every timed read is compared with the expected data.  A
tool that fails or reads back wrong data is shown as ``n/a`` with the reason (the traceback goes
to stderr), so a broken tool cannot produce a bogus ratio.

Ratios: ``vs h5forge`` = versioned-hdf5 time / h5forge time (> 1: h5forge is faster);
``/plain`` = time / plain h5py's.  Targets print PASS or MISS; the script never fails because of
them.  Files live in a temporary directory (``--tmpdir``) that is removed at the end.

    .venv/bin/python benchmarks/bench_versions.py --quick   # smoke run (~1 min)
    .venv/bin/python benchmarks/bench_versions.py           # full run
    .venv/bin/python benchmarks/bench_versions.py --cases reads --repeat 10 --cold
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from _common import (  # noqa: E402  (benchmarks/ is on sys.path)
    drop_cache,
    fmt_ratio,
    fmt_time,
    import_from_checkout,
    machine_line,
    package_version,
    print_table,
    ratio,
    reason,
    report_target,
    timed,
)

CASES = ("commits", "vector", "reads", "history", "space")
SLACK = 8192  # the "+ 8 KB" of the growth targets, in bytes

# ----------------------------------------------------------------------------- tools


def _import_h5forge_versions():
    """``(module, None, None)`` or ``(None, reason, traceback text)``."""
    try:
        module = import_from_checkout("h5forge.versions")
    except Exception as exc:  # ImportError, or a broken module
        return None, f"not importable ({reason(exc)})", traceback.format_exc()
    if not hasattr(module, "VersionedFile"):
        return None, f"incomplete: {module.__name__} has no VersionedFile", None
    return module, None, None


def _import_versioned_hdf5():
    try:
        import versioned_hdf5
    except Exception as exc:
        return None, f"not importable ({reason(exc)}; pip install versioned-hdf5)"
    return versioned_hdf5, None


h5forge_versions, H5FORGE_MISSING, H5FORGE_IMPORT_TRACEBACK = _import_h5forge_versions()
versioned_hdf5, VH5_MISSING = _import_versioned_hdf5()


class H5ForgeSession:
    """An open h5forge ``VersionedFile``."""

    def __init__(self, path, mode):
        self.vf = h5forge_versions.VersionedFile(path, mode)

    def commit(self, name, index, value):
        with self.vf.stage_version(name) as g:
            g["data"][index] = value

    def read(self, index=Ellipsis, version=None):
        vf = self.vf
        return vf[vf.current_version if version is None else version]["data"][index]

    def versions(self):
        return list(self.vf.versions)

    def close(self):
        self.vf.close()


class VH5Session:
    """An open ``h5py.File`` wrapped in a versioned-hdf5 ``VersionedHDF5File``."""

    def __init__(self, path, mode):
        self.f = h5py.File(path, mode)
        try:
            self.vf = versioned_hdf5.VersionedHDF5File(self.f)
        except BaseException:
            self.f.close()
            raise

    def commit(self, name, index, value):
        with self.vf.stage_version(name) as g:
            g["data"][index] = value

    def read(self, index=Ellipsis, version=None):
        vf = self.vf
        return vf[vf.current_version if version is None else version]["data"][index]

    def versions(self):
        return list(self.vf)  # committed versions, "__first_version__" left out

    def close(self):
        try:
            self.vf.close()
        finally:
            self.f.close()


@dataclass(frozen=True)
class Tool:
    name: str
    session: Any  # (path, mode) -> session
    missing: str | None = None
    mirror: bool = False  # the file root mirrors the current version as a plain dataset


TOOLS = (
    Tool("h5forge", H5ForgeSession, H5FORGE_MISSING, mirror=True),
    Tool("versioned-hdf5", VH5Session, VH5_MISSING),
)


def create(tool, path, name, data, chunks):
    session = tool.session(path, "w")
    try:
        with session.vf.stage_version(name) as g:
            g.create_dataset("data", data=data, chunks=chunks)
    finally:
        session.close()


def open_commit_close(tool, path, name, index, value):
    session = tool.session(path, "r+")
    try:
        session.commit(name, index, value)
    finally:
        session.close()


def open_read_close(tool, path, index):
    session = tool.session(path, "r")
    try:
        return session.read(index)
    finally:
        session.close()


# ----------------------------------------------------------------------------- runs


class CheckError(Exception):
    """A tool read back something other than what was written."""


@dataclass
class Run:
    """One tool's file in one case, and what was measured on it."""
    tool: Tool
    path: str
    error: str | None = None
    session: Any = None
    times: dict[str, list[float]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def ok(self):
        return self.error is None

    def fail(self, exc, where):
        self.error = f"{where}: {reason(exc)}"
        print(f"\n[{self.tool.name}] {where} failed:", file=sys.stderr)
        traceback.print_exception(exc, file=sys.stderr)
        if self.session is not None:
            try:
                self.session.close()
            except Exception:
                pass
            self.session = None


def make_runs(workdir, case, names=None):
    runs = []
    for tool in TOOLS:
        if names is not None and tool.name not in names:
            continue
        path = os.path.join(workdir, f"{case}_{tool.name}.h5")
        runs.append(Run(tool, path, error=tool.missing))
    return runs


def rotated(runs, i):
    shift = i % len(runs)
    return [r for r in runs[shift:] + runs[:shift] if r.ok]


def make_changes(shape, n, seed):
    """``n`` distinct random elements of ``shape`` and the values to write there (negative, so
    they differ from the random data in [0, 1))."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(int(np.prod(shape)), size=n, replace=False)
    indices = [tuple(int(k) for k in np.unravel_index(i, shape)) for i in flat]
    return [(index, -1.0 - k) for k, index in enumerate(indices)]


def state_after(original, changes, k):
    out = original.copy()
    for index, value in changes[:k]:
        out[index] = value
    return out


def version_name(k):
    return f"v{k:05d}"


def setup(runs, original, chunks):
    """Create every run's file with the first version ``v00000``; record its size."""
    for run in rotated(runs, 0):
        try:
            seconds, _ = timed(create, run.tool, run.path, version_name(0), original, chunks)
            run.values["create_s"] = seconds
            run.sizes["created"] = os.path.getsize(run.path)
        except Exception as exc:
            run.fail(exc, "create")


def commit_series(runs, changes, first, label, check_every=1, reopen=False):
    """Commit ``changes`` (version numbers ``first``, ``first + 1``, ...) with every run, the
    tools alternating; time each commit into ``run.times[label]``.  With ``reopen`` each commit
    opens and closes the file (timed); otherwise the file stays open across the series.  The
    file size after the series (file closed) goes to ``run.sizes[label]``."""
    for run in runs:
        if run.ok:
            run.times[label] = []
            if not reopen:
                try:
                    run.session = run.tool.session(run.path, "r+")
                except Exception as exc:
                    run.fail(exc, f"{label}: open")
    for k, (index, value) in enumerate(changes):
        name = version_name(first + k)
        check = check_every and (k % check_every == 0 or k == len(changes) - 1)
        for run in rotated(runs, k):
            try:
                if reopen:
                    seconds, _ = timed(open_commit_close, run.tool, run.path, name, index, value)
                else:
                    seconds, _ = timed(run.session.commit, name, index, value)
                run.times[label].append(seconds)
                if check:
                    got = (open_read_close(run.tool, run.path, index) if reopen
                           else run.session.read(index))
                    if got != value:
                        raise CheckError(f"commit {name}: read back {got!r} at {index}, "
                                         f"wrote {value!r}")
            except Exception as exc:
                run.fail(exc, f"{label} commit {name}")
    for run in runs:
        if run.ok:
            try:
                if run.session is not None:
                    run.session.close()
                    run.session = None
                run.sizes[label] = os.path.getsize(run.path)
            except Exception as exc:
                run.fail(exc, f"{label}: close")


def verify(runs, original, changes):
    """Reopen every file read-only and check the current, first and a middle version, the
    number of versions and (h5forge) the root mirror; sets ``run.note``."""
    n = len(changes)
    middle = n // 2
    expected = {version_name(0): original, version_name(middle): state_after(original, changes,
                                                                             middle)}
    final = state_after(original, changes, n)
    for run in runs:
        if not run.ok:
            continue
        try:
            session = run.tool.session(run.path, "r")
            try:
                names = session.versions()
                if len(names) != n + 1 or set(names) != {version_name(k) for k in range(n + 1)}:
                    raise CheckError(f"{len(names)} versions listed, expected {n + 1}")
                if not np.array_equal(session.read(), final):
                    raise CheckError("current version differs")
                for name, data in expected.items():
                    if not np.array_equal(session.read(version=name), data):
                        raise CheckError(f"version {name} differs")
            finally:
                session.close()
            checked = f"ok ({n + 1} versions; current, {version_name(0)}, {version_name(middle)}"
            if run.tool.mirror:
                with h5py.File(run.path, "r") as f:
                    if not np.array_equal(f["data"][...], final):
                        raise CheckError("root mirror differs from the current version")
                checked += ", root mirror"
            run.note = checked + ")"
        except Exception as exc:
            run.fail(exc, "verify")


# ----------------------------------------------------------------------------- reporting


def fmt_bytes(n):
    if n is None:
        return "n/a"
    if abs(n) < 100_000:
        return f"{n:,.0f} B"
    return f"{n / 2**20:,.2f} MiB"


def median(values):
    return statistics.median(values) if values else None


def by_name(runs):
    return {run.tool.name: run for run in runs}


def measured(runs, name, key, source="values"):
    """``run.<source>[key]`` of the tool ``name``, or None when it failed."""
    run = by_name(runs).get(name)
    if run is None or not run.ok:
        return None
    return getattr(run, source).get(key)


def growth(run, before, after, n):
    if not run.ok or before not in run.sizes or after not in run.sizes or not n:
        return None
    return (run.sizes[after] - run.sizes[before]) / n


def row_or_error(run, cells, ncols):
    if run.ok:
        return [run.tool.name] + cells + [run.note]
    return [run.tool.name] + ["n/a"] * (ncols - 2) + [f"n/a: {run.error}"]


# ----------------------------------------------------------------------------- cases


def case_commits(args, workdir):
    shape, chunks = (365, 12345), (10, 100)
    chunk_bytes = int(np.prod(chunks)) * 8
    original = np.random.default_rng(args.seed).random(shape)
    n, m = args.commits, args.open_commits
    changes = make_changes(shape, n + m, args.seed + 1)
    runs = make_runs(workdir, "commits", args.tools)
    setup(runs, original, chunks)
    commit_series(runs, changes[:n], 1, "open")
    commit_series(runs, changes[n:], n + 1, "reopen", reopen=True)
    verify(runs, original, changes)
    for run in runs:
        run.values["median_open"] = median(run.times.get("open"))
        run.values["median_reopen"] = median(run.times.get("reopen"))
        run.values["growth_open"] = growth(run, "created", "open", n)
        run.values["growth_reopen"] = growth(run, "open", "reopen", m)
    ref = measured(runs, "h5forge", "median_open")
    ref_reopen = measured(runs, "h5forge", "median_reopen")
    headers = ["tool", "create", f"commit (open, median of {n})", "vs h5forge",
               f"open+commit+close (median of {m})", "vs h5forge",
               "growth/commit (open)", "growth/commit (reopen)", "file size", "check"]
    rows = []
    for run in runs:
        v = run.values
        rows.append(row_or_error(run, [
            fmt_time(v.get("create_s")), fmt_time(v.get("median_open")),
            fmt_ratio(ratio(v.get("median_open"), ref)),
            fmt_time(v.get("median_reopen")), fmt_ratio(ratio(v.get("median_reopen"), ref_reopen)),
            fmt_bytes(v.get("growth_open")), fmt_bytes(v.get("growth_reopen")),
            fmt_bytes(run.sizes.get("reopen"))], len(headers)))
    print_table(f"[1] commits: {shape} float64, chunks {chunks} ({chunk_bytes:,} B), "
                f"one element changed per version", headers, rows)
    print("targets:")
    peer = measured(runs, "versioned-hdf5", "median_open")
    speedup = ratio(peer, ref)
    report_target("h5forge commit time <= 1/20 of versioned-hdf5's (file open)",
                  f"{fmt_ratio(speedup)} faster" if speedup else "not measured",
                  None if speedup is None else speedup >= 20)
    speedup = ratio(measured(runs, "versioned-hdf5", "median_reopen"), ref_reopen)
    print(f"  info  h5forge open+commit+close vs versioned-hdf5's: "
          f"{fmt_ratio(speedup)} faster" if speedup else "  info  open+commit+close: n/a")
    limit = chunk_bytes + SLACK
    value = measured(runs, "h5forge", "growth_open")
    report_target(f"h5forge file growth per commit <= one chunk + 8 KB = {limit:,} B",
                  f"{fmt_bytes(value)} (versioned-hdf5: "
                  f"{fmt_bytes(measured(runs, 'versioned-hdf5', 'growth_open'))})",
                  None if value is None else value <= limit)
    return runs


def case_vector(args, workdir):
    shape, chunks = (1_000_000,), (4096,)
    chunk_bytes = chunks[0] * 8
    original = np.random.default_rng(args.seed + 2).random(shape)
    n = args.commits
    changes = make_changes(shape, n, args.seed + 3)
    runs = make_runs(workdir, "vector", args.tools)
    setup(runs, original, chunks)
    commit_series(runs, changes, 1, "open")
    verify(runs, original, changes)
    for run in runs:
        run.values["growth"] = growth(run, "created", "open", n)
        run.values["median"] = median(run.times.get("open"))
    ref = measured(runs, "h5forge", "median")
    headers = ["tool", "create", "file after create", f"growth/version ({n} versions)",
               "growth/chunk", "commit (median)", "vs h5forge", "check"]
    rows = []
    for run in runs:
        v = run.values
        rows.append(row_or_error(run, [
            fmt_time(v.get("create_s")), fmt_bytes(run.sizes.get("created")),
            fmt_bytes(v.get("growth")), fmt_ratio(ratio(v.get("growth"), chunk_bytes)),
            fmt_time(v.get("median")), fmt_ratio(ratio(v.get("median"), ref))], len(headers)))
    print_table(f"[2] vector: 1,000,000 float64, chunks {chunks} ({chunk_bytes:,} B), one "
                f"element changed per version, file open", headers, rows)
    print("targets:")
    limit = chunk_bytes + SLACK
    value = measured(runs, "h5forge", "growth")
    report_target(f"h5forge file growth per version <= one chunk + 8 KB = {limit:,} B",
                  f"{fmt_bytes(value)} (versioned-hdf5: "
                  f"{fmt_bytes(measured(runs, 'versioned-hdf5', 'growth'))}; said to be ~69 KB)",
                  None if value is None else value <= limit)
    return runs


@dataclass
class Reader:
    """One way of reading the case-3 data: ``full(handle)`` on an open handle, ``row(path,
    i)`` opening and closing the file itself."""
    name: str
    path: str
    open: Any  # path -> handle with .close()
    full: Any  # handle -> array
    row: Any  # (path, i) -> array
    error: str | None = None
    best: dict[str, float] = field(default_factory=dict)


def _h5py_open(path):
    return h5py.File(path, "r")


def _h5py_row(path, i):
    with h5py.File(path, "r") as f:
        return f["data"][i]


def case_reads(args, workdir):
    shape, chunks = (365, 12345), (10, 100)
    original = np.random.default_rng(args.seed + 4).random(shape)
    changes = make_changes(shape, args.read_commits, args.seed + 5)
    runs = make_runs(workdir, "reads", args.tools)
    setup(runs, original, chunks)
    commit_series(runs, changes, 1, "open")
    verify(runs, original, changes)
    final = state_after(original, changes, len(changes))
    plain = os.path.join(workdir, "reads_plain.h5")
    with h5py.File(plain, "w") as f:
        f.create_dataset("data", data=final, chunks=chunks)

    readers = [Reader("plain h5py", plain, _h5py_open, lambda f: f["data"][...], _h5py_row)]
    for run in runs:
        tool = run.tool
        reader = Reader(f"{tool.name} (versions API)", run.path,
                        lambda p, tool=tool: tool.session(p, "r"),
                        lambda s: s.read(),
                        lambda p, i, tool=tool: open_read_close(tool, p, i),
                        error=run.error)
        readers.append(reader)
        if tool.mirror:
            readers.append(Reader(f"{tool.name} (raw h5py, root mirror)", run.path, _h5py_open,
                                  lambda f: f["data"][...], _h5py_row, error=run.error))

    rows_read = [(37 * rep + 5) % shape[0] for rep in range(args.repeat)]
    for rep in range(args.repeat):
        shift = rep % len(readers)
        for reader in readers[shift:] + readers[:shift]:
            if reader.error:
                continue
            try:
                if args.cold:
                    drop_cache(reader.path)
                handle = reader.open(reader.path)
                try:
                    seconds, got = timed(reader.full, handle)
                finally:
                    handle.close()
                if not np.array_equal(got, final):
                    raise CheckError("full read differs from the current version")
                del got
                reader.best["full"] = min(reader.best.get("full", np.inf), seconds)
                if args.cold:
                    drop_cache(reader.path)
                i = rows_read[rep]
                seconds, got = timed(reader.row, reader.path, i)
                if not np.array_equal(got, final[i]):
                    raise CheckError(f"row {i} differs from the current version")
                reader.best["row"] = min(reader.best.get("row", np.inf), seconds)
            except Exception as exc:
                reader.error = reason(exc)
                print(f"\n[{reader.name}] read failed:", file=sys.stderr)
                traceback.print_exception(exc, file=sys.stderr)

    base = readers[0].best
    headers = ["reader", "full read (file open)", "/plain", "open + 1 row + close", "/plain",
               "file size", "note"]
    rows = []
    for reader in readers:
        if reader.error:
            rows.append([reader.name] + ["n/a"] * (len(headers) - 2) + [f"n/a: {reader.error}"])
            continue
        full, row = reader.best.get("full"), reader.best.get("row")
        rows.append([reader.name, fmt_time(full), fmt_ratio(ratio(full, base.get("full"))),
                     fmt_time(row), fmt_ratio(ratio(row, base.get("row"))),
                     fmt_bytes(os.path.getsize(reader.path)), "ok"])
    cache = "cold page cache" if args.cold else "warm page cache"
    print_table(f"[3] reads: {shape} float64, chunks {chunks}, current version after "
                f"{len(changes)} one-element commits; best of {args.repeat}, {cache}; a row "
                f"touches {-(-shape[1] // chunks[1])} chunks", headers, rows)
    print("targets:")
    ours = next((r for r in readers if r.name == "h5forge (versions API)"), None)
    for key, limit, what in (("full", 1.2, "full read of the current version"),
                             ("row", 2.0, "open file + read one row")):
        value = ratio(ours.best.get(key), base.get(key)) if ours and not ours.error else None
        report_target(f"h5forge {what} <= {limit}x plain h5py", fmt_ratio(value),
                      None if value is None else value <= limit)
    return runs


HISTORY_SHAPE, HISTORY_CHUNKS = (100, 1000), (10, 100)


def history_data(args):
    original = np.random.default_rng(args.seed + 6).random(HISTORY_SHAPE)
    return original, make_changes(HISTORY_SHAPE, args.versions, args.seed + 7)


def child_history(args, workdir):
    """The child side of case 4: one tool's series; prints the run as JSON."""
    original, changes = history_data(args)
    runs = make_runs(workdir, "history", [args.child_history])
    setup(runs, original, HISTORY_CHUNKS)
    commit_series(runs, changes, 1, "open", check_every=100)
    verify(runs, original, changes)
    run = runs[0]
    print(json.dumps({"error": run.error, "note": run.note, "times": run.times,
                      "sizes": run.sizes, "values": run.values}))


def history_in_child(run, args, workdir):
    """Run one tool's case-4 series in a fresh interpreter and copy its results into ``run``.

    In one process, alternating with versioned-hdf5 (whose process grows to ~290 MB over 1,000
    versions) made h5forge's late commits ~1.4x slower than when it runs alone, which would be
    charged to h5forge's late/early ratio; a process per tool keeps each drift its own."""
    command = [sys.executable, os.path.abspath(__file__), "--child-history", run.tool.name,
               "--versions", str(args.versions), "--seed", str(args.seed), "--tmpdir", workdir]
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except Exception as exc:
        run.error = f"child process: {reason(exc)}"
        return
    run.error, run.note = result["error"], result["note"]
    run.times, run.sizes, run.values = result["times"], result["sizes"], result["values"]


def case_history(args, workdir):
    shape, chunks = HISTORY_SHAPE, HISTORY_CHUNKS
    n = args.versions
    runs = make_runs(workdir, "history", args.tools)
    for run in runs:
        if run.ok:
            history_in_child(run, args, workdir)
    early_lo, early_hi = 5, 15
    for run in runs:
        times = run.times.get("open") or []
        run.values["early"] = median(times[early_lo - 1:early_hi])  # commits 5..15
        run.values["late"] = median(times[-10:]) if len(times) >= 10 else None
        run.values["total"] = sum(times) if times else None
        run.values["growth"] = growth(run, "created", "open", n)
    headers = ["tool", f"{n:,} commits, total", f"commit @{early_lo}..{early_hi} (median)",
               "commit @last 10 (median)", "late/early", "late vs h5forge", "growth/commit",
               "file size", "check"]
    ref_late = measured(runs, "h5forge", "late")
    rows = []
    for run in runs:
        v = run.values
        rows.append(row_or_error(run, [
            fmt_time(v.get("total")), fmt_time(v.get("early")), fmt_time(v.get("late")),
            fmt_ratio(ratio(v.get("late"), v.get("early"))),
            fmt_ratio(ratio(v.get("late"), ref_late)), fmt_bytes(v.get("growth")),
            fmt_bytes(run.sizes.get("open"))], len(headers)))
    print_table(f"[4] history: {shape} float64, chunks {chunks}, {n:,} one-element commits, "
                f"file open", headers, rows)
    tenths = []
    for run in runs:
        times = run.times.get("open") or []
        if run.ok and len(times) >= 10:
            step = len(times) / 10
            cells = [fmt_time(median(times[round(i * step):round((i + 1) * step)]))
                     for i in range(10)]
            tenths.append(f"  {run.tool.name}: " + ", ".join(cells))
    if tenths:
        print("median commit time per tenth of the series (info):")
        print("\n".join(tenths))
    print("targets:")
    value = ratio(measured(runs, "h5forge", "late"), measured(runs, "h5forge", "early"))
    peer = ratio(measured(runs, "versioned-hdf5", "late"),
                 measured(runs, "versioned-hdf5", "early"))
    report_target(f"h5forge commit time at version {n:,} <= 1.3x at version ~10",
                  f"{fmt_ratio(value)} (versioned-hdf5: {fmt_ratio(peer)})",
                  None if value is None else value <= 1.3)
    return runs


def _space_steps(run, arrays, repack, compact):
    """Case 5 for one tool: commit, delete, repack (and for h5forge gc); sizes and times into
    ``run``; the remaining version is checked after every step."""
    names = [f"v{i}" for i in range(len(arrays))]
    session = run.tool.session(run.path, "w")
    try:
        for name, arr in zip(names, arrays):
            with session.vf.stage_version(name) as g:
                if name == names[0]:
                    g.create_dataset("data", data=arr)
                else:
                    g["data"][...] = arr
    finally:
        session.close()
    run.sizes["committed"] = os.path.getsize(run.path)
    doomed = names[:-1]
    if run.tool.name == "h5forge":
        def delete():
            with h5forge_versions.VersionedFile(run.path, "r+") as vf:
                vf.delete_versions(doomed)
    else:
        def delete():
            with h5py.File(run.path, "r+") as f:
                versioned_hdf5.delete_versions(f, doomed)
    run.values["delete_s"], _ = timed(delete)
    run.sizes["deleted"] = os.path.getsize(run.path)

    def check(path, label):
        session = run.tool.session(path, "r")
        try:
            if session.versions() != names[-1:]:
                raise CheckError(f"{label}: versions {session.versions()}")
            if not np.array_equal(session.read(version=names[-1]), arrays[-1]):
                raise CheckError(f"{label}: the remaining version reads back wrong")
        finally:
            session.close()

    check(run.path, "after delete")
    repacked = run.path + ".repacked.h5"
    run.values["repack_s"], _ = timed(repack, run.path, repacked)
    run.sizes["repacked"] = os.path.getsize(repacked)
    check(repacked, "after repack")
    if compact is not None:
        seconds, summary = timed(compact, run.path)
        run.values["gc_s"] = seconds
        run.sizes["gc"] = summary.bytes_after
        check(run.path, "after gc")
        run.values["gc_repack_s"], _ = timed(repack, run.path, run.path + ".gc-repacked.h5")
        run.sizes["gc_repacked"] = os.path.getsize(run.path + ".gc-repacked.h5")
        check(run.path + ".gc-repacked.h5", "after gc + repack")
    run.note = "checked after every step"


def case_space(args, workdir):
    """Disk space after deleting versions: 11 versions of an 8 MB float64 array (every version
    all new values), the first 10 deleted, then ``h5forge repack`` (both files) and, for
    h5forge, ``h5forge versions gc``."""
    io = import_from_checkout("h5forge.io")
    n, count = 1_000_000, 11
    rng = np.random.default_rng(args.seed + 5)
    arrays = [rng.random(n) for _ in range(count)]
    live = arrays[0].nbytes
    runs = make_runs(workdir, "space", args.tools)

    def repack(src, dst):
        io.repack(src, dst, progress=False)

    for run in runs:
        if not run.ok:
            continue
        try:
            gc_fn = (lambda p: h5forge_versions.compact(p, progress=False)) \
                if run.tool.name == "h5forge" else None
            _space_steps(run, arrays, repack, gc_fn)
        except Exception as exc:
            run.fail(exc, "space")
    headers = ["tool", "11 versions", "10 deleted", "then repack", "gc", "gc + repack",
               "delete", "repack", "gc", "check"]
    rows = []
    for run in runs:
        z, v = run.sizes, run.values
        rows.append(row_or_error(run, [
            fmt_bytes(z.get("committed")), fmt_bytes(z.get("deleted")),
            fmt_bytes(z.get("repacked")), fmt_bytes(z.get("gc")), fmt_bytes(z.get("gc_repacked")),
            fmt_time(v.get("delete_s")), fmt_time(v.get("repack_s")), fmt_time(v.get("gc_s"))],
            len(headers)))
    print_table(f"[5] space: {count} versions of a {live / 1e6:.0f} MB float64 array (all values "
                f"new each time), the first {count - 1} deleted; live data {fmt_bytes(live)}",
                headers, rows)
    ours, peer = by_name(runs).get("h5forge"), by_name(runs).get("versioned-hdf5")
    ours_gc = ours.sizes.get("gc") if ours is not None and ours.ok else None
    ours_repack = ours.sizes.get("repacked") if ours is not None and ours.ok else None
    peer_repack = peer.sizes.get("repacked") if peer is not None and peer.ok else None
    print("ratios (file size / versioned-hdf5's after delete + repack): "
          f"h5forge delete + repack {fmt_ratio(ratio(ours_repack, peer_repack))}, "
          f"h5forge gc {fmt_ratio(ratio(ours_gc, peer_repack))}; "
          f"h5forge gc / live data {fmt_ratio(ratio(ours_gc, live))}")
    print("targets:")
    report_target("h5forge after gc <= 1.2x versioned-hdf5 after delete + repack",
                  f"{fmt_bytes(ours_gc)} vs {fmt_bytes(peer_repack)}",
                  None if ours_gc is None or peer_repack is None else
                  ours_gc <= 1.2 * peer_repack)
    report_target("h5forge after gc <= 2x live data + 1 MiB (the chunks once, plus the plain "
                  "mirror of the current version)", fmt_bytes(ours_gc),
                  None if ours_gc is None else ours_gc <= 2 * live + 2**20)
    return runs


CASE_FUNCTIONS = {"commits": case_commits, "vector": case_vector, "reads": case_reads,
                  "history": case_history, "space": case_space}


# ----------------------------------------------------------------------------- main


FULL = {"commits": 50, "open_commits": 20, "versions": 1000, "repeat": 5}
QUICK = {"commits": 10, "open_commits": 5, "versions": 200, "repeat": 3}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 10 commits, 5 open+commit+close, 200 versions, "
                             "3 read repetitions (options given explicitly still win)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES),
                        help="which cases to run (default: all)")
    parser.add_argument("--commits", type=int,
                        help="one-element commits in cases 1 and 2, file open (default 50)")
    parser.add_argument("--open-commits", type=int,
                        help="case 1 commits that open and close the file (default 20)")
    parser.add_argument("--versions", type=int, help="commits in case 4 (default 1,000)")
    parser.add_argument("--read-commits", type=int, default=5,
                        help="one-element commits before the case-3 reads (default 5)")
    parser.add_argument("--repeat", type=int, help="case 3 timed reads, best taken (default 5)")
    parser.add_argument("--cold", action="store_true",
                        help="case 3: evict the file from the page cache before each read")
    parser.add_argument("--tools", nargs="+", choices=[t.name for t in TOOLS],
                        default=[t.name for t in TOOLS],
                        help="which tools to run (default: both; plain h5py always reads)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--tmpdir", default=None, help="where to write the files")
    # internal: one tool's side of case 4, run in a subprocess
    parser.add_argument("--child-history", choices=[t.name for t in TOOLS],
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name, default in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.versions < 20:
        parser.error("--versions must be at least 20 (commits 5..15 and the last 10)")
    if args.commits < 2 or args.open_commits < 1 or args.read_commits < 0 or args.repeat < 1:
        parser.error("--commits >= 2, --open-commits >= 1, --read-commits >= 0, --repeat >= 1")
    return args


def print_environment():
    print(machine_line())
    if h5forge_versions is not None:
        ours = f"{package_version('h5forge')} ({Path(h5forge_versions.__file__).parent})"
    else:
        ours = H5FORGE_MISSING
    print(f"h5forge.versions: {ours}; versioned-hdf5: "
          f"{package_version('versioned-hdf5') if versioned_hdf5 is not None else VH5_MISSING}")
    if H5FORGE_IMPORT_TRACEBACK:
        print(H5FORGE_IMPORT_TRACEBACK, file=sys.stderr)


def main(argv=None):
    args = parse_args(argv)
    if args.child_history:
        child_history(args, args.tmpdir)
        return 0
    print_environment()
    with tempfile.TemporaryDirectory(prefix="bench_versions_", dir=args.tmpdir) as workdir:
        for case in args.cases:
            CASE_FUNCTIONS[case](args, workdir)
            for name in os.listdir(workdir):
                os.remove(os.path.join(workdir, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
