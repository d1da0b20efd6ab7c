"""pandas objects round-trip through dump/load as plain HDF5 (no PyTables, no pickle).

Every case is compared with pandas' own testing functions (exact values, dtypes, index types,
names, freq, flags) plus ``type()`` and ``attrs``; object columns are also compared element
type by element type (None stays None, nan stays nan). The file must be readable with h5py
alone, load without pandas as ``UnknownObject`` (and dump back to the same layout), and a
damaged file must give ``CorruptFileError``.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import warnings
import zoneinfo

import h5py
import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import h5forge
from h5forge import UnknownClassWarning, UnknownObject
from h5forge.errors import CodecError, CorruptFileError

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
PLUS_0530 = dt.timezone(dt.timedelta(hours=5, minutes=30))


def roundtrip(obj, tmp_path, **load_kwargs):
    path = tmp_path / "rt.h5"
    h5forge.dump(obj, path, overwrite=True)
    return h5forge.load(path, **load_kwargs)


def obj_array(*values):
    """A 1-D object array holding exactly ``values`` (no conversion of None or nan)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def assert_same(a, b):
    """Exact equality of pandas objects (and of the plain containers in these tests)."""
    assert type(a) is type(b), f"type {type(a)} != {type(b)}"
    if isinstance(a, pd.DataFrame):
        pdt.assert_frame_equal(a, b, check_exact=True, check_index_type=True,
                               check_column_type=True, check_frame_type=True, check_flags=True,
                               check_freq=True, check_categorical=True)
        assert_same(a.index, b.index)
        assert_same(a.columns, b.columns)
        for i in range(a.shape[1]):
            _same_objects(a.iloc[:, i], b.iloc[:, i])
        assert_attrs(a, b)
    elif isinstance(a, pd.Series):
        pdt.assert_series_equal(a, b, check_exact=True, check_index_type=True,
                                check_series_type=True, check_flags=True, check_freq=True,
                                check_categorical=True)
        assert type(a.name) is type(b.name)
        assert_same(a.index, b.index)
        _same_objects(a, b)
        assert_attrs(a, b)
    elif isinstance(a, pd.Index):
        pdt.assert_index_equal(a, b, exact=True, check_exact=True, check_names=True,
                               check_categorical=True)
        assert a.names == b.names and [type(n) for n in a.names] == [type(n) for n in b.names]
        if isinstance(a, (pd.DatetimeIndex, pd.TimedeltaIndex)):
            assert a.freq == b.freq
        if isinstance(a, pd.MultiIndex):
            for la, lb in zip(a.levels, b.levels):
                assert_same(la, lb)
        else:
            _same_objects(a, b)
    elif isinstance(a, pd.api.extensions.ExtensionArray):
        pdt.assert_extension_array_equal(a, b, check_exact=True)
        assert a.dtype == b.dtype
    elif isinstance(a, (pd.Timestamp, pd.Timedelta)):
        assert a == b and a.unit == b.unit
        if isinstance(a, pd.Timestamp):
            assert a.tz == b.tz and type(a.tz) is type(b.tz)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    else:
        assert a is b or a == b, f"{a!r} != {b!r}"


def _same_objects(a, b):
    """Object data: the same Python type at every position (None vs nan vs NA)."""
    if a.dtype == object:
        assert [type(x) for x in a] == [type(x) for x in b]


def assert_attrs(a, b):
    assert list(a.attrs) == list(b.attrs)
    for key in a.attrs:
        assert_same(a.attrs[key], b.attrs[key])


def check(obj, tmp_path):
    """Round-trip ``obj`` alone (the file root), inside a dict and inside a list."""
    for wrapped in (obj, {"value": obj, "other": 1}, [obj, "x"]):
        assert_same(wrapped, roundtrip(wrapped, tmp_path))


# -- frames ---------------------------------------------------------------------------------------
N = 4


def _frame(data, **kwargs):
    return pd.DataFrame(data, **kwargs)


