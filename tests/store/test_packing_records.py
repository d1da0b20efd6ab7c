"""Lists of records (one compound table): str columns are fixed-length UTF-8 up to 64 bytes
(format 3), older variable-length columns keep loading and updating, and no update cuts a str."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.store.packing import FIXED_STR_MAX, pack_records, record_row
from tests.store.equality import assert_same
from tests.store.golden_objects import DATA


def _address(path, name) -> int:
    with h5py.File(path, "r") as f:
        return h5py.h5o.get_info(f[name].id).addr


def _field(path, name, field):
    with h5py.File(path, "r") as f:
        return h5py.check_string_dtype(f[name].dtype[field])


def test_str_columns_are_fixed_length_utf8_up_to_64_bytes(tmp_path):
    path = tmp_path / "r.h5"
    recs = [{"id": 0, "name": "ab", "city": "Zürich", "empty": "", "long": "x" * 65},
            {"id": 1, "name": "é", "city": "東京", "empty": "", "long": "y"}]
    h5forge.dump({"recs": recs}, path)
    assert _field(path, "recs", "name") == ("utf-8", 2)  # bytes, not characters: é is 2
    assert _field(path, "recs", "city") == ("utf-8", 7)
    assert _field(path, "recs", "empty") == ("utf-8", 1)
    assert _field(path, "recs", "long").length is None  # 65 bytes: variable-length
    with h5py.File(path, "r") as f:  # plain h5py reads the UTF-8 bytes
        assert f["recs"].fields("city")[()].tolist() == ["Zürich".encode(), "東京".encode()]
        assert list(f["recs"].attrs["field_classes"]) == ["int", "str", "str", "str", "str"]
    assert_same({"recs": recs}, h5forge.load(path))


@pytest.mark.parametrize("text", ["a" * FIXED_STR_MAX, "ü" * (FIXED_STR_MAX // 2)])
def test_the_width_limit_counts_utf8_bytes(text):
    table, _ = pack_records([{"s": text}, {"s": "b"}])
    assert h5py.check_string_dtype(table.dtype["s"]) == ("utf-8", FIXED_STR_MAX)
    table, _ = pack_records([{"s": text + "x"}, {"s": "b"}])
    assert h5py.check_string_dtype(table.dtype["s"]).length is None


def test_records_with_text_a_table_cannot_hold_stay_groups(tmp_path):
    path = tmp_path / "g.h5"
    recs = [{"s": "nul\x00"}, {"s": "b"}]
    h5forge.dump({"recs": recs}, path)
    with h5py.File(path, "r") as f:
        assert isinstance(f["recs"], h5py.Group)
    assert_same({"recs": recs}, h5forge.load(path))


def test_updates_of_fixed_length_str_columns_never_cut(tmp_path):
    path = tmp_path / "u.h5"
    recs = [{"n": 0, "s": "abcd"}, {"n": 1, "s": "ef"}]
    h5forge.dump({"recs": recs}, path)
    h5forge.append({"n": 2, "s": "g"}, path, "recs")  # rewritten extendable
    address = _address(path, "recs")
    h5forge.append({"n": 3, "s": "hi"}, path, "recs")  # shorter than the field: in place
    h5forge.dump({"n": 9, "s": "jklm"}, path, "recs/1", overwrite=True)  # as wide: in place
    assert _address(path, "recs") == address and _field(path, "recs", "s") == ("utf-8", 4)
    h5forge.append({"n": 4, "s": "a longer text"}, path, "recs")  # wider: rewritten
    assert _field(path, "recs", "s") == ("utf-8", 13)
    h5forge.dump({"n": 5, "s": "z" * 100}, path, "recs/0", overwrite=True)  # now vlen
    assert _field(path, "recs", "s").length is None
    expected = [{"n": 5, "s": "z" * 100}, {"n": 9, "s": "jklm"}, {"n": 2, "s": "g"},
                {"n": 3, "s": "hi"}, {"n": 4, "s": "a longer text"}]
    assert h5forge.load(path) == {"recs": expected}
    h5forge.append({"n": 6, "s": "ü" * 50}, path, "recs")  # a vlen column takes any length
    assert h5forge.load(path)["recs"][-1] == {"n": 6, "s": "ü" * 50}


def test_golden_variable_length_str_column_loads_and_updates_in_place(tmp_path):
    path = tmp_path / "experiment.h5"
    shutil.copy(DATA / "experiment_v1.h5", path)
    before = h5forge.load(path)["trials"]
    assert _field(path, "trials", "outcome").length is None
    address = _address(path, "trials")

    def trial(outcome):
        return dict(before[0], outcome=outcome, licks=before[0]["licks"].copy())

    long = "a much longer outcome than any before " * 3
    h5forge.dump(trial(long), path, "trials/1", overwrite=True)  # a vlen row takes any length
    assert _address(path, "trials") == address
    assert _field(path, "trials", "outcome").length is None
    h5forge.append(trial("x"), path, "trials")  # rewritten extendable, as dump writes it now
    h5forge.append(trial("y" * 70), path, "trials")  # a vlen field: in place
    expected = [before[0], trial(long), *before[2:], trial("x"), trial("y" * 70)]
    assert_same(expected, h5forge.load(path)["trials"])


def test_a_fitting_value_of_a_mixed_field_is_written_in_place(tmp_path):
    path = tmp_path / "m.h5"
    recs = [{"n": 0, "note": None}, {"n": 1, "note": "xy"}]
    h5forge.dump({"recs": recs}, path)
    h5forge.append({"n": 2, "note": None}, path, "recs")  # rewritten extendable
    address = _address(path, "recs")
    h5forge.append({"n": 3, "note": "z"}, path, "recs")
    h5forge.dump({"n": 4, "note": None}, path, "recs/1", overwrite=True)
    assert _address(path, "recs") == address
    h5forge.append({"n": 5, "note": 2.5}, path, "recs")  # no float column: rewritten
    h5forge.append({"n": 6, "note": "longer"}, path, "recs")  # wider than the field
    expected = [recs[0], {"n": 4, "note": None}, {"n": 2, "note": None}, {"n": 3, "note": "z"},
                {"n": 5, "note": 2.5}, {"n": 6, "note": "longer"}]
    assert_same({"recs": expected}, h5forge.load(path))


_TABLE, _CLASSES = pack_records([{"a": 1, "s": "abc", "v": np.ones(2), "m": None},
                                 {"a": 2, "s": "é", "v": np.zeros(2), "m": "x"}])


@pytest.mark.parametrize("value", [
    {"a": 3, "s": "abcd", "v": np.ones(2), "m": None},  # str wider than its field
    {"a": 3, "s": "ab", "v": np.ones(2), "m": "zz"},  # mixed field's str too wide
    {"a": 3, "s": "ab", "v": np.ones(2), "m": 1},  # mixed field has no int column
    {"a": 3, "s": "ab", "v": np.ones(3), "m": None},  # other shape
    {"a": 3, "s": "ab", "v": np.ones(2, np.float32), "m": None},  # other dtype
    {"a": 3.0, "s": "ab", "v": np.ones(2), "m": None},  # other type
    {"a": 3, "s": 5, "v": np.ones(2), "m": None},
    {"s": "ab", "a": 3, "v": np.ones(2), "m": None},  # other key order
    {"a": 3, "s": "ab", "v": np.ones(2)},  # a key missing
    {"a": 3, "s": "nul\x00", "v": np.ones(2), "m": None},
    [3, "ab"],
], ids=lambda v: repr(v)[:40])
def test_record_row_refuses_what_the_table_cannot_hold(value):
    assert record_row(value, _TABLE.dtype, _CLASSES) is None


def test_record_row_fits_a_narrower_value():
    row = record_row({"a": 3, "s": "é", "v": np.ones(2), "m": "y"}, _TABLE.dtype, _CLASSES)
    assert row["a"] == 3 and row["s"] == "é".encode() and row["m"]["str"] == b"y"
