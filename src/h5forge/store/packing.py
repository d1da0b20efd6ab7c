"""Homogeneous runs of small values -> one dataset, and back.

One HDF5 object costs tens of microseconds and a few hundred bytes; a list of 10,000 small
records stored one group each is hundreds of times slower and bigger than pickle. So a sequence
whose members are all builtin scalars of one type becomes one 1-D dataset, a sequence of
same-shaped numeric arrays one N-D dataset, and a sequence of dicts with the same string keys
one compound table (a field per key) -- each still plain h5py-readable.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from h5forge.store.encoder import is_plain_text

__all__ = ["pack_scalars", "pack_arrays", "pack_records", "unpack_column"]

_STR = h5py.string_dtype()
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NUMERIC_KINDS = "biufc"


def _scalar_field(values: list[Any]) -> tuple[str, Any] | None:
    """(element class, HDF5 dtype) when every value is a builtin scalar of one packable type."""
    tp = type(values[0])
    if any(type(v) is not tp for v in values):
        return None
    if tp is float:
        return "float", np.float64
    if tp is bool:
        return "bool", np.bool_
    if tp is int:
        if min(values) >= _INT64_MIN and max(values) <= _INT64_MAX:
            return "int", np.int64
        return None
    if tp is str:
        if all(is_plain_text(v) for v in values):
            return "str", _STR
        return None
    if tp is complex:
        return "complex", np.complex128
    return None


def pack_scalars(values: list[Any]) -> tuple[np.ndarray, Any, str] | None:
    """(data, HDF5 dtype, element class) for a run of same-typed builtin scalars, else None."""
    if not values:
        return None
    field = _scalar_field(values)
    if field is None:
        return None
    element_class, dtype = field
    data = np.array(values, dtype=object if dtype is _STR else dtype)
    return data, (_STR if dtype is _STR else None), element_class


def _array_field(values: list[Any]) -> tuple[np.dtype, tuple[int, ...]] | None:
    first = values[0]
    if type(first) is not np.ndarray or first.dtype.kind not in _NUMERIC_KINDS \
            or not first.dtype.isnative:
        return None
    dtype, shape = first.dtype, first.shape
    for v in values:
        if type(v) is not np.ndarray or v.dtype != dtype or v.shape != shape:
            return None
        if v.ndim > 1 and not v.flags.c_contiguous:
            return None  # keep Fortran order: such arrays are stored one by one
    return dtype, shape


def pack_arrays(values: list[Any]) -> np.ndarray | None:
    """One stacked array for two or more same-shaped, same-dtype numeric arrays, else None."""
    if len(values) < 2 or _array_field(values) is None:
        return None
    return np.stack(values)


def _numpy_scalar_field(values: list[Any]) -> np.dtype | None:
    first = values[0]
    if not isinstance(first, np.generic) or first.dtype.kind not in _NUMERIC_KINDS \
            or not first.dtype.isnative:
        return None
    tp, dtype = type(first), first.dtype
    if all(type(v) is tp and v.dtype == dtype for v in values):
        return dtype
    return None


def pack_records(records: list[Any]) -> tuple[np.ndarray, list[str]] | None:
    """(compound array, field classes) for two or more plain dicts with the same string keys
    (same order) whose values per key are packable scalars or same-shaped arrays, else None."""
    if len(records) < 2 or type(records[0]) is not dict or not records[0]:
        return None
    keys = tuple(records[0])
    if not all(type(k) is str and k and is_plain_text(k) for k in keys):
        return None
    for rec in records:
        if type(rec) is not dict or tuple(rec) != keys:
            return None
    fields, classes, columns = [], [], []
    for key in keys:
        column = [rec[key] for rec in records]
        scalar = _scalar_field(column)
        if scalar is not None:
            classes.append(scalar[0])
            fields.append((key, scalar[1]))
        elif (array := _array_field(column)) is not None:
            classes.append("numpy.ndarray")
            fields.append((key, array[0], array[1]))
        elif (dtype := _numpy_scalar_field(column)) is not None:
            classes.append(f"numpy.{type(column[0]).__name__}")
            fields.append((key, dtype))
        else:
            return None
        columns.append(column)
    table = np.empty(len(records), dtype=fields)
    for (key, *_), column in zip(fields, columns):
        table[key] = column if table.dtype[key].shape == () else np.stack(column)
    return table, classes


def unpack_column(column: np.ndarray, element_class: str) -> list[Any]:
    """Python values of one packed column (read from HDF5) for the given element class."""
    if element_class == "str":
        return [v.decode("utf-8") if type(v) is bytes else v for v in column.tolist()]
    if element_class in ("int", "float", "bool", "complex"):
        return column.tolist()
    if element_class == "numpy.ndarray":
        if column.ndim == 1:  # 0-d arrays in each row
            return [np.array(v) for v in column]
        return [row.copy() for row in column]
    if element_class.startswith("numpy."):
        return list(column)
    raise ValueError(f"unknown packed element class {element_class!r}")
