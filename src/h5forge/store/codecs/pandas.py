"""Codecs for pandas objects, as plain groups and datasets (no PyTables, no pickle).

DataFrame, Series, the index types (Index, RangeIndex, MultiIndex, DatetimeIndex,
TimedeltaIndex, CategoricalIndex), the extension arrays their columns hold (Categorical,
nullable integer/float/boolean, string, tz-aware datetime) and the scalars Timestamp,
Timedelta, NaT and NA. Every column is its own node: a numpy dataset, or a small group of
datasets (values + mask, codes + categories). The layout is documented in docs/FORMAT.md.

pandas is not imported here: :meth:`PandasCodec.matches` looks at a type's module first and
imports pandas only for types that come from it, and decoding imports pandas when it meets one
of its nodes. When pandas cannot be imported the node loads as :class:`UnknownObject` (arrays
intact, with an :class:`UnknownClassWarning`); dumping that writes the same layout back.
Stored class names are pandas' public names (``pandas.DataFrame``, ``pandas.arrays.IntegerArray``),
never its internal module paths, so files stay readable when pandas moves its classes.
"""

from __future__ import annotations

import datetime as dt
import importlib
import warnings
import zoneinfo
from typing import Any, Callable

import numpy as np

from h5forge.errors import CodecError, CorruptFileError
from h5forge.store import registry
from h5forge.store.codecs import _timezones as timezones
from h5forge.store.nodes import (
    NAMED_KEYS_MAX,
    Decoder,
    Encoder,
    LazyArray,
    Node,
    Stored,
    UnknownClassWarning,
    array_node,
    group_node,
    is_member_name,
    read_array,
    read_str,
    str_dataset,
)

__all__ = ["PandasCodec", "PandasScalarCodec"]

DATAFRAME = "pandas.DataFrame"
SERIES = "pandas.Series"
INDEX = "pandas.Index"
RANGE_INDEX = "pandas.RangeIndex"
MULTI_INDEX = "pandas.MultiIndex"
DATETIME_INDEX = "pandas.DatetimeIndex"
TIMEDELTA_INDEX = "pandas.TimedeltaIndex"
CATEGORICAL_INDEX = "pandas.CategoricalIndex"
CATEGORICAL = "pandas.Categorical"
INTEGER_ARRAY = "pandas.arrays.IntegerArray"
FLOATING_ARRAY = "pandas.arrays.FloatingArray"
BOOLEAN_ARRAY = "pandas.arrays.BooleanArray"
STRING_ARRAY = "pandas.arrays.StringArray"
ARROW_STRING_ARRAY = "pandas.arrays.ArrowStringArray"
DATETIME_ARRAY = "pandas.arrays.DatetimeArray"
TIMEDELTA_ARRAY = "pandas.arrays.TimedeltaArray"
NUMPY_ARRAY = "pandas.arrays.NumpyExtensionArray"
TIMESTAMP = "pandas.Timestamp"
TIMEDELTA = "pandas.Timedelta"
NAT = "pandas.NaT"
NA = "pandas.NA"

#: Members of a DataFrame group besides its columns; a column label equal to one of them (or
#: any label that is not a usable HDF5 name) makes the columns positional ("0", "1", ...).
_FRAME_MEMBERS = frozenset({"index", "columns", "attrs", "allows_duplicate_labels"})
#: How the missing values of an object column of strings are written (attribute ``na_value``).
_OBJECT_HOLES = ("None", "nan", "NA")
#: Masked (nullable) arrays: numpy kinds their ``values`` dataset may have.
_MASKED_KINDS = {INTEGER_ARRAY: "iu", FLOATING_ARRAY: "f", BOOLEAN_ARRAY: "b"}

_type_names: dict[type, str] | None = None


def _pandas():
    """The pandas module (raises ImportError when it cannot be imported)."""
    return importlib.import_module("pandas")


