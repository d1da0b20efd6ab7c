"""Give disk space back: rewrite a versioned file keeping only the chunks its versions use.

``delete_versions`` frees the chunk-pool slots no remaining version uses, and later commits
reuse them, but the pool datasets keep them allocated: the file does not shrink, and neither
does a plain ``h5forge repack`` (it copies the pools as they are). :func:`compact` (``h5forge
versions gc FILE``) writes the file again with

* every pool holding only its live slots, moved down in slot order (chunks are copied as
  stored bytes, without decompressing; variable-length strings value by value), the ``hashes``
  of those slots and an empty ``free`` list;
* every version's chunk maps (``map``) and deltas (``delta`` rows) renumbered to the new slots
  (an entry naming a freed slot is one every version overrides: it becomes ``-1``);
* everything else exactly as it was: the plain mirror of the current version, the version
  tree (hard links stay hard links, creation order is kept), attributes with their HDF5 types,
  soft and external links, and any plain data beside the versioned tree(s).

Crash safety: the new file is written aside (``.h5forge-gc-*`` in the same directory), checked
(unless ``verify=False``: every live chunk compared with the original's, and every version's
resolved chunk maps with the original's, renumbered), synced, then renamed over the original
in one step; the writer lock of the file is held throughout, so no commit can happen in
between. Killed at any point, the original file is intact (a partial ``.h5forge-gc-*`` copy
may be left to delete).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from h5forge import _h5
from h5forge._progress import progress_bar
from h5forge.errors import CorruptFileError, NodeExistsError, NodeNotFoundError, VersionError
from h5forge.versions.chunks import META, DatasetMeta, read_map
from h5forge.versions.file import DATA_GROUP
from h5forge.versions.journal import WriterLock, journal_path, recover
from h5forge.versions.pool import pool_key

__all__ = ["compact", "CompactSummary", "sync_path"]

#: Slots copied per read/write when chunks cannot be moved as stored bytes.
_BATCH = 256
#: Links created as h5py creates them (UTF-8 names).
_LCPL = h5py.h5p.create(h5py.h5p.LINK_CREATE)
_LCPL.set_char_encoding(h5py.h5t.CSET_UTF8)


@dataclass
class CompactSummary:
    """What :func:`compact` did."""

    path: str
    out: str
    bytes_before: int
    bytes_after: int
    #: chunk-pool slots before (live and freed) and after (live only), over all pools
    slots_before: int
    slots_after: int
    #: HDF5 paths of the versioned trees found (``/`` for a whole versioned file)
    trees: list[str]

    @property
    def freed(self) -> int:
        return self.bytes_before - self.bytes_after


def compact(path: _h5.PathLike, out: _h5.PathLike | None = None, *, overwrite: bool = False,
            verify: bool = True, progress: bool | None = None) -> CompactSummary:
    """Rewrite the versioned file ``path`` with only the chunks its versions use, so the disk
    space of deleted versions comes back. Every remaining version reads back byte for byte
    the same.

    ``out=None`` replaces ``path`` (written aside, then renamed over it); otherwise the compact
    copy goes to ``out`` (``overwrite=True`` to replace an existing file) and ``path`` is left
    as it is. The file must not be open for writing (the writer lock is taken: a second writer
    gets :class:`~h5forge.versions.journal.FileLockedError`); readers that have it open keep
    reading the old copy. ``verify`` compares every copied chunk and every version's chunk
    maps with the original before the rename; ``progress`` shows a bar (default: when stderr
    is a terminal).
    """
    if not _h5.is_path(path):
        raise _h5.TargetError(f"compact takes the path of a versioned file (the file is "
                              f"replaced), got {type(path).__name__}")
    source_path = os.fspath(path)
    if not os.path.isfile(source_path):
        raise NodeNotFoundError(f"{source_path}: no such file")
    target = source_path if out is None else os.fspath(out)
    in_place = os.path.abspath(target) == os.path.abspath(source_path)
    if not in_place and os.path.exists(target) and not overwrite:
        raise NodeExistsError(f"{target} exists; pass overwrite=True (--overwrite) to "
                              f"replace it")
    recover(source_path)  # a commit killed half-way: back to the last complete one first
    lock = WriterLock(source_path)  # no commit while we copy
    tmp = os.path.join(os.path.dirname(os.path.abspath(target)),
                       f".h5forge-gc-{uuid.uuid4().hex}-{os.path.basename(target)}")
    try:
        if os.path.exists(journal_path(source_path)):
            raise VersionError(f"{source_path}: a commit was interrupted while the lock was "
                               f"being taken; run the command again")
        before = os.path.getsize(source_path)
        with _h5.open_file(source_path, "r") as src:
            trees = _find_trees(src)
            if not trees:
                raise VersionError(f"{source_path} has no versions (no {DATA_GROUP} group); "
                                   f"use `h5forge repack` for plain files")
            tree_paths = [tree.parent.name for tree in trees]
            live = {tree.name: _live_slots(tree) for tree in trees}
            slots_before = sum(_pool_slots(p) for t in trees for p in t["pools"].values())
            total = sum(_live_bytes(t, live[t.name]) for t in trees)
            with progress_bar(total, f"compacting {os.path.basename(source_path)}",
                              progress) as bar:
                _write(src, tmp, live, bar)
            if verify:
                _verify(src, tmp, live)
        sync_path(tmp)
        os.replace(tmp, target)
        sync_path(os.path.dirname(os.path.abspath(target)))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        lock.release()
    return CompactSummary(
        path=source_path, out=target, bytes_before=before,
        bytes_after=os.path.getsize(target), slots_before=slots_before,
        slots_after=sum(len(s) for t in live.values() for s in t.values()),
        trees=tree_paths)


# -- what is live ---------------------------------------------------------------------------------
def _find_trees(root: h5py.Group) -> list[h5py.Group]:
    """Every ``_h5forge_versions`` group in the file (one per versioned tree)."""
    found: list[h5py.Group] = []
    seen: set = set()

    def walk(group: h5py.Group) -> None:
        for name in group:
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                continue
            obj = group[name]
            if not isinstance(obj, h5py.Group) or _address(obj) in seen:
                continue
            seen.add(_address(obj))
            if name == DATA_GROUP and "format" in obj.attrs and "pools" in obj and \
                    "versions" in obj:
                found.append(obj)
            else:
                walk(obj)

    walk(root)
    return found


def _address(obj: h5py.HLObject) -> tuple[int, int]:
    info = h5py.h5o.get_info(obj.id)
    return info.fileno, info.addr


def _node_pool(node: h5py.Group) -> str:
    meta = DatasetMeta.from_node(node)
    return meta.pool or pool_key(meta.dtype, meta.chunks, meta.compression,
                                 meta.compression_opts)


def _live_slots(tree: h5py.Group) -> dict[str, np.ndarray]:
    """Pool key -> the sorted slots some version's (resolved) chunk map uses."""
    used: dict[str, set[int]] = {key: set() for key in tree["pools"]}
    cache: dict = {}
    seen: set = set()

    def visit(node: h5py.Group) -> None:
        key = _address(node)
        if key in seen:
            return
        seen.add(key)
        if META in node.attrs:
            pool = _node_pool(node)
            if pool not in used:
                raise CorruptFileError(f"{node.file.filename}:{node.name}: its chunk pool "
                                       f"{pool!r} is missing")
            slots = read_map(node, cache)
            used[pool].update(int(s) for s in np.unique(slots) if s >= 0)
            return
        for name in node:
            visit(node[name])

    versions = tree["versions"]
    for name in versions:
        visit(versions[name]["root"])
    live = {}
    for key, slots in used.items():
        ordered = np.array(sorted(slots), dtype=np.int64)
        count = _pool_slots(tree["pools"][key])
        if len(ordered) and ordered[-1] >= count:
            raise CorruptFileError(f"{tree.file.filename}:{tree.name}/pools/{key}: a version "
                                   f"uses slot {int(ordered[-1])} of a pool of {count}")
        live[key] = ordered
    return live


