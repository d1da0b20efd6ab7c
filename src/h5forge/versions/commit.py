"""Staging and committing a version: the stage a ``stage_version`` block writes into, and the
commit that stores what it changed.

A commit writes the changed chunks into the pools, one node per changed dataset (a delta on
the previous version's map, or a snapshot), links every unchanged subtree to the previous
version's, and brings the plain mirror up to date. It ends with the transaction's flush (and,
for a file opened by path, the journal's commit); a failure undoes it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any, Iterator

import h5py

from h5forge.errors import VersionClosedError, VersionError
from h5forge.versions.chunks import META, DatasetMeta, is_fill, read_map, write_node
from h5forge.versions.history import free_unused_chunks
from h5forge.versions.mirror import check_mirror, rebuild_head, sync_head
from h5forge.versions.pool import ChunkPool, pool_key
from h5forge.versions.staging import StagedDataset, StagedGroup, _user_attrs
from h5forge.versions.tree import FIRST_VERSION, TIMESTAMP_FORMAT, Tree, parse_timestamp

__all__ = ["Stage", "stage_version", "commit", "check_name"]


class Stage:
    """State shared by the staged objects of one ``stage_version`` block. When the block ends
    (committed or not), every staged group, dataset and attribute set refuses further use:
    writes after the commit would otherwise be accepted and lost."""

    def __init__(self, tree: Tree, owner: Any, name: str):
        self.tree = tree
        self.owner = owner  # the VersionedFile whose stage_version made it
        self.name = name
        self.map_cache = tree.state.map_cache
        self.ended: str | None = None  # why the stage can no longer be used

    def check(self, path: str) -> None:
        if self.ended is not None:
            raise VersionClosedError(f"{path}: the stage of version {self.name!r} {self.ended}; "
                                     f"its groups and datasets can no longer be used. Read "
                                     f"committed data through vf[{self.name!r}], or write in a "
                                     f"new stage_version(...)")

    def pool(self, meta: DatasetMeta) -> ChunkPool:
        return self.tree.pool(meta)

    def wrap(self, node: h5py.Group, path: str) -> StagedGroup | StagedDataset:
        if META in node.attrs:
            return StagedDataset(self, path, DatasetMeta.from_node(node), node, _user_attrs(node))
        return StagedGroup(self, path, node, _user_attrs(node))


@contextlib.contextmanager
def stage_version(tree: Tree, owner: Any, name: str, prev_version: str | None,
                  make_current: bool, timestamp: Any) -> Iterator[StagedGroup]:
    """What ``VersionedFile.stage_version`` does (see there)."""
    tree.check_writable()
    stage = tree.state.stage
    if stage is not None:
        raise VersionError(f"{tree.where}: version {stage.name!r} is already being staged "
                           f"(one stage at a time per file); end that block first")
    check_name(name)
    if name in tree.data["versions"]:
        raise VersionError(f"version {name!r} already exists in {tree.where}")
    prev = tree.current_version if prev_version is None else \
        FIRST_VERSION if prev_version == "" else prev_version
    if prev != FIRST_VERSION:
        tree.version_group(prev)
    stamp = parse_timestamp(timestamp) if timestamp is not None else None
    stage = Stage(tree, owner, name)
    base = tree.version_group(prev)["root"] if prev != FIRST_VERSION else None
    root = StagedGroup(stage, "/", base, _user_attrs(base) if base is not None else {})
    tree.state.stage = stage
    try:
        try:
            yield root
        except BaseException:
            stage.ended = "ended with an exception and was not committed"
            raise
        if stamp is None:
            stamp = dt.datetime.now(dt.timezone.utc)
        current = tree.current_version
        try:
            commit(tree, name, prev, root, stamp, make_current)
        except BaseException:
            stage.ended = "failed to commit (nothing of it was stored)"
            rollback(tree, name, current)
            raise
        stage.ended = "was committed"
    finally:
        if stage.ended is None:  # a generator closed without the block ending
            stage.ended = "was abandoned"
        if tree.state.stage is stage:
            tree.state.stage = None


def rollback(tree: Tree, name: str, current: str) -> None:
    """Undo a failed commit: through the journal for a file opened by path; else remove what
    the commit wrote, as far as possible."""
    if tree.journal is not None:
        tree.abort()
        return
    tree.state.clear_caches()
    versions = tree.data["versions"]
    if name in versions:
        del versions[name]
    tree.data.attrs["current_version"] = current
    rebuild_head(tree, current)  # the mirror may be half updated
    free_unused_chunks(tree)  # chunks the failed commit stored
    tree.file.flush()

def commit(tree: Tree, name: str, prev: str, root: StagedGroup, stamp: dt.datetime,
           make_current: bool) -> None:
    if make_current:
        check_mirror(tree, root if tree.current_version == prev else None)
    versions = tree.data["versions"]
    group = versions.create_group(name)
    group.attrs["prev_version"] = prev
    group.attrs["timestamp"] = stamp.strftime(TIMESTAMP_FORMAT)
    changed: list[str] = []
    written: dict[int, h5py.Group] = {}
    base_root = versions[prev]["root"] if prev != FIRST_VERSION else None
    write_group(tree, group, "root", root, base_root, changed, written)
    group.attrs["changed"] = json.dumps(changed)
    if make_current:
        old = tree.current_version
        tree.data.attrs["current_version"] = name
        if old == prev and tree.head_is(old):
            sync_head(tree, root, tree.root, "", changed)
        else:
            rebuild_head(tree, name)
        tree.data.attrs["head_version"] = name
    tree.commit_transaction()


def write_group(tree: Tree, parent: h5py.Group, name: str, staged: StagedGroup,
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
            write_group(tree, group, child_name, child, None, changed, written)
        else:
            write_dataset(tree, group, child_name, child, changed, written)


def write_dataset(tree: Tree, parent: h5py.Group, name: str, staged: StagedDataset,
                  changed: list[str], written: dict[int, h5py.Group]) -> None:
    if id(staged) in written:
        parent[name] = written[id(staged)]
        return
    if staged.base is not None and not staged.dirty:
        parent[name] = staged.base
        written[id(staged)] = staged.base
        return
    meta = staged.meta
    pool = tree.pool(meta)
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
    base_slots = read_map(staged.base, tree.state.map_cache) \
        if staged.base is not None else None
    node = write_node(parent, name, meta, slots, staged.base, base_slots, dict(staged.attrs))
    tree.state.map_cache[node.id] = slots
    written[id(staged)] = node
    changed.append(staged.name)


def check_name(name: Any) -> None:
    if not isinstance(name, str) or not name or "/" in name or name.startswith("__") or \
            name in (".", ".."):
        raise VersionError(f"version name {name!r} must be a non-empty string without '/' "
                           f"that does not start with '__'")
