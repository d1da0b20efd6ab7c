"""In-place updates of stored trees: add, replace, append and delete one member.

``dump(value, target, "a/b/key")`` into a stored container, ``append(value, target, "xs")``
and ``delete(target, "a/b/key")`` change one member and keep the container's metadata (the
``keys`` attribute of a dict, the ``0..n-1`` names of a list) consistent with its members, so
the tree loads as if it had been dumped whole with the change.

Every update is planned first: the path is resolved, the new value encoded and every check
made before anything is written (an update the layout cannot express raises
:class:`UpdateError` naming the path). Writing then follows "write aside, then swap": a new
member node is written under a temporary name and moved into place only when complete; the
container's metadata changes last, and the file is flushed. A crash at any point leaves a tree
that loads (at worst with a :class:`~h5forge.store.members.MemberMismatchWarning` naming the
member that was being changed).

How each layout is updated (see docs/FORMAT.md, "Updating stored trees"):

* a dict (named members): the member is written, rewritten or removed, then ``keys``;
* a dict with non-string keys (``layout`` = items): a string key is looked up in its ``keys``
  list; other keys are addressed by position as ``values/<i>``;
* a list / tuple / deque stored as a group: member ``i`` is replaced, ``n`` appended, and a
  deletion renames the members after it;
* a list packed into one dataset: a value of the same kind is written into its row in place
  (appended in place once the dataset is extendable); anything else rewrites the list (aside,
  then swapped), unpacking it when the new value no longer fits the table;
* an inline member (an attribute): rewritten as an attribute, or as a node if it no longer fits;
* a packed tree (a nest of plain data as a few tables): rewritten whole with the change (aside,
  then swapped), packed again when it still is plain data.
"""

from __future__ import annotations

import collections
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import h5py
import numpy as np

from h5forge import _h5
from h5forge.errors import (
    CodecError,
    H5ForgeError,
    NodeExistsError,
    NodeNotFoundError,
    UpdateError,
)
from h5forge.store.attributes import attr_or_none as _attr
from h5forge.store.attributes import write_attr
from h5forge.store.decoder import Decoder, inline_value
from h5forge.store.encoder import Encoder
from h5forge.store.layout import (
    FORMAT_VERSION,
    READABLE_FORMATS,
    RESERVED_ATTRIBUTES,
    TREE_LAYOUT,
    Node,
)
from h5forge.store.members import TMP_PREFIX, keys_list, mapping_order, sequence_order
from h5forge.store.packing import MIXED, mixed_row, pack_scalars, record_row
from h5forge.store.writer import DatasetOptions, write_node

__all__ = ["plan_set", "plan_append", "plan_delete", "Update", "MAPPINGS", "SEQUENCES"]

#: Stored classes whose members can be added, replaced and deleted by name.
MAPPINGS = frozenset({"dict", "collections.OrderedDict", "collections.defaultdict"})
#: Stored classes whose items can be replaced, appended and deleted by index.
SEQUENCES = frozenset({"list", "tuple", "collections.deque"})
_SETS = frozenset({"set", "frozenset"})
INSTANCE_ATTRIBUTES = "instance_attributes"


# -- what an update does ------------------------------------------------------------------------
@dataclass
class Update:
    """A planned update: ``steps`` run in order by :meth:`apply` (all checks are done)."""

    where: str
    steps: list[Callable[[], None]] = field(default_factory=list)
    file: h5py.File | None = None

    def apply(self) -> None:
        for step in self.steps:
            step()
        if self.file is not None:
            self.file.flush()


class _Ctx:
    """Settings of one update: the base group, encoder options and dataset options."""

    def __init__(self, base: h5py.Group, allow_pickle: bool, configuration: Any,
                 location: str, pack_trees: bool = True):
        self.base, self.allow_pickle, self.location = base, allow_pickle, location
        self.pack_trees = pack_trees
        self.configuration = configuration

    def options(self, node: Node, rel: str) -> DatasetOptions | None:
        """Dataset options for ``node`` written whole at ``rel`` (``configuration=`` of dump
        names its datasets by their place under the dump target)."""
        if self.configuration is None or node.kind == "inline":
            return None
        from h5forge.store.configure import dataset_options

        return dataset_options(self.configuration, node, rel)

    def no_configuration(self, where: str, why: str) -> None:
        if self.configuration is not None:
            raise UpdateError(f"{where}: configuration= applies to datasets written whole, and "
                              f"{why}; dump without it")

    def where(self, rel: str) -> str:
        return _h5.describe(self.base, rel)

    def encode(self, value: Any, where: str, *, inline: bool) -> Node:
        enc = Encoder(allow_pickle=self.allow_pickle, pack_trees=self.pack_trees)
        try:
            return enc.node(value, where, inline=inline)
        except RecursionError:
            raise CodecError(f"cannot store {where}: nested too deeply for Python's recursion "
                             f"limit (sys.setrecursionlimit)") from None

    def decode(self, h5obj, rel: str) -> Any:
        return Decoder().decode(h5obj, self.where(rel))


