"""Codec for neo (electrophysiology) object trees: ``neo.Block`` and everything it holds.

Each neo object is an HDF5 group named by a stable class name (``neo.AnalogSignal``, never
``neo.core.analogsignal.AnalogSignal``). Its data arrays are datasets of class ``neo.quantity``:
the magnitudes, with the units and the time axis as attributes of that dataset (``units``,
``t_start`` + ``t_start_units``, ``sampling_rate`` + ``sampling_rate_units``, ...), so h5py
alone reads a signal with its units and timing. Relationships are hard links: a signal in a
Segment and in a neo Group is one HDF5 object with two names, and ``segment``/``block``
back-references link to the parent's group. See docs/FORMAT.md, "neo".

Format 3 writes fewer HDF5 objects (each costs far more than its bytes): a plain data object
(AnalogSignal, SpikeTrain without waveforms, ImageSequence; no annotations) is that one
dataset, its ``name``/``description``/``file_origin`` attributes beside the others, and a
back-reference is left out when the parent is in the same dump and lists the object (loading
the list sets it again). Objects that need more keep the group layout; files of formats 1
and 2 load as before.

neo is never imported when h5forge is: :meth:`NeoCodec.matches` looks at the type's module
name, and neo (and quantities) are imported only when a neo object is met. A file written with
neo loads without it: every neo group becomes an :class:`~h5forge.UnknownObject` holding its
members, its ``neo.quantity`` datasets become ``UnknownObject(kind="dataset")`` with their
attributes, and dumping those writes the same layout back.
"""

from __future__ import annotations

import math
import sys
import weakref
from typing import Any

import h5py
import numpy as np

from h5forge.errors import CodecError, CorruptFileError
from h5forge.store import registry
from h5forge.store.codecs._units_text import (
    check_unit_text,
    known_units,
    quantities_text,
    quantities_units,
)
from h5forge.store.nodes import (
    RESERVED_ATTRIBUTES,
    Node,
    Stored,
    UnknownObject,
    dataset_node,
    group_node,
    inline_value,
    is_inline_scalar,
    open_child,
    read_attrs,
)

__all__ = ["NeoCodec", "STORED_NAMES", "QUANTITY"]

#: neo class (its ``__name__`` in the ``neo`` namespace) -> stored ``class`` name.
STORED_NAMES = {
    name: f"neo.{name}"
    for name in ("Block", "Segment", "Group", "AnalogSignal", "IrregularlySampledSignal",
                 "SpikeTrain", "Event", "Epoch", "ImageSequence")
}
_BY_STORED = {stored: name for name, stored in STORED_NAMES.items()}
#: ``class`` of the datasets holding a neo object's magnitudes (with a ``units`` attribute).
QUANTITY = "neo.quantity"

#: Members every neo object may have: inline (or str dataset) text, then a dict.
_TEXT = ("name", "description", "file_origin")
_CONTAINER_EXTRA = ("file_datetime", "rec_datetime", "index")
#: Child lists by class, in the order written.
_SEGMENT_LISTS = ("analogsignals", "irregularlysampledsignals", "spiketrains", "events",
                  "epochs", "imagesequences", "channelviews")
_LISTS = {
    "Block": ("segments", "groups"),
    "Segment": _SEGMENT_LISTS,
    "Group": _SEGMENT_LISTS + ("regionsofinterest", "segments", "groups"),
}
#: Data datasets by class: (member name, attribute of the object, ndim, required).
_DATA = {
    "AnalogSignal": (("signal", None, 2, True),),
    "IrregularlySampledSignal": (("signal", None, 2, True), ("times", "times", 1, True)),
    "SpikeTrain": (("times", None, 1, True), ("waveforms", "waveforms", 3, False)),
    "Event": (("times", None, 1, True),),
    "Epoch": (("times", None, 1, True), ("durations", "durations", 1, True)),
    "ImageSequence": (("image_data", None, 3, True),),
}
#: Scalar quantities, stored as attributes of the first data dataset (value and ``_units``).
_SCALARS = {
    "AnalogSignal": ("t_start", "sampling_rate"),
    "IrregularlySampledSignal": (),
    "SpikeTrain": ("t_start", "t_stop", "sampling_rate", "left_sweep"),
    "Event": (),
    "Epoch": (),
    "ImageSequence": ("t_start", "sampling_rate", "spatial_scale"),
}
_REQUIRED_SCALARS = {"AnalogSignal": ("t_start", "sampling_rate"),
                     "SpikeTrain": ("t_start", "t_stop"),
                     "ImageSequence": ("t_start", "sampling_rate", "spatial_scale")}
