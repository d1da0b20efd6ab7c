"""The object layout: an object's state as ``instance_attributes`` (from ``__getstate__``,
``__dict__`` or ``__slots__``), optional constructor arguments, and rebuilding it without
calling anything the class did not ask for (see docs/FORMAT.md, "Containers" and "The reduce
rule"). The object codec and codecs that fall back to it (scipy, xarray, ndarray subclasses)
use these."""

from __future__ import annotations

import contextlib
import copyreg
from typing import Any

from h5forge.errors import CorruptFileError, UnsafeContentError
from h5forge.store.containers import INSTANCE_ATTRIBUTES, encode_mapping_members
from h5forge.store.decoder import Stored, inline_value
from h5forge.store.layout import group_node
from h5forge.store.lazy import LazyArray

__all__ = ["INSTANCE_ATTRIBUTES", "CLASS_ATTRIBUTES", "NEW_ARGUMENTS", "NEW_KEYWORDS",
           "python_layout", "object_state", "plain_state", "state_node", "eager",
           "real_arrays", "set_state", "decode_object"]


CLASS_ATTRIBUTES = "class_attributes"
NEW_ARGUMENTS = "new_arguments"
NEW_KEYWORDS = "new_keywords"


def python_layout(klass: type) -> bool:
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


def state_node(enc, state: Any, where: str):
    """The ``instance_attributes`` node: a dict of attributes (each a child node) or, for a
    custom ``__getstate__`` result that is not a dict, that result's own node."""
    if type(state) is dict:
        node = group_node("dict")
        return encode_mapping_members(enc, node, state, where, inline=False, attribute_style=True)
    return enc.node(state, f"{where}.__getstate__()", inline=False)


# -- the reduce rule ------------------------------------------------------------------------------
def own_reduce(cls: type) -> bool:
    """Whether ``cls`` overrides pickle's default ``__reduce_ex__``/``__reduce__``."""
    return cls.__reduce_ex__ is not object.__reduce_ex__ or \
        cls.__reduce__ is not object.__reduce__


def takes_part_in_reduce(cls: type) -> bool:
    return own_reduce(cls) or hasattr(cls, "__getnewargs_ex__") or \
        hasattr(cls, "__getnewargs__") or cls in copyreg.dispatch_table


def _construct(stored: Stored, dec, cls: type) -> Any:
    """A new instance of ``cls`` as the node's ``construct`` attribute says."""
    construct = inline_value(stored.attrs.get("construct"))
    if construct is None:
        return cls.__new__(cls)
    if construct not in ("new", "call"):
        raise CorruptFileError(f"{stored.path}: attribute 'construct' must be 'new' or 'call', "
                               f"found {construct!r}")
    if construct == "call":
        allowed, needs = own_reduce(cls), "__reduce__ or __reduce_ex__"
    else:
        allowed, needs = takes_part_in_reduce(cls), "__reduce__, __reduce_ex__ or __getnewargs__"
    if not allowed:
        raise UnsafeContentError(
            f"{stored.path}: class {stored.class_name!r} does not define {needs}, so h5forge "
            f"never wrote it with construct={construct!r}; refusing to call it with arguments "
            f"from the file")
    children = stored.children()
    with eager(dec):
        args = dec.child(stored, NEW_ARGUMENTS) if NEW_ARGUMENTS in children else []
        kwargs = dec.child(stored, NEW_KEYWORDS) if NEW_KEYWORDS in children else {}
    if type(args) is not list or type(kwargs) is not dict or \
            not all(type(k) is str for k in kwargs):
        raise CorruptFileError(f"{stored.path}: {NEW_ARGUMENTS} must be a list and "
                               f"{NEW_KEYWORDS} a dict of str keys")
    args = [real_arrays(a) for a in args]
    if construct == "call":
        if kwargs:
            raise CorruptFileError(f"{stored.path}: construct 'call' takes no {NEW_KEYWORDS}")
        return cls(*args)
    return cls.__new__(cls, *args, **kwargs)


@contextlib.contextmanager
def eager(dec):
    """Decode with ``lazy`` off: arrays that end up inside an object (its state, its
    constructor's arguments) must be real arrays, not :class:`LazyArray`."""
    saved = dec.lazy
    dec.lazy = False
    try:
        yield
    finally:
        dec.lazy = saved


def real_arrays(value: Any) -> Any:
    """``value`` with LazyArray members of a dict state (a shared array first loaded lazily
    elsewhere) read in full."""
    if isinstance(value, LazyArray):
        return value.load()
    if type(value) is dict and any(isinstance(v, LazyArray) for v in value.values()):
        return {k: v.load() if isinstance(v, LazyArray) else v for k, v in value.items()}
    return value


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


def decode_object(stored: Stored, dec) -> Any:
    """Rebuild an instance of ``stored.cls`` stored in the object layout: construct it (as the
    node's ``construct`` attribute says), then restore its state (after the class's
    ``__h5forge_migrate__`` when the stored ``class_version`` differs)."""
    cls = stored.cls
    obj = _construct(stored, dec, cls)
    dec.register(stored, obj)
    if stored.attrs.get("construct") is not None and \
            INSTANCE_ATTRIBUTES not in stored.children():
        return obj  # rebuilt by its constructor alone (pickle's state was None)
    with eager(dec):
        state = real_arrays(dec.child(stored, INSTANCE_ATTRIBUTES))
    stored_version = stored.attrs.get("class_version")
    if hasattr(cls, "__h5forge_migrate__") and \
            inline_value(stored_version) != getattr(cls, "__h5forge_version__", None):
        state = cls.__h5forge_migrate__(state, inline_value(stored_version))
    if hasattr(cls, "__setstate__"):
        obj.__setstate__(state)
    else:
        set_state(obj, state, stored.path)
    return obj