def _pool_slots(pool: h5py.Group) -> int:
    return int(pool["hashes"].shape[0])


def _slot_rows(pool: h5py.Group) -> int:
    chunks = json.loads(pool.attrs["pool"])["chunks"]
    return int(chunks[0]) if chunks else 1


def _live_bytes(tree: h5py.Group, live: dict[str, np.ndarray]) -> int:
    total = 0
    for key, slots in live.items():
        data = tree["pools"][key]["data"]
        total += len(slots) * _slot_rows(tree["pools"][key]) * \
            int(np.prod(data.shape[1:], dtype=np.int64)) * data.dtype.itemsize
    return total


# -- writing the compact copy ---------------------------------------------------------------------
def _write(src: h5py.File, tmp: str, live: dict[str, dict[str, np.ndarray]], bar: Any) -> None:
    gcpl = h5py.h5g.open(src.id, b".").get_create_plist()
    userblock = src.userblock_size
    # The format the file was written in (h5py reports the bounds it was opened with, not
    # those): a file written with libver="latest" has superblock 3 and compact new-style
    # groups, which the copy must keep (old-style groups take more space).
    superblock = src.id.get_create_plist().get_version()[0]
    low = "earliest" if superblock < 2 else "v108" if superblock == 2 else "v110"
    with h5py.File(tmp, "w", libver=(low, "latest"), userblock_size=userblock,
                   track_order=bool(gcpl.get_link_creation_order())) as dst:
        copier = _Copier(live, bar)
        copier.memo[_address(src)] = dst
        copier.attrs(src, dst)
        copier.members(src, dst, tree=None)
    if userblock:  # bytes before the HDF5 data, which HDF5 leaves to the application
        with open(src.filename, "rb") as old, open(tmp, "r+b") as new:
            new.write(old.read(userblock))


