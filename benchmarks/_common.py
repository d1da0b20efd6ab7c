"""Helpers the benchmark scripts share: timing with the garbage collector paused, evicting a
file from the page cache, ratios, and the tables and target lines they print."""

from __future__ import annotations

import gc
import importlib
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["timed", "drop_cache", "reason", "ratio", "fmt_ratio", "print_table", "report_target",
           "fmt_time", "import_from_checkout", "package_version", "machine_line"]


def timed(fn, *args):
    """``(seconds, fn(*args))`` with the garbage collector paused, as timeit does."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        result = fn(*args)
        return time.perf_counter() - start, result
    finally:
        if was_enabled:
            gc.enable()


def drop_cache(path):
    """Flush ``path`` and evict it from the page cache (Linux), so the next read hits the disk."""
    if not hasattr(os, "posix_fadvise"):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def reason(exc: BaseException) -> str:
    """``TypeName: first line of the message`` (at most 200 characters), for tables."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]


def ratio(num, den):
    """``num / den``, or None when either is missing, not finite, or ``den`` is zero."""
    if num is None or den is None or not den or not np.isfinite(num) or not np.isfinite(den):
        return None
    return num / den


def fmt_ratio(r):
    if r is None:
        return "n/a"
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.3f}x"


def print_table(title, headers, rows, left=(0,)):
    """Columns in ``left`` (and the last one, for notes) left-aligned, the others right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]

    def line(cells):
        out = []
        for i, (cell, w) in enumerate(zip(cells, widths)):
            lft = i in left or i == len(cells) - 1
            out.append(str(cell).ljust(w) if lft else str(cell).rjust(w))
        return "  ".join(out).rstrip()

    print(f"\n{title}")
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def report_target(description, shown, passed):
    """One target line: ``passed`` is True, False or None (could not be measured)."""
    status = "n/a " if passed is None else ("PASS" if passed else "MISS")
    print(f"  {status}  {description}: {shown}")


def fmt_time(s):
    """Short durations: ``45.3 us``, ``812 us``, ``3.21 ms``, ``120 ms``, ``2.49 s``."""
    if s is None:
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us" if s < 1e-4 else f"{s * 1e6:.0f} us"
    return f"{s * 1e3:.2f} ms" if s < 0.1 else (f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.2f} s")


def import_from_checkout(name: str):
    """Import module ``name`` (e.g. ``h5forge.versions``); when h5forge is not installed,
    from the ``src`` directory of this checkout."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        src = Path(__file__).resolve().parents[1] / "src"
        if "h5forge" in sys.modules or not (src / "h5forge").is_dir():
            raise
        sys.path.insert(0, str(src))
        return importlib.import_module(name)


def package_version(name: str) -> str:
    """The installed version of distribution ``name``, or ``not installed``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_line(cpus: bool = False) -> str:
    """Python, numpy, h5py and HDF5 versions and the platform (and CPU count)."""
    import h5py

    line = (f"python {platform.python_version()}, numpy {np.__version__}, h5py "
            f"{h5py.__version__} (HDF5 {h5py.version.hdf5_version}), {platform.platform()}")
    return line + (f", {os.cpu_count()} CPUs" if cpus else "")
