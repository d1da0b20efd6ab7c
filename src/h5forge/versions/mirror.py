"""The plain mirror of the current version: the tree's root holds it as ordinary groups and
datasets, so h5py and any HDF5 tool read the current data at full speed.

A commit on top of the mirror's version updates only what changed (:func:`sync_head`); any
other change of the current version rewrites it (:func:`rebuild_head`). Neither deletes a member
or attribute that plain h5py wrote into the mirror: :func:`check_mirror` refuses first.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from h5forge.errors import VersionError
from h5forge.versions.chunks import META, DatasetMeta, chunk_box, pool_chunk_reader, read_map
from h5forge.versions.staging import StagedDataset, StagedGroup, _user_attrs
from h5forge.versions.tree import DATA_GROUP, FIRST_VERSION, Tree

__all__ = ["check_mirror", "sync_head", "rebuild_head", "materialize", "materialize_node"]

#: A new dataset up to this size is written into the mirror in one call (else chunk by chunk).
_WHOLE_WRITE_BYTES = 256 * 2**20

def check_mirror(tree: Tree, staged: StagedGroup | None = None) -> None:
    """Refuse to rewrite the plain mirror when it holds members that no version has
    (written there with plain h5py): the rewrite would delete them. Checks the groups a
    commit on top of the head touches (``staged``), or the top level for a rebuild."""
    head = tree.head_version()
    if head != FIRST_VERSION and head not in tree.data["versions"]:
        return  # no head to compare with (set by an interrupted operation)

    def visit(target: h5py.Group, base: h5py.Group | None, node: StagedGroup | None,
              path: str) -> None:
        known_attrs = set(_user_attrs(base)) if base is not None else set()
        for key in target.attrs:
            if key not in known_attrs:
                raise VersionError(
                    f"{tree.where}:{tree.root.name.rstrip('/')}{path or '/'} has an "
                    f"attribute {key!r} that version {head!r} does not have: it was "
                    f"written with plain h5py into the mirror of the current version, and "
                    f"the commit would delete it. Set it in a stage_version(...) block")
        known = set(base) if base is not None else set()
        for key in target:
            if (target == tree.root and key == DATA_GROUP) or key in known:
                continue
            where = f"{path}/{key}"
            raise VersionError(
                f"{tree.where}:{tree.root.name.rstrip('/')}{where} is not part of "
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

    base_root = tree.version_group(head)["root"] if head != FIRST_VERSION else None
    visit(tree.root, base_root, staged, "")


def sync_head(tree: Tree, staged: StagedGroup, target: h5py.Group, path: str,
              changed: list[str], memo: dict | None = None) -> None:
    """Bring the mirror up to date with a commit on top of it: only what changed
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
        if key not in members and not (target == tree.root and key == DATA_GROUP):
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
                memo[id(child)] = materialize_node(tree, child.base, target, key, {})
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
            sync_head(tree, child, sub, f"{path}/{key}", changed, memo)
        else:
            memo[id(child)] = sync_head_dataset(child, target, key)


def sync_head_dataset(staged: StagedDataset, target: h5py.Group,
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


def rebuild_head(tree: Tree, name: str) -> None:
    """Replace the mirror by a plain copy of version ``name``."""
    root = tree.root
    for key in list(root):
        if key != DATA_GROUP:
            del root[key]
    for key in list(root.attrs):
        del root.attrs[key]
    if name != FIRST_VERSION:
        materialize(tree, tree.version_group(name)["root"], root)
    tree.data.attrs["head_version"] = name


def materialize_node(tree: Tree, node: h5py.Group, out: h5py.Group, key: str,
                     memo: dict) -> h5py.HLObject:
    """Write one version node (dataset or group subtree) as ``out[key]``."""
    if node.id in memo:
        out[key] = memo[node.id]
        return memo[node.id]
    if META not in node.attrs:
        memo[node.id] = sub = out.create_group(key)
        materialize(tree, node, sub, memo=memo)
        return sub
    meta = DatasetMeta.from_node(node)
    dset = _create_head(out, key, meta)
    slots = read_map(node, tree.state.map_cache)
    reader = pool_chunk_reader(slots, tree.pool(meta, create=False))
    for index in _stored_or_all(slots, meta):
        _write_chunk(dset, meta, index, reader(index))
    for attr, value in _user_attrs(node).items():
        dset.attrs[attr] = value
    memo[node.id] = dset
    return dset


def materialize(tree: Tree, node: h5py.Group, out: h5py.Group,
                memo: dict | None = None) -> None:
    """Write the version tree under ``node`` into ``out`` as plain groups and datasets
    (a node reached twice becomes a hard link, as in the version)."""
    memo = {} if memo is None else memo
    for key, value in _user_attrs(node).items():
        out.attrs[key] = value
    for key in node:
        materialize_node(tree, node[key], out, key, memo)


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
