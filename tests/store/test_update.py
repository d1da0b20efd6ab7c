"""In-place updates of stored trees: dump into a container, append, delete (issue 14)."""

from __future__ import annotations

import collections
import dataclasses
import os
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest

import h5forge
from h5forge.errors import NodeExistsError, NodeNotFoundError, UpdateError
from h5forge.io import BackendConfiguration, DatasetConfiguration
from h5forge.store import FORMAT_VERSION, MemberMismatchWarning

from .equality import assert_same


@dataclasses.dataclass
class Run:
    subject: str
    trials: list


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: int
    b: str


def load(path, *args, **kwargs):
    """``h5forge.load`` that fails on any warning: an update must leave a consistent tree."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return h5forge.load(path, *args, **kwargs)


def layout(path) -> dict:
    """Every node and attribute of the file, to check that a refused update wrote nothing."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            attrs = {k: repr(v) for k, v in obj.attrs.items()}
            data = repr(obj[()]) if isinstance(obj, h5py.Dataset) else None
            out[name] = (type(obj).__name__, attrs, data)
        out["/"] = ("root", {k: repr(v) for k, v in f.attrs.items()}, None)
        f.visititems(visit)
    return out


@pytest.fixture
def record(tmp_path):
    path = tmp_path / "u.h5"
    h5forge.dump({"name": "run", "trials": {"t1": np.arange(5)}, "n": 3}, path)
    return path


# -- the examples -----------------------------------------------------------------------
def test_add_a_trial_to_a_stored_dict(record):
    h5forge.dump(np.arange(7), record, "trials/t2")
    out = load(record)
    assert list(out["trials"]) == ["t1", "t2"]
    assert_same(out["trials"]["t2"], np.arange(7))
    assert out["name"] == "run" and out["n"] == 3


def test_replace_an_inline_scalar(record):
    h5forge.dump(4, record, "n", overwrite=True)
    out = load(record)
    assert out["n"] == 4 and out["name"] == "run"
    assert list(out) == ["name", "trials", "n"]  # a replaced key keeps its place
    with h5py.File(record, "r") as f:
        assert f.attrs["n"] == 4 and "n" not in f  # still inline


def test_add_a_key_to_the_root_dict(record):
    h5forge.dump("note", record, "comment")
    out = load(record)
    assert list(out) == ["name", "trials", "n", "comment"] and out["comment"] == "note"


def test_append_to_an_inline_list_by_index(tmp_path):
    path = tmp_path / "l.h5"
    h5forge.dump({"xs": [1, 2, 3]}, path)
    h5forge.dump(4, path, "xs/3")
    assert load(path) == {"xs": [1, 2, 3, 4]}
    h5forge.append(5, path, "xs")
    assert load(path) == {"xs": [1, 2, 3, 4, 5]}


def test_existing_member_needs_overwrite(record):
    before = layout(record)
    for path in ("n", "trials", "trials/t1", "name"):
        with pytest.raises(NodeExistsError, match=path):
            h5forge.dump(0, record, path)
    assert layout(record) == before


# -- replacing every kind of old member ---------------------------------------------------------
@pytest.mark.parametrize("new", [5, "short", "x" * 1000, np.arange(3.0), {"k": [1, 2]}, None,
                                 [1, "a"], (1, 2)], ids=repr)
@pytest.mark.parametrize("old", ["inline", "dataset", "group", "inline_list"])
def test_replace_any_member_with_any_value(tmp_path, old, new):
    olds = {"inline": 7, "dataset": np.ones(4), "group": {"a": {"b": 1}}, "inline_list": [1, 2]}
    path = tmp_path / "r.h5"
    h5forge.dump({"first": 0, "m": olds[old], "last": "z"}, path)
    h5forge.dump(new, path, "m", overwrite=True)
    out = load(path)
    assert list(out) == ["first", "m", "last"]
    assert_same(out["m"], new)
    with h5py.File(path, "r") as f:
        assert not [n for n in f if n.startswith(".h5forge-tmp")]