# -- the stored containers ----------------------------------------------------------------------
def _class_of(obj) -> str | None:
    value = _text(_attr(obj, "class"))
    return value if isinstance(value, str) else None


def _kind(group: h5py.Group) -> str:
    """plain (no class: not a stored container), box, mapping, items, sequence, tree (a packed
    tree), set, other."""
    cls = _class_of(group)
    if cls is None:
        return "plain"
    if _attr(group, "box") is not None:
        return "box"
    layout = _text(_attr(group, "layout"))
    if layout == TREE_LAYOUT and (cls in MAPPINGS or cls in SEQUENCES):
        return "tree"
    if cls in MAPPINGS:
        return "items" if layout == "items" else "mapping"
    if cls in SEQUENCES:
        return "sequence"
    if cls in _SETS:
        return "set"
    return "other"


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _has_attr(group: h5py.Group, name: str) -> bool:
    return name not in RESERVED_ATTRIBUTES and h5py.h5a.exists(group.id, name.encode("utf-8"))


def _has_link(group: h5py.Group, name: str) -> bool:
    return group.id.links.exists(name.encode("utf-8"))


def _is_packed(obj) -> bool:
    """Whether ``obj`` is a list packed into one dataset or a packed tree (a group): members
    inside either are changed by rewriting it (rows of a packed list also in place)."""
    if isinstance(obj, h5py.Group):
        return _kind(obj) == "tree"
    return isinstance(obj, h5py.Dataset) and _class_of(obj) in SEQUENCES and \
        obj.attrs.get("element_class") is not None


@dataclass
class _Container:
    group: h5py.Group
    rel: str              # path of the group relative to the base
    kind: str
    fixed_length: bool = False  # the ``values`` list of an items-layout dict
    parent: "_Container | None" = None  # the container holding this group, when known

    def child_rel(self, name: str) -> str:
        return f"{self.rel}/{name}" if self.rel else name

    @property
    def inline_ok(self) -> bool:
        # user-object state is always child nodes (docs/FORMAT.md); boxes hold a node
        return self.kind in ("mapping", "sequence") and \
            self.group.name.rsplit("/", 1)[-1] != INSTANCE_ATTRIBUTES

    def has(self, name: str) -> bool:
        return _has_link(self.group, name) or (self.kind in ("mapping", "sequence")
                                                 and _has_attr(self.group, name))

    def items(self) -> list[str]:
        """Member names of a sequence group (its ``instance_attributes`` excluded)."""
        return sequence_order(n for n in _member_names(self.group)
                              if n != INSTANCE_ATTRIBUTES)[0]


# -- low-level member writes (the crash-safe order) ---------------------------------------------
def _put(c: _Container, name: str, node: Node, options: DatasetOptions | None):
    """Write ``node`` as member ``name`` of ``c`` (replacing what is there): a node is written
    aside and moved into place once complete, and the old one is deleted only after that; an
    attribute replaces a child only after it is written (the decoder prefers the attribute).
    A crash at any step leaves the old or the new member, or both under temporary names."""
    group = c.group
    had_link, had_attr = _has_link(group, name), _has_attr(group, name)
    if node.kind == "inline":
        if had_attr:
            group.attrs.__delitem__(name)
        write_attr(group, name, node.data)
        if had_link:
            del group[name]
        return
    tmp = f"{TMP_PREFIX}{uuid.uuid4().hex}"
    try:
        write_node(group, tmp, node, c.child_rel(name), options)
    except BaseException:
        if _has_link(group, tmp):
            del group[tmp]
        raise
    old = None
    if had_link:  # moved aside, not deleted, until the new node is in place
        old = f"{TMP_PREFIX}{uuid.uuid4().hex}"
        group.move(name, old)
    group.move(tmp, name)
    if had_attr:  # the attribute hid the new child until now (the decoder prefers it)
        group.attrs.__delitem__(name)
    if old is not None:
        del group[old]


def _remove(c: _Container, name: str) -> None:
    if _has_link(c.group, name):
        del c.group[name]
    if _has_attr(c.group, name):
        c.group.attrs.__delitem__(name)


def _set_keys(group: h5py.Group, keys: list[str]) -> None:
    if "keys" in group.attrs:
        del group.attrs["keys"]
    write_attr(group, "keys", keys)


def _rename(c: _Container, old: str, new: str) -> None:
    if _has_link(c.group, old):
        c.group.move(old, new)
    else:
        h5py.h5a.rename(c.group.id, old.encode("utf-8"), new.encode("utf-8"))


# -- resolving a path ---------------------------------------------------------------------------
@dataclass
class _Target:
    container: _Container
    name: str           # the member of the container the path goes through
    rest: list[str]     # the path below that member
    key_index: int | None = None  # items-layout dict: position of the key (None: new key)