_LABELLED = ("Event", "Epoch")
#: Data objects that may be one dataset (format 3): one data array plus scalar attributes.
_LEAN = ("AnalogSignal", "SpikeTrain", "ImageSequence")
#: The list of its parent (a data object's ``segment``, a Segment's or Group's ``block``)
#: that holds an object of each class: where loading puts the back-reference again.
_PARENT_LIST = {
    "AnalogSignal": "analogsignals", "IrregularlySampledSignal": "irregularlysampledsignals",
    "SpikeTrain": "spiketrains", "Event": "events", "Epoch": "epochs",
    "ImageSequence": "imagesequences", "Segment": "segments", "Group": "groups",
}

_HINTS = {
    "ChannelView": "store view.resolve() (a new AnalogSignal) instead, or remove the view from "
                   "its group",
    "RegionOfInterest": "remove the region of interest from its group (store its coordinates "
                        "as annotations instead)",
    "Proxy": "load the data first (proxy.load(), or read_block(lazy=False))",
    "SpikeTrainList": "store list(segment.spiketrains) instead",
    "ObjectList": "store list(...) of its items instead",
    "ArrayDict": "store dict(obj.array_annotations) instead",
}

#: Per dump (Encoder): (id(parent), list name) -> (parent, ids of the list's items).
_LISTED: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()
#: Per load (Decoder): (file number, object address) -> the object decoded from a list item.
_SEEN: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def _is_neo_module(module: str) -> bool:
    return module == "neo" or module.startswith("neo.")


def _import_neo(need_neo: bool = True):
    """``(neo, quantities, None)``, or ``(None, None, reason)`` when they cannot be imported;
    with ``need_neo=False``, ``(None, quantities, None)`` when only quantities can."""
    try:
        import quantities
        if not need_neo:
            return None, quantities, None
        import neo
    except ImportError as exc:
        return None, None, f"{type(exc).__name__}: {exc}"
    return neo, quantities, None


def _supported(neo) -> dict[type, str]:
    """Supported neo classes of this neo version -> their names."""
    return {cls: name for name in STORED_NAMES
            if isinstance(cls := getattr(neo, name, None), type)}


# -- encoding -----------------------------------------------------------------------------------
def _units_text(q: Any, where: str) -> str:
    """The units of a quantity as text quantities reads back to the same units."""
    import quantities as pq

    return quantities_text(pq, q.dimensionality, where)


def _quantity_node(q: Any, where: str, class_name: str = QUANTITY) -> Node:
    """A ``neo.quantity`` dataset (or a lean data object's, ``class_name``): the magnitudes of
    ``q`` with a ``units`` attribute."""
    if not hasattr(q, "dimensionality") or not isinstance(q, np.ndarray):
        raise CodecError(f"cannot store {where}: expected a quantities.Quantity, got "
                         f"{type(q).__name__}; give it units with quantities.Quantity(x, units)")
    data = np.ascontiguousarray(q.view(np.ndarray))
    if data.dtype.kind not in "biufc":
        raise CodecError(f"cannot store {where}: neo data of dtype {data.dtype} (numbers only)")
    return dataset_node(class_name, data, units=_units_text(q, where))


def _put_scalar(node: Node, name: str, value: Any, where: str) -> None:
    """A scalar quantity as two attributes, ``name`` (float) and ``name_units``; a plain number
    as ``name`` alone; None as nothing."""
    if value is None:
        return
    units = getattr(value, "dimensionality", None)
    magnitude = np.asarray(getattr(value, "magnitude", value))
    if magnitude.shape != () or magnitude.dtype.kind not in "biuf":
        raise CodecError(f"cannot store {where}.{name}: expected a scalar number or quantity, "
                         f"got {value!r}")
    if units is None and magnitude.dtype.kind in "biu":
        node.attrs[name] = int(magnitude)
    else:
        node.attrs[name] = float(magnitude)
    if units is not None:
        node.attrs[f"{name}_units"] = _units_text(value, f"{where}.{name}")


