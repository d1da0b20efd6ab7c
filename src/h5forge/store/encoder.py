"""Object tree -> plan of nodes (:mod:`h5forge.store.layout`), with shared references and packing.

Nothing touches HDF5 here: an object that cannot be stored raises :class:`CodecError` naming its
place in the tree (``obj["runs"][3].callback``) before the writer creates anything.
"""

from __future__ import annotations

from typing import Any

from h5forge.errors import CodecError
from h5forge.store import registry as _registry
from h5forge.store.layout import Node, inline_node, link_node

__all__ = ["Encoder", "is_inline_scalar", "is_inline_list", "is_identity_free",
           "INLINE_STR_MAX"]

#: Longest str stored inline as an attribute; longer ones get their own dataset.
INLINE_STR_MAX = 256
#: Longest list of same-typed scalars stored inline as a 1-D attribute.
INLINE_LIST_MAX = 64
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def is_inline_scalar(obj: Any) -> bool:
    """Whether ``obj`` is a builtin scalar whose HDF5 attribute type tells its Python type back."""
    tp = type(obj)
    if tp is float or tp is bool or obj is None or tp is complex:
        return True
    if tp is int:
        return _INT64_MIN <= obj <= _INT64_MAX
    if tp is str:
        return len(obj) <= INLINE_STR_MAX and is_plain_text(obj)
    return False


def is_inline_list(obj: Any) -> bool:
    """Whether ``obj`` is a short non-empty list of inline scalars of one type (not None),
    which is stored as a 1-D attribute array."""
    if type(obj) is not list or not 0 < len(obj) <= INLINE_LIST_MAX:
        return False
    tp = type(obj[0])
    if tp not in (int, float, bool, str, complex):
        return False
    return all(type(v) is tp and is_inline_scalar(v) for v in obj)


def is_identity_free(obj: Any) -> bool:
    """Whether ``obj``'s identity means nothing to keep: the empty tuple is one object
    everywhere in Python, so "sharing" it is never stored as a hard link."""
    return type(obj) is tuple and not obj


def is_plain_text(text: str) -> bool:
    """Whether ``text`` can be an HDF5 UTF-8 string as is (no NUL, no lone surrogates)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Packed:
    """Memo entry for an object stored inside a packed table: the table and how to unpack it."""

    __slots__ = ("table", "container", "codec", "where", "member_ids")

    def __init__(self, table: Node, container: Any, codec: _registry.Codec, where: str, ids):
        self.table, self.container, self.codec, self.where = table, container, codec, where
        self.member_ids = ids


class Encoder:
    """Builds the node plan for one ``dump`` call.

    Codecs call :meth:`node` for each member. Objects reached twice become hard links; a packed
    table whose member is reached again elsewhere is unpacked, so sharing is never lost.
    """

    def __init__(self, *, allow_pickle: bool = False,
                 registry: _registry.Registry | None = None, pack_trees: bool = True):
        self.allow_pickle = allow_pickle
        #: Whether nests of plain data become packed trees (:mod:`h5forge.store.tree`).
        self.pack_trees = pack_trees
        #: The codecs this dump uses (the active registry unless given).
        self.registry = registry if registry is not None else _registry.active()
        # id(obj) -> (obj, node or _Packed); holding obj keeps temporary ids from being reused.
        self._memo: dict[int, tuple[Any, Node | _Packed]] = {}
        self._unpacked: set[int] = set()
        #: id(container) -> (container, result) of :mod:`h5forge.store.tree`'s scans.
        self.tree_scans: dict[int, tuple[Any, int]] = {}

    def node(self, obj: Any, where: str, *, inline: bool = True) -> Node:
        """The node for ``obj`` at object path ``where`` (inline attribute when allowed)."""
        if inline and is_inline_scalar(obj):
            return inline_node(obj)
        key = id(obj)
        entry = self._memo.get(key)
        if inline and entry is None and is_inline_list(obj):
            node = inline_node(obj)
            self._memo[key] = (obj, node)
            return node
        codec = self.codec_for(obj, where)
        if not codec.tracks_identity or is_identity_free(obj):
            return codec.encode(obj, self, where)
        if entry is not None:
            target = entry[1]
            while isinstance(target, _Packed):  # unpacked, a sub-tree may pack it again;
                target = self._unpack(target, key)  # its node may be an inline list too
            if target.kind == "inline":  # an inline list reached again: give it a node
                target.become(codec.encode(obj, self, where))
            return link_node(target)
        holder = Node("group")
        self._memo[key] = (obj, holder)
        holder.become(codec.encode(obj, self, where))
        return holder

    def codec_for(self, obj: Any, where: str) -> _registry.Codec:
        codec = self.registry.codec_for_type(type(obj))
        if codec is None:
            if self.allow_pickle:
                codec = self.registry.codec_for_name("pickle")
            if codec is None:
                raise CodecError(
                    f"cannot store {where}: no codec for {type(obj).__module__}."
                    f"{type(obj).__qualname__} ({_short_repr(obj)}). Convert it to data first, "
                    f"or register a codec with h5forge.register_codec()"
                )
        return codec

    def plan_of(self, obj: Any) -> Node | None:
        """The node planned for ``obj`` (being or already encoded), or None: lets a codec see
        whether a member refers back to the object it is encoding."""
        entry = self._memo.get(id(obj))
        return entry[1] if entry is not None and entry[0] is obj and \
            isinstance(entry[1], Node) else None

    # -- packing support ------------------------------------------------------------------
    def may_pack(self, container: Any, members: list[Any]) -> bool:
        """Whether ``members`` of ``container`` may go into one table: none is shared (already
        seen, or twice in this run) and the container was not unpacked before."""
        if id(container) in self._unpacked:
            return False
        ids = {id(m) for m in members}
        return len(ids) == len(members) and not any(i in self._memo for i in ids)

    def claim_packed(self, table: Node, container: Any, codec: _registry.Codec, where: str,
                     members: list[Any]) -> None:
        """Remember that ``members`` live inside ``table`` (so a later reference unpacks it)."""
        packed = _Packed(table, container, codec, where, [id(m) for m in members])
        for m in members:
            self._memo[id(m)] = (m, packed)

    def _unpack(self, packed: _Packed, key: int) -> Node:
        for member_id in packed.member_ids:
            self._memo.pop(member_id, None)
        self._unpacked.add(id(packed.container))
        # The node in the tree is the container's memo holder when it has one.
        entry = self._memo.get(id(packed.container))
        table = entry[1] if entry is not None and entry[0] is packed.container else packed.table
        table.become(packed.codec.encode(packed.container, self, packed.where))
        return self._memo[key][1]


def _short_repr(obj: Any) -> str:
    try:
        text = repr(obj)
    except Exception:  # repr of arbitrary objects may fail; the type name is enough then
        return type(obj).__name__
    return text if len(text) <= 60 else text[:57] + "..."
