"""Chunk grids, selections, and reading/writing a dataset of one version through its chunk map.

A version's dataset is a *chunk map*: one pool slot per chunk of its grid (``-1``: the chunk is
all fill value and is not stored). The map is kept as a snapshot (``map``) or as the entries
that changed since a base node (``delta`` rows of ``(flat chunk index, slot)`` plus a hard link
``base`` to the node it changes), so a one-chunk change writes one row, whatever the size of
the dataset. A chain of deltas is cut by a new snapshot every :data:`MAX_DEPTH` versions.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import h5py
import numpy as np

from h5forge._text import dtype_from_text, dtype_to_text
from h5forge.errors import CorruptFileError
from h5forge.versions.pool import ChunkPool

__all__ = ["DatasetMeta", "grid_shape", "chunk_box", "select", "MAX_DEPTH", "read_map",
           "write_node", "assemble", "overlapping_chunks", "MetaView"]

#: Longest chain of delta maps before a snapshot is written.
MAX_DEPTH = 16
META = "h5forge_dataset"
FILL = "h5forge_fillvalue"


class DatasetMeta:
    """What a version records of a dataset besides its chunks."""

    __slots__ = ("dtype", "shape", "chunks", "maxshape", "fillvalue", "compression",
                 "compression_opts", "pool", "depth", "filters")

    def __init__(self, dtype, shape, chunks, maxshape, fillvalue, compression=None,
                 compression_opts=None, pool="", depth=0, filters=None):
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(n) for n in shape)
        self.chunks = tuple(int(c) for c in chunks)
        self.maxshape = tuple(None if m is None else int(m) for m in maxshape)
        self.fillvalue = normalize_item(fillvalue, self.dtype)
        self.compression = compression
        self.compression_opts = compression_opts
        self.pool = pool
        self.depth = depth
        #: h5py's other filter options that are set: shuffle, fletcher32, scaleoffset
        self.filters = dict(filters or {})

    def copy(self) -> DatasetMeta:
        return DatasetMeta(*(getattr(self, name) for name in self.__slots__))

    @property
    def grid(self) -> tuple[int, ...]:
        return grid_shape(self.shape, self.chunks)

    def to_attrs(self) -> dict[str, Any]:
        opts = self.compression_opts
        meta = {"dtype": dtype_to_text(self.dtype), "shape": list(self.shape),
                "chunks": list(self.chunks), "maxshape": list(self.maxshape),
                "compression": self.compression,
                "compression_opts": list(opts) if isinstance(opts, tuple) else opts,
                "pool": self.pool, "depth": self.depth}
        if self.filters:  # only when set: files without them keep their exact layout
            meta["filters"] = self.filters
        return {META: json.dumps(meta), FILL: np.asarray(self.fillvalue, dtype=self.dtype)}

    @classmethod
    def from_node(cls, node: h5py.Group) -> DatasetMeta:
        try:
            meta = json.loads(node.attrs[META])
            dtype = dtype_from_text(meta["dtype"])
            opts = meta.get("compression_opts")
            fill = node.attrs[FILL]
            return cls(dtype, meta["shape"], meta["chunks"], meta["maxshape"],
                       np.asarray(fill, dtype=dtype)[()], meta.get("compression"),
                       tuple(opts) if isinstance(opts, list) else opts, meta["pool"],
                       int(meta.get("depth", 0)), meta.get("filters"))
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptFileError(f"{node.file.filename}:{node.name}: not a versioned dataset "
                                   f"node ({exc})") from None


def normalize_item(value: Any, dtype: np.dtype) -> Any:
    """Text items of variable-length string datasets as bytes, as h5py reads them back."""
    if dtype.kind == "O" and isinstance(value, str):
        return value.encode("utf-8")
    return value


def is_fill(chunk: np.ndarray, fill: Any) -> bool:
    """Whether every element of ``chunk`` equals the fill value."""
    if chunk.dtype.hasobject:
        return all(normalize_item(v, chunk.dtype) == fill for v in chunk.ravel())
    return chunk.tobytes() == np.full(chunk.shape, fill, dtype=chunk.dtype).tobytes()


def grid_shape(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(math.ceil(n / c) for n, c in zip(shape, chunks))


def chunk_box(index: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, chunks))


def read_map(node: h5py.Group, cache: dict | None = None) -> np.ndarray:
    """The resolved chunk map (slots, grid-shaped) of a dataset node."""
    key = node.id
    if cache is not None and key in cache:
        return cache[key]
    chain = []
    current = node
    while "map" not in current:
        if "delta" not in current or "base" not in current:
            raise CorruptFileError(f"{node.file.filename}:{current.name}: a versioned dataset "
                                   f"node needs 'map', or 'delta' and 'base'")
        chain.append(current["delta"][()])
        current = current["base"]
        if cache is not None and current.id in cache:
            base = cache[current.id].copy()
            break
    else:
        base = current["map"][()].astype(np.int64)
    flat = base.reshape(-1)
    for delta in reversed(chain):
        if len(delta):
            flat[delta[:, 0]] = delta[:, 1]
    result = flat.reshape(base.shape)
    if cache is not None:
        cache[key] = result
    return result


def write_node(parent: h5py.Group, name: str, meta: DatasetMeta, slots: np.ndarray,
               base: h5py.Group | None, base_slots: np.ndarray | None,
               attrs: dict[str, Any]) -> h5py.Group:
    """Create the dataset node ``parent[name]``: a delta on ``base`` when the grids agree and
    the chain is short, else a snapshot."""
    node = parent.create_group(name)
    meta = meta.copy()
    use_delta = (base is not None and base_slots is not None and base_slots.shape ==
                 slots.shape and DatasetMeta.from_node(base).depth < MAX_DEPTH)
    if use_delta:
        changed = np.flatnonzero(slots.reshape(-1) != base_slots.reshape(-1))
        if len(changed) * 2 > slots.size:  # most chunks changed: a snapshot is smaller
            use_delta = False
    if use_delta:
        meta.depth = DatasetMeta.from_node(base).depth + 1
        rows = np.stack([changed, slots.reshape(-1)[changed]], axis=1).astype(np.int64)
        node.create_dataset("delta", data=rows.reshape(-1, 2))
        node["base"] = base
    else:
        meta.depth = 0
        node.create_dataset("map", data=slots.astype(np.int64))
    for key, value in meta.to_attrs().items():
        node.attrs[key] = value
    for key, value in attrs.items():
        node.attrs[key] = value
    return node


def select(selection: Any, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...],
                                                            Any]:
    """``(box_start, box_stop, local)``: the box of the array a selection touches, and the
    selection relative to that box. Integers and slices narrow the box; anything else (index
    arrays, masks) selects from the full extent."""
    if not isinstance(selection, tuple):
        selection = (selection,)
    if any(s is Ellipsis for s in selection):
        at = next(i for i, s in enumerate(selection) if s is Ellipsis)
        fill = len(shape) - (len(selection) - 1)
        selection = selection[:at] + (slice(None),) * fill + selection[at + 1:]
    if len(selection) > len(shape):
        raise IndexError(f"too many indices: {len(selection)} for shape {shape}")
    selection = selection + (slice(None),) * (len(shape) - len(selection))
    starts, stops, local = [], [], []
    for sel, n in zip(selection, shape):
        if isinstance(sel, (int, np.integer)) and not isinstance(sel, bool):
            i = int(sel) + (n if sel < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"index {int(sel)} is out of range for an axis of size {n}")
            starts.append(i)
            stops.append(i + 1)
            local.append(0)
        elif isinstance(sel, slice):
            r = range(*sel.indices(n))
            if not r:
                starts.append(0)
                stops.append(0)
                local.append(slice(0, 0))
                continue
            lo, hi = min(r[0], r[-1]), max(r[0], r[-1]) + 1
            starts.append(lo)
            stops.append(hi)
            end = r.stop - lo
            local.append(slice(r.start - lo, end if end >= 0 else None, r.step))
        else:
            starts.append(0)
            stops.append(n)
            local.append(sel)
    return tuple(starts), tuple(stops), tuple(local)


def assemble(starts: tuple[int, ...], stops: tuple[int, ...], meta: DatasetMeta,
             chunk_of) -> np.ndarray:
    """The box ``[starts, stops)`` of a dataset, from ``chunk_of(index) -> full chunk array or
    None`` (None: all fill value)."""
    shape = tuple(b - a for a, b in zip(starts, stops))
    out = np.empty(shape, dtype=meta.dtype)
    if not meta.shape:
        chunk = chunk_of(())
        out[()] = meta.fillvalue if chunk is None else chunk[()]
        return out
    if not out.size:
        return out
    for index, in_box, in_chunk in overlapping_chunks(starts, stops, meta.chunks):
        chunk = chunk_of(index)
        out[in_box] = meta.fillvalue if chunk is None else chunk[in_chunk]
    return out


def overlapping_chunks(starts: tuple[int, ...], stops: tuple[int, ...], chunks: tuple[int, ...]):
    """``(chunk index, part of the box, part of the chunk)`` for every chunk the box
    ``[starts, stops)`` overlaps: the two parts are the same elements."""
    first = [a // c for a, c in zip(starts, chunks)]
    last = [(b - 1) // c for b, c in zip(stops, chunks)]
    for index in itertools.product(*(range(f, g + 1) for f, g in zip(first, last))):
        box = chunk_box(index, chunks)
        lo = [max(a, b.start) for a, b in zip(starts, box)]
        hi = [min(a, b.stop) for a, b in zip(stops, box)]
        yield (index,
               tuple(slice(a - s, z - s) for a, z, s in zip(lo, hi, starts)),
               tuple(slice(a - b.start, z - b.start) for a, z, b in zip(lo, hi, box)))


class MetaView:
    """h5py's read-only dataset properties, from a :class:`DatasetMeta` in ``self.meta``."""

    meta: DatasetMeta
    shape = property(lambda self: self.meta.shape)
    dtype = property(lambda self: self.meta.dtype)
    chunks = property(lambda self: self.meta.chunks or None)
    maxshape = property(lambda self: self.meta.maxshape)
    fillvalue = property(lambda self: self.meta.fillvalue)
    compression = property(lambda self: self.meta.compression)
    compression_opts = property(lambda self: self.meta.compression_opts)
    shuffle = property(lambda self: bool(self.meta.filters.get("shuffle", False)))
    fletcher32 = property(lambda self: bool(self.meta.filters.get("fletcher32", False)))
    scaleoffset = property(lambda self: self.meta.filters.get("scaleoffset"))
    ndim = property(lambda self: len(self.meta.shape))
    size = property(lambda self: int(np.prod(self.meta.shape)))

    def __len__(self) -> int:
        if not self.meta.shape:
            raise TypeError("len() of a 0-d dataset")
        return self.meta.shape[0]

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self[()], dtype=dtype)


def pool_chunk_reader(slots: np.ndarray, pool: ChunkPool | None):
    """``chunk_of`` for :func:`assemble` reading from a pool through a chunk map."""
    def chunk_of(index: tuple[int, ...]) -> np.ndarray | None:
        slot = int(slots[index])
        if slot < 0 or pool is None:
            return None
        return pool.read(slot)

    return chunk_of