def _neo_class_name(tp: Any, where: str) -> str:
    if not isinstance(tp, type) or not _is_neo_module(getattr(tp, "__module__", "")):
        raise CodecError(f"cannot store {where}: {tp!r} is not a neo class")
    return f"neo.{tp.__name__}"


def _add_common(codec: "NeoCodec", obj: Any, node: Node, enc, where: str) -> None:
    for attr in _TEXT:
        value = getattr(obj, attr, None)
        if value is not None:
            node.add(attr, enc.node(value, f"{where}.{attr}"))
    annotations = getattr(obj, "annotations", None)
    if annotations:
        value = annotations if type(annotations) is dict else dict(annotations)
        node.add("annotations", enc.node(value, f"{where}.annotations", inline=False))


def _add_list(node: Node, name: str, items: list, enc, where: str) -> None:
    if not items:
        return
    group = group_node("list")
    for i, item in enumerate(items):
        group.add(str(i), enc.node(item, f"{where}.{name}[{i}]", inline=False))
    node.add(name, group)


def _listed(enc, parent: Any, list_name: str, obj: Any) -> bool:
    """Whether ``obj`` is (by identity) an item of ``parent``'s list ``list_name``."""
    per_dump = _LISTED.get(enc)
    if per_dump is None:
        per_dump = _LISTED[enc] = {}
    entry = per_dump.get((id(parent), list_name))
    if entry is None or entry[0] is not parent:
        items = getattr(parent, list_name, None)
        entry = (parent, {id(item) for item in items} if items is not None else set())
        per_dump[(id(parent), list_name)] = entry
    return id(obj) in entry[1]


def _implied_parent(enc, obj: Any, parent: Any, kind: str) -> bool:
    """Whether the back-reference ``obj -> parent`` need not be stored: ``parent`` is in this
    dump already (being planned or planned) and holds ``obj`` in its list, so loading that
    list sets the reference again (neo's lists set ``segment``/``block`` on append)."""
    return parent is None or (enc.plan_of(parent) is not None
                              and _listed(enc, parent, _PARENT_LIST[kind], obj))


def _add_parent(node: Node, name: str, obj: Any, kind: str, enc, where: str) -> None:
    parent = getattr(obj, name, None)
    if not _implied_parent(enc, obj, parent, kind):
        node.add(name, enc.node(parent, f"{where}.{name}", inline=False))


def _encode_container(codec, obj, kind: str, enc, where: str) -> Node:
    node = group_node(STORED_NAMES[kind])
    _add_common(codec, obj, node, enc, where)
    if kind != "Group":
        for attr in _CONTAINER_EXTRA:
            value = getattr(obj, attr, None)
            if value is not None:
                node.add(attr, enc.node(value, f"{where}.{attr}"))
    elif obj.allowed_types is not None:
        node.attrs["allowed_types"] = [_neo_class_name(t, f"{where}.allowed_types")
                                       for t in obj.allowed_types]
    for name in _LISTS[kind]:
        container = getattr(obj, name, None)
        _add_list(node, name, list(container) if container is not None else [], enc, where)
    if kind != "Block":
        _add_parent(node, "block", obj, kind, enc, where)
    return node


def _lean_node(obj, kind: str, enc, where: str) -> Node | None:
    """A data object as one dataset (format 3), or None when it needs the group layout: the
    magnitudes with ``units``, the scalar quantities and the text as attributes. Only for an
    object whose other members are empty or implied (no annotations, no array annotations, no
    waveforms, text short enough for attributes, its segment's list holding it)."""
    if kind not in _LEAN or getattr(obj, "annotations", None) or \
            getattr(obj, "array_annotations", None) or getattr(obj, "waveforms", None) \
            is not None:
        return None
    text = {}
    for attr in _TEXT:
        value = getattr(obj, attr, None)
        if value is not None:
            if type(value) is not str or not is_inline_scalar(value):
                return None
            text[attr] = value
    if not _implied_parent(enc, obj, getattr(obj, "segment", None), kind):
        return None
    node = _quantity_node(obj, f"{where}.magnitude", STORED_NAMES[kind])
    for name in _SCALARS[kind]:
        _put_scalar(node, name, getattr(obj, name, None), where)
    node.attrs.update(text)
    return node