def test_missing_intermediates_inside_a_dict_become_dicts(record):
    h5forge.dump(1.5, record, "trials/t9/meta/gain")
    assert load(record)["trials"]["t9"] == {"meta": {"gain": 1.5}}


def test_member_names_that_are_format_attributes(record):
    h5forge.dump(5, record, "trials/keys")  # a reserved name: a child node, never an attribute
    h5forge.dump("x", record, "trials/class")
    out = load(record)["trials"]
    assert out["keys"] == 5 and out["class"] == "x" and list(out) == ["t1", "keys", "class"]


def test_ordered_and_default_dicts(tmp_path):
    path = tmp_path / "o.h5"
    dd = collections.defaultdict(list, {"a": [1]})
    h5forge.dump({"od": collections.OrderedDict([("z", 1), ("a", 2)]), "dd": dd}, path)
    h5forge.dump(3, path, "od/m")
    h5forge.dump([2], path, "dd/b")
    h5forge.delete(path, "od/z")
    out = load(path)
    assert_same(out["od"], collections.OrderedDict([("a", 2), ("m", 3)]))
    assert_same(out["dd"], collections.defaultdict(list, {"a": [1], "b": [2]}))


def test_object_attributes_are_updated_through_instance_attributes(tmp_path):
    path = tmp_path / "obj.h5"
    h5forge.dump({"run": Run("M1", [1, 2]), "frozen": Frozen(1, "x")}, path)
    h5forge.dump("M2", path, "run/instance_attributes/subject", overwrite=True)
    h5forge.append(3, path, "run/instance_attributes/trials")
    h5forge.dump(2, path, "frozen/instance_attributes/a", overwrite=True)
    out = load(path)
    assert out["run"] == Run("M2", [1, 2, 3]) and out["frozen"] == Frozen(2, "x")
    with h5py.File(path, "r") as f:  # object state stays child nodes (docs/FORMAT.md)
        assert "subject" in f["run/instance_attributes"]
    before = layout(path)
    with pytest.raises(UpdateError, match="run/instance_attributes/subject"):
        h5forge.dump("M3", path, "run/subject", overwrite=True)  # the hint names the path
    assert layout(path) == before


# -- sequences ----------------------------------------------------------------------------------
def test_group_list_replace_append_delete(tmp_path):
    path = tmp_path / "g.h5"
    items = [{"a": 1}, "s", np.arange(3), 4.5, None]
    h5forge.dump({"xs": items, "t": tuple(items)}, path)
    with h5py.File(path, "r") as f:
        assert isinstance(f["xs"], h5py.Group)
    h5forge.dump([9], path, "xs/1", overwrite=True)
    h5forge.dump("new", path, "xs/5")  # index n appends
    h5forge.append({"b": 2}, path, "xs")
    h5forge.delete(path, "xs/0")
    h5forge.delete(path, "t/2")
    out = load(path)
    assert_same(out["xs"], [[9], np.arange(3), 4.5, None, "new", {"b": 2}])
    assert_same(out["t"], ({"a": 1}, "s", 4.5, None))


def test_index_beyond_the_end_is_refused(tmp_path):
    path = tmp_path / "gap.h5"
    h5forge.dump({"xs": ["a", 1], "packed": list(range(100))}, path)
    before = layout(path)
    with pytest.raises(UpdateError, match="xs/5"):
        h5forge.dump(1, path, "xs/5")
    with pytest.raises(UpdateError, match="packed/101"):
        h5forge.dump(1, path, "packed/101")
    with pytest.raises(UpdateError, match="index"):
        h5forge.dump(1, path, "xs/first")
    with pytest.raises(NodeNotFoundError):
        h5forge.delete(path, "xs/2")
    assert layout(path) == before


def test_deque_keeps_its_maxlen(tmp_path):
    path = tmp_path / "d.h5"
    h5forge.dump({"d": collections.deque([1, "a"], maxlen=3)}, path)
    h5forge.append(2.0, path, "d")
    with pytest.raises(UpdateError, match="maxlen=3"):
        h5forge.append(3, path, "d")
    assert_same(load(path)["d"], collections.deque([1, "a", 2.0], maxlen=3))


