"""The group a ``stage_version`` block writes into: h5py's group and dataset API, kept in memory
until the block ends.

A staged group starts as a lazy copy of the previous version's tree (nothing is read until it
is touched). A staged dataset reads unchanged chunks from the pool and keeps changed chunks in
memory, so leaving the block with an exception leaves the file exactly as it was, and the
commit knows exactly which chunks changed.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator

import h5py
import numpy as np

from h5forge.errors import VersionClosedError, VersionError
from h5forge.io.estimate import estimate_default_chunk_shape
from h5forge.versions.chunks import (
    FILL,
    META,
    DatasetMeta,
    MetaView,
    assemble,
    chunk_box,
    grid_shape,
    is_fill,
    overlapping_chunks,
    read_map,
    select,
)

__all__ = ["StagedGroup", "StagedDataset", "StagedAttrs", "DEFAULT_CHUNK_MB"]

#: Default chunk target for versioned datasets: small, so a change stores little.
DEFAULT_CHUNK_MB = 0.25
_RESERVED_ATTRS = (META, FILL)
#: Attributes of a version's root group that hold the version's record, not user data.
VERSION_RECORD = ("prev_version", "timestamp")


class ResizeAxisError(VersionError, np.exceptions.AxisError):
    """``resize(size, axis=...)`` with an axis the dataset does not have (numpy's AxisError)."""


class ResizeSizeError(VersionError, TypeError):
    """``resize(size, axis=...)`` with a size that is not one integer."""


def _resize_shape(where: str, shape: tuple[int, ...], size: Any, axis: Any) -> tuple[int, ...]:
    """The new shape asked by h5py's ``resize(size, axis=None)``: ``size`` an int, a 0-d or
    1-d array or a sequence; with ``axis``, one integer for that axis."""
    if axis is not None:
        ndim = len(shape)
        axis = int(axis)
        if not -ndim <= axis < ndim:
            raise ResizeAxisError(f"{where}: axis {axis} is out of bounds for a dataset of "
                                  f"dimension {ndim}")
        if np.ndim(size) != 0:
            raise ResizeSizeError(f"{where}: with axis=, the size must be an integer, not "
                                  f"{size!r}")
        new = list(shape)
        new[axis] = int(size)
        return tuple(new)
    sizes = np.asarray(size)
    if sizes.ndim > 1 or sizes.dtype.kind not in "iuf":
        raise ResizeSizeError(f"{where}: resize takes an integer or a sequence of integers, "
                              f"not {size!r}")
    return tuple(int(n) for n in sizes.reshape(-1))


class StagedAttrs(dict):
    """A node's attributes in a stage (h5py's ``AttributeManager`` calls); remembers whether
    they changed, and refuses every use once the stage has ended."""

    def __init__(self, values: Any = (), stage: Any = None, path: str = "/",
                 reserved: tuple[str, ...] = ()):
        super().__init__(values)
        self.dirty = False
        self._stage = stage
        self._path = path
        self._reserved = _RESERVED_ATTRS + tuple(reserved)

    def _check(self) -> None:
        if self._stage is not None:
            self._stage.check(self._path)

    def __setitem__(self, key: str, value: Any) -> None:
        self._check()
        if key in _RESERVED_ATTRS:
            raise VersionError(f"{self._path}: attribute name {key!r} is reserved by "
                               f"h5forge.versions")
        if key in self._reserved:
            raise VersionError(f"{self._path}: attribute {key!r} of a version's root group is "
                               f"the version's record (vf[name].attrs[{key!r}]); store yours "
                               f"under another name or on a subgroup")
        super().__setitem__(key, value)
        self.dirty = True

    def __delitem__(self, key: str) -> None:
        self._check()
        super().__delitem__(key)
        self.dirty = True

    def __getitem__(self, key: str) -> Any:
        self._check()
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._check()
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._check()
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self._check()
        return super().__iter__()

    def __len__(self) -> int:
        self._check()
        return super().__len__()

    def keys(self):
        self._check()
        return super().keys()

    def values(self):
        self._check()
        return super().values()

    def items(self):
        self._check()
        return super().items()

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: str, *default: Any) -> Any:
        self._check()
        if key not in self and default:
            return default[0]
        value = self[key]
        del self[key]
        return value

    def popitem(self) -> tuple[str, Any]:
        self._check()
        key = next(reversed(list(super().keys())))
        return key, self.pop(key)

    def clear(self) -> None:
        for key in list(self):
            del self[key]

    def create(self, name: str, data: Any, shape=None, dtype=None) -> None:
        self[name] = np.asarray(data, dtype=dtype).reshape(shape) if shape is not None else \
            np.asarray(data, dtype=dtype) if dtype is not None else data

    def modify(self, name: str, value: Any) -> None:
        self[name] = value


