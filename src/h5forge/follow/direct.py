"""Reading whole chunks straight from the file (``read_direct_chunk``), decoded here.

The fast path swmr_tools calls ``use_direct_chunk`` / ``ChunkSource``: when a frame (or a
block of frames) is exactly one chunk, read the stored bytes with ``H5Dread_chunk`` and decode
them outside HDF5's filter pipeline. Decoded here: chunks stored without filters, and blosc
(filter 32001, with the ``blosc`` package). Unlike swmr_tools, the chunk's filter mask is
honoured (HDF5 stores a chunk unfiltered when an optional filter declined it), the decoded size
is checked before anything is written, an unwritten chunk reads as HDF5 would (the fill value)
instead of after a one-second sleep, and the arrays returned are writable.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import h5py
import numpy as np

from h5forge.errors import FollowError
from h5forge.follow.handles import describe

__all__ = ["DirectChunkReader", "BLOSC_FILTER", "decodable_filters"]

BLOSC_FILTER = 32001


def _blosc() -> Any | None:
    try:
        return importlib.import_module("blosc")
    except ImportError:
        return None


def decodable_filters(dataset: h5py.Dataset) -> str | None:
    """``"none"`` or ``"blosc"`` when this module can decode ``dataset``'s chunks itself,
    else None."""
    plist = dataset.id.get_create_plist()
    count = plist.get_nfilters()
    if count == 0:
        return "none"
    if count == 1 and plist.get_filter(0)[0] == BLOSC_FILTER and _blosc() is not None:
        return "blosc"
    return None


class DirectChunkReader:
    """Reads the chunk at a chunk-aligned position of an h5py dataset and decodes it to an
    array of ``chunk_shape``."""

    def __init__(self, dataset: h5py.Dataset, codec: str):
        self.dataset = dataset
        self.codec = codec
        self.chunk_shape = tuple(dataset.chunks)
        self.dtype = dataset.dtype
        self.nbytes = math.prod(self.chunk_shape) * self.dtype.itemsize
        self._blosc = _blosc() if codec == "blosc" else None

    @classmethod
    def why_not(cls, dataset: Any, scan_rank: int) -> str | None:
        """Why frames of ``dataset`` cannot be read one chunk each directly (None: they can)."""
        if not isinstance(dataset, h5py.Dataset):
            return "it is not an h5py.Dataset"
        chunks = dataset.chunks
        if chunks is None:
            return "it is not chunked"
        shape = dataset.shape
        if any(c != 1 for c in chunks[:scan_rank]) or chunks[scan_rank:] != shape[scan_rank:]:
            return f"its chunks {chunks} are not one frame {shape[scan_rank:]} each"
        if dataset.dtype.hasobject or h5py.check_vlen_dtype(dataset.dtype) is not None:
            return f"its type {dataset.dtype} has variable-length members"
        if decodable_filters(dataset) is None:
            return ("its filters are not decodable here (only none, or blosc with the "
                    "'blosc' package)")
        return None

    @classmethod
    def for_frames(cls, dataset: Any, scan_rank: int, direct: bool | None
                   ) -> DirectChunkReader | None:
        """The reader for one-chunk frames, or None. ``direct``: None where possible, True
        required (a :class:`FollowError` says why not), False never."""
        if direct is False:
            return None
        why = cls.why_not(dataset, scan_rank)
        if why is not None:
            if direct:
                raise FollowError(f"{describe(dataset)}: frames cannot be read with direct "
                                  f"chunk reads: {why}")
            return None
        return cls(dataset, decodable_filters(dataset))

    def read(self, position: tuple[int, ...]) -> np.ndarray:
        """The chunk whose first element is at ``position`` (scan axes; the rest 0), shaped
        like the frame (``chunk_shape`` without the leading scan axes of length 1)."""
        block = self.read_chunk(position + (0,) * (len(self.chunk_shape) - len(position)))
        return block.reshape(self.chunk_shape[len(position):])

    def read_chunk(self, offset: tuple[int, ...]) -> np.ndarray:
        """The chunk at element ``offset`` (chunk-aligned), as an array of ``chunk_shape``;
        an unwritten chunk reads through HDF5 (its fill value)."""
        ds = self.dataset
        try:
            mask, raw = ds.id.read_direct_chunk(offset)
        except (OSError, RuntimeError, ValueError, KeyError):
            if ds.id.get_chunk_info_by_coord(offset).byte_offset is not None:
                raise
            sel = tuple(slice(o, o + c) for o, c in zip(offset, self.chunk_shape))
            out = np.zeros(self.chunk_shape, self.dtype)
            part = ds[sel]
            out[tuple(slice(0, n) for n in part.shape)] = part
            return out
        if self.codec == "blosc" and not mask & 1:
            nbytes = self._blosc.get_cbuffer_sizes(raw)[0]
            if nbytes != self.nbytes:
                raise FollowError(f"{describe(ds)}: chunk at {offset} decodes to {nbytes} "
                                  f"bytes, {self.nbytes} expected")
            out = np.empty(self.chunk_shape, self.dtype)
            self._blosc.decompress_ptr(raw, out.ctypes.data)
            return out
        if len(raw) != self.nbytes:  # no filters, or the filter was skipped for this chunk
            raise FollowError(f"{describe(ds)}: chunk at {offset} holds {len(raw)} bytes "
                              f"unfiltered, {self.nbytes} expected")
        return np.frombuffer(raw, self.dtype).reshape(self.chunk_shape).copy()