def test_packed_scalars_row_in_place_then_extendable_appends(tmp_path):
    path = tmp_path / "p.h5"
    h5forge.dump({"xs": list(range(100))}, path)
    h5forge.dump(-1, path, "xs/5", overwrite=True)  # same kind: the row, in place
    with h5py.File(path, "r") as f:
        assert f["xs"].chunks is None  # not rewritten
    h5forge.append(100, path, "xs")  # first append: rewritten aside, now extendable
    with h5py.File(path, "r") as f:
        assert f["xs"].maxshape == (None,)
        addr = h5py.h5o.get_info(f["xs"].id).addr
    h5forge.append(101, path, "xs")  # in place: the same HDF5 object, one row longer
    with h5py.File(path, "r") as f:
        assert h5py.h5o.get_info(f["xs"].id).addr == addr
        assert f["xs"].shape == (102,) and f["xs"].attrs["element_class"] == "int"
    expected = list(range(102))
    expected[5] = -1
    assert load(path) == {"xs": expected}


def test_packed_list_unpacks_for_a_value_that_does_not_fit(tmp_path):
    path = tmp_path / "p.h5"
    h5forge.dump({"xs": list(range(100))}, path)
    h5forge.dump("text", path, "xs/3", overwrite=True)
    h5forge.append([1], path, "xs")
    out = load(path)["xs"]
    assert out[:5] == [0, 1, 2, "text", 4] and out[-1] == [1] and len(out) == 101
    with h5py.File(path, "r") as f:
        assert isinstance(f["xs"], h5py.Group)  # unpacked: one member per item


def test_packed_records(tmp_path):
    path = tmp_path / "rec.h5"
    records = [{"a": i, "b": float(i), "name": f"r{i}", "v": np.arange(3.0)} for i in range(50)]
    h5forge.dump({"records": records}, path)
    new = {"a": -1, "b": 0.5, "name": "changed", "v": np.ones(3)}
    h5forge.dump(new, path, "records/2", overwrite=True)  # fits the table: in place
    h5forge.dump("field", path, "records/3/name", overwrite=True)  # one field of a row
    h5forge.append({"a": 99, "b": 9.0, "name": "last", "v": np.zeros(3)}, path, "records")
    h5forge.append({"a": 100, "b": 1.0, "name": "again", "v": np.zeros(3)}, path, "records")
    h5forge.delete(path, "records/0")
    with h5py.File(path, "r") as f:
        assert f["records"].dtype.names == ("a", "b", "name", "v")  # still one table
        assert f["records"].maxshape == (None,)
    out = load(path)["records"]
    assert len(out) == 51
    assert_same(out[1], new)
    assert out[2]["name"] == "field" and out[-1]["name"] == "again"
    h5forge.append({"other": 1}, path, "records")  # different keys: unpacked
    assert load(path)["records"][-1] == {"other": 1}
    assert len(load(path)["records"]) == 52


def test_stacked_arrays(tmp_path):
    path = tmp_path / "arr.h5"
    frames = [np.full((2, 40), i, dtype=np.int16) for i in range(4)]  # not tree parameters
    h5forge.dump({"frames": frames}, path)
    h5forge.append(np.full((2, 40), 9, dtype=np.int16), path, "frames")
    h5forge.append(np.full((2, 40), 8, dtype=np.int16), path, "frames")
    with h5py.File(path, "r") as f:
        assert f["frames"].shape == (6, 2, 40) and f["frames"].maxshape == (None, 2, 40)
    h5forge.dump(np.zeros(5), path, "frames/1", overwrite=True)  # another shape: unpacked
    out = load(path)["frames"]
    assert [a.shape for a in out] == [(2, 40), (5,), (2, 40), (2, 40), (2, 40), (2, 40)]
    assert out[-1][0, 0] == 8