def _user_attrs(node: h5py.HLObject) -> dict[str, Any]:
    return {k: v for k, v in node.attrs.items() if k not in _RESERVED_ATTRS}


class StagedDataset(MetaView):
    """A dataset in a stage: numpy-style reads and writes, ``resize``, ``attrs``."""

    def __init__(self, stage, path: str, meta: DatasetMeta, base: h5py.Group | None,
                 attrs: dict[str, Any]):
        self._stage = stage
        self.name = path
        self.meta = meta
        self.base = base
        self.attrs = StagedAttrs(attrs, stage, path)
        self._slots: np.ndarray | None = None if base is not None else \
            np.full(meta.grid, -1, dtype=np.int64)
        self.touched: dict[tuple[int, ...], np.ndarray] = {}
        self.reshaped = False

    def __repr__(self) -> str:
        return f"<staged dataset {self.name!r}: shape {self.shape}, type {self.dtype}>"

    @property
    def dirty(self) -> bool:
        return bool(self.touched) or self.reshaped or self.attrs.dirty or self.base is None

    def slots(self) -> np.ndarray:
        if self._slots is None:
            self._slots = read_map(self.base, self._stage.map_cache).copy()
        return self._slots

    def _chunk(self, index: tuple[int, ...]) -> np.ndarray | None:
        chunk = self.touched.get(index)
        if chunk is not None:
            return chunk
        slot = int(self.slots()[index])
        if slot < 0:
            return None
        return self._stage.pool(self.meta).read(slot)

    # -- reads and writes ---------------------------------------------------------------------
    def __getitem__(self, selection: Any) -> Any:
        self._stage.check(self.name)
        starts, stops, local = select(selection, self.meta.shape)
        box = assemble(starts, stops, self.meta, self._chunk)
        return box[local]

    def __setitem__(self, selection: Any, value: Any) -> None:
        self._stage.check(self.name)
        starts, stops, local = select(selection, self.meta.shape)
        box = assemble(starts, stops, self.meta, self._chunk)
        box[local] = value
        self._write_box(starts, box)

    def _write_box(self, starts: tuple[int, ...], box: np.ndarray) -> None:
        meta = self.meta
        if not meta.shape:
            self.touched[()] = np.asarray(box, dtype=meta.dtype).reshape(())
            return
        if not box.size:
            return
        stops = tuple(a + n for a, n in zip(starts, box.shape))
        for index, in_box, in_chunk in overlapping_chunks(starts, stops, meta.chunks):
            chunk = self._chunk(index)
            chunk = np.full(meta.chunks, meta.fillvalue, dtype=meta.dtype) if chunk is None \
                else chunk.copy() if index not in self.touched else chunk
            chunk[in_chunk] = box[in_box]
            self.touched[index] = chunk

    def write_all(self, data: np.ndarray) -> None:
        """Fill a new dataset from ``data`` chunk by chunk; all-fill chunks are not kept."""
        meta = self.meta
        if not meta.shape:
            self.touched[()] = np.asarray(data, dtype=meta.dtype).reshape(())
            return
        for index in itertools.product(*(range(g) for g in meta.grid)):
            box = chunk_box(index, meta.chunks)
            part = data[tuple(slice(b.start, min(b.stop, n)) for b, n in zip(box, meta.shape))]
            if is_fill(part, meta.fillvalue):
                continue
            chunk = np.full(meta.chunks, meta.fillvalue, dtype=meta.dtype)
            chunk[tuple(slice(0, n) for n in part.shape)] = part
            self.touched[index] = chunk

    def read_direct(self, dest: np.ndarray, source_sel: Any = (), dest_sel: Any = ()) -> None:
        dest[dest_sel] = self[source_sel]

    def write_direct(self, source: np.ndarray, source_sel: Any = (), dest_sel: Any = ()) -> None:
        self[dest_sel] = np.asarray(source)[source_sel]

    def resize(self, size: int | tuple[int, ...], axis: int | None = None) -> None:
        """Change the shape (within ``maxshape``); cut-off data is gone, and growing again
        shows the fill value there."""
        self._stage.check(self.name)
        meta = self.meta
        shape = _resize_shape(self.name, meta.shape, size, axis)
        if len(shape) != len(meta.shape):
            raise VersionError(f"{self.name}: resize to {shape} changes the rank of {meta.shape}")
        for n, m in zip(shape, meta.maxshape):
            if n < 0 or (m is not None and n > m):
                raise VersionError(f"{self.name}: cannot resize to {shape}: maxshape is "
                                   f"{meta.maxshape}")
        slots = self.slots()
        old = meta.shape
        # chunks cut by the new boundary: clear what lies beyond it
        for axis_i, (n_old, n_new) in enumerate(zip(old, shape)):
            if n_new < n_old and n_new % meta.chunks[axis_i]:
                edge = n_new // meta.chunks[axis_i]
                ranges = [range(g) for g in grid_shape(old, meta.chunks)]
                ranges[axis_i] = range(edge, edge + 1)
                for index in itertools.product(*ranges):
                    chunk = self._chunk(index)
                    if chunk is None:
                        continue
                    chunk = chunk.copy()
                    cut = [slice(None)] * len(shape)
                    cut[axis_i] = slice(n_new - edge * meta.chunks[axis_i], None)
                    chunk[tuple(cut)] = meta.fillvalue
                    self.touched[index] = chunk
        new_grid = grid_shape(shape, meta.chunks)
        resized = np.full(new_grid, -1, dtype=np.int64)
        common = tuple(slice(0, min(a, b)) for a, b in zip(slots.shape, new_grid))
        resized[common] = slots[common]
        self._slots = resized
        self.touched = {i: c for i, c in self.touched.items()
                        if all(a < g for a, g in zip(i, new_grid))}
        meta.shape = shape
        self.reshaped = True

    def changed_chunks(self) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
        return iter(self.touched.items())