def _resolve(ctx: _Ctx, parts: list[str]) -> _Target:
    group, rel, i = ctx.base, "", 0
    fixed = False
    parent = None
    while True:
        kind = _kind(group)
        name = parts[i]
        c = _Container(group, rel, kind, fixed_length=fixed, parent=parent)
        fixed = False
        if kind == "tree":  # a packed tree is rewritten whole, as a member of its container
            if parent is None:
                raise UpdateError(f"{ctx.where(c.child_rel(name))}: the target is a packed "
                                  f"tree (a few tables, see docs/FORMAT.md), which changes as "
                                  f"a whole; pass its parent group as the target and "
                                  f"{_h5.describe(group)} in the path")
            return _Target(parent, parts[i - 1], parts[i:])
        if kind == "set":
            raise UpdateError(f"{ctx.where(c.child_rel(name))}: the members of a stored "
                              f"{_class_of(group)} have no stable address; load it, change it "
                              f"and dump it with overwrite=True")
        if kind == "other" and name != INSTANCE_ATTRIBUTES:
            # a codec's own layout (DataFrame, masked array, neo, ...): its members are not
            # free-form; only an object's instance_attributes dict is open to updates
            _check_container(ctx, c, name)
        if kind == "box" and name != "value":  # a leaf or a tree stored as 'value'
            value = group.get("value")
            if isinstance(value, h5py.Group) and _kind(value) != "tree":
                # a tree rewritten by an update no longer plain data: a dict group now
                group, rel, parent = value, c.child_rel("value"), c
                continue
            return _Target(c, "value", parts[i:])
        if kind == "items" and name not in ("keys", "values"):
            return _items_target(ctx, c, name, parts[i + 1:])
        if kind == "items" and name == "keys" and len(parts) > i + 1:
            raise UpdateError(f"{ctx.where(c.child_rel(name))}: the keys of a dict stored with "
                              f"its keys as a list cannot be changed one by one; address a "
                              f"value as {c.child_rel('values')}/<position> or a string key "
                              f"by name")
        if _has_link(group, name):
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise UpdateError(f"{ctx.where(c.child_rel(name))} is a {type(link).__name__}; "
                                  f"h5forge never writes through links it did not write")
            child = group[name]
            if i == len(parts) - 1 or not isinstance(child, h5py.Group):
                return _Target(c, name, parts[i + 1:])
            fixed = kind == "items" and name == "values"
            group, rel, i, parent = child, c.child_rel(name), i + 1, c
            continue
        return _Target(c, name, parts[i + 1:])


def _items_target(ctx: _Ctx, c: _Container, key: str, rest: list[str]) -> _Target:
    """A string key of an items-layout dict: its position in the ``keys`` list."""
    with warnings.catch_warnings():  # keys of unknown classes: compared, never returned
        warnings.simplefilter("ignore")
        keys = _read_member(ctx, c, "keys")
    if not isinstance(keys, list):
        raise UpdateError(f"{ctx.where(c.child_rel('keys'))}: not a list; this dict cannot be "
                          f"updated in place")
    index = next((j for j, k in enumerate(keys) if type(k) is str and k == key), None)
    return _Target(c, key, rest, key_index=index)


def _read_member(ctx: _Ctx, c: _Container, name: str) -> Any:
    """The Python value of member ``name`` of ``c`` (an attribute or a child node)."""
    if _has_attr(c.group, name):
        return inline_value(c.group.attrs[name])
    return ctx.decode(c.group[name], c.child_rel(name))


# -- refusing what a layout cannot express ------------------------------------------------------
def _check_container(ctx: _Ctx, c: _Container, name: str) -> None:
    where = ctx.where(c.child_rel(name))
    if c.kind in ("mapping", "sequence", "plain", "items", "box"):
        return
    cls = _class_of(c.group)
    hint = "load it, change it and dump it with overwrite=True"
    if _has_link(c.group, INSTANCE_ATTRIBUTES) and name != INSTANCE_ATTRIBUTES:
        hint = (f"the attributes of a stored object are members of "
                f"{c.child_rel(INSTANCE_ATTRIBUTES)}: use {c.child_rel(INSTANCE_ATTRIBUTES)}"
                f"/{name}")
    raise UpdateError(f"{where}: cannot update inside a stored {cls} (its layout has no "
                      f"members to change one by one); {hint}")


def _check_name(ctx: _Ctx, c: _Container, name: str) -> None:
    from h5forge.store.containers import is_member_name

    if not is_member_name(name) or name.startswith(TMP_PREFIX):
        raise UpdateError(f"{ctx.where(c.rel)}: {name!r} cannot be a member name")


def _index(ctx: _Ctx, rel: str, name: str) -> int:
    if not (name.isascii() and name.isdigit()):
        raise UpdateError(f"{ctx.where(rel)}: a sequence member is addressed by its index "
                          f"(0, 1, ...), got {name!r}")
    return int(name)


# -- planning -----------------------------------------------------------------------------------
def _ctx(base, allow_pickle, configuration, parts) -> _Ctx:
    return _Ctx(base, allow_pickle, configuration, "/".join(parts))