def test_a_list_that_started_empty_is_packed_as_dump_would(tmp_path):
    path = tmp_path / "grow.h5"
    shared = {"k": 1, "v": 0.5}
    h5forge.dump({"events": [], "notes": [], "linked": [shared], "other": shared}, path)
    for t in range(5):
        h5forge.append({"t": float(t), "channel": t % 2}, path, "events")
    h5forge.append("first note", path, "notes")
    h5forge.append({"k": 2, "v": 1.5}, path, "linked")
    with h5py.File(path, "r") as f:
        assert f["events"].dtype.names == ("t", "channel")  # one table, not five groups
        assert f["events"].maxshape == (None,)
        assert f.attrs["notes"].tolist() == ["first note"]  # an inline list, as dump writes
        assert isinstance(f["linked"], h5py.Group)  # a shared item is never copied
    out = load(path)
    assert [e["t"] for e in out["events"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert out["linked"][0] is out["other"] and out["linked"][1] == {"k": 2, "v": 1.5}


def test_packed_list_at_the_file_root(tmp_path):
    path = tmp_path / "root.h5"
    h5forge.dump(list(range(10)), path)
    h5forge.append(10, path)
    h5forge.dump(-1, path, "0", overwrite=True)
    h5forge.delete(path, "1")
    assert load(path) == [-1] + list(range(2, 11))


def test_packed_list_keeps_its_compression(tmp_path):
    path = tmp_path / "z.h5"
    plan = BackendConfiguration([DatasetConfiguration("xs", "int64", (1000,), chunk_shape=(100,),
                                                      compression_method="gzip")])
    h5forge.dump({"xs": list(range(1000))}, path, configuration=plan)
    h5forge.append(1000, path, "xs")
    with h5py.File(path, "r") as f:
        assert f["xs"].compression == "gzip" and f["xs"].maxshape == (None,)
    assert load(path)["xs"] == list(range(1001))


def test_configuration_applies_to_a_new_member(record):
    plan = BackendConfiguration([DatasetConfiguration("trials/t2", "float64", (1000,),
                                                      chunk_shape=(100,),
                                                      compression_method="gzip")])
    h5forge.dump(np.zeros(1000), record, "trials/t2", configuration=plan)
    with h5py.File(record, "r") as f:
        assert f["trials/t2"].compression == "gzip" and f["trials/t2"].chunks == (100,)


# -- dicts with non-string keys -----------------------------------------------------------------
def test_dict_with_non_string_keys(tmp_path):
    path = tmp_path / "items.h5"
    h5forge.dump({"d": {1: "one", (2, 3): [4], "s": 5}}, path)
    h5forge.dump("uno", path, "d/values/0", overwrite=True)  # by position in d/keys
    h5forge.dump(6, path, "d/s", overwrite=True)  # a string key, by name
    h5forge.dump(np.arange(2), path, "d/new")
    h5forge.delete(path, "d/s")
    out = load(path)["d"]
    assert_same(out, {1: "uno", (2, 3): [4], "new": np.arange(2)})
    before = layout(path)
    for bad in ("d/keys/0", "d/values"):
        with pytest.raises(UpdateError, match="keys"):
            h5forge.dump(0, path, bad, overwrite=True)
    with pytest.raises(UpdateError, match="d/values"):
        h5forge.dump(0, path, "d/values/3")  # appending a value without its key
    with pytest.raises(UpdateError, match="d/values"):
        h5forge.delete(path, "d/values/0")
    assert layout(path) == before


def test_dict_of_many_string_keys_grows(tmp_path):
    path = tmp_path / "many.h5"
    trials = {f"t{i}": i for i in range(600)}  # more than 512 keys: the items layout
    h5forge.dump({"trials": trials}, path)
    h5forge.dump(600, path, "trials/t600")
    h5forge.delete(path, "trials/t0")
    h5forge.dump(-5, path, "trials/t5", overwrite=True)
    expected = {f"t{i}": i for i in range(1, 601)}
    expected["t5"] = -5
    assert load(path)["trials"] == expected


# -- refused before anything is written ---------------------------------------------------------
def test_updates_a_layout_cannot_express(tmp_path):
    path = tmp_path / "bad.h5"
    frame = pd.DataFrame({"a": [1, 2]})
    frame.attrs["source"] = "rig 2"
    h5forge.dump({"s": {1, 2}, "fs": frozenset({(1, 2)}), "arr": np.arange(4),
                  "df": frame, "text": "abc", "masked": np.ma.masked_array([1, 2], [0, 1]),
                  "nested": {"x": 1}, "xs": [1, 2, 3]}, path)
    before = layout(path)
    cases = [
        (lambda: h5forge.dump(3, path, "s/2"), "s/2"),
        (lambda: h5forge.delete(path, "fs/0/1"), "fs/0"),
        (lambda: h5forge.dump(np.arange(2), path, "df/b"), "df/b"),
        (lambda: h5forge.delete(path, "df/a"), "df/a"),
        (lambda: h5forge.dump(1, path, "df/attrs/note"), "df/attrs"),  # a codec's own layout
        (lambda: h5forge.delete(path, "masked/mask"), "masked/mask"),
        (lambda: h5forge.dump(1, path, "arr/0", overwrite=True), "arr/0"),
        (lambda: h5forge.dump(1, path, "text/0", overwrite=True), "text/0"),
        (lambda: h5forge.dump(1, path, "nested/x/y"), "nested/x/y"),
        (lambda: h5forge.append(1, path, "nested"), "nested"),
        (lambda: h5forge.append(1, path, "text"), "text"),
        (lambda: h5forge.append(1, path, "s"), "s"),
    ]
    for call, where in cases:
        with pytest.raises(UpdateError, match=where):
            call()
    with pytest.raises(NodeNotFoundError, match="nope"):
        h5forge.delete(path, "nested/nope")
    with pytest.raises(NodeNotFoundError, match="nope"):
        h5forge.append(1, path, "nope")
    with pytest.raises(h5forge.H5ForgeError):
        h5forge.dump(lambda: 0, path, "nested/f")  # cannot be encoded
    assert layout(path) == before
    assert load(path)["xs"] == [1, 2, 3]


def test_missing_file_and_bad_targets(tmp_path):
    with pytest.raises(NodeNotFoundError, match="missing.h5"):
        h5forge.append(1, tmp_path / "missing.h5", "xs")
    with pytest.raises(NodeNotFoundError):
        h5forge.delete(tmp_path / "missing.h5", "xs")
    with pytest.raises(h5forge.H5ForgeError):
        h5forge.delete(42, "xs")
    path = tmp_path / "f.h5"
    h5forge.dump({"a": 1}, path)
    with pytest.raises(UpdateError):
        h5forge.delete(path, "/")


def test_updates_through_an_open_group(tmp_path):
    path = tmp_path / "open.h5"
    with h5py.File(path, "w") as f:
        h5forge.dump({"a": [1, 2]}, f, "analysis/run1")
        h5forge.dump({"b": 1}, f, "analysis/run2")  # a plain parent: plain dump, as before
        h5forge.append(3, f, "analysis/run1/a")
        h5forge.dump("x", f["analysis"], "run1/note")
        h5forge.delete(f["analysis/run2"], "b")
        assert f.id.valid
    assert load(path, "analysis/run1") == {"a": [1, 2, 3], "note": "x"}
    assert load(path, "analysis/run2") == {}


def test_shared_container_stays_shared(tmp_path):
    path = tmp_path / "shared.h5"
    inner = {"k": 1}
    h5forge.dump({"a": inner, "b": inner}, path)
    h5forge.dump(2, path, "a/j")
    out = load(path)
    assert out["a"] is out["b"] and out["a"] == {"k": 1, "j": 2}


def test_shared_packed_list_is_not_split(tmp_path):
    path = tmp_path / "sharedlist.h5"
    xs = list(range(100))
    h5forge.dump({"a": xs, "b": xs}, path)
    h5forge.dump(-1, path, "a/0", overwrite=True)  # in place: both names see it
    out = load(path)
    assert out["a"] is out["b"] and out["a"][0] == -1
    before = layout(path)
    with pytest.raises(UpdateError, match="shared"):
        h5forge.append(100, path, "a")  # a rewrite would separate the two names
    assert layout(path) == before


def test_versioned_stage_refuses_updates_inside_containers(tmp_path):
    path = tmp_path / "v.h5"
    with h5forge.VersionedFile(path, "w") as vf:
        with vf.stage_version("v1") as g:
            h5forge.dump({"a": 1}, g, "rec")
        with vf.stage_version("v2") as g:
            with pytest.raises(UpdateError, match="rec"):
                h5forge.dump(2, g, "rec/b")
            with pytest.raises(UpdateError):
                h5forge.append(2, g, "rec")
    with h5forge.VersionedFile(path) as vf:
        assert h5forge.load(vf["v2"], "rec") == {"a": 1}


# -- changed outside h5forge --------------------------------------------------------------------
def test_members_changed_by_plain_h5py_load_with_a_warning(record):
    with h5py.File(record, "r+") as f:
        f["trials/extra"] = np.arange(2)
        del f["trials/t1"]
    with pytest.warns(h5forge.UnknownClassWarning, match="extra"), \
            pytest.warns(MemberMismatchWarning, match=r"trials.*'extra'.*'t1'"):
        out = h5forge.load(record)  # 'extra' has no class (plain h5py wrote it)
    assert list(out["trials"]) == ["extra"]
    h5forge.dump(1, record, "trials/t3")  # an update writes keys for what is there
    with h5py.File(record, "r") as f:
        assert list(f["trials"].attrs["keys"]) == ["extra", "t3"]
    with pytest.warns(h5forge.UnknownClassWarning):  # 'extra' has no class; keys agree now
        warnings.simplefilter("error", MemberMismatchWarning)
        assert list(h5forge.load(record)["trials"]) == ["extra", "t3"]


def test_update_of_a_leftover_name_is_refused(record):
    with pytest.raises(UpdateError):
        h5forge.dump(1, record, ".h5forge-tmp-x")
    assert os.path.exists(record)


def test_golden_updated_file_keeps_loading():
    """tests/data/updated_v1.h5 was grown by updates (tests/data/make_updated_golden.py)."""
    from tests.data.make_updated_golden import GOLDEN, expected

    assert_same(load(GOLDEN), expected())
    with h5py.File(GOLDEN, "r") as f:
        assert list(f.attrs["keys"]) == ["name", "trials", "n", "events", "notes", "grown",
                                         "comment"]
        assert f["events"].maxshape == (None,) and f["grown"].maxshape == (None,)
        assert sorted(f["notes"].attrs) == ["0", "1", "class"]


def test_golden_updates_are_reproduced(tmp_path):
    """The same steps today write a file that loads the same (the writer has not drifted)."""
    from tests.data.make_updated_golden import expected, write

    write(tmp_path / "again.h5")
    assert_same(load(tmp_path / "again.h5"), expected())


def test_an_update_marks_an_older_tree_with_the_format_it_may_now_need(tmp_path):
    """A format-1 tree that gets a member in a format-2 layout (a mixed run) says format 2, so
    an older h5forge refuses it by version instead of calling the member corrupt."""
    path = tmp_path / "old.h5"
    h5forge.dump({"name": "run", "trials": {"t1": [1, 2]}}, path)
    with h5py.File(path, "r+") as f:
        f.attrs["h5forge_format"] = "1"  # as written by the previous release
    h5forge.dump([1, "two", 3.0], path, "trials/t2")  # a mixed run: format 2's layout
    with h5py.File(path, "r") as f:
        assert f.attrs["h5forge_format"] == FORMAT_VERSION
    assert h5forge.load(path) == {"name": "run", "trials": {"t1": [1, 2], "t2": [1, "two", 3.0]}}
