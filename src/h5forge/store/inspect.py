"""The stored object tree of a file as rows, in the store's terms: what ``h5forge tree`` prints.

One row per node, depth first: the member name, its Python type (the ``class`` attribute;
``<group>``/``<dataset>`` for nodes h5forge did not write), for datasets the shape, dtype and
size on disk. Inline members (attributes that hold container members, see docs/FORMAT.md) are
rows with their value. Members come in the order ``load`` gives them (the rules of
:mod:`h5forge.store.members`), with a note where a container differs from its metadata. A hard
link to a node already shown (a shared reference or a cycle) is a ``-> /first/path`` row and
is not descended, so cycles never loop. Only h5py is used to read: no class named in the file
is ever imported.
"""

from __future__ import annotations

from typing import Any, Iterator, NamedTuple

import h5py

from h5forge import _h5
from h5forge._text import format_bytes, short_repr, type_name
from h5forge.errors import H5ForgeError, NodeNotFoundError
from h5forge.store.decoder import inline_value
from h5forge.store.layout import RESERVED_ATTRIBUTES
from h5forge.store.members import (
    describe_difference,
    is_leftover,
    keys_list,
    mapping_order,
    sequence_order,
)
from h5forge.store.tree import is_tree, member_at, unpack_tree
from h5forge.store.update import MAPPINGS, SEQUENCES

__all__ = ["Row", "tree", "tree_lines", "iter_rows", "format_rows", "member_order"]


class Row(NamedTuple):
    """One node of the stored tree (or, with ``show_attrs``, one ``@attribute``)."""

    #: Levels below the starting node (0 for it).
    depth: int
    #: The member name (the full HDF5 path for the starting node; ``@name`` for an attribute).
    name: str
    #: The Python type as stored (``dict``, ``numpy.ndarray[...]``), or ``<group>``,
    #: ``<dataset>``, ``<soft link>``..., or ``-> /path`` for a node already shown.
    type: str
    #: Shape and dtype, member count and notes, or ``= value`` for an inline member.
    detail: str
    #: Bytes the dataset takes on disk; None for anything else.
    nbytes: int | None


_INDENT = "  "
_MAX_NAME_COLUMN = 40
_MAX_TYPE_COLUMN = 28
_VALUE_WIDTH = 40


def tree(source: _h5.PathLike | h5py.Group, path: str = "/", *, depth: int | None = None,
         show_attrs: bool = False) -> list[Row]:
    """The rows of the stored tree under ``path`` in ``source`` (a file path, an open h5py
    group or a :class:`~h5forge._h5.H5pyProvider`), depth first, members in the order ``load``
    gives them. Raises :class:`NodeNotFoundError` naming the file or the path if missing."""
    with _h5.open_group(source, "r") as group:
        return list(iter_rows(group, path, depth=depth, show_attrs=show_attrs))


def tree_lines(source: _h5.PathLike | h5py.Group, path: str = "/", *, depth: int | None = None,
               show_attrs: bool = False) -> list[str]:
    """The lines ``h5forge tree`` prints for ``path`` in ``source``: :func:`tree` aligned by
    :func:`format_rows`."""
    return format_rows(tree(source, path, depth=depth, show_attrs=show_attrs))


def format_rows(rows: Iterator[Row] | list[Row]) -> list[str]:
    """Align rows into columns: indented name, type, detail, size on disk."""
    rows = list(rows)
    name_width = min(_MAX_NAME_COLUMN,
                     max((len(_INDENT) * d + len(n) for d, n, *_ in rows), default=0))
    type_width = min(_MAX_TYPE_COLUMN, max((len(t) for _, _, t, _, _ in rows), default=0))
    lines = []
    for depth, name, kind, detail, nbytes in rows:
        head = f"{(_INDENT * depth + name).ljust(name_width)}  {kind.ljust(type_width)}"
        size = format_bytes(nbytes, binary=True) if nbytes is not None else ""
        tail = "  ".join(cell for cell in (detail, size) if cell)
        lines.append(f"{head}  {tail}".rstrip())
    return lines


def iter_rows(group: h5py.Group, path: str = "/", *, depth: int | None = None,
              show_attrs: bool = False) -> Iterator[Row]:
    """Rows for the tree under ``path`` (relative to ``group``), depth first, in member order."""
    parts = _h5.split_path(path)
    rel = "/".join(parts)
    shown = f"{group.name.rstrip('/')}/{rel}" if rel else group.name
    if not rel:
        top = group
    else:
        top = _lookup(group, rel)
        inside = _inside_tree(group, parts) if top is None else _MISSING
        if inside is not _MISSING:
            yield from _value_rows(0, shown, inside, depth)
            return
        if top is None:
            parent = _lookup(group, "/".join(parts[:-1])) if len(parts) > 1 else group
            if isinstance(parent, h5py.Group):
                inline = _inline_members(_read_attrs(parent))
                if parts[-1] in inline:
                    yield _inline_row(0, shown, inline[parts[-1]])
                    return
            raise NodeNotFoundError(f"{_h5.describe(group, rel)}: no such node")
    yield from _walk(top, shown, depth, show_attrs)


