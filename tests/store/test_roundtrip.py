"""Every type the store promises round-trips exactly, with type() kept at every level."""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import fractions
import pathlib
import uuid
import zoneinfo

import h5py
import numpy as np
import pytest

import h5forge
from tests.store import sample_types as st
from tests.store.equality import assert_same


def roundtrip(obj, tmp_path, **load_kwargs):
    path = tmp_path / "rt.h5"
    h5forge.dump(obj, path, overwrite=True)
    return h5forge.load(path, **load_kwargs)


def check(obj, tmp_path):
    """Round-trip ``obj`` alone (the file root), inside a dict and inside a list."""
    for wrapped in (obj, {"value": obj, "other": 1}, [obj, "x"]):
        assert_same(wrapped, roundtrip(wrapped, tmp_path))


BUILTINS = [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**63, -(2**200) - 7, 10**5000,
    0.0, -0.0, 1.5, float("nan"), float("inf"), float("-inf"), 1 + 2j, complex("nan+1j"),
    "", " ", "\t\n ", "héllo wörld ✓ 漢字", "a/b/c", "\x01\x02\x1f control", "x" * 10000,
    "with\x00nul", "lone \udc80 surrogate",
    b"", b"\x00", b"\x00abc\xff", bytearray(b"\x00\x01"), bytearray(),
    ..., range(0), range(-5, 100, 7), range(2**70), slice(None), slice(1, 10, 2),
    slice("a", None, [1]),
]


@pytest.mark.parametrize("obj", BUILTINS, ids=lambda o: type(o).__name__)
def test_builtin_scalars(obj, tmp_path):
    check(obj, tmp_path)


COLLECTIONS = [
    [], (), [1, 2, 3], [1, "a", None, 2.5, True], (1,), ([], ()), [[1, [2, [3]]]],
    st.Point(1, "y"), st.Point([1], {"a": 2}),
    collections.deque([1, 2, 3]), collections.deque([1, 2], maxlen=5), collections.deque(),
    {}, {"a": 1}, {"a/b": 1, "c.d": 2, "": 3, ".": 4}, {7: "int", 2.5: "float", (1, 2): "tuple",
     None: "none", True: "bool", frozenset({1}): "fs", "s": "str"},
    {"class": 1, "keys": 2, "dtype": "x", "box": None},  # reserved attribute names
    collections.OrderedDict([("b", 1), ("a", 2)]),
    collections.defaultdict(list, {"a": [1]}), collections.defaultdict(None, {"a": 1}),
    collections.defaultdict(int),
    set(), {1, 2, 3}, {"a", (1, 2), None}, frozenset(), frozenset({1.5, "x"}),
    {f"k{i}": i for i in range(600)},  # beyond the named-keys limit
    [{"id": i, "x": i / 3, "name": f"n{i}", "v": np.arange(4.0) + i} for i in range(5)],
    [{"a": 1}, {"b": 2}],  # records with different keys
    [np.arange(3), np.arange(3) * 2],  # packed arrays
    [1, 2**64],  # one int beyond int64 prevents packing
    [True, False], [1.5, float("nan")], ["a", "", "ü"], [1j, 2j], ["a\x00", "b"],
    st.MyList([1, 2]), st.MyDict(a=1),
]


@pytest.mark.parametrize("obj", COLLECTIONS, ids=lambda o: type(o).__name__)
def test_collections(obj, tmp_path):
    check(obj, tmp_path)


def test_dict_keeps_insertion_order(tmp_path):
    obj = {"z": 1, "a": 2, "m": {"y": 1, "b": 2}, 3: "x"}
    assert list(roundtrip(obj, tmp_path)) == ["z", "a", "m", 3]


def test_subclass_attributes_kept(tmp_path):
    lst = st.MyList([1, 2])
    lst.note = "kept"
    d = st.MyDict(a=1)
    d.meta = {"x": 1}
    assert_same([lst, d], roundtrip([lst, d], tmp_path))


STDLIB = [
    dt.datetime(2024, 5, 1, 12, 30, 15, 123456),
    dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc),
    dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30))),
    dt.datetime(2024, 3, 31, 2, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin")),
    dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin")),
    dt.date(1999, 12, 31), dt.time(23, 59, 59, 999999), dt.time(1, 2, tzinfo=dt.timezone.utc),
    dt.timedelta(days=-3, seconds=5, microseconds=7), dt.timedelta.max, dt.timedelta.min,
    decimal.Decimal("3.14159265358979323846264338327950288"), decimal.Decimal("NaN"),
    decimal.Decimal("-Infinity"), fractions.Fraction(1, 3), fractions.Fraction(-(10**50), 7),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    pathlib.PurePosixPath("/data/run 1/x.h5"), pathlib.Path("relative/dir"),
    pathlib.PureWindowsPath(r"C:\data\x.h5"),
    st.Color.RED, st.Color.GREEN, st.Level.HIGH, st.Perm.R, st.Perm.R | st.Perm.W, st.Perm(0),
]


@pytest.mark.parametrize("obj", STDLIB, ids=lambda o: type(o).__name__)
def test_stdlib_values(obj, tmp_path):
    check(obj, tmp_path)


NUMERIC_DTYPES = ["b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "g",
                  "c8", "c16", "G", ">i4", ">f8"]


@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
def test_numeric_arrays_and_scalars(dtype, tmp_path):
    arr = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    scalar = arr.ravel()[5]
    check(arr, tmp_path)
    check(scalar, tmp_path)
    check(np.array(arr.ravel()[3]), tmp_path)  # 0-d
    check(np.zeros((0, 3), dtype), tmp_path)  # zero-size
    check(np.asfortranarray(arr), tmp_path)
    check(arr[:, ::2], tmp_path)  # non-contiguous view


