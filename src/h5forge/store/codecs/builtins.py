"""Codecs for Python's builtin types and collections (see docs/FORMAT.md)."""

from __future__ import annotations

import collections
import enum
import warnings
from typing import Any

import h5py
import numpy as np

from h5forge.errors import CodecError, CorruptFileError, UnsafeContentError
from h5forge.store import members, registry
from h5forge.store.decoder import Decoder, Stored
from h5forge.store.encoder import Encoder, is_plain_text
from h5forge.store.layout import RESERVED_ATTRIBUTES, Node, dataset_node, group_node
from h5forge.store.packing import pack_arrays, pack_records, pack_scalars, unpack_column

__all__ = ["encode_mapping_members", "decode_mapping_items", "encode_sequence", "decode_sequence"]

_STR = h5py.string_dtype()
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: Dicts with more string keys than this use the items layout (keys in one dataset).
NAMED_KEYS_MAX = 512
INSTANCE_ATTRIBUTES = "instance_attributes"


def read_str(stored: Stored) -> str:
    """A str stored as a 0-d UTF-8 dataset, or as uint8 bytes with an ``encoding`` attribute."""
    ds = stored.dataset()
    encoding = stored.attrs.get("encoding")
    if encoding is not None:
        return stored.read_bytes().decode("utf-8", "surrogatepass")
    if h5py.check_string_dtype(ds.dtype) is None or ds.shape != ():
        raise CorruptFileError(f"{stored.path}: class {stored.class_name!r} needs a scalar "
                               f"string dataset, found {ds.dtype} {ds.shape}")
    value = ds[()]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def str_dataset(class_name: str, text: str, **attrs: Any) -> Node:
    if is_plain_text(text):
        return dataset_node(class_name, np.array(text, dtype=object), h5dtype=_STR, **attrs)
    raw = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    return dataset_node(class_name, raw, encoding="utf-8-surrogatepass", **attrs)


# -- atoms --------------------------------------------------------------------------------------
class AtomCodec(registry.Codec):
    """None, bool, int, float, complex, str, bytes, Ellipsis where they cannot be inline."""

    types = (type(None), bool, int, float, complex, str, bytes, type(...))
    names = ("NoneType", "bool", "int", "float", "complex", "str", "bytes", "ellipsis")
    tracks_identity = False

    def encode(self, obj, enc, where):
        tp = type(obj)
        name = registry.class_name_of(tp)
        if obj is None or obj is ...:
            return dataset_node(name, h5py.Empty("f4"))
        if tp is str:
            return str_dataset("str", obj)
        if tp is bytes:
            return dataset_node("bytes", np.frombuffer(obj, dtype=np.uint8))
        if tp is int and not _INT64_MIN <= obj <= _INT64_MAX:
            return dataset_node("int", np.array(hex(obj), dtype=object), h5dtype=_STR)
        return dataset_node(name, np.array(obj))

    def decode(self, stored, dec):
        name = stored.class_name
        if name == "NoneType":
            return None
        if name == "ellipsis":
            return ...
        if name == "str":
            return read_str(stored)
        if name == "bytes":
            return stored.read_bytes()
        value = stored.read(shape=())
        if name == "int" and isinstance(value, (bytes, str)):
            text = value.decode() if isinstance(value, bytes) else value
            return int(text, 16)
        return {"bool": bool, "int": int, "float": float, "complex": complex}[name](value)


class BytearrayCodec(registry.Codec):
    types = (bytearray,)
    names = ("bytearray",)

    def encode(self, obj, enc, where):
        return dataset_node("bytearray", np.frombuffer(bytes(obj), dtype=np.uint8))

    def decode(self, stored, dec):
        return bytearray(stored.read_bytes())


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
    node = group_node(class_name, **attrs)
    for i, item in enumerate(items):
        node.add(str(i), enc.node(item, wheres[i] if wheres else f"{where}[{i}]"))
    return node


def decode_sequence(stored: Stored, dec: Decoder) -> list[Any]:
    """The items of a list-like node, in order."""
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


class SequenceCodec(registry.Codec):
    """list, tuple, set, frozenset and deque (and user subclasses of list/tuple/set)."""

    types = (list, tuple, set, frozenset, collections.deque)
    names = ("list", "tuple", "set", "frozenset", "collections.deque")
    _builtin = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset,
                "collections.deque": collections.deque}

    def matches(self, tp):
        return issubclass(tp, (list, set, frozenset, collections.deque)) or (
            issubclass(tp, tuple) and not hasattr(tp, "_fields"))

    def encode(self, obj, enc, where):
        attrs = {}
        if isinstance(obj, collections.deque) and obj.maxlen is not None:
            attrs["maxlen"] = obj.maxlen
        instance_dict = getattr(obj, "__dict__", None)
        node = encode_sequence(enc, self, obj, registry.class_name_of(type(obj)), list(obj),
                               where, pack=not instance_dict, **attrs)
        if instance_dict:  # a user subclass: keep its attributes beside its items
            node.add(INSTANCE_ATTRIBUTES,
                     enc.node(dict(instance_dict), f"{where}.__dict__", inline=False))
        return node

    def decode(self, stored, dec):
        cls = stored.cls or self._builtin[stored.class_name]
        if issubclass(cls, (tuple, frozenset)):
            items = decode_sequence(stored, dec)
            obj = cls(items) if cls in (tuple, frozenset) else cls.__new__(cls, items)
        else:
            if issubclass(cls, collections.deque):
                maxlen = stored.attrs.get("maxlen")
                obj = cls.__new__(cls)
                collections.deque.__init__(obj, (), None if maxlen is None else int(maxlen))
            else:
                obj = cls() if cls in (list, set) else cls.__new__(cls)
            dec.register(stored, obj)
            items = decode_sequence(stored, dec)
            if isinstance(obj, set):
                set.update(obj, items)
            elif isinstance(obj, collections.deque):
                collections.deque.extend(obj, items)
            else:
                list.extend(obj, items)
        restore_instance_dict(stored, dec, obj)
        return obj


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


