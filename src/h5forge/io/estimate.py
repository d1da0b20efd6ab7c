"""Default chunk and buffer shapes.

The chunk rule, and why
-----------------------
HDF5 reads and decompresses whole chunks, so a chunk is the unit of every read. Arrays are
C-ordered: the last axis varies fastest and usually holds what is read together (the channels
of a sample, the pixels of a frame, the fields of a row). So the default chunk keeps trailing
axes **whole** as long as they fit in the target size, then takes as many steps of the next
axis to the left as fit, and 1 on every axis left of that:

* ``(1e7, 128) int16`` (a recording): rows of 256 B, chunk ``(39062, 128)`` = 10 MB. A
  1-second window at 30 kHz (30,000 rows) touches one or two chunks. NeuroConv's proportional
  shrink splits the channels too (its generic estimate, neuroconv 0.10.2: ``(625000, 8)``), so
  the same window touches 16 to 32 chunks and reads 11-61x slower (benchmarks/bench_io.py).
* ``(1e8, 4) float32``: chunk ``(625000, 4)`` = 10 MB (NeuroConv: ``(1581, 4)``, 25 KB, so
  63,252 chunks to index).
* ``(3600, 304, 608) uint16`` (a movie): chunk ``(27, 304, 608)``: whole frames.

The price: reading one channel over the whole time axis reads every chunk. When that is the
main access, give the dataset a chunk shape of its own (``chunk_shape=(n, 1)``). For strided
reads of *uncompressed* chunks, open the file with an HDF5 chunk cache of at least one chunk
(``h5py.File(path, rdcc_nbytes=64 * 2**20)``): below that, HDF5 reads the selected elements
straight from the file, one small read each.

Because the axis being split gets ``floor(target / inner)`` steps of an inner block no larger
than the target, a chunk never exceeds the target and is never smaller than half of it (for
arrays larger than the target): 5-10 MB with the 10 MB default. Arrays no larger than the
target are one chunk of their full shape. MB here is 10**6 bytes, as in NeuroConv.

The buffer rule
---------------
A buffer is what a buffered write holds in memory at once. It is grown from the chunk, axis by
axis from the last, by whole chunks, to the target size (500 MB by default), and clipped to
the full shape, so every buffer covers whole chunks (each chunk is written, and compressed,
exactly once).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from h5forge.errors import ConfigurationError

__all__ = [
    "DEFAULT_CHUNK_MB",
    "DEFAULT_BUFFER_GB",
    "estimate_default_chunk_shape",
    "estimate_default_buffer_shape",
    "storage_itemsize",
]

DEFAULT_CHUNK_MB = 10.0
DEFAULT_BUFFER_GB = 0.5

#: Bytes HDF5 keeps per element of a variable-length type inside a chunk (a heap reference).
_VLEN_ITEMSIZE = 16


def storage_itemsize(dtype: np.dtype) -> int:
    """Bytes per element as stored in a chunk (variable-length strings/objects: 16)."""
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        return _VLEN_ITEMSIZE
    return max(dtype.itemsize, 1)


def _check_shape(full_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(n) for n in full_shape)
    if not shape or any(n <= 0 for n in shape):
        raise ConfigurationError(f"cannot chunk a dataset of shape {shape}: chunked datasets "
                                 f"need at least one axis and no empty axis; store it contiguous "
                                 f"(chunk_shape=None)")
    return shape


def estimate_default_chunk_shape(full_shape: Sequence[int], dtype: np.dtype | str,
                                 chunk_mb: float = DEFAULT_CHUNK_MB) -> tuple[int, ...]:
    """The default chunk shape of a ``full_shape`` array of ``dtype``: trailing axes whole while
    they fit in ``chunk_mb`` megabytes (10**6 bytes), then as many steps of the next axis as fit,
    1 on the axes before (see the module docstring for the reasoning)."""
    shape = _check_shape(full_shape)
    if not chunk_mb > 0:
        raise ConfigurationError(f"chunk_mb must be positive, got {chunk_mb!r}")
    return _fill(shape, (1,) * len(shape), storage_itemsize(dtype), chunk_mb * 1e6)


def estimate_default_buffer_shape(full_shape: Sequence[int], chunk_shape: Sequence[int],
                                  dtype: np.dtype | str,
                                  buffer_gb: float = DEFAULT_BUFFER_GB) -> tuple[int, ...]:
    """The default buffer shape: whole chunks, grown from the last axis to the first up to
    ``buffer_gb`` gigabytes (10**9 bytes) and clipped to ``full_shape``. Never smaller than one
    chunk."""
    shape = _check_shape(full_shape)
    chunks = tuple(int(c) for c in chunk_shape)
    if len(chunks) != len(shape) or any(c <= 0 for c in chunks):
        raise ConfigurationError(f"chunk_shape {chunks} does not fit full_shape {shape}")
    if not buffer_gb > 0:
        raise ConfigurationError(f"buffer_gb must be positive, got {buffer_gb!r}")
    return _fill(shape, chunks, storage_itemsize(dtype), buffer_gb * 1e9)


def _fill(shape: tuple[int, ...], step: tuple[int, ...], itemsize: int,
          target: float) -> tuple[int, ...]:
    """Grow a block of ``step`` units from the last axis to the first: each axis takes as many
    steps as fit in ``target`` bytes (clipped to the axis), and the next axis is only grown
    when this one is whole."""
    block = list(min(s, n) for s, n in zip(step, shape))
    for axis in range(len(shape) - 1, -1, -1):
        others = math.prod(block[:axis]) * math.prod(block[axis + 1:])
        inner = itemsize * others * step[axis]  # bytes per step along this axis
        steps = max(int(target // inner), 1)
        block[axis] = min(shape[axis], steps * step[axis])
        if block[axis] < shape[axis]:
            break
    return tuple(block)