NUMPY_OTHER = [
    np.array([b"ab", b"", b"\x00x"], "S3"), np.array(["héllo", "", "x"], "U7"),
    np.array([["a", "bc"], ["d", "ef"]]), np.array("zero-d unicode"),
    np.array(["a\x00b", "c"], "U3"),
    np.array(["2024-01-01T00:00", "NaT"], "datetime64[ns]"),
    np.array([1, 2, -3], "timedelta64[ms]"), np.array("2020-02-02", "datetime64[D]"),
    np.zeros(3, [("a", "f4", (2, 3)), ("b", [("c", "i2"), ("d", "S2")])]),
    np.array([(1, 2.5)], [("x", ">i4"), ("y", "f8")]),
    np.array([1, "a", None, [1, 2], {"k": np.arange(2)}], dtype=object),
    np.array([[1, "a"], [None, 2.5]], dtype=object),
    np.empty((0,), dtype=object), np.array(["packed", "strs"], dtype=object),
    np.array([[1, 2], [3, 4]], dtype=object), np.array([{"a": 1}, {"a": 2}], dtype=object),
    np.ma.MaskedArray([1.0, 2.0, 3.0], mask=[False, True, False], fill_value=-1.0),
    np.ma.MaskedArray(np.arange(6).reshape(2, 3)),  # nomask
    np.ma.MaskedArray([1, 2], mask=[True, False], hard_mask=True),
    np.float16(1.5), np.int8(-3), np.uint64(2**64 - 1), np.bool_(True), np.complex64(1 + 2j),
    np.longdouble("1.1"), np.str_("numpy str"), np.bytes_(b"nb"), np.datetime64("2024-01-01"),
    np.timedelta64(5, "s"), np.zeros((), [("a", "i4"), ("b", "f8")])[()],
]


@pytest.mark.parametrize("obj", NUMPY_OTHER, ids=lambda o: str(getattr(o, "dtype", type(o))))
def test_numpy_values(obj, tmp_path):
    check(obj, tmp_path)


def test_stringdtype(tmp_path):
    arr = np.array(["variable", "", "längth ✓"], dtype=np.dtypes.StringDType())
    check(arr, tmp_path)


def test_masked_array_details(tmp_path):
    m = np.ma.MaskedArray([1.0, 2.0], mask=[True, False], fill_value=7.0)
    out = roundtrip(m, tmp_path)
    assert out.fill_value == 7.0 and list(out.mask) == [True, False]


USER = [
    st.Trial(1, "first", np.arange(3), ["a"]), st.Frozen(1, (2, 3)), st.AttrsRun("r", 2.0),
    st.AttrsFrozen(5), st.Slotted(1, "secret"), st.WithState(21),
]


@pytest.mark.parametrize("obj", USER, ids=lambda o: type(o).__name__)
def test_user_classes(obj, tmp_path):
    check(obj, tmp_path)


def test_plain_class_restored_without_init(tmp_path):
    obj = st.Plain(3)
    obj.children.append(st.Plain(4))
    calls = st.Plain.init_calls
    out = roundtrip(obj, tmp_path)
    assert st.Plain.init_calls == calls
    assert type(out.children[0]) is st.Plain and out.children[0].value == 4


def test_slots_private_names(tmp_path):
    out = roundtrip(st.Slotted(1, "secret"), tmp_path)
    assert out.private() == "secret" and not hasattr(out, "unset")


def test_custom_getstate_setstate(tmp_path):
    out = roundtrip(st.WithState(21), tmp_path)
    assert out.cache == {"derived": 42}


def test_user_object_layout(tmp_path):
    path = tmp_path / "obj.h5"
    h5forge.dump({"trial": st.Trial(1, "x")}, path)
    with h5py.File(path, "r") as f:
        node = f["trial"]
        assert node.attrs["class"] == "tests.store.sample_types.Trial"
        state = node["instance_attributes"]
        assert set(state) == {"number", "label", "samples", "tags"}  # all members are nodes
        assert state["number"][()] == 1


def test_migration_hook(tmp_path):
    path = tmp_path / "old.h5"
    h5forge.dump(st.Versioned("Ada Lovelace"), path)
    with h5py.File(path, "r+") as f:  # rewrite as a version-1 file with the old state
        del f["instance_attributes/full_name"]
        state = f["instance_attributes"]
        state.attrs["keys"] = ["first", "last"]
        state["first"], state["last"] = "Ada", "Lovelace"
        for name in ("first", "last"):
            state[name].attrs["class"] = "str"
        f.attrs["class_version"] = 1
    assert h5forge.load(path).full_name == "Ada Lovelace"


def test_class_attributes_option(tmp_path):
    @h5forge.register_class
    class _Unused:  # register_class works as a decorator
        pass

    h5forge.register_class(st.Trial, class_attributes=False)
    h5forge.register_class(st.Plain, class_attributes=True)
    try:
        path = tmp_path / "ca.h5"
        h5forge.dump(st.Plain(1), path)
        with h5py.File(path, "r") as f:
            assert f["class_attributes"].attrs["init_calls"] >= 0
        assert h5forge.load(path).value == 1
    finally:
        h5forge.register_class(st.Plain, class_attributes=False)


def test_deep_nesting(tmp_path):
    obj = []
    cur = obj
    for _ in range(150):
        cur.append([])
        cur = cur[0]
    assert_same(obj, roundtrip(obj, tmp_path))
