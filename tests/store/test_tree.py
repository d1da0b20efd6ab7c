"""Packed trees (format 3): a nest of small plain data stored as a few tables (issue 17)."""

from __future__ import annotations

import sys
import warnings

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.errors import CorruptFileError, NodeNotFoundError, UpdateError
from h5forge.store.layout import NAMED_KEYS_MAX
from h5forge.store.tree import TREE_ARRAY_MAX, TREE_ITEMS_MAX, TREE_RECORDS_MIN
from tests.store import sample_types as st
from tests.store.equality import assert_same

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "data"))
import make_tree_golden  # noqa: E402


def config() -> dict:
    return {"rig": {"name": "r1", "on": True, "n": 3, "gain": 0.5, "z": 1j, "none": None,
                    "bands": [(1.0, 30.0), (30.0, 300.0)], "w": np.arange(4, dtype=np.int8)},
            "list": [[], {}, (), "", [1, [2, [3]]]], "e": "é\u2713", "long": "x" * 300,
            "arrays": [np.eye(2, dtype=np.float32), np.array(True), np.zeros((0, 3)),
                       np.arange(6, dtype=np.uint16).reshape(1, 2, 3), np.ones(2, np.complex64)]}


def layout(path, where="value"):
    with h5py.File(path, "r") as f:
        group = f[where]
        return dict(group.attrs), sorted(group)


def test_round_trip_keeps_types_and_is_one_group_of_tables(tmp_path):
    path = tmp_path / "t.h5"
    obj = config()
    h5forge.dump(obj, path)
    attrs, names = layout(path)
    assert attrs["class"] == "dict" and attrs["layout"] == "tree"
    assert {"nodes", "keys", "int", "float", "str", "bool", "complex", "arrays"} <= set(names)
    out = h5forge.load(path)
    assert_same(obj, out)
    assert type(out["rig"]["n"]) is int and type(out["rig"]["on"]) is bool
    assert type(out["rig"]["bands"][0]) is tuple and out["list"][2] == ()
    assert out["arrays"][0].dtype == np.float32 and out["arrays"][3].shape == (1, 2, 3)
    assert out["arrays"][1].shape == () and out["arrays"][2].shape == (0, 3)
    out["arrays"][0][0, 0] = 9  # every array is its own, writable copy
    assert out["arrays"][0].flags.owndata and out["arrays"][4][0] == 1


def test_tables_are_plain_h5py(tmp_path):
    path = tmp_path / "t.h5"
    h5forge.dump({"big": np.zeros(100), "cfg": {"a": {"x": 7}, "b": [1.5], "c": [{}],
                                                "d": ("s",)}}, path)
    with h5py.File(path, "r") as f:
        g = f["cfg"]  # not the root: no box
        nodes = g["nodes"][()]
        assert nodes.dtype.names == ("parent", "key", "class", "index")
        assert h5py.check_enum_dtype(g["nodes"].dtype["class"])["dict"] == 6
        keys = [k.decode() for k in g["keys"][()]]
        rows = {keys[k]: (p, c, i) for p, k, c, i in nodes.tolist() if k >= 0}
        assert g["int"][rows["x"][2]] == 7 and rows["x"][0] == 0  # x's parent: row 0 (a)
        assert g["float"][()].tolist() == [1.5] and g["str"][()].tolist() == [b"s"]


@pytest.mark.parametrize("member", [
    pytest.param(lambda: st.Point(1, 2), id="user-object"),
    pytest.param(lambda: np.float32(1), id="numpy-scalar"),
    pytest.param(lambda: np.zeros(TREE_ARRAY_MAX + 1), id="big-array"),
    pytest.param(lambda: np.zeros(3, ">f8"), id="big-endian-array"),
    pytest.param(lambda: np.asfortranarray(np.ones((2, 3))), id="fortran-array"),
    pytest.param(lambda: list(range(TREE_ITEMS_MAX + 1)), id="long-list"),
    pytest.param(lambda: [{"a": i} for i in range(TREE_RECORDS_MIN)], id="records"),
    pytest.param(lambda: {1: "int key"}, id="int-key"),
    pytest.param(lambda: "nul\x00", id="str-with-nul"),
    pytest.param(lambda: 2**70, id="big-int"),
    pytest.param(lambda: {"s": {1, 2}}, id="set"),
])
def test_what_is_not_plain_data_keeps_the_container_unpacked(tmp_path, member):
    path = tmp_path / "t.h5"
    obj = {"odd": member(), "a": {"b": {}}, "c": [[1], [2]], "d": {"e": [3]}}
    h5forge.dump(obj, path)
    with h5py.File(path, "r") as f:
        assert "layout" not in f.attrs and "box" not in f.attrs
        for name in ("a", "c", "d"):  # too few containers each to pack alone
            assert "layout" not in f[name].attrs
    assert_same(obj, h5forge.load(path))


