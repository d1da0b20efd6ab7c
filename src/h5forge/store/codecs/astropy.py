"""astropy: ``Quantity`` (and its subclasses ``Angle``, ``Longitude``, ``Distance``,
``Magnitude``, ...), units, ``Time``/``TimeDelta`` and ``Table``/``QTable``.

Plain layouts, readable without astropy (see docs/FORMAT.md, "astropy"):

* a quantity is the dataset of its values with a ``unit`` attribute in astropy's generic text
  form (``km / s2``, ``mag(1)``), checked at dump to read back as the very same unit;
* a unit alone is a string dataset holding that text;
* a time is a group with the two float64 Julian-date parts ``jd1`` and ``jd2`` (exact) and the
  attributes ``scale``, ``format``, ``precision``, ``in_subfmt``, ``out_subfmt`` (plus a bool
  ``mask`` dataset when masked);
* a table is a group with a ``columns`` group (one member per column, in order), its ``meta``,
  and ``masked``; a ``Column`` is its data dataset with ``unit``/``description``/``format``
  attributes, a ``MaskedColumn`` a group of ``data``, ``mask`` and ``fill_value``.

Stored class names are astropy's public ones (``astropy.units.Quantity``,
``astropy.coordinates.Angle``, ``astropy.time.Time``), which this module decodes by name,
importing only the astropy module that name belongs to. astropy is never imported when h5forge
is: a type is matched only if its module is already loaded. Without astropy, every node loads as
an :class:`~h5forge.UnknownObject` with its arrays intact and one warning; dumping those writes
the same layout back. Units are parsed with astropy's own unit parser (no ``eval``).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import numpy as np

from h5forge.errors import CodecError, CorruptFileError
from h5forge.store import registry
from h5forge.store.nodes import (
    Decoder,
    LazyArray,
    Stored,
    array_node,
    child_stored,
    dataset_node,
    decode_mapping_items,
    eager,
    encode_mapping_members,
    group_node,
    read_array,
    read_str,
    str_dataset,
)

__all__ = ["QuantityCodec", "UnitCodec", "TimeCodec", "ColumnCodec", "TableCodec",
           "PUBLIC_NAMES"]

#: Longest unit text read from a file.
UNIT_TEXT_MAX = 1024
#: Public stored names -> (module, attribute) of the class, imported only on load.
PUBLIC_NAMES = {
    f"{module}.{name}": (module, name)
    for module, names in {
        "astropy.units": ("Quantity", "Unit", "Magnitude", "Dex", "Decibel"),
        "astropy.coordinates": ("Angle", "Latitude", "Longitude", "Distance"),
        "astropy.time": ("Time", "TimeDelta"),
        "astropy.table": ("Table", "QTable", "Column", "MaskedColumn"),
    }.items()
    for name in names
}
_QUANTITY_NAMES = tuple(n for n in PUBLIC_NAMES if n.startswith(("astropy.units.",
                                                                  "astropy.coordinates."))
                        and n != "astropy.units.Unit")
#: Subclass state kept as attributes: instance attribute -> stored attribute (degrees).
_ANGLE_STATE = {"_wrap_angle": "wrap_angle_deg"}


# -- shared helpers ------------------------------------------------------------------------------
def _subclass_of(tp: type, module: str, *names: str) -> bool:
    """Whether ``tp`` is a subclass of ``module.name`` (for any name), looking only at modules
    already imported (an object of it exists, so its module is loaded)."""
    mod = sys.modules.get(module)
    return mod is not None and issubclass(tp, tuple(getattr(mod, n) for n in names))


def _only(obj: Any, allowed: tuple[type, ...], what: str, where: str) -> type:
    """``type(obj)`` when it is one of ``allowed``, else a :class:`CodecError`."""
    tp = type(obj)
    if tp not in allowed:
        raise CodecError(f"cannot store {where}: {registry.class_name_of(tp)} is a subclass of "
                         f"{what} h5forge does not know; register a codec for it")
    return tp


def stored_name(tp: type) -> str:
    """astropy's public name of ``tp`` when it has one (``astropy.coordinates.Angle``), else
    its qualified name."""
    for name, (module, attr) in PUBLIC_NAMES.items():
        mod = sys.modules.get(module)
        if mod is not None and getattr(mod, attr, None) is tp:
            return name
    return registry.class_name_of(tp)


def _class(stored: Stored, dec: Decoder) -> type | None:
    """The class of a node (importing its astropy module), or None when astropy cannot be
    imported (warned once per load)."""
    if stored.cls is not None:
        return stored.cls
    module, attr = PUBLIC_NAMES[stored.class_name]
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        dec.warn_once("astropy", f"{stored.path}: astropy cannot be imported ({exc}); astropy "
                      f"objects load as h5forge.UnknownObject with their arrays and attributes "
                      f"(units, scales) intact", stacklevel=5)
        return None


def _unknown(stored: Stored, dec: Decoder) -> Any:
    return registry.codec_for_name("h5forge.unknown").decode(stored, dec)


def _units():
    import astropy.units as u

    return u


def unit_text(unit: Any, where: str) -> str:
    """astropy's generic text of ``unit``, refused when it does not read back as that unit."""
    u = _units()
    text = unit.to_string()
    try:
        same = u.Unit(text) == unit
    except (ValueError, TypeError):
        same = False
    if not same:
        raise CodecError(f"cannot store {where}: unit {unit!r} does not read back from its text "
                         f"{text!r}; store the value in a unit astropy can parse")
    return text


