"""Codecs for numpy arrays, masked arrays and numpy scalars.

Numeric, bool, complex, fixed-bytes and structured arrays are stored as datasets of the same
dtype; types HDF5 lacks are mapped to types it has, with the numpy dtype in ``dtype``:
unicode and StringDType -> UTF-8 strings, datetime64/timedelta64 -> int64, object arrays -> a
group of members. Fortran-ordered arrays are stored transposed (no copy) with ``order = F``.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import h5py
import numpy as np

from h5forge.errors import CodecError, CorruptFileError
from h5forge.store import registry
from h5forge.store.attributes import read_attrs
from h5forge.store.codecs.builtins import decode_sequence, encode_sequence, read_str, str_dataset
from h5forge.store.codecs.objects import (
    INSTANCE_ATTRIBUTES,
    plain_state,
    set_state,
)
from h5forge.store.codecs.objects import _python_layout as python_layout
from h5forge.store.codecs.objects import _state_node as state_node
from h5forge.store.decoder import Decoder, Stored, open_child
from h5forge.store.encoder import Encoder, is_plain_text
from h5forge.store.layout import Node, dataset_node, group_node
from h5forge.store.lazy import LAZY_MIN_BYTES, LazyArray

__all__ = ["array_node", "read_array"]

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


def _string_dtype(attrs: Any, path: str) -> np.dtype:
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
    dtype = _string_dtype(stored.attrs, stored.path)
    values = np.asarray(read_array(_child(stored, "values"), dec))
    mask = np.asarray(read_array(_child(stored, MISSING), dec))
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
            return text.astype(_string_dtype(attrs, stored.path))
        return text.astype(_numpy_dtype(dtype_name, stored.path))
    if dtype_name == "StringDType":
        return np.array(ds.asstr()[()], dtype=_string_dtype(attrs, stored.path))
    if dtype_name.lstrip("<>|=").startswith("U"):
        values = ds.asstr()[()]
        return np.array(values, dtype=_numpy_dtype(dtype_name, stored.path))
    dtype = _numpy_dtype(dtype_name, stored.path)
    if dtype.kind not in "mM":
        raise CorruptFileError(f"{stored.path}: unexpected dtype attribute {dtype_name!r}")
    ticks = np.asarray(ds[()]).astype(np.int64)
    return ticks.view(dtype.newbyteorder("=")).astype(dtype)


def _numpy_dtype(name: str, path: str) -> np.dtype:
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


#: Instance attributes of numpy's own subclasses that are bookkeeping, not data.
_TRANSIENT = {np.matrix: frozenset({"_getitem"}),
              np.memmap: frozenset({"_mmap", "filename", "offset", "mode"})}
SUBCLASS_DATA = "data"


def _subclass_state(obj: np.ndarray, name: str, where: str) -> dict:
    """The instance state of an ndarray subclass (``__dict__`` and ``__slots__`` members, less
    numpy's own bookkeeping), refusing subclasses that keep state where Python cannot see it."""
    tp = type(obj)
    if isinstance(obj, np.ma.MaskedArray):
        raise CodecError(f"cannot store {where}: {name} is a subclass of numpy.ma.MaskedArray, "
                         f"which h5forge does not know; register a codec for it")
    for klass in tp.__mro__:
        if klass is not np.ndarray and issubclass(klass, np.ndarray) and \
                not python_layout(klass):
            raise CodecError(f"cannot store {where}: ndarray subclass {name} keeps state in C "
                             f"fields that h5forge cannot see; register a codec for it")
    state = plain_state(obj)
    for klass in tp.__mro__:
        for attr in _TRANSIENT.get(klass, ()):
            state.pop(attr, None)
    return state


class ArrayCodec(registry.Codec):
    """numpy.ndarray and its subclasses.

    A subclass instance without instance state is stored as the data with the subclass's name
    (loaded as a view of that class). One with state (``__dict__``/``__slots__`` members, e.g.
    vigra's axistags) is a group: the array as the child ``data`` and the state as
    ``instance_attributes``, like a user object; it loads as a view of the class with the state
    restored (after ``__array_finalize__``), or as an UnknownObject when the class cannot be
    found. ``numpy.memmap`` is stored as the plain array it maps (its file is not data).
    """

    types = (np.ndarray,)
    names = ("numpy.ndarray",)

    def matches(self, tp):
        return issubclass(tp, np.ndarray)

    def encode(self, obj, enc, where):
        tp = type(obj)
        if tp is np.ndarray:
            return array_node(obj, "numpy.ndarray", enc, where, self)
        name = "numpy.ndarray" if tp is np.memmap else registry.class_name_of(tp)
        state = _subclass_state(obj, name, where)
        if not state:
            return array_node(np.asarray(obj), name, enc, where, self)
        node = group_node(name)
        node.add(SUBCLASS_DATA, array_node(np.asarray(obj), "numpy.ndarray", enc,
                                           f"{where}.view(numpy.ndarray)", self))
        node.add(INSTANCE_ATTRIBUTES, state_node(enc, state, where))
        return node

    def decode(self, stored, dec):
        cls = stored.cls
        subclass = cls is not None and cls is not np.ndarray
        if subclass and stored.is_group and stored.attrs.get("dtype") != "object":
            return self._decode_with_state(stored, dec, cls)
        arr = read_array(stored, dec)
        if subclass and isinstance(arr, LazyArray):
            arr = arr.load()  # a subclass (np.matrix, ...) needs its data in memory
        if subclass and isinstance(arr, np.ndarray):
            return arr.view(cls)
        return arr

    def _decode_with_state(self, stored, dec, cls):
        arr = dec.child(stored, SUBCLASS_DATA)
        if isinstance(arr, LazyArray):
            arr = arr.load()
        if type(arr) is not np.ndarray:
            raise CorruptFileError(f"{stored.child_path(SUBCLASS_DATA)}: the data of ndarray "
                                   f"subclass {stored.class_name!r} must be a numpy.ndarray, "
                                   f"found {type(arr).__name__}")
        obj = arr.view(cls)  # runs __array_finalize__; the stored state then wins
        dec.register(stored, obj)
        set_state(obj, dec.child(stored, INSTANCE_ATTRIBUTES), stored.path)
        return obj


class MaskedArrayCodec(registry.Codec):
    """numpy.ma.MaskedArray: a group with ``data``, ``mask`` (unless nomask), ``fill_value``."""

    types = (np.ma.MaskedArray,)
    names = ("numpy.ma.MaskedArray",)

    def encode(self, obj, enc, where):
        node = group_node("numpy.ma.MaskedArray")
        if obj.hardmask:
            node.attrs["hardmask"] = True
        node.add("data", array_node(obj.data, "numpy.ndarray", enc, f"{where}.data", self))
        if obj.mask is not np.ma.nomask:
            node.add("mask", array_node(np.ma.getmaskarray(obj), "numpy.ndarray", enc,
                                        f"{where}.mask", self))
        fill = np.asarray(obj.fill_value, dtype=obj.dtype)[()]
        node.add("fill_value", enc.node(fill, f"{where}.fill_value", inline=False))
        return node

    def decode(self, stored, dec):
        data = read_array(_child(stored, "data"), dec)
        mask = np.ma.nomask
        if "mask" in stored.children():
            mask = read_array(_child(stored, "mask"), dec)
        return np.ma.MaskedArray(np.asarray(data), mask=mask,
                                 fill_value=dec.child(stored, "fill_value"),
                                 hard_mask=bool(stored.attrs.get("hardmask", False)))


def _child(stored: Stored, name: str) -> Stored:
    h5obj = open_child(stored, name)
    return Stored(h5obj, read_attrs(h5obj), stored.child_path(name))


class ScalarCodec(registry.Codec):
    """numpy scalars (numpy.float32, numpy.str_, numpy.datetime64, ...): a 0-d dataset."""

    tracks_identity = False

    def matches(self, tp):
        return issubclass(tp, np.generic)

    def encode(self, obj, enc, where):
        return array_node(np.asarray(obj), registry.class_name_of(type(obj)), enc, where, self)

    def decode(self, stored, dec):
        utf32 = stored.attrs.get("encoding") == "utf-32"  # code points on a trailing axis
        if len(stored.dataset().shape) != (1 if utf32 else 0):
            raise CorruptFileError(f"{stored.path}: a numpy scalar needs a 0-d dataset")
        value = read_array(stored, dec)[()]
        cls = stored.cls
        if cls is not None and type(value) is not cls:
            value = cls(value)
        return value


# -- numpy.dtype objects ------------------------------------------------------------------------
#: Longest dtype description read from a file.
DTYPE_TEXT_MAX = 1 << 16


def dtype_spec(dtype: np.dtype, where: str) -> Any:
    """A JSON-able description of ``dtype``: its ``.str`` (``<f4``, ``|S5``, ``<M8[ns]``,
    ``|O``) or, for structured and sub-array dtypes, a dict of names/formats/offsets/itemsize
    (``aligned``) or base/shape, formats described the same way."""
    if dtype.metadata:
        raise CodecError(f"cannot store {where}: numpy dtype {dtype} carries metadata "
                         f"({dict(dtype.metadata)!r}), which h5forge does not store")
    if dtype.fields is not None:
        if any(len(dtype.fields[name]) > 2 for name in dtype.names):
            raise CodecError(f"cannot store {where}: numpy dtype {dtype} has field titles")
        spec = {"names": list(dtype.names),
                "formats": [dtype_spec(dtype.fields[n][0], where) for n in dtype.names],
                "offsets": [int(dtype.fields[n][1]) for n in dtype.names],
                "itemsize": int(dtype.itemsize)}
        if dtype.isalignedstruct:
            spec["aligned"] = True
        return spec
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return {"base": dtype_spec(base, where), "shape": [int(n) for n in shape]}
    if _StringDType is not None and isinstance(dtype, _StringDType):
        return "StringDType"
    return dtype.str


def spec_dtype(spec: Any, path: str, depth: int = 0) -> np.dtype:
    """The dtype a :func:`dtype_spec` description stands for (checked: only strings, lists of
    ints/strings and nested descriptions reach numpy)."""
    if depth > 32:
        raise CorruptFileError(f"{path}: dtype description nested too deeply")
    if isinstance(spec, str):
        if spec == "StringDType":
            return _StringDType() if _StringDType is not None else np.dtype(object)
        return _numpy_dtype(spec, path)
    if isinstance(spec, dict) and set(spec) == {"base", "shape"}:
        shape = spec["shape"]
        if not isinstance(shape, list) or not all(type(n) is int and 0 <= n < 2**31
                                                  for n in shape):
            raise CorruptFileError(f"{path}: bad sub-array shape {shape!r} in a dtype")
        return np.dtype((spec_dtype(spec["base"], path, depth + 1), tuple(shape)))
    if isinstance(spec, dict) and {"names", "formats", "offsets", "itemsize"} <= set(spec) <= \
            {"names", "formats", "offsets", "itemsize", "aligned"}:
        names, formats, offsets = spec["names"], spec["formats"], spec["offsets"]
        if not (isinstance(names, list) and isinstance(formats, list) and
                isinstance(offsets, list) and len(names) == len(formats) == len(offsets) and
                all(isinstance(n, str) for n in names) and
                all(type(o) is int and o >= 0 for o in offsets) and
                type(spec["itemsize"]) is int):
            raise CorruptFileError(f"{path}: bad structured dtype description")
        fields = {"names": names, "offsets": offsets, "itemsize": spec["itemsize"],
                  "formats": [spec_dtype(f, path, depth + 1) for f in formats]}
        return np.dtype(fields, align=bool(spec.get("aligned", False)))
    raise CorruptFileError(f"{path}: {spec!r} is not a dtype description")


class DTypeCodec(registry.Codec):
    """``numpy.dtype`` objects (any dtype class: ``numpy.dtypes.Float64DType``, ...): a string
    dataset, ``class`` = ``numpy.dtype``, holding the dtype's ``.str`` (``<f8``) or, for
    structured and sub-array dtypes, a JSON description; StringDType options as attributes."""

    types = (np.dtype,)
    names = ("numpy.dtype",)
    tracks_identity = False

    def matches(self, tp):
        return issubclass(tp, np.dtype)

    def encode(self, obj, enc, where):
        spec = dtype_spec(obj, where)
        attrs = string_dtype_attrs(obj, where) if spec == "StringDType" else {}
        if isinstance(spec, str):
            return str_dataset("numpy.dtype", spec, **attrs)
        return str_dataset("numpy.dtype", json.dumps(spec), format="json")

    def decode(self, stored, dec):
        text = read_str(stored)
        if len(text) > DTYPE_TEXT_MAX:
            raise CorruptFileError(f"{stored.path}: dtype description of {len(text)} "
                                   f"characters")
        if stored.attrs.get("format") == "json":
            try:
                spec = json.loads(text)
            except ValueError:
                raise CorruptFileError(f"{stored.path}: dtype description is not JSON") \
                    from None
            return spec_dtype(spec, stored.path)
        if text == "StringDType":
            return _string_dtype(stored.attrs, stored.path)
        return spec_dtype(text, stored.path)

