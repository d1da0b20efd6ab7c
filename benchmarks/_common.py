"""Helpers the benchmark scripts share: timing with the garbage collector paused, and evicting
a file from the page cache."""

from __future__ import annotations

import gc
import os
import time

__all__ = ["timed", "drop_cache"]


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
