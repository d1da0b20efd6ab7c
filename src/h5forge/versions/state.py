"""What every ``VersionedFile`` over one versioned tree shares inside a process.

A chunk pool hands out free slots from an in-memory index. Two handles with an index each
would both hand out the same freed slot, and a version would then read another version's
chunks. So the pools, the cache of chunk maps, the stage in progress and the writer lock live
in one :class:`TreeState` per tree (HDF5 file number + group path), which every handle over
that tree uses.
"""

from __future__ import annotations

from typing import Any

import h5py

from h5forge.versions.journal import FileLockedError, WriterLock

__all__ = ["TreeState", "acquire", "release", "rekey"]


class TreeState:
    """Pools, map cache, the open stage and the writer lock of one versioned tree."""

    def __init__(self, key: tuple[Any, str], file_id: h5py.h5f.FileID):
        self.key = key
        self.file_id = file_id
        self.map_cache: dict = {}
        self.pools: dict = {}
        self.stage: Any = None  # the stage in progress, if any
        self.locked = False  # holds a share of its file's writer lock
        self.handles = 0

    def clear_caches(self) -> None:
        self.map_cache.clear()
        self.pools.clear()


_states: dict[tuple[Any, str], TreeState] = {}
#: file number -> [writer lock, number of trees holding it]: trees in one file share it
_locks: dict[Any, list] = {}


def _key(root: h5py.Group) -> tuple[Any, str]:
    return (root.file.id.fileno, root.name)


def acquire(root: h5py.Group, lock_file: str | None) -> TreeState:
    """The shared state of the tree at ``root`` (created on first use). ``lock_file``: take
    the writer lock on that file for the state (once, for all handles)."""
    key = _key(root)
    for stale in [s for s in _states.values() if not s.file_id.valid]:
        _drop(stale)  # its file was closed under a handle never closed: free its lock
    state = _states.get(key)
    if state is None:
        state = _states[key] = TreeState(key, root.file.id)
    if lock_file is not None and not state.locked:
        held = _locks.get(key[0])
        if held is None:
            try:
                held = _locks[key[0]] = [WriterLock(lock_file), 0]
            except FileLockedError:
                if not state.handles:
                    del _states[key]
                raise
        held[1] += 1
        state.locked = True
    state.handles += 1
    return state


def release(state: TreeState) -> None:
    """One handle is done with ``state``; the last one drops the lock and the caches."""
    state.handles -= 1
    if state.handles <= 0:
        _drop(state)


def _drop(state: TreeState) -> None:
    if state.locked:
        held = _locks[state.key[0]]
        held[1] -= 1
        if held[1] <= 0:
            held[0].release()
            del _locks[state.key[0]]
        state.locked = False
    state.clear_caches()
    if _states.get(state.key) is state:
        del _states[state.key]


def rekey(state: TreeState, root: h5py.Group) -> None:
    """``root``'s file was reopened (after a rollback): file the state under its new number."""
    if _states.get(state.key) is state:
        del _states[state.key]
    state.key = _key(root)
    state.file_id = root.file.id
    _states[state.key] = state
