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
        h5forge.store.default_registry.unregister(namespace["ArrayArrayCodec"])
    with pytest.raises(CodecError, match=r"array\.array"):  # unregistered: unknown again
        h5forge.dump({"x": array.array("d", [1.0])}, tmp_path / "again.h5")


def test_user_codec_overrides_builtin(tmp_path):
    class UpperStr(h5forge.Codec):
        types = (st.Point,)
        names = ("test.point",)

        def encode(self, obj, enc, where):
            from h5forge.store.nodes import dataset_node
            return dataset_node("test.point", [obj.x, obj.y])

        def decode(self, stored, dec):
            return st.Point(*stored.dataset()[()].tolist())

    codec = h5forge.register_codec(UpperStr())
    try:
        path = tmp_path / "p.h5"
        h5forge.dump(st.Point(1, 2), path)
        with h5py.File(path, "r") as f:
            assert f.attrs["class"] == "test.point"
        assert h5forge.load(path) == st.Point(1, 2)
    finally:
        h5forge.store.default_registry.unregister(codec)


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
    mine = h5forge.store.default_registry.copy()
    mine.alias("labcode.v1.OldTrial", st.Trial)
    out = h5forge.load(path, registry=mine)
    assert type(out) is st.Trial and out.label == "old"
    with pytest.warns(h5forge.UnknownClassWarning):  # the default registry is unchanged
        assert isinstance(h5forge.load(path), h5forge.UnknownObject)


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


# -- the Registry object ------------------------------------------------------------------------
class PointCodec(h5forge.Codec):
    types = (st.Point,)
    names = ("test.point",)

    def encode(self, obj, enc, where):
        return h5forge.store.nodes.dataset_node("test.point", [obj.x, obj.y])

    def decode(self, stored, dec):
        return st.Point(*stored.read("i").tolist())


def test_a_copy_is_independent_of_the_default(tmp_path):
    default = h5forge.store.default_registry
    mine = default.copy()
    mine.register(PointCodec)
    path = tmp_path / "p.h5"
    h5forge.dump({"p": st.Point(1, 2)}, path, registry=mine)
    with h5py.File(path, "r") as f:
        assert f["p"].attrs["class"] == "test.point" and f["p"][()].tolist() == [1, 2]
    assert h5forge.load(path, registry=mine) == {"p": st.Point(1, 2)}
    # the default registry never saw the codec: the node name is unknown to it
    assert default.codec_for_name("test.point") is None
    assert type(default.codec_for_type(st.Point)) is not PointCodec
    with pytest.warns(h5forge.UnknownClassWarning, match="test.point"):
        assert isinstance(h5forge.load(path)["p"], h5forge.UnknownObject)


def test_register_class_and_alias_on_a_copy_stay_there(tmp_path):
    mine = h5forge.store.default_registry.copy()
    mine.register_class(st.Trial, name="lab.Trial")
    path = tmp_path / "t.h5"
    h5forge.dump(st.Trial(1, "a"), path, registry=mine)
    with h5py.File(path, "r") as f:
        assert f.attrs["class"] == "lab.Trial"
    assert h5forge.load(path, registry=mine) == st.Trial(1, "a")
    h5forge.dump(st.Trial(1, "a"), path, overwrite=True)
    with h5py.File(path, "r") as f:
        assert f.attrs["class"] == "tests.store.sample_types.Trial"


def test_unregister_brings_back_what_was_overridden():
    import fractions

    mine = h5forge.store.builtin_registry()
    builtin = mine.codec_for_type(fractions.Fraction)

    class Override(h5forge.Codec):
        types = (fractions.Fraction,)
        names = ("fractions.Fraction",)

    codec = mine.register(Override)
    assert mine.codec_for_type(fractions.Fraction) is codec
    assert mine.codec_for_name("fractions.Fraction") is codec
    mine.unregister(codec)
    assert mine.codec_for_type(fractions.Fraction) is builtin
    assert mine.codec_for_name("fractions.Fraction") is builtin
    with pytest.raises(CodecError, match="not registered"):
        mine.unregister(codec)
    mine.unregister(type(builtin))  # a codec class removes its instances
    assert type(mine.codec_for_type(fractions.Fraction)).__name__ == "ObjectCodec"


