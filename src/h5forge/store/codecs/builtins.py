"""Codecs for Python's builtin types and collections (see docs/FORMAT.md)."""

from __future__ import annotations

import collections
import enum
import warnings

import h5py
import numpy as np

from h5forge.errors import CodecError, UnsafeContentError
from h5forge.store import registry
from h5forge.store.nodes import (
    INSTANCE_ATTRIBUTES,
    dataset_node,
    decode_mapping_items,
    decode_sequence,
    encode_mapping_members,
    encode_sequence,
    group_node,
    is_tree,
    pack_tree,
    read_str,
    restore_instance_dict,
    str_dataset,
    unpack_tree,
)

__all__ = ["AtomCodec", "BytearrayCodec", "SequenceCodec", "MappingCodec", "RangeSliceCodec",
           "NamedTupleCodec", "EnumCodec"]

_STR = h5py.string_dtype()
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


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
        return dataset_node(self.name, np.frombuffer(bytes(obj), dtype=np.uint8))

    def decode(self, stored, dec):
        return bytearray(stored.read_bytes())


class SequenceCodec(registry.Codec):
    """list, tuple, set, frozenset and deque (and user subclasses of list/tuple/set)."""

    types = (list, tuple, set, frozenset, collections.deque)
    _builtin = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset,
                "collections.deque": collections.deque}
    names = tuple(_builtin)

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
        if stored.is_group and is_tree(stored.attrs):
            return unpack_tree(stored)
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


class MappingCodec(registry.Codec):
    """dict, OrderedDict, defaultdict and user subclasses of dict."""

    types = (dict, collections.OrderedDict, collections.defaultdict)
    _builtin = {"dict": dict, "collections.OrderedDict": collections.OrderedDict,
                "collections.defaultdict": collections.defaultdict}
    names = tuple(_builtin)
    _factories = {t.__name__: t for t in (list, dict, set, frozenset, tuple, int, float, complex,
                                          str, bytes, bytearray, bool)}

    def matches(self, tp):
        return issubclass(tp, dict)

    def encode(self, obj, enc, where):
        tree = pack_tree(enc, self, obj, where)  # a plain dict of plain data: a few tables
        if tree is not None:
            return tree
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
        if stored.is_group and is_tree(stored.attrs):
            return unpack_tree(stored)
        cls = stored.cls or self._builtin[stored.class_name]
        stored.group()  # a mapping is always a group
        obj = cls.__new__(cls)
        base = collections.OrderedDict if issubclass(cls, collections.OrderedDict) else dict
        base.__init__(obj)
        setitem = base.__setitem__
        if isinstance(obj, collections.defaultdict):
            obj.default_factory = self._factory(stored, dec)
        dec.register(stored, obj)
        items = decode_mapping_items(stored, dec)
        if base is dict:  # in C: a million keys load in half the time of the loop below
            dict.update(obj, items)
        else:
            for key, value in items:
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

