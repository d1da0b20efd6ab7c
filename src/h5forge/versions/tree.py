"""The opened versioned tree that every part of :mod:`h5forge.versions` works on.

A :class:`Tree` is the file, the group that holds the versioned tree (the file's root or a
group), its history group ``_h5forge_versions``, the state shared by every handle over that
tree in this process (chunk pools, map cache, the stage in progress), and the transaction of a
file opened by path (its undo journal). ``VersionedFile`` opens one; commits
(:mod:`~h5forge.versions.commit`), the plain mirror (:mod:`~h5forge.versions.mirror`),
deletes and diffs (:mod:`~h5forge.versions.history`) and the read-only views
(:mod:`~h5forge.versions.views`) all take it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import h5py
import numpy as np

from h5forge.errors import UnknownVersionError, VersionClosedError, VersionError
from h5forge.versions import state
from h5forge.versions.chunks import DatasetMeta
from h5forge.versions.journal import JournalFile
from h5forge.versions.pool import ChunkPool, pool_key

__all__ = ["Tree", "FIRST_VERSION", "DATA_GROUP", "TIMESTAMP_FORMAT", "FORMAT",
           "TimestampTypeError", "parse_timestamp"]

FIRST_VERSION = "__first_version__"
DATA_GROUP = "_h5forge_versions"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f%z"
FORMAT = "1"


class TimestampTypeError(VersionError, TypeError):
    """A timestamp that is neither a datetime nor a numpy.datetime64 (a TypeError, as in
    versioned-hdf5)."""


def parse_timestamp(value: Any) -> dt.datetime:
    """An aware datetime (any zone) or a numpy.datetime64 (taken as UTC), in UTC."""
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").astype(dt.datetime).replace(tzinfo=dt.timezone.utc)
    if not isinstance(value, dt.datetime):
        raise TimestampTypeError(f"a timestamp must be a datetime or numpy.datetime64, got "
                                 f"{type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise VersionError(f"timestamp {value} has no time zone; give an aware datetime "
                           f"(e.g. datetime.now(timezone.utc))")
    return value.astimezone(dt.timezone.utc)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Tree:
    """One opened versioned tree (see the module docstring)."""

    def __init__(self, file: h5py.File, root: h5py.Group, writable: bool,
                 journal: JournalFile | None, shared: state.TreeState):
        self.file = file
        self.root = root
        self.writable = writable
        self.journal = journal
        self.state = shared
        self.data: h5py.Group | None = None  # the history group, once opened
        self.closed = False

    # -- identity and checks ------------------------------------------------------------------
    @property
    def where(self) -> str:
        """The file name, and the group for a tree that is not at the root (for messages)."""
        name = self.file.filename
        return name if self.root.name == "/" else f"{name}:{self.root.name}"

    @property
    def is_closed(self) -> bool:
        return self.closed or not self.file.id.valid

    def check_open(self) -> None:
        if self.is_closed:
            raise VersionClosedError("this VersionedFile is closed (or its h5py file was "
                                     "closed); open the file again to use its versions")

    def check_writable(self) -> None:
        self.check_open()
        if not self.writable:
            raise VersionError(f"{self.where} is open read-only; open it with mode 'r+' or "
                               f"'a' to change versions")

    def check_not_staging(self, what: str) -> None:
        stage = self.state.stage
        if stage is not None:
            raise VersionError(f"{self.where}: cannot {what} while version {stage.name!r} is "
                               f"being staged; end that stage_version block first")

    # -- versions -----------------------------------------------------------------------------
    @property
    def versions(self) -> list[str]:
        self.check_open()
        return list(self.data["versions"])

    @property
    def current_version(self) -> str:
        self.check_open()
        return _text(self.data.attrs["current_version"])

    def version_group(self, name: str) -> h5py.Group:
        versions = self.data["versions"]
        if not isinstance(name, str) or name not in versions:
            raise UnknownVersionError(f"{name!r} is not a version of {self.where}; versions: "
                                      f"{', '.join(self.versions[-5:]) or '(none)'}")
        return versions[name]

    def version_attr(self, name: str, key: str) -> str:
        return _text(self.version_group(name).attrs[key])

    def prev(self, name: str) -> str:
        return self.version_attr(name, "prev_version")

    def timestamp(self, name: str) -> dt.datetime:
        return dt.datetime.strptime(self.version_attr(name, "timestamp"), TIMESTAMP_FORMAT)

    # -- storage ------------------------------------------------------------------------------
    def pool(self, meta: DatasetMeta, create: bool = True) -> ChunkPool | None:
        """The chunk pool of ``meta``'s dtype, chunks and filters (shared by every handle)."""
        key = meta.pool or pool_key(meta.dtype, meta.chunks, meta.compression,
                                    meta.compression_opts, meta.filters)
        pool = self.state.pools.get(key)
        if pool is None:
            pools = self.data["pools"]
            if key in pools:
                pool = ChunkPool(pools[key])
            elif create:
                pool = ChunkPool.create(pools, key, meta.dtype, meta.chunks, meta.compression,
                                        meta.compression_opts, meta.filters)
            else:
                return None
            self.state.pools[key] = pool
        return pool

    def head_version(self) -> str:
        """The version the plain mirror holds."""
        return _text(self.data.attrs.get("head_version", FIRST_VERSION))

    def head_is(self, name: str) -> bool:
        return self.head_version() == name

    def head_dataset(self, version: str, path: str) -> h5py.Dataset | None:
        """The mirror's dataset at ``path`` when ``version`` is what the mirror holds."""
        if version != self.current_version or not self.head_is(version):
            return None
        obj = self.root.get(path.lstrip("/"))
        return obj if isinstance(obj, h5py.Dataset) else None

    # -- transactions -------------------------------------------------------------------------
    def commit_transaction(self) -> None:
        self.file.flush()
        if self.journal is not None:
            self.journal.commit()

    def abort(self) -> None:
        """Undo an operation that failed half way: exactly, through the journal, when the
        file was opened by path; else only the in-memory state is dropped."""
        self.state.clear_caches()
        if self.journal is None:
            return
        self.file.close()
        self.journal.rollback()
        self.root = self.file = h5py.File(self.journal, "r+")
        self.data = self.file[DATA_GROUP]
        state.rekey(self.state, self.root)