class StagedGroup:
    """A group in a stage, with h5py's group API."""

    def __init__(self, stage, path: str, base: h5py.Group | None, attrs: dict[str, Any]):
        self._stage = stage
        self.name = path or "/"
        self.base = base
        self.attrs = StagedAttrs(attrs, stage, self.name,
                                 VERSION_RECORD if self.name == "/" else ())
        self._children: dict[str, Any] | None = None if base is not None else {}
        self.structure_changed = base is None

    def __repr__(self) -> str:
        return f"<staged group {self.name!r}>"

    # -- children -----------------------------------------------------------------------------
    def _members(self) -> dict[str, Any]:
        if self._children is None:
            self._children = {name: None for name in self.base}  # loaded on access
        return self._children

    def _child(self, name: str) -> Any:
        members = self._members()
        child = members.get(name)
        if child is None and name in members:
            child = self._stage.wrap(self.base[name], self._join(name))
            members[name] = child
        return child

    def _join(self, name: str) -> str:
        return f"{self.name.rstrip('/')}/{name}"

    def _walk(self, path: str, create: bool = False) -> tuple[StagedGroup, str]:
        self._stage.check(self.name)
        parts = [p for p in str(path).split("/") if p]
        if not parts:
            raise VersionError(f"{self.name}: an empty path names no member")
        group = self
        for part in parts[:-1]:
            child = group._child(part)
            if child is None:
                if not create:
                    raise KeyError(f"{group._join(part)}: no such group in this stage")
                child = group.create_group(part)
            if not isinstance(child, StagedGroup):
                raise VersionError(f"{group._join(part)} is a dataset, not a group")
            group = child
        return group, parts[-1]

    def __getitem__(self, path: str) -> Any:
        group, name = self._walk(path)
        child = group._child(name)
        if child is None:
            raise KeyError(f"{group._join(name)}: no such member in this stage")
        return child

    def get(self, path: str, default: Any = None) -> Any:
        try:
            return self[path]
        except KeyError:
            return default

    def __contains__(self, path: object) -> bool:
        try:
            self[str(path)]
        except VersionClosedError:
            raise
        except (KeyError, VersionError):
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        self._stage.check(self.name)
        return iter(list(self._members()))

    def __len__(self) -> int:
        self._stage.check(self.name)
        return len(self._members())

    def keys(self):
        self._stage.check(self.name)
        return list(self._members())

    def values(self):
        return [self[name] for name in self._members()]

    def items(self):
        return [(name, self[name]) for name in self._members()]

    def _add(self, name: str, child: Any) -> Any:
        if name in self._members():
            raise VersionError(f"{self._join(name)} already exists in this stage; delete it "
                               f"first (del g[{name!r}])")
        self._members()[name] = child
        self.structure_changed = True
        return child

    def create_group(self, path: str, track_order: bool | None = None) -> StagedGroup:
        group, name = self._walk(path, create=True)
        return group._add(name, StagedGroup(self._stage, group._join(name), None, {}))

    def require_group(self, path: str) -> StagedGroup:
        existing = self.get(path)
        if isinstance(existing, StagedGroup):
            return existing
        if existing is not None:
            raise VersionError(f"{path} is a dataset, not a group")
        return self.create_group(path)

    def create_dataset(self, path: str, shape: Any = None, dtype: Any = None, data: Any = None,
                       chunks: Any = None, maxshape: Any = None, fillvalue: Any = None,
                       compression: Any = None, compression_opts: Any = None,
                       shuffle: bool = False, fletcher32: bool = False,
                       scaleoffset: int | None = None, **unsupported: Any) -> StagedDataset:
        """h5py's ``create_dataset``: shape/dtype (default float64, as h5py and
        versioned-hdf5) or data; chunks (a tuple, an int for 1-D, default about 256 KB);
        maxshape (default: resizable on every axis, as in versioned-hdf5); fillvalue; and the
        filters: compression (a name, a filter id, or a filter object such as
        ``hdf5plugin.Blosc()``), compression_opts, shuffle, fletcher32, scaleoffset. Created
        without data, a dataset stores only the chunks written later (sparse)."""
        unsupported = {k: v for k, v in unsupported.items()
                       if v is not None and v is not False and k != "track_order"}
        if unsupported:
            raise VersionError(f"{path}: create_dataset option(s) {sorted(unsupported)} are not "
                               f"supported in a versioned file")
        group, name = self._walk(path, create=True)
        where = group._join(name)
        if name in group._members():
            raise VersionError(f"{where} already exists in this stage; delete it first "
                               f"(del g[{name!r}]) or assign g[{name!r}] = data to replace it")
        if data is not None:
            if isinstance(data, StagedDataset):
                data = data[()]
            data = _as_array(data, dtype)
            if shape is not None and tuple(np.atleast_1d(shape)) != data.shape and \
                    tuple(shape) != data.shape:
                raise VersionError(f"{where}: shape {shape} does not match the data's "
                                   f"{data.shape}")
            shape, dtype = data.shape, data.dtype
        if shape is None:
            raise VersionError(f"{where}: give shape= or data=")
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(
            int(n) for n in shape)
        dtype = np.dtype(dtype if dtype is not None else "f8")
        base = h5py.check_vlen_dtype(dtype)
        if base is not None and h5py.check_string_dtype(dtype) is None:
            raise VersionError(f"{where}: variable-length sequences ({dtype}) cannot be "
                               f"versioned; use fixed-size arrays or strings")
        maxshape = (None,) * len(shape) if maxshape is None else \
            (maxshape,) if isinstance(maxshape, (int, np.integer)) else tuple(maxshape)
        if len(maxshape) != len(shape) or any(m is not None and m < n
                                              for m, n in zip(maxshape, shape)):
            raise VersionError(f"{where}: maxshape {maxshape} does not fit shape {shape}")
        chunks = _chunks(chunks, shape, maxshape, dtype, where)
        if fillvalue is None:
            fillvalue = "" if h5py.check_string_dtype(dtype) is not None else \
                np.zeros((), dtype=dtype)[()]
        compression, compression_opts = _compression(compression, compression_opts)
        filters = {k: v for k, v in (("shuffle", bool(shuffle)),
                                     ("fletcher32", bool(fletcher32)),
                                     ("scaleoffset", scaleoffset)) if v}
        meta = DatasetMeta(dtype, shape, chunks, maxshape, fillvalue, compression,
                           compression_opts, filters=filters)
        check_filters(meta, where)
        dataset = StagedDataset(self._stage, where, meta, None, {})
        if data is not None:
            dataset.write_all(data)
        return group._add(name, dataset)

    def require_dataset(self, path: str, shape: Any, dtype: Any, **kwargs: Any) -> StagedDataset:
        existing = self.get(path)
        if isinstance(existing, StagedDataset):
            return existing
        return self.create_dataset(path, shape=shape, dtype=dtype, **kwargs)

    def __setitem__(self, path: str, value: Any) -> None:
        """``g[path] = data``: a new dataset from ``data``, replacing one already there (as
        versioned-hdf5 does; h5py would refuse). A staged group assigned is stored as a copy."""
        if path in self:
            if isinstance(value, StagedDataset) and value is self[path]:
                return
            if isinstance(value, StagedDataset):
                value = value[()]
            del self[path]
        self.create_dataset(path, data=value)

    def __delitem__(self, path: str) -> None:
        group, name = self._walk(path)
        if name not in group._members():
            raise KeyError(f"{group._join(name)}: no such member in this stage")
        del group._members()[name]
        group.structure_changed = True

    def move(self, source: str, dest: str) -> None:
        obj = self[source]
        del self[source]
        group, name = self._walk(dest, create=True)
        group._add(name, obj)

    def __h5forge_import__(self, source: h5py.Group, path: str, overwrite: bool) -> None:
        """Copy ``source[path]`` (or all of ``source`` for '') into this stage at ``path``:
        what ``h5forge.dump(obj, stage_group, path)`` calls. Hard links stay shared."""
        from h5forge.errors import NodeExistsError

        self._stage.check(self.name)
        memo: dict[Any, Any] = {}
        if not path:
            if (len(self) or self.attrs) and not overwrite:
                raise NodeExistsError(f"{self.name} already holds data; pass overwrite=True "
                                      f"or give a path inside it")
            for name in list(self):
                del self[name]
            self.attrs.clear()
            self.attrs.dirty = True
            for key, value in source.attrs.items():
                self.attrs[key] = value
            for name in source:
                self._import(name, source[name], memo)
            return
        group, name = self._walk(path, create=True)
        if name in group._members():
            if not overwrite:
                raise NodeExistsError(f"{group._join(name)} already exists; pass "
                                      f"overwrite=True to replace it")
            del group[name]
        group._import(name, source[path], memo)

    def _import(self, name: str, obj: h5py.HLObject, memo: dict[Any, Any]) -> None:
        key = obj.id
        if key in memo:
            self._add(name, memo[key])
            return
        if isinstance(obj, h5py.Group):
            child = self.create_group(name)
            memo[key] = child
            for attr, value in obj.attrs.items():
                child.attrs[attr] = value
            for sub in obj:
                child._import(sub, obj[sub], memo)
        else:
            if obj.shape is None:
                raise VersionError(f"{self._join(name)}: a dataset without a shape "
                                   f"(h5py.Empty) cannot be versioned")
            child = self.create_dataset(name, data=obj[()], dtype=obj.dtype,
                                        chunks=obj.chunks)
            memo[key] = child
            for attr, value in obj.attrs.items():
                child.attrs[attr] = value

    @property
    def dirty(self) -> bool:
        """Whether this subtree differs from the base (loaded children that changed count)."""
        if self.structure_changed or self.attrs.dirty:
            return True
        if self._children is None:
            return False
        return any(child is not None and child.dirty for child in self._children.values())


