"""Fast attribute I/O for the store's hot path.

Containers keep their small scalars as attributes, so a config-like tree reads and writes
thousands of them. h5py's ``AttributeManager`` re-derives types and dataspaces on every call;
here they are built once, for the handful of types the format uses (see docs/FORMAT.md), and
anything else falls back to h5py. The HDF5 types written are exactly the ones h5py writes.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np
from h5py import h5a, h5s, h5t

__all__ = ["write_attr", "read_attrs", "read_attr", "attr_or_none"]

_STR_DTYPE = h5py.string_dtype()
_SCALAR = h5s.create(h5s.SCALAR)
_NULL = h5s.create(h5s.NULL)
_VSTR = h5t.py_create(_STR_DTYPE, logical=True)
_TYPES = {  # python type -> (file type, memory type, numpy dtype)
    int: (h5t.py_create(np.dtype("i8"), logical=True), np.dtype("i8")),
    float: (h5t.py_create(np.dtype("f8"), logical=True), np.dtype("f8")),
    bool: (h5t.py_create(np.dtype("?"), logical=True), np.dtype("?")),
    complex: (h5t.py_create(np.dtype("c16"), logical=True), np.dtype("c16")),
}
_EMPTY_TYPE = h5t.py_create(np.dtype("f4"), logical=True)


def _create(oid, name: bytes, htype, data: np.ndarray) -> None:
    space = _SCALAR if data.ndim == 0 else h5s.create_simple(data.shape)
    h5a.create(oid, name, htype, space).write(data)


def write_attr(h5obj, name: str, value: Any) -> None:
    """Create attribute ``name`` (which must not exist yet) with the format's type for
    ``value``: str -> UTF-8 string, int -> int64, float -> float64, bool -> h5py bool enum,
    complex -> complex128, None -> empty, list of str -> 1-D string array."""
    oid, key, tp = h5obj.id, name.encode("utf-8"), type(value)
    if tp is str:
        _create(oid, key, _VSTR, np.array(value, dtype=_STR_DTYPE))
    elif tp in _TYPES:
        htype, dtype = _TYPES[tp]
        _create(oid, key, htype, np.array(value, dtype=dtype))
    elif value is None:
        h5a.create(oid, key, _EMPTY_TYPE, _NULL)
    elif (tp is list or tp is tuple) and value:
        first = type(value[0])
        if all(type(v) is first for v in value):
            if first is str:
                _create(oid, key, _VSTR, np.array(value, dtype=_STR_DTYPE))
                return
            if first in _TYPES:
                htype, dtype = _TYPES[first]
                _create(oid, key, htype, np.array(value, dtype=dtype))
                return
        h5obj.attrs[name] = np.asarray(value)
    else:
        h5obj.attrs[name] = value


_MEM_STR = h5t.py_create(_STR_DTYPE)
_MEM = {dtype: h5t.py_create(dtype) for _, dtype in _TYPES.values()}


def _fast_type(tid) -> np.dtype | None:
    """The numpy dtype of the common scalar attribute types (UTF-8/ASCII variable strings,
    little-endian int64/float64), found without building a full dtype."""
    cls = tid.get_class()
    if cls == h5t.STRING:
        return _STR_DTYPE if tid.is_variable_str() else None
    if tid.get_size() != 8 or tid.get_order() != h5t.ORDER_LE:
        return None
    if cls == h5t.FLOAT:
        return _TYPES[float][1]
    if cls == h5t.INTEGER and tid.get_sign() == h5t.SGN_2:
        return _TYPES[int][1]
    return None


def _read(oid, name: bytes) -> Any:
    aid = h5a.open(oid, name)
    if aid.get_space().get_simple_extent_type() == h5s.SCALAR:
        dtype = _fast_type(aid.get_type())
        if dtype is _STR_DTYPE:
            arr = np.empty((), dtype=dtype)
            aid.read(arr, mtype=_MEM_STR)
            value = arr[()]
            return value.decode("utf-8", "surrogateescape") if type(value) is bytes else value
        if dtype is not None:
            arr = np.empty((), dtype=dtype)
            aid.read(arr, mtype=_MEM[dtype])
            return arr[()]
    shape = aid.shape
    if shape is None:
        return h5py.Empty(aid.dtype)
    dtype = aid.dtype
    if dtype.subdtype is not None:  # rare top-level array types: h5py reshapes them
        return None
    arr = np.empty(shape, dtype=dtype)
    aid.read(arr, mtype=h5t.py_create(dtype))
    info = h5t.check_string_dtype(dtype)
    if info is not None and info.length is None:
        arr = np.array([b.decode("utf-8", "surrogateescape") if type(b) is bytes else b
                        for b in arr.flat], dtype=dtype).reshape(arr.shape)
    return arr[()] if arr.ndim == 0 else arr


def read_attr(h5obj, name: str) -> Any:
    """One attribute of ``h5obj`` as h5py would return it (which must exist)."""
    value = _read(h5obj.id, name.encode("utf-8"))
    return value if value is not None else h5obj.attrs[name]


def attr_or_none(h5obj, name: str) -> Any:
    """Attribute ``name`` of ``h5obj``, or None when it has none (low-level: h5py's
    ``attrs.get`` costs more)."""
    if not h5a.exists(h5obj.id, name.encode("utf-8")):
        return None
    return read_attr(h5obj, name)


def read_attrs(h5obj) -> dict[str, Any]:
    """All attributes of ``h5obj`` as h5py would return them (str for UTF-8 strings)."""
    oid = h5obj.id
    names: list[bytes] = []
    h5a.iterate(oid, lambda name, *_: names.append(name))
    out: dict[str, Any] = {}
    for name in names:
        value = _read(oid, name)
        key = name.decode("utf-8", "surrogateescape")
        out[key] = value if value is not None else h5obj.attrs[key]
    return out
