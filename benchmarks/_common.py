"""Helpers the benchmark scripts share: timing with the garbage collector paused, evicting a
file from the page cache, ratios, and the tables and target lines they print."""

from __future__ import annotations

import gc
import os
import time

import numpy as np

__all__ = ["timed", "drop_cache", "reason", "ratio", "fmt_ratio", "print_table", "report_target"]


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
