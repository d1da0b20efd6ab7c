"""The in-memory plan of what ``dump`` writes: a tree of nodes, built before any I/O.

Encoding first builds this plan (so an object that cannot be encoded fails before anything is
written, and the plan can be inspected for chunking/compression), then the writer turns it into
HDF5 groups, datasets, attributes and hard links.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "FORMAT_VERSION",
    "READABLE_FORMATS",
    "RESERVED_ATTRIBUTES",
    "Node",
    "group_node",
    "dataset_node",
    "inline_node",
    "link_node",
    "TREE_LAYOUT",
    "NAMED_KEYS_MAX",
    "needs_box",
]

#: Written as the ``h5forge_format`` attribute on the node ``dump`` writes. Format 2 added
#: packed runs of mixed builtin scalars (``element_class`` / field class ``mixed``); format 3
#: packed trees of small plain data (``layout`` = ``tree``) and fewer objects per neo node.
FORMAT_VERSION = "3"
#: Format versions this h5forge reads (each later one only adds layouts to the earlier).
READABLE_FORMATS = ("1", "2", "3")

#: Attribute names the format uses for metadata. A container member with one of these names is
#: stored as a child node, never as an inline attribute, so the two can never be confused.
RESERVED_ATTRIBUTES = frozenset(
    {
        "class", "h5forge_format", "box", "keys", "layout", "element_class", "field_classes",
        "maxlen", "default_factory", "dtype", "shape", "order", "encoding", "tz", "fold",
        "class_version", "state", "hardmask", "nomask",
    }
)  # fmt: skip


class Node:
    """One planned HDF5 object.

    ``kind`` is ``"group"`` (``members`` maps names to nodes), ``"dataset"`` (``data`` is an
    array-like, ``h5dtype`` an optional HDF5 dtype to store it as), ``"inline"`` (``data`` is a
    builtin scalar written as an attribute of the parent group) or ``"link"`` (``data`` is the
    node to hard-link to). ``attrs`` holds metadata attributes, ``class`` included.
    """

    __slots__ = ("kind", "attrs", "members", "data", "h5dtype", "written")

    def __init__(self, kind: str, attrs: dict[str, Any] | None = None, members=None, data=None,
                 h5dtype=None):
        self.kind = kind
        self.attrs = attrs if attrs is not None else {}
        self.members: dict[str, Node] | None = members
        self.data = data
        self.h5dtype = h5dtype
        self.written = None  # the h5py object id once written, for hard links

    @property
    def class_name(self) -> str | None:
        return self.attrs.get("class")

    def add(self, name: str, node: "Node") -> None:
        self.members[name] = node

    def become(self, other: "Node") -> None:
        """Take over ``other``'s content in place (links to this node then see the new content)."""
        for slot in ("kind", "attrs", "members", "data", "h5dtype"):
            setattr(self, slot, getattr(other, slot))

    def __repr__(self) -> str:
        if self.kind == "group":
            return f"<group {self.class_name} {list(self.members)}>"
        if self.kind == "dataset":
            return f"<dataset {self.class_name} shape={np.shape(self.data)}>"
        return f"<{self.kind} {self.data!r}>"


#: Dicts with more string keys than this use the items layout (keys in one dataset).
NAMED_KEYS_MAX = 512

#: ``layout`` attribute of a packed tree's group (see :mod:`h5forge.store.tree`).
TREE_LAYOUT = "tree"


def needs_box(node: Node) -> bool:
    """Whether ``node``, written at the top of a dump onto an existing group (the file root or a
    group passed as the target), goes into a box as member ``value``: a leaf (the group cannot
    be a dataset), or a packed tree (an update rewrites its tables as one node, swapped in
    whole, which a group that is the target itself cannot be)."""
    return node.kind != "group" or node.attrs.get("layout") == TREE_LAYOUT


def group_node(class_name: str, **attrs: Any) -> Node:
    return Node("group", {"class": class_name, **attrs}, members={})


def dataset_node(class_name: str, data: Any, h5dtype=None, **attrs: Any) -> Node:
    return Node("dataset", {"class": class_name, **attrs}, data=data, h5dtype=h5dtype)


def inline_node(value: Any) -> Node:
    return Node("inline", data=value)


def link_node(target: Node) -> Node:
    return Node("link", data=target)
