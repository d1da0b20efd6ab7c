"""Packed trees: a nest of small plain data (a config) as a few tables, not one object per node.

Every HDF5 object costs tens of microseconds to create and to read back, so a config-like nest
of 2,000 dicts, lists, numbers and small arrays stored one group, dataset or attribute per node
was 50x slower than pickle. A dict, list or tuple whose whole subtree is plain data (None,
bool, int within int64, float, complex, str, small numeric arrays, and dicts with str keys,
lists and tuples of those) and that holds enough nested containers is stored instead as one
group with ``layout`` = ``tree`` holding a node table and one value table per type (format 3,
docs/FORMAT.md "Packed trees"). It stays plain HDF5: h5py reads every table as is.

What is not plain data (a user object, a numpy scalar, a big array, a long list, a shared or
cyclic reference), and a list of many same-keyed dicts (a records table), keeps the container
out of the tree; its plain sub-containers are packed on
their own, so big data always keeps its own dataset and path.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from h5forge.errors import CorruptFileError
from h5forge.store.decoder import Stored, open_child
from h5forge.store.encoder import Encoder, is_identity_free, is_plain_text
from h5forge.store.layout import NAMED_KEYS_MAX, TREE_LAYOUT, Node
from h5forge.store.packing import pack_scalars, unpack_column

__all__ = ["TREE_LAYOUT", "TREE_MIN_CONTAINERS", "TREE_ITEMS_MAX", "TREE_ARRAY_MAX",
           "TREE_ARRAY_RANK", "TREE_RECORDS_MIN", "TREE_CODES", "pack_tree", "is_tree",
           "unpack_tree", "member_at"]

#: A plain container is packed when its subtree holds at least this many nested containers
#: (dicts, lists, tuples, arrays): fewer are cheaper as their own small nodes.
TREE_MIN_CONTAINERS = 4
#: Lists, tuples and dicts of more scalars than this (and no container) keep their own layout
#: (one packed dataset, or a dict's keys and values lists), and so do the containers holding
#: them.
TREE_ITEMS_MAX = 512
#: Lists and tuples of at least this many dicts with the same keys keep their records table
#: (so do the values of a dict of more than NAMED_KEYS_MAX keys).
TREE_RECORDS_MIN = 16
#: Arrays of more elements than this keep their own dataset, where h5py users see them as data
#: (and plans chunk and compress them); smaller ones are parameters, as short lists are.
TREE_ARRAY_MAX = 64
#: Arrays of more dimensions than this keep their own dataset.
TREE_ARRAY_RANK = 4
#: Class name -> code in the ``class`` column of ``nodes`` (an HDF5 enum; the scalar codes are
#: those of the mixed tables).
TREE_CODES = {"NoneType": 0, "bool": 1, "int": 2, "float": 3, "complex": 4, "str": 5,
              "dict": 6, "list": 7, "tuple": 8, "numpy.ndarray": 9}

_NONE, _BOOL, _INT, _FLOAT, _COMPLEX, _STR, _DICT, _LIST, _TUPLE, _ARRAY = range(10)
_SCALAR_CODES = {bool: _BOOL, int: _INT, float: _FLOAT, complex: _COMPLEX, str: _STR}
_VALUE_TABLES = {_BOOL: "bool", _INT: "int", _FLOAT: "float", _COMPLEX: "complex", _STR: "str"}
_CONTAINER_CODES = {dict: _DICT, list: _LIST, tuple: _TUPLE}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NODES_DTYPE = np.dtype([("parent", np.int32), ("key", np.int32),
                         ("class", h5py.enum_dtype(TREE_CODES, basetype=np.uint8)),
                         ("index", np.int64)])
_DTYPE_NAME = h5py.string_dtype("ascii", 16)
_ARRAYS_DTYPE = np.dtype([("dtype", _DTYPE_NAME), ("start", np.int64), ("ndim", np.uint8),
                          ("shape", np.int64, (TREE_ARRAY_RANK,))])
_ARRAY_KINDS = "biufc"


# -- which containers are packed ------------------------------------------------------------------
def _packable_array(arr: np.ndarray) -> bool:
    dtype = arr.dtype
    return (dtype.kind in _ARRAY_KINDS and dtype.isnative and dtype.names is None
            and dtype.shape == () and arr.size <= TREE_ARRAY_MAX
            and arr.ndim <= TREE_ARRAY_RANK and (arr.ndim < 2 or arr.flags.c_contiguous))


def _scan(obj: Any, memo: dict[int, tuple[Any, int]], active: set[int]) -> int:
    """Nested containers (dicts, lists, tuples, arrays) below container ``obj`` when its whole
    subtree is plain data, else -1. Results are kept in ``memo`` (one dump scans each container
    once, whichever ancestor asks first); ``active`` holds the containers being scanned, so a
    cycle ends the scan (-1) instead of recursing forever."""
    key = id(obj)
    hit = memo.get(key)
    if hit is not None and hit[0] is obj:
        return hit[1]
    if key in active:
        return -1
    if type(obj) is dict:
        if not all(type(k) is str and is_plain_text(k) for k in obj):
            memo[key] = (obj, -1)
            return -1
        members = obj.values()
        # only past NAMED_KEYS_MAX keys do a dict's values become one records table
        records = len(obj) > NAMED_KEYS_MAX and _records(members)
    else:
        members = obj
        records = _records(members)
    if records:
        memo[key] = (obj, -1)
        return -1
    active.add(key)
    total = 0
    try:
        for value in members:
            tp = type(value)
            if tp in _SCALAR_CODES or value is None:
                if (tp is int and not _INT64_MIN <= value <= _INT64_MAX) or \
                        (tp is str and not is_plain_text(value)):
                    total = -1
                    break
            elif tp is np.ndarray:
                if not _packable_array(value):
                    total = -1
                    break
                total += 1
            elif tp in _CONTAINER_CODES:
                below = _scan(value, memo, active)
                if below < 0:
                    total = -1
                    break
                total += 1 + below
            else:
                total = -1
                break
    finally:
        active.discard(key)
    if total == 0 and len(obj) > TREE_ITEMS_MAX:
        total = -1  # a long run of scalars: one packed dataset (or inline attributes) of its own
    memo[key] = (obj, total)
    return total


def _records(members: Any) -> bool:
    """Whether ``members`` (a list's items, the values of a dict of many keys) are many dicts
    with the same keys and no container values: a records table (one compound dataset, a
    column per key, appends in place) serves them better than tree rows."""
    if len(members) < TREE_RECORDS_MIN:
        return False
    it = iter(members)
    first = next(it)
    if type(first) is not dict:
        return False
    keys = tuple(first)
    if not all(type(item) is dict and tuple(item) == keys for item in it):
        return False
    # a field holding lists or dicts is no table column: such records are tree rows
    return not any(type(v) in _CONTAINER_CODES for item in members for v in item.values())


def pack_tree(enc: Encoder, codec: Any, obj: dict | list | tuple, where: str) -> Node | None:
    """The packed-tree node for plain container ``obj`` (a dict, list or tuple of those exact
    types), or None when it is not plain data all the way down, holds fewer than
    :data:`TREE_MIN_CONTAINERS` nested containers, or shares an object with another place
    (which then keeps its own node, so the sharing is kept)."""
    if not enc.pack_trees or type(obj) not in _CONTAINER_CODES:
        return None
    if _scan(obj, enc.tree_scans, set()) < TREE_MIN_CONTAINERS:
        return None
    columns = _Columns()
    members = columns.add_members(obj)
    if not enc.may_pack(obj, members):
        return None  # shared inside or with what was encoded before: nodes and hard links
    node = Node("group", {"class": type(obj).__name__, "layout": TREE_LAYOUT}, members={})
    for name, data, h5dtype in columns.tables():
        node.add(name, Node("dataset", {}, data=data, h5dtype=h5dtype))
    enc.claim_packed(node, obj, codec, where, members)
    return node


class _Columns:
    """The tables of one packed tree, filled in pre-order (every container before its
    members, the members in order)."""

    def __init__(self):
        self.parent: list[int] = []
        self.key: list[int] = []
        self.code: list[int] = []
        self.index: list[int] = []
        self.keys: dict[str, int] = {}
        self.values: dict[int, list[Any]] = {c: [] for c in _VALUE_TABLES}
        self.arrays: list[np.ndarray] = []

    def add_members(self, root: Any) -> list[Any]:
        """Add every node below ``root``; the containers and arrays met (for the encoder's
        sharing checks)."""
        met: list[Any] = []
        stack = self._children(root, -1)
        parent, key, code, index, values = self.parent, self.key, self.code, self.index, \
            self.values
        while stack:
            value, up, name = stack.pop()
            row = len(parent)
            parent.append(up)
            key.append(-1 if name is None else self.keys.setdefault(name, len(self.keys)))
            tp = type(value)
            if value is None:
                code.append(_NONE)
                index.append(-1)
            elif tp in _SCALAR_CODES:
                c = _SCALAR_CODES[tp]
                column = values[c]
                code.append(c)
                index.append(len(column))
                column.append(value)
            elif tp is np.ndarray:
                met.append(value)
                code.append(_ARRAY)
                index.append(len(self.arrays))
                self.arrays.append(value)
            else:
                if not is_identity_free(value):
                    met.append(value)
                code.append(_CONTAINER_CODES[tp])
                index.append(len(value))
                stack.extend(self._children(value, row))
        return met

    @staticmethod
    def _children(container: Any, row: int) -> list[tuple[Any, int, str | None]]:
        if type(container) is dict:
            return [(v, row, k) for k, v in reversed(container.items())]
        return [(v, row, None) for v in reversed(container)]

    def tables(self) -> list[tuple[str, Any, Any]]:
        """(dataset name, data, HDF5 dtype or None) for every non-empty table."""
        nodes = np.empty(len(self.parent), dtype=_NODES_DTYPE)
        nodes["parent"], nodes["key"] = self.parent, self.key
        nodes["class"], nodes["index"] = self.code, self.index
        out: list[tuple[str, Any, Any]] = [("nodes", nodes, None)]
        if self.keys:
            out.append(("keys", *_strings(list(self.keys))))
        for c, name in _VALUE_TABLES.items():
            column = self.values[c]
            if column:
                data, h5dtype, _ = pack_scalars(column)  # one type each: never a mixed table
                out.append((name, data, h5dtype))
        if self.arrays:
            out.extend(self._array_tables())
        return out

    def _array_tables(self) -> list[tuple[str, Any, Any]]:
        table = np.zeros(len(self.arrays), dtype=_ARRAYS_DTYPE)
        pools: dict[str, list[np.ndarray]] = {}
        sizes: dict[str, int] = {}
        for i, arr in enumerate(self.arrays):
            name = arr.dtype.name
            start = sizes.get(name, 0)
            pools.setdefault(name, []).append(arr.reshape(-1))
            sizes[name] = start + arr.size
            row = table[i]
            row["dtype"], row["start"], row["ndim"] = name.encode("ascii"), start, arr.ndim
            row["shape"][:arr.ndim] = arr.shape
        out: list[tuple[str, Any, Any]] = [("arrays", table, None)]
        for name, parts in pools.items():
            out.append((f"array_{name}", np.concatenate(parts), None))
        return out


def _strings(values: list[str]) -> tuple[np.ndarray, Any]:
    data, h5dtype, _ = pack_scalars(values)  # plain text: checked by the scan
    return data, h5dtype


# -- loading --------------------------------------------------------------------------------------
def member_at(value: Any, parts: list[str]) -> Any:
    """The member at ``parts`` (dict keys, list and tuple indexes) of a loaded packed tree;
    :class:`KeyError` with the number of parts found when one is missing."""
    for depth, part in enumerate(parts):
        if type(value) is dict and part in value:
            value = value[part]
        elif type(value) in (list, tuple) and part.isascii() and part.isdigit() and \
                int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(depth)
    return value


def is_tree(attrs: Any) -> bool:
    """Whether a group with these attributes is a packed tree."""
    layout = attrs.get("layout")
    if isinstance(layout, bytes):
        layout = layout.decode("utf-8", "replace")
    return layout == TREE_LAYOUT


def unpack_tree(stored: Stored) -> dict | list | tuple:
    """The dict, list or tuple a packed tree group holds (every table checked first: a table
    that breaks the layout raises :class:`CorruptFileError` naming it). Nothing inside a tree
    is shared or refers back out of it, so no member needs the decoder's memo."""
    root_class = stored.class_name
    if root_class not in ("dict", "list", "tuple"):
        raise CorruptFileError(f"{stored.path}: a packed tree must be a dict, list or tuple, "
                               f"not {root_class!r}")
    tables = _Tables(stored)
    nodes = tables.read("nodes", required=True)
    if nodes.dtype.names is None or not {"parent", "key", "class", "index"} <= set(
            nodes.dtype.names) or nodes.ndim != 1:
        raise CorruptFileError(f"{stored.child_path('nodes')}: needs a 1-D table with fields "
                               f"parent, key, class and index")
    parent = nodes["parent"].astype(np.int64)
    key = nodes["key"].astype(np.int64)
    code = nodes["class"].astype(np.int64)
    index = nodes["index"].astype(np.int64)
    n = len(nodes)
    _check(stored, parent < np.arange(n), "parent", "refers to a later row")
    _check(stored, parent >= -1, "parent", "is below -1")
    _check(stored, (code >= 0) & (code <= _ARRAY), "class", "is not a known class")
    keys = tables.strings("keys")
    _check(stored, (key >= -1) & (key < len(keys)), "key", f"is outside the {len(keys)} keys")
    values: dict[int, list[Any]] = {}
    for c, name in _VALUE_TABLES.items():
        rows = code == c
        column = tables.column(name, c) if rows.any() or name in tables.names else []
        _check(stored, ~rows | ((index >= 0) & (index < len(column))), "index",
               f"is outside table {name!r} ({len(column)} rows)")
        values[c] = column
    arrays = tables.arrays() if (code == _ARRAY).any() or "arrays" in tables.names else []
    _check(stored, (code != _ARRAY) | ((index >= 0) & (index < len(arrays))), "index",
           f"is outside table 'arrays' ({len(arrays)} rows)")
    root: Any = {} if root_class == "dict" else []
    objs = _build(stored, root, parent.tolist(), key.tolist(), code.tolist(), index.tolist(),
                  keys, values, arrays)
    counts = np.bincount(parent + 1, minlength=n + 1)
    lengths = [len(root)] + [len(o) if o is not None else 0 for o in objs]
    containers = np.array([True] + [o is not None for o in objs])
    if not np.array_equal(np.array(lengths)[containers], counts[containers]):
        raise CorruptFileError(f"{stored.path}: a dict of this packed tree has the same key "
                               f"twice")
    return tuple(root) if root_class == "tuple" else root


def _build(stored: Stored, root: Any, parent: list[int], key: list[int], code: list[int],
           index: list[int], keys: list[str], values: dict[int, list[Any]],
           arrays: list[np.ndarray]) -> list[Any]:
    """Fill ``root`` from the rows; the container made for each row (None for leaves). Tuples
    are built as lists, then turned into tuples from the last row up (members first)."""
    objs: list[Any] = [None] * len(parent)
    tuples: list[tuple[int, Any, Any]] = []  # (row, container, position)
    for row in range(len(parent)):
        c = code[row]
        if c == _NONE:
            value = None
        elif c <= _STR:
            value = values[c][index[row]]
        elif c == _ARRAY:
            value = arrays[index[row]].copy()
        else:
            value = {} if c == _DICT else []
            objs[row] = value
        up = parent[row]
        container = root if up < 0 else objs[up]
        if container is None:
            raise CorruptFileError(f"{stored.child_path('nodes')}: row {row}'s parent "
                                   f"{up} is not a dict, list or tuple")
        k = key[row]
        if type(container) is dict:
            if k < 0:
                raise CorruptFileError(f"{stored.child_path('nodes')}: row {row} is a member "
                                       f"of a dict but has no key")
            position = keys[k]
            container[position] = value
        else:
            if k >= 0:
                raise CorruptFileError(f"{stored.child_path('nodes')}: row {row} is an item "
                                       f"of a list but has a key")
            position = len(container)
            container.append(value)
        if c == _TUPLE:
            tuples.append((row, container, position))
    for row, container, position in reversed(tuples):
        container[position] = tuple(objs[row])
    return objs


def _check(stored: Stored, ok: np.ndarray, field: str, what: str) -> None:
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise CorruptFileError(f"{stored.child_path('nodes')}: row {row}'s {field} {what}; "
                               f"this packed tree is damaged")


class _Tables:
    """The datasets of one packed tree group, read whole."""

    def __init__(self, stored: Stored):
        self.stored = stored
        self.names = set(stored.children())

    def read(self, name: str, required: bool = False) -> np.ndarray | None:
        if name not in self.names:
            if required:
                raise CorruptFileError(f"{self.stored.child_path(name)}: missing; a packed "
                                       f"tree needs it")
            return None
        ds = open_child(self.stored, name)
        if not isinstance(ds, h5py.Dataset):
            raise CorruptFileError(f"{self.stored.child_path(name)}: a packed tree's table "
                                   f"must be a dataset")
        return ds[()]

    def strings(self, name: str) -> list[str]:
        data = self.read(name)
        if data is None:
            return []
        if data.ndim != 1 or h5py.check_string_dtype(data.dtype) is None and data.dtype.kind \
                not in "OS":
            raise CorruptFileError(f"{self.stored.child_path(name)}: needs 1-D strings")
        return unpack_column(data, "str")

    def column(self, name: str, code: int) -> list[Any]:
        if code == _STR:
            return self.strings(name)
        data = self.read(name)
        if data is None:
            return []
        want = {_BOOL: "b", _INT: "iu", _FLOAT: "f", _COMPLEX: "c"}[code]
        if data.ndim != 1 or data.dtype.kind not in want:
            raise CorruptFileError(f"{self.stored.child_path(name)}: needs 1-D {name} values, "
                                   f"found {data.dtype} {data.shape}")
        return data.tolist()

    def arrays(self) -> list[np.ndarray]:
        table = self.read("arrays")
        where = self.stored.child_path("arrays")
        if table is None or table.dtype.names is None or \
                not {"dtype", "start", "ndim", "shape"} <= set(table.dtype.names):
            raise CorruptFileError(f"{where}: needs a table with fields dtype, start, ndim and "
                                   f"shape")
        pools: dict[str, np.ndarray] = {}
        out = []
        for row in table:
            name = row["dtype"].decode("ascii", "replace") if isinstance(row["dtype"], bytes) \
                else str(row["dtype"])
            if name not in pools:
                data = self.read(f"array_{name}")
                if data is None or data.ndim != 1 or data.dtype.name != name:
                    raise CorruptFileError(f"{self.stored.child_path('array_' + name)}: "
                                           f"missing or not 1-D {name} data")
                pools[name] = data
            ndim = int(row["ndim"])
            if ndim > TREE_ARRAY_RANK:
                raise CorruptFileError(f"{where}: an array of {ndim} dimensions (at most "
                                       f"{TREE_ARRAY_RANK})")
            shape = tuple(int(s) for s in row["shape"][:ndim])
            start, size = int(row["start"]), int(np.prod(shape, dtype=np.int64))
            pool = pools[name]
            if min(shape, default=0) < 0 or start < 0 or start + size > len(pool):
                raise CorruptFileError(f"{where}: an array of shape {shape} at {start} is "
                                       f"outside array_{name} ({len(pool)} values)")
            out.append(pool[start:start + size].reshape(shape))
        return out
