"""User classes (plain, dataclasses, attrs, ``__slots__``), unknown classes, foreign nodes,
boxed leaves and (only when allowed) pickled objects.

A user object is a group with ``class`` = its qualified name and a child group
``instance_attributes`` holding its state, one child node per attribute (the seed's layout).
State comes from a custom ``__getstate__`` if the class has one, else from ``__dict__`` and
``__slots__``; loading creates the instance with ``cls.__new__`` (``__init__`` is not called)
and restores the state with ``__setstate__`` or plain attribute assignment.
"""

from __future__ import annotations

import inspect
import io
import pickle
import socket
import types
from typing import Any

import h5py
import numpy as np

from h5forge.errors import CodecError, CorruptFileError
from h5forge.store import registry
from h5forge.store.codecs.builtins import encode_mapping_members, read_str, str_dataset
from h5forge.store.decoder import Stored, inline_value
from h5forge.store.layout import RESERVED_ATTRIBUTES, dataset_node, group_node
from h5forge.store.unknown import UnknownObject

__all__ = ["ObjectCodec", "object_state"]

INSTANCE_ATTRIBUTES = "instance_attributes"
CLASS_ATTRIBUTES = "class_attributes"
#: Python-defined classes whose instances stand for live resources, not data.
_LIVE = (io.IOBase, socket.socket, h5py.HLObject, types.ModuleType, types.FunctionType,
         types.MethodType, types.GeneratorType, types.CoroutineType, BaseException)


def _python_layout(klass: type) -> bool:
    """Whether ``klass`` keeps its instance state where Python can see it: in ``__dict__`` or
    ``__slots__``, adding no C fields to its base's layout (at most the slots plus the
    ``__dict__`` and ``__weakref__`` pointers)."""
    own = vars(klass).get("__slots__")
    if own is None and not klass.__dictoffset__:
        return False  # no __dict__ and no __slots__: state in C fields, if any
    slots = 0 if own is None else 1 if isinstance(own, str) else len(own)
    base = klass.__base__ or object
    return klass.__basicsize__ - base.__basicsize__ <= 8 * (slots + 2)


