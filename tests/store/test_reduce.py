"""The reduce rule: classes rebuilt by pickle's protocol are stored as the class plus its
constructor's arguments, only when the callable is the class itself or ``cls.__new__``."""

from __future__ import annotations

import copyreg
import types

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.errors import CodecError, UnsafeContentError


class Point:
    """``__new__`` needs its arguments (like astropy's Time)."""

    def __new__(cls, x, y):
        self = super().__new__(cls)
        self.x, self.y = x, y
        return self

    def __getnewargs__(self):
        return (self.x, self.y)

    def __eq__(self, other):
        return type(other) is type(self) and (self.x, self.y) == (other.x, other.y)


class Labelled:
    """``__new__`` with keyword-only arguments (``__getnewargs_ex__``) and extra state."""

    def __new__(cls, *, label):
        self = super().__new__(cls)
        self.label = label
        return self

    def __getnewargs_ex__(self):
        return (), {"label": self.label}

    def __eq__(self, other):
        return type(other) is type(self) and vars(self) == vars(other)


class Offset:
    """``__reduce__`` naming the class itself (like dateutil's tzoffset)."""

    def __init__(self, name, seconds):
        self.name, self.seconds = name, seconds
        self.derived = np.arange(seconds)

    def __reduce__(self):
        return (type(self), (self.name, self.seconds))

    def __eq__(self, other):
        return type(other) is type(self) and (self.name, self.seconds) == \
            (other.name, other.seconds) and np.array_equal(self.derived, other.derived)


class WithState:
    """``__reduce__`` naming the class, with a state dict applied afterwards."""

    def __init__(self, n):
        self.n = n
        self.note = None

    def __reduce__(self):
        return (type(self), (self.n,), {"note": self.note})


class ByFunction:
    """Pickled through a module function: h5forge must refuse it."""

    def __init__(self, v):
        self.v = v

    def __reduce__(self):
        return (_rebuild, (self.v,))


def _rebuild(v):
    return ByFunction(v)


class Singleton:
    def __reduce__(self):
        return "SINGLETON"


SINGLETON = Singleton()


class WithItems:
    def __reduce__(self):
        return (type(self), (), None, iter([1, 2]))


class Loop:
    def __init__(self):
        self.me = self

    def __getnewargs__(self):
        return (self.me,)

    def __new__(cls, *args):
        return super().__new__(cls)


class ByCopyreg:
    def __init__(self, v):
        self.v = v


copyreg.pickle(ByCopyreg, lambda obj: (ByCopyreg, (obj.v,)))


class Plain:
    def __init__(self):
        self.a = 1


def roundtrip(obj, tmp_path, **kwargs):
    path = tmp_path / "r.h5"
    h5forge.dump(obj, path)
    return h5forge.load(path, **kwargs)


def test_getnewargs_class_round_trips_and_is_plain_hdf5(tmp_path):
    obj = {"p": Point(1, [2, 3]), "q": Point("a", None)}
    out = roundtrip(obj, tmp_path)
    assert out == obj
    with h5py.File(tmp_path / "r.h5") as f:
        assert f["p"].attrs["construct"] == "new"
        assert f["p/new_arguments"].attrs["class"] == "list"


def test_getnewargs_ex_keywords_round_trip(tmp_path):
    obj = Labelled(label="x")
    obj.extra = np.arange(3)
    out = roundtrip(obj, tmp_path)
    assert out.label == "x" and np.array_equal(out.extra, obj.extra)


def test_reduce_to_the_class_calls_it_with_the_arguments(tmp_path):
    obj = [Offset("CEST", 5), Offset(None, 0)]
    out = roundtrip(obj, tmp_path)
    assert out == obj
    with h5py.File(tmp_path / "r.h5") as f:
        assert f["0"].attrs["construct"] == "call"
        assert "instance_attributes" not in f["0"]  # pickle's state was None