def _lookup(group: h5py.Group, rel: str) -> Any:
    try:
        return group[rel] if rel in group else None
    except (KeyError, TypeError, ValueError, OSError):
        return None


def _walk(top: Any, top_path: str, max_depth: int | None, show_attrs: bool) -> Iterator[Row]:
    seen: dict[Any, str] = {}  # h5py object id -> path where the object was first shown
    # Entries: ("node", depth, name, path, parent or None) or ("row", Row). Children are opened
    # only when popped, so a large group never holds one handle per member.
    stack: list[tuple] = [("node", 0, top_path, top_path, None)]
    while stack:
        entry = stack.pop()
        if entry[0] == "row":
            yield entry[1]
            continue
        _, depth, name, path, parent = entry
        if parent is None:
            obj = top
        else:
            obj, link_row = _open_member(parent, name, depth)
            if obj is None:
                yield link_row
                continue
        first = seen.get(obj.id)
        if first is not None:
            yield Row(depth, name, f"-> {first}", "", None)
            continue
        if parent is None or h5py.h5o.get_info(obj.id).rc > 1:
            seen[obj.id] = path  # only objects with several links can be met again
        attrs = _read_attrs(obj)
        order: list[str] = []
        note = ""
        if isinstance(obj, h5py.Group) and is_tree(attrs):
            yield from _tree_rows(depth, name, obj, attrs, path, max_depth, show_attrs)
            continue
        if isinstance(obj, h5py.Group):
            inline = _inline_members(attrs)
            order, note = member_order(list(obj), inline, attrs)
            if _text(attrs.get("layout")) == "items":
                note = "; ".join(filter(None, [note, _items_note(obj)]))
        yield _node_row(depth, name, obj, attrs, order, note)
        pending: list[tuple] = []
        if show_attrs:
            pending.extend(("row", row) for row in _attribute_rows(depth + 1, obj, attrs))
        if isinstance(obj, h5py.Group) and (max_depth is None or depth < max_depth):
            for member in order:
                if member in inline:
                    pending.append(("row", _inline_row(depth + 1, member, inline[member])))
                else:
                    child_path = f"{path.rstrip('/')}/{member}"
                    pending.append(("node", depth + 1, member, child_path, obj))
        stack.extend(reversed(pending))


def _open_member(parent: h5py.Group, name: str, depth: int) -> tuple[Any, Row | None]:
    """(object, None) for a hard link; (None, row) for a soft/external link (never followed)."""
    link = parent.get(name, getlink=True)
    if isinstance(link, h5py.HardLink):
        return parent[name], None
    if isinstance(link, h5py.SoftLink):
        return None, Row(depth, name, "<soft link>", f"-> {link.path} (not followed)", None)
    if isinstance(link, h5py.ExternalLink):
        return None, Row(depth, name, "<external link>",
                      f"-> {link.filename}:{link.path} (not followed)", None)
    return None, Row(depth, name, "<link>", "(not followed)", None)


def _tree_rows(depth: int, name: str, group: h5py.Group, attrs: dict[str, Any], path: str,
               max_depth: int | None, show_attrs: bool) -> Iterator[Row]:
    """A packed tree shown as the nest it holds (its tables hold builtins and numeric arrays
    only, so reading it imports nothing); a damaged one as one row saying why."""
    from h5forge.store.decoder import Stored

    class_name = _text(attrs.get("class")) or "<group>"
    try:
        value = unpack_tree(Stored(group, attrs, path))
    except (H5ForgeError, OSError, ValueError, TypeError) as exc:
        yield Row(depth, name, class_name, f"damaged packed tree: {exc}", None)
        return
    nbytes = 0
    for member in group:
        if isinstance(group.get(member, getlink=True), h5py.HardLink):
            table = group[member]
            if isinstance(table, h5py.Dataset):
                nbytes += table.id.get_storage_size()
    count = len(value)
    yield Row(depth, name, class_name,
              f"{count} member{'' if count == 1 else 's'} (packed tree)", nbytes)
    if show_attrs:
        yield from _attribute_rows(depth + 1, group, attrs)
    if max_depth is None or depth < max_depth:
        for key, item in _members_of(value):
            yield from _value_rows(depth + 1, key, item, max_depth)


