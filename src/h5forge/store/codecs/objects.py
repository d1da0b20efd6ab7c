"""User classes (plain, dataclasses, attrs, ``__slots__``), unknown classes, foreign nodes,
boxed leaves and (only when allowed) pickled objects.

A user object is a group with ``class`` = its qualified name and a child group
``instance_attributes`` holding its state, one child node per attribute (the seed's layout).
State comes from a custom ``__getstate__`` if the class has one, else from ``__dict__`` and
``__slots__``; loading creates the instance with ``cls.__new__`` (``__init__`` is not called)
and restores the state with ``__setstate__`` or plain attribute assignment.

The reduce rule (see docs/FORMAT.md, "The reduce rule"): a class that takes part in pickle's
protocol (``__reduce__``/``__reduce_ex__`` of its own, ``__getnewargs__``/``__getnewargs_ex__``)
is stored the way pickle would rebuild it, but only when the rebuilding callable is the class
itself (``cls(*args)``, attribute ``construct`` = ``call``) or ``cls.__new__`` (pickle's
``copyreg.__newobj__``/``__newobj_ex__``, ``construct`` = ``new``); the arguments are the child
nodes ``new_arguments`` (a list) and ``new_keywords`` (a dict). Any other callable (a module
function such as astropy's ``_recreate_irreducible_unit``) is refused at dump: h5forge never
calls a function named in a file, and storing the plain state instead would load a look-alike.
"""

from __future__ import annotations

import copyreg
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
from h5forge.store.nodes import (
    CLASS_ATTRIBUTES,
    INSTANCE_ATTRIBUTES,
    NEW_ARGUMENTS,
    NEW_KEYWORDS,
    RESERVED_ATTRIBUTES,
    Node,
    Stored,
    UnknownObject,
    dataset_node,
    decode_object,
    eager,
    encode_mapping_members,
    group_node,
    object_state,
    python_layout,
    read_str,
    real_arrays,
    state_node,
    str_dataset,
)
from h5forge.store.state import own_reduce, takes_part_in_reduce

__all__ = ["ObjectCodec", "UnknownCodec", "ForeignCodec", "BoxCodec", "PickleCodec",
           "NamespaceCodec", "reduce_form"]

#: Members of an object's group that are always child nodes (never inline attributes).
_STRUCTURAL = frozenset({INSTANCE_ATTRIBUTES, CLASS_ATTRIBUTES, NEW_ARGUMENTS, NEW_KEYWORDS})
#: Python-defined classes whose instances stand for live resources, not data.
_LIVE = (io.IOBase, socket.socket, h5py.HLObject, types.ModuleType, types.FunctionType,
         types.MethodType, types.GeneratorType, types.CoroutineType, BaseException)


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


class ObjectCodec(registry.Codec):
    """Instances of classes defined in Python that no other codec claims: every class in the
    MRO keeps its state in ``__dict__`` or ``__slots__`` (so no C-level state, like
    ``functools.partial``'s or ``array.array``'s, is silently lost)."""

    fallback = True

    def matches(self, tp):
        return tp is not object and not issubclass(tp, _LIVE) and all(
            python_layout(klass) for klass in tp.__mro__ if klass is not object)

    def encode(self, obj, enc, where):
        cls = type(obj)
        name = registry.class_name_of(cls)
        node = group_node(name)
        version = getattr(cls, "__h5forge_version__", None)
        if version is not None:
            node.attrs["class_version"] = version
        form = reduce_form(obj, where)
        if form is None:
            state, custom = object_state(obj)
        else:
            construct, args, kwargs, state, custom = form
            node.attrs["construct"] = construct
            _add_arguments(enc, node, obj, args, kwargs, where)
        if custom:
            node.attrs["state"] = "getstate"
        if form is None or state is not None:
            node.add(INSTANCE_ATTRIBUTES, state_node(enc, state, where))
        if registry.class_options(cls).get("class_attributes"):
            data = _class_data(cls)
            node.add(CLASS_ATTRIBUTES, encode_mapping_members(
                enc, group_node("dict"), data, name, attribute_style=True))
        return node

    def decode(self, stored, dec):
        return decode_object(stored, dec)


def _callable_name(func: Any) -> str:
    module = getattr(func, "__module__", None) or "?"
    return f"{module}.{getattr(func, '__qualname__', type(func).__qualname__)}"