class _Copier:
    """Copies a file object by object, exactly, except the pools and chunk maps of versioned
    trees, which it compacts."""

    def __init__(self, live: dict[str, dict[str, np.ndarray]], bar: Any):
        self.live = live
        self.bar = bar
        self.memo: dict[tuple[int, int], h5py.HLObject] = {}
        # per tree: pool key -> old slot -> new slot (-1: freed)
        self.remaps: dict[str, dict[str, np.ndarray]] = {}

    def members(self, src: h5py.Group, dst: h5py.Group, tree: str | None) -> None:
        for name in src:  # creation order where the group tracks it
            link = src.get(name, getlink=True)
            if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
                dst[name] = link
                continue
            obj = src[name]
            done = self.memo.get(_address(obj))
            if done is not None:
                dst[name] = done  # a second hard link to an object already copied
                continue
            if isinstance(obj, h5py.Group):
                if name == DATA_GROUP and obj.name in self.live:
                    self.tree(obj, dst, name)
                    continue
                self.group(obj, dst, name, tree)
            else:
                self.dataset(obj, src, dst, name, tree)

    def group(self, obj: h5py.Group, dst: h5py.Group, name: str, tree: str | None) -> h5py.Group:
        gid = h5py.h5g.create(dst.id, name.encode(), lcpl=_LCPL, gcpl=_gcpl(obj))
        new = h5py.Group(gid)
        self.memo[_address(obj)] = new
        self.attrs(obj, new)
        self.members(obj, new, tree)
        return new

    def dataset(self, obj: h5py.HLObject, parent: h5py.Group, dst: h5py.Group, name: str,
                tree: str | None) -> None:
        if isinstance(obj, h5py.Dataset) and _has_refs(obj.dtype):
            raise VersionError(f"{obj.file.filename}:{obj.name}: holds object references, "
                               f"which a compacted copy cannot keep")
        h5py.h5o.copy(parent.id, name.encode(), dst.id, name.encode(), lcpl=_LCPL)
        new = dst[name]
        self.memo[_address(obj)] = new
        if tree is not None and name in ("map", "delta") and META in parent.attrs:
            self.renumber(parent, obj, new, tree, delta=name == "delta")

    def renumber(self, node: h5py.Group, old: h5py.Dataset, new: h5py.Dataset, tree: str,
                 delta: bool) -> None:
        """Point a copied chunk map (or delta rows) at the new slots."""
        remap = self.remaps[tree].get(_node_pool(node))
        if remap is None:
            raise CorruptFileError(f"{node.file.filename}:{node.name}: its chunk pool is "
                                   f"missing")
        values = old[()].astype(np.int64)
        if not values.size:
            return
        slots = values[..., 1] if delta else values
        if slots.size and int(slots.max()) >= len(remap):
            raise CorruptFileError(f"{node.file.filename}:{old.name}: slot "
                                   f"{int(slots.max())} is past the end of its pool")
        renumbered = _renumbered(slots, remap)
        if delta:
            values[..., 1] = renumbered
        else:
            values = renumbered
        new[...] = values.astype(new.dtype)

    def tree(self, data: h5py.Group, dst: h5py.Group, name: str) -> None:
        """A ``_h5forge_versions`` group: compact pools first, then the renumbered versions."""
        gid = h5py.h5g.create(dst.id, name.encode(), lcpl=_LCPL, gcpl=_gcpl(data))
        new = h5py.Group(gid)
        self.memo[_address(data)] = new
        self.attrs(data, new)
        live = self.live[data.name]
        self.remaps[data.name] = {}
        source = data["pools"]  # first: the versions' chunk maps are renumbered as copied
        pools = h5py.Group(h5py.h5g.create(new.id, b"pools", lcpl=_LCPL, gcpl=_gcpl(source)))
        self.memo[_address(source)] = pools
        self.attrs(source, pools)
        for key in source:
            self.remaps[data.name][key] = self.pool(source[key], pools, key, live[key])
        for member in data:  # versions (and anything a later format adds)
            obj = data[member]
            if member == "pools":
                continue
            if isinstance(obj, h5py.Group):
                self.group(obj, new, member, data.name)
            else:
                self.dataset(obj, data, new, member, data.name)

    def pool(self, pool: h5py.Group, dst: h5py.Group, key: str, live: np.ndarray) -> np.ndarray:
        """Copy the live slots of one pool down to 0..n-1; return old slot -> new slot."""
        group = h5py.Group(h5py.h5g.create(dst.id, key.encode(), lcpl=_LCPL, gcpl=_gcpl(pool)))
        self.memo[_address(pool)] = group
        self.attrs(pool, group)
        rows = _slot_rows(pool)
        data = pool["data"]
        new_data = _empty_like(data, group, "data", len(live) * rows)
        self.copy_slots(data, new_data, live, rows)
        hashes = _empty_like(pool["hashes"], group, "hashes", len(live))
        if len(live):
            hashes[...] = pool["hashes"][()][live]
        _empty_like(pool["free"], group, "free", 0)
        for name in pool:
            if name not in ("data", "hashes", "free"):  # nothing else today; keep it if any
                self.dataset(pool[name], pool, group, name, None)
        remap = np.full(_pool_slots(pool), -1, dtype=np.int64)
        remap[live] = np.arange(len(live), dtype=np.int64)
        return remap

    def copy_slots(self, data: h5py.Dataset, new: h5py.Dataset, live: np.ndarray,
                   rows: int) -> None:
        slot_shape = (rows,) + data.shape[1:]
        itembytes = int(np.prod(slot_shape, dtype=np.int64)) * data.dtype.itemsize
        if data.chunks == slot_shape and not data.dtype.hasobject:
            zeros = (0,) * (data.ndim - 1)
            src_id, dst_id = data.id, new.id
            for j, slot in enumerate(live.tolist()):
                try:
                    mask, raw = src_id.read_direct_chunk((slot * rows,) + zeros)
                except (KeyError, OSError, ValueError):  # not allocated: copy the values
                    new[j * rows:(j + 1) * rows] = data[slot * rows:(slot + 1) * rows]
                else:
                    dst_id.write_direct_chunk((j * rows,) + zeros, raw, mask)
                self.bar.update(itembytes)
            return
        # value by value: variable-length items (heap references are per file), or a pool
        # whose HDF5 chunks are not one per slot
        j = 0
        for start, stop in _runs(live):
            for first in range(start, stop, _BATCH):
                last = min(first + _BATCH, stop)
                new[j * rows:(j + last - first) * rows] = data[first * rows:last * rows]
                j += last - first
                self.bar.update(itembytes * (last - first))

    def attrs(self, src: h5py.HLObject, dst: h5py.HLObject) -> None:
        """Copy attributes with their exact HDF5 type and shape."""
        for name in src.attrs:
            aid = src.attrs.get_id(name)
            if _has_refs(aid.dtype):
                raise VersionError(f"{src.file.filename}:{src.name}: attribute {name!r} holds "
                                   f"object references, which a compacted copy cannot keep")
            encoded = name.encode("utf-8")
            new = h5py.h5a.create(dst.id, encoded, aid.get_type(), aid.get_space())
            if aid.get_space().get_simple_extent_type() != h5py.h5s.NULL:
                buf = np.empty(aid.shape, dtype=aid.dtype)
                aid.read(buf)
                new.write(buf)


