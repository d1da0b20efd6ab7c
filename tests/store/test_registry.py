"""Extensibility: user codecs, aliases for moved classes, and class-name resolution rules."""

from __future__ import annotations

import array
import runpy
import sys
from pathlib import Path

import h5py
import pytest

import h5forge
from h5forge.errors import CodecError, UnsafeContentError
from h5forge.store import registry
from tests.store import sample_types as st

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_custom_codec_example(tmp_path):
    with pytest.raises(CodecError, match=r"obj\['x'\].*array\.array"):
        h5forge.dump({"x": array.array("d", [1.0])}, tmp_path / "before.h5")
    namespace = runpy.run_path(str(EXAMPLES / "custom_codec.py"))  # registers the codec
    try:
        path = tmp_path / "after.h5"
        h5forge.dump({"x": array.array("d", [1.0, 2.5])}, path)
        out = h5forge.load(path)["x"]
        assert type(out) is array.array and out.tolist() == [1.0, 2.5] and out.typecode == "d"
        with h5py.File(path, "r") as f:  # readable as plain numbers
            assert f["x"][()].tolist() == [1.0, 2.5] and f["x"].attrs["typecode"] == "d"
    finally:
        codec = namespace["ArrayArrayCodec"]
        registry._by_type.pop(array.array, None)
        registry._by_name.pop("array.array", None)
        registry._type_cache.clear()
        del codec


def test_user_codec_overrides_builtin(tmp_path):
    class UpperStr(h5forge.Codec):
        types = (st.Point,)
        names = ("test.point",)

        def encode(self, obj, enc, where):
            from h5forge.store.layout import dataset_node
            return dataset_node("test.point", [obj.x, obj.y])

        def decode(self, stored, dec):
            return st.Point(*stored.dataset()[()].tolist())

    h5forge.register_codec(UpperStr())
    try:
        path = tmp_path / "p.h5"
        h5forge.dump(st.Point(1, 2), path)
        with h5py.File(path, "r") as f:
            assert f.attrs["class"] == "test.point"
        assert h5forge.load(path) == st.Point(1, 2)
    finally:
        registry._by_type.pop(st.Point, None)
        registry._by_name.pop("test.point", None)
        registry._type_cache.clear()


def test_register_codec_rejects_non_codecs():
    with pytest.raises(TypeError):
        h5forge.register_codec(object())


def test_alias_for_a_renamed_class(tmp_path):
    path = tmp_path / "old.h5"
    h5forge.dump(st.Trial(3, "old"), path)
    with h5py.File(path, "r+") as f:
        f.attrs["class"] = "labcode.v1.OldTrial"  # as written by an older program
    with pytest.warns(h5forge.UnknownClassWarning, match="alias"):
        unknown = h5forge.load(path)
    assert isinstance(unknown, h5forge.UnknownObject) and unknown.state["number"] == 3
    h5forge.alias("labcode.v1.OldTrial", st.Trial)
    try:
        out = h5forge.load(path)
        assert type(out) is st.Trial and out.label == "old"
    finally:
        registry._aliases.pop("labcode.v1.OldTrial")


def test_resolution_rules(monkeypatch):
    assert registry.resolve_class("collections.OrderedDict") is __import__(
        "collections").OrderedDict
    with pytest.raises(UnsafeContentError):
        registry.resolve_class("os.system")  # a module never used implicitly
    with pytest.raises(UnsafeContentError):
        registry.resolve_class("__import__('os')")
    with pytest.raises(LookupError):
        registry.resolve_class("json.decoder.JSONDecoder" if "json" not in sys.modules
                               else "no_such_module_xyz.Thing")
    monkeypatch.delitem(sys.modules, "fractions", raising=False)
    with pytest.raises(LookupError):  # not imported, not trusted: not imported by h5forge
        registry.resolve_class("fractions.Fraction")
    assert "fractions" not in sys.modules
    assert registry.resolve_class("fractions.Fraction", ["fractions"]).__name__ == "Fraction"