def _with_attrs():
    df = pd.DataFrame({"x": [1, 2]})
    df.attrs.update({"unit": "mV", "gain": 2.5, "nested": {"arr": np.arange(3)}, "when":
                     pd.Timestamp("2024-01-01", tz="UTC")})
    return df


FRAMES = {
    "numeric": lambda: _frame({
        "i8": np.arange(N, dtype="i1"), "i64": np.arange(N) * 10**12, "u64": np.arange(N,
        dtype="u8") + 2**63, "f32": np.array([1.5, np.nan, -np.inf, 0], "f4"),
        "f64": [np.nan, 1e300, -0.0, np.inf], "c": np.arange(N) * (1 + 2j),
        "b": [True, False, True, True]}),
    "datetimes": lambda: _frame({
        "ns": pd.to_datetime(["2020-01-01 00:00:00.000000001", None, "1970-01-01 00:00:00.0",
                              "2262-04-11 00:00:00.0"]).as_unit("ns"),
        "us": pd.date_range("2020-01-01", periods=N, freq="h"),
        "s": pd.date_range("1600-01-01", periods=N, freq="D", unit="s"),
        "berlin": pd.date_range("2024-03-31 00:30", periods=N, freq="h", tz=BERLIN),
        "utc": pd.DatetimeIndex(["2020-01-01", None, "2021-06-01", "2022-01-01"], tz="UTC"),
        "offset": pd.date_range("2020", periods=N, tz=PLUS_0530),
        "td": pd.to_timedelta([1, None, -3, 10**9], unit="s"),
        "td_ns": pd.to_timedelta([1, 2, 3, 4], unit="ns").as_unit("ns")}),
    "categorical": lambda: _frame({
        "plain": pd.Categorical(["b", "a", None, "b"]),
        "ordered": pd.Categorical(["lo", "hi", "mid", "lo"], categories=["lo", "mid", "hi"],
                                  ordered=True),
        "ints": pd.Categorical([3, 1, 3, None], categories=[3, 1, 2]),
        "unused": pd.Categorical([None] * N, categories=pd.Index(["x"], dtype=object)),
        "dates": pd.Categorical(pd.date_range("2020", periods=2).repeat(2))}),
    "nullable": lambda: _frame({
        "Int8": pd.array([1, None, -3, 4], dtype="Int8"),
        "Int64": pd.array([None, 2**62, 0, None], dtype="Int64"),
        "UInt16": pd.array([1, 2, None, 65535], dtype="UInt16"),
        "Float32": pd.array([1.5, None, 0.0, -2], dtype="Float32"),
        "Float64": pd.array([None, 1e-300, 3, 4], dtype="Float64"),
        "boolean": pd.array([True, None, False, None], dtype="boolean"),
        "all_na": pd.array([None] * N, dtype="Int32")}),
    "strings": lambda: _frame({
        "str": pd.array(["a", None, "", "ü漢"], dtype="str"),
        "string_na": pd.array(["a", None, "", "x" * 300], dtype="string"),
        "string_nan": pd.array(["a", "b", None, None], dtype=pd.StringDtype("python", np.nan)),
        "nul": pd.array(["a\x00b", None, "c", "d"], dtype="string"),
        "obj_none": pd.Series(obj_array("a", None, "c", None), dtype=object),
        "obj_nan": pd.Series(obj_array("a", np.nan, "", "d"), dtype=object),
        "obj_na": pd.Series(obj_array(pd.NA, "b", "c", "d"), dtype=object),
        "obj_str": pd.Series(obj_array("a", "b", "c", "d"), dtype=object),
        "obj_mixed": pd.Series(obj_array(1, "b", None, 2.5), dtype=object),
        "obj_holes": pd.Series(obj_array("a", None, np.nan, "d"), dtype=object),
        "obj_things": pd.Series(obj_array((1, 2), {"k": [1]}, pd.Timestamp("2020"), pd.NaT),
                                dtype=object)}),
    "int_labels": lambda: _frame({0: [1, 2], 1: [3.0, 4.0], -7: ["a", "b"]}),
    "range_labels": lambda: _frame(np.arange(6).reshape(2, 3)),
    "tuple_labels": lambda: _frame({("a", 1): [1, 2], ("a", 2): [3, 4], ("b", 1): [5, 6]}),
    "tuple_labels_flat": lambda: _frame(
        [[1, 2]], columns=pd.Index(obj_array((1, "a"), (2, "b")), dtype=object,
                                   tupleize_cols=False)),
    "mixed_labels": lambda: _frame([[1, 2, 3, 4]], columns=pd.Index(
        obj_array(1, "a", 2.5, None), dtype=object, name=("col", 1))),
    "duplicate_labels": lambda: _frame([[1, "x", 2.0]], columns=["a", "a", "b"]),
    "reserved_labels": lambda: _frame([[1, 2, 3, 4, 5]],
                                      columns=["index", "columns", "attrs", "class", "keys"]),
    "awkward_labels": lambda: _frame([[1, 2, 3, 4]], columns=["a/b", "", ".", "x y"]),
    "range_index": lambda: _frame({"x": [1, 2, 3]}, index=pd.RangeIndex(5, 11, 2, name="r")),
    "named_index": lambda: _frame({"x": [1, 2]}, index=pd.Index(["p", "q"], name="id")),
    "datetime_index": lambda: _frame(
        {"x": np.arange(3)}, index=pd.date_range("2024-10-27", periods=3, freq="h",
                                                 tz=BERLIN, name="t")),
    "timedelta_index": lambda: _frame(
        {"x": np.arange(3)}, index=pd.timedelta_range("1s", periods=3, freq="2s")),
    "categorical_index": lambda: _frame(
        {"x": np.arange(3)}, index=pd.CategoricalIndex(["a", "b", "a"], ordered=True,
                                                       name="c")),
    "multi_index": lambda: _frame(
        {"x": np.arange(4)}, index=pd.MultiIndex.from_arrays(
            [["a", "a", None, "b"], [1, 2, 1, 2]], names=["letter", None])),
    "object_index": lambda: _frame({"x": [1, 2, 3]},
                                   index=pd.Index(obj_array("a", None, 3), dtype=object)),
    "nullable_index": lambda: _frame({"x": [1, 2]}, index=pd.Index(pd.array([1, None],
                                                                            dtype="Int64"))),
    "duplicate_index": lambda: _frame({"x": [1, 2, 3]}, index=["a", "a", "b"]),
    "empty": lambda: pd.DataFrame(),
    "no_columns": lambda: pd.DataFrame(index=pd.Index([3, 1], name="i")),
    "no_rows": lambda: pd.DataFrame({"a": pd.Series([], dtype="Int64"),
                                     "b": pd.Series([], dtype="str")}),
    "attrs": _with_attrs,
    "no_duplicate_labels": lambda: pd.DataFrame({"a": [1]}).set_flags(
        allows_duplicate_labels=False),
}