def _renumbered(slots: np.ndarray, remap: np.ndarray) -> np.ndarray:
    """``slots`` with every stored slot replaced by its new number (``-1`` stays ``-1``)."""
    out = np.full(slots.shape, -1, dtype=np.int64)
    stored = slots >= 0
    out[stored] = remap[slots[stored]]
    return out


def _gcpl(group: h5py.Group) -> h5py.h5p.PropGCID:
    """Fresh group creation properties with ``group``'s link and attribute order tracking
    and time stamping (a source's own property list cannot be reused in another file)."""
    old = group.id.get_create_plist()
    new = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    new.set_link_creation_order(old.get_link_creation_order())
    new.set_attr_creation_order(old.get_attr_creation_order())
    new.set_attr_phase_change(*old.get_attr_phase_change())
    new.set_obj_track_times(old.get_obj_track_times())
    return new


def _has_refs(dtype: np.dtype) -> bool:
    if h5py.check_ref_dtype(dtype) is not None:
        return True
    if dtype.names:
        return any(_has_refs(dtype.fields[n][0]) for n in dtype.names)
    if dtype.subdtype is not None:
        return _has_refs(dtype.subdtype[0])
    return False


def _empty_like(src: h5py.Dataset, group: h5py.Group, name: str, rows: int) -> h5py.Dataset:
    """A dataset with ``src``'s type, creation properties (chunks, filters, fill value) and
    maximum shape, ``rows`` long."""
    shape = (rows,) + src.shape[1:]
    maxshape = tuple(h5py.h5s.UNLIMITED if m is None else m for m in src.maxshape)
    space = h5py.h5s.create_simple(shape, maxshape)
    dsid = h5py.h5d.create(group.id, name.encode(), src.id.get_type(), space,
                           dcpl=src.id.get_create_plist())
    return h5py.Dataset(dsid)