def plan_set(base: h5py.Group, parts: list[str], value: Any, *, overwrite: bool,
             allow_pickle: bool = False, configuration: Any = None,
             pack_trees: bool = True) -> Update | None:
    """Plan ``dump(value, base, path)`` where the path lies inside a stored container; None
    when it does not (a plain group, or a new path: ``dump`` writes it as before)."""
    ctx = _ctx(base, allow_pickle, configuration, parts)
    ctx.pack_trees = pack_trees
    t = _resolve(ctx, parts)
    c = t.container
    if c.kind == "plain" and not (t.rest and _has_link(c.group, t.name)
                                  and _is_packed(c.group[t.name])):
        return None  # not inside a stored container: dump's own rules apply
    return _marked(_plan_at(ctx, t, "set", value, overwrite), base, parts)


def plan_append(base: h5py.Group, parts: list[str], value: Any, *,
                allow_pickle: bool = False) -> Update:
    """Plan ``append(value, base, path)``: ``path`` names a stored list, tuple or deque."""
    ctx = _ctx(base, allow_pickle, None, parts)
    if not parts:  # the base itself is the sequence (or a box holding a packed one)
        kind = _kind(base)
        if kind == "box":
            return _marked(_plan_at(ctx, _Target(_Container(base, "", "box"), "value", []),
                                    "append", value, False), base, parts)
        if kind != "sequence":
            raise UpdateError(f"{ctx.where('')}: append needs a stored list, tuple or deque, "
                              f"found {_class_of(base) or 'a plain group'}")
        c = _Container(base, "", "sequence")
        return _marked(_append_group_sequence(ctx, c, value), base, parts)
    return _marked(_plan_at(ctx, _resolve(ctx, parts), "append", value, False), base, parts)


def plan_delete(base: h5py.Group, parts: list[str]) -> Update:
    """Plan ``delete(base, path)``."""
    if not parts:
        raise UpdateError(f"{_h5.describe(base)}: delete needs a path inside the tree (to "
                          f"remove everything, delete the file or group itself)")
    ctx = _ctx(base, False, None, parts)
    return _marked(_plan_at(ctx, _resolve(ctx, parts), "delete", None, False), base, parts)


OLDER_FORMATS = tuple(f for f in READABLE_FORMATS if f != FORMAT_VERSION)


def _marked(upd: Update, base: h5py.Group, parts: list[str]) -> Update:
    """``upd``, ending by marking the stored tree it changes as this format: the new member
    may use a layout an older h5forge cannot read, which must then say so
    (``FormatVersionError``) instead of calling the file corrupt."""
    def mark() -> None:
        group = base
        for part in [None] + parts[:-1]:
            if part is not None:
                if not isinstance(group, h5py.Group) or part not in group:
                    return
                group = group[part]
            if isinstance(group, h5py.Group) and _text(group.attrs.get(
                    "h5forge_format", FORMAT_VERSION)) in OLDER_FORMATS:
                group.attrs["h5forge_format"] = FORMAT_VERSION

    upd.steps.append(mark)
    return upd


def _plan_at(ctx: _Ctx, t: _Target, op: str, value: Any, overwrite: bool) -> Update:
    c, name = t.container, t.name
    _check_container(ctx, c, name)
    if c.kind == "items":
        if name not in ("keys", "values"):
            return _plan_items(ctx, t, op, value, overwrite)
        if name == "keys" or not t.rest:
            raise UpdateError(f"{ctx.where(c.child_rel(name))}: the keys and values lists of a "
                              f"dict stored with its keys as a list change only together; "
                              f"address a string key by name, another key's value as "
                              f"{c.child_rel('values')}/<position>")
        # values/<position>: a packed values list (a group one was descended into)
        c = _Container(c.group, c.rel, "plain", fixed_length=True)
        return _plan_inside(ctx, c, name, t.rest, op, value, overwrite)
    exists = c.has(name)
    if t.rest:  # below a member that is not a group: a packed list, an inline list, a leaf
        if not exists:
            if op == "set" and c.kind in ("mapping", "plain"):
                return _plan_member(ctx, c, name, "set", _nest(t.rest, value), False)
            raise NodeNotFoundError(f"{ctx.where(c.child_rel(name))}: no such member")
        return _plan_inside(ctx, c, name, t.rest, op, value, overwrite)
    if op == "append":
        if not exists:
            raise NodeNotFoundError(f"{ctx.where(c.child_rel(name))}: no such member")
        return _plan_append_member(ctx, c, name, value)
    return _plan_member(ctx, c, name, op, value, overwrite)


def _nest(rest: list[str], value: Any) -> Any:
    """``{"b": {"c": value}}`` for rest ``["b", "c"]``: missing intermediates become dicts."""
    for name in reversed(rest):
        value = {name: value}
    return value


