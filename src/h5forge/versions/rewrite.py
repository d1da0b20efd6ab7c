"""Rewrite one dataset in every version that holds it: new chunks, dtype, fill value or
filters (versioned-hdf5's ``modify_metadata``), or new contents per version
(``recreate_dataset``).

Versions share unchanged groups and dataset nodes through hard links. A rewrite that gives
every version the same result for the same stored node replaces the node once, in place. A
rewrite whose result depends on the version first gives the version its own copy of each
shared group on the path (copy on write), so no other version changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import h5py
import numpy as np

from h5forge.errors import VersionError
from h5forge.versions.chunks import META, DatasetMeta, write_node
from h5forge.versions.history import free_unused_chunks
from h5forge.versions.mirror import check_mirror, materialize_node
from h5forge.versions.pool import pool_key
from h5forge.versions.staging import StagedDataset, _user_attrs, check_filters
from h5forge.versions.tree import FIRST_VERSION, Tree
from h5forge.versions.views import VersionDataset

if TYPE_CHECKING:
    from h5forge.versions.file import VersionedFile

__all__ = ["rewrite_dataset", "NewDataset"]

#: Where new nodes wait until versions link them (removed at the end of a rewrite).
SCRATCH = "rewrite_scratch"


class NewDataset:
    """What a rewrite gives a version: the data, its metadata and attributes."""

    def __init__(self, meta: DatasetMeta, data: np.ndarray, attrs: dict[str, Any]):
        self.meta, self.data, self.attrs = meta, data, attrs


Rewrite = Callable[[VersionDataset, str], "NewDataset | None"]


def rewrite_dataset(vf: VersionedFile, name: str, rewrite: Rewrite, *,
                    per_version: bool = False) -> int:
    """Replace dataset ``name`` in every version holding it by ``rewrite(view, version)``
    (``None`` deletes it from that version). ``per_version=False``: the result depends only
    on the stored data, so versions sharing a node share the new one. Returns the number of
    versions changed. The mirror of the current version follows; freed chunks are released."""
    tree = vf._tree
    tree.check_writable()
    tree.check_not_staging("rewrite a dataset")
    check_mirror(tree)
    parts = [p for p in name.split("/") if p]
    if not parts:
        raise VersionError(f"{tree.where}: name a dataset, not the root")
    path = "/" + "/".join(parts)
    versions = tree.data["versions"]
    found = False
    memo: dict[Any, h5py.Group | None] = {}
    changed = 0
    try:
        for version in vf.versions:
            node = _find(versions[version]["root"], parts)
            if node is None:
                continue
            found = True
            if not per_version and node.id in memo:
                new = memo[node.id]
            else:
                result = rewrite(VersionDataset(tree, node, path, version), version)
                new = None if result is None else _store(tree, result, path)
                memo[node.id] = new
            parent = _own_parent(versions[version], parts, tree.data.require_group(SCRATCH)) \
                if per_version else _find(versions[version]["root"], parts[:-1])
            del parent[parts[-1]]
            if new is not None:
                parent[parts[-1]] = new
            changed += 1
        if not found:
            raise VersionError(f"{tree.where}: no version holds a dataset {path!r}")
        if SCRATCH in tree.data:  # the versions link what they use; the rest goes
            del tree.data[SCRATCH]
        tree.state.map_cache.clear()
        current = tree.current_version
        if tree.head_is(current):
            _refresh_head(tree, current, parts)
        free_unused_chunks(tree)
        tree.commit_transaction()
    except BaseException:
        tree.abort()
        raise
    return changed


def _find(root: h5py.Group, parts: list[str]) -> h5py.Group | None:
    node = root
    for part in parts:
        if not isinstance(node, h5py.Group) or META in node.attrs or part not in node:
            return None
        node = node[part]
    return node


def _own_parent(version: h5py.Group, parts: list[str], scratch: h5py.Group) -> h5py.Group:
    """The parent group of ``parts`` in this version only: each group on the path that other
    links share is copied (attributes and links) and relinked here first."""
    node = _unshare(version, "root", scratch)
    for part in parts[:-1]:
        node = _unshare(node, part, scratch)
    return node


def _unshare(holder: h5py.Group, key: str, scratch: h5py.Group) -> h5py.Group:
    node = holder[key]
    if h5py.h5o.get_info(node.id).rc > 1:
        copy = scratch.create_group(f"copy{len(scratch)}")
        for attr, value in node.attrs.items():
            copy.attrs[attr] = value
        for child in node:
            copy[child] = node[child]
        del holder[key]
        holder[key] = copy
    return holder[key]


def _store(tree: Tree, result: NewDataset, path: str) -> h5py.Group:
    """Write ``result`` as a new dataset node (a full chunk map) in a scratch group."""
    meta = result.meta
    check_filters(meta, path)
    staged = StagedDataset(_NoStage(), path, meta.copy(), None, {})
    staged.write_all(np.asarray(result.data, dtype=meta.dtype).reshape(meta.shape))
    meta.pool = pool_key(meta.dtype, meta.chunks, meta.compression, meta.compression_opts,
                         meta.filters)
    pool = tree.pool(meta)
    slots = staged.slots().copy()
    stored = [(i, c) for i, c in sorted(staged.changed_chunks(), key=lambda item: item[0])]
    for (index, _), slot in zip(stored, pool.store_many([c for _, c in stored])):
        slots[index] = slot
    scratch = tree.data.require_group(SCRATCH)
    return write_node(scratch, str(len(scratch)), meta, slots, None, None, result.attrs)


class _NoStage:
    """The stage of a dataset built outside any ``stage_version`` block."""

    map_cache: dict = {}

    def check(self, path: str) -> None:
        pass


def _refresh_head(tree: Tree, current: str, parts: list[str]) -> None:
    """Bring the dataset in the plain mirror of the current version up to date."""
    mirror = tree.root
    for part in parts[:-1]:
        if part not in mirror:
            return
        mirror = mirror[part]
    if parts[-1] in mirror:
        del mirror[parts[-1]]
    if current == FIRST_VERSION:
        return
    node = _find(tree.data["versions"][current]["root"], parts)
    if node is not None:
        materialize_node(tree, node, mirror, parts[-1], {})


def modified(view: VersionDataset, *, chunks: Any = None, dtype: Any = None,
             fillvalue: Any = None, filters: dict[str, Any]) -> NewDataset:
    """``view`` with other chunks, dtype, fill value or filters (``modify_metadata``)."""
    from h5forge.versions.staging import _chunks, _compression

    old = view.meta
    data = view[()]
    meta = old.copy()
    if dtype is not None:
        meta.dtype = np.dtype(dtype)
        data = np.asarray(data).astype(meta.dtype)
        meta.fillvalue = np.asarray(old.fillvalue).astype(meta.dtype)[()]
    if fillvalue is not None:
        new_fill = np.asarray(fillvalue, dtype=meta.dtype)[()]
        data = np.where(np.asarray(data) == meta.fillvalue, new_fill, data)
        meta.fillvalue = new_fill
    if chunks is not None:
        meta.chunks = _chunks(chunks, meta.shape, meta.maxshape, meta.dtype, view.name)
    if "compression" in filters or "compression_opts" in filters:
        compression = filters.get("compression", old.compression)
        opts = filters.get("compression_opts",
                           None if "compression" in filters else old.compression_opts)
        meta.compression, meta.compression_opts = _compression(compression, opts)
    other = dict(old.filters)
    for key in ("shuffle", "fletcher32", "scaleoffset"):
        if key in filters:
            other[key] = filters[key]
    meta.filters = {k: v for k, v in other.items() if v}
    meta.depth = 0
    return NewDataset(meta, data, _user_attrs(view._node))