def _names(pd) -> dict[type, str]:
    """pandas type -> stored class name (public names, built once pandas is imported)."""
    global _type_names
    if _type_names is None:
        arrays = pd.arrays
        _type_names = {
            pd.DataFrame: DATAFRAME, pd.Series: SERIES, pd.Index: INDEX,
            pd.RangeIndex: RANGE_INDEX, pd.MultiIndex: MULTI_INDEX,
            pd.DatetimeIndex: DATETIME_INDEX, pd.TimedeltaIndex: TIMEDELTA_INDEX,
            pd.CategoricalIndex: CATEGORICAL_INDEX, pd.Categorical: CATEGORICAL,
            arrays.IntegerArray: INTEGER_ARRAY, arrays.FloatingArray: FLOATING_ARRAY,
            arrays.BooleanArray: BOOLEAN_ARRAY, arrays.StringArray: STRING_ARRAY,
            arrays.ArrowStringArray: ARROW_STRING_ARRAY, arrays.DatetimeArray: DATETIME_ARRAY,
            arrays.TimedeltaArray: TIMEDELTA_ARRAY, arrays.NumpyExtensionArray: NUMPY_ARRAY,
            pd.Timestamp: TIMESTAMP, pd.Timedelta: TIMEDELTA, type(pd.NaT): NAT,
            type(pd.NA): NA,
        }  # fmt: skip
    return _type_names


_SCALARS = frozenset({TIMESTAMP, TIMEDELTA, NAT, NA})


def _from_pandas(tp: type) -> bool:
    """Whether ``tp`` or one of its bases is defined in pandas (checked without importing it)."""
    for klass in getattr(tp, "__mro__", (tp,)):
        module = getattr(klass, "__module__", None)
        if isinstance(module, str) and (module == "pandas" or module.startswith("pandas.")):
            return True
    return False


def _claims(tp: type, scalars: bool) -> bool:
    if not _from_pandas(tp):
        return False
    try:
        pd = _pandas()
    except ImportError:
        return False
    return any(issubclass(tp, known) for known, name in _names(pd).items()
               if (name in _SCALARS) is scalars)


def _class_name(pd, obj: Any, where: str) -> str:
    """The stored class name of ``obj``; CodecError for pandas types this codec lacks and for
    subclasses (whose own state would be lost)."""
    tp = type(obj)
    name = _names(pd).get(tp)
    if name is not None:
        return name
    if isinstance(obj, pd.api.extensions.ExtensionArray) and isinstance(obj.dtype,
                                                                        pd.StringDtype):
        return ARROW_STRING_ARRAY if obj.dtype.storage == "pyarrow" else STRING_ARRAY
    qualified = f"{tp.__module__}.{tp.__qualname__}"
    if tp.__module__.startswith("pandas"):
        raise CodecError(
            f"cannot store {where}: {qualified} ({_short(obj)}) is not supported by h5forge's "
            f"pandas codec; convert it first (Period/Interval data: .astype(str) or "
            f"to_timestamp(); sparse data: .sparse.to_dense())")
    raise CodecError(
        f"cannot store {where}: {qualified} subclasses a pandas type, and storing it as that "
        f"type would lose what the subclass adds; convert it (e.g. pandas.DataFrame(obj)) or "
        f"register a codec for it with h5forge.register_codec()")


def _short(obj: Any) -> str:
    return f"dtype {obj.dtype}" if hasattr(obj, "dtype") else type(obj).__name__


# -- time zones -----------------------------------------------------------------------------------
def _tz_name(tz: Any, where: str) -> str:
    """The ``tz`` attribute: a zoneinfo key, ``UTC``, or a fixed offset ``+05:30``."""
    if isinstance(tz, zoneinfo.ZoneInfo) and tz.key is not None:
        return tz.key
    if type(tz) is dt.timezone:
        offset = tz.utcoffset(None)
        if tz.tzname(None) == dt.timezone(offset).tzname(None):  # no custom name to lose
            if not offset:
                return "UTC"
            return dt.datetime(2000, 1, 1, tzinfo=tz).isoformat()[19:]
    if timezones.is_dateutil(tz):  # pandas' tz="dateutil/Europe/Berlin"
        return timezones.dateutil_tz_text(tz, where, offsets=False)[0]
    raise CodecError(
        f"cannot store {where}: time zone {tz!r} ({type(tz).__module__}.{type(tz).__qualname__})"
        f" is not a zoneinfo zone or a fixed offset; convert it with "
        f".tz_convert(zoneinfo.ZoneInfo(name)) (or .dt.tz_convert for a column)")


