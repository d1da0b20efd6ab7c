"""``VersionedFile``: versions of an HDF5 file (see :mod:`h5forge.versions` for the layout)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import weakref
from typing import Any, Iterator

import h5py
import numpy as np

from h5forge import _h5
from h5forge.errors import (
    CorruptFileError,
    TargetError,
    UnknownVersionError,
    VersionClosedError,
    VersionError,
)
from h5forge.versions import state
from h5forge.versions.chunks import (
    META,
    DatasetMeta,
    chunk_box,
    is_fill,
    pool_chunk_reader,
    read_map,
    write_node,
)
from h5forge.versions.journal import JournalFile, journal_path, recover, writer_active
from h5forge.versions.pool import ChunkPool, pool_key
from h5forge.versions.staging import StagedDataset, StagedGroup, _user_attrs
from h5forge.versions.views import ReadOnlyAttrs, VersionGroup

__all__ = ["VersionedFile", "FIRST_VERSION", "DATA_GROUP", "TIMESTAMP_FORMAT",
           "TimestampTypeError"]

FIRST_VERSION = "__first_version__"
DATA_GROUP = "_h5forge_versions"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f%z"
FORMAT = "1"
#: A new dataset up to this size is written into the mirror in one call (else chunk by chunk).
_WHOLE_WRITE_BYTES = 256 * 2**20


class TimestampTypeError(VersionError, TypeError):
    """A timestamp that is neither a datetime nor a numpy.datetime64 (a TypeError, as in
    versioned-hdf5)."""


def _parse_timestamp(value: Any) -> dt.datetime:
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").astype(dt.datetime).replace(tzinfo=dt.timezone.utc)
    if not isinstance(value, dt.datetime):
        raise TimestampTypeError(f"a timestamp must be a datetime or numpy.datetime64, got "
                                 f"{type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise VersionError(f"timestamp {value} has no time zone; give an aware datetime "
                           f"(e.g. datetime.now(timezone.utc))")
    return value.astimezone(dt.timezone.utc)


class _Stage:
    """State shared by the staged objects of one ``stage_version`` block. When the block ends
    (committed or not), every staged group, dataset and attribute set refuses further use:
    writes after the commit would otherwise be accepted and lost."""

    def __init__(self, vf: VersionedFile, name: str):
        self.vf = vf
        self.name = name
        self.map_cache = vf._state.map_cache
        self.ended: str | None = None  # why the stage can no longer be used

    def check(self, path: str) -> None:
        if self.ended is not None:
            raise VersionClosedError(f"{path}: the stage of version {self.name!r} {self.ended}; "
                                     f"its groups and datasets can no longer be used. Read "
                                     f"committed data through vf[{self.name!r}], or write in a "
                                     f"new stage_version(...)")

    def pool(self, meta: DatasetMeta) -> ChunkPool:
        return self.vf._pool(meta)

    def wrap(self, node: h5py.Group, path: str) -> StagedGroup | StagedDataset:
        if META in node.attrs:
            return StagedDataset(self, path, DatasetMeta.from_node(node), node, _user_attrs(node))
        return StagedGroup(self, path, node, _user_attrs(node))


class VersionedFile:
    """Versions of an HDF5 file or group (versioned-hdf5's API; see :mod:`h5forge.versions`).

    ``VersionedFile(path, mode)`` with mode ``r``, ``r+``, ``a`` or ``w``; or an open
    ``h5py.File`` (then commits are not journaled against crashes); or an ``h5py.Group``,
    which then holds a versioned tree of its own and the rest of the file is left alone. Use it
    as a context manager or call :meth:`close` (which closes only what it opened). Commits
    survive a killed process; ``durable=True`` also fsyncs at each commit, so they survive a
    power cut. One writer at a time: a second writer of the same file, by path or through
    an open h5py.File, gets :class:`~h5forge.versions.journal.FileLockedError`; handles over
    the same open h5py.File in one process share one state (chunk pools, caches, the stage in
    progress), so they never hand out the same storage twice. Readers, h5py included, can
    open the file between commits. Setting ``current_version``, or committing a branch with
    ``make_current=True``, rewrites the plain mirror of the current version.
    """

    def __init__(self, target: _h5.PathLike | h5py.Group, mode: str = "r", *,
                 durable: bool = False):
        self._journal: JournalFile | None = None
        self._own = False
        self._closed = True  # until the state is acquired
        lock_file = None
        if isinstance(target, h5py.Group):
            root = _h5.ensure_open(target)
            self._file = root.file
            self._writable = self._file.mode != "r"
            lock_file = _lockable_path(self._file) if self._writable else None
            if lock_file is not None and os.path.exists(journal_path(lock_file)) and \
                    not writer_active(lock_file):
                raise VersionError(f"{lock_file}: a commit was interrupted (its journal is "
                                   f"still there); open the file by path once, "
                                   f"VersionedFile(path, 'a'), to restore the last complete "
                                   f"commit, then open it with h5py")
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
            root = self._file
            self._own = True
        else:
            raise TargetError(f"expected a file path or an open h5py.File or h5py.Group, got "
                              f"{type(target).__name__}")
        self._root = root
        try:
            self._state = state.acquire(root, lock_file)
        except BaseException:
            self._close_own()
            raise
        # A handle dropped without close() still gives its share of the state (and of the
        # writer lock) back when it is garbage-collected.
        self._release = weakref.finalize(self, state.release, self._state)
        self._closed = False
        try:
            self._open_tree()
        except BaseException:
            self.close()
            raise

    def _open_tree(self) -> None:
        root = self._root
        if self._writable:
            _small_metadata_cache(self._file)
        if DATA_GROUP not in root:
            if not self._writable:
                trees = _versioned_groups(root)
                hint = (f"; it holds versioned trees in groups: {', '.join(trees[:5])} (open "
                        f"one with VersionedFile(f[path]), or --group on the command line)"
                        if trees else " (open it with mode 'a' to start)")
                raise VersionError(f"{self._where} has no versions{hint}")
            if "_version_data" in root:
                raise VersionError(f"{self._where} is a versioned-hdf5 file; convert it with "
                                   f"h5forge.versions.import_versioned_hdf5 (or `h5forge "
                                   f"versions import`), or use versioned_hdf5 itself")
            if len(root) or len(root.attrs):
                raise VersionError(f"{self._where} already holds plain HDF5 data; versioning "
                                   f"it would replace it with the first version. Start a new "
                                   f"file or group and copy the data in a first stage")
            data = root.create_group(DATA_GROUP)
            data.attrs["format"] = FORMAT
            data.attrs["current_version"] = FIRST_VERSION
            data.create_group("versions", track_order=True)
            data.create_group("pools")
            self._commit_transaction()
        self._data = root[DATA_GROUP]
        if str(self._data.attrs.get("format", "")) != FORMAT:
            raise CorruptFileError(f"{self._where}: versions format "
                                   f"{self._data.attrs.get('format')!r} is not {FORMAT!r}")

    @property
    def _where(self) -> str:
        """The file name, and the group for a tree that is not at the root (for messages)."""
        name = self._file.filename
        return name if self._root.name == "/" else f"{name}:{self._root.name}"

    # -- file lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> VersionedFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or the h5py file it was given was closed)."""
        return self._closed or not self._file.id.valid

    def _check_open(self) -> None:
        if self.closed:
            raise VersionClosedError("this VersionedFile is closed (or its h5py file was "
                                     "closed); open the file again to use its versions")

    def close(self) -> None:
        """Stop using the versions; closes the file only if it was opened from a path. A
        stage still open is ended (nothing of it is committed)."""
        if self._closed:
            return
        self._closed = True
        if self._state.stage is not None and self._state.stage.vf is self:
            self._state.stage.ended = "was ended by closing its VersionedFile"
            self._state.stage = None
        self._release()
        self._close_own()

    def _close_own(self) -> None:
        if not self._own or not self._file.id.valid:
            return
        self._file.close()
        if self._journal is not None:
            self._journal.commit()
            self._journal.close()

    @property
    def file(self) -> h5py.File:
        return self._file

    @property
    def root(self) -> h5py.Group:
        """The group holding the versioned tree: the file's root, or the group given."""
        return self._root

    def _commit_transaction(self) -> None:
        self._file.flush()
        if self._journal is not None:
            self._journal.commit()

    def _rollback(self, name: str, current: str) -> None:
        """Undo a failed commit: close HDF5, restore the journaled bytes, reopen. Without a
        journal (an h5py.File was given), remove what the commit wrote, as far as possible."""
        self._state.clear_caches()
        if self._journal is None:
            versions = self._data["versions"]
            if name in versions:
                del versions[name]
            self._data.attrs["current_version"] = current
            self._rebuild_head(current)  # the mirror may be half updated
            self._free_unused_chunks()  # chunks the failed commit stored
            self._file.flush()
            return
        self._abort()

    def _abort(self) -> None:
        """Undo an operation that failed half way: exactly, through the journal, when the
        file was opened by path; else only the in-memory state is dropped."""
        self._state.clear_caches()
        if self._journal is None:
            return
        self._file.close()
        self._journal.rollback()
        self._root = self._file = h5py.File(self._journal, "r+")
        self._data = self._file[DATA_GROUP]
        state.rekey(self._state, self._root)

    # -- versions -------------------------------------------------------------------------------
    @property
    def versions(self) -> list[str]:
        """Committed version names, oldest commit first."""
        self._check_open()
        return list(self._data["versions"])

    @property
    def current_version(self) -> str:
        """The version ``stage_version`` starts from by default, and that ``vf[0]`` reads
        (``FIRST_VERSION`` before the first commit)."""
        self._check_open()
        value = self._data.attrs["current_version"]
        return value.decode() if isinstance(value, bytes) else str(value)

    @current_version.setter
    def current_version(self, name: str) -> None:
        self._check_writable()
        self._check_not_staging("set current_version")
        self._version_group(name)
        self._check_mirror()
        self._data.attrs["current_version"] = name
        self._rebuild_head(name)
        self._commit_transaction()

    def _check_writable(self) -> None:
        self._check_open()
        if not self._writable:
            raise VersionError(f"{self._where} is open read-only; open it with mode 'r+' or "
                               f"'a' to change versions")

    def _check_not_staging(self, what: str) -> None:
        stage = self._state.stage
        if stage is not None:
            raise VersionError(f"{self._where}: cannot {what} while version {stage.name!r} is "
                               f"being staged; end that stage_version block first")

    def _version_group(self, name: str) -> h5py.Group:
        versions = self._data["versions"]
        if not isinstance(name, str) or name not in versions:
            raise UnknownVersionError(f"{name!r} is not a version of {self._where}; versions: "
                                      f"{', '.join(self.versions[-5:]) or '(none)'}")
        return versions[name]

    def _version_attr(self, name: str, key: str) -> str:
        value = self._version_group(name).attrs[key]
        return value.decode() if isinstance(value, bytes) else str(value)

    def _prev(self, name: str) -> str:
        return self._version_attr(name, "prev_version")

    def timestamp(self, name: str) -> dt.datetime:
        """When version ``name`` was committed (UTC)."""
        return dt.datetime.strptime(self._version_attr(name, "timestamp"), TIMESTAMP_FORMAT)

    def version_info(self, name: str) -> dict[str, Any]:
        """``name``, ``prev_version``, ``timestamp`` (UTC) and ``changed`` (dataset paths)."""
        self._check_open()
        group = self._version_group(name)
        return {"name": name, "prev_version": self._prev(name),
                "timestamp": self.timestamp(name),
                "changed": json.loads(group.attrs.get("changed", "[]"))}

    def version_at(self, timestamp: Any, exact: bool = False) -> str:
        """The name of the latest version committed at or before ``timestamp`` (``exact``:
        at it). An aware datetime (any zone) or a numpy.datetime64 (taken as UTC)."""
        self._check_open()
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
            raise UnknownVersionError(f"{self._where} has no version "
                                      f"{'at' if exact else 'at or before'} {when}")
        return best[1]

    def get_version_by_timestamp(self, timestamp: Any, exact: bool = False) -> VersionGroup:
        """The version committed at or before ``timestamp`` (``exact``: at it), as a group
        (versioned-hdf5's call); :meth:`version_at` gives its name."""
        return self[self.version_at(timestamp, exact)]

    def get_version_by_name(self, name: str) -> VersionGroup:
        """Version ``name`` as a read-only group (``""`` is the empty first version)."""
        return self[name]

    def __getitem__(self, key: Any) -> VersionGroup:
        self._check_open()
        if key is None:
            key = self.current_version
        if isinstance(key, (dt.datetime, np.datetime64)):
            key = self.version_at(key)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            key = self._walk_back(int(key))
        if not isinstance(key, str):
            raise UnknownVersionError(f"a version is named by a string, an int or a timestamp, "
                                      f"not {key!r}")
        if key in ("", FIRST_VERSION):
            return self._empty_version()
        return VersionGroup(self, self._version_group(key)["root"], "/", key)

    def _empty_version(self) -> VersionGroup:
        """The first version: empty (read from an empty in-memory group)."""
        scratch = _h5.memory_file()
        return _FirstVersion(self, scratch, "/", FIRST_VERSION)

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
        self._check_open()
        return isinstance(name, str) and name in self._data["versions"]

    def __iter__(self) -> Iterator[str]:
        return iter(self.versions)

    def __len__(self) -> int:
        self._check_open()
        return len(self._data["versions"])

    def __repr__(self) -> str:
        if self.closed:
            return "<closed VersionedFile>"
        return f"<VersionedFile {self._where!r}: {len(self)} versions>"

    # -- staging and committing -----------------------------------------------------------------
    @contextlib.contextmanager
    def stage_version(self, name: str, prev_version: str | None = None,
                      make_current: bool = True, timestamp: Any = None) -> Iterator[StagedGroup]:
        """Yield a group holding a copy of ``prev_version`` (default: the current version;
        ``""`` or ``FIRST_VERSION``: empty); commit it as version ``name`` when the block ends
        without an exception. When the block ends, the staged group and every dataset taken
        from it stop working (a later write would be lost, so it raises)."""
        self._check_writable()
        stage = self._state.stage
        if stage is not None:
            raise VersionError(f"{self._where}: version {stage.name!r} is already being staged "
                               f"(one stage at a time per file); end that block first")
        _check_name(name)
        if name in self:
            raise VersionError(f"version {name!r} already exists in {self._where}")
        prev = self.current_version if prev_version is None else \
            FIRST_VERSION if prev_version == "" else prev_version
        if prev != FIRST_VERSION:
            self._version_group(prev)
        stamp = _parse_timestamp(timestamp) if timestamp is not None else None
        stage = _Stage(self, name)
        base = self._version_group(prev)["root"] if prev != FIRST_VERSION else None
        root = StagedGroup(stage, "/", base, _user_attrs(base) if base is not None else {})
        self._state.stage = stage
        try:
            try:
                yield root
            except BaseException:
                stage.ended = "ended with an exception and was not committed"
                raise
            if stamp is None:
                stamp = dt.datetime.now(dt.timezone.utc)
            current = self.current_version
            try:
                self._commit(name, prev, root, stamp, make_current)
            except BaseException:
                stage.ended = "failed to commit (nothing of it was stored)"
                self._rollback(name, current)
                raise
            stage.ended = "was committed"
        finally:
            if stage.ended is None:  # a generator closed without the block ending
                stage.ended = "was abandoned"
            if self._state.stage is stage:
                self._state.stage = None

    def _commit(self, name: str, prev: str, root: StagedGroup, stamp: dt.datetime,
                make_current: bool) -> None:
        if make_current:
            self._check_mirror(root if self.current_version == prev else None)
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
                self._sync_head(root, self._root, "", changed)
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
        meta.pool = pool_key(meta.dtype, meta.chunks, meta.compression, meta.compression_opts,
                             meta.filters)
        slots = staged.slots().copy()
        stored = []
        for index, chunk in sorted(staged.changed_chunks(), key=lambda item: item[0]):
            if is_fill(chunk, meta.fillvalue):
                slots[index] = -1
            else:
                stored.append((index, chunk))
        for (index, _), slot in zip(stored, pool.store_many([c for _, c in stored])):
            slots[index] = slot
        base_slots = read_map(staged.base, self._state.map_cache) \
            if staged.base is not None else None
        node = write_node(parent, name, meta, slots, staged.base, base_slots, dict(staged.attrs))
        self._state.map_cache[node.id] = slots
        written[id(staged)] = node
        changed.append(staged.name)

    def _pool(self, meta: DatasetMeta, create: bool = True) -> ChunkPool | None:
        key = meta.pool or pool_key(meta.dtype, meta.chunks, meta.compression,
                                    meta.compression_opts, meta.filters)
        pool = self._state.pools.get(key)
        if pool is None:
            pools = self._data["pools"]
            if key in pools:
                pool = ChunkPool(pools[key])
            elif create:
                pool = ChunkPool.create(pools, key, meta.dtype, meta.chunks, meta.compression,
                                        meta.compression_opts, meta.filters)
            else:
                return None
            self._state.pools[key] = pool
        return pool

    # -- the plain mirror of the current version at the file's root --------------------------
    def _head_is(self, name: str) -> bool:
        value = self._data.attrs.get("head_version", FIRST_VERSION)
        return (value.decode() if isinstance(value, bytes) else str(value)) == name

    def _head_dataset(self, version: str, path: str) -> h5py.Dataset | None:
        if version != self.current_version or not self._head_is(version):
            return None
        obj = self._root.get(path.lstrip("/"))
        return obj if isinstance(obj, h5py.Dataset) else None

    def _check_mirror(self, staged: StagedGroup | None = None) -> None:
        """Refuse to rewrite the plain mirror when it holds members that no version has
        (written there with plain h5py): the rewrite would delete them. Checks the groups a
        commit on top of the head touches (``staged``), or the top level for a rebuild."""
        head = self._data.attrs.get("head_version", FIRST_VERSION)
        head = head.decode() if isinstance(head, bytes) else str(head)
        if head != FIRST_VERSION and head not in self._data["versions"]:
            return  # no head to compare with (set by an interrupted operation)

        def visit(target: h5py.Group, base: h5py.Group | None, node: StagedGroup | None,
                  path: str) -> None:
            known_attrs = set(_user_attrs(base)) if base is not None else set()
            for key in target.attrs:
                if key not in known_attrs:
                    raise VersionError(
                        f"{self._where}:{self._root.name.rstrip('/')}{path or '/'} has an "
                        f"attribute {key!r} that version {head!r} does not have: it was "
                        f"written with plain h5py into the mirror of the current version, and "
                        f"the commit would delete it. Set it in a stage_version(...) block")
            known = set(base) if base is not None else set()
            for key in target:
                if (target == self._root and key == DATA_GROUP) or key in known:
                    continue
                where = f"{path}/{key}"
                raise VersionError(
                    f"{self._where}:{self._root.name.rstrip('/')}{where} is not part of "
                    f"version {head!r}: it was written with plain h5py into the mirror of the "
                    f"current version, and the commit would delete it. Move it out of the "
                    f"versioned tree, or write it in a stage_version(...) block")
            if node is None or node._children is None:
                return
            for key, child in node._children.items():
                if isinstance(child, StagedGroup) and child.dirty and key in target and \
                        isinstance(target[key], h5py.Group) and child.base is not None and \
                        base is not None and key in base:
                    visit(target[key], base[key], child, f"{path}/{key}")

        base_root = self._version_group(head)["root"] if head != FIRST_VERSION else None
        visit(self._root, base_root, staged, "")

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
            if key not in members and not (target == self._root and key == DATA_GROUP):
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
        root = self._root
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
        slots = read_map(node, self._state.map_cache)
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
        self._check_open()
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
        self._check_not_staging("delete versions")
        names = [names] if isinstance(names, str) else list(names)
        if FIRST_VERSION in names or "" in names:
            raise VersionError(f"{self._where}: the first (empty) version cannot be deleted")
        for name in names:
            self._version_group(name)
        doomed = set(names)

        def survivor(name: str) -> str:
            while name in doomed:
                name = self._prev(name)
            return name

        current = self.current_version
        new_current = survivor(current)
        if new_current != current:
            self._check_mirror()
        versions = self._data["versions"]
        for name in self.versions:
            if name not in doomed:
                prev = self._prev(name)
                if prev in doomed:
                    versions[name].attrs["prev_version"] = survivor(prev)
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
                slots = read_map(node, self._state.map_cache)
                used.setdefault(meta.pool, set()).update(int(s) for s in np.unique(slots)
                                                         if s >= 0)
                return
            for key in node:
                visit(node[key])

        for name in self.versions:
            visit(self._data["versions"][name]["root"])
        for key in self._data["pools"]:
            pool = self._state.pools.get(key) or ChunkPool(self._data["pools"][key])
            self._state.pools[key] = pool
            stored = set(range(pool.slots)) - set(pool.group["free"][()].tolist())
            unused = stored - used.get(key, set())
            if unused:
                pool.release(unused)

    def diff(self, v1: str, v2: str) -> dict[str, Any]:
        """What changed from ``v1`` to ``v2``: datasets and groups added and removed, and for
        each changed dataset the chunk regions (tuples of slices) that differ."""
        self._check_open()
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
            sa, sb = read_map(na, self._state.map_cache), read_map(nb, self._state.map_cache)
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


class _FirstVersion(VersionGroup):
    """The empty version every history starts from (``vf[""]``, as in versioned-hdf5)."""

    def __init__(self, vf: VersionedFile, node: h5py.Group, path: str, version: str):
        self._vf, self._node, self.name, self.version = vf, node, path, version
        self.attrs = ReadOnlyAttrs({}, "/")


def _versioned_groups(root: h5py.Group) -> list[str]:
    """The groups below ``root`` that hold a versioned tree (for a helpful message)."""
    found: list[str] = []

    def visit(name: str) -> None:
        if name.rsplit("/", 1)[-1] == DATA_GROUP:
            found.append("/" + name.rsplit("/", 1)[0] if "/" in name else "/")

    root.visit(visit)
    return found


def _lockable_path(f: h5py.File) -> str | None:
    """The file on disk behind an open h5py.File, if the writer lock can be taken on it."""
    if f.driver == "fileobj":
        return None
    name = f.filename
    return name if isinstance(name, str) and os.path.isfile(name) else None


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
        kwargs.update(meta.filters)
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