def test_plain_siblings_of_big_data_are_packed_on_their_own(tmp_path):
    path = tmp_path / "t.h5"
    obj = {"trace": np.zeros(5000), "cfg": config(), "n": 3}
    h5forge.dump(obj, path)
    with h5py.File(path, "r") as f:
        assert f["trace"].shape == (5000,) and f["cfg"].attrs["layout"] == "tree"
    assert_same(obj, h5forge.load(path))


def test_records_holding_lists_are_tree_rows(tmp_path):
    """Same-keyed dicts whose fields hold lists are no records table: without the tree they
    were a group and a dataset per record (3,000 records: 1.4 s to dump)."""
    path = tmp_path / "t.h5"
    obj = {f"r{i}": {"id": i, "tags": [i, "a", None]} for i in range(NAMED_KEYS_MAX + 1)}
    h5forge.dump(obj, path)
    with h5py.File(path, "r") as f:
        assert f["value"].attrs["layout"] == "tree"
    assert_same(obj, h5forge.load(path))


def test_few_containers_keep_the_node_layout(tmp_path):
    path = tmp_path / "t.h5"
    h5forge.dump({"a": {"x": 1}, "b": [1, 2]}, path)
    with h5py.File(path, "r") as f:
        assert "layout" not in f.attrs and f["a"].attrs["x"] == 1


def test_sharing_and_cycles_are_kept(tmp_path):
    path = tmp_path / "t.h5"
    inner = [1, 2]
    cfg = {"a": {"x": inner}, "b": [[1], [2]], "c": {"d": {}}}
    loop: dict = {"a": [[1], [2], {"e": {}}]}
    loop["self"] = loop
    obj = {"cfg": cfg, "again": inner, "twice": [cfg, cfg], "loop": loop}
    h5forge.dump(obj, path)
    out = h5forge.load(path)
    assert out["again"] is out["cfg"]["a"]["x"] and out["twice"][0] is out["cfg"]
    assert out["loop"]["self"] is out["loop"]
    assert_same(obj, out)


@pytest.mark.parametrize("shared", [[7], np.arange(4.0)], ids=["list", "array"])
def test_a_member_reached_again_after_its_tree_stays_one_object(tmp_path, shared):
    """The tree holding it is unpacked; a sub-tree that packs again holding it is unpacked
    too (this crashed with AttributeError)."""
    path = tmp_path / "t.h5"
    obj = [{"x": [shared, [2], [3], [4], [5]]}, shared]
    h5forge.dump(obj, path)
    out = h5forge.load(path)
    assert out[0]["x"][0] is out[1]
    assert_same(obj, out)


def test_the_same_list_twice_inside_stays_one_object(tmp_path):
    path = tmp_path / "t.h5"
    shared = [1.0, 2.0]
    obj = {"a": shared, "b": shared, "c": {"d": [1], "e": [2]}, "f": [{}]}
    h5forge.dump(obj, path)
    out = h5forge.load(path)
    assert out["a"] is out["b"]
    assert_same(obj, out)


def test_pack_trees_false_writes_one_object_per_node(tmp_path):
    path = tmp_path / "t.h5"
    h5forge.dump(config(), path, pack_trees=False)
    with h5py.File(path, "r") as f:
        assert "box" not in f.attrs and f["rig"].attrs["name"] == "r1"
    assert_same(config(), h5forge.load(path))
    plan = h5forge.get_default_configuration(config(), pack_trees=False)
    assert "arrays/0" in plan and "value/nodes" in h5forge.get_default_configuration(config())


def test_load_a_path_inside_a_tree(tmp_path):
    path = tmp_path / "t.h5"
    h5forge.dump(config(), path)
    assert h5forge.load(path, "rig/bands/1") == (30.0, 300.0)
    assert h5forge.load(path, "value/rig/name") == "r1"  # the HDF5 path works too
    with pytest.raises(NodeNotFoundError, match=r"t.h5:/rig/nope/x: .*has no rig/nope"):
        h5forge.load(path, "rig/nope/x")
    with pytest.raises(NodeNotFoundError, match="list/9"):
        h5forge.load(path, "list/9")