def _as_array(data: Any, dtype: Any) -> np.ndarray:
    """``data`` as an array; text becomes variable-length UTF-8 strings, as h5py stores it."""
    if dtype is not None and h5py.check_string_dtype(np.dtype(dtype)) is not None:
        return np.asarray(data, dtype=np.dtype(dtype))
    arr = np.asarray(data, dtype=dtype)
    if arr.dtype.kind == "U" or (arr.dtype.kind == "O" and all(
            isinstance(v, str) for v in arr.ravel())):
        return arr.astype(h5py.string_dtype())
    return arr


def _compression(compression: Any, opts: Any) -> tuple[Any, Any]:
    """A filter object (``hdf5plugin.Blosc()``, anything with ``filter_id`` and
    ``filter_options``, as h5py takes) as its filter id and options, which JSON can keep."""
    if hasattr(compression, "filter_id"):
        opts = tuple(int(o) for o in getattr(compression, "filter_options", ()))
        compression = int(compression.filter_id)
    elif isinstance(compression, (int, np.integer)) and not isinstance(compression, bool):
        compression = int(compression)
    if isinstance(opts, (list, np.ndarray)):
        opts = tuple(np.asarray(opts).tolist())
    elif isinstance(opts, np.integer):
        opts = int(opts)
    return compression, opts