def _tz(text: Any, path: str) -> dt.tzinfo:
    if not isinstance(text, str) or not text:
        raise CorruptFileError(f"{path}: attribute 'tz' must be a time zone name, found {text!r}")
    if text == "UTC":
        return dt.timezone.utc
    if text.startswith(timezones.PREFIX):
        return timezones.dateutil_tz(text, path)
    if text[0] in "+-":
        try:
            return dt.datetime.fromisoformat("2000-01-01T00:00:00" + text).tzinfo
        except ValueError:
            raise CorruptFileError(f"{path}: {text!r} is not a UTC offset") from None
    try:
        return zoneinfo.ZoneInfo(text)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise CorruptFileError(f"{path}: unknown time zone {text!r}") from None


# -- encoding -------------------------------------------------------------------------------------
def _array_codec() -> registry.Codec:
    return registry.codec_for_name("numpy.ndarray")


def _numpy_node(pd, arr: np.ndarray, enc: Encoder, where: str) -> Node:
    """A numpy-typed column: the array node, except an object column of strings with missing
    values (None, nan or NA), which is stored as strings + mask."""
    if arr.dtype.kind == "O" and arr.ndim == 1:
        holes = _string_holes(pd, arr)
        if holes is not None:
            mask, na_value = holes
            node = group_node(NUMPY_ARRAY, na_value=na_value)
            filled = arr.copy()
            filled[mask] = ""
            node.add("values", array_node(filled, "numpy.ndarray", enc, f"{where}.values",
                                          _array_codec()))
            node.add("mask", array_node(mask, "numpy.ndarray", enc, f"{where}.mask",
                                        _array_codec()))
            return node
    return array_node(arr, "numpy.ndarray", enc, where, _array_codec())


def _string_holes(pd, arr: np.ndarray) -> tuple[np.ndarray, str] | None:
    """(mask, na_value) when ``arr`` holds strings and at least one missing value, all missing
    values being the same kind of None, float nan or pandas.NA; else None."""
    values = arr.tolist()
    mask = np.fromiter((type(v) is not str for v in values), dtype=bool, count=len(values))
    if not mask.any():
        return None
    kinds = set()
    for i in np.flatnonzero(mask).tolist():
        v = values[i]
        kinds.add("None" if v is None else "NA" if v is pd.NA else
                  "nan" if type(v) is float and v != v else "other")
        if len(kinds) > 1 or "other" in kinds:
            return None
    return mask, kinds.pop()


def _data_node(pd, obj: Any, enc: Encoder, where: str) -> Node:
    """The node of the data of a Series or (flat) Index."""
    if isinstance(obj.dtype, np.dtype):
        return _numpy_node(pd, obj.to_numpy(), enc, where)
    return _array_node(pd, obj.array, enc, where)