def test_updates_inside_a_tree(tmp_path):
    path = tmp_path / "t.h5"
    obj = config()
    h5forge.dump(obj, path)
    h5forge.dump(2.0, path, "rig/gain", overwrite=True)
    h5forge.dump({"new": [1]}, path, "rig/extra")
    h5forge.append((300.0, 3000.0), path, "rig/bands")
    h5forge.append(4, path, "list/4/1")
    h5forge.delete(path, "list/0")
    h5forge.dump(st.Point(1, 2), path, "rig/point")  # no longer plain data: unpacked
    obj["rig"].update(gain=2.0, extra={"new": [1]}, point=st.Point(1, 2))
    obj["rig"]["bands"].append((300.0, 3000.0))
    obj["list"][4][1].append(4)
    del obj["list"][0]
    assert_same(obj, h5forge.load(path))
    with pytest.raises(h5forge.errors.NodeExistsError):
        h5forge.dump(1, path, "rig/gain")
    with pytest.raises(UpdateError, match="append needs a stored list"):
        h5forge.append(1, path, "list/2")  # the str ""
    with pytest.raises(NodeNotFoundError):
        h5forge.delete(path, "list/99")
    assert_same(obj, h5forge.load(path))  # refused updates changed nothing


def test_updates_of_a_tree_under_a_group_and_a_list_root(tmp_path):
    path = tmp_path / "t.h5"
    h5forge.dump({"big": np.zeros(100), "cfg": config(), "xs": [[1], [2], [3], {"a": ()}]},
                 path)
    h5forge.dump("r2", path, "cfg/rig/name", overwrite=True)
    h5forge.append([4], path, "xs")
    out = h5forge.load(path)
    assert out["cfg"]["rig"]["name"] == "r2" and out["xs"][-1] == [4]
    with h5py.File(path, "r+") as f:
        with pytest.raises(UpdateError, match="pass its parent group"):
            h5forge.dump(1, f["cfg"], "rig/n", overwrite=True)
    assert h5forge.load(path, "cfg/rig/n") == 3


def _damage(path, change):
    h5forge.dump({"big": np.zeros(100), "cfg": config()}, path)
    with h5py.File(path, "r+") as f:
        change(f["cfg"])


def _set_row(field, value, row=1):
    def change(g):
        nodes = g["nodes"][()]
        nodes[field][row] = value
        g["nodes"][...] = nodes
    return change


def _drop(name):
    def change(g):
        del g[name]
    return change


def _short_pool(g):
    data = g["array_float32"][()]  # the 2x2 eye's 4 values
    del g["array_float32"]
    g["array_float32"] = data[:1]


def _duplicate_key(g):
    nodes = g["nodes"][()]
    first = np.flatnonzero(nodes["parent"] == 0)[:2]  # two members of 'rig'
    nodes["key"][first[1]] = nodes["key"][first[0]]
    g["nodes"][...] = nodes


@pytest.mark.parametrize("change, message", [
    (_set_row("parent", 5, row=1), "refers to a later row"),
    (_set_row("parent", -7), "below -1"),
    (_set_row("index", 10_000, row=2), "outside table"),
    (_set_row("key", 999), "outside the"),
    (_set_row("key", -1, row=1), "has no key"),
    (_drop("nodes"), "nodes: missing"),
    (_drop("int"), "outside table 'int'"),
    (_short_pool, "outside array_"),
    (_duplicate_key, "same key twice"),
])
def test_a_damaged_tree_is_a_corrupt_file_error(tmp_path, change, message):
    path = tmp_path / "bad.h5"
    _damage(path, change)
    with pytest.raises(CorruptFileError, match=message) as err:
        h5forge.load(path)
    assert "bad.h5:/cfg" in str(err.value)