def _plan_member(ctx: _Ctx, c: _Container, name: str, op: str, value: Any,
                 overwrite: bool) -> Update:
    """set or delete member ``name`` of a mapping, sequence, plain group or box."""
    rel = c.child_rel(name)
    where = ctx.where(rel)
    exists = c.has(name)
    upd = Update(where, file=ctx.base.file)
    if c.kind == "box":
        if op == "delete":
            raise UpdateError(f"{where}: the value of a boxed leaf cannot be deleted; delete "
                              f"the box {ctx.where(c.rel)} itself")
        if not overwrite:
            raise NodeExistsError(f"{where} already exists; pass overwrite=True to replace it")
        node = ctx.encode(value, where, inline=False)
        options = ctx.options(node, rel)
        upd.steps.append(lambda: _put(c, name, node, options))
        return upd
    if c.kind == "sequence":
        return _plan_sequence_member(ctx, c, name, op, value, overwrite)
    if op == "delete":
        if not exists:
            raise NodeNotFoundError(f"{where}: no such member")
        if c.kind == "mapping":
            keys = _mapping_keys(c)
            keys = [k for k in keys if k != name]
            upd.steps.append(lambda: _set_keys(c.group, keys))
        upd.steps.append(lambda: _remove(c, name))
        return upd
    if exists and not overwrite:
        raise NodeExistsError(f"{where} already exists; pass overwrite=True to replace it")
    if c.kind == "mapping":
        _check_name(ctx, c, name)
    node = ctx.encode(value, where, inline=c.inline_ok and name not in RESERVED_ATTRIBUTES)
    options = ctx.options(node, rel)
    upd.steps.append(lambda: _put(c, name, node, options))
    if c.kind == "mapping":
        keys = _mapping_keys(c)
        if name not in keys:
            keys.append(name)
            upd.steps.append(lambda: _set_keys(c.group, keys))
    return upd


def _member_names(group: h5py.Group) -> list[str]:
    """Child link names, then inline attribute names (low-level: h5py's iteration costs ten
    times more, and a dict may hold thousands of members)."""
    names: list[bytes] = []
    group.id.links.iterate(names.append)
    attrs: list[bytes] = []
    h5py.h5a.iterate(group.id, lambda name, *_: attrs.append(name))
    out = [n.decode("utf-8", "surrogateescape") for n in names]
    out += [a for a in (n.decode("utf-8", "surrogateescape") for n in attrs)
            if a not in RESERVED_ATTRIBUTES]
    return out


def _mapping_keys(c: _Container) -> list[str]:
    """The member names of a named-layout mapping in load order (what ``keys`` should list)."""
    names = _member_names(c.group)
    keys = _attr(c.group, "keys")
    if keys is None:
        return sorted(n for n in dict.fromkeys(names) if not n.startswith(TMP_PREFIX))
    return mapping_order(keys_list(keys), names)[0]


# -- sequences stored as groups -----------------------------------------------------------------
def _plan_sequence_member(ctx: _Ctx, c: _Container, name: str, op: str, value: Any,
                          overwrite: bool) -> Update:
    rel = c.child_rel(name)
    where = ctx.where(rel)
    i = _index(ctx, c.rel, name)
    items = c.items()
    n = len(items)
    upd = Update(where, file=ctx.base.file)
    if op == "delete":
        if i >= n:
            raise NodeNotFoundError(f"{where}: no such item (the sequence has {n})")
        _check_resizable(ctx, c)
        upd.steps.append(lambda: _remove(c, items[i]))
        for j in range(i + 1, n):
            upd.steps.append(lambda j=j: _rename(c, items[j], str(j - 1)))
        return upd
    if i > n:
        raise UpdateError(f"{where}: the sequence has {n} items; set an existing index or "
                          f"append at {n}")
    if i == n:
        return _append_group_sequence(ctx, c, value)
    if not overwrite:
        raise NodeExistsError(f"{where} already exists; pass overwrite=True to replace it")
    node = ctx.encode(value, where, inline=c.inline_ok)
    old = items[i]
    options = ctx.options(node, rel)
    upd.steps.append(lambda: _put(c, str(i), node, options))
    if old != str(i):  # a member misnamed outside h5forge: the new one takes its place
        upd.steps.append(lambda: _remove(c, old))
    return upd


def _check_resizable(ctx: _Ctx, c: _Container) -> None:
    if c.fixed_length:
        raise UpdateError(f"{ctx.where(c.rel)}: the values of a dict stored with its keys as a "
                          f"list; add or delete the key through the dict "
                          f"({ctx.where(c.rel.rsplit('/', 1)[0] if '/' in c.rel else '')})")


def _maxlen(obj) -> int | None:
    value = obj.attrs.get("maxlen")
    return None if value is None else int(value)


def _append_group_sequence(ctx: _Ctx, c: _Container, value: Any) -> Update:
    _check_resizable(ctx, c)
    n = len(c.items())
    name = str(n)
    where = ctx.where(c.child_rel(name))
    maxlen = _maxlen(c.group)
    if maxlen is not None and n >= maxlen:
        raise UpdateError(f"{where}: the deque is full (maxlen={maxlen}); delete an item first")
    repacked = _repack(ctx, c, n, value)
    if repacked is not None:
        return repacked
    node = ctx.encode(value, where, inline=c.inline_ok)
    options = ctx.options(node, c.child_rel(name))
    upd = Update(where, file=ctx.base.file)
    upd.steps.append(lambda: _put(c, name, node, options))
    return upd


#: A list stored as a group with at most this many small items is written packed when an
#: append makes it packable (a list that started empty becomes one table, as dump writes it).
REPACK_MAX_ITEMS = 8
_REPACK_MAX_BYTES = 1 << 16