def _array_node(pd, arr: Any, enc: Encoder, where: str) -> Node:
    """The node of a pandas ExtensionArray, by its dtype."""
    dtype = arr.dtype
    codec = _array_codec()
    if isinstance(dtype, pd.CategoricalDtype):
        node = group_node(CATEGORICAL, ordered=bool(arr.ordered))
        node.add("codes", array_node(np.asarray(arr.codes), "numpy.ndarray", enc,
                                     f"{where}.codes", codec))
        node.add("categories", enc.node(arr.categories, f"{where}.categories", inline=False))
        return node
    if isinstance(dtype, pd.DatetimeTZDtype):
        tz = _tz_name(dtype.tz, where)
        ticks = arr.tz_convert("UTC").tz_localize(None).to_numpy()
        node = array_node(ticks, DATETIME_ARRAY, enc, where, codec)
        node.attrs["tz"] = tz
        return node
    if isinstance(dtype, pd.StringDtype):
        name = _class_name(pd, arr, where)
        na_value = "NA" if dtype.na_value is pd.NA else "nan"
        node = group_node(name, na_value=na_value)
        mask = np.asarray(arr.isna(), dtype=bool)
        values = np.asarray(arr.to_numpy(dtype=object, na_value=""), dtype=object)
        node.add("values", array_node(values, "numpy.ndarray", enc, f"{where}.values", codec))
        node.add("mask", array_node(mask, "numpy.ndarray", enc, f"{where}.mask", codec))
        return node
    name = _names(pd).get(type(arr))
    if name in _MASKED_KINDS:
        node = group_node(name)
        numpy_dtype = dtype.numpy_dtype  # public API only: values with 0 under the mask
        values = arr.to_numpy(dtype=numpy_dtype, na_value=np.zeros((), numpy_dtype)[()])
        node.add("values", array_node(values, "numpy.ndarray", enc, f"{where}.values", codec))
        node.add("mask", array_node(np.asarray(arr.isna(), dtype=bool), "numpy.ndarray", enc,
                                    f"{where}.mask", codec))
        return node
    if isinstance(dtype, np.dtype) and name in (DATETIME_ARRAY, TIMEDELTA_ARRAY):
        return array_node(arr.to_numpy(), name, enc, where, codec)
    if name == NUMPY_ARRAY:
        node = _numpy_node(pd, arr.to_numpy(), enc, where)
        if node.class_name == NUMPY_ARRAY:
            return node
        wrapper = group_node(NUMPY_ARRAY)
        wrapper.add("values", node)
        return wrapper
    raise CodecError(
        f"cannot store {where}: pandas dtype {dtype} ({type(arr).__name__}) is not supported; "
        f"convert it to a numpy, nullable, string, categorical or datetime dtype first "
        f"(e.g. .astype(str), .astype(object), or .sparse.to_dense() for sparse data)")


def _add_extras(obj: Any, node: Node, enc: Encoder, where: str) -> None:
    """``attrs`` and ``flags`` of a DataFrame or Series."""
    if obj.attrs:
        node.add("attrs", enc.node(obj.attrs, f"{where}.attrs", inline=False))
    if not obj.flags.allows_duplicate_labels:
        node.attrs["allows_duplicate_labels"] = False


def _encode_frame(pd, df, enc: Encoder, where: str) -> Node:
    node = group_node(DATAFRAME)
    labels = list(df.columns)
    unique = df.columns.is_unique
    named = (0 < len(labels) <= NAMED_KEYS_MAX and unique
             and all(is_member_name(label) and label not in _FRAME_MEMBERS for label in labels))
    node.add("index", enc.node(df.index, f"{where}.index", inline=False))
    node.add("columns", enc.node(df.columns, f"{where}.columns", inline=False))
    if named:
        node.attrs["keys"] = labels
    plain = pd.DataFrame(df, copy=False)  # without attrs: df.iloc would deep-copy them
    for i, label in enumerate(labels):
        column_where = f"{where}[{label!r}]" if unique else f"{where}.iloc[:, {i}]"
        node.add(label if named else str(i),
                 _data_node(pd, plain.iloc[:, i], enc, column_where))
    _add_extras(df, node, enc, where)
    return node


def _encode_series(pd, s, enc: Encoder, where: str) -> Node:
    node = group_node(SERIES)
    node.add("index", enc.node(s.index, f"{where}.index", inline=False))
    node.add("values", _data_node(pd, s, enc, f"{where}.values"))
    node.add("name", enc.node(s.name, f"{where}.name"))
    _add_extras(s, node, enc, where)
    return node


def _encode_index(pd, idx, enc: Encoder, where: str) -> Node:
    name = _class_name(pd, idx, where)
    node = group_node(name)
    if name == RANGE_INDEX:
        for part in ("start", "stop", "step"):
            node.add(part, enc.node(int(getattr(idx, part)), f"{where}.{part}"))
    elif name == MULTI_INDEX:
        node.add("levels", enc.node(list(idx.levels), f"{where}.levels", inline=False))
        node.add("codes", enc.node([np.asarray(c) for c in idx.codes], f"{where}.codes",
                                   inline=False))
        node.add("names", enc.node(list(idx.names), f"{where}.names"))
        return node
    else:
        node.add("values", _data_node(pd, idx, enc, f"{where}.values"))
        if name in (DATETIME_INDEX, TIMEDELTA_INDEX) and idx.freq is not None:
            node.attrs["freq"] = idx.freqstr
    node.add("name", enc.node(idx.name, f"{where}.name"))
    return node