def _encode_data(codec, obj, kind: str, enc, where: str) -> Node:
    lean = _lean_node(obj, kind, enc, where)
    if lean is not None:
        return lean
    node = group_node(STORED_NAMES[kind])
    main = None
    for member, attr, _ndim, _required in _DATA[kind]:
        value = obj if attr is None else getattr(obj, attr, None)
        if value is None:
            continue
        child = _quantity_node(value, f"{where}.{attr or 'magnitude'}")
        node.add(member, child)
        if main is None:
            main = child
    for name in _SCALARS[kind]:
        _put_scalar(main, name, getattr(obj, name, None), where)
    if kind in _LABELLED:
        labels = np.asarray(obj.labels)
        node.add("labels", enc.node(labels, f"{where}.labels", inline=False))
    _add_common(codec, obj, node, enc, where)
    array_annotations = getattr(obj, "array_annotations", None)
    if array_annotations:
        node.add("array_annotations", enc.node(dict(array_annotations),
                                               f"{where}.array_annotations", inline=False))
    _add_parent(node, "segment", obj, kind, enc, where)
    return node


def _unsupported(obj: Any, where: str, neo) -> CodecError:
    tp = type(obj)
    supported = ", ".join(n for n in STORED_NAMES if getattr(neo, n, None) is not None)
    hint = "convert it to one of these (or to plain data) first"
    for key, text in _HINTS.items():
        if key in tp.__name__:
            hint = text
            break
    if not _is_neo_module(tp.__module__):  # a user subclass of a neo class
        hint = (f"it subclasses a neo class; store an instance of the neo class itself, or "
                f"register a codec for {tp.__module__}.{tp.__qualname__}")
    return CodecError(f"cannot store {where}: {tp.__module__}.{tp.__qualname__} is not a neo "
                      f"object h5forge stores (it stores neo {supported}); {hint}")


# -- decoding -----------------------------------------------------------------------------------
def _child(stored: Stored, name: str) -> Stored:
    h5obj = open_child(stored, name)
    return Stored(h5obj, read_attrs(h5obj), stored.child_path(name))


def _parse_units(text: Any, path: str, pq) -> Any:
    dim = known_units(text)  # checked and parsed before (cached)
    if dim is not None:
        return dim
    dim, why = quantities_units(pq, check_unit_text(text, path), path)
    if dim is None:
        raise CorruptFileError(f"{path}: {why} (a custom unit? define it with "
                               f"quantities.UnitQuantity before loading)")
    return dim


#: Data up to this size is read without the decoder's memory check (which costs more than
#: the read of a small signal); larger data goes through it.
_CHECKED_BYTES = 1 << 30


def _read_magnitudes(stored: Stored, ndim: int | None) -> np.ndarray:
    """The whole dataset, after checking it holds numbers of ``ndim`` dimensions (read with
    the low-level API: h5py's selection machinery costs more than a whole read here)."""
    if stored.is_group:
        stored.dataset()  # raises: a group where data belongs
    dsid = stored.h5.id
    dtype = dsid.dtype
    shape = dsid.shape
    if h5py.check_string_dtype(dtype) is not None or dtype.kind not in "biufc":
        raise CorruptFileError(f"{stored.path}: neo data must be numbers, found {dtype}")
    if shape is None or (ndim is not None and len(shape) != ndim):
        raise CorruptFileError(f"{stored.path}: neo data must be "
                               f"{'an array' if ndim is None else f'{ndim}-D'}, found shape "
                               f"{shape}")
    if math.prod(shape) * dtype.itemsize > _CHECKED_BYTES:
        stored.dataset()  # a size this machine cannot hold: ResourceLimitError
    out = np.empty(shape, dtype)
    if out.size:
        dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    return out


def _read_quantity(stored: Stored, ndim: int | None, pq) -> tuple[np.ndarray, Any]:
    if stored.class_name != QUANTITY:
        raise CorruptFileError(f"{stored.path}: expected a {QUANTITY!r} dataset, found class "
                               f"{stored.class_name!r}")
    data = _read_magnitudes(stored, ndim)
    return data, _parse_units(stored.attr("units"), stored.path, pq)


def _scalar(stored: Stored, name: str, pq, required: bool) -> Any:
    raw = stored.attrs.get(name)
    if raw is None:
        if required:
            raise CorruptFileError(f"{stored.path}: attribute {name!r} is missing")
        return None
    value = inline_value(raw)
    if type(value) not in (int, float):
        raise CorruptFileError(f"{stored.path}: attribute {name!r} must be a number, found "
                               f"{type(raw).__name__}")
    units = stored.attrs.get(f"{name}_units")
    if units is None:
        return value
    return pq.Quantity(value, _parse_units(units, f"{stored.path} ({name}_units)", pq))