@pytest.mark.parametrize("make", FRAMES.values(), ids=FRAMES.keys())
def test_dataframes(make, tmp_path):
    check(make(), tmp_path)


def test_wide_frame_uses_positions(tmp_path):
    df = pd.DataFrame(np.arange(2 * 600).reshape(2, 600), columns=[f"c{i}" for i in range(600)])
    check(df, tmp_path)
    h5forge.dump(df, tmp_path / "wide.h5")
    with h5py.File(tmp_path / "wide.h5") as f:
        assert "keys" not in f.attrs and f["599"][()].tolist() == [599, 1199]


# -- series, indexes, arrays, scalars -------------------------------------------------------------
SERIES = {
    "float_nan": lambda: pd.Series([1.0, np.nan, 3.0]),
    "named": lambda: pd.Series([1, 2], name="s", index=["a", "b"]),
    "int_name": lambda: pd.Series([1, 2], name=3),
    "tuple_name": lambda: pd.Series([1, 2], name=("a", 1)),
    "float_name": lambda: pd.Series([1, 2], name=2.5),
    "long_name": lambda: pd.Series([1, 2], name="n" * 1000),
    "bool": lambda: pd.Series([True, False]),
    "datetime_tz": lambda: pd.Series(pd.date_range("2020", periods=3, tz="UTC"), name="t"),
    "datetime_index_freq": lambda: pd.Series(np.arange(3), index=pd.date_range(
        "2020", periods=3, freq="W-SUN")),
    "timedelta": lambda: pd.Series(pd.to_timedelta([1, None], unit="D")),
    "categorical": lambda: pd.Series(pd.Categorical(["a", "b", None], ordered=True)),
    "Int64": lambda: pd.Series([1, None], dtype="Int64"),
    "boolean": lambda: pd.Series([True, None], dtype="boolean"),
    "string": lambda: pd.Series(["a", None], dtype="string"),
    "str": lambda: pd.Series(["a", None]),
    "object_none": lambda: pd.Series(obj_array("a", None), dtype=object),
    "multi_index": lambda: pd.Series([1, 2], index=pd.MultiIndex.from_tuples(
        [(1, "a"), (2, "b")], names=["n", "l"])),
    "attrs_flags": lambda: pd.Series([1], name="x").set_flags(allows_duplicate_labels=False),
    "empty": lambda: pd.Series([], dtype=float),
}