def _encode_scalar(pd, obj, name: str, enc: Encoder, where: str) -> Node:
    if name in (NAT, NA):
        return str_dataset(name, str(obj))
    codec = _array_codec()
    if name == TIMEDELTA:
        return array_node(np.asarray(obj.to_timedelta64()), name, enc, where, codec)
    if obj.tz is None:
        return array_node(np.asarray(obj.to_datetime64()), name, enc, where, codec)
    tz = _tz_name(obj.tz, where)
    node = array_node(np.asarray(obj.to_datetime64()), name, enc, where, codec)  # UTC ticks
    node.attrs["tz"] = tz
    return node


# -- decoding -------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    return value.load() if isinstance(value, LazyArray) else value


def _values(pd, stored: Stored, dec: Decoder, member: str, length: int | None = None):
    """A column's (or an index's) data: a 1-D numpy array or a pandas ExtensionArray."""
    value = _plain(dec.child(stored, member))
    if type(value) is pd.arrays.NumpyExtensionArray:
        value = value.to_numpy()
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise CorruptFileError(f"{stored.child_path(member)}: column data must be 1-D, "
                                   f"found shape {value.shape}")
    elif not isinstance(value, pd.api.extensions.ExtensionArray):
        raise CorruptFileError(f"{stored.child_path(member)}: column data must be an array, "
                               f"found {type(value).__name__}")
    if length is not None and len(value) != length:
        raise CorruptFileError(f"{stored.child_path(member)}: {len(value)} values for an index "
                               f"of length {length}")
    return value


def _array(stored: Stored, dec: Decoder, member: str, kinds: str) -> np.ndarray:
    value = _plain(dec.child(stored, member))
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype.kind not in kinds:
        raise CorruptFileError(
            f"{stored.child_path(member)}: must be a 1-D array of numpy kind {kinds!r}, found "
            f"{type(value).__name__} {getattr(value, 'dtype', '')} {np.shape(value)}")
    return value


def _values_and_mask(stored: Stored, dec: Decoder, kinds: str) -> tuple[np.ndarray, np.ndarray]:
    values = _array(stored, dec, "values", kinds)
    mask = _array(stored, dec, "mask", "b")
    if len(mask) != len(values):
        raise CorruptFileError(f"{stored.path}: mask has {len(mask)} entries for "
                               f"{len(values)} values")
    return values, mask