def test_misuse_is_refused():
    with pytest.raises(CodecError, match="Codec subclass"):
        h5forge.Registry([int])
    with pytest.raises(CodecError, match="registry="):
        h5forge.dump(1, "never-written.h5", registry={})
    with pytest.raises(CodecError, match="needs a class"):
        h5forge.Registry().alias("a.B", "not a class")


def test_builtins_come_from_one_ordered_list():
    import neo
    import quantities as pq

    from h5forge.store.codecs import BUILTIN_CODECS

    default = h5forge.store.default_registry
    assert [type(c) for c in default.codecs[:len(BUILTIN_CODECS)]] == list(BUILTIN_CODECS)
    mine = h5forge.store.builtin_registry()
    assert [type(c) for c in mine.codecs] == list(BUILTIN_CODECS)
    # the order decides: quantities after numpy (a Quantity is an ndarray subclass), neo after
    # units (a neo signal is a Quantity)
    assert type(mine.codec_for_type(pq.Quantity)).__name__ == "QuantitiesCodec"
    assert type(mine.codec_for_type(neo.AnalogSignal)).__name__ == "NeoCodec"
    assert h5forge.Registry().codec_for_type(dict) is None  # an empty registry knows nothing


def test_registry_reaches_in_place_updates(tmp_path):
    mine = h5forge.store.default_registry.copy()
    mine.register(PointCodec)
    path = tmp_path / "u.h5"
    h5forge.dump({"a": 1}, path)
    h5forge.dump(st.Point(3, 4), path, "p", registry=mine)  # a member added in place
    with h5py.File(path, "r") as f:
        assert f["p"].attrs["class"] == "test.point" and list(f.attrs["keys"]) == ["a", "p"]
    assert h5forge.load(path, registry=mine) == {"a": 1, "p": st.Point(3, 4)}


def _install_distribution(root: Path, entry_points: str, module: str) -> None:
    dist = root / "h5forge_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: h5forge-test-plugin\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(entry_points)
    (root / "h5forge_test_plugin.py").write_text(module)


def test_codecs_from_entry_points(tmp_path, monkeypatch):
    _install_distribution(tmp_path, "[h5forge.codecs]\n"
                          "arrays = h5forge_test_plugin:ArrayCodec\n"
                          "broken = h5forge_test_plugin:Missing\n",
                          (EXAMPLES / "custom_codec.py").read_text().replace(
                              "h5forge.register_codec(ArrayArrayCodec)",
                              "ArrayCodec = ArrayArrayCodec"))
    monkeypatch.syspath_prepend(str(tmp_path))
    mine = h5forge.Registry(builtins=True, entry_points=True)
    with pytest.warns(RuntimeWarning, match="'broken'.*Missing"):
        codec = mine.codec_for_type(array.array)  # entry points load on the first lookup
    assert type(codec).__name__ == "ArrayArrayCodec" and codec in mine.codecs
    path = tmp_path / "e.h5"
    h5forge.dump(array.array("i", [4, 5]), path, registry=mine)
    assert h5forge.load(path, registry=mine) == array.array("i", [4, 5])
    assert mine.copy().codec_for_name("array.array") is codec
    assert h5forge.Registry(entry_points=False).codec_for_type(array.array) is None

    # a codec registered before the first lookup still wins over the entry point's: the order
    # is built-ins, entry points, then registrations, whenever they happened
    class Mine(type(codec)):
        pass

    late = h5forge.Registry(builtins=True, entry_points=True)
    own = late.register(Mine)
    with pytest.warns(RuntimeWarning, match="'broken'"):
        assert late.codec_for_type(array.array) is own
    names = [type(c).__name__ for c in late.codecs]
    assert names.index("AtomCodec") < names.index("ArrayArrayCodec") < names.index("Mine")