def test_a_class_code_out_of_range_is_refused(tmp_path):
    path = tmp_path / "bad.h5"
    h5forge.dump({"big": np.zeros(100), "cfg": config()}, path)
    with h5py.File(path, "r+") as f:
        raw = f["cfg/nodes"][()].view(np.uint8).reshape(-1, 17).copy()
        raw[0, 8] = 77  # the class byte of row 0 (parent 4 + key 4 bytes first)
        del f["cfg/nodes"]
        plain = np.dtype([("parent", "<i4"), ("key", "<i4"), ("class", "u1"), ("index", "<i8")])
        f["cfg"].create_dataset("nodes", data=raw.view(plain).reshape(-1))
    with pytest.raises(CorruptFileError, match="not a known class"):
        h5forge.load(path)


def test_cli_tree_shows_the_nest(tmp_path, capsys):
    from h5forge.cli.main import main

    path = tmp_path / "t.h5"
    h5forge.dump({"big": np.zeros(100), "cfg": config()}, path)
    assert main(["tree", str(path)]) == 0
    out = capsys.readouterr().out
    assert "(packed tree)" in out and "bands" in out and "= 'r1'" in out
    assert main(["tree", str(path), "cfg/rig/bands"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["/cfg/rig/bands", "list"] and len(lines) == 7
    assert main(["tree", str(path), "cfg/rig/none"]) == 0  # a None member is no missing one
    assert capsys.readouterr().out.split() == ["/cfg/rig/none", "None"]


def test_golden_tree_v3_keeps_loading():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = h5forge.load(make_tree_golden.GOLDEN)
    assert_same(make_tree_golden.expected(), out)
    with h5py.File(make_tree_golden.GOLDEN, "r") as f:
        assert f.attrs["h5forge_format"] == "3" and f["config"].attrs["layout"] == "tree"


# -- random nests -----------------------------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as hst  # noqa: E402

_KEYS = hst.text(alphabet="ab/é.\x00 ", max_size=3)  # "", "/", ".", NUL: fine as tree keys
_PLAIN = hst.one_of(
    hst.integers(-2**63, 2**63 - 1), hst.floats(), hst.booleans(), hst.none(),
    hst.complex_numbers(), hst.text(hst.characters(exclude_categories=("Cs",),
                                                   exclude_characters="\x00"), max_size=80),
    hst.builds(lambda n, dt: np.arange(n).astype(dt), hst.integers(0, 64),
               hst.sampled_from(["f8", "f4", "i1", "u8", "?", "c16"])),
)
#: Leaves that keep their container out of a tree.
_ODD = hst.one_of(hst.integers(2**63, 2**64), hst.text(max_size=3).map(lambda s: s + "\ud800"),
                  hst.just(np.zeros(65)), hst.just(np.float32(1)))


def _nests(leaves):
    """Nests holding at least four containers (so the plain ones are packed trees)."""
    nest = hst.recursive(leaves, lambda inner: hst.one_of(
        hst.dictionaries(_KEYS, inner, max_size=4), hst.lists(inner, max_size=4),
        hst.lists(inner, max_size=3).map(tuple)), max_leaves=12)
    return hst.fixed_dictionaries({"a": hst.lists(nest, max_size=3), "b": hst.tuples(nest),
                                   "c": hst.dictionaries(_KEYS, nest, max_size=3),
                                   "d": hst.lists(nest, max_size=2)})


def _mutables(obj, out):
    """Every list, dict and array inside ``obj`` (what can be shared)."""
    if type(obj) in (list, dict, np.ndarray):
        out.append(obj)
    if type(obj) in (list, tuple):
        for item in obj:
            _mutables(item, out)
    elif type(obj) is dict:
        for item in obj.values():
            _mutables(item, out)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=hst.one_of(_nests(_PLAIN), _nests(hst.one_of(_PLAIN, _ODD))), data=hst.data())
def test_random_nests_round_trip_packed_or_not(tmp_path_factory, obj, data):
    """Whatever a nest holds (keys a group cannot be named by, NULs, lone surrogates, ints
    past int64, big arrays, numpy scalars), packed or not, and whatever inside it is also
    referenced from outside (before or after it), it loads back the same, types and sharing
    kept."""
    folder = tmp_path_factory.mktemp("nests")
    shared = _mutables(obj, [])
    again = data.draw(hst.sampled_from(shared)) if shared and data.draw(hst.booleans()) else 0
    for top in ({"x": obj, "again": again}, {"again": again, "x": obj}):
        for pack in (True, False):
            path = folder / f"{pack}.h5"
            h5forge.dump(top, path, pack_trees=pack, overwrite=True)
            assert_same(top, h5forge.load(path))
