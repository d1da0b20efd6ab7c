"""Import a file written by versioned-hdf5, with its whole history, into h5forge's format.

:func:`import_versioned_hdf5` reads every committed version through versioned-hdf5's own public
API (``VersionedHDF5File(f)[name]``) and commits it again with
``VersionedFile.stage_version(name, prev_version=..., timestamp=...)``:

* versions are committed parents first (ties in commit time order), each on top of the version
  it was staged from, so branches stay branches and the ``prev_version`` chain is the same;
* timestamps are kept to the microsecond, and the source's current version stays current;
* each version stages only what differs from its parent: changed chunks, resized or replaced
  datasets, removed members, attributes. Chunk shapes, fill values, dtypes (fixed and
  variable-length strings, compound types) and compression (gzip, lzf, and filter plugins such
  as Blosc when ``hdf5plugin`` is installed) are kept; datasets stay resizable, as they are in
  versioned-hdf5. ``shuffle``/``fletcher32``/``scaleoffset`` are kept when the stage accepts
  them, else dropped with a note (they change how chunks are stored, never the values read).

The destination is written aside and renamed into place only when every version is in, so a
failed import leaves nothing behind. versioned-hdf5's own bookkeeping (the ``committed`` flag,
the ``chunks``/``raw_data`` attributes of its virtual datasets) is not copied.
"""

from __future__ import annotations

import datetime as dt
import heapq
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from h5forge import _h5
from h5forge._progress import progress_bar
from h5forge.errors import (
    CorruptFileError,
    H5ForgeError,
    MissingDependencyError,
    NodeExistsError,
    VersionError,
)
from h5forge.versions.chunks import grid_shape
from h5forge.versions.compact import sync_path
from h5forge.versions.file import DATA_GROUP, FIRST_VERSION, TIMESTAMP_FORMAT, VersionedFile
from h5forge.versions.journal import journal_path, lock_path

__all__ = ["import_versioned_hdf5", "ImportSummary", "PEER_EXTRA"]

#: The pip extra that installs versioned-hdf5 (``pip install "h5forge[versioned-hdf5]"``).
PEER_EXTRA = "versioned-hdf5"
_PEER_DATA = "_version_data"
_VERSION_ATTRS = frozenset({"prev_version", "timestamp", "committed"})
_DATASET_ATTRS = frozenset({"chunks", "raw_data"})
# HDF5 filter ids h5py names itself: deflate, shuffle, fletcher32, szip, nbit, scaleoffset, lzf.
_KNOWN_FILTERS = frozenset({1, 2, 3, 4, 5, 6, 32000})
_STORAGE_ONLY = ("shuffle", "fletcher32", "scaleoffset")


@dataclass
class ImportSummary:
    """What :func:`import_versioned_hdf5` did."""

    source: str
    target: str
    #: the imported versions, in the order they were committed
    versions: list[str] = field(default_factory=list)
    current_version: str = FIRST_VERSION
    #: things worth knowing that did not stop the import (dropped storage filters, skipped
    #: uncommitted versions, a parent that no longer exists)
    notes: list[str] = field(default_factory=list)


def _peer() -> Any:
    try:
        import versioned_hdf5
    except ImportError as exc:
        raise MissingDependencyError(
            f"importing a versioned-hdf5 file needs the versioned-hdf5 package ({exc}); "
            f"install it with: pip install \"h5forge[{PEER_EXTRA}]\"") from None
    return versioned_hdf5


