"""``VersionedFile``: versions of an HDF5 file (see :mod:`h5forge.versions` for the layout)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from typing import Any, Iterator

import h5py
import numpy as np

from h5forge import _h5
from h5forge.errors import CorruptFileError, TargetError, UnknownVersionError, VersionError
from h5forge.versions.chunks import (
    META,
    DatasetMeta,
    MetaView,
    assemble,
    chunk_box,
    is_fill,
    pool_chunk_reader,
    read_map,
    select,
    write_node,
)
from h5forge.versions.journal import JournalFile, journal_path, recover, writer_active
from h5forge.versions.pool import ChunkPool, pool_key
from h5forge.versions.staging import StagedDataset, StagedGroup, _user_attrs

__all__ = ["VersionedFile", "FIRST_VERSION", "DATA_GROUP", "TIMESTAMP_FORMAT"]

FIRST_VERSION = "__first_version__"
DATA_GROUP = "_h5forge_versions"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f%z"
FORMAT = "1"
#: A new dataset up to this size is written into the mirror in one call (else chunk by chunk).
_WHOLE_WRITE_BYTES = 256 * 2**20


def _parse_timestamp(value: Any) -> dt.datetime:
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").astype(dt.datetime).replace(tzinfo=dt.timezone.utc)
    if not isinstance(value, dt.datetime):
        raise VersionError(f"a timestamp must be a datetime or numpy.datetime64, got "
                           f"{type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise VersionError(f"timestamp {value} has no time zone; give an aware datetime "
                           f"(e.g. datetime.now(timezone.utc))")
    return value.astimezone(dt.timezone.utc)


class _Stage:
    """State shared by the staged objects of one ``stage_version`` block."""

    def __init__(self, vf: VersionedFile):
        self.vf = vf
        self.map_cache = vf._map_cache

    def pool(self, meta: DatasetMeta) -> ChunkPool:
        return self.vf._pool(meta)

    def wrap(self, node: h5py.Group, path: str) -> StagedGroup | StagedDataset:
        if META in node.attrs:
            return StagedDataset(self, path, DatasetMeta.from_node(node), node, _user_attrs(node))
        return StagedGroup(self, path, node, _user_attrs(node))


class VersionDataset(MetaView):
    """A read-only dataset of a committed version (numpy-style reads)."""

    def __init__(self, vf: VersionedFile, node: h5py.Group, path: str, version: str):
        self._vf, self._node, self.name, self.version = vf, node, path, version
        self.meta = DatasetMeta.from_node(node)
        self.attrs = _ReadOnlyAttrs(_user_attrs(node), path)

    def __repr__(self) -> str:
        return f"<versioned dataset {self.name!r}: shape {self.shape}, type {self.dtype}>"

    def __getitem__(self, selection: Any) -> Any:
        starts, stops, local = select(selection, self.meta.shape)
        head = self._vf._head_dataset(self.version, self.name)
        if head is not None:  # the current version: a plain dataset read
            if not self.meta.shape:
                return head[()]
            if stops == self.meta.shape and not any(starts):
                return head[()][local]  # the whole dataset: h5py's fastest read
            return head[tuple(slice(a, b) for a, b in zip(starts, stops))][local]
        slots = read_map(self._node, self._vf._map_cache)
        pool = self._vf._pool(self.meta, create=False)
        return assemble(starts, stops, self.meta, pool_chunk_reader(slots, pool))[local]

    def __setitem__(self, selection: Any, value: Any) -> None:
        raise VersionError(f"{self.name}: committed versions are read-only; write in "
                           f"stage_version(...)")

    def resize(self, *args: Any, **kwargs: Any) -> None:
        raise VersionError(f"{self.name}: committed versions are read-only")


class _ReadOnlyAttrs(dict):
    def __init__(self, values: dict[str, Any], path: str):
        super().__init__(values)
        self._path = path

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise VersionError(f"{self._path}: attributes of committed versions are read-only")

    __setitem__ = __delitem__ = create = modify = update = pop = clear = setdefault = _refuse


class VersionGroup:
    """A read-only group of a committed version."""

    def __init__(self, vf: VersionedFile, node: h5py.Group, path: str, version: str):
        self._vf, self._node, self.name, self.version = vf, node, path or "/", version
        self.attrs = _ReadOnlyAttrs(_user_attrs(node), self.name)

    def __repr__(self) -> str:
        return f"<version {self.version!r} group {self.name!r}>"

    def __getitem__(self, path: str) -> VersionGroup | VersionDataset:
        parts = [p for p in str(path).split("/") if p]
        node = self._node
        for part in parts:
            if not isinstance(node, h5py.Group) or META in node.attrs or part not in node:
                raise KeyError(f"{path}: not in version {self.version!r}")
            node = node[part]
        full = "/".join([p for p in self.name.split("/") if p] + parts)
        if META in node.attrs:
            return VersionDataset(self._vf, node, "/" + full, self.version)
        return VersionGroup(self._vf, node, "/" + full, self.version)

    def __contains__(self, path: object) -> bool:
        try:
            self[str(path)]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._node))

    def __len__(self) -> int:
        return len(self._node)

    def keys(self):
        return list(self._node)

    def values(self):
        return [self[k] for k in self._node]

    def items(self):
        return [(k, self[k]) for k in self._node]

    @contextlib.contextmanager
    def __h5forge_h5py__(self) -> Iterator[h5py.Group]:
        """This group as a read-only h5py group (what ``h5forge.load`` reads): the plain root
        mirror for the current version, else an in-memory copy."""
        vf = self._vf
        if self.name != "/" and self.version == vf.current_version and \
                vf._head_is(self.version):
            yield vf._file[self.name]  # (the root itself also holds /_h5forge_versions)
            return
        scratch = _h5.memory_file()  # not closed here: lazy arrays may still read from it
        vf._materialize(self._node, scratch)
        yield scratch

    def __setitem__(self, key: str, value: Any) -> None:
        raise VersionError(f"{self.name}: committed versions are read-only")

    def __delitem__(self, key: str) -> None:
        raise VersionError(f"{self.name}: committed versions are read-only")

    def create_dataset(self, *args: Any, **kwargs: Any) -> None:
        raise VersionError(f"{self.name}: committed versions are read-only")

    create_group = create_dataset


class VersionedFile:
    """Versions of an HDF5 file (versioned-hdf5's API; see :mod:`h5forge.versions`).

    ``VersionedFile(path, mode)`` with mode ``r``, ``r+``, ``a`` or ``w``; or an open
    ``h5py.File`` (then commits are not journaled against crashes). Use it as a context
    manager or call :meth:`close`. Commits survive a killed process; ``durable=True`` also
    fsyncs at each commit, so they survive a power cut. One process writes at a time (a
    second writer gets :class:`~h5forge.versions.journal.FileLockedError`); readers, h5py
    included, can open the file between commits. Setting ``current_version``, or committing
    a branch with ``make_current=True``, rewrites the plain mirror of the current version.
    """

    def __init__(self, target: _h5.PathLike | h5py.File, mode: str = "r", *,
                 durable: bool = False):
        self._journal: JournalFile | None = None
        self._own = False
        if isinstance(target, h5py.Group):
            self._file = _h5.ensure_open(target).file
            self._writable = self._file.mode != "r"
        elif _h5.is_path(target):
            path = os.fspath(target)
            if mode not in ("r", "r+", "a", "w"):
                raise VersionError(f"mode must be 'r', 'r+', 'a' or 'w', not {mode!r}")
            exists = os.path.exists(path)
            if mode in ("r", "r+") and not exists:
                raise TargetError(f"{path}: no such file")
            if exists and os.path.exists(journal_path(path)):
                if mode == "r" and writer_active(path):
                    raise VersionError(f"{path} is being written by another process; open it "
                                       f"when that commit is done")
                recover(path)  # an interrupted commit: back to the last complete one
            self._writable = mode != "r"
            if mode == "r":
                self._file = h5py.File(path, "r")
            else:
                create = mode == "w" or not exists
                self._journal = JournalFile(path, create=create, durable=durable)
                self._file = h5py.File(self._journal, "w" if create else "r+",
                                       libver="latest" if create else None)
            self._own = True
        else:
            raise TargetError(f"expected a file path or an open h5py.File, got "
                              f"{type(target).__name__}")
        self._map_cache: dict = {}
        self._pools: dict[str, ChunkPool] = {}
        self._staging = False
        if self._writable:
            _small_metadata_cache(self._file)
        if DATA_GROUP not in self._file:
            if not self._writable:
                raise VersionError(f"{self._file.filename} has no versions (open it with "
                                   f"mode 'a' to start)")
            if len(self._file) or len(self._file.attrs):
                message = (f"{self._file.filename} already holds plain HDF5 data; versioning "
                           f"it would replace it with the first version. Start a new file "
                           f"and copy the data in a first stage")
                self.close()
                raise VersionError(message)
            data = self._file.create_group(DATA_GROUP)
            data.attrs["format"] = FORMAT
            data.attrs["current_version"] = FIRST_VERSION
            data.create_group("versions", track_order=True)
            data.create_group("pools")
            self._commit_transaction()
        self._data = self._file[DATA_GROUP]
        if str(self._data.attrs.get("format", "")) != FORMAT:
            raise CorruptFileError(f"{self._file.filename}: versions format "
                                   f"{self._data.attrs.get('format')!r} is not {FORMAT!r}")

    # -- file lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> VersionedFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if not self._own or not self._file.id.valid:
            return
        self._file.close()
        if self._journal is not None:
            self._journal.commit()
            self._journal.close()

    @property
    def file(self) -> h5py.File:
        return self._file

    def _commit_transaction(self) -> None:
        self._file.flush()
        if self._journal is not None:
            self._journal.commit()

    def _rollback(self, name: str, current: str) -> None:
        """Undo a failed commit: close HDF5, restore the journaled bytes, reopen. Without a
        journal (an h5py.File was given), remove what the commit wrote, as far as possible."""
        if self._journal is None:
            versions = self._data["versions"]
            if name in versions:
                del versions[name]
            self._data.attrs["current_version"] = current
            self._rebuild_head(current)  # the mirror may be half updated
            self._map_cache.clear()
            self._pools.clear()
            return
        self._file.close()
        self._journal.rollback()
        self._file = h5py.File(self._journal, "r+")
        self._data = self._file[DATA_GROUP]
        self._map_cache.clear()
        self._pools.clear()

    # -- versions -------------------------------------------------------------------------------
    @property
    def versions(self) -> list[str]:
        """Committed version names, oldest commit first."""
        return list(self._data["versions"])

    @property
    def current_version(self) -> str:
        value = self._data.attrs["current_version"]
        return value.decode() if isinstance(value, bytes) else str(value)

    @current_version.setter
    def current_version(self, name: str) -> None:
        self._check_writable()
        self._version_group(name)
        self._data.attrs["current_version"] = name
        self._rebuild_head(name)
        self._commit_transaction()

    def _check_writable(self) -> None:
        if not self._writable:
            raise VersionError(f"{self._file.filename} is open read-only; open it with mode "
                               f"'r+' or 'a' to change versions")

    def _version_group(self, name: str) -> h5py.Group:
        versions = self._data["versions"]
        if not isinstance(name, str) or name not in versions:
            raise UnknownVersionError(f"{name!r} is not a version of {self._file.filename}; "
                                      f"versions: "
                           f"{', '.join(self.versions[-5:]) or '(none)'}")
        return versions[name]

    def _prev(self, name: str) -> str:
        value = self._version_group(name).attrs["prev_version"]
        return value.decode() if isinstance(value, bytes) else str(value)

    def timestamp(self, name: str) -> dt.datetime:
        text = self._version_group(name).attrs["timestamp"]
        return dt.datetime.strptime(text if isinstance(text, str) else text.decode(),
                                    TIMESTAMP_FORMAT)

    def version_info(self, name: str) -> dict[str, Any]:
        """``name``, ``prev_version``, ``timestamp`` (UTC) and ``changed`` (dataset paths)."""
        group = self._version_group(name)
        return {"name": name, "prev_version": self._prev(name),
                "timestamp": self.timestamp(name),
                "changed": json.loads(group.attrs.get("changed", "[]"))}

    def get_version_by_timestamp(self, timestamp: Any, exact: bool = False) -> str:
        """The latest version committed at or before ``timestamp`` (``exact``: at it)."""
        when = _parse_timestamp(timestamp)
        best = None
        for name in self.versions:
            stamp = self.timestamp(name)
            if stamp == when or (not exact and stamp <= when and
                                 (best is None or stamp >= best[0])):
                best = (stamp, name)
                if exact:
                    break
        if best is None:
            raise UnknownVersionError(f"{self._file.filename} has no version "
                                      f"{'at' if exact else 'at or before'} {when}")
        return best[1]

    def __getitem__(self, key: Any) -> VersionGroup:
        if isinstance(key, (dt.datetime, np.datetime64)):
            key = self.get_version_by_timestamp(key)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            key = self._walk_back(int(key))
        if not isinstance(key, str):
            raise KeyError(f"a version is named by a string, an int or a timestamp, not "
                           f"{key!r}")
        return VersionGroup(self, self._version_group(key)["root"], "/", key)

    def _walk_back(self, steps: int) -> str:
        if steps > 0:
            raise IndexError(f"version index {steps}: use 0 for the current version and -1, "
                             f"-2, ... for earlier ones")
        name = self.current_version
        for _ in range(-steps):
            if name == FIRST_VERSION:
                break
            name = self._prev(name)
        if name == FIRST_VERSION:
            raise IndexError(f"version index {steps} goes back past the first version")
        return name

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._data["versions"]

    def __iter__(self) -> Iterator[str]:
        return iter(self.versions)

    def __len__(self) -> int:
        return len(self._data["versions"])

    # -- staging and committing -----------------------------------------------------------------
    @contextlib.contextmanager
    def stage_version(self, name: str, prev_version: str | None = None,
                      make_current: bool = True, timestamp: Any = None) -> Iterator[StagedGroup]:
        """Yield a group holding a copy of ``prev_version`` (default: the current version);
        commit it as version ``name`` when the block ends without an exception."""
        self._check_writable()
        if self._staging:
            raise VersionError("a version is already being staged in this file")
        _check_name(name)
        if name in self:
            raise VersionError(f"version {name!r} already exists")
        prev = self.current_version if prev_version is None else prev_version
        if prev != FIRST_VERSION:
            self._version_group(prev)
        stamp = _parse_timestamp(timestamp) if timestamp is not None else None
        stage = _Stage(self)
        base = self._version_group(prev)["root"] if prev != FIRST_VERSION else None
        root = StagedGroup(stage, "/", base, _user_attrs(base) if base is not None else {})
        self._staging = True
        try:
            yield root
            if stamp is None:
                stamp = dt.datetime.now(dt.timezone.utc)
            current = self.current_version
            try:
                self._commit(name, prev, root, stamp, make_current)
            except BaseException:
                self._rollback(name, current)
                raise
        finally:
            self._staging = False

    def _commit(self, name: str, prev: str, root: StagedGroup, stamp: dt.datetime,
                make_current: bool) -> None:
        versions = self._data["versions"]
        group = versions.create_group(name)
        group.attrs["prev_version"] = prev
        group.attrs["timestamp"] = stamp.strftime(TIMESTAMP_FORMAT)
        changed: list[str] = []
        written: dict[int, h5py.Group] = {}
        base_root = versions[prev]["root"] if prev != FIRST_VERSION else None
        self._write_group(group, "root", root, base_root, changed, written)
        group.attrs["changed"] = json.dumps(changed)
        if make_current:
            old = self.current_version
            self._data.attrs["current_version"] = name
            if old == prev and self._head_is(old):
                self._sync_head(root, self._file, "", changed)
            else:
                self._rebuild_head(name)
            self._data.attrs["head_version"] = name
        self._commit_transaction()

    def _write_group(self, parent: h5py.Group, name: str, staged: StagedGroup,
                     base: h5py.Group | None, changed: list[str],
                     written: dict[int, h5py.Group]) -> None:
        if id(staged) in written:  # the same staged group reached twice: a hard link
            parent[name] = written[id(staged)]
            return
        if staged.base is not None and not staged.dirty:
            parent[name] = staged.base  # unchanged subtree: link the previous version's
            written[id(staged)] = staged.base
            return
        group = parent.create_group(name)
        written[id(staged)] = group
        for key, value in staged.attrs.items():
            group.attrs[key] = value
        members = staged._members()
        for child_name in members:
            child = members[child_name]
            if child is None:  # never touched: link the base version's node
                group[child_name] = staged.base[child_name]
                continue
            if isinstance(child, StagedGroup):
                self._write_group(group, child_name, child, None, changed, written)
            else:
                self._write_dataset(group, child_name, child, changed, written)

    def _write_dataset(self, parent: h5py.Group, name: str, staged: StagedDataset,
                       changed: list[str], written: dict[int, h5py.Group]) -> None:
        if id(staged) in written:
            parent[name] = written[id(staged)]
            return
        if staged.base is not None and not staged.dirty:
            parent[name] = staged.base
            written[id(staged)] = staged.base
            return
        meta = staged.meta
        pool = self._pool(meta)
        meta.pool = pool_key(meta.dtype, meta.chunks, meta.compression, meta.compression_opts)
        slots = staged.slots().copy()
        stored = []
        for index, chunk in sorted(staged.changed_chunks(), key=lambda item: item[0]):
            if is_fill(chunk, meta.fillvalue):
                slots[index] = -1
            else:
                stored.append((index, chunk))
        for (index, _), slot in zip(stored, pool.store_many([c for _, c in stored])):
            slots[index] = slot
        base_slots = read_map(staged.base, self._map_cache) if staged.base is not None else None
        node = write_node(parent, name, meta, slots, staged.base, base_slots, dict(staged.attrs))
        self._map_cache[node.id] = slots
        written[id(staged)] = node
        changed.append(staged.name)

    def _pool(self, meta: DatasetMeta, create: bool = True) -> ChunkPool | None:
        key = meta.pool or pool_key(meta.dtype, meta.chunks, meta.compression,
                                    meta.compression_opts)
        pool = self._pools.get(key)
        if pool is None:
            pools = self._data["pools"]
            if key in pools:
                pool = ChunkPool(pools[key])
            elif create:
                pool = ChunkPool.create(pools, key, meta.dtype, meta.chunks, meta.compression,
                                        meta.compression_opts)
            else:
                return None
            self._pools[key] = pool
        return pool

    # -- the plain mirror of the current version at the file's root --------------------------
    def _head_is(self, name: str) -> bool:
        value = self._data.attrs.get("head_version", FIRST_VERSION)
        return (value.decode() if isinstance(value, bytes) else str(value)) == name

    def _head_dataset(self, version: str, path: str) -> h5py.Dataset | None:
        if version != self.current_version or not self._head_is(version):
            return None
        obj = self._file.get(path)
        return obj if isinstance(obj, h5py.Dataset) else None

    def _sync_head(self, staged: StagedGroup, target: h5py.Group, path: str,
                   changed: list[str], memo: dict | None = None) -> None:
        """Bring the root mirror up to date with a commit on top of it: only what changed
        (a staged object reached twice becomes a hard link, as in the version)."""
        memo = {} if memo is None else memo
        if not staged.dirty:
            return
        if staged.attrs.dirty or staged.structure_changed:
            for key in list(target.attrs):
                if key not in staged.attrs:
                    del target.attrs[key]
            for key, value in staged.attrs.items():
                target.attrs[key] = value
        members = staged._members()
        for key in list(target):
            if key not in members and not (target.name == "/" and key == DATA_GROUP):
                del target[key]
        base = staged.base
        for key, child in members.items():
            if child is None:
                continue
            if not child.dirty:
                moved = base is None or key not in base or base[key].id != child.base.id
                if moved:  # an unchanged object under a new name: copy it from its version
                    if key in target:
                        del target[key]
                    memo[id(child)] = self._materialize_node(child.base, target, key, {})
                continue
            if id(child) in memo:
                if key in target:
                    del target[key]
                target[key] = memo[id(child)]
                continue
            if isinstance(child, StagedGroup):
                if key in target and not isinstance(target[key], h5py.Group):
                    del target[key]
                sub = memo[id(child)] = target.require_group(key)
                self._sync_head(child, sub, f"{path}/{key}", changed, memo)
            else:
                memo[id(child)] = self._sync_head_dataset(child, target, key)

    def _sync_head_dataset(self, staged: StagedDataset, target: h5py.Group,
                           key: str) -> h5py.Dataset:
        meta = staged.meta
        dset = target.get(key)
        fresh = not (isinstance(dset, h5py.Dataset) and staged.base is not None and
                     not staged.reshaped and dset.dtype == meta.dtype and
                     dset.chunks == (meta.chunks or None) and dset.ndim == len(meta.shape))
        if fresh:
            if key in target:
                del target[key]
            dset = _create_head(target, key, meta)
            if meta.shape and 0 < meta.dtype.itemsize * staged.size <= _WHOLE_WRITE_BYTES:
                dset[...] = staged[()]  # one write, laid out as a plain dataset would be
                indexes = set()
            else:
                indexes = set(_stored_or_all(staged.slots(), meta)) | set(staged.touched)
        else:
            indexes = set(staged.touched)
        chunk_of = staged._chunk
        for index in sorted(indexes):  # file order: chunks laid out as a plain write would
            _write_chunk(dset, meta, index, chunk_of(index))
        for attr in list(dset.attrs):
            if attr not in staged.attrs:
                del dset.attrs[attr]
        for attr, value in staged.attrs.items():
            dset.attrs[attr] = value
        return dset

    def _rebuild_head(self, name: str) -> None:
        """Replace the root mirror by a plain copy of version ``name``."""
        root = self._file
        for key in list(root):
            if key != DATA_GROUP:
                del root[key]
        for key in list(root.attrs):
            del root.attrs[key]
        if name != FIRST_VERSION:
            self._materialize(self._version_group(name)["root"], root, skip=DATA_GROUP)
        self._data.attrs["head_version"] = name

    def _materialize_node(self, node: h5py.Group, out: h5py.Group, key: str,
                          memo: dict) -> h5py.HLObject:
        """Write one version node (dataset or group subtree) as ``out[key]``."""
        if node.id in memo:
            out[key] = memo[node.id]
            return memo[node.id]
        if META not in node.attrs:
            memo[node.id] = sub = out.create_group(key)
            self._materialize(node, sub, memo=memo)
            return sub
        meta = DatasetMeta.from_node(node)
        dset = _create_head(out, key, meta)
        slots = read_map(node, self._map_cache)
        reader = pool_chunk_reader(slots, self._pool(meta, create=False))
        for index in _stored_or_all(slots, meta):
            _write_chunk(dset, meta, index, reader(index))
        for attr, value in _user_attrs(node).items():
            dset.attrs[attr] = value
        memo[node.id] = dset
        return dset

    def _materialize(self, node: h5py.Group, out: h5py.Group, skip: str | None = None,
                     memo: dict | None = None) -> None:
        """Write the version tree under ``node`` into ``out`` as plain groups and datasets
        (a node reached twice becomes a hard link, as in the version)."""
        memo = {} if memo is None else memo
        for key, value in _user_attrs(node).items():
            out.attrs[key] = value
        for key in node:
            self._materialize_node(node[key], out, key, memo)

    def export(self, version: str, out: _h5.PathLike | h5py.Group) -> None:
        """Write version ``version`` as a plain HDF5 file (or into an empty group)."""
        node = self[version]._node
        if isinstance(out, h5py.Group):
            self._materialize(node, out)
            return
        with h5py.File(out, "w") as f:
            self._materialize(node, f)

    # -- deleting and comparing versions --------------------------------------------------------
    def delete_versions(self, names: str | list[str]) -> None:
        """Delete versions; their children get the nearest surviving ancestor as
        ``prev_version``, and chunks no remaining version uses are freed for reuse."""
        self._check_writable()
        names = [names] if isinstance(names, str) else list(names)
        for name in names:
            self._version_group(name)
        doomed = set(names)

        def survivor(name: str) -> str:
            while name in doomed:
                name = self._prev(name)
            return name

        versions = self._data["versions"]
        for name in self.versions:
            if name not in doomed:
                prev = self._prev(name)
                if prev in doomed:
                    versions[name].attrs["prev_version"] = survivor(prev)
        current = self.current_version
        new_current = survivor(current)
        for name in names:
            del versions[name]
        if new_current != current:
            self._data.attrs["current_version"] = new_current
            self._rebuild_head(new_current)
        self._free_unused_chunks()
        self._commit_transaction()

    def _free_unused_chunks(self) -> None:
        used: dict[str, set[int]] = {}
        seen: set = set()

        def visit(node: h5py.Group) -> None:
            if node.id in seen:
                return
            seen.add(node.id)
            if META in node.attrs:
                meta = DatasetMeta.from_node(node)
                slots = read_map(node, self._map_cache)
                used.setdefault(meta.pool, set()).update(int(s) for s in np.unique(slots)
                                                         if s >= 0)
                return
            for key in node:
                visit(node[key])

        for name in self.versions:
            visit(self._data["versions"][name]["root"])
        for key in self._data["pools"]:
            pool = self._pools.get(key) or ChunkPool(self._data["pools"][key])
            self._pools[key] = pool
            stored = set(range(pool.slots)) - set(pool.group["free"][()].tolist())
            unused = stored - used.get(key, set())
            if unused:
                pool.release(unused)

    def diff(self, v1: str, v2: str) -> dict[str, Any]:
        """What changed from ``v1`` to ``v2``: datasets and groups added and removed, and for
        each changed dataset the chunk regions (tuples of slices) that differ."""
        a = _tree(self._version_group(v1)["root"])
        b = _tree(self._version_group(v2)["root"])
        out: dict[str, Any] = {
            "added": sorted(p for p in b if p not in a and b[p] is not None),
            "removed": sorted(p for p in a if p not in b and a[p] is not None),
            "groups_added": sorted(p for p in b if p not in a and b[p] is None),
            "groups_removed": sorted(p for p in a if p not in b and a[p] is None),
            "changed": {},
        }
        for path in sorted(set(a) & set(b)):
            na, nb = a[path], b[path]
            if na is None or nb is None or na.id == nb.id:
                continue
            ma, mb = DatasetMeta.from_node(na), DatasetMeta.from_node(nb)
            sa, sb = read_map(na, self._map_cache), read_map(nb, self._map_cache)
            if ma.shape != mb.shape or ma.chunks != mb.chunks or ma.dtype != mb.dtype or \
                    sa.shape != sb.shape:
                out["changed"][path] = [tuple(slice(0, n) for n in mb.shape)]
                continue
            regions = [tuple(slice(s.start, min(s.stop, n)) for s, n in
                             zip(chunk_box(tuple(int(j) for j in i), mb.chunks), mb.shape))
                       for i in np.argwhere(sa != sb)] if sa.ndim else \
                ([()] if sa[()] != sb[()] else [])
            if regions or _user_attrs(na) != _user_attrs(nb):
                out["changed"][path] = regions
        return out


def _small_metadata_cache(f: h5py.File) -> None:
    """Keep HDF5's metadata cache small while committing: each commit ends with a flush, whose
    cost grows with the cache, so a long session would get slower with every version."""
    config = f.id.get_mdc_config()
    config.set_initial_size = True
    config.initial_size = config.min_size = 512 * 1024
    config.max_size = 2 * 2**20
    f.id.set_mdc_config(config)


def _tree(root: h5py.Group) -> dict[str, h5py.Group | None]:
    """path -> dataset node (None for groups) of a version tree."""
    found: dict[str, h5py.Group | None] = {}

    def walk(node: h5py.Group, prefix: str) -> None:
        for key in node:
            child = node[key]
            path = f"{prefix}/{key}"
            if META in child.attrs:
                found[path] = child
            else:
                found[path] = None
                walk(child, path)

    walk(root, "")
    return found


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name or "/" in name or name.startswith("__") or \
            name in (".", ".."):
        raise VersionError(f"version name {name!r} must be a non-empty string without '/' "
                           f"that does not start with '__'")


def _create_head(group: h5py.Group, key: str, meta: DatasetMeta) -> h5py.Dataset:
    kwargs: dict[str, Any] = {} if meta.dtype.hasobject else {"fillvalue": meta.fillvalue}
    if meta.shape:
        kwargs.update(chunks=meta.chunks, maxshape=(None,) * len(meta.shape))
        if meta.compression is not None:
            kwargs.update(compression=meta.compression, compression_opts=meta.compression_opts)
    return group.create_dataset(key, shape=meta.shape, dtype=meta.dtype, **kwargs)


def _write_chunk(dset: h5py.Dataset, meta: DatasetMeta, index: tuple[int, ...],
                 chunk: np.ndarray | None) -> None:
    if not meta.shape:
        dset[()] = meta.fillvalue if chunk is None else chunk[()]
        return
    box = tuple(slice(b.start, min(b.stop, n)) for b, n in zip(chunk_box(index, meta.chunks),
                                                                  meta.shape))
    if any(b.start >= b.stop for b in box):
        return
    part = tuple(slice(0, b.stop - b.start) for b in box)
    dset[box] = meta.fillvalue if chunk is None else chunk[part]


def _stored_or_all(slots: np.ndarray, meta: DatasetMeta) -> list[tuple[int, ...]]:
    """The chunks to write into a plain copy: the stored ones; every one for variable-length
    strings (HDF5 2.0 cannot read unwritten chunks of those in a read-only file)."""
    if meta.dtype.hasobject:
        return [tuple(i) for i in np.ndindex(*slots.shape)] if slots.ndim else [()]
    if not slots.ndim:
        return [()] if slots[()] >= 0 else []
    return [tuple(int(j) for j in i) for i in np.argwhere(slots >= 0)]