def test_reduce_state_is_applied_after_the_call(tmp_path):
    obj = WithState(3)
    obj.note = {"k": [1, 2]}
    out = roundtrip(obj, tmp_path)
    assert type(out) is WithState and out.n == 3 and out.note == {"k": [1, 2]}


@pytest.mark.parametrize("obj, message", [
    (ByFunction(1), "tests.store.test_reduce._rebuild"),
    (SINGLETON, "global 'SINGLETON'"),
    (WithItems(), "list/dict items"),
    (Loop(), "refer back to the object itself"),
    (ByCopyreg(2), "copyreg function"),
])
def test_what_cannot_be_rebuilt_safely_is_refused_at_dump(obj, message, tmp_path):
    with pytest.raises(CodecError, match=message):
        h5forge.dump({"x": obj}, tmp_path / "r.h5")
    assert not (tmp_path / "r.h5").exists()


def test_refusal_names_the_place_in_the_tree(tmp_path):
    with pytest.raises(CodecError, match=r"obj\['runs'\]\[1\]"):
        h5forge.dump({"runs": [1, ByFunction(2)]}, tmp_path / "r.h5")


def test_a_crafted_construct_on_a_class_without_reduce_is_refused(tmp_path):
    path = tmp_path / "r.h5"
    h5forge.dump(Plain(), path)
    with h5py.File(path, "a") as f:
        f.attrs["construct"] = "call"
        args = f.create_dataset("new_arguments", data=np.array([1, 2]))
        args.attrs["class"] = "list"
        args.attrs["element_class"] = "int"
    with pytest.raises(UnsafeContentError, match="refusing to call it"):
        h5forge.load(path)


def test_a_crafted_construct_value_is_a_corrupt_file(tmp_path):
    path = tmp_path / "r.h5"
    h5forge.dump(Point(1, 2), path)
    with h5py.File(path, "a") as f:
        f.attrs["construct"] = "exec"
    with pytest.raises(h5forge.H5ForgeError, match="'construct' must be"):
        h5forge.load(path)


def test_without_the_class_the_arguments_stay_in_the_unknown_object(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    h5forge.dump(Point(1, 2), path)
    with h5py.File(path, "a") as f:
        f.attrs["class"] = "gone_module.Point"
    with pytest.warns(h5forge.UnknownClassWarning):
        out = h5forge.load(path)
    assert isinstance(out, h5forge.UnknownObject)
    assert out.state["new_arguments"] == [1, 2] and out.state["construct"] == "new"
    h5forge.dump(out, tmp_path / "again.h5")
    with h5py.File(tmp_path / "again.h5", "a") as f:
        f.attrs["class"] = "tests.store.test_reduce.Point"
    assert h5forge.load(tmp_path / "again.h5") == Point(1, 2)


def test_simple_namespace_loads_as_itself(tmp_path):
    obj = types.SimpleNamespace(a=1, b=[2, 3], c=np.arange(4))
    out = roundtrip({"ns": obj}, tmp_path)["ns"]
    assert type(out) is types.SimpleNamespace
    assert out.a == 1 and out.b == [2, 3] and np.array_equal(out.c, obj.c)


def test_other_classes_of_types_stay_refused(tmp_path):
    path = tmp_path / "r.h5"
    h5forge.dump(types.SimpleNamespace(a=1), path)
    with h5py.File(path, "a") as f:
        f.attrs["class"] = "types.MappingProxyType"
    with pytest.warns(h5forge.UnknownClassWarning, match="never uses implicitly"):
        assert isinstance(h5forge.load(path), h5forge.UnknownObject)


def test_a_crafted_call_on_a_getnewargs_class_is_refused(tmp_path):
    """``construct = call`` needs a class whose own ``__reduce__`` names itself."""
    path = tmp_path / "r.h5"
    h5forge.dump(Point(1, 2), path)
    with h5py.File(path, "a") as f:
        f.attrs["construct"] = "call"
    with pytest.raises(UnsafeContentError, match="construct='call'"):
        h5forge.load(path)
