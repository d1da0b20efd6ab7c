"""Byte sizes, dtypes and short values as text: for printed plans and trees, messages and YAML
plan files."""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

__all__ = ["format_bytes", "dtype_to_text", "dtype_from_text", "short_repr", "type_name"]

_BINARY = ("KiB", "MiB", "GiB", "TiB", "PiB")
_DECIMAL = ("KB", "MB", "GB", "TB", "PB")


def format_bytes(nbytes: float, *, binary: bool = True) -> str:
    """``812 B``, ``1.5 KiB``, ``3.2 MiB`` (binary), or ``10.00 MB`` (``binary=False``: powers of
    1000, the units chunk and buffer targets are given in)."""
    base, units, digits = (1024, _BINARY, 1) if binary else (1000, _DECIMAL, 2)
    if nbytes < base:
        return f"{int(nbytes)} B"
    value = float(nbytes)
    for unit in units:
        value /= base
        if value < base or unit == units[-1]:
            return f"{value:.{digits}f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def dtype_to_text(dtype: np.dtype) -> Any:
    """A YAML-friendly spelling of ``dtype``: ``'<f8'``, ``'vlen-str'``, ``'vlen-bytes'``,
    ``'object'``, fixed-length UTF-8 text as ``{utf8: nbytes}`` (``'|S20'`` would lose the
    encoding HDF5 records), an HDF5 enum as ``{enum: {name: value}, base: '<i1'}``, or for a compound type
    a list of ``[name, type]`` (``[name, type, shape]`` for a sub-array field)."""
    dtype = np.dtype(dtype)
    enum = h5py.check_enum_dtype(dtype)
    if enum is not None:
        return {"enum": {str(k): int(v) for k, v in enum.items()}, "base": dtype.str}
    string = h5py.check_string_dtype(dtype)
    if string is not None and dtype.kind == "O":
        return "vlen-str" if string.encoding == "utf-8" else "vlen-bytes"
    if string is not None and string.encoding == "utf-8":  # fixed-length UTF-8: keep the label
        return {"utf8": dtype.itemsize}
    if dtype.names is not None:
        fields = []
        for name in dtype.names:
            field = dtype.fields[name][0]
            if field.subdtype is not None:
                base, shape = field.subdtype
                fields.append([name, dtype_to_text(base), list(shape)])
            else:
                fields.append([name, dtype_to_text(field)])
        return fields
    if dtype.kind == "O":
        return "object"
    return dtype.str


def dtype_from_text(text: Any) -> np.dtype:
    """The inverse of :func:`dtype_to_text`. Raises ``TypeError``/``ValueError`` on bad input."""
    if text == "vlen-str":
        return h5py.string_dtype("utf-8")
    if text == "vlen-bytes":
        return h5py.string_dtype("ascii")
    if text == "object":
        return np.dtype(object)
    if isinstance(text, dict) and set(text) == {"utf8"}:
        return h5py.string_dtype("utf-8", int(text["utf8"]))
    if isinstance(text, dict):
        if set(text) != {"enum", "base"} or not isinstance(text["enum"], dict):
            raise ValueError(f"an enum dtype is {{enum: {{name: value}}, base: type}}, got "
                             f"{text!r}")
        return h5py.enum_dtype({str(k): int(v) for k, v in text["enum"].items()},
                               basetype=np.dtype(text["base"]))
    if isinstance(text, list):
        fields = []
        for field in text:
            if not isinstance(field, (list, tuple)) or len(field) not in (2, 3):
                raise ValueError(f"a compound field must be [name, type] or [name, type, shape], "
                                 f"got {field!r}")
            name, sub = str(field[0]), dtype_from_text(field[1])
            fields.append((name, sub, tuple(field[2])) if len(field) == 3 else (name, sub))
        return np.dtype(fields)
    if not isinstance(text, str):
        raise TypeError(f"a dtype must be a string or a list of fields, got {text!r}")
    return np.dtype(text)


def short_repr(value: Any, width: int = 40) -> str:
    """``repr(value)`` cut to ``width`` characters (``...`` marks the cut; a cut string keeps
    its closing quote so it still reads as a string)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    if len(text) <= width:
        return text
    if isinstance(value, str):
        return text[: width - 4] + "..." + text[0]
    return text[: width - 3] + "..."


def type_name(value: Any) -> str:
    """The Python type of ``value`` as the store names it: ``int``, ``None``, ``numpy.int32``."""
    if value is None:
        return "None"
    tp = type(value)
    module = tp.__module__
    if module == "builtins":
        return tp.__qualname__
    if module.startswith("numpy"):
        module = "numpy"
    return f"{module}.{tp.__qualname__}"