@pytest.mark.parametrize("make", SERIES.values(), ids=SERIES.keys())
def test_series(make, tmp_path):
    check(make(), tmp_path)


INDEXES = {
    "index_int": lambda: pd.Index([3, 1, 2], name="n"),
    "index_uint8": lambda: pd.Index(np.arange(3, dtype="u1")),
    "index_float": lambda: pd.Index([1.5, np.nan]),
    "index_str": lambda: pd.Index(["a", None, "c"], name="s"),
    "index_object": lambda: pd.Index(obj_array("a", 1, None), dtype=object),
    "index_bool": lambda: pd.Index([True, False]),
    "index_boolean": lambda: pd.Index(pd.array([True, None], dtype="boolean")),
    "range": lambda: pd.RangeIndex(10),
    "range_step": lambda: pd.RangeIndex(-5, 100, 7, name="r"),
    "range_empty": lambda: pd.RangeIndex(0),
    "multi": lambda: pd.MultiIndex.from_product([["a", "b"], [1, 2], pd.date_range(
        "2020", periods=2, tz=BERLIN)], names=["x", None, ("t", 1)]),
    "multi_nan": lambda: pd.MultiIndex.from_arrays([[1.0, np.nan], ["a", "b"]]),
    "multi_empty": lambda: pd.MultiIndex.from_arrays([[], []], names=["a", "b"]),
    "datetime_naive": lambda: pd.DatetimeIndex(["2020-01-01", None]),
    "datetime_freq": lambda: pd.date_range("2020", periods=5, freq="2D", name="d"),
    "datetime_tz_freq": lambda: pd.date_range("2020", periods=5, freq="15min", tz=BERLIN),
    "datetime_utc": lambda: pd.date_range("2020", periods=2, tz="UTC"),
    "datetime_ms": lambda: pd.date_range("2020", periods=2, unit="ms"),
    "timedelta": lambda: pd.TimedeltaIndex(["1 day", None], name="td"),
    "timedelta_freq": lambda: pd.timedelta_range(0, periods=3, freq="h"),
    "categorical": lambda: pd.CategoricalIndex(["b", "a", "b"], categories=["b", "a"]),
}


@pytest.mark.parametrize("make", INDEXES.values(), ids=INDEXES.keys())
def test_indexes(make, tmp_path):
    check(make(), tmp_path)