def _optional(stored: Stored, dec, name: str, kind: type | tuple[type, ...] | None = None):
    if name not in stored.attrs and name not in stored.children():
        return None
    value = dec.member(stored, name)
    if kind is not None and not isinstance(value, kind):
        raise CorruptFileError(f"{stored.path}: member {name!r} must be a "
                               f"{getattr(kind, '__name__', kind)}, found "
                               f"{type(value).__name__}")
    return value


def _read_list(stored: Stored, dec, name: str) -> list | None:
    """The items of the list member ``name`` read directly, for the layout h5forge writes (a
    ``list`` group of hard links ``0``..``n-1``, no other attribute), or None for anything
    else (missing, inline, packed, odd names, other links): the decoder then reads it with
    its own checks and messages. An item reached before (a signal in a Segment and a neo
    Group) is found by its address in the file without opening it again."""
    if name in stored.attrs or name not in stored.children():
        return None
    h5obj = open_child(stored, name)
    if not isinstance(h5obj, h5py.Group) or read_attrs(h5obj) != {"class": "list"}:
        return None
    links: list[tuple[bytes, int, int]] = []
    h5obj.id.links.iterate(lambda n, info: links.append((n, info.type, info.u)), info=True)
    hard = h5py.h5l.TYPE_HARD
    addresses = {n: u for n, kind, u in links if kind == hard and type(u) is int}
    if len(addresses) != len(links) or \
            addresses.keys() != {str(i).encode() for i in range(len(links))}:
        return None
    seen = _SEEN.get(dec)
    if seen is None:
        seen = _SEEN[dec] = {}
    fileno = h5obj.id.fileno
    path = stored.child_path(name)
    items = []
    for i in range(len(links)):
        key = str(i).encode()
        address = (fileno, addresses[key])
        if address in seen:
            items.append(seen[address])
            continue
        child = h5py.h5o.open(h5obj.id, key)
        child = h5py.Group(child) if isinstance(child, h5py.h5g.GroupID) else \
            h5py.Dataset(child) if isinstance(child, h5py.h5d.DatasetID) else None
        if child is None:
            raise CorruptFileError(f"{path}/{i}: a named datatype is not a stored object")
        item = seen[address] = dec.decode(child, f"{path}/{i}")
        items.append(item)
    return items


def _check_members(stored: Stored, allowed: set[str]) -> None:
    extra = [n for n in stored.member_names() if n not in allowed]
    if extra:
        raise CorruptFileError(f"{stored.path}: {stored.class_name} has no member(s) "
                               f"{extra[:5]}; the file is damaged or from a newer h5forge")


def _finish_common(stored: Stored, dec, obj: Any) -> None:
    annotations = _optional(stored, dec, "annotations", dict)
    if annotations is not None:
        obj.annotations = annotations


def _neo_classes(names: Any, path: str, neo) -> list[type]:
    """The neo classes a Group's ``allowed_types`` names (``neo.SpikeTrain``, ...)."""
    names = [names] if isinstance(names, str) else names
    classes = []
    for name in names if isinstance(names, list) else [names]:
        cls = None
        if isinstance(name, str) and name.startswith("neo.") and name[4:].isidentifier():
            cls = getattr(neo, name[4:], None)
        if not isinstance(cls, type) or not issubclass(cls, neo.core.baseneo.BaseNeo):
            raise CorruptFileError(f"{path}: allowed_types {names!r} are not neo classes "
                                   f"this neo has")
        classes.append(cls)
    return classes


