"""Runs of small values -> one dataset, and back.

One HDF5 object costs tens of microseconds and a few hundred bytes; a list of 10,000 small
records stored one group each is hundreds of times slower and bigger than pickle. So a sequence
whose members are all builtin scalars of one type becomes one 1-D dataset, a sequence of
same-shaped numeric arrays one N-D dataset, and a sequence of dicts with the same string keys
one compound table (a field per key) -- each still plain h5py-readable. A run of builtin
scalars of several types (``[1, 2.5, None, "a"]``, a dict's values) is one compound table with
a type column (``class``) and a value column per type present (format 2).
"""

from __future__ import annotations

import functools
from typing import Any

import h5py
import numpy as np

from h5forge.store.encoder import is_plain_text

__all__ = ["pack_scalars", "pack_mixed", "mixed_row", "unpack_mixed", "pack_arrays",
           "pack_records", "record_row", "unpack_column", "MIXED", "MIXED_CODES"]

_STR = h5py.string_dtype()
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NUMERIC_KINDS = "biufc"


def _scalar_field(values: list[Any]) -> tuple[str, Any] | None:
    """(element class, HDF5 dtype) when every value is a builtin scalar of one packable type."""
    tp = type(values[0])
    if len(set(map(type, values))) != 1:
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
        return ("str", _STR) if is_plain_text("".join(values)) else None
    if tp is complex:
        return "complex", np.complex128
    return None


def pack_scalars(values: list[Any]) -> tuple[np.ndarray, Any, str] | None:
    """(data, HDF5 dtype, element class) for a run of same-typed builtin scalars, or a
    ``mixed`` table (see :func:`pack_mixed`) for a run of builtin scalars of several types,
    else None."""
    if not values:
        return None
    field = _scalar_field(values)
    if field is None:
        mixed = pack_mixed(values)
        return None if mixed is None else (mixed, None, MIXED)
    element_class, dtype = field
    if dtype is _STR:
        h5dtype, column = _str_field(values)  # type: ignore[misc]  # plain text: checked
        return np.array(column, dtype=object if h5dtype is _STR else h5dtype), h5dtype, "str"
    return np.array(values, dtype=dtype), None, element_class


# -- mixed scalars: a type column and one value column per type present ------------------------
#: Element class (and field class) of a run of builtin scalars of several types.
MIXED = "mixed"
#: Python type name -> code in the ``class`` column of a mixed table (an HDF5 enum).
MIXED_CODES = {"NoneType": 0, "bool": 1, "int": 2, "float": 3, "complex": 4, "str": 5}
_MIXED_TYPES = {type(None): 0, bool: 1, int: 2, float: 3, complex: 4, str: 5}
_MIXED_FIELDS = (("bool", np.dtype(np.bool_)), ("int", np.dtype(np.int64)),
                 ("float", np.dtype(np.float64)), ("complex", np.dtype(np.complex128)),
                 ("str", _STR))
_CLASS_DTYPE = h5py.enum_dtype(MIXED_CODES, basetype=np.uint8)


#: Longest UTF-8 encoding (bytes) of the strs of a run (all strs, or a mixed run's str field)
#: stored as fixed-length strings; longer ones make them variable-length. Fixed-length
#: strings are copied, not converted one by one: a 100,000-row table writes several times
#: faster.
FIXED_STR_MAX = 64


@functools.lru_cache(maxsize=None)
def _fixed_str(length: int) -> np.dtype:
    """The fixed-length UTF-8 string dtype of ``length`` bytes (made once: h5py builds a new
    dtype object on each call)."""
    return h5py.string_dtype("utf-8", length)


def _str_field(column: list[str]) -> tuple[Any, Any] | None:
    """(HDF5 string dtype, values to store) for a run of strs (or a mixed run's strs): fixed-
    length UTF-8 up to :data:`FIXED_STR_MAX` bytes each, else variable-length; None when one
    of them is not plain text (a NUL, a lone surrogate)."""
    joined = "".join(column)
    if "\x00" in joined:
        return None
    try:
        encoded = [v.encode("ascii") for v in column] if joined.isascii() else \
            [v.encode("utf-8") for v in column]
    except UnicodeEncodeError:
        return None
    longest = max(map(len, encoded))
    if longest > FIXED_STR_MAX:
        return _STR, column
    return _fixed_str(max(longest, 1)), encoded


