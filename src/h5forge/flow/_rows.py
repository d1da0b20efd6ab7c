"""Row reads and writes of h5py datasets through h5py's low-level API.

A flow reads and writes many small row ranges (a chunk's rows, its references, their regions).
``dset[a:b]`` costs h5py 40-55 microseconds per call in selection parsing; the same hyperslab
through ``DatasetID.read``/``write`` costs 10-15. These helpers take ``fast_table(dset)`` (the
dataset id, its dtype and the memory type to use) so callers look it up once.
"""

from __future__ import annotations

import weakref
from typing import Any

import h5py
import numpy as np
from h5py import h5s

__all__ = ["fast_table", "read_points", "read_span", "write_span"]

Fast = tuple[Any, np.dtype, Any]

# dataset id -> (dtype, memory type); weak, and holding nothing that keeps the dataset open
_TYPES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fast_table(table: Any) -> Fast | None:
    """``(dataset id, dtype, memory type)`` when ``table`` is an h5py dataset that can be read
    through the low-level API (no object fields), else None. Compound datasets are read with
    their file type as memory type: h5py's dtype describes its layout exactly, and HDF5 then
    copies bytes instead of converting field by field (several times faster for small reads).
    Other dtypes use h5py's memory type (None)."""
    if not isinstance(table, h5py.Dataset):
        return None
    dsid = table.id
    types = _TYPES.get(dsid)  # looked up once per open dataset: a flow asks on every chunk
    if types is None:
        dtype = dsid.dtype
        types = _TYPES[dsid] = (dtype, None if dtype.hasobject else
                                dsid.get_type().copy() if dtype.names is not None else None)
    return None if types[0].hasobject else (dsid, *types)


def read_span(fast: Fast, shape: tuple[int, ...], lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` (in range, ``hi > lo``) of an h5py dataset, low-level."""
    dsid, dtype, mtype = fast
    rest = shape[1:]
    out = np.empty((hi - lo,) + rest, dtype=dtype)
    fspace = dsid.get_space()
    fspace.select_hyperslab((lo,) + (0,) * len(rest), (hi - lo,) + rest)
    dsid.read(h5s.create_simple(out.shape), fspace, out, mtype)
    return out


def read_points(fast: Fast, shape: tuple[int, ...], rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (in range, not empty) of an h5py dataset as one point selection (HDF5
    reads points in the order given)."""
    dsid, dtype, mtype = fast
    rest = shape[1:]
    out = np.empty((rows.size,) + rest, dtype=dtype)
    if rest:
        k = len(rest)
        grid = np.indices(rest).reshape(k, -1).T
        coords = np.empty((rows.size, grid.shape[0], k + 1), dtype=np.uint64)
        coords[:, :, 0] = rows[:, np.newaxis]
        coords[:, :, 1:] = grid[np.newaxis]
        coords = coords.reshape(-1, k + 1)
    else:
        coords = rows.astype(np.uint64).reshape(-1, 1)
    fspace = dsid.get_space()
    fspace.select_elements(coords)
    dsid.read(h5s.create_simple(out.shape), fspace, out, mtype)
    return out


def write_span(fast: Fast, lo: int, rows: np.ndarray, dxpl: Any = None) -> None:
    """Write ``rows`` (a C-contiguous array of the dataset's dtype and row shape) at rows
    ``lo:lo+len(rows)`` (in range) of an h5py dataset. ``dxpl``: a transfer property list; a
    collective one (MPI) makes every rank take part, so an empty ``rows`` still calls HDF5,
    with nothing selected."""
    dsid, _, mtype = fast
    rest = rows.shape[1:]
    fspace = dsid.get_space()
    if rows.shape[0] == 0:
        if dxpl is None:
            return
        fspace.select_none()
        mspace = h5s.create_simple((1,) + rest)
        mspace.select_none()
        dsid.write(mspace, fspace, np.zeros((1,) + rest, rows.dtype), mtype, dxpl=dxpl)
        return
    fspace.select_hyperslab((lo,) + (0,) * len(rest), rows.shape)
    dsid.write(h5s.create_simple(rows.shape), fspace, rows, mtype, dxpl=dxpl)
