"""Deleting versions and comparing them.

Deleting a version re-parents its children to the nearest surviving ancestor and frees the
pool slots no remaining version uses (reused by later commits; ``h5forge versions gc`` gives the
disk space back). A diff compares chunk maps: equal slots are equal content.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from h5forge.errors import VersionError
from h5forge.versions.chunks import META, DatasetMeta, chunk_box, read_map
from h5forge.versions.mirror import check_mirror, rebuild_head
from h5forge.versions.pool import ChunkPool
from h5forge.versions.staging import _user_attrs
from h5forge.versions.tree import FIRST_VERSION, Tree

__all__ = ["delete_versions", "free_unused_chunks", "diff"]

def delete_versions(tree: Tree, names: str | list[str]) -> None:
    """Delete versions; their children get the nearest surviving ancestor as
    ``prev_version``, and chunks no remaining version uses are freed for reuse."""
    tree.check_writable()
    tree.check_not_staging("delete versions")
    names = [names] if isinstance(names, str) else list(names)
    if FIRST_VERSION in names or "" in names:
        raise VersionError(f"{tree.where}: the first (empty) version cannot be deleted")
    for name in names:
        tree.version_group(name)
    doomed = set(names)

    def survivor(name: str) -> str:
        while name in doomed:
            name = tree.prev(name)
        return name

    current = tree.current_version
    new_current = survivor(current)
    if new_current != current:
        check_mirror(tree, )
    versions = tree.data["versions"]
    for name in tree.versions:
        if name not in doomed:
            prev = tree.prev(name)
            if prev in doomed:
                versions[name].attrs["prev_version"] = survivor(prev)
    for name in names:
        del versions[name]
    if new_current != current:
        tree.data.attrs["current_version"] = new_current
        rebuild_head(tree, new_current)
    free_unused_chunks(tree)
    tree.commit_transaction()


def free_unused_chunks(tree: Tree) -> None:
    used: dict[str, set[int]] = {}
    seen: set = set()

    def visit(node: h5py.Group) -> None:
        if node.id in seen:
            return
        seen.add(node.id)
        if META in node.attrs:
            meta = DatasetMeta.from_node(node)
            slots = read_map(node, tree.state.map_cache)
            used.setdefault(meta.pool, set()).update(int(s) for s in np.unique(slots)
                                                     if s >= 0)
            return
        for key in node:
            visit(node[key])

    for name in tree.versions:
        visit(tree.data["versions"][name]["root"])
    for key in tree.data["pools"]:
        pool = tree.state.pools.get(key) or ChunkPool(tree.data["pools"][key])
        tree.state.pools[key] = pool
        stored = set(range(pool.slots)) - set(pool.group["free"][()].tolist())
        unused = stored - used.get(key, set())
        if unused:
            pool.release(unused)


def diff(tree: Tree, v1: str, v2: str) -> dict[str, Any]:
    """What changed from ``v1`` to ``v2``: datasets and groups added and removed, and for
    each changed dataset the chunk regions (tuples of slices) that differ."""
    tree.check_open()
    a = _tree(tree.version_group(v1)["root"])
    b = _tree(tree.version_group(v2)["root"])
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
        sa, sb = read_map(na, tree.state.map_cache), read_map(nb, tree.state.map_cache)
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
