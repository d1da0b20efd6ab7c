"""Runs of builtin scalars of several types (format 2): one table with a type column, the
same through updates, ``h5forge tree`` and plain h5py; many inline members stay linear."""

from __future__ import annotations

import importlib.util

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.cli.main import main
from h5forge.errors import CorruptFileError
from h5forge.store import FORMAT_VERSION, packing
from h5forge.store.packing import MIXED_CODES
from tests.store.equality import assert_same
from tests.store.golden_objects import DATA


def _golden():
    spec = importlib.util.spec_from_file_location("make_mixed_golden",
                                                  DATA / "make_mixed_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def roundtrip(obj, tmp_path):
    path = tmp_path / "m.h5"
    h5forge.dump(obj, path, overwrite=True)
    return h5forge.load(path)


def test_golden_file_keeps_loading():
    module = _golden()
    assert_same(module.expected(), h5forge.load(module.GOLDEN))


MIXED = [
    [1, 2.5, None, "a", True, 1j, -(2**63), 2**63 - 1, "é ✓", ""],
    [None], [None, None], [True, 1], [1, 1.0], [0.0, -0.0, float("nan")] + [1],
    ("a", 1), {1, "1", None}, frozenset({2.5, "x"}),
    [{"a": i, "b": None if i % 2 else "x", "c": i if i % 3 else 0.5} for i in range(7)],
    [{"a": None}, {"a": None}],
    np.array([1, "a", None, 2.5], dtype=object),
    {f"k{i}": (i, str(i), float(i), None)[i % 4] for i in range(700)},  # items layout
]


@pytest.mark.parametrize("obj", MIXED, ids=lambda o: type(o).__name__)
def test_mixed_runs_roundtrip_with_types_kept(obj, tmp_path):
    for wrapped in (obj, {"value": obj}, [obj, [0]]):
        assert_same(wrapped, roundtrip(wrapped, tmp_path))


def test_mixed_list_is_one_plain_table(tmp_path):
    path = tmp_path / "plain.h5"
    h5forge.dump({"xs": [1, None, "a", 2.5]}, path)
    with h5py.File(path, "r") as f:
        assert f.attrs["h5forge_format"] == FORMAT_VERSION
        ds = f["xs"]
        assert ds.attrs["class"] == "list" and ds.attrs["element_class"] == "mixed"
        assert ds.dtype.names == ("class", "int", "float", "str")
        assert h5py.check_enum_dtype(ds.dtype["class"]) == MIXED_CODES
        table = ds[()]
        assert table["class"].tolist() == [2, 0, 5, 3]
        assert table["int"][0] == 1 and table["float"][3] == 2.5
        assert ds.fields("str")[2] in (b"a", "a")


def test_str_field_is_fixed_length_up_to_64_bytes(tmp_path):
    path = tmp_path / "s.h5"
    long = "ü" * 40  # 80 bytes in UTF-8
    h5forge.dump({"short": [1, "ab", "é"], "long": [1, "ab", long]}, path)
    with h5py.File(path, "r") as f:
        assert h5py.check_string_dtype(f["short"].dtype["str"]) == ("utf-8", 2)
        assert h5py.check_string_dtype(f["long"].dtype["str"]).length is None
    assert h5forge.load(path) == {"short": [1, "ab", "é"], "long": [1, "ab", long]}


def test_str_runs_are_fixed_length_up_to_64_bytes(tmp_path):
    path = tmp_path / "s.h5"
    names, long = ["ab", "é", ""] * 30, ["ab", "x" * 65] * 40  # too long to be inline
    h5forge.dump({"names": names, "long": long, "keys": {f"k{i}": i for i in range(600)}}, path)
    with h5py.File(path, "r") as f:
        assert h5py.check_string_dtype(f["names"].dtype) == ("utf-8", 2)
        assert h5py.check_string_dtype(f["long"].dtype).length is None
        assert h5py.check_string_dtype(f["keys/keys"].dtype) == ("utf-8", 4)
    h5forge.append("cd", path, "names")  # rewritten extendable
    h5forge.append("ef", path, "names")  # in place
    h5forge.append("a longer one", path, "names")  # does not fit: rewritten, never cut
    h5forge.dump("üü", path, "names/0", overwrite=True)  # 4 bytes: rewritten
    got = h5forge.load(path)
    assert got["names"] == ["üü"] + names[1:] + ["cd", "ef", "a longer one"]
    assert got["long"] == long
    assert got["keys"] == {f"k{i}": i for i in range(600)}


def test_a_longer_str_appended_to_a_fixed_length_field_is_not_cut(tmp_path):
    path = tmp_path / "s.h5"
    h5forge.dump({"xs": [None, "ab"]}, path)
    h5forge.append("cd", path, "xs")  # rewritten extendable
    h5forge.append("ef", path, "xs")  # in place
    h5forge.append("a much longer text", path, "xs")  # does not fit: rewritten
    h5forge.dump("x" * 100, path, "xs/0", overwrite=True)
    assert h5forge.load(path) == {"xs": ["x" * 100, "ab", "cd", "ef", "a much longer text"]}


RUNS = [[1, 2.5, None, "a", True, 1j], [1.0, 2.0, None], [None], [None, 3], ["é", None, "ü"],
        [1, "x" * 65], [True, 0], [2**63 - 1, -(2**63), None]]


@pytest.mark.parametrize("run", RUNS, ids=repr)
def test_short_and_long_runs_pack_alike(run):
    """Short runs are packed in plain Python, long ones with numpy: same table either way."""
    short = packing.pack_mixed(run)
    times = packing._SMALL_RUN // len(run) + 1
    long = packing.pack_mixed(run * times)
    assert len(run) <= packing._SMALL_RUN < len(run) * times
    assert short.dtype == long.dtype and short.dtype.names == long.dtype.names
    assert short.tolist() * times == long.tolist()
    assert packing.unpack_mixed(short) == run


@pytest.mark.parametrize("run", [[1.0, 2.0], ["a", "b"], [1, 2**64], [None, 2**64],
                                 [1, b"x"], [None, "nul\x00"], [1, [2]]], ids=repr)
def test_runs_that_are_not_mixed_tables_short_or_long(run):
    for values in (run, run * (packing._SMALL_RUN // len(run) + 1)):
        assert packing.pack_mixed(values) is None


@pytest.mark.parametrize("items", [[1, 2**64], [1, "nul\x00"], [1, "lone \udc80"], [1, b"x"],
                                   [1, [2]]])
def test_runs_a_table_cannot_hold_stay_a_group(items, tmp_path):
    path = tmp_path / "g.h5"
    h5forge.dump({"xs": items}, path)
    with h5py.File(path, "r") as f:
        assert isinstance(f["xs"], h5py.Group)
    assert_same({"xs": items}, h5forge.load(path))


def test_many_inline_members_use_dense_attribute_storage(tmp_path):
    """A group holding thousands of inline members (a list with containers among its scalars)
    is created with its attributes in dense storage: linear, not quadratic."""
    path = tmp_path / "many.h5"
    obj = {"xs": [i if i % 5 else [i] for i in range(3000)], "few": {"a": 1, "b": [1]}}
    h5forge.dump(obj, path, pack_trees=False)  # packed, it is a tree (test_tree.py)
    with h5py.File(path, "r") as f:
        assert f["xs"].id.get_create_plist().get_attr_creation_order() != 0
        assert f["few"].id.get_create_plist().get_attr_creation_order() == 0
        assert len(f["xs"].attrs) > 2000
    assert_same(obj, h5forge.load(path))


def test_dense_groups_and_root_keep_utf8_names(tmp_path):
    path = tmp_path / "root.h5"
    obj = {f"ключ{i}": i if i % 3 else {"v": i} for i in range(60)}  # the root: 40 inline
    h5forge.dump({"été": obj}, tmp_path / "nested.h5", pack_trees=False)
    h5forge.dump(obj, path, pack_trees=False)
    with h5py.File(path, "r") as f:
        assert f["/"].id.get_create_plist().get_attr_creation_order() != 0
    with h5py.File(tmp_path / "nested.h5", "r") as f:
        assert f.id.links.get_info("été".encode()).cset == h5py.h5t.CSET_UTF8
        assert f["été"].id.get_create_plist().get_attr_creation_order() != 0
        assert f["été"].id.links.get_info("ключ0".encode()).cset == h5py.h5t.CSET_UTF8
    assert_same(obj, h5forge.load(path))
    assert_same({"été": obj}, h5forge.load(tmp_path / "nested.h5"))


def _tree(capsys, path) -> list[str]:
    assert main(["tree", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out.splitlines()


def test_updates_of_a_mixed_list(tmp_path, capsys):
    path = tmp_path / "u.h5"
    h5forge.dump({"xs": [1, "a", None]}, path)
    h5forge.append(2, path, "xs")  # a type with a column: rewritten extendable
    with h5py.File(path, "r") as f:
        assert f["xs"].maxshape == (None,)
        address = h5py.h5o.get_info(f["xs"].id).addr
    h5forge.append("b", path, "xs")  # in place
    h5forge.append(None, path, "xs")
    with h5py.File(path, "r") as f:
        assert h5py.h5o.get_info(f["xs"].id).addr == address
        assert f["xs"].attrs["element_class"] == "mixed"
    h5forge.append(2.5, path, "xs")  # no float column: rewritten with one
    h5forge.dump(True, path, "xs/0", overwrite=True)
    h5forge.delete(path, "xs/1")
    expected = [True, None, 2, "b", None, 2.5]
    assert h5forge.load(path) == {"xs": expected}
    assert [type(v) for v in h5forge.load(path)["xs"]] == [type(v) for v in expected]
    row = [ln.split() for ln in _tree(capsys, path) if ln.split()[0] == "xs"]
    assert row[0][1:3] == ["list[mixed]", f"x{len(expected)}"]
    h5forge.append([1], path, "xs")  # not a scalar: the list becomes a group
    assert h5forge.load(path)["xs"] == expected + [[1]]


def test_updates_of_records_with_a_mixed_column(tmp_path):
    path = tmp_path / "r.h5"
    recs = [{"n": 0, "note": None}, {"n": 1, "note": "x"}]
    h5forge.dump({"recs": recs}, path)
    h5forge.append({"n": 2, "note": 3.5}, path, "recs")
    h5forge.append({"n": 3, "note": "y"}, path, "recs")
    h5forge.dump({"n": 9, "note": None}, path, "recs/0", overwrite=True)
    recs = [{"n": 9, "note": None}, recs[1], {"n": 2, "note": 3.5}, {"n": 3, "note": "y"}]
    assert h5forge.load(path) == {"recs": recs}
    with h5py.File(path, "r") as f:
        assert list(f["recs"].attrs["field_classes"]) == ["int", "mixed"]


def _table(**fields):
    names = list(fields)
    dtype = [(n, np.asarray(v).dtype if n != "str" else h5py.string_dtype())
             for n, v in fields.items()]
    table = np.zeros(len(fields[names[0]]), dtype=dtype)
    for n, v in fields.items():
        table[n] = v
    return table


@pytest.mark.parametrize("table,why", [
    (_table(**{"class": np.array([2, 9], "u1"), "int": [1, 2]}), "unknown class code 9"),
    (_table(**{"class": np.array([2, 3], "u1"), "int": [1, 2]}), "no 'float' field"),
    (_table(**{"class": np.array([5, 5], "u1"), "str": ["a", "b"], "int": [1, 2]}), None),
    (_table(**{"class": np.array([2, 2], "u1"), "int": [1.5, 2.5]}), "field 'int'"),
    (_table(**{"int": [1, 2]}), "'class' field"),
    (np.arange(3), "'class' field"),
])
def test_damaged_mixed_tables_raise_corrupt_file_error(table, why, tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f.attrs["class"] = "dict"
        f.attrs["keys"] = ["victim"]
        ds = f.create_dataset("victim", data=table)
        ds.attrs["class"] = "list"
        ds.attrs["element_class"] = "mixed"
    if why is None:  # an unused column is harmless
        assert h5forge.load(path) == {"victim": ["a", "b"]}
        return
    with pytest.raises(CorruptFileError, match="victim") as info:
        h5forge.load(path)
    assert why in str(info.value)
