"""Codecs for numpy arrays, masked arrays and numpy scalars.

Numeric, bool, complex, fixed-bytes and structured arrays are stored as datasets of the same
dtype; types HDF5 lacks are mapped to types it has, with the numpy dtype in ``dtype``:
unicode and StringDType -> UTF-8 strings, datetime64/timedelta64 -> int64, object arrays -> a
group of members. Fortran-ordered arrays are stored transposed (no copy) with ``order = F``.
"""

from __future__ import annotations

import json
from typing import Any

import h5py
import numpy as np

from h5forge.errors import CodecError, CorruptFileError
from h5forge.store import registry
from h5forge.store.nodes import (
    INSTANCE_ATTRIBUTES,
    LazyArray,
    array_node,
    child_stored,
    group_node,
    numpy_dtype,
    plain_state,
    python_layout,
    read_array,
    read_str,
    set_state,
    state_node,
    str_dataset,
    string_dtype,
    string_dtype_attrs,
)

__all__ = ["ArrayCodec", "MaskedArrayCodec", "ScalarCodec", "DTypeCodec"]

_StringDType = getattr(np.dtypes, "StringDType", None)

_STR = h5py.string_dtype()


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
        node = group_node(self.name)
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
        data = read_array(child_stored(stored, "data"), dec)
        mask = np.ma.nomask
        if "mask" in stored.children():
            mask = read_array(child_stored(stored, "mask"), dec)
        return np.ma.MaskedArray(np.asarray(data), mask=mask,
                                 fill_value=dec.child(stored, "fill_value"),
                                 hard_mask=bool(stored.attrs.get("hardmask", False)))


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
        return numpy_dtype(spec, path)
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
            return str_dataset(self.name, spec, **attrs)
        return str_dataset(self.name, json.dumps(spec), format="json")

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
            return string_dtype(stored.attrs, stored.path)
        return spec_dtype(text, stored.path)

