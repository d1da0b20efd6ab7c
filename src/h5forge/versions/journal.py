"""An undo journal under HDF5, so a killed commit leaves the file as it was before the commit.

HDF5 updates its metadata (B-trees, object headers, the superblock) in place, and a process
killed in the middle of a flush can leave a file that no longer opens. h5py lets HDF5 do its
I/O through a Python file object (``driver="fileobj"``); :class:`JournalFile` is such an object.
Before it overwrites a byte that existed when the transaction began, it appends the original
bytes to ``<file>.h5forge-journal``. Bytes appended past the old end need no journal:
recovery truncates them. :meth:`JournalFile.commit` ends a transaction by deleting the
journal. :func:`recover` (run whenever a versioned file is opened) writes the saved bytes back
and truncates the file, returning it to the state of the last commit.

The journal is written before the file, both with plain ``os.write``. A process killed with
``kill -9`` loses nothing the kernel has accepted, so the journal is always at least as new as
the file. Pass ``durable=True`` to fsync as well, which also survives a power cut.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import zlib

from h5forge.errors import CorruptFileError, VersionError

__all__ = ["JournalFile", "recover", "journal_path", "lock_path", "FileLockedError",
           "writer_active", "WriterLock"]

_MAGIC = b"H5FJRNL1"
_HEADER = struct.Struct("<8sQ")  # magic, file size when the transaction began
_ENTRY = struct.Struct("<QQI")  # offset, length, crc32 of the saved bytes


def journal_path(path: str) -> str:
    return f"{path}.h5forge-journal"


class FileLockedError(VersionError):
    """Another writer holds the file."""


def lock_path(path: str) -> str:
    return f"{path}.h5forge-lock"


class WriterLock:
    """One writer per file: an exclusive ``flock`` on ``<file>.h5forge-lock``, a file of its
    own (HDF5 locks the data file itself, and plain h5py readers must still open it between
    commits). Taken by a path-mode writer and for an open writable ``h5py.File``."""

    def __init__(self, path: str):
        self.path = path
        self._fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            self._fd = -1
            raise FileLockedError(f"{path} is open for writing by another VersionedFile (in "
                                  f"this or another process); close that first") from None

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.remove(lock_path(self.path))
            os.close(self._fd)
            self._fd = -1


def writer_active(path: str) -> bool:
    """Whether a :class:`JournalFile` (in any process) holds ``path`` for writing now."""
    try:
        fd = os.open(lock_path(path), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we took
    return False


def recover(path: str) -> bool:
    """Undo an unfinished transaction on ``path`` (if its journal exists); True if one was
    undone. Safe to run again if interrupted: the journal is removed only at the end."""
    if not os.path.exists(journal_path(path)) or writer_active(path):
        return False  # nothing to undo, or the journal of a live writer: not ours to touch
    return _undo(path)


def _undo(path: str) -> bool:
    jpath = journal_path(path)
    with open(jpath, "rb") as journal:
        head = journal.read(_HEADER.size)
        if len(head) < _HEADER.size:  # killed while creating the journal: nothing was written
            os.remove(jpath)
            return False
        magic, size = _HEADER.unpack(head)
        if magic != _MAGIC:
            raise CorruptFileError(f"{jpath}: not an h5forge journal; move it away to open "
                                   f"{path}")
        entries = []
        while True:
            raw = journal.read(_ENTRY.size)
            if len(raw) < _ENTRY.size:
                break
            offset, length, crc = _ENTRY.unpack(raw)
            data = journal.read(length)
            if len(data) < length or zlib.crc32(data) != crc:
                break  # the last entry was being written: its bytes were not yet overwritten
            entries.append((offset, data))
    fd = os.open(path, os.O_RDWR)
    try:
        for offset, data in reversed(entries):
            os.pwrite(fd, data, offset)
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.remove(jpath)
    return True


class JournalFile:
    """A binary file object for h5py's ``fileobj`` driver that journals overwrites."""

    def __init__(self, path: str, *, create: bool = False, durable: bool = False):
        self.path = path
        self.name = path  # what h5py reports as the file name
        self.durable = durable
        # One writer at a time, and no reader recovers a live writer's journal.
        self._fd = -1
        self._journal: int | None = None
        self._lock: WriterLock | None = WriterLock(path)
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
        self._fd = os.open(path, flags, 0o666)
        self._pos = 0
        self._begin()

    def __repr__(self) -> str:  # h5py shows it as the file name
        return self.path

    # -- transactions ----------------------------------------------------------------------
    def _begin(self) -> None:
        self._base_size = os.fstat(self._fd).st_size
        self._saved: list[tuple[int, int]] = []  # sorted, disjoint (start, stop) already saved

    def commit(self) -> None:
        """Make everything written so far permanent (the caller flushed HDF5 first)."""
        if self.durable:
            os.fsync(self._fd)
        if self._journal is not None:
            os.close(self._journal)
            self._journal = None
            os.remove(journal_path(self.path))
        self._begin()

    def rollback(self) -> None:
        """Undo everything since the last commit (the caller closes HDF5 first, unflushed)."""
        if self._journal is not None:
            os.close(self._journal)
            self._journal = None
            _undo(self.path)  # our own journal: we hold the lock
        self._begin()

    def _open_journal(self) -> None:
        """Start the journal with the file's size: even a transaction that only appends is
        undone (truncated) by :func:`recover`."""
        if self._journal is None:
            self._journal = os.open(journal_path(self.path),
                                    os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            os.write(self._journal, _HEADER.pack(_MAGIC, self._base_size))
            if self.durable:
                os.fsync(self._journal)

    def _save(self, start: int, stop: int) -> None:
        """Journal the original bytes of [start, stop) not saved yet (only below the old end)."""
        self._open_journal()
        stop = min(stop, self._base_size)
        if start >= stop:
            return
        missing = []
        cursor = start
        for s, e in self._saved:
            if e <= cursor:
                continue
            if s >= stop:
                break
            if s > cursor:
                missing.append((cursor, s))
            cursor = max(cursor, e)
            if cursor >= stop:
                break
        if cursor < stop:
            missing.append((cursor, stop))
        if not missing:
            return
        for s, e in missing:
            data = os.pread(self._fd, e - s, s)
            os.write(self._journal, _ENTRY.pack(s, len(data), zlib.crc32(data)) + data)
        if self.durable:
            os.fsync(self._journal)
        self._saved = _merge(self._saved + missing)

    # -- the file-object protocol h5py uses ----------------------------------------------------
    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self._pos = offset
        elif whence == 1:
            self._pos += offset
        else:
            self._pos = os.fstat(self._fd).st_size + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(os.fstat(self._fd).st_size - self._pos, 0)
        data = os.pread(self._fd, size, self._pos)
        self._pos += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(memoryview(buffer).cast("B")))
        memoryview(buffer).cast("B")[:len(data)] = data
        return len(data)

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self._save(self._pos, self._pos + len(view))
        written = os.pwrite(self._fd, view, self._pos)
        self._pos += written
        return written

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        self._save(size, self._base_size)
        os.ftruncate(self._fd, size)
        return size

    def flush(self) -> None:
        pass  # os.write goes straight to the kernel

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._journal is not None:
            os.close(self._journal)
            self._journal = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out