ARRAYS = {
    "categorical": lambda: pd.Categorical(["a", "b", None], ordered=True),
    "integer": lambda: pd.array([1, None], dtype="UInt8"),
    "floating": lambda: pd.array([1.5, None], dtype="Float64"),
    "boolean": lambda: pd.array([True, None], dtype="boolean"),
    "string": lambda: pd.array(["a", None], dtype="string"),
    "str": lambda: pd.array(["a", None], dtype="str"),
    "datetime": lambda: pd.array(pd.date_range("2020", periods=2)),
    "datetime_tz": lambda: pd.array(pd.date_range("2020", periods=2, tz=BERLIN)),
    "timedelta": lambda: pd.array(pd.to_timedelta([1, None], unit="s")),
    "numpy": lambda: pd.array(np.arange(3)),
    "numpy_object": lambda: pd.array(obj_array("a", None), dtype=object),
}


@pytest.mark.parametrize("make", ARRAYS.values(), ids=ARRAYS.keys())
def test_extension_arrays(make, tmp_path):
    check(make(), tmp_path)


SCALARS = {
    "timestamp": lambda: pd.Timestamp("2020-01-01 12:00:00.123456789"),
    "timestamp_s": lambda: pd.Timestamp(np.datetime64("1600-01-01T00:00:00", "s")),
    "timestamp_tz": lambda: pd.Timestamp(dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=BERLIN)),
    "timestamp_offset": lambda: pd.Timestamp("2020-01-01", tz=PLUS_0530),
    "timedelta": lambda: pd.Timedelta(days=-1, nanoseconds=5),
    "nat": lambda: pd.NaT,
    "na": lambda: pd.NA,
}


@pytest.mark.parametrize("make", SCALARS.values(), ids=SCALARS.keys())
def test_scalars(make, tmp_path):
    check(make(), tmp_path)


# -- sharing, cycles, lazy loading ----------------------------------------------------------------
def test_shared_frame_loads_as_one_object(tmp_path):
    df = FRAMES["strings"]()
    s = pd.Series([1, 2], index=df.index[:2])
    out = roundtrip({"a": df, "b": [df, {"c": df}], "s": s}, tmp_path)
    assert out["a"] is out["b"][0] is out["b"][1]["c"]
    assert_same(df, out["a"])
    with h5py.File(tmp_path / "rt.h5") as f:
        assert f["a"] == f["b/0"]  # one HDF5 object, hard-linked


def test_frame_in_its_own_attrs(tmp_path):
    df = pd.DataFrame({"x": [1]})
    df.attrs["self"] = df
    out = roundtrip(df, tmp_path)
    assert out.attrs["self"] is out
    # pandas' own operations deep-copy attrs (and recurse on this one): compare without them
    pdt.assert_frame_equal(pd.DataFrame(df, copy=False), pd.DataFrame(out, copy=False))


def test_lazy_load_reads_big_columns(tmp_path):
    df = pd.DataFrame({"big": np.arange(200_000.0), "n": pd.array(np.arange(200_000),
                                                                  dtype="Int64")})
    assert_same(df, roundtrip(df, tmp_path, lazy=True))