def _strings(pd, stored: Stored, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``values`` as an object array, checked to hold only strings where not masked."""
    values = values.astype(object)
    kind = pd.api.types.infer_dtype(values[~mask], skipna=False)
    if kind not in ("string", "empty"):
        raise CorruptFileError(f"{stored.child_path('values')}: must hold strings, found "
                               f"{kind} values")
    return values


def _index(pd, stored: Stored, dec: Decoder, member: str):
    value = dec.child(stored, member)
    if not isinstance(value, pd.Index):
        raise CorruptFileError(f"{stored.child_path(member)}: must be a pandas index, found "
                               f"{type(value).__name__}")
    return value


def _freq(stored: Stored) -> Any:
    freq = stored.attrs.get("freq")
    if freq is not None and not isinstance(freq, str):
        raise CorruptFileError(f"{stored.path}: attribute 'freq' must be a string")
    return freq


def _restore_extras(stored: Stored, dec: Decoder, obj: Any) -> None:
    if stored.attrs.get("allows_duplicate_labels") is not None:
        obj.flags.allows_duplicate_labels = bool(stored.attrs["allows_duplicate_labels"])
    dec.register(stored, obj)  # before attrs, which may refer back to obj
    if "attrs" in stored.children():
        attrs = dec.child(stored, "attrs")
        if not isinstance(attrs, dict):
            raise CorruptFileError(f"{stored.child_path('attrs')}: must be a dict, found "
                                   f"{type(attrs).__name__}")
        obj.attrs = attrs


def _decode_frame(pd, stored: Stored, dec: Decoder):
    stored.group()
    index = _index(pd, stored, dec, "index")
    columns = _index(pd, stored, dec, "columns")
    keys = stored.attrs.get("keys")
    if keys is None:
        members = [str(i) for i in range(len(columns))]
    else:
        members = [k.decode() if isinstance(k, bytes) else str(k) for k in np.atleast_1d(keys)]
        if len(members) != len(columns):
            raise CorruptFileError(f"{stored.path}: {len(members)} column names in 'keys' for "
                                   f"{len(columns)} columns")
    found = set(stored.children()) - {"index", "columns", "attrs"}
    if found != set(members) or len(set(members)) != len(members):
        raise CorruptFileError(
            f"{stored.path}: the column members {sorted(found)[:5]} do not match the "
            f"{len(columns)} columns ({'attribute keys' if keys is not None else 'positions'})")
    data = {}
    for i, member in enumerate(members):
        values = _values(pd, stored, dec, member, len(index))
        data[i] = pd.Series(values, index=index, dtype=values.dtype, copy=False)
    df = pd.DataFrame(data, copy=False) if data else pd.DataFrame(index=index)
    df.columns = columns
    _restore_extras(stored, dec, df)
    return df


def _decode_series(pd, stored: Stored, dec: Decoder):
    stored.group()
    index = _index(pd, stored, dec, "index")
    values = _values(pd, stored, dec, "values", len(index))
    name = dec.member(stored, "name")
    s = pd.Series(values, index=index, dtype=values.dtype, name=name, copy=False)
    _restore_extras(stored, dec, s)
    return s


def _decode_index(pd, stored: Stored, dec: Decoder):
    stored.group()
    kind = stored.class_name
    if kind == MULTI_INDEX:
        return _decode_multi_index(pd, stored, dec)
    name = dec.member(stored, "name")
    if kind == RANGE_INDEX:
        parts = [dec.member(stored, p) for p in ("start", "stop", "step")]
        if any(type(p) is not int for p in parts):
            raise CorruptFileError(f"{stored.path}: start, stop and step must be ints")
        return pd.RangeIndex(*parts, name=name)
    values = _values(pd, stored, dec, "values")
    if kind == DATETIME_INDEX:
        if values.dtype.kind != "M":
            raise CorruptFileError(f"{stored.path}: a DatetimeIndex needs datetime values, "
                                   f"found {values.dtype}")
        return pd.DatetimeIndex(values, freq=_freq(stored), name=name, copy=False)
    if kind == TIMEDELTA_INDEX:
        if values.dtype.kind != "m":
            raise CorruptFileError(f"{stored.path}: a TimedeltaIndex needs timedelta values, "
                                   f"found {values.dtype}")
        return pd.TimedeltaIndex(values, freq=_freq(stored), name=name, copy=False)
    if kind == CATEGORICAL_INDEX:
        if not isinstance(values, pd.Categorical):
            raise CorruptFileError(f"{stored.path}: a CategoricalIndex needs categorical "
                                   f"values, found {type(values).__name__}")
        return pd.CategoricalIndex(values, name=name, copy=False)
    return pd.Index(values, dtype=values.dtype, name=name, copy=False, tupleize_cols=False)


def _decode_multi_index(pd, stored: Stored, dec: Decoder):
    levels = dec.child(stored, "levels")
    codes = dec.child(stored, "codes")
    names = dec.member(stored, "names")
    if not isinstance(levels, list) or not all(isinstance(lv, pd.Index) for lv in levels):
        raise CorruptFileError(f"{stored.path}: 'levels' must be a list of indexes")
    if not isinstance(codes, list) or len(codes) != len(levels) or not isinstance(names, list) \
            or len(names) != len(levels):
        raise CorruptFileError(f"{stored.path}: 'codes' and 'names' must be lists with one entry "
                               f"per level ({len(levels)})")
    codes = [_plain(c) for c in codes]
    for i, (level, code) in enumerate(zip(levels, codes)):
        if not isinstance(code, np.ndarray) or code.ndim != 1 or code.dtype.kind != "i":
            raise CorruptFileError(f"{stored.path}: codes of level {i} must be a 1-D int array")
        if len(code) != len(codes[0]):
            raise CorruptFileError(f"{stored.path}: codes of level {i} have {len(code)} "
                                   f"entries, level 0 has {len(codes[0])}")
        if code.size and (code.min() < -1 or code.max() >= len(level)):
            raise CorruptFileError(f"{stored.path}: codes of level {i} out of range for its "
                                   f"{len(level)} values")
    return pd.MultiIndex(levels=levels, codes=codes, names=names, verify_integrity=True)


def _decode_categorical(pd, stored: Stored, dec: Decoder):
    stored.group()
    codes = _array(stored, dec, "codes", "i")
    categories = _index(pd, stored, dec, "categories")
    ordered = stored.attrs.get("ordered")
    if type(ordered) not in (bool, np.bool_):
        raise CorruptFileError(f"{stored.path}: attribute 'ordered' must be a bool, found "
                               f"{ordered!r}")
    if codes.size and (codes.min() < -1 or codes.max() >= len(categories)):
        raise CorruptFileError(f"{stored.child_path('codes')}: codes out of range for "
                               f"{len(categories)} categories")
    dtype = pd.CategoricalDtype(categories, ordered=bool(ordered))
    return pd.Categorical.from_codes(codes, dtype=dtype)


def _decode_masked(pd, stored: Stored, dec: Decoder):
    stored.group()
    kind = stored.class_name
    values, mask = _values_and_mask(stored, dec, _MASKED_KINDS[kind])
    cls = {INTEGER_ARRAY: pd.arrays.IntegerArray, FLOATING_ARRAY: pd.arrays.FloatingArray,
           BOOLEAN_ARRAY: pd.arrays.BooleanArray}[kind]
    return cls(values, mask)


def _na_value(pd, stored: Stored, allowed: tuple[str, ...]) -> Any:
    text = stored.attrs.get("na_value")
    if text not in allowed:
        raise CorruptFileError(f"{stored.path}: attribute 'na_value' must be one of "
                               f"{list(allowed)}, found {text!r}")
    return {"None": None, "nan": np.nan, "NA": pd.NA}[text]


def _decode_string(pd, stored: Stored, dec: Decoder):
    stored.group()
    na_value = _na_value(pd, stored, ("NA", "nan"))
    values, mask = _values_and_mask(stored, dec, "OUT")
    values = _strings(pd, stored, values, mask)
    values[mask] = na_value
    storage = "pyarrow" if stored.class_name == ARROW_STRING_ARRAY else "python"
    try:
        dtype = pd.StringDtype(storage, na_value=na_value)
        return pd.array(values, dtype=dtype)
    except ImportError as exc:  # pyarrow missing: the same strings, in pandas' own storage
        warnings.warn(f"{stored.path}: {stored.class_name} needs pyarrow ({exc}); loaded with "
                      f"storage='python' instead", UnknownClassWarning, stacklevel=6)
        return pd.array(values, dtype=pd.StringDtype("python", na_value=na_value))


def _decode_numpy_wrapper(pd, stored: Stored, dec: Decoder):
    stored.group()
    if "mask" not in stored.children():
        values = _plain(dec.child(stored, "values"))
        if not isinstance(values, np.ndarray) or values.ndim != 1:
            raise CorruptFileError(f"{stored.child_path('values')}: must be a 1-D array")
        return pd.arrays.NumpyExtensionArray(values)
    na_value = _na_value(pd, stored, _OBJECT_HOLES)
    values, mask = _values_and_mask(stored, dec, "OUT")
    values = _strings(pd, stored, values, mask)
    values[mask] = na_value
    return pd.arrays.NumpyExtensionArray(values)


def _ticks(stored: Stored, dec: Decoder, kind: str, ndim: int) -> np.ndarray:
    """A datetime64/timedelta64 array or 0-d array written by ``array_node``."""
    value = read_array(stored, dec)
    if not isinstance(value, np.ndarray) or value.dtype.kind != kind or value.ndim != ndim:
        raise CorruptFileError(
            f"{stored.path}: class {stored.class_name!r} needs a {ndim}-d dataset with a "
            f"{'datetime64' if kind == 'M' else 'timedelta64'} 'dtype' attribute, found "
            f"{getattr(value, 'dtype', type(value).__name__)} {np.shape(value)}")
    return value


def _decode_datetime_array(pd, stored: Stored, dec: Decoder):
    ticks = _ticks(stored, dec, "M", 1)
    arr = pd.array(ticks)
    tz = stored.attrs.get("tz")
    if tz is not None:
        arr = arr.tz_localize("UTC").tz_convert(_tz(tz, stored.path))
    return arr


def _decode_timedelta_array(pd, stored: Stored, dec: Decoder):
    return pd.array(_ticks(stored, dec, "m", 1))


def _decode_scalar(pd, stored: Stored, dec: Decoder):
    kind = stored.class_name
    if kind in (NAT, NA):
        read_str(stored)  # checks the node is a string dataset
        return pd.NaT if kind == NAT else pd.NA
    if kind == TIMEDELTA:
        return pd.Timedelta(_ticks(stored, dec, "m", 0)[()])
    value = pd.Timestamp(_ticks(stored, dec, "M", 0)[()])
    tz = stored.attrs.get("tz")
    if tz is not None:
        value = value.tz_localize("UTC").tz_convert(_tz(tz, stored.path))
    return value


_DECODERS: dict[str, Callable[..., Any]] = {
    DATAFRAME: _decode_frame,
    SERIES: _decode_series,
    **dict.fromkeys((INDEX, RANGE_INDEX, MULTI_INDEX, DATETIME_INDEX, TIMEDELTA_INDEX,
                     CATEGORICAL_INDEX), _decode_index),
    CATEGORICAL: _decode_categorical,
    **dict.fromkeys(_MASKED_KINDS, _decode_masked),
    STRING_ARRAY: _decode_string,
    ARROW_STRING_ARRAY: _decode_string,
    NUMPY_ARRAY: _decode_numpy_wrapper,
    DATETIME_ARRAY: _decode_datetime_array,
    TIMEDELTA_ARRAY: _decode_timedelta_array,
    **dict.fromkeys(_SCALARS, _decode_scalar),
}


def _decode(stored: Stored, dec: Decoder) -> Any:
    try:
        pd = _pandas()
    except ImportError as exc:
        dec.warn_once("pandas", f"{stored.path}: class {stored.class_name!r} needs pandas, which "
                      f"cannot be imported ({exc}); it and every other pandas node in this load "
                      f"are loaded as h5forge.UnknownObject with their arrays intact (dumping "
                      f"them writes the same layout back). Install pandas to rebuild them",
                      stacklevel=4)
        return registry.codec_for_name("h5forge.unknown").decode(stored, dec)
    return _DECODERS[stored.class_name](pd, stored, dec)


class PandasCodec(registry.Codec):
    """DataFrame, Series, indexes and extension arrays (see the module docstring)."""

    names = tuple(name for name in _DECODERS if name not in _SCALARS)

    def matches(self, tp):
        return _claims(tp, scalars=False)

    def encode(self, obj, enc, where):
        pd = _pandas()
        if isinstance(obj, pd.DataFrame):
            _class_name(pd, obj, where)
            return _encode_frame(pd, obj, enc, where)
        if isinstance(obj, pd.Series):
            _class_name(pd, obj, where)
            return _encode_series(pd, obj, enc, where)
        if isinstance(obj, pd.Index):
            return _encode_index(pd, obj, enc, where)
        _class_name(pd, obj, where)
        return _array_node(pd, obj, enc, where)

    def decode(self, stored, dec):
        return _decode(stored, dec)


class PandasScalarCodec(registry.Codec):
    """Timestamp, Timedelta (0-d int64 datasets like numpy's datetime64), NaT and NA."""

    names = tuple(sorted(_SCALARS))
    tracks_identity = False

    def matches(self, tp):
        return _claims(tp, scalars=True)

    def encode(self, obj, enc, where):
        pd = _pandas()
        return _encode_scalar(pd, obj, _class_name(pd, obj, where), enc, where)

    def decode(self, stored, dec):
        return _decode(stored, dec)