def reduce_form(obj: Any, where: str) -> tuple[str, tuple, dict, Any, bool] | None:
    """How pickle would rebuild ``obj``, when that is not just ``cls.__new__(cls)`` + state:
    ``(construct, args, kwargs, state, custom)`` with ``construct`` = ``"new"``
    (``cls.__new__(cls, *args, **kwargs)``) or ``"call"`` (``cls(*args)``); None for plain
    objects. Raises :class:`CodecError` when pickle would call anything else (a function named
    by the class), lists/dict items or a state setter, which h5forge never does on load."""
    cls = type(obj)
    if not takes_part_in_reduce(cls):
        return None
    name = registry.class_name_of(cls)
    if cls in copyreg.dispatch_table:
        raise CodecError(f"cannot store {where}: {name} is pickled by a copyreg function "
                         f"({_callable_name(copyreg.dispatch_table[cls])}), which h5forge never "
                         f"calls from a file; register a codec for it (h5forge.register_codec)")
    try:
        rv = obj.__reduce_ex__(4)
    except Exception as exc:  # noqa: BLE001 - a class refusing pickle refuses storage too
        raise CodecError(f"cannot store {where}: {name}.__reduce_ex__ failed "
                         f"({type(exc).__name__}: {exc})") from exc
    if isinstance(rv, str):
        raise CodecError(f"cannot store {where}: {name} pickles by reference to the global "
                         f"{rv!r} (a singleton), which h5forge does not rebuild from a file; "
                         f"register a codec for it")
    if not isinstance(rv, tuple) or not 2 <= len(rv) <= 6:
        raise CodecError(f"cannot store {where}: {name}.__reduce_ex__ returned {type(rv)}")
    func, args, state = rv[0], rv[1], rv[2] if len(rv) > 2 else None
    extra = [part for part in rv[3:] if part is not None]
    if extra:
        raise CodecError(f"cannot store {where}: {name}.__reduce_ex__ adds list/dict items or a "
                         f"state setter, which h5forge does not replay; register a codec for it")
    own = own_reduce(cls)
    if func is copyreg.__newobj__ and args and args[0] is cls:
        construct, args, kwargs = "new", tuple(args[1:]), {}
    elif func is copyreg.__newobj_ex__ and len(args) == 3 and args[0] is cls:
        construct, args, kwargs = "new", tuple(args[1]), dict(args[2])
    elif func is copyreg._reconstructor and len(args) == 3 and args[0] is cls and \
            args[1] is object and args[2] is None:
        construct, args, kwargs = "new", (), {}
    elif func is cls:
        construct, args, kwargs = "call", tuple(args), {}
    else:
        raise CodecError(
            f"cannot store {where}: pickle rebuilds {name} by calling "
            f"{_callable_name(func)}, and h5forge never calls a function named in a file "
            f"(storing the bare state would load a look-alike). Register a codec for it "
            f"(h5forge.register_codec), or convert it to data first")
    if not own:  # pickle's default protocol: keep h5forge's usual state layout
        if construct == "new" and not args and not kwargs:
            return None
        state, custom = object_state(obj)
        return construct, args, kwargs, state, custom
    return construct, args, kwargs, state, type(state) is not dict


def _refers_to(node: Node, target: Node) -> bool:
    """Whether the planned subtree ``node`` holds a hard link to ``target``."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.kind == "link" and current.data is target:
            return True
        if current.kind == "group":
            stack.extend(current.members.values())
    return False


def _add_arguments(enc, node: Node, obj: Any, args: tuple, kwargs: dict, where: str) -> None:
    holder = enc.plan_of(obj)
    parts = []
    if args:
        parts.append((NEW_ARGUMENTS, enc.node(list(args), f"{where}.__reduce__()[1]",
                                             inline=False)))
    if kwargs:
        parts.append((NEW_KEYWORDS, enc.node(dict(kwargs), f"{where}.__reduce__() keywords",
                                            inline=False)))
    for member, part in parts:
        if holder is not None and _refers_to(part, holder):
            raise CodecError(f"cannot store {where}: the arguments that rebuild it refer back "
                             f"to the object itself (pickle cannot rebuild this either)")
        node.add(member, part)


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
            node.add(INSTANCE_ATTRIBUTES, state_node(enc, obj.state, where))
            return node
        if not isinstance(obj.state, dict):
            raise CodecError(f"cannot store {where}: UnknownObject of kind 'group' needs a dict "
                             f"state, found {type(obj.state).__name__}")
        for key, value in obj.state.items():
            if key == INSTANCE_ATTRIBUTES and type(value) is dict:  # e.g. an ndarray subclass
                node.add(key, state_node(enc, value, f"{where}.state[{key!r}]"))
                continue
            node.add(key, enc.node(value, f"{where}.state[{key!r}]",
                                   inline=key not in RESERVED_ATTRIBUTES and
                                   key not in _STRUCTURAL))
        return node

    def decode(self, stored, dec):
        name = stored.class_name
        meta = {k: v for k, v in stored.attrs.items()
                if k in RESERVED_ATTRIBUTES and k not in ("class", "h5forge_format")}
        if not stored.is_group:  # a dataset has no inline members: every attribute is metadata
            meta = {k: v for k, v in stored.attrs.items() if k not in ("class", "h5forge_format")}
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
        return dataset_node(self.name, np.frombuffer(payload, dtype=np.uint8))

    def decode(self, stored, dec):
        return pickle.loads(stored.read_bytes())


class NamespaceCodec(registry.Codec):
    """``types.SimpleNamespace``: the object layout (its attributes in
    ``instance_attributes``). Decoded by its registered name, so loading it does not open the
    ``types`` module to the class resolver (see ``registry._NEVER_IMPLICIT``)."""

    types = (types.SimpleNamespace,)
    names = ("types.SimpleNamespace",)

    def encode(self, obj, enc, where):
        node = group_node(self.name)
        node.add(INSTANCE_ATTRIBUTES, state_node(enc, dict(vars(obj)), where))
        return node

    def decode(self, stored, dec):
        obj = types.SimpleNamespace()
        dec.register(stored, obj)
        with eager(dec):
            state = real_arrays(dec.child(stored, INSTANCE_ATTRIBUTES))
        if type(state) is not dict or not all(type(k) is str for k in state):
            raise CorruptFileError(f"{stored.path}: a SimpleNamespace needs a dict of str keys "
                                   f"in {INSTANCE_ATTRIBUTES}")
        vars(obj).update(state)
        return obj