# -- readable with h5py alone ---------------------------------------------------------------------
def test_columns_are_plain_datasets(tmp_path):
    df = pd.DataFrame({
        "i": np.arange(3), "f": [1.0, np.nan, 2.0], "s": ["a", None, "c"],
        "I": pd.array([1, None, 3], dtype="Int16"),
        "cat": pd.Categorical(["x", "y", "x"], ordered=True),
        "t": pd.date_range("2020", periods=3, tz=BERLIN),
        "o": pd.Series(obj_array("a", None, "b"), dtype=object),
    }).set_index(pd.Index([10, 20, 40], name="id"))
    dup = pd.DataFrame([[1, 2.5]], columns=["a", "a"])
    h5forge.dump({"df": df, "dup": dup}, tmp_path / "p.h5")
    with h5py.File(tmp_path / "p.h5") as f:
        g = f["df"]
        assert g.attrs["class"] == "pandas.DataFrame"
        assert list(g.attrs["keys"]) == ["i", "f", "s", "I", "cat", "t", "o"]
        assert g["i"].dtype == np.int64 and g["i"][()].tolist() == [0, 1, 2]
        np.testing.assert_array_equal(g["f"][()], [1.0, np.nan, 2.0])
        assert g["s/values"].asstr()[()].tolist() == ["a", "", "c"]
        assert g["s/mask"][()].tolist() == [False, True, False]
        assert g["I/values"].dtype == np.int16 and g["I/mask"].dtype == np.bool_
        assert g["I/mask"][()].tolist() == [False, True, False]
        assert g["cat"].attrs["ordered"] and g["cat/codes"][()].tolist() == [0, 1, 0]
        assert g["cat/categories/values/values"].asstr()[()].tolist() == ["x", "y"]
        assert g["t"].dtype == np.int64 and g["t"].attrs["tz"] == "Europe/Berlin"
        assert g["t"].attrs["dtype"] == "datetime64[us]"
        assert g["o"].attrs["na_value"] == "None" and g["o/mask"][()].tolist() == [0, 1, 0]
        assert g["index/values"][()].tolist() == [10, 20, 40] and g["index"].attrs["name"] == "id"
        assert "keys" not in f["dup"].attrs
        assert f["dup/0"][()].tolist() == [1] and f["dup/1"][()].tolist() == [2.5]
        seen = []
        f.visititems(lambda name, obj: seen.append(obj.dtype) if isinstance(obj, h5py.Dataset)
                     else None)
        assert all(d.kind in "biufO" or h5py.check_string_dtype(d) == ("utf-8", d.itemsize)
                   for d in seen)  # plain numbers, bools and UTF-8 strings


def test_default_configuration_lists_column_datasets():
    df = pd.DataFrame({"a": np.arange(5.0), "b": pd.array([1, None, 3, 4, 5], dtype="Int64")})
    plan = h5forge.get_default_configuration({"df": df})
    locations = set(plan.dataset_configurations)
    assert {"df/a", "df/b/values", "df/b/mask"} <= locations
    assert plan.dataset_configurations["df/a"].full_shape == (5,)


# -- without pandas -------------------------------------------------------------------------------
def _hide_pandas(monkeypatch):
    for name in [n for n in sys.modules if n == "pandas" or n.startswith("pandas.")]:
        monkeypatch.setitem(sys.modules, name, None)


def test_load_without_pandas_keeps_the_data(tmp_path, monkeypatch):
    df = FRAMES["nullable"]().assign(x=np.arange(N), cat=pd.Categorical(list("abab")))
    df.index = pd.MultiIndex.from_product([["a", "b"], [1, 2]], names=["k", "n"])
    df.attrs["note"] = "kept"
    tree = {"df": df, "same": df, "s": pd.Series([1.5, np.nan], name="s")}
    h5forge.dump(tree, tmp_path / "p.h5")
    _hide_pandas(monkeypatch)
    with pytest.warns(UnknownClassWarning, match="needs pandas") as record:
        out = h5forge.load(tmp_path / "p.h5")
    assert len([w for w in record if "needs pandas" in str(w.message)]) == 1
    unknown = out["df"]
    assert type(unknown) is UnknownObject and unknown.class_name == "pandas.DataFrame"
    assert out["same"] is unknown
    np.testing.assert_array_equal(unknown.state["x"], np.arange(N))
    assert unknown.state["x"].dtype == np.int64
    nullable = unknown.state["Int64"]
    assert nullable.class_name == "pandas.arrays.IntegerArray"
    assert nullable.state["mask"].tolist() == [True, False, False, True]
    assert unknown.state["cat"].state["codes"].tolist() == [0, 1, 0, 1]
    assert unknown.state["index"].class_name == "pandas.MultiIndex"
    assert unknown.state["attrs"] == {"note": "kept"}
    np.testing.assert_array_equal(out["s"].state["values"], [1.5, np.nan])

    h5forge.dump(out, tmp_path / "again.h5")  # still without pandas
    monkeypatch.undo()
    back = h5forge.load(tmp_path / "again.h5")
    assert back["df"] is back["same"]
    assert_same(tree, back)