def import_versioned_hdf5(src: _h5.PathLike | h5py.Group, dst: _h5.PathLike, *,
                          overwrite: bool = False,
                          progress: bool | None = None) -> ImportSummary:
    """Convert the versioned-hdf5 file ``src`` (a path, or an open h5py File/Group holding a
    versioned-hdf5 tree) into the new h5forge versioned file ``dst``, with every committed
    version: names, timestamps, ``prev_version`` chain (branches included), the current
    version, groups, datasets and attributes.

    ``dst`` must not exist unless ``overwrite=True``; it is written aside and renamed into place
    when complete, so nothing is left there if the import fails. Needs versioned-hdf5
    (``pip install "h5forge[versioned-hdf5]"``); ``progress`` shows a bar of the bytes read
    (default: when stderr is a terminal).
    """
    if not _h5.is_path(dst):
        raise _h5.TargetError(f"the import destination must be a file path, got "
                              f"{type(dst).__name__}")
    target = os.fspath(dst)
    if os.path.exists(target) and not overwrite:
        raise NodeExistsError(f"{target} exists; pass overwrite=True (--overwrite) to "
                              f"replace it")
    peer = _peer()
    with _h5.open_group(src, "r") as root:
        where = _h5.describe(root)
        if _PEER_DATA not in root or not isinstance(root[_PEER_DATA], h5py.Group) or \
                "versions" not in root[_PEER_DATA]:
            hint = (" (it is an h5forge versioned file already)"
                    if DATA_GROUP in root else "")
            raise VersionError(f"{where}: not a versioned-hdf5 file: there is no "
                               f"{_PEER_DATA}/versions group{hint}")
        try:
            source = peer.VersionedHDF5File(root)
        except ValueError as exc:  # e.g. written by a newer versioned-hdf5
            raise VersionError(f"{where}: versioned-hdf5 cannot read it: {exc}") from None
        summary = ImportSummary(source=where, target=target)
        plan = _plan(root[_PEER_DATA]["versions"], where, summary)
        tmp = os.path.join(os.path.dirname(os.path.abspath(target)),
                           f".h5forge-import-{uuid.uuid4().hex}-{os.path.basename(target)}")
        try:
            with progress_bar(None, f"importing {os.path.basename(where)}", progress) as bar:
                _write(source, root, plan, tmp, summary, bar)
            if os.path.exists(target) and not overwrite:
                raise NodeExistsError(f"{target} appeared during the import; the import was "
                                      f"not written (pass overwrite=True to replace it)")
            sync_path(tmp)
            os.replace(tmp, target)
            sync_path(os.path.dirname(os.path.abspath(target)))
        finally:
            for leftover in (tmp, journal_path(tmp), lock_path(tmp)):
                if os.path.exists(leftover):
                    os.remove(leftover)
    return summary


# -- the order of commits -------------------------------------------------------------------------
@dataclass
class _Plan:
    order: list[tuple[str, str, dt.datetime]]  # (name, prev, timestamp), parents first
    current: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _plan(versions: h5py.Group, where: str, summary: ImportSummary) -> _Plan:
    """The versions to commit, parents before children (ties: oldest timestamp first)."""
    info: dict[str, tuple[str, dt.datetime]] = {}
    for name in versions:
        if name == FIRST_VERSION:
            continue
        attrs = versions[name].attrs
        if not bool(attrs.get("committed", True)):
            summary.notes.append(f"skipped version {name!r}: it was never committed (an "
                                 f"interrupted stage)")
            continue
        if name.startswith("__"):
            raise VersionError(f"{where}: version {name!r} starts with '__', which h5forge "
                               f"reserves; rename it in the source first")
        try:
            stamp = dt.datetime.strptime(_text(attrs["timestamp"]), TIMESTAMP_FORMAT)
        except (KeyError, ValueError) as exc:
            raise CorruptFileError(f"{where}: version {name!r} has no readable timestamp "
                                   f"({exc})") from None
        info[name] = (_text(attrs.get("prev_version", FIRST_VERSION)), stamp)
    children: dict[str, list[str]] = {}
    ready: list[tuple[dt.datetime, str]] = []
    for name, (prev, stamp) in info.items():
        if prev != FIRST_VERSION and prev not in info:
            summary.notes.append(f"version {name!r} names {prev!r} as its previous version, "
                                 f"which the file no longer has: imported with no previous "
                                 f"version (its data is complete)")
            info[name] = (FIRST_VERSION, stamp)
            prev = FIRST_VERSION
        if prev == FIRST_VERSION:
            heapq.heappush(ready, (stamp, name))
        else:
            children.setdefault(prev, []).append(name)
    order: list[tuple[str, str, dt.datetime]] = []
    while ready:
        stamp, name = heapq.heappop(ready)
        order.append((name, info[name][0], stamp))
        for child in children.pop(name, []):
            heapq.heappush(ready, (info[child][1], child))
    if len(order) != len(info):
        stuck = sorted(set(info) - {name for name, _, _ in order})
        raise CorruptFileError(f"{where}: the prev_version links of {', '.join(stuck)} form a "
                               f"cycle; the history cannot be replayed")
    current = _text(versions.attrs.get("current_version", FIRST_VERSION))
    if current != FIRST_VERSION and current not in info:
        raise CorruptFileError(f"{where}: the current version {current!r} is not a committed "
                               f"version")
    return _Plan(order, current)