def _repack(ctx: _Ctx, c: _Container, n: int, value: Any) -> Update | None:
    """The short group list ``c`` rewritten packed with ``value`` appended, when a fresh dump
    would pack (or inline) it; None otherwise (the value is then added as member ``n``)."""
    p = c.parent
    if p is None or p.kind not in ("mapping", "sequence", "plain") or c.fixed_length or \
            n > REPACK_MAX_ITEMS or ctx.configuration is not None or \
            _has_link(c.group, INSTANCE_ATTRIBUTES) or h5py.h5o.get_info(c.group.id).rc > 1:
        return None
    for name in _member_names(c.group):
        if _has_link(c.group, name):
            obj = c.group[name]
            if h5py.h5o.get_info(obj.id).rc > 1:
                return None  # an item shared with another place stays one object
            datasets = [obj] if isinstance(obj, h5py.Dataset) else \
                [o for o in obj.values() if isinstance(o, h5py.Dataset)]
            if sum(d.id.get_storage_size() for d in datasets) > _REPACK_MAX_BYTES:
                return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            current = ctx.decode(c.group, c.rel)
    except (Warning, H5ForgeError):
        return None
    name = c.rel.rsplit("/", 1)[-1]
    new = _apply(ctx, c.rel, current, [str(n)], "set", value, False)
    where = ctx.where(c.rel)
    node = ctx.encode(new, where, inline=p.inline_ok and name not in RESERVED_ATTRIBUTES)
    if not (node.kind == "inline" or (node.kind == "dataset" and
                                      node.attrs.get("element_class") is not None)):
        return None
    upd = Update(where, file=ctx.base.file)
    upd.steps.append(lambda: _put(p, name, node, _extendable(None)))
    return upd


def _plan_append_member(ctx: _Ctx, c: _Container, name: str, value: Any) -> Update:
    """Append to the sequence stored as member ``name`` of ``c``."""
    rel = c.child_rel(name)
    if _has_link(c.group, name):
        obj = c.group[name]
        if isinstance(obj, h5py.Group):
            kind = _kind(obj)
            if kind == "tree" and _class_of(obj) in SEQUENCES:
                return _plan_inside(ctx, c, name, [str(len(_read_member(ctx, c, name)))],
                                    "set", value, False)
            if kind != "sequence":
                raise UpdateError(f"{ctx.where(rel)}: append needs a stored list, tuple or "
                                  f"deque, found {_class_of(obj) or 'a plain group'}")
            return _append_group_sequence(ctx, _Container(
                obj, rel, kind, fixed_length=c.kind == "items", parent=c), value)
        if _is_packed(obj):
            return _plan_packed(ctx, c, name, obj, len(obj), "set", value, False)
        raise UpdateError(f"{ctx.where(rel)}: append needs a stored list, tuple or deque, "
                          f"found {_class_of(obj) or 'a plain dataset'}")
    current = _read_member(ctx, c, name)
    if not isinstance(current, list):
        raise UpdateError(f"{ctx.where(rel)}: append needs a stored list, tuple or deque, "
                          f"found {type(current).__name__}")
    return _plan_inside(ctx, c, name, [str(len(current))], "set", value, False)


# -- members that are not groups: packed lists and inline values --------------------------------
def _plan_inside(ctx: _Ctx, c: _Container, name: str, rest: list[str], op: str, value: Any,
                 overwrite: bool) -> Update:
    """Change the value at ``rest`` inside member ``name`` (a packed list or an inline list):
    rows in place where the layout allows, else the member rewritten with the change."""
    rel = c.child_rel(name)
    obj = c.group[name] if _has_link(c.group, name) else None
    if obj is not None and not _is_packed(obj):
        if isinstance(obj, h5py.Dataset):
            raise UpdateError(f"{ctx.where(rel + '/' + '/'.join(rest))}: {rel} is a stored "
                              f"{_class_of(obj) or 'dataset'}, a leaf with no members; replace "
                              f"it whole (overwrite=True) or write slices with h5py")
        raise UpdateError(f"{ctx.where(rel)}: cannot update inside this node")
    if c.fixed_length and len(rest) == 1 and op == "delete":
        _check_resizable(ctx, _Container(c.group, rel, "sequence", fixed_length=True))
    if isinstance(obj, h5py.Dataset) and len(rest) == 1 and op in ("set", "append"):
        i = _index(ctx, rel, rest[0])
        return _plan_packed(ctx, c, name, obj, i, op, value, overwrite)
    current = _read_member(ctx, c, name)
    if obj is None and not isinstance(current, list):
        raise UpdateError(f"{ctx.where(rel + '/' + '/'.join(rest))}: {rel} is an inline "
                          f"{type(current).__name__}, a leaf with no members; replace it whole "
                          f"(overwrite=True)")
    new = _apply(ctx, rel, current, rest, op, value, overwrite)
    return _rewrite(ctx, c, name, new, obj)