def parse_unit(text: Any, path: str):
    """The unit of a stored text, or ``(None, why)`` for a well-formed unit astropy does not
    define (e.g. one made with ``def_unit`` and not defined again)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str) or len(text) > UNIT_TEXT_MAX:
        raise CorruptFileError(f"{path}: 'unit' attribute must be a unit text of at most "
                               f"{UNIT_TEXT_MAX} characters")
    u = _units()
    try:
        return u.Unit(text, parse_strict="raise"), None
    except ValueError as exc:
        return None, f"astropy does not read unit {text!r} ({exc})"


def _read_values(stored: Stored, dec: Decoder) -> np.ndarray:
    with eager(dec):
        arr = read_array(stored, dec)
    return arr.load() if isinstance(arr, LazyArray) else arr


def _old_layout(stored: Stored) -> bool:
    """A node written before this codec existed (the plain object layout)."""
    return stored.is_group and "instance_attributes" in stored.children()


# -- quantities ----------------------------------------------------------------------------------
class QuantityCodec(registry.Codec):
    """``astropy.units.Quantity`` and subclasses: the values dataset with ``unit``."""

    names = _QUANTITY_NAMES

    def matches(self, tp):
        return _subclass_of(tp, "astropy.units", "Quantity")

    def encode(self, obj, enc, where):
        tp = type(obj)
        name = stored_name(tp)
        if "info" in vars(obj):  # a name alone belongs to a table; the rest would be lost
            _check_mixin(obj, where)
        state = {k: v for k, v in vars(obj).items() if k not in ("_unit", "info")}
        attrs: dict[str, Any] = {}
        for key, attr in _ANGLE_STATE.items():
            if key in state:
                attrs[attr] = float(state.pop(key).to_value("deg"))
        if state:
            raise CodecError(f"cannot store {where}: {name} keeps state h5forge does not know "
                             f"({sorted(state)}); register a codec for it")
        if obj.dtype.names is not None:
            raise CodecError(f"cannot store {where}: structured quantities ({name}) are not "
                             f"supported")
        node = array_node(obj.view(np.ndarray), name, enc, where, self)
        if node.kind != "dataset":
            raise CodecError(f"cannot store {where}: a quantity's values must be numeric, not "
                             f"{obj.dtype}")
        node.attrs["unit"] = unit_text(obj.unit, where)
        node.attrs.update(attrs)
        return node

    def decode(self, stored, dec):
        cls = _class(stored, dec)
        if cls is None:
            return _unknown(stored, dec)
        if _old_layout(stored):
            return self._decode_old(stored, dec, cls)
        if stored.is_group:
            raise CorruptFileError(f"{stored.path}: a quantity needs a dataset, found a group")
        values = _read_values(stored, dec)
        unit, why = parse_unit(stored.attr("unit"), stored.path)
        if unit is None:
            dec.warn_once(f"unit:{stored.path}", f"{stored.path}: {why}; loaded as "
                          f"h5forge.UnknownObject holding the values", stacklevel=4)
            return _unknown(stored, dec)
        kwargs = {}
        wrap = stored.attrs.get("wrap_angle_deg")
        if wrap is not None:
            kwargs["wrap_angle"] = float(wrap) * _units().deg
        return cls(values, unit, dtype=values.dtype, copy=False, **kwargs)

    @staticmethod
    def _decode_old(stored, dec, cls):
        """The object layout of files written before this codec: the values as ``data`` and
        the unit in ``instance_attributes`` (rebuilt from its names, never as a look-alike)."""
        values = np.asarray(dec.child(stored, "data"))
        state = dec.child(stored, "instance_attributes")
        if type(state) is not dict or "_unit" not in state:
            raise CorruptFileError(f"{stored.path}: a stored quantity without '_unit'")
        return cls(values, state["_unit"], dtype=values.dtype, copy=False)


class UnitCodec(registry.Codec):
    """astropy units (``u.m``, ``u.km / u.s``): a string dataset with the unit text."""

    names = ("astropy.units.Unit",)
    tracks_identity = False

    def matches(self, tp):
        return _subclass_of(tp, "astropy.units", "UnitBase", "FunctionUnitBase")

    def encode(self, obj, enc, where):
        return str_dataset(self.name, unit_text(obj, where))

    def decode(self, stored, dec):
        if stored.cls is None and _class(stored, dec) is None:
            return _unknown(stored, dec)
        if _old_layout(stored):
            return self._decode_old(stored, dec)
        unit, why = parse_unit(read_str(stored), stored.path)
        if unit is None:
            dec.warn_once(f"unit:{stored.path}", f"{stored.path}: {why}; loaded as "
                          f"h5forge.UnknownObject holding the text", stacklevel=4)
            return _unknown(stored, dec)
        return unit

    @staticmethod
    def _decode_old(stored, dec):
        """A unit stored before this codec (the object layout): the real unit again, from
        its names or its bases and powers."""
        u = _units()
        state = dec.child(stored, "instance_attributes")
        if type(state) is not dict:
            raise CorruptFileError(f"{stored.path}: a stored unit without its state")
        if "_bases" in state:
            return u.CompositeUnit(state.get("_scale", 1.0), state["_bases"], state["_powers"])
        names = state.get("_names")
        if not names or not isinstance(names[0], str):
            raise CorruptFileError(f"{stored.path}: a stored unit without a name")
        return u.Unit(names[0], parse_strict="raise")


# -- time ----------------------------------------------------------------------------------------
_TIME_TEXT = ("scale", "format", "in_subfmt", "out_subfmt")


class TimeCodec(registry.Codec):
    """``astropy.time.Time`` and ``TimeDelta``: ``jd1``/``jd2`` (float64) + text attributes."""

    names = ("astropy.time.Time", "astropy.time.TimeDelta")

    def matches(self, tp):
        return _subclass_of(tp, "astropy.time", "TimeBase")

    def encode(self, obj, enc, where):
        t = sys.modules["astropy.time"]
        tp = _only(obj, (t.Time, t.TimeDelta), "astropy Time", where)
        if getattr(obj, "location", None) is not None:
            raise CodecError(f"cannot store {where}: a Time with a location (EarthLocation) is "
                             f"not supported yet; store the location's geocentric coordinates "
                             f"beside it")
        node = group_node(stored_name(tp))
        for attr in _TIME_TEXT:
            value = getattr(obj, attr)
            if value is not None:
                node.attrs[attr] = str(value)
        node.attrs["precision"] = int(obj.precision)
        jd1, jd2 = obj.jd1, obj.jd2
        mask = None
        if obj.masked:
            mask = np.asarray(obj.mask)
            jd1, jd2 = jd1.unmasked, jd2.unmasked
        node.add("jd1", dataset_node("numpy.ndarray", np.asarray(jd1, np.float64)))
        node.add("jd2", dataset_node("numpy.ndarray", np.asarray(jd2, np.float64)))
        if mask is not None:
            node.add("mask", dataset_node("numpy.ndarray", np.array(mask, bool)))
        return node

    def decode(self, stored, dec):
        cls = _class(stored, dec)
        if cls is None:
            return _unknown(stored, dec)
        stored.group()
        jd1 = _read_values(child_stored(stored, "jd1"), dec)
        jd2 = _read_values(child_stored(stored, "jd2"), dec)
        if jd1.shape != jd2.shape or jd1.dtype.kind != "f" or jd2.dtype.kind != "f":
            raise CorruptFileError(f"{stored.path}: jd1 and jd2 must be float arrays of one "
                                   f"shape")
        text = {a: stored.attrs.get(a) for a in _TIME_TEXT}
        if any(v is not None and not isinstance(v, str) for v in text.values()):
            raise CorruptFileError(f"{stored.path}: {_TIME_TEXT} must be text attributes")
        if "mask" in stored.children():
            from astropy.utils.masked import Masked

            mask = _read_values(child_stored(stored, "mask"), dec)
            if mask.shape != jd1.shape or mask.dtype != bool:
                raise CorruptFileError(f"{stored.path}: 'mask' must be bool of jd1's shape")
            jd1, jd2 = Masked(jd1, mask=mask), Masked(jd2, mask=mask.copy())
        kwargs = {"precision": int(stored.attrs.get("precision", 3))}
        if text["scale"] is not None:
            kwargs["scale"] = text["scale"]
        value = cls(jd1, jd2, format="jd", **kwargs)
        if text["format"] is not None:
            value.format = text["format"]
        for attr in ("in_subfmt", "out_subfmt"):  # they name subformats of that format
            if text[attr] is not None:
                setattr(value, attr, text[attr])
        return value


# -- tables --------------------------------------------------------------------------------------
_COLUMN_TEXT = ("description", "format")


def _column_attrs(col: Any, where: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if col.unit is not None:
        attrs["unit"] = unit_text(col.unit, where)
    for attr in _COLUMN_TEXT:
        value = getattr(col.info, attr)
        if value is not None:
            if not isinstance(value, str):
                raise CodecError(f"cannot store {where}: column {attr} {value!r} is not text")
            attrs[attr] = value
    if col.meta:
        raise CodecError(f"cannot store {where}: per-column meta is not supported yet; move it "
                         f"into the table's meta")
    return attrs


class ColumnCodec(registry.Codec):
    """``astropy.table.Column`` (data dataset + text attributes) and ``MaskedColumn`` (group of
    ``data``, ``mask`` and ``fill_value``)."""

    names = ("astropy.table.Column", "astropy.table.MaskedColumn")

    def matches(self, tp):
        return _subclass_of(tp, "astropy.table", "Column")

    def encode(self, obj, enc, where):
        table = sys.modules["astropy.table"]
        tp = _only(obj, (table.Column, table.MaskedColumn), "astropy Column", where)
        attrs = _column_attrs(obj, where)
        name = stored_name(tp)
        if tp is table.Column:
            node = array_node(np.asarray(obj.data), name, enc, where, self)
            node.attrs.update(attrs)
            return node
        node = group_node(name, **attrs)
        node.add("data", array_node(np.asarray(obj.data.data), "numpy.ndarray", enc,
                                    f"{where}.data", self))
        node.add("mask", dataset_node("numpy.ndarray", np.ma.getmaskarray(obj.data)))
        node.add("fill_value", enc.node(obj.fill_value, f"{where}.fill_value", inline=False))
        return node

    def decode(self, stored, dec):
        cls = _class(stored, dec)
        if cls is None:
            return _unknown(stored, dec)
        kwargs: dict[str, Any] = {}
        for attr in _COLUMN_TEXT:
            if stored.attrs.get(attr) is not None:
                kwargs[attr] = str(stored.attrs[attr])
        if stored.attrs.get("unit") is not None:
            unit, why = parse_unit(stored.attrs["unit"], stored.path)
            if unit is None:
                raise CorruptFileError(f"{stored.path}: {why}")
            kwargs["unit"] = unit
        if issubclass(cls, sys.modules["astropy.table"].MaskedColumn):
            data = _read_values(child_stored(stored, "data"), dec)
            mask = _read_values(child_stored(stored, "mask"), dec)
            with eager(dec):
                fill = dec.child(stored, "fill_value")
            return cls(data=data, mask=mask, fill_value=fill, **kwargs)
        return cls(data=_read_values(stored, dec), copy=False, **kwargs)


def _check_mixin(col: Any, where: str) -> None:
    info = getattr(col, "info", None)
    if info is None:
        return
    for attr in ("description", "format"):
        if getattr(info, attr, None) is not None:
            raise CodecError(f"cannot store {where}: the {attr} of a {type(col).__name__} "
                             f"column is not supported yet")
    if getattr(info, "meta", None):
        raise CodecError(f"cannot store {where}: the meta of a {type(col).__name__} column is "
                         f"not supported yet; move it into the table's meta")


class TableCodec(registry.Codec):
    """``astropy.table.Table`` / ``QTable``: ``columns`` (in order), ``meta``, ``masked``."""

    names = ("astropy.table.Table", "astropy.table.QTable")

    def matches(self, tp):
        return _subclass_of(tp, "astropy.table", "Table")

    def encode(self, obj, enc, where):
        table = sys.modules["astropy.table"]
        tp = _only(obj, (table.Table, table.QTable), "astropy Table", where)
        if obj.indices:
            raise CodecError(f"cannot store {where}: a table with indices (add_index) is not "
                             f"supported; remove them (remove_indices) and add them after load")
        node = group_node(stored_name(tp))
        if obj.masked:
            node.attrs["masked"] = True
        columns = {}
        for name, col in obj.columns.items():
            if not isinstance(col, table.Column):
                _check_mixin(col, f"{where}[{name!r}]")
            columns[name] = col
        node.add("columns", encode_mapping_members(enc, group_node("dict"), columns, where,
                                                   inline=False))
        if obj.meta:
            node.add("meta", enc.node(obj.meta, f"{where}.meta", inline=False))
        return node

    def decode(self, stored, dec):
        cls = _class(stored, dec)
        if cls is None:
            return _unknown(stored, dec)
        columns_node = child_stored(stored, "columns")
        columns_node.group()
        with eager(dec):
            items = decode_mapping_items(columns_node, dec)
            meta = dec.child(stored, "meta") if "meta" in stored.children() else None
        names = [name for name, _ in items]
        cols = [col for _, col in items]
        return cls(cols, names=names, meta=meta, masked=bool(stored.attrs.get("masked", False)),
                   copy=False)