# -- writing --------------------------------------------------------------------------------------
def _write(source: Any, root: h5py.Group, plan: _Plan, tmp: str, summary: ImportSummary,
           bar: Any) -> None:
    children = {prev for _, prev, _ in plan.order}
    mappings: dict[str, dict[str, dict]] = {}  # versions with children still to commit
    with VersionedFile(tmp, "w") as vf:
        for name, prev, stamp in plan.order:
            # Only a commit on top of the current version keeps the plain mirror of the file's
            # root up to date incrementally; branches are committed aside, and the current
            # version is set once at the end.
            make_current = plan.current != FIRST_VERSION and prev == vf.current_version
            copier = _VersionCopier(root, name, summary, bar, mappings.get(prev))
            with vf.stage_version(name, prev_version=prev, make_current=make_current,
                                  timestamp=stamp) as stage:
                copier.group(stage, source[name], top=True)
            summary.versions.append(name)
            if name in children:
                mappings[name] = copier.mappings
        if plan.current != FIRST_VERSION and vf.current_version != plan.current:
            vf.current_version = plan.current
        summary.current_version = vf.current_version


def _is_group(obj: Any) -> bool:
    return isinstance(obj, h5py.Group)


class _VersionCopier:
    """Makes a stage (a copy of the parent version) equal to one version of the source."""

    def __init__(self, root: h5py.Group, version: str, summary: ImportSummary, bar: Any,
                 parent: dict[str, dict] | None):
        self.root = root
        self.version = version
        self.summary = summary
        self.bar = bar
        #: the parent version's virtual-dataset mappings by path (None: not known)
        self.parent = parent
        #: this version's, for its children
        self.mappings: dict[str, dict] = {}

    def where(self, path: str) -> str:
        return f"{_h5.describe(self.root)} version {self.version!r}, {path or '/'}"

    def group(self, stage: Any, source: Any, top: bool = False) -> None:
        skip = _VERSION_ATTRS if top else frozenset()
        _sync_attrs(stage.attrs, source.attrs, skip)
        names = list(source)
        for name in list(stage):
            if name not in names:
                del stage[name]
        for name in names:
            obj = source[name]
            path = f"{stage.name.rstrip('/')}/{name}"
            current = stage.get(name)
            if _is_group(obj):
                if current is not None and not hasattr(current, "create_dataset"):
                    del stage[name]  # was a dataset, is a group now
                    current = None
                if current is None:
                    current = stage.create_group(name)
                self.group(current, obj)
            else:
                self.dataset(stage, name, current, obj, path)

    def dataset(self, stage: Any, name: str, current: Any, obj: Any, path: str) -> None:
        kind = self.creation(obj, path)
        fill = obj.fillvalue
        before = self.parent_mapping(path)
        after = _mapping(obj)
        if after is not None:
            self.mappings[path] = after
        if current is not None and before is not None and after is not None and \
                current.shape == obj.shape and \
                _same_kind(current, kind, obj.dtype, len(obj.shape), fill):
            # Same shape, same kind: only the regions mapped differently can differ.
            for box in _changed_regions(before, after):
                part = obj[box]
                self.bar.update(part.nbytes)
                current[box] = part
        else:
            data = obj[()]
            self.bar.update(data.nbytes if isinstance(data, np.ndarray) else 0)
            data = np.asarray(data)
            if current is not None and _same_kind(current, kind, data.dtype, data.ndim, fill):
                _update(current, data)
            else:
                if current is not None:
                    del stage[name]
                current = self.create(stage, name, data, kind, fill, path)
        _sync_attrs(current.attrs, obj.attrs, _DATASET_ATTRS)

    def parent_mapping(self, path: str) -> dict | None:
        return self.parent.get(path) if self.parent is not None else None

    def creation(self, obj: Any, path: str) -> dict[str, Any]:
        """Chunks, compression and storage filters of a source dataset (read from the
        dataset versioned-hdf5 keeps its chunks in, when the version's dataset is virtual)."""
        raw = obj
        location = obj.attrs.get("raw_data") if "raw_data" in obj.attrs else None
        if location is not None:
            found = obj.file.get(_text(location))
            if isinstance(found, h5py.Dataset):
                raw = found
        kind: dict[str, Any] = {"chunks": tuple(int(c) for c in (raw.chunks or ())) or None,
                                "compression": None, "compression_opts": None}
        if not isinstance(raw, h5py.Dataset):
            kind["compression"] = getattr(raw, "compression", None)
            kind["compression_opts"] = getattr(raw, "compression_opts", None)
            return kind
        plist = raw.id.get_create_plist()
        filters = [plist.get_filter(i) for i in range(plist.get_nfilters())]
        if raw.compression in ("gzip", "lzf", "szip"):
            kind["compression"] = raw.compression
            kind["compression_opts"] = raw.compression_opts
        plugins = [(code, values, label) for code, _, values, label in filters
                   if code not in _KNOWN_FILTERS]
        if plugins:
            code, values, label = plugins[0]
            kind["compression"] = int(code)
            kind["compression_opts"] = tuple(int(v) for v in values)
            _register_plugins()
            for _, _, extra in plugins[1:]:
                self.summary.notes.append(f"{self.where(path)}: filter "
                                          f"{_text(extra)!r} not kept (one compression filter "
                                          f"per dataset)")
        for option in _STORAGE_ONLY:
            value = getattr(raw, option, None)
            if value:
                kind[option] = value
        return kind

    def create(self, stage: Any, name: str, data: Any, kind: dict[str, Any], fill: Any,
               path: str) -> Any:
        data = np.asarray(data)
        options = {k: v for k, v in kind.items() if v is not None}
        chunks = options.pop("chunks", None)
        if not data.shape:
            chunks = None
        maxshape = (None,) * data.ndim
        storage_only = {k: options.pop(k) for k in _STORAGE_ONLY if k in options}
        try:
            try:
                return stage.create_dataset(name, data=data, dtype=data.dtype, chunks=chunks,
                                            maxshape=maxshape, fillvalue=fill,
                                            **options, **storage_only)
            except VersionError:
                if not storage_only:
                    raise
            self.summary.notes.append(f"{self.where(path)}: {', '.join(sorted(storage_only))} "
                                      f"not kept (storage only: the values are the same)")
            return stage.create_dataset(name, data=data, dtype=data.dtype, chunks=chunks,
                                        maxshape=maxshape, fillvalue=fill, **options)
        except H5ForgeError as exc:
            raise VersionError(f"{self.where(path)}: cannot be imported: {exc}") from None


