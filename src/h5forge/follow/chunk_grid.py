"""Writing a stream of scan points, read a chunk at a time, into a grid (swmr_tools'
``chunk_utils``).

A :class:`~h5forge.follow.compat.ChunkSource` yields ``n`` points at a time in scan order
(raster, or snake: every other row backwards). :func:`chunk_writes` says which parts of the
grid the chunk starting at flat ``index`` completes, and :func:`write_chunk` writes them,
taking points from this chunk and the one before it. The grid's last axis is cut into
segments of ``n`` points (whole rows when a row is shorter than ``n``), so each write starts
on a multiple of ``n``: with the output chunked like that, every chunk is written once, whole.
A segment is written by the chunk that brings its last point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["SliceInOut", "SliceSize", "ChunkWrite", "chunk_writes", "write_chunk",
           "snake_position"]


@dataclass
class SliceInOut:
    """Points ``input`` of a chunk go to ``output`` (of the grid row, or of the buffer)."""

    input: slice
    output: slice


@dataclass
class SliceSize:
    """Where in the grid row a buffer of ``size`` points goes."""

    slice: slice
    size: int


@dataclass
class ChunkWrite:
    """One segment of one grid row. ``type`` "current": all its points are in this chunk
    (``current``); "combined": it starts in the previous chunk (``last``), and both parts go
    through a buffer written at ``intermediate``. ``position``: the row's grid coordinates,
    then the segment's first column."""

    type: str
    position: tuple[int, ...]
    current: SliceInOut | None = None
    last: SliceInOut | None = None
    intermediate: SliceSize | None = None


def snake_position(index: int, shape: Sequence[int]) -> tuple[tuple[int, ...], bool]:
    """``(grid position, last axis backwards)`` of flat ``index`` in a snake scan of
    ``shape``: an axis runs backwards where the positions before it add up to odd."""
    position = [int(p) for p in np.unravel_index(index, tuple(shape))]
    outer = position[0]
    backwards = False
    for axis in range(1, len(position)):
        if outer % 2:
            position[axis] = shape[axis] - position[axis] - 1
            backwards = axis == len(position) - 1
        outer += position[axis]
    return tuple(position), backwards


def _down(start: int, stop: int) -> slice:
    """Indices ``start, start - 1, ..., stop + 1`` (``stop`` may be -1: down to 0)."""
    return slice(start, None if stop < 0 else stop, -1)


def chunk_writes(index: int, n_points_chunk: int, scan_shape: Sequence[int],
                 snake: bool = False) -> list[ChunkWrite]:
    """The segments of the grid ``scan_shape`` that the chunk of ``n_points_chunk`` points
    starting at flat ``index`` completes, in scan order."""
    n, width = int(n_points_chunk), int(scan_shape[-1])
    total = math.prod(scan_shape)
    start, stop = index, min(index + n, total)
    segment = min(n, width)
    writes = []
    for row in range(start // width, (stop - 1) // width + 1):
        first = row * width
        if snake:
            position, backwards = snake_position(first, scan_shape)
        else:
            position, backwards = tuple(int(p) for p in np.unravel_index(first, scan_shape)), False
        for a in range(0, width, segment):
            b = min(a + segment, width)
            lo, hi = (first + width - b, first + width - a - 1) if backwards else \
                (first + a, first + b - 1)
            if not start <= hi < stop:
                continue  # completed by another chunk
            where = position[:-1] + (a,)
            out = slice(a, b)
            if lo >= start:
                taken = _down(hi - start, lo - start - 1) if backwards else \
                    slice(lo - start, hi - start + 1)
                writes.append(ChunkWrite("current", where, current=SliceInOut(taken, out)))
                continue
            split = start - lo  # points from the previous chunk
            size = b - a
            if backwards:  # the buffer runs from flat hi down to lo
                current = SliceInOut(_down(hi - start, -1), slice(0, size - split))
                last = SliceInOut(_down(n - 1, lo - start + n - 1), slice(size - split, size))
            else:
                last = SliceInOut(slice(lo - start + n, n), slice(0, split))
                current = SliceInOut(slice(0, hi - start + 1), slice(split, size))
            writes.append(ChunkWrite("combined", where, current=current, last=last,
                                     intermediate=SliceSize(out, size)))
    return writes


def write_chunk(writes: Sequence[ChunkWrite], data: Any, last_data: Any, output: Any) -> None:
    """Write the segments ``writes`` (from :func:`chunk_writes`) of this chunk's ``data``
    (points along the first axis) and the previous chunk's ``last_data`` into ``output``
    (an array or h5py dataset shaped ``scan_shape + point shape``)."""
    data = np.asarray(data)
    for w in writes:
        where = tuple(w.position[:-1])
        if w.type == "current":
            output[where + (w.current.output,)] = data[w.current.input]
            continue
        buffer = np.empty((w.intermediate.size,) + data.shape[1:], dtype=data.dtype)
        buffer[w.last.output] = np.asarray(last_data)[w.last.input]
        buffer[w.current.output] = data[w.current.input]
        output[where + (w.intermediate.slice,)] = buffer