@functools.lru_cache(maxsize=None)
def _mixed_dtype(fields: tuple[tuple[str, Any], ...]) -> np.dtype:
    """The compound dtype of a mixed table with these fields (made once per combination: a
    dtype built from a list spec costs more than packing a short run)."""
    return np.dtype([("class", _CLASS_DTYPE), *fields])


#: Runs up to this long are sorted by type in plain Python (numpy's per-call costs dominate
#: there: a dict of 3,000 records each holding a short mixed list planned 2x slower than in
#: format 1, most of it in ``np.unique``, ``np.flatnonzero`` and dtype construction).
_SMALL_RUN = 32


def _mixed_columns(values: list[Any]) -> tuple[Any, bool, dict[int, tuple[Any, list[Any]]]] \
        | None:
    """(codes, any None, {code: (rows, values)} for the other types) of a run of mixed
    scalars, else None. ``codes`` and each ``rows`` are lists for a short run, arrays for a
    long one."""
    types = _MIXED_TYPES
    if len(values) <= _SMALL_RUN:
        try:
            codes = [types[type(v)] for v in values]
        except KeyError:
            return None
        by_code: dict[int, tuple[Any, list[Any]]] = {}
        for i, (code, v) in enumerate(zip(codes, values)):
            if code:
                entry = by_code.get(code)
                if entry is None:
                    by_code[code] = ([i], [v])
                else:
                    entry[0].append(i)
                    entry[1].append(v)
        return codes, 0 in codes, by_code
    try:
        array = np.fromiter(map(types.__getitem__, map(type, values)), dtype=np.uint8,
                            count=len(values))
    except KeyError:
        return None
    by_code = {}
    counts = np.bincount(array, minlength=6)
    for code in np.flatnonzero(counts[1:]).tolist():
        rows = np.flatnonzero(array == code + 1)
        by_code[code + 1] = (rows, [values[i] for i in rows.tolist()])
    return array, bool(counts[0]), by_code


def pack_mixed(values: list[Any]) -> np.ndarray | None:
    """A 1-D compound table for a run of builtin scalars of several types (None, bool, int
    within int64, float, complex, plain str), else None.

    Field ``class`` (an enum of :data:`MIXED_CODES`) names each row's type; each type present
    has its own field (``int``, ``float``, ``str``, ...) holding the value in rows of that
    type and a zero (or empty string) elsewhere. The ``str`` field is fixed-length UTF-8 when
    every str encodes to at most :data:`FIXED_STR_MAX` bytes, else variable-length. All-None
    runs qualify too (only the ``class`` field)."""
    if not values:
        return None
    found = _mixed_columns(values)
    if found is None:
        return None
    codes, has_none, by_code = found
    if len(by_code) + has_none < 2 and by_code:
        return None  # one type: a plain column (pack_scalars), or not packable at all
    fields: list[tuple[str, Any]] = []
    columns = []
    for code, (name, dtype) in enumerate(_MIXED_FIELDS, 1):
        if code not in by_code:
            continue
        rows, column = by_code[code]
        if code == 2 and (min(column) < _INT64_MIN or max(column) > _INT64_MAX):
            return None
        if code == 5:
            field = _str_field(column)
            if field is None:
                return None
            dtype, column = field
        fields.append((name, dtype))
        columns.append((name, rows, column))
    dtype = _mixed_dtype(tuple(fields))
    table = np.zeros(len(values), dtype=dtype)
    table["class"] = codes
    for name, rows, column in columns:
        if dtype[name].kind == "O":
            table[name] = ""
        table[name][rows] = column
    return table


def mixed_row(value: Any, dtype: np.dtype) -> np.void | None:
    """``value`` as one row of a stored mixed table of ``dtype``, or None when its type has no
    field there, a str is longer than a fixed-length field, or it is no mixed scalar."""
    table = pack_mixed([value, None])
    if table is None:
        return None
    names = set(dtype.names or ())
    if any(n not in names for n in table.dtype.names):
        return None
    row = np.zeros(1, dtype=dtype)
    if "str" in names and dtype["str"].kind == "O":
        row["str"] = ""
    if type(value) is str and dtype["str"].kind != "O" and \
            len(value.encode("utf-8")) > dtype["str"].itemsize:
        return None
    for n in table.dtype.names:
        row[n] = value if n == "str" and dtype["str"].kind == "O" else table[n][0]
    return row[0]