def check_filters(meta: DatasetMeta, where: str) -> None:
    """Create the dataset's filter pipeline once, in memory, so a bad compression name,
    option or filter this HDF5 cannot load is refused here, not at commit."""
    if not meta.shape or (meta.compression is None and not meta.filters):
        return
    with h5py.File(f"h5forge-check-{id(meta)}", "w", driver="core",
                   backing_store=False) as probe:
        try:
            probe.create_dataset("x", shape=meta.chunks, dtype=meta.dtype, chunks=meta.chunks,
                                 compression=meta.compression,
                                 compression_opts=meta.compression_opts, **meta.filters)
        except (ValueError, TypeError, OSError, KeyError) as exc:
            raise VersionError(f"{where}: invalid filter settings (compression="
                               f"{meta.compression!r}, compression_opts="
                               f"{meta.compression_opts!r}, {meta.filters}): {exc}") from None


def _chunks(chunks: Any, shape: tuple[int, ...], maxshape: tuple, dtype: np.dtype,
            where: str) -> tuple[int, ...]:
    if not shape:
        return ()
    if isinstance(chunks, (int, np.integer)) and not isinstance(chunks, bool):
        if len(shape) != 1:
            raise VersionError(f"{where}: chunks={int(chunks)} is for 1-D data; give one size "
                               f"per axis of shape {shape}")
        chunks = (int(chunks),)
    if chunks is None or chunks is True:
        basis = tuple(max(n, 1) if m is not None or n else 1024 for n, m in zip(shape, maxshape))
        return estimate_default_chunk_shape(basis, dtype, chunk_mb=DEFAULT_CHUNK_MB)
    if chunks is False:
        raise VersionError(f"{where}: versioned datasets are always chunked")
    chunks = tuple(int(c) for c in chunks)
    if len(chunks) != len(shape) or any(c <= 0 for c in chunks):
        raise VersionError(f"{where}: chunks {chunks} do not fit shape {shape}")
    return chunks