def _layout(path):
    """Every node of a file: kind, dtype, shape and attributes."""
    out = {}

    def visit(name, obj):
        attrs = {k: repr(np.asarray(v).tolist()) if not isinstance(v, h5py.Empty) else None
                 for k, v in obj.attrs.items()}  # repr: nan == nan
        if isinstance(obj, h5py.Dataset):
            out[name] = ("dataset", str(obj.dtype), obj.shape, attrs)
        else:
            out[name] = ("group", attrs)

    with h5py.File(path) as f:
        f.visititems(visit)
        visit("/", f)
    return out


def test_unknown_objects_dump_back_the_same_layout(tmp_path, monkeypatch):
    tree = {f"{kind}_{name}": make() for kind, table in
            (("frame", FRAMES), ("series", SERIES), ("index", INDEXES), ("array", ARRAYS),
             ("scalar", SCALARS)) for name, make in table.items()}
    h5forge.dump(tree, tmp_path / "p.h5")
    _hide_pandas(monkeypatch)
    with pytest.warns(UnknownClassWarning, match="needs pandas"):
        out = h5forge.load(tmp_path / "p.h5")
    assert all(type(v) is UnknownObject for k, v in out.items())
    h5forge.dump(out, tmp_path / "again.h5")
    monkeypatch.undo()
    assert _layout(tmp_path / "again.h5") == _layout(tmp_path / "p.h5")
    assert_same(tree, h5forge.load(tmp_path / "again.h5"))


def test_h5forge_works_without_pandas(tmp_path):
    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "import h5forge\n"
        "h5forge.dump({'x': [1, 2]}, sys.argv[1])\n"
        "assert h5forge.load(sys.argv[1]) == {'x': [1, 2]}\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.h5")], check=True)
    code = "import sys, h5forge; assert 'pandas' not in sys.modules, 'h5forge imported pandas'"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- what cannot be stored ------------------------------------------------------------------------
class MyFrame(pd.DataFrame):
    _metadata = ["note"]


UNSUPPORTED = {
    "period_column": (lambda: pd.DataFrame({"p": pd.period_range("2020", periods=2)}),
                      r"obj\['value'\]\['p'\]"),
    "interval_index": (lambda: pd.Series([1, 2], index=pd.interval_range(0, 2)),
                       r"obj\['value'\]\.index"),
    "sparse_column": (lambda: pd.DataFrame({"s": pd.arrays.SparseArray([0, 1])}),
                      r"obj\['value'\]\['s'\].*sparse"),
    "dateutil_tzoffset": (lambda: pd.Series(pd.date_range(  # zones with a key are stored
        "2020", periods=2, tz=__import__("dateutil.tz").tz.tzoffset("X", 3600))),
                    r"obj\['value'\]\.values.*zoneinfo"),
    "named_offset": (lambda: pd.Timestamp("2020", tz=dt.timezone(dt.timedelta(hours=1), "X")),
                     r"obj\['value'\].*fixed offset"),
    "subclass": (lambda: MyFrame({"a": [1]}), r"obj\['value'\].*MyFrame"),
}