def _slot_names(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"
            if name not in names:
                names.append(name)
    return names


def object_state(obj: Any) -> tuple[Any, bool]:
    """(state, custom): the result of a class's own ``__getstate__`` (custom=True), else a dict
    of ``__dict__`` plus every set ``__slots__`` member."""
    cls = type(obj)
    if getattr(cls, "__getstate__", object.__getstate__) is not object.__getstate__:
        return obj.__getstate__(), True
    return plain_state(obj), False


def plain_state(obj: Any) -> dict[str, Any]:
    """``__dict__`` plus every set ``__slots__`` member of ``obj``."""
    state = dict(getattr(obj, "__dict__", None) or {})
    for name in _slot_names(type(obj)):
        try:
            state[name] = object.__getattribute__(obj, name)
        except AttributeError:
            pass  # an unset slot
    return state


def _class_data(cls: type) -> dict[str, Any]:
    """A class's own data attributes (no dunders, routines, properties or descriptors)."""
    data = {}
    for name, value in vars(cls).items():
        if name.startswith("__") or inspect.isroutine(value) or \
                isinstance(value, (property, classmethod, staticmethod, type)) or \
                hasattr(value, "__get__"):
            continue
        data[name] = value
    return data


def _state_node(enc, state: Any, where: str):
    """The ``instance_attributes`` node: a dict of attributes (each a child node) or, for a
    custom ``__getstate__`` result that is not a dict, that result's own node."""
    if type(state) is dict:
        node = group_node("dict")
        return encode_mapping_members(enc, node, state, where, inline=False, attribute_style=True)
    return enc.node(state, f"{where}.__getstate__()", inline=False)


class ObjectCodec(registry.Codec):
    """Instances of classes defined in Python that no other codec claims: every class in the
    MRO keeps its state in ``__dict__`` or ``__slots__`` (so no C-level state, like
    ``functools.partial``'s or ``array.array``'s, is silently lost)."""

    fallback = True

    def matches(self, tp):
        return tp is not object and not issubclass(tp, _LIVE) and all(
            _python_layout(klass) for klass in tp.__mro__ if klass is not object)

    def encode(self, obj, enc, where):
        cls = type(obj)
        name = registry.class_name_of(cls)
        node = group_node(name)
        version = getattr(cls, "__h5forge_version__", None)
        if version is not None:
            node.attrs["class_version"] = version
        state, custom = object_state(obj)
        if custom:
            node.attrs["state"] = "getstate"
        node.add(INSTANCE_ATTRIBUTES, _state_node(enc, state, where))
        if registry.class_options(cls).get("class_attributes"):
            data = _class_data(cls)
            node.add(CLASS_ATTRIBUTES, encode_mapping_members(
                enc, group_node("dict"), data, name, attribute_style=True))
        return node

    def decode(self, stored, dec):
        cls = stored.cls
        obj = cls.__new__(cls)
        dec.register(stored, obj)
        state = dec.child(stored, INSTANCE_ATTRIBUTES)
        stored_version = stored.attrs.get("class_version")
        if hasattr(cls, "__h5forge_migrate__") and \
                inline_value(stored_version) != getattr(cls, "__h5forge_version__", None):
            state = cls.__h5forge_migrate__(state, inline_value(stored_version))
        if hasattr(cls, "__setstate__"):
            obj.__setstate__(state)
        else:
            set_state(obj, state, stored.path)
        return obj


def set_state(obj: Any, state: Any, path: str) -> None:
    """Restore attributes the way pickle does without ``__setstate__``."""
    if state is None:
        return
    slot_state = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slot_state = state
    for part in (state, slot_state):
        if part is None:
            continue
        if not isinstance(part, dict):
            raise CorruptFileError(f"{path}: instance_attributes must be a dict for "
                                   f"{type(obj).__qualname__}, found {type(part).__name__}")
        for key, value in part.items():
            object.__setattr__(obj, key, value)


class UnknownCodec(registry.Codec):
    """Nodes whose class cannot be resolved -> :class:`UnknownObject`, and back."""

    types = (UnknownObject,)
    names = ("h5forge.unknown",)

    def encode(self, obj, enc, where):
        if obj.kind == "dataset":
            if isinstance(obj.state, str):
                return str_dataset(obj.class_name, obj.state, **obj.attrs)
            data = np.asarray(obj.state)
            if data.dtype.kind in "UO":  # text read from a UTF-8 dataset
                return dataset_node(obj.class_name, data.astype(object),
                                    h5dtype=h5py.string_dtype(), **obj.attrs)
            return dataset_node(obj.class_name, data, **obj.attrs)
        node = group_node(obj.class_name, **obj.attrs)
        if obj.kind == "object":
            node.add(INSTANCE_ATTRIBUTES, _state_node(enc, obj.state, where))
            return node
        if not isinstance(obj.state, dict):
            raise CodecError(f"cannot store {where}: UnknownObject of kind 'group' needs a dict "
                             f"state, found {type(obj.state).__name__}")
        for key, value in obj.state.items():
            if key == INSTANCE_ATTRIBUTES and type(value) is dict:  # e.g. an ndarray subclass
                node.add(key, _state_node(enc, value, f"{where}.state[{key!r}]"))
                continue
            node.add(key, enc.node(value, f"{where}.state[{key!r}]",
                                   inline=key not in RESERVED_ATTRIBUTES))
        return node

    def decode(self, stored, dec):
        name = stored.class_name
        meta = {k: v for k, v in stored.attrs.items()
                if k in RESERVED_ATTRIBUTES and k not in ("class", "h5forge_format")}
        if not stored.is_group:
            return UnknownObject(name, _dataset_value(stored), meta, kind="dataset")
        children = stored.children()
        if INSTANCE_ATTRIBUTES in children and \
                not set(children) - {INSTANCE_ATTRIBUTES, CLASS_ATTRIBUTES}:
            obj = UnknownObject(name, None, meta, kind="object")
            dec.register(stored, obj)
            obj.state = dec.child(stored, INSTANCE_ATTRIBUTES)
            return obj
        obj = UnknownObject(name, {}, meta, kind="group")
        dec.register(stored, obj)
        obj.state.update(dec.members(stored))
        return obj


def _dataset_value(stored: Stored) -> Any:
    ds = stored.dataset()
    if h5py.check_string_dtype(ds.dtype) is not None:
        if ds.ndim == 0:
            return read_str(stored)
        return ds.asstr()[()]
    if ds.shape is None:
        return None
    return ds[()]


class ForeignCodec(UnknownCodec):
    """Nodes without a ``class`` attribute (written by other tools): groups load as dicts of
    their members, datasets as their data."""

    types = ()
    names = ("h5forge.foreign",)

    def decode(self, stored, dec):
        if not stored.is_group:
            return _dataset_value(stored)
        out: dict[str, Any] = {}
        dec.register(stored, out)
        for name in sorted(stored.member_names()):
            out[name] = dec.member(stored, name)
        return out


class BoxCodec(registry.Codec):
    """A leaf stored at a place that must be a group: the leaf is the child ``value``."""

    names = ("h5forge.box",)
    tracks_identity = False

    def decode(self, stored, dec):
        return dec.child(stored, "value")


class PickleCodec(registry.Codec):
    """Pickled objects: written only with ``dump(..., allow_pickle=True)``, read only with
    ``load(..., allow_pickle=True)`` (unpickling runs code chosen by the file)."""

    names = ("pickle",)

    def encode(self, obj, enc, where):
        try:
            payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - any pickling failure means "cannot store"
            raise CodecError(f"cannot store {where}: no codec, and pickling failed ({exc})") \
                from exc
        return dataset_node("pickle", np.frombuffer(payload, dtype=np.uint8))

    def decode(self, stored, dec):
        return pickle.loads(stored.read_bytes())


for _codec in (ObjectCodec, UnknownCodec, ForeignCodec, BoxCodec, PickleCodec):
    registry.register_codec(_codec)