def _rewrite(ctx: _Ctx, c: _Container, name: str, new: Any, old) -> Update:
    """Member ``name`` rewritten whole with value ``new`` (written aside, then swapped)."""
    rel = c.child_rel(name)
    where = ctx.where(rel)
    ctx.no_configuration(ctx.where(ctx.location), f"this update rewrites {rel} (a packed "
                                                  f"list or tree, or an inline list)")
    if old is not None and h5py.h5o.get_info(old.id).rc > 1:
        raise UpdateError(f"{where}: this packed list is shared with another place in the file "
                          f"(a hard link), which a rewrite would separate; load the tree, change "
                          f"it and dump it with overwrite=True")
    if c.kind == "plain" or c.kind == "box":
        node = ctx.encode(new, where, inline=False)
    else:
        node = ctx.encode(new, where, inline=c.inline_ok and name not in RESERVED_ATTRIBUTES)
    options = _extendable(old)
    upd = Update(where, file=ctx.base.file)
    upd.steps.append(lambda: _put(c, name, node, options))
    return upd


def _extendable(old) -> DatasetOptions:
    """Options that write a packed list chunked with an unlimited first dimension (so later
    appends write one row in place), keeping the old dataset's filters when the dtype stays."""
    def options(location: str, node: Node) -> dict[str, Any]:
        data = node.data
        if node.attrs.get("element_class") is None or not isinstance(data, np.ndarray) \
                or data.ndim < 1 or not len(data):
            return {}
        kwargs: dict[str, Any] = {"chunks": True, "maxshape": (None, *data.shape[1:])}
        if isinstance(old, h5py.Dataset) and old.chunks is not None:
            new_dtype = node.h5dtype if node.h5dtype is not None else data.dtype
            if np.dtype(new_dtype) == old.dtype:
                kwargs["dcpl"] = old.id.get_create_plist().copy()
                kwargs["chunks"] = old.chunks
        return kwargs
    return options


def _plan_packed(ctx: _Ctx, c: _Container, name: str, ds: h5py.Dataset, i: int, op: str,
                 value: Any, overwrite: bool) -> Update:
    """Item ``i`` of the packed list ``ds`` set (replaced, or appended when i == len)."""
    rel = c.child_rel(name)
    where = ctx.where(f"{rel}/{i}")
    n = len(ds)
    if op == "append":
        i = n
    if i > n:
        raise UpdateError(f"{where}: the list has {n} items; set an existing index or append "
                          f"at {n}")
    if i < n and not overwrite:
        raise NodeExistsError(f"{where} already exists; pass overwrite=True to replace it")
    if i == n:
        if c.fixed_length:
            _check_resizable(ctx, _Container(c.group, rel, "sequence", fixed_length=True))
        maxlen = _maxlen(ds)
        if maxlen is not None and n >= maxlen:
            raise UpdateError(f"{where}: the deque is full (maxlen={maxlen}); delete an item "
                              f"first")
    row = _row(ds, value)
    ctx.no_configuration(where, f"the value becomes a row of the packed list {rel}")
    upd = Update(where, file=ctx.base.file)
    if row is not None and i < n:
        upd.steps.append(lambda: ds.__setitem__(i, row))
        return upd
    if row is not None and ds.maxshape and ds.maxshape[0] is None:
        def append_row():
            ds.resize(n + 1, axis=0)
            ds[n] = row
        upd.steps.append(append_row)
        return upd
    current = ctx.decode(ds, rel)
    new = _apply(ctx, rel, current, [str(i)], "set", value, overwrite)
    return _rewrite(ctx, c, name, new, ds)


def _row(ds: h5py.Dataset, value: Any) -> Any:
    """``value`` as one row of the packed list ``ds``, or None when it does not fit the table
    exactly (then the list is rewritten, unpacked if need be)."""
    element_class = _text(ds.attrs.get("element_class"))
    if element_class == "dict":  # a str longer than a fixed-length field: None (rewritten)
        stored = [_text(v) for v in np.atleast_1d(ds.attrs.get("field_classes", []))]
        return record_row(value, ds.dtype, stored)
    if element_class == "numpy.ndarray":
        if type(value) is not np.ndarray or value.dtype != ds.dtype or \
                value.shape != ds.shape[1:] or (value.ndim > 1 and not value.flags.c_contiguous):
            return None
        return value
    if element_class == MIXED:
        return mixed_row(value, ds.dtype) if ds.dtype.names else None
    packed = pack_scalars([value])
    if packed is None or packed[2] != element_class:
        return None
    if element_class == "str":  # a fixed-length table takes only a str that fits
        if ds.dtype.kind != "S":
            return value
        raw = value.encode("utf-8")
        return raw if len(raw) <= ds.dtype.itemsize else None
    return packed[0][0]