def _runs(slots: np.ndarray) -> list[tuple[int, int]]:
    """Sorted slots as ``(start, stop)`` runs of consecutive numbers."""
    if not len(slots):
        return []
    breaks = np.flatnonzero(np.diff(slots) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(slots)]])
    return [(int(slots[a]), int(slots[b - 1]) + 1) for a, b in zip(starts, stops)]


# -- checking the copy before it replaces the original --------------------------------------------
def _verify(src: h5py.File, tmp: str, live: dict[str, dict[str, np.ndarray]]) -> None:
    """The copy holds every version of the original: the same versions in the same order,
    every live chunk equal to the original's, slot for slot (values compared), and every
    version's resolved chunk maps naming the new slots of the same chunks."""
    with h5py.File(tmp, "r") as out:
        for tree, pools in live.items():
            _verify_maps(src[tree], out[tree], pools, tmp)
            for key, slots in pools.items():
                old = src[tree]["pools"][key]
                new = out[tree]["pools"][key]
                rows = _slot_rows(old)
                j = 0
                for start, stop in _runs(slots):
                    for first in range(start, stop, _BATCH):
                        last = min(first + _BATCH, stop)
                        a = old["data"][first * rows:last * rows]
                        b = new["data"][j * rows:(j + last - first) * rows]
                        if not _same_values(a, b):
                            raise CorruptFileError(f"{tmp}: the compacted copy of "
                                                   f"{tree}/pools/{key} differs from the "
                                                   f"original; {src.filename} was not "
                                                   f"changed")
                        j += last - first


def _verify_maps(old: h5py.Group, new: h5py.Group, live: dict[str, np.ndarray],
                 tmp: str) -> None:
    def bad(what: str) -> CorruptFileError:
        return CorruptFileError(f"{tmp}: the compacted copy of {old.name} {what}; "
                                f"{old.file.filename} was not changed")

    remaps = {}
    for key, slots in live.items():
        remap = np.full(_pool_slots(old["pools"][key]), -1, dtype=np.int64)
        remap[slots] = np.arange(len(slots), dtype=np.int64)
        remaps[key] = remap
    if list(old["versions"]) != list(new["versions"]):
        raise bad("lists other versions")
    caches: tuple[dict, dict] = ({}, {})
    seen: set = set()

    def walk(a: h5py.Group, b: h5py.Group, where: str) -> None:
        if _address(a) in seen:
            return
        seen.add(_address(a))
        if META in a.attrs:
            slots = read_map(a, caches[0])
            expected = _renumbered(slots, remaps[_node_pool(a)])
            got = read_map(b, caches[1])
            if META not in b.attrs or a.attrs[META] != b.attrs[META] or \
                    got.shape != expected.shape or not np.array_equal(got, expected):
                raise bad(f"maps the chunks of {where} differently")
            return
        if list(a) != list(b):
            raise bad(f"has other members in {where}")
        for name in a:
            walk(a[name], b[name], f"{where}/{name}")

    for version in old["versions"]:
        walk(old["versions"][version]["root"], new["versions"][version]["root"], version)


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.hasobject:
        return all(type(x) is type(y) and x == y for x, y in zip(a.ravel(), b.ravel()))
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def sync_path(path: str) -> None:
    """fsync a file or directory (before and after a rename that must survive a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
