"""Read-only views of committed versions: h5py's group and dataset reading API."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Iterator

import h5py

from h5forge import _h5
from h5forge.errors import VersionError
from h5forge.versions.chunks import (
    META,
    DatasetMeta,
    MetaView,
    assemble,
    pool_chunk_reader,
    read_map,
    select,
)
from h5forge.versions.staging import _user_attrs

if TYPE_CHECKING:
    from h5forge.versions.tree import Tree

__all__ = ["VersionGroup", "VersionDataset", "ReadOnlyAttrs", "VERSION_ATTRS"]

#: Attributes every version's root group shows (versioned-hdf5 users read them there).
VERSION_ATTRS = ("prev_version", "timestamp")


class ReadOnlyAttrs(dict):
    """The attributes of a committed node: readable as a dict, never writable."""

    def __init__(self, values: dict[str, Any], path: str):
        super().__init__(values)
        self._path = path

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise VersionError(f"{self._path}: attributes of committed versions are read-only")

    __setitem__ = __delitem__ = create = modify = update = pop = clear = setdefault = _refuse
    popitem = _refuse


class _View:
    """What group and dataset views share: their version, path and identity."""

    _tree: Tree
    _node: h5py.Group
    name: str
    version: str

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and other._tree.state is self._tree.state and
                other.version == self.version and other.name == self.name)

    def __hash__(self) -> int:
        return hash((id(self._tree.state), self.version, self.name))

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise VersionError(f"{self.name} in version {self.version!r}: committed versions are "
                           f"read-only; write in stage_version(...)")


class VersionDataset(_View, MetaView):
    """A read-only dataset of a committed version (numpy-style reads)."""

    def __init__(self, tree: Tree, node: h5py.Group, path: str, version: str):
        self._tree, self._node, self.name, self.version = tree, node, path, version
        self.meta = DatasetMeta.from_node(node)
        self.attrs = ReadOnlyAttrs(_user_attrs(node), path)

    def __repr__(self) -> str:
        return f"<versioned dataset {self.name!r}: shape {self.shape}, type {self.dtype}>"

    def __getitem__(self, selection: Any) -> Any:
        tree = self._tree
        tree.check_open()
        starts, stops, local = select(selection, self.meta.shape)
        head = tree.head_dataset(self.version, self.name)
        if head is not None:  # the current version: a plain dataset read
            if not self.meta.shape:
                return head[()]
            if stops == self.meta.shape and not any(starts):
                return head[()][local]  # the whole dataset: h5py's fastest read
            return head[tuple(slice(a, b) for a, b in zip(starts, stops))][local]
        slots = read_map(self._node, tree.state.map_cache)
        pool = tree.pool(self.meta, create=False)
        return assemble(starts, stops, self.meta, pool_chunk_reader(slots, pool))[local]

    def read_direct(self, dest: Any, source_sel: Any = (), dest_sel: Any = ()) -> None:
        dest[dest_sel] = self[source_sel]

    __setitem__ = resize = _View._refuse


class VersionGroup(_View, Mapping):
    """A read-only group of a committed version (an h5py-style mapping of its members)."""

    def __init__(self, tree: Tree, node: h5py.Group, path: str, version: str):
        self._tree, self._node, self.name, self.version = tree, node, path or "/", version
        attrs = _user_attrs(node)
        if self.name == "/":
            for key in VERSION_ATTRS:
                attrs[key] = tree.version_attr(version, key)
        self.attrs = ReadOnlyAttrs(attrs, self.name)

    def __repr__(self) -> str:
        return f"<version {self.version!r} group {self.name!r}>"

    def __getitem__(self, path: str) -> VersionGroup | VersionDataset:
        self._tree.check_open()
        parts = [p for p in str(path).split("/") if p]
        node = self._node
        for part in parts:
            if not isinstance(node, h5py.Group) or META in node.attrs or part not in node:
                raise KeyError(f"{path}: not in version {self.version!r}")
            node = node[part]
        full = "/".join([p for p in self.name.split("/") if p] + parts)
        if META in node.attrs:
            return VersionDataset(self._tree, node, "/" + full, self.version)
        return VersionGroup(self._tree, node, "/" + full, self.version)

    def __contains__(self, path: object) -> bool:
        try:
            self[str(path)]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        self._tree.check_open()
        return iter(list(self._node))

    def __len__(self) -> int:
        self._tree.check_open()
        return len(self._node)

    __eq__ = _View.__eq__
    __hash__ = _View.__hash__

    @contextlib.contextmanager
    def __h5forge_h5py__(self) -> Iterator[h5py.Group]:
        """This group as a read-only h5py group (what ``h5forge.load`` reads): the plain
        mirror for the current version, else an in-memory copy."""
        from h5forge.versions.mirror import materialize

        tree = self._tree
        tree.check_open()
        if self.name != "/" and self.version == tree.current_version and \
                tree.head_is(self.version):
            yield tree.root[self.name.lstrip("/")]  # (the root also holds the history group)
            return
        scratch = _h5.memory_file()  # not closed here: lazy arrays may still read from it
        materialize(tree, self._node, scratch)
        yield scratch

    __setitem__ = __delitem__ = create_dataset = create_group = _View._refuse
    require_group = require_dataset = move = _View._refuse