def _register_plugins() -> None:
    """Make the filter plugins hdf5plugin ships (Blosc, Zstd, LZ4, ...) available, if it is
    installed; without it the source could not have been read either."""
    try:
        import hdf5plugin  # noqa: F401
    except ImportError:
        pass


def _same_kind(current: Any, kind: dict[str, Any], dtype: np.dtype, ndim: int,
               fill: Any) -> bool:
    """Whether the staged dataset can be updated in place (else it is replaced)."""
    if not hasattr(current, "resize"):
        return False  # a group
    if dtype.hasobject:
        same_fill = _text(current.fillvalue) == _text(fill)
    else:
        same_fill = np.asarray(current.fillvalue, dtype=current.dtype).tobytes() == \
            np.asarray(fill, dtype=dtype).tobytes()
    return (current.dtype == dtype and current.ndim == ndim and ndim > 0 and
            tuple(current.chunks or ()) == tuple(kind["chunks"] or ()) and
            current.compression == kind["compression"] and
            _opts(current.compression_opts) == _opts(kind["compression_opts"]) and same_fill)


def _opts(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _mapping(obj: Any) -> dict[tuple, tuple] | None:
    """The regions of a virtual dataset (versioned-hdf5 reads every version through one) and
    where each one's data lives: ``{region box: (source file, dataset, source box)}``. Two
    versions whose region maps to the same source box hold the same data there. None when
    ``obj`` is not a virtual dataset of disjoint box regions."""
    if not isinstance(obj, h5py.Dataset) or not obj.is_virtual:
        return None
    out: dict[tuple, tuple] = {}
    try:
        for source in obj.virtual_sources():
            box = _box(source.vspace)
            where = _box(source.src_space)
            if box is None or where is None or box in out:
                return None  # not plain boxes, or overlapping regions: compare the values
            out[box] = (source.file_name, source.dset_name, where)
    except (ValueError, RuntimeError, OSError):
        return None
    return out


def _box(space: h5py.h5s.SpaceID) -> tuple[tuple[int, int], ...] | None:
    """A single-block hyperslab selection as ``((start, stop), ...)``; None otherwise."""
    if space.get_select_type() != h5py.h5s.SEL_HYPERSLABS or not space.is_regular_hyperslab():
        return None
    start, stride, count, block = space.get_regular_hyperslab()
    if any(c != 1 for c in count):
        return None
    return tuple((int(a), int(a) + int(b)) for a, b in zip(start, block))


def _changed_regions(before: dict[tuple, tuple], after: dict[tuple, tuple]
                     ) -> list[tuple[slice, ...]]:
    """The boxes (as slices) whose source differs between two mappings of the same shape; a
    box mapped in one and not the other (fill value there) counts as changed."""
    boxes = [box for box in set(before) | set(after) if before.get(box) != after.get(box)]
    return [tuple(slice(a, b) for a, b in box) for box in sorted(boxes)]


def _update(current: Any, data: np.ndarray) -> None:
    """Write into the staged dataset only the chunks whose values differ from ``data``."""
    if current.shape != data.shape:
        current.resize(data.shape)
    if not data.size:
        return
    old = current[()]
    changed = _changed_chunks(old, data, tuple(current.chunks))
    for index in zip(*np.nonzero(changed)):
        box = tuple(slice(int(i) * c, min((int(i) + 1) * c, n))
                    for i, c, n in zip(index, current.chunks, data.shape))
        current[box] = data[box]


def _changed_chunks(old: np.ndarray, new: np.ndarray, chunks: tuple[int, ...]) -> np.ndarray:
    """A boolean array over the chunk grid: True where any element differs (bytes compared,
    so NaNs equal themselves and -0.0 differs from 0.0)."""
    if new.dtype.hasobject:
        differs = np.frompyfunc(lambda a, b: type(a) is not type(b) or a != b, 2, 1)(
            old, new).astype(bool)
    else:
        width = new.dtype.itemsize
        as_int = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}.get(width)
        if as_int is not None:  # one integer compare per element
            differs = np.ascontiguousarray(old).view(as_int) != \
                np.ascontiguousarray(new).view(as_int)
        else:
            a = np.ascontiguousarray(old).view(np.uint8).reshape(old.shape + (width,))
            b = np.ascontiguousarray(new).view(np.uint8).reshape(new.shape + (width,))
            differs = (a != b).any(axis=-1)
    grid = grid_shape(new.shape, chunks)
    padded = np.zeros(tuple(g * c for g, c in zip(grid, chunks)), dtype=bool)
    padded[tuple(slice(0, n) for n in new.shape)] = differs
    split = [n for g, c in zip(grid, chunks) for n in (g, c)]
    return padded.reshape(split).any(axis=tuple(range(1, 2 * len(grid), 2)))


def _sync_attrs(target: Any, source: Any, skip: frozenset[str]) -> None:
    """Make the staged attributes ``target`` equal to ``source`` (minus ``skip``), touching
    them only if they differ."""
    wanted = {k: v for k, v in source.items() if k not in skip}
    present = [k for k in target if k not in skip]
    if set(wanted) == set(present) and all(_equal(wanted[k], target[k]) for k in wanted):
        return
    for key in present:
        del target[key]
    for key, value in wanted.items():
        target[key] = value


def _equal(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes() \
            if not a.dtype.hasobject else a.shape == b.shape and \
            all(_equal(x, y) for x, y in zip(a.ravel(), b.ravel()))
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False
