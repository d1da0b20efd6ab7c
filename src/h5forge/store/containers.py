"""The list and dict layouts every container codec builds on: items as a packed dataset or as
members "0", "1", ...; a mapping's items by name (``keys`` in order) or as ``keys``/``values``
lists (see docs/FORMAT.md). Member order on load follows :mod:`h5forge.store.members`."""

from __future__ import annotations

from typing import Any

import numpy as np

from h5forge.errors import CorruptFileError
from h5forge.store import members, registry
from h5forge.store.decoder import Decoder, Stored
from h5forge.store.encoder import Encoder, is_plain_text
from h5forge.store.layout import (
    NAMED_KEYS_MAX,
    RESERVED_ATTRIBUTES,
    Node,
    dataset_node,
    group_node,
)
from h5forge.store.packing import pack_arrays, pack_records, pack_scalars, unpack_column
from h5forge.store.tree import is_tree, pack_tree, unpack_tree

__all__ = ["INSTANCE_ATTRIBUTES", "NAMED_KEYS_MAX", "encode_sequence", "decode_sequence",
           "encode_mapping_members", "decode_mapping_items", "is_member_name",
           "restore_instance_dict"]


INSTANCE_ATTRIBUTES = "instance_attributes"


# -- sequences ----------------------------------------------------------------------------------
def encode_sequence(enc: Encoder, codec: registry.Codec, container: Any, class_name: str,
                    items: list[Any], where: str, wheres: list[str] | None = None,
                    pack: bool = True, **attrs: Any) -> Node:
    """A list-like node: one packed dataset when the items allow it, else a group of members
    named "0", "1", ... (``wheres`` overrides the object paths used in error messages)."""
    packed = pack_scalars(items) if pack else None
    if packed is not None:
        data, h5dtype, element_class = packed
        return dataset_node(class_name, data, h5dtype=h5dtype, element_class=element_class,
                            **attrs)
    if pack and len(items) >= 2:
        table = pack_records(items)
        if table is not None:
            shared = items + [v for rec in items for v in rec.values() if type(v) is np.ndarray]
            if enc.may_pack(container, shared):
                node = dataset_node(class_name, table[0], element_class="dict",
                                    field_classes=table[1], **attrs)
                enc.claim_packed(node, container, codec, where, shared)
                return node
        else:
            stacked = pack_arrays(items)
            if stacked is not None and enc.may_pack(container, items):
                node = dataset_node(class_name, stacked, element_class="numpy.ndarray", **attrs)
                enc.claim_packed(node, container, codec, where, items)
                return node
    if pack and not attrs and class_name == type(container).__name__:
        tree = pack_tree(enc, codec, container, where)
        if tree is not None:
            return tree
    node = group_node(class_name, **attrs)
    for i, item in enumerate(items):
        node.add(str(i), enc.node(item, wheres[i] if wheres else f"{where}[{i}]"))
    return node


def decode_sequence(stored: Stored, dec: Decoder) -> list[Any]:
    """The items of a list-like node, in order."""
    if stored.is_group and is_tree(stored.attrs):
        return list(unpack_tree(stored))
    if not stored.is_group:
        return _decode_packed(stored)
    names = [n for n in stored.member_names() if n != INSTANCE_ATTRIBUTES]
    order, odd = members.sequence_order(names)
    if odd:  # changed outside h5forge: load what is there (h5forge tree shows the same)
        members.warn_mismatch(stored.path, f"not numbered 0..{len(order) - 1}: {odd[:5]}")
    return [dec.member(stored, name) for name in order]


def _decode_packed(stored: Stored) -> list[Any]:
    ds = stored.dataset()
    element_class = stored.attr("element_class")
    if ds.ndim != 1 and element_class != "numpy.ndarray":
        raise CorruptFileError(f"{stored.path}: packed sequence must be 1-D, shape {ds.shape}")
    data = ds[()]
    if element_class == "dict":
        classes = list(stored.attr("field_classes"))
        names = data.dtype.names or ()
        if len(classes) != len(names):
            raise CorruptFileError(f"{stored.path}: {len(names)} fields but "
                                   f"{len(classes)} field_classes")
        columns = [unpack_column(data[n], c) for n, c in zip(names, classes)]
        return [dict(zip(names, row)) for row in zip(*columns)]
    return unpack_column(data, element_class)


def restore_instance_dict(stored: Stored, dec: Decoder, obj: Any) -> None:
    """Set the attributes a user subclass of a builtin container kept beside its items."""
    if stored.is_group and "keys" not in stored.attrs and INSTANCE_ATTRIBUTES in stored.children():
        dec.register(stored, obj)
        saved, dec.lazy = dec.lazy, False  # an object's attributes are real arrays, never lazy
        try:
            obj.__dict__.update(dec.child(stored, INSTANCE_ATTRIBUTES))
        finally:
            dec.lazy = saved


# -- mappings -----------------------------------------------------------------------------------
def is_member_name(key: Any) -> bool:
    """Whether a dict key can be an HDF5 link name as it is."""
    return (type(key) is str and key not in ("", ".") and "/" not in key
            and is_plain_text(key))


def encode_mapping_members(enc: Encoder, node: Node, mapping: dict, where: str, *,
                           inline: bool = True, named: bool = True,
                           attribute_style: bool = False) -> Node:
    """Add ``mapping``'s items to group ``node``: named by their keys when every key is a
    usable HDF5 name, else as two list nodes ``keys`` and ``values`` (``layout`` = items).
    ``attribute_style`` names members ``obj.key`` rather than ``obj['key']`` in error messages."""
    keys = list(mapping)
    wheres = [f"{where}.{k}" if attribute_style else f"{where}[{k!r}]" for k in keys]
    if named and len(keys) <= NAMED_KEYS_MAX and all(is_member_name(k) for k in keys):
        node.attrs["keys"] = keys
        for key, member_where in zip(keys, wheres):
            node.add(key, enc.node(mapping[key], member_where,
                                   inline=inline and key not in RESERVED_ATTRIBUTES))
        return node
    node.attrs["layout"] = "items"
    node.add("keys", enc.node(keys, f"{where}.keys()", inline=False))
    values = list(mapping.values())
    list_codec = registry.codec_for_type(list)
    node.add("values", encode_sequence(enc, list_codec, values, "list", values, where, wheres))
    return node


def decode_mapping_items(stored: Stored, dec: Decoder) -> list[tuple[Any, Any]]:
    """The (key, value) pairs of a mapping node, in stored order."""
    if stored.attrs.get("layout") == "items":
        keys = dec.child(stored, "keys")
        values = dec.child(stored, "values")
        if not isinstance(keys, list) or not isinstance(values, list):
            raise CorruptFileError(f"{stored.path}: 'keys' and 'values' must be lists")
        if len(keys) != len(values):  # changed outside h5forge: load the complete pairs
            members.warn_mismatch(stored.path, f"{len(keys)} keys but {len(values)} values; "
                                               f"the extra ones are not loaded")
        return list(zip(keys, values))
    keys = stored.attrs.get("keys")
    names = stored.member_names()
    if keys is None:
        order = sorted(names)
    else:  # changed outside h5forge: load what is there (h5forge tree shows the same)
        order, unlisted, missing = members.mapping_order(members.keys_list(keys), names)
        if unlisted or missing:
            members.warn_mismatch(stored.path, members.describe_difference(unlisted, missing))
    return [(name, dec.member(stored, name)) for name in order]
