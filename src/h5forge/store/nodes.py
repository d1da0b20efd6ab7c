"""The kit for writing a codec: everything a :class:`Codec` needs to plan nodes and read them
back, in one public module. Built-in codecs use only this and the core; so can yours.

Planning (``encode``): build nodes with :func:`group_node`/:func:`dataset_node` (the first
argument is the stored ``class`` name), add members with ``node.add(name, enc.node(value,
where))``, and use the layouts the built-in codecs share: :func:`str_dataset` for text,
:func:`array_node` for an ndarray of any dtype, :func:`encode_sequence` and
:func:`encode_mapping_members` for items, :func:`pack_tree` for a nest of plain data,
:func:`state_node` for an object's state.

Reading (``decode``): a :class:`Stored` node gives ``attrs``, ``attr(name)``, ``read()``,
``children()``; ``dec.child``/``dec.member``/``dec.members`` decode members; the readers
:func:`read_str`, :func:`read_array`, :func:`decode_sequence`, :func:`decode_mapping_items`,
:func:`unpack_tree`, :func:`decode_object` undo the layouts above. Call
``dec.register(stored, obj)`` before decoding the members of a mutable container, so cycles
resolve to it. Wrap reads whose arrays end up
inside an object in ``with eager(dec):`` (no lazy arrays there).
"""

from h5forge.store.arrays import (
    array_node,
    child_stored,
    numpy_dtype,
    read_array,
    string_dtype,
    string_dtype_attrs,
)
from h5forge.store.attributes import read_attrs
from h5forge.store.containers import (
    INSTANCE_ATTRIBUTES,
    NAMED_KEYS_MAX,
    decode_mapping_items,
    decode_sequence,
    encode_mapping_members,
    encode_sequence,
    is_member_name,
    restore_instance_dict,
)
from h5forge.store.decoder import Decoder, Stored, UnknownClassWarning, inline_value, open_child
from h5forge.store.encoder import Encoder, is_inline_list, is_inline_scalar, is_plain_text
from h5forge.store.layout import (
    RESERVED_ATTRIBUTES,
    Node,
    dataset_node,
    group_node,
    inline_node,
    link_node,
)
from h5forge.store.lazy import LAZY_MIN_BYTES, LazyArray
from h5forge.store.registry import Codec, class_name_of
from h5forge.store.state import (
    CLASS_ATTRIBUTES,
    NEW_ARGUMENTS,
    NEW_KEYWORDS,
    decode_object,
    eager,
    object_state,
    plain_state,
    python_layout,
    real_arrays,
    set_state,
    state_node,
)
from h5forge.store.strings import read_str, str_dataset
from h5forge.store.tree import is_tree, pack_tree, unpack_tree
from h5forge.store.unknown import UnknownObject

__all__ = [
    # planning
    "Codec", "Encoder", "Node", "group_node", "dataset_node", "inline_node", "link_node",
    "RESERVED_ATTRIBUTES", "class_name_of", "is_plain_text", "is_inline_scalar",
    "is_inline_list",
    # reading
    "Decoder", "Stored", "read_attrs", "open_child", "child_stored", "inline_value",
    "UnknownClassWarning", "UnknownObject", "LazyArray", "LAZY_MIN_BYTES", "eager",
    # text and arrays
    "str_dataset", "read_str", "array_node", "read_array", "string_dtype_attrs", "string_dtype",
    "numpy_dtype",
    # sequences and mappings
    "encode_sequence", "decode_sequence", "encode_mapping_members", "decode_mapping_items",
    "is_member_name", "restore_instance_dict", "NAMED_KEYS_MAX", "INSTANCE_ATTRIBUTES",
    "pack_tree", "unpack_tree", "is_tree",
    # the object layout
    "state_node", "object_state", "plain_state", "set_state", "python_layout", "real_arrays",
    "decode_object", "CLASS_ATTRIBUTES", "NEW_ARGUMENTS", "NEW_KEYWORDS",
]  # fmt: skip
