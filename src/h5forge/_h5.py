"""Opening HDF5 targets given as a path or as an open h5py object, and HDF5 path helpers.

Every public function that takes a file takes a path **or** an open ``h5py.File``/``h5py.Group``:
what it opened it closes, what it was given it leaves open.
"""

from __future__ import annotations

import contextlib
import os
from typing import ContextManager, Iterator, Protocol, runtime_checkable

import h5py

from h5forge.errors import H5ForgeError, NodeNotFoundError, TargetError

__all__ = ["open_group", "open_file", "ensure_open", "is_path", "split_path", "describe", "join",
           "memory_file", "H5pyProvider", "ImportTarget"]

PathLike = str | os.PathLike


@runtime_checkable
class H5pyProvider(Protocol):
    """Something that is not an h5py group but lends one for reading (e.g. a version of a
    :class:`~h5forge.VersionedFile`): every reader that takes a path or a group
    (:func:`open_group`, hence ``load``, ``tree``, ``config``) takes it too."""

    def __h5forge_h5py__(self) -> ContextManager[h5py.Group]:
        """A context manager yielding the h5py group to read, valid inside the block."""


@runtime_checkable
class ImportTarget(Protocol):
    """Something ``dump`` writes into by import rather than through h5py (e.g. a stage of a
    :class:`~h5forge.VersionedFile`, which deduplicates chunks): ``dump`` writes the tree into
    a scratch in-memory file and hands it over."""

    def __h5forge_import__(self, source: h5py.Group, path: str, overwrite: bool) -> None:
        """Copy ``source`` (a complete node in a scratch file) to ``path``; replace what is
        there only when ``overwrite``; raise :class:`NodeExistsError` otherwise."""


def is_path(target: object) -> bool:
    return isinstance(target, (str, os.PathLike))


@contextlib.contextmanager
def open_group(target: PathLike | h5py.Group, mode: str = "r") -> Iterator[h5py.Group]:
    """Yield an h5py group for ``target``: a path (opened with ``mode`` and closed afterwards)
    or an open ``h5py.File``/``h5py.Group`` (yielded as is and left open)."""
    if isinstance(target, h5py.Group):
        yield ensure_open(target)
        return
    if isinstance(target, H5pyProvider):  # e.g. a version of a VersionedFile
        with target.__h5forge_h5py__() as group:
            yield group
        return
    if not is_path(target):
        raise TargetError(f"expected a file path or an open h5py.File/Group, got "
                          f"{type(target).__name__}")
    handle = open_file(target, mode)
    try:
        yield handle
    finally:
        handle.close()


def open_file(path: PathLike, mode: str = "r") -> h5py.File:
    """Open an HDF5 file by path, with errors that name it and say what to check."""
    path = os.fspath(path)
    if mode == "r" and not os.path.exists(path):
        raise NodeNotFoundError(f"{path}: no such file")
    try:
        return h5py.File(path, mode)
    except OSError as exc:
        raise H5ForgeError(f"{path}: cannot open as HDF5 ({exc}); is it an HDF5 file, and not "
                           f"open for writing elsewhere?") from exc


def ensure_open(group: h5py.Group) -> h5py.Group:
    """``group`` itself, or a :class:`TargetError` when its file was closed."""
    if not group.id.valid:
        raise TargetError("the h5py File/Group passed in is closed; open the file again")
    return group


def split_path(path: str) -> list[str]:
    """The link names of an HDF5 path relative to a group ('' or '/' -> [])."""
    return [part for part in str(path).split("/") if part]


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def describe(group: h5py.Group, rel: str = "") -> str:
    """``file.h5:/a/b`` -- the file and absolute HDF5 path, for messages."""
    name = group.name if not rel else f"{group.name.rstrip('/')}/{rel}"
    return f"{os.path.basename(group.file.filename)}:{name}"


def memory_file() -> h5py.File:
    """A new HDF5 file that lives in memory only (for staging and views)."""
    import uuid

    return h5py.File(f"h5forge-{uuid.uuid4().hex}.h5", "w", driver="core", backing_store=False)