def _decode_container(stored: Stored, dec, kind: str, neo) -> Any:
    lists = _LISTS[kind]
    allowed = {*_TEXT, "annotations", *lists}
    if kind != "Block":
        allowed.add("block")
    if kind == "Group":
        allowed.add("allowed_types")
    else:
        allowed.update(_CONTAINER_EXTRA)
    stored.group()  # a dataset here: "needs a group"
    _check_members(stored, allowed)
    kwargs = {attr: _optional(stored, dec, attr, str) for attr in _TEXT}
    if kind == "Group":
        names = _optional(stored, dec, "allowed_types")
        if names is not None:
            kwargs["allowed_types"] = _neo_classes(names, stored.path, neo)
    else:
        import datetime as dt

        kwargs["file_datetime"] = _optional(stored, dec, "file_datetime", dt.datetime)
        kwargs["rec_datetime"] = _optional(stored, dec, "rec_datetime", dt.datetime)
        kwargs["index"] = _optional(stored, dec, "index", (int, np.integer))
    obj = getattr(neo, kind)(**kwargs)
    dec.register(stored, obj)
    _finish_common(stored, dec, obj)
    for name in lists:
        items = _read_list(stored, dec, name)
        if items is None:  # anything unusual: the decoder's own rules and messages
            items = _optional(stored, dec, name, list)
        if items:
            getattr(obj, name).extend(items)
    if kind != "Block":
        parent = _optional(stored, dec, "block", neo.Block)
        if parent is not None:
            obj.block = parent
    return obj


def _decode_data(stored: Stored, dec, kind: str, neo, pq) -> Any:
    if not stored.is_group:
        return _decode_lean(stored, dec, kind, neo, pq)
    specs = _DATA[kind]
    allowed = {*_TEXT, "annotations", "array_annotations", "segment", *(s[0] for s in specs)}
    if kind in _LABELLED:
        allowed.add("labels")
    _check_members(stored, allowed)
    stored.group()
    arrays: dict[str, tuple[np.ndarray, Any]] = {}
    main = None
    for member, _attr, ndim, required in specs:
        if not required and member not in stored.children():
            continue
        child = _child(stored, member)
        arrays[member] = _read_quantity(child, ndim, pq)
        if main is None:
            main = child
    scalars = {name: _scalar(main, name, pq, name in _REQUIRED_SCALARS.get(kind, ()))
               for name in _SCALARS[kind]}
    text = {attr: _optional(stored, dec, attr, str) for attr in _TEXT}
    labels = None
    if kind in _LABELLED:
        labels = _optional(stored, dec, "labels", np.ndarray)
    obj = _build(kind, neo, pq, arrays, scalars, text, labels)
    dec.register(stored, obj)
    _finish_common(stored, dec, obj)
    array_annotations = _optional(stored, dec, "array_annotations", dict)
    if array_annotations:
        obj.array_annotate(**array_annotations)
    parent = _optional(stored, dec, "segment", neo.Segment)
    if parent is not None:
        obj.segment = parent
    return obj


def _decode_lean(stored: Stored, dec, kind: str, neo, pq) -> Any:
    """A data object stored as one dataset (format 3): magnitudes, ``units``, the scalar
    quantities and the text as attributes."""
    if kind not in _LEAN:
        raise CorruptFileError(f"{stored.path}: a {stored.class_name} is stored as a group, "
                               f"found a dataset")
    scalar_names = _SCALARS[kind]
    allowed = {"class", "h5forge_format", "units", *_TEXT, *scalar_names,
               *(f"{name}_units" for name in scalar_names)}
    extra = [name for name in stored.attrs if name not in allowed]
    if extra:
        raise CorruptFileError(f"{stored.path}: {stored.class_name} has no member(s) "
                               f"{extra[:5]}; the file is damaged or from a newer h5forge")
    data = _read_magnitudes(stored, _DATA[kind][0][2])
    units = _parse_units(stored.attr("units"), stored.path, pq)
    required = _REQUIRED_SCALARS.get(kind, ())
    scalars = {name: _scalar(stored, name, pq, name in required) for name in scalar_names}
    text = {}
    for attr in _TEXT:
        value = stored.attrs.get(attr)
        if value is not None and type(value) is not str:
            raise CorruptFileError(f"{stored.path}: attribute {attr!r} must be a string, found "
                                   f"{type(value).__name__}")
        text[attr] = value
    obj = _build(kind, neo, pq, {_DATA[kind][0][0]: (data, units)}, scalars, text, None)
    dec.register(stored, obj)
    return obj