# -- items-layout dicts -------------------------------------------------------------------------
def _plan_items(ctx: _Ctx, t: _Target, op: str, value: Any, overwrite: bool) -> Update:
    """A string key of a dict whose keys are stored as a list (``layout`` = items)."""
    c, key, j = t.container, t.name, t.key_index
    where = ctx.where(c.child_rel(key))
    values_c = _Container(c.group, c.rel, "plain")  # keys/values: child nodes, never inline
    if j is not None:  # an existing key: work on its value, values/<j>
        if op == "delete" and not t.rest:
            upd = Update(where, file=ctx.base.file)
            upd.steps += _delete_item(ctx, values_c, "keys", j).steps
            upd.steps += _delete_item(ctx, values_c, "values", j).steps
            return upd
        parts = _h5.split_path(ctx.location)
        depth = len(_h5.split_path(c.rel))
        inner = [*parts[:depth], "values", str(j), *t.rest]
        return _plan_at(ctx, _resolve(ctx, inner), op, value, overwrite)
    if op != "set":
        raise NodeNotFoundError(f"{where}: no such key")
    ctx.no_configuration(where, "the value is added to the values list of a dict stored with "
                                "its keys as a list")
    new_value = _nest(t.rest, value) if t.rest else value
    upd = Update(where, file=ctx.base.file)
    upd.steps += _plan_append_member(ctx, values_c, "keys", key).steps
    upd.steps += _plan_append_member(ctx, values_c, "values", new_value).steps
    return upd


def _delete_item(ctx: _Ctx, c: _Container, name: str, j: int) -> Update:
    """Item ``j`` of the sequence member ``name`` of ``c`` deleted (any layout)."""
    rel = c.child_rel(name)
    if _has_link(c.group, name) and isinstance(c.group[name], h5py.Group):
        seq = _Container(c.group[name], rel, "sequence")
        return _plan_sequence_member(ctx, seq, str(j), "delete", None, False)
    return _plan_inside(ctx, c, name, [str(j)], "delete", None, False)


# -- Python-level changes of a materialized member ----------------------------------------------
def _apply(ctx: _Ctx, rel: str, obj: Any, rest: list[str], op: str, value: Any,
           overwrite: bool) -> Any:
    """``obj`` with the change at ``rest`` made (containers rebuilt, the original untouched)."""
    name, below = rest[0], rest[1:]
    here = f"{rel}/{name}"
    if op == "append" and not below:  # append to the sequence at ``name``: set at its end
        target = _item(ctx, here, obj, name)
        if type(target) not in (list, tuple, collections.deque):
            raise UpdateError(f"{ctx.where(here)}: append needs a stored list, tuple or deque, "
                              f"found {type(target).__name__}")
        return _apply(ctx, rel, obj, [name, str(len(target))], "set", value, False)
    if type(obj) is dict:
        new = dict(obj)
        if below:
            if name not in new:
                raise NodeNotFoundError(f"{ctx.where(here)}: no such member")
            new[name] = _apply(ctx, here, new[name], below, op, value, overwrite)
        elif op == "delete":
            if name not in new:
                raise NodeNotFoundError(f"{ctx.where(here)}: no such member")
            del new[name]
        else:
            if name in new and not overwrite:
                raise NodeExistsError(f"{ctx.where(here)} already exists; pass overwrite=True "
                                      f"to replace it")
            new[name] = value
        return new
    if isinstance(obj, (list, tuple, collections.deque)) and type(obj) in (list, tuple,
                                                                          collections.deque):
        items = list(obj)
        i = _index(ctx, rel, name)
        if below:
            if i >= len(items):
                raise NodeNotFoundError(f"{ctx.where(here)}: no such item")
            items[i] = _apply(ctx, here, items[i], below, op, value, overwrite)
        elif op == "delete":
            if i >= len(items):
                raise NodeNotFoundError(f"{ctx.where(here)}: no such item")
            del items[i]
        elif i < len(items):
            if not overwrite:
                raise NodeExistsError(f"{ctx.where(here)} already exists; pass overwrite=True "
                                      f"to replace it")
            items[i] = value
        elif i == len(items):
            if type(obj) is collections.deque and obj.maxlen is not None and i >= obj.maxlen:
                raise UpdateError(f"{ctx.where(here)}: the deque is full (maxlen={obj.maxlen})")
            items.append(value)
        else:
            raise UpdateError(f"{ctx.where(here)}: the list has {len(items)} items; set an "
                              f"existing index or append at {len(items)}")
        if type(obj) is collections.deque:
            return collections.deque(items, obj.maxlen)
        return type(obj)(items)
    raise UpdateError(f"{ctx.where(here)}: {rel} holds a {type(obj).__module__}."
                      f"{type(obj).__qualname__}, which has no members to change one by one; "
                      f"replace {rel} whole (overwrite=True)")


def _item(ctx: _Ctx, here: str, obj: Any, name: str) -> Any:
    """Member ``name`` of a materialized dict, list, tuple or deque."""
    if type(obj) is dict:
        if name not in obj:
            raise NodeNotFoundError(f"{ctx.where(here)}: no such member")
        return obj[name]
    if type(obj) in (list, tuple, collections.deque):
        i = _index(ctx, here.rsplit("/", 1)[0], name)
        if i >= len(obj):
            raise NodeNotFoundError(f"{ctx.where(here)}: no such item")
        return obj[i]
    raise UpdateError(f"{ctx.where(here)}: a {type(obj).__name__} has no members")