@pytest.mark.parametrize("make, where", UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_unsupported_raise_codec_error(make, where, tmp_path):
    with pytest.raises(CodecError, match=where):
        h5forge.dump({"value": make()}, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


# -- damaged files --------------------------------------------------------------------------------
def _replace(group, name, data, **attrs):
    old = dict(group[name].attrs)
    del group[name]
    group[name] = data
    group[name].attrs.update({**old, **attrs})


def _damage_keys(f):
    f["df"].attrs["keys"] = np.array(["i", "nope", "s", "I", "cat", "t"], dtype=object)


DAMAGE = {
    "mask_length": lambda f: _replace(f["df/I"], "mask", np.zeros(2, bool)),
    "mask_not_bool": lambda f: _replace(f["df/I"], "mask", np.zeros(3, "i4")),
    "values_kind": lambda f: _replace(f["df/I"], "values", np.zeros(3, "f8")),
    "codes_out_of_range": lambda f: _replace(f["df/cat"], "codes", np.array([0, 5, 0], "i1")),
    "codes_negative": lambda f: _replace(f["df/cat"], "codes", np.array([0, -2, 0], "i1")),
    "codes_float": lambda f: _replace(f["df/cat"], "codes", np.zeros(3)),
    "ordered_missing": lambda f: f["df/cat"].attrs.__delitem__("ordered"),
    "column_length": lambda f: _replace(f["df"], "i", np.arange(5)),
    "column_2d": lambda f: _replace(f["df"], "i", np.zeros((3, 2))),
    "column_missing": lambda f: f["df"].__delitem__("f"),
    "keys_mismatch": _damage_keys,
    "index_not_index": lambda f: _replace(f["df"], "index", np.arange(3),
                                          **{"class": "numpy.ndarray"}),
    "tz_unknown": lambda f: f["df/t"].attrs.__setitem__("tz", "Mars/Olympus"),
    "tz_path": lambda f: f["df/t"].attrs.__setitem__("tz", "../../etc/passwd"),
    "tz_no_dtype": lambda f: f["df/t"].attrs.__delitem__("dtype"),
    "freq_wrong": lambda f: f["df/index"].attrs.__setitem__("freq", "7D"),
    "freq_garbage": lambda f: f["df/index"].attrs.__setitem__("freq", "not a freq"),
    "index_values_not_dates": lambda f: _replace(f["df/index"], "values", np.arange(3),
                                                 **{"dtype": "timedelta64[ns]"}),
    "string_values_not_str": lambda f: _replace(f["df/s"], "values", np.arange(3)),
    "string_na_value": lambda f: f["df/s"].attrs.__setitem__("na_value", "zero"),
    "range_step_zero": lambda f: f["r/index"].attrs.__setitem__("step", 0),
    "range_start_str": lambda f: f["r/index"].attrs.__setitem__("start", "0"),
    "multi_codes": lambda f: _replace(f["m/index"], "codes", np.array([[0, 9], [0, 1]], "i1")),
    "multi_names": lambda f: f["m/index"].attrs.__setitem__("names", ["a", "b", "c"]),
    "attrs_not_dict": lambda f: _replace(f["df"], "attrs", np.arange(2),
                                         **{"class": "numpy.ndarray"}),
    "frame_is_dataset": lambda f: _replace(f, "df", np.arange(3)),
}


def _damaged_file(path):
    df = pd.DataFrame({
        "i": np.arange(3), "f": [1.0, 2.0, 3.0], "s": ["a", None, "c"],
        "I": pd.array([1, None, 3], dtype="Int64"),
        "cat": pd.Categorical(["x", "y", "x"]),
        "t": pd.date_range("2020", periods=3, tz=BERLIN),
    }, index=pd.date_range("2021", periods=3, freq="D"))
    df.attrs["a"] = 1
    r = pd.Series([1, 2], index=pd.RangeIndex(2))
    m = pd.Series([1, 2], index=pd.MultiIndex.from_arrays([["a", "b"], [1, 2]]))
    h5forge.dump({"df": df, "r": r, "m": m}, path)


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_files_raise_corrupt_file_error(damage, tmp_path):
    path = tmp_path / "bad.h5"
    _damaged_file(path)
    h5forge.load(path)  # intact
    with h5py.File(path, "r+") as f:
        damage(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownClassWarning)
        with pytest.raises(CorruptFileError):
            h5forge.load(path)
