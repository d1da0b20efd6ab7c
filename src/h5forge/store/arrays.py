"""An ndarray of any dtype as a stored node, and back (see docs/FORMAT.md, "Leaves").

Numeric, bool, complex, fixed-bytes and structured arrays are datasets of the same dtype; types
HDF5 lacks are mapped to types it has, with the numpy dtype in ``dtype``: unicode and
StringDType -> UTF-8 strings, datetime64/timedelta64 -> int64, object arrays -> a group of
members. Fortran-ordered arrays are stored transposed (no copy) with ``order = F``. Every codec
whose objects hold an array (numpy, units, pandas, astropy, xarray, scipy) uses these.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import h5py
import numpy as np

from h5forge.errors import CodecError, CorruptFileError
from h5forge.store import registry
from h5forge.store.attributes import read_attrs
from h5forge.store.containers import decode_sequence, encode_sequence
from h5forge.store.decoder import Decoder, Stored, open_child
from h5forge.store.encoder import Encoder, is_plain_text
from h5forge.store.layout import Node, dataset_node, group_node
from h5forge.store.lazy import LAZY_MIN_BYTES, LazyArray

__all__ = ["array_node", "read_array", "string_dtype_attrs", "string_dtype", "numpy_dtype",
           "child_stored"]

_STR = h5py.string_dtype()
_HDF5_KINDS = "biufcSV"
_StringDType = getattr(np.dtypes, "StringDType", None)


def _plain_dtype(dtype: np.dtype) -> bool:
    """Whether HDF5 stores this dtype as it is (numeric, bytes, structured of such)."""
    if dtype.fields is not None:
        return all(_plain_dtype(dtype.fields[name][0]) for name in dtype.names)
    if dtype.subdtype is not None:
        return _plain_dtype(dtype.subdtype[0])
    return dtype.kind in _HDF5_KINDS and dtype.itemsize > 0


def array_node(arr: np.ndarray, class_name: str, enc: Encoder, where: str,
               codec: registry.Codec) -> Node:
    """The node of one ndarray (any dtype) under ``class_name``."""
    dtype = arr.dtype
    if dtype.kind == "O":
        return encode_sequence(enc, codec, arr, class_name, list(arr.ravel()), where,
                               dtype="object", shape=list(arr.shape))
    if _StringDType is not None and isinstance(dtype, _StringDType):
        options = string_dtype_attrs(dtype, where)
        if "na_object" in options:
            return _text_with_missing(arr, class_name, options, where)
        node = _text_array(arr.astype(object), class_name, "StringDType", where)
        node.attrs.update(options)
        return node
    if dtype.kind == "U":
        return _text_array(arr.astype(object), class_name, dtype.str, where)
    if dtype.kind in "mM":  # int64 ticks; the unit (and a non-native byte order) in "dtype"
        native = dtype.isnative
        return dataset_node(class_name, arr.view(np.int64 if native else ">i8"),
                            dtype=dtype.name if native else dtype.str)
    if not _plain_dtype(dtype):
        raise CodecError(f"cannot store {where}: numpy dtype {dtype} has fields HDF5 cannot "
                         f"hold (unicode, object or datetime inside a structured dtype)")
    if arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous:
        return dataset_node(class_name, arr.T, order="F")
    return dataset_node(class_name, arr)


def _text_array(values: np.ndarray, class_name: str, dtype_name: str, where: str) -> Node:
    flat = values.ravel().tolist()
    if all(is_plain_text(v) for v in flat):
        return dataset_node(class_name, values, h5dtype=_STR, dtype=dtype_name)
    # NUL or lone surrogates: UTF-32 code points keep every character
    codes = np.array(values.astype("U"), dtype="U", order="C")
    width = max(codes.itemsize // 4, 1)
    if codes.itemsize:  # via 1-D: a 0-d array cannot change its itemsize in a view
        data = codes.reshape(-1).view(np.uint32).reshape(codes.shape + (width,))
    else:
        data = np.zeros(codes.shape + (1,), np.uint32)
    return dataset_node(class_name, data, dtype=dtype_name, encoding="utf-32")


# -- StringDType options ------------------------------------------------------------------------
def string_dtype_attrs(dtype: np.dtype, where: str) -> dict[str, Any]:
    """The attributes that keep a StringDType's options: ``na_object`` (``None``, ``nan``,
    ``pandas.NA`` or ``str``, the text itself in ``na_value``) and ``coerce`` = False."""
    attrs: dict[str, Any] = {}
    if not dtype.coerce:
        attrs["coerce"] = False
    if not hasattr(dtype, "na_object"):
        return attrs
    na = dtype.na_object
    if na is None:
        attrs["na_object"] = "None"
    elif isinstance(na, float) and math.isnan(na):
        attrs["na_object"] = "nan"
    elif isinstance(na, str) and is_plain_text(na):
        attrs["na_object"], attrs["na_value"] = "str", na
    elif _is_pandas_na(na):
        attrs["na_object"] = "pandas.NA"
    else:
        raise CodecError(f"cannot store {where}: StringDType missing-value object {na!r} is not "
                         f"None, NaN, pandas.NA or a plain str; convert the array first")
    return attrs


def _is_pandas_na(value: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and value is pd.NA


def string_dtype(attrs: Any, path: str) -> np.dtype:
    """The StringDType the attributes of :func:`string_dtype_attrs` describe."""
    if _StringDType is None:
        return np.dtype(object)
    options: dict[str, Any] = {}
    coerce = attrs.get("coerce")
    if coerce is not None:
        options["coerce"] = bool(coerce)
    kind = attrs.get("na_object")
    if kind is not None:
        if kind == "None":
            options["na_object"] = None
        elif kind == "nan":
            options["na_object"] = float("nan")
        elif kind == "str":
            value = attrs.get("na_value")
            if not isinstance(value, str):
                raise CorruptFileError(f"{path}: na_object 'str' needs a string 'na_value'")
            options["na_object"] = value
        elif kind == "pandas.NA":
            try:
                import pandas as pd
            except ImportError:
                raise CorruptFileError(f"{path}: the missing values are pandas.NA; install "
                                       f"pandas to load this array") from None
            options["na_object"] = pd.NA
        else:
            raise CorruptFileError(f"{path}: unknown StringDType na_object {kind!r}")
    return _StringDType(**options)


MISSING = "missing"


def _text_with_missing(arr: np.ndarray, class_name: str, options: dict, where: str) -> Node:
    """A StringDType array with missing values: a group with the text (``values``, missing
    entries as "") and a bool ``missing`` mask, attributes ``dtype`` and the options."""
    na = arr.dtype.na_object
    values = arr.astype(object)
    flat = values.reshape(-1)
    mask = np.fromiter((v is na for v in flat), bool, flat.size).reshape(values.shape)
    flat[mask.reshape(-1)] = ""
    node = group_node(class_name, dtype="StringDType", **options)
    node.add("values", _text_array(values, "numpy.ndarray", "StringDType", where))
    node.add(MISSING, dataset_node("numpy.ndarray", mask))
    return node


def _read_text_with_missing(stored: Stored, dec: Decoder) -> np.ndarray:
    dtype = string_dtype(stored.attrs, stored.path)
    values = np.asarray(read_array(child_stored(stored, "values"), dec))
    mask = np.asarray(read_array(child_stored(stored, MISSING), dec))
    if mask.dtype != bool or mask.shape != values.shape:
        raise CorruptFileError(f"{stored.path}: '{MISSING}' must be a bool array of the text's "
                               f"shape {values.shape}")
    out = values.astype(object)
    out[mask] = dtype.na_object if hasattr(dtype, "na_object") else None
    return out.astype(dtype) if _StringDType is not None else out


def read_array(stored: Stored, dec: Decoder) -> np.ndarray | LazyArray:
    """Read an array node written by :func:`array_node`."""
    attrs = stored.attrs
    dtype_name = attrs.get("dtype")
    if stored.is_group and dtype_name == "StringDType":
        return _read_text_with_missing(stored, dec)
    if stored.is_group or dtype_name == "object":
        return _read_object_array(stored, dec)
    order_f = attrs.get("order") == "F"
    if dtype_name is None and dec.lazy and not order_f:
        ds = stored.h5  # nothing is read now, so no memory check
        if (ds.size or 0) * ds.dtype.itemsize >= LAZY_MIN_BYTES:
            return LazyArray(ds)
    ds = stored.dataset()
    if dtype_name is None:
        out = np.empty(ds.shape, ds.dtype)
        if out.size:
            ds.read_direct(out)
        return out.T if order_f else out
    dtype_name = str(dtype_name)
    if attrs.get("encoding") == "utf-32":
        codes = np.ascontiguousarray(stored.read("u"), dtype=np.uint32)
        if codes.size and codes.max() > 0x10FFFF:
            raise CorruptFileError(f"{stored.path}: code points beyond U+10FFFF")
        text = codes.view(f"<U{codes.shape[-1]}").reshape(codes.shape[:-1])
        if dtype_name == "StringDType":
            return text.astype(string_dtype(attrs, stored.path))
        return text.astype(numpy_dtype(dtype_name, stored.path))
    if dtype_name == "StringDType":
        return np.array(ds.asstr()[()], dtype=string_dtype(attrs, stored.path))
    if dtype_name.lstrip("<>|=").startswith("U"):
        values = ds.asstr()[()]
        return np.array(values, dtype=numpy_dtype(dtype_name, stored.path))
    dtype = numpy_dtype(dtype_name, stored.path)
    if dtype.kind not in "mM":
        raise CorruptFileError(f"{stored.path}: unexpected dtype attribute {dtype_name!r}")
    ticks = np.asarray(ds[()]).astype(np.int64)
    return ticks.view(dtype.newbyteorder("=")).astype(dtype)


def numpy_dtype(name: str, path: str) -> np.dtype:
    if name == "StringDType":
        if _StringDType is None:
            return np.dtype(object)
        return _StringDType()
    try:
        return np.dtype(name)
    except TypeError:
        raise CorruptFileError(f"{path}: unknown numpy dtype {name!r}") from None


def _read_object_array(stored: Stored, dec: Decoder) -> np.ndarray:
    shape = tuple(int(n) for n in np.atleast_1d(stored.attr("shape")))
    if stored.is_group:
        count = len(stored.member_names())
    else:
        count = stored.dataset().shape[0] if stored.h5.ndim else -1
    if min(shape, default=0) < 0 or math.prod(shape) != count:
        raise CorruptFileError(f"{stored.path}: shape {shape} does not match its {count} "
                               f"members")
    out = np.empty(shape, dtype=object)
    dec.register(stored, out)
    items = decode_sequence(stored, dec)
    if len(items) != out.size:
        raise CorruptFileError(f"{stored.path}: {len(items)} members for shape {shape}")
    flat = out.reshape(-1)
    for i, item in enumerate(items):
        flat[i] = item
    return out


def child_stored(stored: Stored, name: str) -> Stored:
    """Child ``name`` of a group node as a :class:`Stored` (attributes read), to read it with a
    helper such as :func:`read_array` rather than decode it through its codec."""
    h5obj = open_child(stored, name)
    return Stored(h5obj, read_attrs(h5obj), stored.child_path(name))
