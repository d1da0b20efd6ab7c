"""ndarray subclasses: attribute-less ones are the data with their class name; ones carrying
instance state (like vigra's VigraArray and its axistags) are a group of the array and the
state, load as that class with the state restored, and -- when the class cannot be found --
as an UnknownObject holding the array, which dumps back to the same layout."""

from __future__ import annotations

import sys
import types
import warnings

import h5py
import numpy as np
import pytest

import h5forge
from h5forge import UnknownClassWarning, UnknownObject
from h5forge.errors import CodecError, CorruptFileError
from tests.store.equality import assert_same


class Tagged(np.ndarray):
    """Like vigra.VigraArray: an ndarray with axistags, propagated by __array_finalize__."""

    finalized = 0

    def __new__(cls, data, axistags=None):
        obj = np.asarray(data).view(cls)
        obj.axistags = axistags
        return obj

    def __array_finalize__(self, obj):
        type(self).finalized += 1
        self.axistags = getattr(obj, "axistags", "default")


class Slotted(np.ndarray):
    __slots__ = ("unit", "_Slotted__hidden")


class Bare(np.ndarray):
    """No instance state: stored as the data with the class name (the long-standing layout)."""


def roundtrip(obj, tmp_path, **load_kwargs):
    path = tmp_path / "sub.h5"
    h5forge.dump(obj, path, overwrite=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return h5forge.load(path, **load_kwargs)


def check(obj, tmp_path):
    for wrapped in (obj, {"value": obj, "other": 1}, [obj, "x"]):
        out = roundtrip(wrapped, tmp_path)
        assert_same(wrapped, out)  # type, dtype, shape, order, data and __dict__ state


def make_matrix():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.matrix([[1, 2], [3, 4]])


def make_slotted():
    s = np.arange(4.0).view(Slotted)
    s.unit = "mV"
    s._Slotted__hidden = {"k": [1, 2]}
    return s


SUBCLASSES = [
    Tagged(np.arange(12).reshape(3, 4), axistags={"axes": "yx", "resolution": [0.5, 0.5]}),
    Tagged(np.float32(2.5), axistags="scalar"),  # 0-d
    Tagged(np.asfortranarray(np.ones((2, 3))), axistags=["x", "y"]),
    Tagged(np.array(["a", "bc"]), axistags=None),
    Tagged(np.array([1, "two", None], dtype=object), axistags={"a": 1}),
    Tagged(np.zeros((0, 3)), axistags=()),
    np.arange(3).view(Bare),
    np.rec.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
    make_matrix(),  # its _getitem flag is bookkeeping, not state: stored as the data
]


@pytest.mark.parametrize("obj", SUBCLASSES, ids=lambda o: f"{type(o).__name__}-{o.dtype}")
def test_subclass_roundtrip(obj, tmp_path):
    check(obj, tmp_path)


def test_slots_state(tmp_path):
    out = roundtrip({"s": make_slotted()}, tmp_path)["s"]
    assert type(out) is Slotted and out.unit == "mV" and out._Slotted__hidden == {"k": [1, 2]}
    np.testing.assert_array_equal(out, np.arange(4.0))


def test_state_restored_after_array_finalize(tmp_path):
    t = Tagged(np.arange(3), axistags={"x": 1})
    t.extra = np.arange(2)
    before = Tagged.finalized
    out = roundtrip(t, tmp_path)
    assert Tagged.finalized > before  # the view ran __array_finalize__ ...
    assert out.axistags == {"x": 1}  # ... and the stored state won over its default
    np.testing.assert_array_equal(out.extra, [0, 1])


def test_layout(tmp_path):
    path = tmp_path / "layout.h5"
    h5forge.dump({"img": Tagged(np.arange(6).reshape(2, 3), axistags="yx"),
                  "bare": np.arange(3).view(Bare)}, path)
    with h5py.File(path, "r") as f:
        img = f["img"]
        assert isinstance(img, h5py.Group)
        assert img.attrs["class"] == "tests.store.test_subclasses.Tagged"
        assert set(img) == {"data", "instance_attributes"}
        assert img["data"].attrs["class"] == "numpy.ndarray"
        np.testing.assert_array_equal(img["data"][()], np.arange(6).reshape(2, 3))
        assert set(img["instance_attributes"]) == {"axistags"}  # members are child nodes
        assert img["instance_attributes/axistags"].asstr()[()] == "yx"
        bare = f["bare"]
        assert isinstance(bare, h5py.Dataset)
        assert bare.attrs["class"] == "tests.store.test_subclasses.Bare"


def test_sharing_and_cycles(tmp_path):
    t = Tagged(np.arange(3), axistags=None)
    t.axistags = {"self": t}
    out = roundtrip([t, t], tmp_path)
    assert out[0] is out[1] and out[0].axistags["self"] is out[0]


def test_lazy_load_keeps_subclass(tmp_path):
    t = Tagged(np.zeros(200_000), axistags="x")  # above the lazy threshold
    out = roundtrip({"t": t}, tmp_path, lazy=True)["t"]
    assert type(out) is Tagged and out.axistags == "x" and out.shape == (200_000,)


def test_memmap_stored_as_its_data(tmp_path):
    mm = np.memmap(tmp_path / "mm.bin", dtype="f4", mode="w+", shape=(2, 3))
    mm[:] = 7
    out = roundtrip({"m": mm}, tmp_path)["m"]
    assert type(out) is np.ndarray and out.dtype == np.float32 and (out == 7).all()
    del mm


def test_refusals(tmp_path):
    class MaskedSub(np.ma.MaskedArray):
        pass

    with pytest.raises(CodecError, match="MaskedArray"):
        h5forge.dump({"x": MaskedSub([1, 2], mask=[0, 1])}, tmp_path / "no.h5")
    t = Tagged(np.arange(2), axistags=lambda: None)  # state that cannot be stored
    with pytest.raises(CodecError, match="axistags"):
        h5forge.dump({"x": t}, tmp_path / "no.h5")


# -- classes that cannot be found on load ----------------------------------------------------
GONE = "h5forge_test_gone_module"


@pytest.fixture
def gone_module(monkeypatch):
    """A module with an ndarray subclass, importable while the test dumps; ``remove()`` makes
    it unresolvable (as in a program that never imported it)."""
    module = types.ModuleType(GONE)
    exec(  # noqa: S102 - defining a class in a fresh module
        "import numpy as np\n"
        "class Volume(np.ndarray):\n"
        "    def __array_finalize__(self, obj):\n"
        "        self.axistags = getattr(obj, 'axistags', None)\n"
        "class Flat(np.ndarray):\n"
        "    pass\n",
        module.__dict__,
    )
    monkeypatch.setitem(sys.modules, GONE, module)
    module.remove = lambda: monkeypatch.delitem(sys.modules, GONE)
    module.restore = lambda: monkeypatch.setitem(sys.modules, GONE, module)
    return module


def load_warned(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = h5forge.load(path)
    return out, [str(w.message) for w in caught if issubclass(w.category, UnknownClassWarning)]


def layout(path):
    """Every node of a file: path -> (kind, attributes, data)."""
    nodes = {}

    def visit(name, obj):
        data = obj[()].tolist() if isinstance(obj, h5py.Dataset) else None
        attrs = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in obj.attrs.items()}
        nodes[name] = (type(obj).__name__, attrs, data)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return nodes


def test_unresolvable_class_loads_as_unknown_object(tmp_path, gone_module):
    vol = np.arange(6.0).reshape(2, 3).view(gone_module.Volume)
    vol.axistags = {"axes": "yx", "scale": 0.5}
    flat = np.arange(3).view(gone_module.Flat)
    path = tmp_path / "gone.h5"
    h5forge.dump({"vol": vol, "flat": flat}, path)

    gone_module.remove()
    out, messages = load_warned(path)
    assert len(messages) == 2 and all(GONE in m for m in messages)
    unknown = out["vol"]
    assert type(unknown) is UnknownObject
    assert unknown.class_name == f"{GONE}.Volume" and unknown.kind == "group"
    assert type(unknown.state["data"]) is np.ndarray  # the array, intact
    np.testing.assert_array_equal(unknown.state["data"], np.arange(6.0).reshape(2, 3))
    assert unknown.state["instance_attributes"] == {"axistags": {"axes": "yx", "scale": 0.5}}
    assert type(out["flat"]) is UnknownObject and out["flat"].kind == "dataset"
    np.testing.assert_array_equal(out["flat"].state, [0, 1, 2])

    again = tmp_path / "again.h5"  # saved by a program without the class: same layout
    h5forge.dump(out, again)
    assert layout(again) == layout(path)

    gone_module.restore()
    back = roundtrip(h5forge.load(again), tmp_path)
    assert type(back["vol"]) is gone_module.Volume and type(back["flat"]) is gone_module.Flat
    assert back["vol"].axistags == {"axes": "yx", "scale": 0.5}
    np.testing.assert_array_equal(back["vol"], vol)


# -- crafted files ---------------------------------------------------------------------------
def crafted(tmp_path, build):
    path = tmp_path / "crafted.h5"
    with h5py.File(path, "w") as f:
        f.attrs["class"], f.attrs["keys"] = "dict", ["victim"]
        g = f.create_group("victim")
        g.attrs["class"] = "tests.store.test_subclasses.Tagged"
        build(g)
    return path


def _state(g, value=None):
    s = g.create_group("instance_attributes")
    s.attrs["class"] = "dict"
    if value is not None:
        s.attrs["keys"] = ["axistags"]
        s["axistags"] = value
        s["axistags"].attrs["class"] = "int"


def _data(g, value=None, cls="numpy.ndarray"):
    g["data"] = np.arange(3) if value is None else value
    g["data"].attrs["class"] = cls


@pytest.mark.parametrize("build, match", [
    (lambda g: _state(g, 1), "data"),  # no data
    (lambda g: (_data(g), None), "instance_attributes"),  # no state
    (lambda g: (_data(g, 5, "int"), _state(g, 1)), "must be a numpy.ndarray"),
    (lambda g: (_data(g), g.create_dataset("instance_attributes", data=[1, 2]).attrs.update(
        {"class": "list"})), "instance_attributes"),
])
def test_crafted_subclass_nodes(tmp_path, build, match):
    with pytest.raises(CorruptFileError, match=match):
        h5forge.load(crafted(tmp_path, build))


def test_crafted_valid_node_loads(tmp_path):
    out = h5forge.load(crafted(tmp_path, lambda g: (_data(g), _state(g, 4))))
    assert type(out["victim"]) is Tagged and out["victim"].axistags == 4