class MappingCodec(registry.Codec):
    """dict, OrderedDict, defaultdict and user subclasses of dict."""

    types = (dict, collections.OrderedDict, collections.defaultdict)
    names = ("dict", "collections.OrderedDict", "collections.defaultdict")
    _builtin = {"dict": dict, "collections.OrderedDict": collections.OrderedDict,
                "collections.defaultdict": collections.defaultdict}
    _factories = {t.__name__: t for t in (list, dict, set, frozenset, tuple, int, float, complex,
                                          str, bytes, bytearray, bool)}

    def matches(self, tp):
        return issubclass(tp, dict)

    def encode(self, obj, enc, where):
        node = group_node(registry.class_name_of(type(obj)))
        if isinstance(obj, collections.defaultdict) and obj.default_factory is not None:
            factory = obj.default_factory
            if not isinstance(factory, type):
                raise CodecError(f"cannot store {where}.default_factory: {factory!r} is not a "
                                 f"class; only classes can be stored as a defaultdict factory")
            node.attrs["default_factory"] = registry.class_name_of(factory)
        instance_dict = getattr(obj, "__dict__", None)
        # a user subclass keeps its attributes beside its items (items layout: no name clash)
        encode_mapping_members(enc, node, obj, where, named=not instance_dict)
        if instance_dict:
            node.add(INSTANCE_ATTRIBUTES,
                     enc.node(dict(instance_dict), f"{where}.__dict__", inline=False))
        return node

    def decode(self, stored, dec):
        cls = stored.cls or self._builtin[stored.class_name]
        stored.group()  # a mapping is always a group
        obj = cls.__new__(cls)
        base = collections.OrderedDict if issubclass(cls, collections.OrderedDict) else dict
        base.__init__(obj)
        setitem = base.__setitem__
        if isinstance(obj, collections.defaultdict):
            obj.default_factory = self._factory(stored, dec)
        dec.register(stored, obj)
        for key, value in decode_mapping_items(stored, dec):
            setitem(obj, key, value)
        restore_instance_dict(stored, dec, obj)
        return obj

    def _factory(self, stored, dec):
        name = stored.attrs.get("default_factory")
        if name is None:
            return None
        if name in self._factories:
            return self._factories[name]
        try:
            return registry.resolve_class(name, dec.trusted_modules)
        except (LookupError, UnsafeContentError) as exc:
            warnings.warn(f"{stored.path}: default_factory {name!r} cannot be found ({exc}); "
                          f"the defaultdict loads without a factory", stacklevel=2)
            return None


# -- small structured builtins ------------------------------------------------------------------
class RangeSliceCodec(registry.Codec):
    types = (range, slice)
    names = ("range", "slice")
    tracks_identity = False

    def encode(self, obj, enc, where):
        node = group_node(type(obj).__name__)
        for part in ("start", "stop", "step"):
            node.add(part, enc.node(getattr(obj, part), f"{where}.{part}"))
        return node

    def decode(self, stored, dec):
        parts = [dec.member(stored, p) for p in ("start", "stop", "step")]
        return (range if stored.class_name == "range" else slice)(*parts)


class NamedTupleCodec(registry.Codec):
    """namedtuple classes: one member per field, ``keys`` gives the field order."""

    def matches(self, tp):
        return issubclass(tp, tuple) and hasattr(tp, "_fields")

    def encode(self, obj, enc, where):
        node = group_node(registry.class_name_of(type(obj)))
        return encode_mapping_members(enc, node, obj._asdict(), where)

    def decode(self, stored, dec):
        items = decode_mapping_items(stored, dec)
        return stored.cls(**dict(items))


class EnumCodec(registry.Codec):
    """Enum / IntEnum / Flag members: the member name as a string dataset."""

    tracks_identity = False

    def matches(self, tp):
        return issubclass(tp, enum.Enum)

    def encode(self, obj, enc, where):
        name = obj.name if obj.name is not None else ""
        return str_dataset(registry.class_name_of(type(obj)), name)

    def decode(self, stored, dec):
        cls, name = stored.cls, read_str(stored)
        if name in cls.__members__:
            return cls[name]
        if issubclass(cls, enum.Flag):
            value = cls(0)
            for part in filter(None, name.split("|")):
                value |= cls[part]
            return value
        raise KeyError(f"{cls.__qualname__} has no member {name!r}")