_MISSING = object()


def _inside_tree(group: h5py.Group, parts: list[str]) -> Any:
    """The value at ``parts`` when the path runs into a packed tree (boxes looked into), else
    :data:`_MISSING` (a member may itself be None)."""
    node: Any = group
    for i, part in enumerate(parts):
        if isinstance(node, h5py.Group) and node.attrs.get("box") is not None \
                and part != "value" and "value" in node:
            node = node["value"]
        if isinstance(node, h5py.Group) and is_tree(node.attrs):
            from h5forge.store.decoder import Stored

            try:
                return member_at(unpack_tree(Stored(node, _read_attrs(node), node.name)),
                                 parts[i:])
            except (H5ForgeError, OSError, ValueError, TypeError, KeyError):
                return _MISSING  # a damaged tree or a missing member: "no such node"
        node = _lookup(node, part) if isinstance(node, h5py.Group) else None
        if node is None:
            return _MISSING
    return _MISSING


def _value_rows(depth: int, name: str, value: Any, max_depth: int | None) -> Iterator[Row]:
    """Rows for one value read out of a packed tree, and its members below it."""
    stack = [(depth, name, value)]
    while stack:
        d, key, item = stack.pop()
        if max_depth is not None and d > max_depth:
            continue
        if type(item) in (dict, list, tuple):
            n = len(item)
            yield Row(d, key, type(item).__name__, f"{n} member{'' if n == 1 else 's'}", None)
            stack.extend((d + 1, k, v) for k, v in reversed(_members_of(item)))
        elif type(item).__name__ == "ndarray":
            yield Row(d, key, "numpy.ndarray", f"{_shape(item.shape) if item.ndim else '()'} "
                                               f"{item.dtype}", None)
        else:
            yield Row(d, key, type_name(item),
                      "" if item is None else f"= {short_repr(item, _VALUE_WIDTH)}", None)


def _members_of(container: Any) -> list[tuple[str, Any]]:
    if type(container) is dict:
        return list(container.items())
    return [(str(i), v) for i, v in enumerate(container)]


