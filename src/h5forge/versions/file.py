"""``VersionedFile``: versions of an HDF5 file or group (see :mod:`h5forge.versions` for the
layout). This module opens the tree and answers lookups; committing lives in
:mod:`~h5forge.versions.commit`, the plain mirror in :mod:`~h5forge.versions.mirror`, deletes and
diffs in :mod:`~h5forge.versions.history`, and all of them share one
:class:`~h5forge.versions.tree.Tree`."""

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
from h5forge.errors import CorruptFileError, TargetError, UnknownVersionError, VersionError
from h5forge.versions import commit, history, mirror, state
from h5forge.versions.journal import JournalFile, journal_path, recover, writer_active
from h5forge.versions.staging import StagedGroup
from h5forge.versions.tree import (
    DATA_GROUP,
    FIRST_VERSION,
    FORMAT,
    TIMESTAMP_FORMAT,
    TimestampTypeError,
    Tree,
    parse_timestamp,
)
from h5forge.versions.views import ReadOnlyAttrs, VersionGroup

__all__ = ["VersionedFile", "FIRST_VERSION", "DATA_GROUP", "TIMESTAMP_FORMAT",
           "TimestampTypeError"]


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
        journal: JournalFile | None = None
        own = False
        lock_file = None
        if isinstance(target, h5py.Group):
            root = _h5.ensure_open(target)
            file = root.file
            writable = file.mode != "r"
            lock_file = _lockable_path(file) if writable else None
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
            writable = mode != "r"
            if mode == "r":
                file = h5py.File(path, "r")
            else:
                create = mode == "w" or not exists
                journal = JournalFile(path, create=create, durable=durable)
                file = h5py.File(journal, "w" if create else "r+",
                                 libver="latest" if create else None)
            root = file
            own = True
        else:
            raise TargetError(f"expected a file path or an open h5py.File or h5py.Group, got "
                              f"{type(target).__name__}")
        self._own = own
        try:
            shared = state.acquire(root, lock_file)
        except BaseException:
            self._close_own(file, journal)
            raise
        self._tree = Tree(file, root, writable, journal, shared)
        # A handle dropped without close() still gives its share of the state (and of the
        # writer lock) back when it is garbage-collected.
        self._release = weakref.finalize(self, state.release, shared)
        try:
            self._open_tree()
        except BaseException:
            self.close()
            raise

    def _open_tree(self) -> None:
        tree = self._tree
        root = tree.root
        if tree.writable:
            _small_metadata_cache(tree.file)
        if DATA_GROUP not in root:
            if not tree.writable:
                trees = _versioned_groups(root)
                hint = (f"; it holds versioned trees in groups: {', '.join(trees[:5])} (open "
                        f"one with VersionedFile(f[path]), or --group on the command line)"
                        if trees else " (open it with mode 'a' to start)")
                raise VersionError(f"{tree.where} has no versions{hint}")
            if "_version_data" in root:
                raise VersionError(f"{tree.where} is a versioned-hdf5 file; convert it with "
                                   f"h5forge.versions.import_versioned_hdf5 (or `h5forge "
                                   f"versions import`), or use versioned_hdf5 itself")
            if len(root) or len(root.attrs):
                raise VersionError(f"{tree.where} already holds plain HDF5 data; versioning "
                                   f"it would replace it with the first version. Start a new "
                                   f"file or group and copy the data in a first stage")
            data = root.create_group(DATA_GROUP)
            data.attrs["format"] = FORMAT
            data.attrs["current_version"] = FIRST_VERSION
            data.create_group("versions", track_order=True)
            data.create_group("pools")
            tree.commit_transaction()
        tree.data = root[DATA_GROUP]
        if str(tree.data.attrs.get("format", "")) != FORMAT:
            raise CorruptFileError(f"{tree.where}: versions format "
                                   f"{tree.data.attrs.get('format')!r} is not {FORMAT!r}")

    # -- file lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> VersionedFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or the h5py file it was given was closed)."""
        return self._tree.is_closed

    def close(self) -> None:
        """Stop using the versions; closes the file only if it was opened from a path. A
        stage still open is ended (nothing of it is committed)."""
        tree = self._tree
        if tree.closed:
            return
        tree.closed = True
        stage = tree.state.stage
        if stage is not None and stage.owner is self:
            stage.ended = "was ended by closing its VersionedFile"
            tree.state.stage = None
        self._release()
        self._close_own(tree.file, tree.journal)

    def _close_own(self, file: h5py.File, journal: JournalFile | None) -> None:
        if not self._own or not file.id.valid:
            return
        file.close()
        if journal is not None:
            journal.commit()
            journal.close()

    @property
    def file(self) -> h5py.File:
        return self._tree.file

    @property
    def root(self) -> h5py.Group:
        """The group holding the versioned tree: the file's root, or the group given."""
        return self._tree.root

    # -- versions -------------------------------------------------------------------------------
    @property
    def versions(self) -> list[str]:
        """Committed version names, oldest commit first."""
        return self._tree.versions

    @property
    def current_version(self) -> str:
        """The version ``stage_version`` starts from by default, and that ``vf[0]`` reads
        (``FIRST_VERSION`` before the first commit)."""
        return self._tree.current_version

    @current_version.setter
    def current_version(self, name: str) -> None:
        tree = self._tree
        tree.check_writable()
        tree.check_not_staging("set current_version")
        tree.version_group(name)
        mirror.check_mirror(tree)
        tree.data.attrs["current_version"] = name
        mirror.rebuild_head(tree, name)
        tree.commit_transaction()

    def timestamp(self, name: str) -> dt.datetime:
        """When version ``name`` was committed (UTC)."""
        self._tree.check_open()
        return self._tree.timestamp(name)

    def version_info(self, name: str) -> dict[str, Any]:
        """``name``, ``prev_version``, ``timestamp`` (UTC) and ``changed`` (dataset paths)."""
        tree = self._tree
        tree.check_open()
        group = tree.version_group(name)
        return {"name": name, "prev_version": tree.prev(name), "timestamp": tree.timestamp(name),
                "changed": json.loads(group.attrs.get("changed", "[]"))}

    def version_at(self, timestamp: Any, exact: bool = False) -> str:
        """The name of the latest version committed at or before ``timestamp`` (``exact``:
        at it). An aware datetime (any zone) or a numpy.datetime64 (taken as UTC)."""
        tree = self._tree
        tree.check_open()
        when = parse_timestamp(timestamp)
        best = None
        for name in tree.versions:
            stamp = tree.timestamp(name)
            if stamp == when or (not exact and stamp <= when and
                                 (best is None or stamp >= best[0])):
                best = (stamp, name)
                if exact:
                    break
        if best is None:
            raise UnknownVersionError(f"{tree.where} has no version "
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
        tree = self._tree
        tree.check_open()
        if key is None:
            key = tree.current_version
        if isinstance(key, (dt.datetime, np.datetime64)):
            key = self.version_at(key)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            key = self._walk_back(int(key))
        if not isinstance(key, str):
            raise UnknownVersionError(f"a version is named by a string, an int or a timestamp, "
                                      f"not {key!r}")
        if key in ("", FIRST_VERSION):
            return _FirstVersion(tree, _h5.memory_file(), "/", FIRST_VERSION)
        return VersionGroup(tree, tree.version_group(key)["root"], "/", key)

    def _walk_back(self, steps: int) -> str:
        if steps > 0:
            raise IndexError(f"version index {steps}: use 0 for the current version and -1, "
                             f"-2, ... for earlier ones")
        tree = self._tree
        name = tree.current_version
        for _ in range(-steps):
            if name == FIRST_VERSION:
                break
            name = tree.prev(name)
        if name == FIRST_VERSION:
            raise IndexError(f"version index {steps} goes back past the first version")
        return name

    def __contains__(self, name: object) -> bool:
        self._tree.check_open()
        return isinstance(name, str) and name in self._tree.data["versions"]

    def __iter__(self) -> Iterator[str]:
        return iter(self.versions)

    def __len__(self) -> int:
        self._tree.check_open()
        return len(self._tree.data["versions"])

    def __repr__(self) -> str:
        if self.closed:
            return "<closed VersionedFile>"
        return f"<VersionedFile {self._tree.where!r}: {len(self)} versions>"

    # -- staging, exporting, deleting, comparing ----------------------------------------------
    def stage_version(self, name: str, prev_version: str | None = None,
                      make_current: bool = True,
                      timestamp: Any = None) -> contextlib.AbstractContextManager[StagedGroup]:
        """A context manager yielding a group holding a copy of ``prev_version`` (default: the
        current version; ``""`` or ``FIRST_VERSION``: empty); commit it as version ``name`` when
        the block ends without an exception. When the block ends, the staged group and every
        dataset taken from it stop working (a later write would be lost, so it raises)."""
        return commit.stage_version(self._tree, self, name, prev_version, make_current,
                                    timestamp)

    def export(self, version: str, out: _h5.PathLike | h5py.Group) -> None:
        """Write version ``version`` as a plain HDF5 file (or into an empty group)."""
        node = self[version]._node
        if isinstance(out, h5py.Group):
            mirror.materialize(self._tree, node, out)
            return
        with h5py.File(out, "w") as f:
            mirror.materialize(self._tree, node, f)

    def delete_versions(self, names: str | list[str]) -> None:
        """Delete versions; their children get the nearest surviving ancestor as
        ``prev_version``, and chunks no remaining version uses are freed for reuse."""
        history.delete_versions(self._tree, names)

    def diff(self, v1: str, v2: str) -> dict[str, Any]:
        """What changed from ``v1`` to ``v2``: datasets and groups added and removed, and for
        each changed dataset the chunk regions (tuples of slices) that differ."""
        return history.diff(self._tree, v1, v2)


class _FirstVersion(VersionGroup):
    """The empty version every history starts from (``vf[""]``, as in versioned-hdf5)."""

    def __init__(self, tree: Tree, node: h5py.Group, path: str, version: str):
        self._tree, self._node, self.name, self.version = tree, node, path, version
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
