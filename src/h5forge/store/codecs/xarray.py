"""xarray: ``Variable``/``IndexVariable``, ``DataArray`` and ``Dataset``, in a netCDF-like
layout readable with h5py alone (see docs/FORMAT.md, "xarray").

* a variable is the dataset of its values with the attribute ``dims`` (its dimension names) and
  its ``attrs`` as HDF5 attributes of that dataset (their names listed in ``attr_keys``). When
  an attribute cannot be an HDF5 attribute (a dict, an array, a name the format reserves), the
  variable has an ``encoding``, or its values are not one dataset (object dtype), the variable
  is a group instead: ``data`` (the dataset with ``dims``), ``attrs`` and ``encoding`` nodes;
* a ``DataArray`` is a group with its variable as ``data``, its coordinates as the group
  ``coords`` (one variable per coordinate, in order) and its ``name``;
* a ``Dataset`` is a group with the groups ``data_vars`` and ``coords`` and its ``attrs``.

Only default indexes (one pandas index per dimension coordinate) are stored: xarray rebuilds
them from the coordinates. Other indexes (MultiIndex, custom ``set_xindex``) are refused at dump
with what to do. xarray is imported only when one of its objects is met; without it, every node
loads as an :class:`~h5forge.UnknownObject` with its arrays and attributes intact, with one
warning.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from h5forge.errors import CodecError, CorruptFileError
from h5forge.store import registry
from h5forge.store.nodes import (
    RESERVED_ATTRIBUTES,
    Decoder,
    LazyArray,
    Node,
    Stored,
    array_node,
    child_stored,
    decode_mapping_items,
    decode_object,
    eager,
    encode_mapping_members,
    group_node,
    inline_value,
    is_inline_list,
    is_inline_scalar,
    read_array,
)

__all__ = ["VariableCodec", "DataArrayCodec", "DatasetCodec"]

VARIABLE, INDEX_VARIABLE = "xarray.Variable", "xarray.IndexVariable"
DATA_ARRAY, DATASET = "xarray.DataArray", "xarray.Dataset"
#: Attribute names a variable dataset uses itself (a variable attribute so named makes the
#: variable a group).
_OWN = RESERVED_ATTRIBUTES | {"dims", "attr_keys", "na_object", "na_value", "coerce"}


def _xarray_type(tp: type, name: str) -> bool:
    xr = sys.modules.get("xarray")
    return xr is not None and issubclass(tp, getattr(xr, name))


def _import_xarray(stored: Stored, dec: Decoder):
    try:
        import xarray
    except ImportError as exc:
        dec.warn_once("xarray", f"{stored.path}: xarray cannot be imported ({exc}); xarray "
                      f"objects load as h5forge.UnknownObject with their arrays and attributes "
                      f"(dims) intact", stacklevel=5)
        return None
    return xarray


def _only(obj: Any, names: tuple[str, ...], where: str) -> type:
    """``type(obj)`` when it is ``xarray.<name>`` for one of ``names``, else a CodecError."""
    xr = sys.modules["xarray"]
    tp = type(obj)
    if not any(tp is getattr(xr, name) for name in names):
        raise CodecError(f"cannot store {where}: {registry.class_name_of(tp)} is a subclass of "
                         f"xarray.{names[0]} h5forge does not know")
    return tp


def _unknown(stored: Stored, dec: Decoder) -> Any:
    return registry.codec_for_name("h5forge.unknown").decode(stored, dec)


def _old_layout(stored: Stored) -> bool:
    """A node written before this codec existed (the plain object layout)."""
    return stored.is_group and "instance_attributes" in stored.children()


def _dims(dims: tuple, where: str) -> list[str]:
    if not all(type(d) is str and d for d in dims):
        raise CodecError(f"cannot store {where}: dimension names must be non-empty str, found "
                         f"{list(dims)!r}")
    return list(dims)


def _flat_attrs(attrs: dict) -> bool:
    return all(type(k) is str and k not in _OWN and
               (is_inline_scalar(v) or is_inline_list(v)) for k, v in attrs.items())


class VariableCodec(registry.Codec):
    """``xarray.Variable`` / ``IndexVariable``: the values with ``dims`` and attributes."""

    names = (VARIABLE, INDEX_VARIABLE)

    def matches(self, tp):
        return _xarray_type(tp, "Variable")

    def encode(self, obj, enc, where):
        tp = _only(obj, ("Variable", "IndexVariable"), where)
        name = INDEX_VARIABLE if tp.__name__ == "IndexVariable" else VARIABLE
        values = np.asarray(obj.values)
        data = array_node(values, name, enc, f"{where}.values", self)
        dims = _dims(obj.dims, where)
        attrs, encoding = dict(obj.attrs), dict(obj.encoding)
        if data.kind == "dataset" and not encoding and _flat_attrs(attrs):
            if dims:
                data.attrs["dims"] = dims
            if attrs:
                data.attrs["attr_keys"] = list(attrs)
                data.attrs.update(attrs)
            return data
        data.attrs["class"] = "numpy.ndarray"
        node = group_node(name)
        if dims:
            node.attrs["dims"] = dims
        node.add("data", data)
        if attrs:
            node.add("attrs", enc.node(attrs, f"{where}.attrs", inline=False))
        if encoding:
            node.add("encoding", enc.node(encoding, f"{where}.encoding", inline=False))
        return node

    def decode(self, stored, dec):
        xr = _import_xarray(stored, dec)
        if xr is None:
            return _unknown(stored, dec)
        cls = xr.IndexVariable if stored.class_name == INDEX_VARIABLE or \
            stored.cls is xr.IndexVariable else xr.Variable
        if _old_layout(stored):
            return decode_object(stored, dec)
        dims = inline_value(stored.attrs.get("dims"))
        dims = [] if dims is None else [dims] if isinstance(dims, str) else dims
        if not isinstance(dims, list) or not all(isinstance(d, str) for d in dims):
            raise CorruptFileError(f"{stored.path}: attribute 'dims' must be a list of names")
        attrs: Any = {}
        encoding: Any = {}
        with eager(dec):
            if stored.is_group and stored.attrs.get("dtype") is None:
                values = dec.child(stored, "data")
                children = stored.children()
                if "attrs" in children:
                    attrs = dec.child(stored, "attrs")
                if "encoding" in children:
                    encoding = dec.child(stored, "encoding")
            else:
                values = read_array(stored, dec)
                keys = inline_value(stored.attrs.get("attr_keys"))
                for key in [keys] if isinstance(keys, str) else keys or []:
                    if key not in stored.attrs:
                        raise CorruptFileError(f"{stored.path}: attribute {key!r} listed in "
                                               f"'attr_keys' is missing")
                    attrs[key] = inline_value(stored.attrs[key])
        if isinstance(values, LazyArray):
            values = values.load()
        if not isinstance(values, np.ndarray) or type(attrs) is not dict or \
                type(encoding) is not dict:
            raise CorruptFileError(f"{stored.path}: an xarray variable needs an array, and "
                                   f"dicts of attrs and encoding")
        if values.ndim != len(dims):
            raise CorruptFileError(f"{stored.path}: {len(dims)} dims {dims} for "
                                   f"{values.ndim}-d values")
        return cls(tuple(dims), values, attrs=attrs, encoding=encoding)


def _check_indexes(obj: Any, where: str) -> None:
    """Refuse indexes xarray would not rebuild from the coordinates alone."""
    xr = sys.modules["xarray"]
    for name, index in obj.xindexes.items():
        if type(index) is not xr.indexes.PandasIndex or index.dim != name or \
                getattr(index.index, "nlevels", 1) != 1:
            raise CodecError(f"cannot store {where}: coordinate {name!r} has a "
                             f"{type(index).__name__} index, which h5forge does not store; "
                             f"reset_index({name!r}) first (and set it again after load)")


def _variables(enc, mapping: dict, where: str) -> Node:
    return encode_mapping_members(enc, group_node("dict"), mapping, where, inline=False)


def _decode_variables(stored: Stored, name: str, dec: Decoder) -> dict:
    if name not in stored.children():
        return {}
    child = child_stored(stored, name)
    with eager(dec):
        return dict(decode_mapping_items(child, dec))


class DataArrayCodec(registry.Codec):
    """``xarray.DataArray``: ``data`` (its variable), ``coords`` and ``name``."""

    names = (DATA_ARRAY,)

    def matches(self, tp):
        return _xarray_type(tp, "DataArray")

    def encode(self, obj, enc, where):
        _only(obj, ("DataArray",), where)
        _check_indexes(obj, where)
        node = group_node(DATA_ARRAY)
        node.add("data", enc.node(obj.variable, f"{where}.variable", inline=False))
        coords = {name: obj.coords[name].variable for name in obj.coords}
        if coords:
            node.add("coords", _variables(enc, coords, f"{where}.coords"))
        if obj.name is not None:
            node.add("name", enc.node(obj.name, f"{where}.name", inline=False))
        return node

    def decode(self, stored, dec):
        xr = _import_xarray(stored, dec)
        if xr is None:
            return _unknown(stored, dec)
        if _old_layout(stored):
            return decode_object(stored, dec)
        stored.group()
        with eager(dec):
            variable = dec.child(stored, "data")
            name = dec.child(stored, "name") if "name" in stored.children() else None
        coords = _decode_variables(stored, "coords", dec)
        if not isinstance(variable, xr.Variable):
            raise CorruptFileError(f"{stored.path}/data: an xarray.Variable is needed")
        return xr.DataArray(variable, coords=coords, name=name)


class DatasetCodec(registry.Codec):
    """``xarray.Dataset``: the groups ``data_vars`` and ``coords``, and ``attrs``."""

    names = (DATASET,)

    def matches(self, tp):
        return _xarray_type(tp, "Dataset")

    def encode(self, obj, enc, where):
        _only(obj, ("Dataset",), where)
        _check_indexes(obj, where)
        node = group_node(DATASET)
        node.add("data_vars", _variables(
            enc, {n: v.variable for n, v in obj.data_vars.items()}, f"{where}.data_vars"))
        node.add("coords", _variables(
            enc, {n: obj.coords[n].variable for n in obj.coords}, f"{where}.coords"))
        if obj.attrs:
            node.add("attrs", enc.node(dict(obj.attrs), f"{where}.attrs", inline=False))
        if obj.encoding:
            node.add("encoding", enc.node(dict(obj.encoding), f"{where}.encoding",
                                          inline=False))
        return node

    def decode(self, stored, dec):
        xr = _import_xarray(stored, dec)
        if xr is None:
            return _unknown(stored, dec)
        if _old_layout(stored):
            return decode_object(stored, dec)
        stored.group()
        data_vars = _decode_variables(stored, "data_vars", dec)
        coords = _decode_variables(stored, "coords", dec)
        children = stored.children()
        with eager(dec):
            attrs = dec.child(stored, "attrs") if "attrs" in children else None
            encoding = dec.child(stored, "encoding") if "encoding" in children else None
        out = xr.Dataset(data_vars, coords=coords, attrs=attrs)
        if encoding:
            out.encoding = encoding
        return out