# -- one node -----------------------------------------------------------------------------------
def _read_attrs(obj: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for name in obj.attrs:
        try:
            attrs[name] = obj.attrs[name]
        except (OSError, TypeError, ValueError) as exc:  # a type h5py cannot read
            attrs[name] = _Unreadable(exc)
    return attrs


class _Unreadable:
    """An attribute h5py cannot read; shown instead of failing the whole tree."""

    def __init__(self, exc: Exception):
        self.reason = f"{type(exc).__name__}: {exc}"

    def __repr__(self) -> str:
        return f"<unreadable: {self.reason}>"


def _text(value: Any) -> str | None:
    """A string attribute's text (h5py gives ``str`` or, for fixed-length strings, ``bytes``)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _node_row(depth: int, name: str, obj: Any, attrs: dict[str, Any], order: list[str],
              note: str) -> Row:
    class_name = _text(attrs.get("class"))
    if isinstance(obj, h5py.Group):
        if attrs.get("box") is not None:
            value = obj.get("value")
            boxed = _text(value.attrs.get("class")) if value is not None else None
            return Row(depth, name, f"box[{boxed or class_name or '?'}]", "", None)
        count = len(order)
        detail = f"{count} member{'' if count == 1 else 's'}"
        if note:
            detail = f"{detail} ({note})"
        if "shape" in attrs and _text(attrs.get("dtype")) is not None:  # numpy object array
            detail = f"{_shape(attrs['shape'])} {_text(attrs['dtype'])}, {detail}"
        return Row(depth, name, class_name or "<group>", detail, None)
    if isinstance(obj, h5py.Dataset):
        kind, detail = _dataset_description(obj, attrs, class_name)
        return Row(depth, name, kind, detail, obj.id.get_storage_size())
    if isinstance(obj, h5py.Datatype):
        return Row(depth, name, "<datatype>", str(obj.dtype), None)
    return Row(depth, name, f"<{type(obj).__name__}>", "", None)  # pragma: no cover


def _dataset_description(ds: h5py.Dataset, attrs: dict[str, Any],
                         class_name: str | None) -> tuple[str, str]:
    kind = class_name or "<dataset>"
    shape = ds.shape
    element_class = _text(attrs.get("element_class"))
    if element_class is not None and shape:  # a packed sequence
        kind = f"{kind}[{element_class}]"
        if element_class == "dict" and ds.dtype.names:
            n = len(ds.dtype.names)
            return kind, f"x{shape[0]} ({n} field{'' if n == 1 else 's'})"
        if len(shape) > 1:
            return kind, f"x{shape[0]} of {_shape(shape[1:])} {_dtype(ds.dtype)}"
        return kind, f"x{shape[0]}"
    if shape is None:
        return kind, "empty"
    dtype = _text(attrs.get("dtype")) or _dtype(ds.dtype)  # the logical dtype numpy had
    if _text(attrs.get("order")) == "F":  # stored transposed
        return kind, f"{_shape(shape[::-1])} {dtype} (F order)"
    return kind, f"{_shape(shape)} {dtype}"


def _shape(shape: Any) -> str:
    dims = tuple(int(n) for n in shape)
    return f"({dims[0]},)" if len(dims) == 1 else str(dims)


def _dtype(dtype: Any) -> str:
    info = h5py.check_string_dtype(dtype)
    if info is not None:
        kind = "vlen str" if info.length is None else f"str[{info.length}]"
        return kind if info.encoding == "utf-8" else f"{kind} ({info.encoding})"
    if dtype.names:
        return f"compound ({len(dtype.names)} fields)"
    return str(dtype)


# -- members and attributes ---------------------------------------------------------------------
def _inline_members(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k not in RESERVED_ATTRIBUTES}


def _inline_row(depth: int, name: str, raw: Any) -> Row:
    if isinstance(raw, _Unreadable):
        return Row(depth, name, "<attribute>", repr(raw), None)
    value = inline_value(raw)
    kind = type_name(value)
    return Row(depth, name, kind, "" if value is None else f"= {short_repr(value, _VALUE_WIDTH)}",
               None)


def member_order(children: list[str], inline: dict[str, Any],
                 attrs: dict[str, Any]) -> tuple[list[str], str]:
    """(members in load order, note): the members ``load`` gives for a group, in its order
    (:mod:`h5forge.store.members`: a dict's ``keys`` order then unlisted names; a sequence by
    index; a group without ``class`` by name), and a note naming what differs from the
    container's metadata or was left by an interrupted write (empty when consistent)."""
    leftovers = [n for n in children if is_leftover(n)]
    names = list(dict.fromkeys([*children, *inline]))
    class_name = _text(attrs.get("class"))
    notes = []
    if class_name in SEQUENCES and attrs.get("box") is None:
        items = [n for n in names if n != "instance_attributes"]
        order, odd = sequence_order(items)
        if odd:
            notes.append(f"not numbered 0..{len(order) - 1}: {odd[:5]}")
        order += [n for n in names if n == "instance_attributes"]
    elif class_name in MAPPINGS and attrs.get("keys") is not None and \
            _text(attrs.get("layout")) != "items":
        order, unlisted, missing = mapping_order(keys_list(attrs.get("keys")), names)
        if unlisted or missing:
            notes.append(describe_difference(unlisted, missing))
    elif class_name is None:
        order = sorted(n for n in names if not is_leftover(n))
    else:
        order = [n for n in sorted(names, key=_name_key) if not is_leftover(n)]
    if leftovers:
        notes.append(f"{len(leftovers)} leftover{'' if len(leftovers) == 1 else 's'} of an "
                     f"interrupted write, not loaded")
    return order, "; ".join(notes)


def _items_note(group: h5py.Group) -> str:
    """For a dict that keeps its keys as a list: a note when ``keys`` and ``values`` differ in
    length (``load`` then loads the complete pairs only)."""
    lengths = []
    for name in ("keys", "values"):
        link = group.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            return ""
        node = group[name]
        if isinstance(node, h5py.Dataset):
            lengths.append(node.shape[0] if node.shape else 0)
        else:
            lengths.append(len(sequence_order([*node, *_inline_members(_read_attrs(node))])[0]))
    if lengths[0] == lengths[1]:
        return ""
    return (f"{lengths[0]} keys but {lengths[1]} values; the first {min(lengths)} pairs are "
            f"loaded")


def _name_key(name: str) -> tuple[int, int, str]:
    if name.isascii() and name.isdigit():
        return 0, int(name), name
    return 1, 0, name


def _attribute_rows(depth: int, obj: Any, attrs: dict[str, Any]) -> list[Row]:
    """``@name = value`` rows: for a group its reserved (metadata) attributes, for a dataset
    all of them (datasets have no inline members). ``class`` comes first."""
    if isinstance(obj, h5py.Group):
        names = [k for k in attrs if k in RESERVED_ATTRIBUTES]
    else:
        names = list(attrs)
    names.sort(key=lambda k: (k != "class", k))
    return [Row(depth, f"@{k}", "", f"= {short_repr(attrs[k], 60)}", None) for k in names]
