"""Codec for neo (electrophysiology) object trees: ``neo.Block`` and everything it holds.

Each neo object is an HDF5 group named by a stable class name (``neo.AnalogSignal``, never
``neo.core.analogsignal.AnalogSignal``). Its data arrays are datasets of class ``neo.quantity``:
the magnitudes, with the units and the time axis as attributes of that dataset (``units``,
``t_start`` + ``t_start_units``, ``sampling_rate`` + ``sampling_rate_units``, ...), so h5py
alone reads a signal with its units and timing. Relationships are hard links: a signal in a
Segment and in a neo Group is one HDF5 object with two names, and ``segment``/``block``
back-references link to the parent's group. See docs/FORMAT.md, "neo".

neo is never imported when h5forge is: :meth:`NeoCodec.matches` looks at the type's module
name, and neo (and quantities) are imported only when a neo object is met. A file written with
neo loads without it: every neo group becomes an :class:`~h5forge.UnknownObject` holding its
members, its ``neo.quantity`` datasets become ``UnknownObject(kind="dataset")`` with their
attributes, and dumping those writes the same layout back.
"""

from __future__ import annotations

import sys
from typing import Any

import h5py
import numpy as np

from h5forge.errors import CodecError, CorruptFileError
from h5forge.store import registry
from h5forge.store.codecs._units_text import check_unit_text, quantities_text, quantities_units
from h5forge.store.nodes import (
    RESERVED_ATTRIBUTES,
    Node,
    Stored,
    UnknownObject,
    dataset_node,
    group_node,
    inline_value,
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

# Unit texts are written and checked by the units codec (a plain unit expression, never
# evaluated as code); parsed ones are cached: quantities parses slowly.
_units_cache: dict[str, Any] = {}


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


def _quantity_node(q: Any, where: str) -> Node:
    """A ``neo.quantity`` dataset: the magnitudes of ``q`` with a ``units`` attribute."""
    if not hasattr(q, "dimensionality") or not isinstance(q, np.ndarray):
        raise CodecError(f"cannot store {where}: expected a quantities.Quantity, got "
                         f"{type(q).__name__}; give it units with quantities.Quantity(x, units)")
    data = np.ascontiguousarray(q.view(np.ndarray))
    if data.dtype.kind not in "biufc":
        raise CodecError(f"cannot store {where}: neo data of dtype {data.dtype} (numbers only)")
    return dataset_node(QUANTITY, data, units=_units_text(q, where))


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


def _add_parent(node: Node, name: str, parent: Any, enc, where: str) -> None:
    if parent is not None:
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
        _add_parent(node, "block", getattr(obj, "block", None), enc, where)
    return node


def _encode_data(codec, obj, kind: str, enc, where: str) -> Node:
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
    _add_parent(node, "segment", getattr(obj, "segment", None), enc, where)
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
    dim = _units_cache.get(text) if isinstance(text, str) else None
    if dim is not None:
        return dim
    dim, why = quantities_units(pq, check_unit_text(text, path), path)
    if dim is None:
        raise CorruptFileError(f"{path}: {why} (a custom unit? define it with "
                               f"quantities.UnitQuantity before loading)")
    if len(_units_cache) > 4096:  # a crafted file cannot grow it without end
        _units_cache.clear()
    _units_cache[text] = dim
    return dim


def _read_magnitudes(stored: Stored, ndim: int | None) -> np.ndarray:
    ds = stored.dataset()
    if h5py.check_string_dtype(ds.dtype) is not None or ds.dtype.kind not in "biufc":
        raise CorruptFileError(f"{stored.path}: neo data must be numbers, found {ds.dtype}")
    if ndim is not None and ds.ndim != ndim:
        raise CorruptFileError(f"{stored.path}: neo data must be {ndim}-D, found shape "
                               f"{ds.shape}")
    out = np.empty(ds.shape, ds.dtype)
    if out.size:
        ds.read_direct(out)
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
    _check_members(stored, allowed)
    stored.group()
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
        items = _optional(stored, dec, name, list)
        if items:
            getattr(obj, name).extend(items)
    if kind != "Block":
        parent = _optional(stored, dec, "block", neo.Block)
        if parent is not None:
            obj.block = parent
    return obj


def _decode_data(stored: Stored, dec, kind: str, neo, pq) -> Any:
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
    data, units = arrays[specs[0][0]]
    cls = getattr(neo, kind)
    if kind == "AnalogSignal":
        obj = cls(data, units=units, **scalars, **text)
    elif kind == "IrregularlySampledSignal":
        times, time_units = arrays["times"]
        obj = cls(pq.Quantity(times, time_units), data, units=units, **text)
    elif kind == "SpikeTrain":
        waveforms = arrays.get("waveforms")
        if waveforms is not None:
            waveforms = pq.Quantity(waveforms[0], waveforms[1])
        obj = cls(data, units=units, waveforms=waveforms, **scalars, **text)
    elif kind == "Event":
        obj = cls(data, labels=labels, units=units, **text)
    elif kind == "Epoch":
        durations, duration_units = arrays["durations"]
        obj = cls(data, durations=pq.Quantity(durations, duration_units), labels=labels,
                  units=units, **text)
    else:  # ImageSequence
        obj = cls(data, units=units, **scalars, **text)
    dec.register(stored, obj)
    _finish_common(stored, dec, obj)
    array_annotations = _optional(stored, dec, "array_annotations", dict)
    if array_annotations:
        obj.array_annotate(**array_annotations)
    parent = _optional(stored, dec, "segment", neo.Segment)
    if parent is not None:
        obj.segment = parent
    return obj


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