def _fits(dtype: np.dtype, name: str) -> bool:
    """Whether a stored field's dtype is the one its Python type is written as."""
    if name == "str":
        return h5py.check_string_dtype(dtype) is not None
    return dtype.shape == () and dtype.kind == {"bool": "b", "int": "i", "float": "f",
                                                "complex": "c"}[name]


def unpack_mixed(table: np.ndarray) -> list[Any]:
    """Python values of a mixed table read from HDF5 (raises ValueError on unknown codes or a
    row whose type has no field)."""
    names = table.dtype.names or ()
    if "class" not in names:
        raise ValueError("a mixed table needs a 'class' field")
    codes = np.asarray(table["class"])
    out: list[Any] = [None] * len(codes)
    seen = np.zeros(len(codes), dtype=bool)
    seen[codes == 0] = True
    for code, (name, _) in enumerate(_MIXED_FIELDS, 1):
        rows = np.flatnonzero(codes == code)
        if not len(rows):
            continue
        if name not in names:
            raise ValueError(f"rows of class {name!r} but no {name!r} field")
        if not _fits(table.dtype[name], name):
            raise ValueError(f"field {name!r} of a mixed table has dtype {table.dtype[name]}")
        seen[rows] = True
        values = unpack_column(table[name][rows], name)
        for i, v in zip(rows.tolist(), values):
            out[i] = v
    if not seen.all():
        bad = int(codes[~seen][0])
        raise ValueError(f"unknown class code {bad} in a mixed table")
    return out


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
    (same order) whose values per key are packable scalars or same-shaped arrays, else None.
    A column of strs is fixed-length UTF-8 when every one encodes to at most
    :data:`FIXED_STR_MAX` bytes, else variable-length (as a run of strs)."""
    if len(records) < 2:
        return None
    return _record_table(records)


def _record_table(records: list[Any]) -> tuple[np.ndarray, list[str]] | None:
    """:func:`pack_records` for one or more records."""
    if type(records[0]) is not dict or not records[0]:
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
            if scalar[1] is _STR:
                h5dtype, column = _str_field(column)  # type: ignore[misc]  # plain text: checked
                fields.append((key, h5dtype))
            else:
                fields.append((key, scalar[1]))
        elif (array := _array_field(column)) is not None:
            classes.append("numpy.ndarray")
            fields.append((key, array[0], array[1]))
        elif (dtype := _numpy_scalar_field(column)) is not None:
            classes.append(f"numpy.{type(column[0]).__name__}")
            fields.append((key, dtype))
        elif (mixed := pack_mixed(column)) is not None:
            classes.append(MIXED)
            fields.append((key, mixed.dtype))
            column = mixed
        else:
            return None
        columns.append(column)
    table = np.empty(len(records), dtype=fields)
    for (key, *_), column in zip(fields, columns):
        if type(column) is np.ndarray and column.dtype.names:  # a mixed column
            table[key] = column
        else:
            table[key] = column if table.dtype[key].shape == () else np.stack(column)
    return table, classes


def record_row(value: Any, dtype: np.dtype, classes: list[str]) -> np.void | None:
    """``value`` as one row of a stored record table (``dtype`` and its ``field_classes``),
    or None when it does not fit the table exactly: other keys, a value of another type,
    dtype or shape, a str longer than a fixed-length field, a mixed field without a column
    for the value's type. The list is then rewritten (never cut)."""
    names = dtype.names or ()
    packed = _record_table([value]) if type(value) is dict else None
    if packed is None or packed[0].dtype.names != names or len(classes) != len(names):
        return None
    table, new_classes = packed
    row = np.zeros(1, dtype=dtype)
    for name, stored_class, new_class in zip(names, classes, new_classes):
        field = dtype[name]
        if stored_class == MIXED:
            cell = mixed_row(value[name], field) if field.names else None
            if cell is None:
                return None
            row[name] = cell
        elif new_class != stored_class:
            return None
        elif stored_class == "str":
            text, info = value[name], h5py.check_string_dtype(field)
            if info is None:
                return None
            if info.length is None:
                row[name] = text
            else:
                raw = text.encode("utf-8")
                if len(raw) > field.itemsize:
                    return None
                row[name] = raw
        elif table.dtype[name] != field:
            return None
        else:
            row[name] = table[name]
    return row[0]


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
    if element_class == MIXED:
        return unpack_mixed(column)
    if element_class.startswith("numpy."):
        return list(column)
    raise ValueError(f"unknown packed element class {element_class!r}")
