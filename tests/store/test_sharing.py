"""Shared references are stored once (hard links) and come back shared; cycles load."""

from __future__ import annotations

import h5py
import numpy as np

import h5forge
from tests.store import sample_types as st


def roundtrip(obj, tmp_path):
    path = tmp_path / "share.h5"
    h5forge.dump(obj, path)
    return h5forge.load(path), path


def test_shared_containers_and_arrays(tmp_path):
    inner = [1, 2]
    arr = np.arange(10)
    out, path = roundtrip({"a": inner, "b": inner, "x": arr, "y": arr}, tmp_path)
    assert out["a"] is out["b"] and out["x"] is out["y"]
    with h5py.File(path, "r") as f:  # one object, two names
        assert f["a"].id == f["b"].id and f["x"].id == f["y"].id


def test_self_containing_list_and_dict(tmp_path):
    lst = [1]
    lst.append(lst)
    d = {"name": "loop"}
    d["self"] = d
    out, _ = roundtrip([lst, d], tmp_path)
    assert out[0][1] is out[0] and out[1]["self"] is out[1]


def test_objects_pointing_at_each_other(tmp_path):
    a, b = st.Plain("a"), st.Plain("b")
    a.children.append(b)
    b.children.append(a)
    out, _ = roundtrip({"a": a}, tmp_path)
    assert out["a"].children[0].children[0] is out["a"]


def test_tuple_in_a_cycle(tmp_path):
    holder = []
    t = (holder, "t")
    holder.append(t)
    out, _ = roundtrip(t, tmp_path)
    assert out[0][0] is out


def test_object_array_containing_itself(tmp_path):
    arr = np.empty(2, dtype=object)
    arr[0] = arr
    arr[1] = "x"
    out, _ = roundtrip(arr, tmp_path)
    assert out[0] is out and out[1] == "x"


def test_packed_record_shared_elsewhere_stays_shared(tmp_path):
    records = [{"id": i, "v": np.arange(3.0)} for i in range(4)]
    out, _ = roundtrip({"records": records, "favourite": records[2],
                        "arr": records[1]["v"]}, tmp_path)
    assert out["favourite"] is out["records"][2]
    assert out["arr"] is out["records"][1]["v"]


def test_record_seen_before_its_list_is_not_packed(tmp_path):
    records = [{"id": i} for i in range(3)]
    out, _ = roundtrip({"first": records[0], "records": records}, tmp_path)
    assert out["first"] is out["records"][0]


def test_same_dict_twice_in_a_list(tmp_path):
    rec = {"id": 1, "x": 2.0}
    out, _ = roundtrip([rec, rec, {"id": 2, "x": 3.0}], tmp_path)
    assert out[0] is out[1] and out[2] == {"id": 2, "x": 3.0}


def test_shared_state_between_object_and_dict(tmp_path):
    samples = np.arange(5)
    trial = st.Trial(1, "t", samples)
    out, _ = roundtrip({"trial": trial, "raw": samples, "again": trial}, tmp_path)
    assert out["trial"].samples is out["raw"] and out["again"] is out["trial"]


def test_immutables_are_not_linked(tmp_path):
    s = "a shared string that is long enough" * 20
    out, path = roundtrip({"a": s, "b": s}, tmp_path)
    assert out == {"a": s, "b": s}


def test_short_list_inline_then_shared(tmp_path):
    short = [1, 2, 3]  # short lists are inline attributes until reached a second time
    out, path = roundtrip({"a": short, "b": short, "c": [4, 5]}, tmp_path)
    assert out["a"] is out["b"] and out["a"] == [1, 2, 3]
    with h5py.File(path, "r") as f:
        assert f["a"].id == f["b"].id and list(f.attrs["c"]) == [4, 5]