def _build(kind: str, neo, pq, arrays: dict[str, tuple[np.ndarray, Any]],
           scalars: dict[str, Any], text: dict[str, Any], labels: Any) -> Any:
    """The neo data object of ``kind`` from its arrays (magnitudes, units), scalar quantities,
    text and labels."""
    data, units = arrays[_DATA[kind][0][0]]
    cls = getattr(neo, kind)
    if kind == "AnalogSignal":
        return cls(data, units=units, **scalars, **text)
    if kind == "IrregularlySampledSignal":
        times, time_units = arrays["times"]
        return cls(pq.Quantity(times, time_units), data, units=units, **text)
    if kind == "SpikeTrain":
        waveforms = arrays.get("waveforms")
        if waveforms is not None:
            waveforms = pq.Quantity(waveforms[0], waveforms[1])
        return cls(data, units=units, waveforms=waveforms, **scalars, **text)
    if kind == "Event":
        return cls(data, labels=labels, units=units, **text)
    if kind == "Epoch":
        durations, duration_units = arrays["durations"]
        return cls(data, durations=pq.Quantity(durations, duration_units), labels=labels,
                   units=units, **text)
    return cls(data, units=units, **scalars, **text)  # ImageSequence


def _quantity_state(stored: Stored) -> UnknownObject:
    """A ``neo.quantity`` dataset as an UnknownObject keeping its attributes."""
    data = _read_magnitudes(stored, None)
    attrs = {k: inline_value(v) for k, v in stored.attrs.items() if k != "class"}
    return UnknownObject(stored.class_name, data, attrs, kind="dataset")


def _decode_unknown(stored: Stored, dec, why: str) -> UnknownObject:
    """A neo node as an UnknownObject (neo missing): the group's members by name, its
    ``neo.quantity`` datasets with their attributes. Dumping it writes this node back."""
    dec.warn_once("neo", f"{stored.path}: class {stored.class_name!r} (and any other neo "
                  f"object in this load) needs neo and quantities, which cannot be used here "
                  f"({why}); loaded as h5forge.UnknownObject with its arrays and attributes. "
                  f"Install neo (pip install neo) and load the file again to rebuild the neo "
                  f"objects", stacklevel=5)
    if not stored.is_group:
        return _quantity_state(stored)
    meta = {k: v for k, v in stored.attrs.items()
            if k in RESERVED_ATTRIBUTES and k not in ("class", "h5forge_format")}
    obj = UnknownObject(stored.class_name, {}, meta, kind="group")
    dec.register(stored, obj)
    for name in stored.children():
        child = _child(stored, name)
        if not child.is_group and child.class_name == QUANTITY:
            obj.state[name] = _quantity_state(child)
        else:
            obj.state[name] = dec.decode(child.h5, child.path)
    for name, value in stored.attrs.items():
        if name not in RESERVED_ATTRIBUTES:
            obj.state[name] = inline_value(value)
    return obj


class NeoCodec(registry.Codec):
    """neo Block, Segment, Group, AnalogSignal, IrregularlySampledSignal, SpikeTrain, Event,
    Epoch and ImageSequence (see docs/FORMAT.md, "neo"); other neo objects raise CodecError."""

    names = (*STORED_NAMES.values(), QUANTITY)

    def matches(self, tp):
        if _is_neo_module(getattr(tp, "__module__", None) or ""):
            return True
        base = sys.modules.get("neo.core.baseneo")  # a subclass: only if neo is loaded anyway
        return base is not None and issubclass(tp, base.BaseNeo)

    def encode(self, obj, enc, where):
        neo, _pq, why = _import_neo()
        if neo is None:  # pragma: no cover - an object of a neo class without neo
            raise CodecError(f"cannot store {where}: neo cannot be imported ({why})")
        kind = _supported(neo).get(type(obj))
        if kind is None:
            raise _unsupported(obj, where, neo)
        if kind in _LISTS:
            return _encode_container(self, obj, kind, enc, where)
        return _encode_data(self, obj, kind, enc, where)

    def decode(self, stored, dec):
        name = stored.class_name
        neo, pq, why = _import_neo(need_neo=name != QUANTITY)
        if name == QUANTITY:
            if pq is None:
                return _decode_unknown(stored, dec, why)
            data, units = _read_quantity(stored, None, pq)
            return pq.Quantity(data, units)
        kind = _BY_STORED[name]
        if neo is None:
            return _decode_unknown(stored, dec, why)
        if _supported(neo).get(getattr(neo, kind, None)) is None:
            return _decode_unknown(stored, dec, f"neo {neo.__version__} has no {kind}")
        if kind in _LISTS:
            return _decode_container(stored, dec, kind, neo)
        return _decode_data(stored, dec, kind, neo, pq)

