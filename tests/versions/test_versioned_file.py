"""``h5forge.versions.VersionedFile``: staging and committing versions, reading any version,
branches, chunk reuse, data kinds, deleting versions, the plain root mirror, the store and the
CLI. Every test writes a real (small) HDF5 file under ``tmp_path``.

Behaviours follow the contract in the versions API notes and versioned-hdf5's test-suite.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.errors import H5ForgeError, NodeExistsError, TargetError, VersionError
from h5forge.versions import FIRST_VERSION, TIMESTAMP_FORMAT, VersionedFile
from h5forge.versions.views import VERSION_ATTRS

DATA_GROUP = "_h5forge_versions"
UTC = dt.timezone.utc
T1 = dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
T2 = dt.datetime(2024, 1, 2, 12, 0, 0, tzinfo=UTC)
T3 = dt.datetime(2024, 1, 3, 12, 0, 0, tzinfo=UTC)


class Boom(Exception):
    """Raised inside a stage block on purpose."""


# -- helpers ------------------------------------------------------------------------------------
@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "data.h5")


def norm(value: Any) -> np.ndarray:
    """An array with variable-length strings decoded (h5py reads them as bytes)."""
    if type(value) is bytes:  # a 0-d vlen string dataset reads as bytes, as in h5py
        value = np.array(value.decode(), dtype=object)
    arr = np.asarray(value)
    if arr.dtype.kind == "O":
        flat = [v.decode() if isinstance(v, bytes) else v for v in arr.ravel()]
        out = np.empty(arr.shape, dtype=object)
        out.ravel()[:] = flat
        if arr.ndim == 0:
            out = np.array(flat[0], dtype=object)
        return out
    return arr


def assert_values(actual: Any, expected: Any) -> None:
    a, e = norm(actual), norm(expected)
    assert a.shape == e.shape
    np.testing.assert_array_equal(a, e)


def attrs_of(obj: Any) -> dict[str, Any]:
    return {k: obj.attrs[k] for k in obj.attrs}


def assert_attrs(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert sorted(actual) == sorted(expected)
    for key in expected:
        assert_values(actual[key], expected[key])


def plain_tree(target: str | h5py.Group) -> dict[str, Any]:
    """``{path: ("group", attrs) | ("dataset", array, attrs)}`` of a plain HDF5 file, leaving
    out the versions bookkeeping group."""
    out: dict[str, Any] = {}

    def walk(group: h5py.Group, prefix: str) -> None:
        for key in group:
            if not prefix and key == DATA_GROUP:
                continue
            obj = group[key]
            where = f"{prefix}/{key}"
            if isinstance(obj, h5py.Dataset):
                out[where] = ("dataset", obj[()], attrs_of(obj))
            else:
                out[where] = ("group", attrs_of(obj))
                walk(obj, where)

    if isinstance(target, h5py.Group):
        out["/"] = ("group", attrs_of(target))
        walk(target, "")
        return out
    with h5py.File(target, "r") as f:
        out["/"] = ("group", attrs_of(f))
        walk(f, "")
    return out


def version_tree(view: Any) -> dict[str, Any]:
    """The same shape of dict as :func:`plain_tree`, read through a version view."""
    root_attrs = dict(view.attrs)
    if getattr(view, "name", None) == "/":  # the version's own record, not a stored attribute
        for key in VERSION_ATTRS:
            root_attrs.pop(key, None)
    out: dict[str, Any] = {"/": ("group", root_attrs)}

    def walk(group: Any, prefix: str) -> None:
        for key, obj in group.items():
            where = f"{prefix}/{key}"
            if hasattr(obj, "shape"):
                out[where] = ("dataset", obj[()], dict(obj.attrs))
            else:
                out[where] = ("group", dict(obj.attrs))
                walk(obj, where)

    walk(view, "")
    return out


def assert_same_tree(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert sorted(actual) == sorted(expected)
    for key, exp in expected.items():
        act = actual[key]
        assert act[0] == exp[0], key
        if exp[0] == "dataset":
            assert_values(act[1], exp[1])
            assert_attrs(act[2], exp[2])
        else:
            assert_attrs(act[1], exp[1])


def check_mirror(path: str, tmp_path: Path) -> str:
    """The file's root (plain h5py) equals its current version, read from the pools (export)
    and through the version view; ``/_h5forge_versions`` exists. Returns the current name."""
    with h5py.File(path, "r") as f:
        assert DATA_GROUP in f
    mirror = plain_tree(path)
    with VersionedFile(path, "r") as vf:
        current = vf.current_version
        if current == FIRST_VERSION:
            assert sorted(mirror) == ["/"]
            return current
        out = str(tmp_path / f"export-{current}-{len(os.listdir(tmp_path))}.h5")
        vf.export(current, out)
        via_view = version_tree(vf[current])
    assert_same_tree(mirror, plain_tree(out))
    assert_same_tree(mirror, via_view)
    return current


def pool_slots(path: str) -> int:
    """Chunks stored in all pools (slots ever allocated)."""
    with h5py.File(path, "r") as f:
        pools = f[f"{DATA_GROUP}/pools"]
        return sum(pools[k]["hashes"].shape[0] for k in pools)


def free_slots(path: str) -> int:
    with h5py.File(path, "r") as f:
        pools = f[f"{DATA_GROUP}/pools"]
        return sum(pools[k]["free"].shape[0] for k in pools)


def used_slots(path: str) -> int:
    return pool_slots(path) - free_slots(path)


def sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def commit(path: str, name: str, fn, **kwargs: Any) -> None:
    """Open ``path``, commit version ``name`` by calling ``fn(g)`` in the stage, close."""
    with VersionedFile(path, "a") as vf:
        with vf.stage_version(name, **kwargs) as g:
            fn(g)


def simple_file(path: str) -> None:
    """v1: x = arange(100) (chunks 10, resizable); v2: x[3] = -1; current v2."""
    with VersionedFile(path, "w") as vf:
        with vf.stage_version("v1", timestamp=T1) as g:
            g.create_dataset("x", data=np.arange(100), chunks=(10,), maxshape=(None,))
        with vf.stage_version("v2", timestamp=T2) as g:
            g["x"][3] = -1


# -- fresh files, modes, lifecycle --------------------------------------------------------------
class TestFreshFileAndModes:
    def test_fresh_file(self, path):
        with VersionedFile(path, "w") as vf:
            assert vf.current_version == FIRST_VERSION == "__first_version__"
            assert vf.versions == []
            assert len(vf) == 0
            assert list(vf) == []
            assert FIRST_VERSION not in vf
        with h5py.File(path, "r") as f:
            assert DATA_GROUP in f
            assert [k for k in f if k != DATA_GROUP] == []

    def test_fresh_file_reopens_read_only(self, path):
        VersionedFile(path, "w").close()
        with VersionedFile(path, "r") as vf:
            assert vf.current_version == FIRST_VERSION
            assert vf.versions == []
            with pytest.raises(IndexError):
                vf[0]

    def test_mode_a_creates_then_appends(self, path):
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("v1") as g:
                g["x"] = [1, 2, 3]
        with VersionedFile(path, "a") as vf:
            assert vf.versions == ["v1"]
            with vf.stage_version("v2") as g:
                g["x"][0] = 9
        with VersionedFile(path, "r+") as vf:
            assert vf.versions == ["v1", "v2"]
            assert_values(vf["v1"]["x"][:], [1, 2, 3])
            assert_values(vf["v2"]["x"][:], [9, 2, 3])

    def test_mode_w_truncates(self, path):
        simple_file(path)
        with VersionedFile(path, "w") as vf:
            assert vf.versions == []
            assert vf.current_version == FIRST_VERSION
        with h5py.File(path, "r") as f:
            assert "x" not in f

    def test_missing_file_in_read_modes(self, tmp_path):
        for mode in ("r", "r+"):
            with pytest.raises(TargetError):
                VersionedFile(str(tmp_path / "missing.h5"), mode)
        assert not (tmp_path / "missing.h5").exists()

    def test_bad_mode(self, path):
        with pytest.raises(VersionError):
            VersionedFile(path, "x")
        assert not os.path.exists(path)

    def test_plain_file_without_versions_read_only(self, path):
        with h5py.File(path, "w") as f:
            f["data"] = [1, 2]
        with pytest.raises(VersionError):
            VersionedFile(path, "r")

    def test_plain_file_data_not_lost(self, path):
        """Versioning a file that already holds plain data must not silently delete that data
        on the first commit (refusing the file is fine, so is keeping the data)."""
        with h5py.File(path, "w") as f:
            f["data"] = [1, 2]
            f.attrs["who"] = "me"
        try:
            vf = VersionedFile(path, "a")
        except VersionError:
            pass
        else:
            with vf:
                assert vf.versions == []
                assert vf.current_version == FIRST_VERSION
                with vf.stage_version("v1") as g:
                    g["x"] = [1]
        with h5py.File(path, "r") as f:
            assert "data" in f, "the user's plain dataset was deleted by the first commit"
            assert_values(f["data"][()], [1, 2])

    def test_default_mode_is_read_only(self, path):
        simple_file(path)
        with VersionedFile(path) as vf:
            assert vf.versions == ["v1", "v2"]
            with pytest.raises(VersionError):
                with vf.stage_version("v3"):
                    pass

    def test_not_a_file(self):
        with pytest.raises(TargetError):
            VersionedFile(42)  # type: ignore[arg-type]

    def test_read_only_refuses_changes(self, path):
        simple_file(path)
        before = sha(path)
        with VersionedFile(path, "r") as vf:
            with pytest.raises(VersionError):
                with vf.stage_version("v3"):
                    pass
            with pytest.raises(VersionError):
                vf.current_version = "v1"
            with pytest.raises(VersionError):
                vf.delete_versions(["v1"])
            assert vf.current_version == "v2"
            assert vf.versions == ["v1", "v2"]
        assert sha(path) == before

    def test_context_manager_closes(self, path):
        with VersionedFile(path, "w") as vf:
            f = vf.file
            assert f.id.valid
        assert not f.id.valid
        vf.close()  # closing twice is harmless
        assert not os.path.exists(path + ".h5forge-journal")

    def test_close_without_context_manager(self, path):
        vf = VersionedFile(path, "w")
        with vf.stage_version("v1") as g:
            g["x"] = np.arange(4)
        vf.close()
        with VersionedFile(path, "r") as vf:
            assert vf.versions == ["v1"]

    def test_open_h5py_file(self, path):
        with h5py.File(path, "w") as f:
            vf = VersionedFile(f)
            with vf.stage_version("v1") as g:
                g["x"] = np.arange(5)
            assert vf.current_version == "v1"
            assert_values(f["x"][()], np.arange(5))
        with VersionedFile(path, "r") as vf:
            assert_values(vf["v1"]["x"][:], np.arange(5))

    def test_open_h5py_file_read_only(self, path):
        simple_file(path)
        with h5py.File(path, "r") as f:
            vf = VersionedFile(f)
            assert vf.versions == ["v1", "v2"]
            with pytest.raises(VersionError):
                with vf.stage_version("v3"):
                    pass

    def test_version_error_is_h5forge_error(self):
        assert issubclass(VersionError, H5ForgeError)

    def test_public_names(self):
        assert h5forge.VersionedFile is VersionedFile


# -- staging and committing ---------------------------------------------------------------------
class TestStageCommit:
    def test_create_dataset_options(self, path, tmp_path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                d = g.create_dataset("a", shape=(7, 5), dtype="i2", chunks=(3, 2),
                                     maxshape=(None, 10), fillvalue=-3)
                assert d.shape == (7, 5)
                assert d.dtype == np.dtype("i2")
                assert d.chunks == (3, 2)
                assert d.maxshape == (None, 10)
                assert d.fillvalue == -3
                assert d.ndim == 2 and d.size == 35 and len(d) == 7
                assert_values(d[()], np.full((7, 5), -3, dtype="i2"))
                g.create_dataset("b", data=np.arange(12.0).reshape(3, 4), chunks=(2, 2))
                g.create_dataset("c", data=np.arange(1000, dtype="i4"), chunks=(100,),
                                 compression="gzip", compression_opts=4)
                g.create_dataset("d", shape=10, dtype="f8")  # int shape, default fill 0
            assert vf.versions == ["v1"]
            assert vf.current_version == "v1"
            for view in (vf["v1"], vf[0]):
                a = view["a"]
                assert a.shape == (7, 5) and a.dtype == np.dtype("i2")
                assert a.chunks == (3, 2) and a.maxshape == (None, 10) and a.fillvalue == -3
                assert_values(a[()], np.full((7, 5), -3, dtype="i2"))
                assert_values(view["b"][:], np.arange(12.0).reshape(3, 4))
                assert view["b"].chunks == (2, 2)
                assert_values(view["c"][:], np.arange(1000, dtype="i4"))
                assert view["d"].shape == (10,) and view["d"].fillvalue == 0
        with h5py.File(path, "r") as f:
            assert f["c"].compression == "gzip" and f["c"].compression_opts == 4
            pools = f[f"{DATA_GROUP}/pools"]
            compressed = [pools[k]["data"] for k in pools
                          if pools[k]["data"].compression == "gzip"]
            assert len(compressed) == 1
            assert compressed[0].compression_opts == 4
            assert compressed[0].dtype == np.dtype("i4")
            assert f["a"].fillvalue == -3
        check_mirror(path, tmp_path)

    def test_create_dataset_defaults_chunked(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                d = g.create_dataset("x", data=np.arange(50))
                assert d.chunks is not None and len(d.chunks) == 1
                assert d.maxshape == (None,)  # resizable unless maxshape says otherwise
                assert g.create_dataset("f", shape=(3,)).dtype == np.float64  # as h5py
            assert vf["v1"]["x"].chunks == d.chunks

    def test_create_dataset_bad_arguments(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                with pytest.raises(VersionError):
                    g.create_dataset("a")  # neither shape nor data
                with pytest.raises(VersionError):
                    g.create_dataset("b", shape=(5,), maxshape=(3,))
                with pytest.raises(VersionError):
                    g.create_dataset("c", shape=(5,), chunks=(2, 2))
                with pytest.raises(VersionError):
                    g.create_dataset("d", data=np.arange(4), shape=(5,))
                g["e"] = [1]
                with pytest.raises(VersionError):
                    g.create_dataset("e", data=[2])  # exists
                assert list(g) == ["e"]

    def test_list_and_scalar_assignment(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g["ints"] = [1, 2, 3]
                g["floats"] = [[1.5, 2.5], [3.5, 4.5]]
                g["scalar"] = 7
            assert_values(vf["v1"]["ints"][:], [1, 2, 3])
            assert_values(vf["v1"]["floats"][:], [[1.5, 2.5], [3.5, 4.5]])
            assert vf["v1"]["scalar"].shape == ()
            assert vf["v1"]["scalar"][()] == 7

    def test_groups_and_intermediate_groups(self, path, tmp_path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                sub = g.create_group("g1")
                sub.create_group("inner")
                g["a/b/c"] = np.arange(6)
                assert "a" in g and "a/b" in g and "a/b/c" in g
                assert "a/b/missing" not in g
                assert sorted(g.keys()) == ["a", "g1"]
                assert sorted(k for k, _ in g["a"].items()) == ["b"]
                assert_values(g["a"]["b"]["c"][:], np.arange(6))
                g.create_group("p/q/r")
                assert "p/q/r" in g
            v1 = vf["v1"]
            assert sorted(v1.keys()) == ["a", "g1", "p"]
            assert sorted(v1["g1"].keys()) == ["inner"]
            assert_values(v1["a/b/c"][:], np.arange(6))
            assert_values(v1["a"]["b"]["c"][:], np.arange(6))
            assert "a/b/c" in v1 and "a/b/nope" not in v1
            assert len(v1) == 3
            with pytest.raises(KeyError):
                v1["nope"]
            with pytest.raises(KeyError):
                v1["a/b/c/deeper"]
        with h5py.File(path, "r") as f:
            assert isinstance(f["a/b"], h5py.Group)
            assert isinstance(f["p/q/r"], h5py.Group)
            assert_values(f["a/b/c"][()], np.arange(6))
        check_mirror(path, tmp_path)

    def test_path_through_dataset_refused(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g["x"] = [1, 2]
                with pytest.raises(VersionError):
                    g["x/y"] = [3]
                with pytest.raises(KeyError):
                    g["missing/y"]

    def test_delete_dataset(self, path, tmp_path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("v3") as g:
                g["y"] = [1.0]
                del g["x"]
                assert "x" not in g
                with pytest.raises(KeyError):
                    del g["x"]
            assert "x" not in vf["v3"]
            assert_values(vf["v2"]["x"][:5], [0, 1, 2, -1, 4])
        with h5py.File(path, "r") as f:
            assert "x" not in f and "y" in f
        check_mirror(path, tmp_path)

    def test_delete_and_recreate_in_one_stage(self, path, tmp_path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("v3") as g:
                del g["x"]
                g.create_dataset("x", data=np.arange(5, dtype="f4"), chunks=(2,))
            assert vf["v3"]["x"].dtype == np.dtype("f4")
            assert_values(vf["v3"]["x"][:], np.arange(5, dtype="f4"))
            assert vf["v1"]["x"].dtype == np.dtype(int)
        with h5py.File(path, "r") as f:
            assert f["x"].dtype == np.dtype("f4") and f["x"].chunks == (2,)
        check_mirror(path, tmp_path)

    def test_replace_group_by_dataset_and_back(self, path, tmp_path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g["thing/inner"] = [1, 2]
                g["other"] = [3]
            with vf.stage_version("v2") as g:
                del g["thing"]
                g["thing"] = [4, 5, 6]
                del g["other"]
                g.create_group("other").attrs["k"] = "v"
            check_mirror(path, tmp_path)
            assert_values(vf["v1"]["thing/inner"][:], [1, 2])
            assert_values(vf["v2"]["thing"][:], [4, 5, 6])
            assert dict(vf["v2"]["other"].attrs) == {"k": "v"}

    def test_move(self, path, tmp_path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("v3") as g:
                g["grp/y"] = [1, 2]
                g["grp"].attrs["a"] = 1
            with vf.stage_version("v4") as g:
                g.move("x", "moved/x")
                g.move("grp", "grp2")
            assert sorted(vf["v4"].keys()) == ["grp2", "moved"]
            assert_values(vf["v4"]["moved/x"][:5], [0, 1, 2, -1, 4])
            assert_values(vf["v4"]["grp2/y"][:], [1, 2])
            assert vf["v4"]["grp2"].attrs["a"] == 1
            assert_values(vf["v3"]["x"][:5], [0, 1, 2, -1, 4])
        # the root mirror shows the moved dataset and group too
        with h5py.File(path, "r") as f:
            assert sorted(k for k in f if k != DATA_GROUP) == ["grp2", "moved"]
            assert "x" in f["moved"], "moved dataset missing from the root mirror"
            assert "y" in f["grp2"], "moved group missing from the root mirror"
        check_mirror(path, tmp_path)

    def test_attrs_per_version(self, path, tmp_path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.attrs["title"] = "first"
                g["grp/x"] = np.arange(3)
                g["grp"].attrs["n"] = 1
                g["grp/x"].attrs["units"] = "m"
                g["grp/x"].attrs["scale"] = np.array([1.0, 2.0])
            check_mirror(path, tmp_path)
            with vf.stage_version("v2") as g:
                assert g.attrs["title"] == "first"  # the stage starts as a copy
                assert g["grp/x"].attrs["units"] == "m"
                g.attrs["title"] = "second"
                g.attrs["extra"] = 2
                g["grp"].attrs["n"] = 2
                g["grp/x"].attrs["units"] = "km"
                del g["grp/x"].attrs["scale"]
            check_mirror(path, tmp_path)
            with vf.stage_version("v3") as g:
                del g.attrs["extra"]
                g["grp/x"].attrs.create("made", [1, 2], dtype="i2")
                g["grp/x"].attrs.modify("units", "cm")
            check_mirror(path, tmp_path)
            stored = [{k: v for k, v in vf[name].attrs.items() if k not in VERSION_ATTRS}
                      for name in ("v1", "v2", "v3")]
            assert stored == [{"title": "first"}, {"title": "second", "extra": 2},
                              {"title": "second"}]
            assert vf["v3"].attrs["prev_version"] == "v2"
            assert vf["v1"]["grp"].attrs["n"] == 1
            assert vf["v2"]["grp"].attrs["n"] == 2
            assert_attrs(dict(vf["v1"]["grp/x"].attrs), {"units": "m", "scale": [1.0, 2.0]})
            assert dict(vf["v2"]["grp/x"].attrs) == {"units": "km"}
            assert_attrs(dict(vf["v3"]["grp/x"].attrs), {"units": "cm", "made": [1, 2]})
            assert vf["v3"]["grp/x"].attrs["made"].dtype == np.dtype("i2")
            # data untouched by attribute changes
            assert_values(vf["v3"]["grp/x"][:], np.arange(3))

    def test_reserved_attribute_names_refused(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g["x"] = [1]
                with pytest.raises(VersionError):
                    g["x"].attrs["h5forge_dataset"] = "{}"
                with pytest.raises(VersionError):
                    g["x"].attrs["h5forge_fillvalue"] = 0

    def test_user_attribute_names_like_internal_ones(self, path, tmp_path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g["x"] = [1]
                g["x"].attrs["map"] = "a user attribute"
                g["x"].attrs["prev_version"] = "fine below the root"
                with pytest.raises(VersionError, match="prev_version.*version's record"):
                    g.attrs["prev_version"] = "mine"
            assert vf["v1"]["x"].attrs["map"] == "a user attribute"
            assert vf["v1"]["x"].attrs["prev_version"] == "fine below the root"
            assert vf["v1"].attrs["prev_version"] == FIRST_VERSION
        check_mirror(path, tmp_path)

    def test_stage_starts_as_copy_of_prev(self, path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("v3") as g:
                assert sorted(g.keys()) == ["x"]
                expected = np.arange(100)
                expected[3] = -1
                assert_values(g["x"][:], expected)
                assert g["x"].shape == (100,) and g["x"].chunks == (10,)
                assert g["x"].maxshape == (None,)
            with vf.stage_version("v4", prev_version="v1") as g:
                assert_values(g["x"][:], np.arange(100))
                g["x"][0] = 100
            with vf.stage_version("v5", prev_version="v4") as g:
                assert g["x"][0] == 100
                assert g["x"][3] == 3

    def test_unchanged_commit(self, path, tmp_path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            before = pool_slots(path)
            with vf.stage_version("v3"):
                pass
            assert vf.versions == ["v1", "v2", "v3"]
            assert vf.version_info("v3")["changed"] == []
            assert_values(vf["v3"]["x"][:], vf["v2"]["x"][:])
            assert vf.diff("v2", "v3")["changed"] == {}
        assert pool_slots(path) == before
        check_mirror(path, tmp_path)

    def test_read_back_inside_stage(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                d = g.create_dataset("x", shape=(20,), dtype="i4", chunks=(6,))
                d[4:9] = 7
                assert_values(d[:10], [0, 0, 0, 0, 7, 7, 7, 7, 7, 0])
                assert_values(np.asarray(d), d[()])
                out = np.zeros(3, dtype="i4")
                d.read_direct(out, np.s_[5:8])
                assert_values(out, [7, 7, 7])

    def test_exception_commits_nothing(self, path, tmp_path):
        simple_file(path)
        mirror = plain_tree(path)
        slots = pool_slots(path)
        with VersionedFile(path, "a") as vf:
            with pytest.raises(Boom):
                with vf.stage_version("v3") as g:
                    g["x"][:] = 5
                    g["new"] = np.arange(1000)
                    g.attrs["a"] = 1
                    raise Boom
            assert vf.versions == ["v1", "v2"]
            assert vf.current_version == "v2"
            assert "v3" not in vf
            assert_same_tree(plain_tree(vf.file), mirror)
            # the name can be reused, and the next stage starts from v2 again
            with vf.stage_version("v3") as g:
                assert "new" not in g
                assert g["x"][3] == -1
                g["x"][0] = 42
            assert vf.versions == ["v1", "v2", "v3"]
            assert vf["v3"]["x"][0] == 42
        assert pool_slots(path) == slots + 1
        assert not os.path.exists(path + ".h5forge-journal")
        check_mirror(path, tmp_path)

    def test_exception_in_first_stage(self, path):
        with VersionedFile(path, "w") as vf:
            with pytest.raises(Boom):
                with vf.stage_version("v1") as g:
                    g["x"] = [1, 2]
                    raise Boom
            assert vf.versions == []
            assert vf.current_version == FIRST_VERSION
        with h5py.File(path, "r") as f:
            assert "x" not in f
        assert pool_slots(path) == 0

    @pytest.mark.parametrize("opened", ["path", "h5py.File"])
    def test_failure_during_commit_commits_nothing(self, path, tmp_path, monkeypatch, opened):
        """An error while the commit writes (here: storing a chunk) leaves no trace of the
        version, whether the file was opened by path (journaled) or as an h5py.File."""
        from h5forge.versions.pool import ChunkPool

        simple_file(path)
        mirror = plain_tree(path)
        real_store = ChunkPool.store

        def failing_store(self, chunk):
            raise OSError("disk full (simulated)")

        real_store_many = ChunkPool.store_many

        def run(vf):
            monkeypatch.setattr(ChunkPool, "store", failing_store)
            monkeypatch.setattr(ChunkPool, "store_many", failing_store)
            with pytest.raises(OSError, match="simulated"):
                with vf.stage_version("v3") as g:
                    g["x"][0] = 1000
                    g["y"] = np.arange(1, 5)
            monkeypatch.setattr(ChunkPool, "store", real_store)
            monkeypatch.setattr(ChunkPool, "store_many", real_store_many)
            assert vf.versions == ["v1", "v2"]
            assert vf.current_version == "v2"
            assert "v3" not in vf
            with vf.stage_version("v3") as g:  # the name is free again
                g["x"][0] = 1001
            assert vf["v3"]["x"][0] == 1001

        if opened == "path":
            with VersionedFile(path, "a") as vf:
                run(vf)
        else:
            with h5py.File(path, "r+") as f:
                run(VersionedFile(f))
        with VersionedFile(path, "r") as vf:
            assert vf.versions == ["v1", "v2", "v3"]
            assert "y" not in vf["v3"]
        assert "/y" not in plain_tree(path) and "/x" in mirror
        check_mirror(path, tmp_path)

    def test_keyboard_interrupt_commits_nothing(self, path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            with pytest.raises(KeyboardInterrupt):
                with vf.stage_version("v3") as g:
                    g["x"][0] = 1
                    raise KeyboardInterrupt
            assert vf.versions == ["v1", "v2"]

    def test_duplicate_name_refused(self, path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            with pytest.raises(VersionError):
                with vf.stage_version("v1") as g:
                    g["x"][0] = 99
            assert vf.versions == ["v1", "v2"]
            assert vf["v1"]["x"][0] == 0

    @pytest.mark.parametrize("name", ["", "a/b", "/v", "__first_version__", "__x", ".", "..",
                                      None, 3, b"v1"])
    def test_bad_names_refused(self, path, name):
        with VersionedFile(path, "w") as vf:
            with pytest.raises(VersionError):
                with vf.stage_version(name):
                    pass
            assert vf.versions == []

    def test_unusual_but_valid_names(self, path):
        names = ["version 1", "v.2", "ünïcode", "_private", "2024-01-01T00:00"]
        with VersionedFile(path, "w") as vf:
            for i, name in enumerate(names):
                with vf.stage_version(name) as g:
                    g[f"d{i}"] = [i]
            assert vf.versions == names
        with VersionedFile(path, "r") as vf:
            assert vf.versions == names
            assert vf["ünïcode"]["d2"][0] == 2

    def test_prev_version_first_version_starts_empty(self, path, tmp_path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("fresh", prev_version=FIRST_VERSION) as g:
                assert list(g) == []
                g["only"] = [1]
            assert vf.version_info("fresh")["prev_version"] == FIRST_VERSION
            assert sorted(vf["fresh"].keys()) == ["only"]
            with pytest.raises(IndexError):
                vf[-1]
        assert check_mirror(path, tmp_path) == "fresh"

    def test_unknown_prev_version(self, path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            with pytest.raises(KeyError):
                with vf.stage_version("v3", prev_version="nope"):
                    pass
            assert vf.versions == ["v1", "v2"]

    def test_nested_stage_refused(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g["x"] = [1]
                with pytest.raises(VersionError):
                    with vf.stage_version("v2"):
                        pass
            assert vf.versions == ["v1"]
            with vf.stage_version("v2") as g:  # the flag is cleared after the block
                g["x"][0] = 2
            assert vf.versions == ["v1", "v2"]

    def test_unsupported_create_dataset_option(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                with pytest.raises(VersionError, match="external"):
                    g.create_dataset("x", data=[1, 2], external=[("raw.bin", 0, 16)])
                with pytest.raises(VersionError):
                    g.create_dataset("y", data=[1, 2], chunks=False)

    def test_require(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                a = g.require_group("a")
                assert g.require_group("a") is a
                d = g.require_dataset("a/d", shape=(3,), dtype="i4")
                assert g.require_dataset("a/d", shape=(3,), dtype="i4") is d
                with pytest.raises(VersionError):
                    g.require_group("a/d")
            assert vf["v1"]["a/d"].shape == (3,)

    def test_many_versions_reopen(self, path, tmp_path):
        expected = np.zeros(30, dtype="i8")
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v0") as g:
                g.create_dataset("x", data=expected, chunks=(4,))
        history = [expected.copy()]
        for i in range(1, 40):  # more than the delta-chain limit
            expected[i % 30] += i
            history.append(expected.copy())
            commit(path, f"v{i}", lambda g, i=i: g["x"].__setitem__(
                i % 30, g["x"][i % 30] + i))
        with VersionedFile(path, "r") as vf:
            assert vf.versions == [f"v{i}" for i in range(40)]
            for i, exp in enumerate(history):
                assert_values(vf[f"v{i}"]["x"][:], exp)
            assert vf.version_info("v5")["prev_version"] == "v4"
            assert vf.version_info("v5")["changed"] == ["/x"]
        check_mirror(path, tmp_path)


# -- resizing -----------------------------------------------------------------------------------
class TestResize:
    def test_shrink_then_grow_in_one_stage(self, path, tmp_path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("x", data=np.arange(1, 101), chunks=(10,), maxshape=(None,),
                                 fillvalue=-7)
            with vf.stage_version("v2") as g:
                g["x"].resize((45,))
                assert g["x"].shape == (45,)
                g["x"].resize(100)
                assert_values(g["x"][40:50], [41, 42, 43, 44, 45] + [-7] * 5)
            expected = np.concatenate([np.arange(1, 46), np.full(55, -7)])
            exported = str(tmp_path / "v2.h5")
            vf.export("v2", exported)  # the version as stored in the pools
            with h5py.File(exported, "r") as f:
                assert_values(f["x"][()], expected)
            assert_values(vf["v1"]["x"][:], np.arange(1, 101))
            assert_values(vf["v2"]["x"][:], expected)  # the current version: the mirror
        with h5py.File(path, "r") as f:
            assert_values(f["x"][()], expected)
        check_mirror(path, tmp_path)

    def test_shrink_then_grow_across_versions(self, path, tmp_path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("x", data=np.arange(1, 101), chunks=(10,), maxshape=(None,))
            with vf.stage_version("v2") as g:
                g["x"].resize((45,))
            check_mirror(path, tmp_path)
            with vf.stage_version("v3") as g:
                g["x"].resize((120,))
                assert_values(g["x"][40:50], [41, 42, 43, 44, 45, 0, 0, 0, 0, 0])
            check_mirror(path, tmp_path)
            assert vf["v2"]["x"].shape == (45,)
            assert_values(vf["v2"]["x"][:], np.arange(1, 46))
            assert_values(vf["v3"]["x"][:], np.concatenate([np.arange(1, 46), np.zeros(75)]))
            assert_values(vf["v1"]["x"][:], np.arange(1, 101))
        with h5py.File(path, "r") as f:  # the mirror must not show the cut-off values again
            assert_values(f["x"][40:50], [41, 42, 43, 44, 45, 0, 0, 0, 0, 0])

    def test_growth_beyond_maxshape_refused(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("fixed", data=np.arange(10), chunks=(4,), maxshape=(10,))
                g.create_dataset("capped", data=np.arange(10), chunks=(4,), maxshape=(12,))
            with vf.stage_version("v2") as g:
                with pytest.raises(VersionError):
                    g["fixed"].resize(11)
                with pytest.raises(VersionError):
                    g["capped"].resize(13)
                with pytest.raises(VersionError):
                    g["capped"].resize((5, 5))  # rank change
                with pytest.raises(VersionError):
                    g["capped"].resize(-1)
                g["capped"].resize(12)
                g["fixed"].resize(5)  # shrinking is allowed
            assert vf["v2"]["capped"].shape == (12,)
            assert_values(vf["v2"]["capped"][:], list(range(10)) + [0, 0])
            assert_values(vf["v2"]["fixed"][:], [0, 1, 2, 3, 4])
            with vf.stage_version("v3") as g:
                g["fixed"].resize(10)  # growing back up to maxshape
                assert g["fixed"].maxshape == (10,)
            assert_values(vf["v3"]["fixed"][:], [0, 1, 2, 3, 4, 0, 0, 0, 0, 0])

    def test_resize_2d_with_axis(self, path, tmp_path):
        data = np.arange(1, 7 * 9 + 1).reshape(7, 9)
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("m", data=data, chunks=(3, 4), maxshape=(None, None))
            with vf.stage_version("v2") as g:
                g["m"].resize(5, axis=0)
                g["m"].resize(6, axis=1)
                g["m"].resize((8, 11))
                g["m"][7, 10] = -1
            expected = np.zeros((8, 11), dtype=data.dtype)
            expected[:5, :6] = data[:5, :6]
            expected[7, 10] = -1
            assert_values(vf["v2"]["m"][:], expected)
            assert_values(vf["v1"]["m"][:], data)
        check_mirror(path, tmp_path)

    def test_resize_to_zero_and_back(self, path, tmp_path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("x", data=np.arange(10), chunks=(3,), maxshape=(None,))
            with vf.stage_version("v2") as g:
                g["x"].resize(0)
            assert vf["v2"]["x"].shape == (0,)
            assert vf["v2"]["x"][:].shape == (0,)
            check_mirror(path, tmp_path)
            with vf.stage_version("v3") as g:
                g["x"].resize(4)
                assert_values(g["x"][:], [0, 0, 0, 0])
            assert_values(vf["v3"]["x"][:], [0, 0, 0, 0])
        check_mirror(path, tmp_path)

    def test_append_pattern(self, path, tmp_path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v0") as g:
                g.create_dataset("log", shape=(0,), dtype="f8", chunks=(4,), maxshape=(None,))
            for i in range(1, 8):
                with vf.stage_version(f"v{i}") as g:
                    d = g["log"]
                    n = d.shape[0]
                    d.resize(n + 3)
                    d[n:] = [i, i, i]
            for i in range(8):
                assert_values(vf[f"v{i}"]["log"][:], np.repeat(np.arange(1, i + 1), 3)
                              .astype("f8"))
        check_mirror(path, tmp_path)


# -- slicing ------------------------------------------------------------------------------------
SELECTIONS_1D = [
    0, 5, -1, -17, np.int64(7), slice(None), slice(3, 17), slice(None, None, 3),
    slice(2, 39, 5), slice(-10, None), slice(None, None, -1), slice(30, 4, -4), slice(5, 5),
    slice(100, 200), slice(5, None, -2), slice(-1, -40, -7), Ellipsis, (Ellipsis,), (),
]
SELECTIONS_2D = [
    (0, 0), (-1, -1), (3,), 4, -2, (slice(None), 2), (slice(1, 12, 2), slice(None, None, 3)),
    (Ellipsis, 4), (2, Ellipsis), (slice(None, None, -2), slice(3, 14)), (slice(4, 4), 1),
    Ellipsis, (), (slice(-5, None), slice(-7, -1, 2)),
]


def sel_id(sel: Any) -> str:
    return repr(sel).replace(" ", "")


class TestSlicing:
    @pytest.fixture
    def sliced(self, path):
        a1 = np.arange(40) * 10
        a2 = np.arange(13 * 17).reshape(13, 17)
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("a1", data=a1, chunks=(6,))
                g.create_dataset("a2", data=a2, chunks=(4, 5))
            with vf.stage_version("v2") as g:  # so that v1 reads from the pools
                g["other"] = [0]
        return path, a1, a2

    CASES = [("a1", sel) for sel in SELECTIONS_1D] + [("a2", sel) for sel in SELECTIONS_2D]

    @pytest.mark.parametrize("name, sel", CASES, ids=[f"{n}{sel_id(s)}" for n, s in CASES])
    def test_read(self, sliced, name, sel):
        path, a1, a2 = sliced
        data = {"a1": a1, "a2": a2}[name]
        with VersionedFile(path, "r") as vf:
            assert_values(vf["v1"][name][sel], data[sel])
            assert_values(vf["v2"][name][sel], data[sel])  # the current version
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("v3") as g:
                assert_values(g[name][sel], data[sel])

    @pytest.mark.parametrize("name, sel", CASES, ids=[f"{n}{sel_id(s)}" for n, s in CASES])
    def test_write(self, sliced, name, sel, tmp_path):
        path, a1, a2 = sliced
        data = {"a1": a1, "a2": a2}[name]
        expected = data.copy()
        value = -np.arange(np.asarray(expected[sel]).size).reshape(np.shape(expected[sel])) - 1
        expected[sel] = value
        commit(path, "v3", lambda g: g[name].__setitem__(sel, value))
        with VersionedFile(path, "r") as vf:
            assert_values(vf["v3"][name][:], expected)
            assert_values(vf["v1"][name][:], data)
        check_mirror(path, tmp_path)

    def test_broadcast_write(self, sliced, tmp_path):
        path, _, a2 = sliced
        expected = a2.copy()
        expected[2:9, 3:11] = 5
        expected[:, 0] = np.arange(13) * -1
        expected[12] = 99

        def change(g):
            g["a2"][2:9, 3:11] = 5
            g["a2"][:, 0] = np.arange(13) * -1
            g["a2"][-1] = 99

        commit(path, "v3", change)
        with VersionedFile(path, "r") as vf:
            assert_values(vf["v3"]["a2"][:], expected)
        check_mirror(path, tmp_path)

    def test_fancy_reads(self, sliced):
        path, a1, a2 = sliced
        mask = a1 % 3 == 0
        with VersionedFile(path, "r") as vf:
            for version in ("v1", "v2"):
                assert_values(vf[version]["a1"][[1, 5, 7]], a1[[1, 5, 7]])
                assert_values(vf[version]["a1"][mask], a1[mask])
                assert_values(vf[version]["a2"][2:5, [0, 3, 16]], a2[2:5, [0, 3, 16]])
                assert_values(np.asarray(vf[version]["a2"]), a2)

    def test_fancy_writes(self, sliced, tmp_path):
        path, a1, a2 = sliced
        before = pool_slots(path)
        expected1, expected2 = a1.copy(), a2.copy()
        expected1[[1, 7, 30]] = -5
        expected1[a1 % 100 == 0] = -6
        expected2[3, [0, 16]] = -7

        def change(g):
            g["a1"][[1, 7, 30]] = -5
            g["a1"][a1 % 100 == 0] = -6
            g["a2"][3, [0, 16]] = -7

        commit(path, "v3", change)
        with VersionedFile(path, "r") as vf:
            assert_values(vf["v3"]["a1"][:], expected1)
            assert_values(vf["v3"]["a2"][:], expected2)
            assert_values(vf["v1"]["a1"][:], a1)
            changed = vf.diff("v1", "v3")["changed"]
            # only the chunks holding the written elements changed
            assert changed["/a2"] == [(slice(0, 4), slice(0, 5)), (slice(0, 4), slice(15, 17))]
            assert len(changed["/a1"]) == len({i // 6 for i in [1, 7, 30, 0, 10, 20, 30]})
        assert pool_slots(path) == before + len(changed["/a1"]) + 2
        check_mirror(path, tmp_path)

    def test_out_of_range(self, sliced):
        path, _, _ = sliced
        with VersionedFile(path, "r") as vf:
            for version in ("v1", "v2"):
                with pytest.raises(IndexError):
                    vf[version]["a1"][40]
                with pytest.raises(IndexError):
                    vf[version]["a1"][-41]
                with pytest.raises((IndexError, ValueError)):  # h5py says ValueError
                    vf[version]["a1"][1, 2]
        with VersionedFile(path, "a") as vf:
            with pytest.raises(IndexError):
                with vf.stage_version("v3") as g:
                    g["a1"][40] = 1
            assert vf.versions == ["v1", "v2"]

    def test_zero_d(self, path, tmp_path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                d = g.create_dataset("s", data=np.float64(2.5))
                assert d.shape == () and d[()] == 2.5 and d.ndim == 0 and d.size == 1
                with pytest.raises(TypeError):
                    len(d)
                g.create_dataset("z", shape=(), dtype="i4", fillvalue=3)
            with vf.stage_version("v2") as g:
                g["s"][()] = 4.0
                g["z"][...] = 9
            assert vf["v1"]["s"][()] == 2.5 and vf["v2"]["s"][()] == 4.0
            assert vf["v1"]["s"][...] == 2.5
            assert vf["v1"]["z"][()] == 3 and vf["v2"]["z"][()] == 9
            assert vf["v1"]["z"].fillvalue == 3
            with pytest.raises(TypeError):
                len(vf["v1"]["s"])
        check_mirror(path, tmp_path)
        with h5py.File(path, "r") as f:
            assert f["s"][()] == 4.0 and f["z"][()] == 9 and f["s"].shape == ()


# -- indexing versions --------------------------------------------------------------------------
class TestIndexing:
    @pytest.fixture
    def three(self, path):
        with VersionedFile(path, "w") as vf:
            for name, stamp, value in (("v1", T1, 1), ("v2", T2, 2), ("v3", T3, 3)):
                with vf.stage_version(name, timestamp=stamp) as g:
                    if "x" not in g:
                        g.create_dataset("x", data=np.zeros(4, dtype="i4"), chunks=(2,))
                    g["x"][0] = value
        return path

    def test_by_name_and_int(self, three):
        with VersionedFile(three, "r") as vf:
            assert vf["v2"]["x"][0] == 2
            assert vf[0]["x"][0] == 3
            assert vf[0].version == "v3"
            assert vf[-1].version == "v2" and vf[-1]["x"][0] == 2
            assert vf[-2].version == "v1" and vf[-2]["x"][0] == 1
            assert vf[np.int64(-1)].version == "v2"
            with pytest.raises(IndexError):
                vf[-3]
            with pytest.raises(IndexError):
                vf[1]
            with pytest.raises(KeyError):
                vf["nope"]
            # the empty first version, by its name or by "" (versioned-hdf5's spelling)
            assert len(vf[FIRST_VERSION]) == 0 and list(vf[""]) == []
            with pytest.raises(KeyError):
                vf[1.5]

    def test_int_follows_prev_version_not_commit_order(self, three):
        with VersionedFile(three, "a") as vf:
            with vf.stage_version("b", prev_version="v1") as g:
                g["x"][0] = 10
            assert vf[0].version == "b"
            assert vf[-1].version == "v1"
            with pytest.raises(IndexError):
                vf[-2]
            vf.current_version = "v2"
            assert vf[-1].version == "v1"

    def test_by_datetime(self, three):
        with VersionedFile(three, "r") as vf:
            assert vf[T1].version == "v1"
            assert vf[T2 + dt.timedelta(hours=1)].version == "v2"
            assert vf[T3 + dt.timedelta(days=400)].version == "v3"
            assert vf[T2 - dt.timedelta(microseconds=1)]["x"][0] == 1
            with pytest.raises(KeyError):
                vf[T1 - dt.timedelta(seconds=1)]
            # another time zone: compared as the same instant
            tz = dt.timezone(dt.timedelta(hours=-5))
            assert vf[dt.datetime(2024, 1, 2, 7, 0, 1, tzinfo=tz)].version == "v2"
            assert vf[dt.datetime(2024, 1, 2, 6, 59, 59, tzinfo=tz)].version == "v1"

    def test_by_numpy_datetime64(self, three):
        with VersionedFile(three, "r") as vf:
            assert vf[np.datetime64("2024-01-02T12:00:00")].version == "v2"
            assert vf[np.datetime64("2024-01-02T13:00:00.123456")].version == "v2"
            assert vf[np.datetime64("2024-01-03T12:00:00", "ns")].version == "v3"
            with pytest.raises(KeyError):
                vf[np.datetime64("2023-12-31")]

    def test_get_version_by_timestamp(self, three):
        with VersionedFile(three, "r") as vf:
            assert vf.version_at(T2) == "v2"
            assert vf.version_at(T2 + dt.timedelta(seconds=1)) == "v2"
            assert vf.version_at(T2, exact=True) == "v2"
            with pytest.raises(KeyError):
                vf.version_at(T2 + dt.timedelta(microseconds=1), exact=True)
            with pytest.raises(KeyError):
                vf.version_at(T1 - dt.timedelta(days=1))
            assert vf.version_at(np.datetime64("2024-01-01T12:00"),
                                               exact=True) == "v1"

    def test_naive_datetime_refused(self, three):
        naive = dt.datetime(2024, 1, 2, 12)
        with VersionedFile(three, "r") as vf:
            with pytest.raises((ValueError, VersionError)):
                vf[naive]
            with pytest.raises((ValueError, VersionError)):
                vf.version_at(naive)
        with VersionedFile(three, "a") as vf:
            with pytest.raises((ValueError, VersionError)):
                with vf.stage_version("v4", timestamp=naive):
                    pass
            with pytest.raises((ValueError, VersionError)):
                with vf.stage_version("v4", timestamp="2024-01-05"):
                    pass
            assert vf.versions == ["v1", "v2", "v3"]

    def test_timestamp_stored_in_utc(self, path):
        tz = dt.timezone(dt.timedelta(hours=2))
        local = dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=tz)
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1", timestamp=local) as g:
                g["x"] = [1]
            with vf.stage_version("v2", timestamp=np.datetime64("2024-03-01T12:00:00")) as g:
                g["x"][0] = 2
            info = vf.version_info("v1")
            assert info["timestamp"] == local
            assert info["timestamp"].utcoffset() == dt.timedelta(0)
            assert info["prev_version"] == FIRST_VERSION
            assert vf.version_at(local, exact=True) == "v1"
            assert vf.version_info("v2")["timestamp"] == dt.datetime(2024, 3, 1, 12,
                                                                     tzinfo=UTC)
        with h5py.File(path, "r") as f:
            raw = f[f"{DATA_GROUP}/versions/v1"].attrs["timestamp"]
            raw = raw.decode() if isinstance(raw, bytes) else raw
            assert raw == "2024-01-02 01:04:05.000006+0000"
            assert dt.datetime.strptime(raw, TIMESTAMP_FORMAT) == local
            raw2 = f[f"{DATA_GROUP}/versions/v2"].attrs["timestamp"]
            raw2 = raw2.decode() if isinstance(raw2, bytes) else raw2
            assert raw2 == "2024-03-01 12:00:00.000000+0000"
        assert TIMESTAMP_FORMAT == "%Y-%m-%d %H:%M:%S.%f%z"

    def test_equal_timestamps(self, path):
        with VersionedFile(path, "w") as vf:
            for name in ("a", "b", "c"):
                with vf.stage_version(name, timestamp=T1 if name != "c" else T2) as g:
                    g[name] = [1]
            # the latest commit at or before the time wins
            assert vf[T1].version == "b"
            assert vf.version_at(T1 + dt.timedelta(hours=1)) == "b"
            assert vf.version_at(T1, exact=True) in ("a", "b")

    def test_automatic_timestamp(self, path):
        before = dt.datetime.now(UTC)
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g["x"] = [1]
            after = dt.datetime.now(UTC)
            stamp = vf.version_info("v1")["timestamp"]
            assert stamp.utcoffset() == dt.timedelta(0)
            assert before - dt.timedelta(seconds=1) <= stamp <= after + dt.timedelta(seconds=1)
            assert vf[after + dt.timedelta(seconds=2)].version == "v1"

    def test_versions_list_order_and_membership(self, three):
        with VersionedFile(three, "a") as vf:
            with vf.stage_version("a_branch", prev_version="v1", make_current=False) as g:
                g["x"][1] = 5
            assert vf.versions == ["v1", "v2", "v3", "a_branch"]
            assert list(vf) == vf.versions and len(vf) == 4
            assert "a_branch" in vf and "nope" not in vf and 3 not in vf


# -- committed versions are read-only -----------------------------------------------------------
class TestReadOnlyHistory:
    def test_writes_to_versions_refused(self, path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("v3") as g:
                g["grp/y"] = [1, 2]
                g["grp"].attrs["a"] = 1
                g["grp/y"].attrs["b"] = 2
        before = sha(path)
        before_tree = plain_tree(path)
        with VersionedFile(path, "r+") as vf:
            for name in ("v1", "v3"):  # an old version and the current one
                view = vf[name]
                x = view["x"]
                with pytest.raises(VersionError):
                    x[0] = 123
                with pytest.raises(VersionError):
                    x[...] = 0
                with pytest.raises(VersionError):
                    x.attrs["new"] = 1
                with pytest.raises(VersionError):
                    x.resize((5,))
                with pytest.raises(VersionError):
                    view.attrs["new"] = 1
                with pytest.raises(VersionError):
                    view.create_dataset("z", data=[1])
                with pytest.raises(VersionError):
                    view.create_group("zz")
                with pytest.raises(VersionError):
                    view["w"] = [1]
                with pytest.raises(VersionError):
                    del view["x"]
            grp = vf["v3"]["grp"]
            with pytest.raises(VersionError):
                grp.attrs["a"] = 5
            with pytest.raises(VersionError):
                del grp.attrs["a"]
            with pytest.raises(VersionError):
                grp["y"].attrs.update({"b": 3})
            with pytest.raises(VersionError):
                grp["y"].attrs.pop("b")
            with pytest.raises(VersionError):
                grp.create_dataset("q", data=[1])
            assert vf["v1"]["x"][0] == 0
            assert vf["v3"]["x"][0] == 0
        assert sha(path) == before
        assert_same_tree(plain_tree(path), before_tree)

    def test_view_reads_survive_later_commits(self, path):
        """A dataset view taken while its version was current keeps showing that version
        after later commits (it must not read the moving root mirror)."""
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            old = vf["v2"]["x"]  # v2 is current: served from the mirror
            group = vf["v2"]
            assert old[3] == -1
            with vf.stage_version("v3") as g:
                g["x"][3] = 333
                g["y"] = [1]
            assert vf["v2"]["x"][3] == -1
            assert vf["v3"]["x"][3] == 333
            assert group["x"][3] == -1
            assert "y" not in group
            assert old[3] == -1
            assert_values(np.asarray(old)[:5], [0, 1, 2, -1, 4])

    def test_view_survives_switching_current(self, path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            old = vf["v2"]["x"]
            vf.current_version = "v1"
            assert old[3] == -1
            vf.current_version = "v2"
            assert old[3] == -1
            assert vf["v1"]["x"][3] == 3


# -- branches and the current version -----------------------------------------------------------
class TestBranches:
    def test_branch_from_older_version(self, path, tmp_path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("b1", prev_version="v1") as g:
                g["x"][50] = 5000
            assert vf.current_version == "b1"
            assert vf.version_info("b1")["prev_version"] == "v1"
            assert vf["b1"]["x"][3] == 3 and vf["b1"]["x"][50] == 5000
            assert vf["v2"]["x"][3] == -1 and vf["v2"]["x"][50] == 50
        assert check_mirror(path, tmp_path) == "b1"
        with h5py.File(path, "r") as f:
            assert f["x"][3] == 3 and f["x"][50] == 5000

    def test_make_current_false(self, path, tmp_path):
        simple_file(path)
        mirror = plain_tree(path)
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("side", make_current=False) as g:
                g["x"][0] = -100
                g["extra"] = [1]
            assert vf.current_version == "v2"
            assert vf.versions == ["v1", "v2", "side"]
            assert vf["side"]["x"][0] == -100
            assert vf[0].version == "v2" and vf[0]["x"][0] == 0
            assert_same_tree(plain_tree(vf.file), mirror)
            # the next stage starts from the current version, not from "side"
            with vf.stage_version("v3") as g:
                assert "extra" not in g
                assert g["x"][0] == 0
        assert check_mirror(path, tmp_path) == "v3"

    def test_make_current_false_on_side_branch(self, path, tmp_path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("s1", prev_version="v1", make_current=False) as g:
                g["x"][1] = -1
            with vf.stage_version("s2", prev_version="s1", make_current=False) as g:
                g["x"][2] = -2
            assert vf.current_version == "v2"
            assert_values(vf["s2"]["x"][:4], [0, -1, -2, 3])
            assert vf.version_info("s2")["prev_version"] == "s1"
        assert check_mirror(path, tmp_path) == "v2"

    def test_set_current_version_switches_mirror(self, path, tmp_path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("v3") as g:
                g["grp/y"] = np.arange(3)
                g.attrs["root_attr"] = "v3"
                g["x"].attrs["u"] = 1
            vf.current_version = "v1"
            assert vf.current_version == "v1"
            with h5py.File(path, "r") as f:
                assert sorted(k for k in f if k != DATA_GROUP) == ["x"]
                assert_values(f["x"][()], np.arange(100))
                assert dict(f.attrs) == {}
                assert dict(f["x"].attrs) == {}
            assert vf[0]["x"][3] == 3
        assert check_mirror(path, tmp_path) == "v1"
        with VersionedFile(path, "a") as vf:
            assert vf.current_version == "v1"
            vf.current_version = "v3"
        assert check_mirror(path, tmp_path) == "v3"
        with h5py.File(path, "r") as f:
            assert f.attrs["root_attr"] == "v3"
            assert f["x"][3] == -1
            assert_values(f["grp/y"][()], np.arange(3))

    def test_unknown_current_version(self, path, tmp_path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            for bad in ("nope", FIRST_VERSION, 0, None):
                with pytest.raises(KeyError):
                    vf.current_version = bad
            assert vf.current_version == "v2"
        assert check_mirror(path, tmp_path) == "v2"

    def test_commit_after_switching_current(self, path, tmp_path):
        simple_file(path)
        with VersionedFile(path, "a") as vf:
            vf.current_version = "v1"
            with vf.stage_version("v3") as g:  # based on v1 now
                assert g["x"][3] == 3
                g["x"][99] = 0
            assert vf.version_info("v3")["prev_version"] == "v1"
        assert check_mirror(path, tmp_path) == "v3"


# -- chunk reuse --------------------------------------------------------------------------------
class TestChunkReuse:
    def test_revert_stores_no_chunks(self, path, tmp_path):
        simple_file(path)  # v2 changed one chunk of v1
        assert pool_slots(path) == 11
        commit(path, "v3", lambda g: g["x"].__setitem__(3, 3))  # back to v1's data
        assert pool_slots(path) == 11
        with VersionedFile(path, "r") as vf:
            assert_values(vf["v3"]["x"][:], vf["v1"]["x"][:])
        check_mirror(path, tmp_path)

    def test_rewriting_same_values_stores_nothing(self, path):
        simple_file(path)
        before = pool_slots(path)

        def rewrite(g):
            g["x"][:] = g["x"][:]

        commit(path, "v3", rewrite)
        assert pool_slots(path) == before

    def test_identical_chunks_within_a_dataset(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("x", data=np.tile(np.arange(1, 11), 10), chunks=(10,))
            assert_values(vf["v1"]["x"][:], np.tile(np.arange(1, 11), 10))
        assert pool_slots(path) == 1

    def test_identical_datasets_share_chunks(self, path):
        data = np.arange(1, 41, dtype="f4")
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("a", data=data, chunks=(8,))
            assert pool_slots(path) == 5
            with vf.stage_version("v2") as g:
                g.create_dataset("copy", data=g["a"], chunks=(8,))
                g.create_dataset("grp/copy2", data=data, chunks=(8,))
            assert_values(vf["v2"]["copy"][:], data)
        assert pool_slots(path) == 5

    def test_all_fill_chunks_not_stored(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("zeros", data=np.zeros(100), chunks=(10,))
                g.create_dataset("sevens", data=np.full(50, 7, dtype="i2"), chunks=(10,),
                                 fillvalue=7)
                half = np.zeros(100, dtype="i4")
                half[55] = 1
                g.create_dataset("one", data=half, chunks=(10,))
            assert_values(vf["v1"]["sevens"][:], np.full(50, 7))
            assert vf["v1"]["one"][55] == 1
        assert pool_slots(path) == 1

    def test_sparse_dataset_stores_written_chunks_only(self, path, tmp_path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                d = g.create_dataset("s", shape=(1000, 1000), dtype="f8", chunks=(100, 100),
                                     fillvalue=np.nan)
                d[150, 250] = 1.0
                d[999, 999] = 2.0
            assert pool_slots(path) == 2
            s = vf["v1"]["s"]
            assert s[150, 250] == 1.0 and s[999, 999] == 2.0
            assert np.isnan(s[0, 0])
            block = s[100:200, 200:300]
            assert np.count_nonzero(~np.isnan(block)) == 1
            with vf.stage_version("v2") as g:
                g["s"][150, 250] = np.nan  # back to all fill: the chunk is dropped
            assert np.isnan(vf["v2"]["s"][150, 250])
            assert vf.diff("v1", "v2")["changed"] == {"/s": [(slice(100, 200),
                                                                slice(200, 300))]}
        assert pool_slots(path) == 2  # no new chunk for a chunk that became all fill
        check_mirror(path, tmp_path)

    def test_file_growth_per_small_commit(self, path):
        chunk_bytes = 4096 * 8
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v0") as g:
                g.create_dataset("x", data=np.arange(100_000, dtype="f8"), chunks=(4096,))
                g.create_dataset("y", data=np.arange(50_000, dtype="i8"), chunks=(4096,))
        for i in range(1, 6):
            size = os.path.getsize(path)
            commit(path, f"v{i}", lambda g, i=i: g["x"].__setitem__(i * 7000, -i))
            growth = os.path.getsize(path) - size
            assert growth < chunk_bytes + 8192, (i, growth)
        with VersionedFile(path, "r") as vf:
            for i in range(1, 6):
                assert vf[f"v{i}"]["x"][i * 7000] == -i
                assert vf[f"v{i - 1}"]["x"][i * 7000] == i * 7000

    def test_unchanged_dataset_costs_nothing(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v0") as g:
                g.create_dataset("big", data=np.arange(200_000, dtype="f8"), chunks=(8192,))
                g["small"] = [5]
        for i in range(1, 4):
            size = os.path.getsize(path)
            commit(path, f"v{i}", lambda g, i=i: g["small"].__setitem__(0, i))
            assert os.path.getsize(path) - size < 8192, i
        with VersionedFile(path, "r") as vf:
            assert vf["v2"]["small"][0] == 2
            assert vf.version_info("v2")["changed"] == ["/small"]


# -- data kinds ---------------------------------------------------------------------------------
STRUCT = np.dtype([("a", "i4"), ("b", "f8"), ("c", "S3")])


def kind_cases() -> list[tuple[str, Any, np.ndarray, Any, Any]]:
    """(id, dtype, 10 values, fill value, one more value)."""
    cases = []
    for name in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"):
        dtype = np.dtype(name)
        info = np.iinfo(dtype)
        values = np.array([info.min, info.max, 0, 1, 2, 3, 4, 5, 6, 7], dtype=dtype)
        cases.append((name, dtype, values, dtype.type(info.max - 1), dtype.type(info.min + 1)))
    for name in ("f2", "f4", "f8"):
        dtype = np.dtype(name)
        values = (np.arange(10) * 0.5 - 2).astype(dtype)
        cases.append((name, dtype, values, dtype.type(-1.5), dtype.type(np.inf)))
    for name in ("c8", "c16"):
        dtype = np.dtype(name)
        values = (np.arange(10) + 1j * np.arange(10, 0, -1)).astype(dtype)
        cases.append((name, dtype, values, dtype.type(1 + 2j), dtype.type(-3j)))
    cases.append(("bool", np.dtype(bool), np.arange(10) % 3 == 0, np.True_, np.False_))
    cases.append(("S10", np.dtype("S10"), np.array([b"a", b"bb", b"", b"0123456789"] +
                                                    [b"x%d" % i for i in range(6)],
                                                    dtype="S10"), b"fill", b"zz"))
    vlen = h5py.string_dtype()
    cases.append(("vlen-str", vlen, np.array(["α", "", "bb", "a longer string"] +
                                             [f"s{i}" for i in range(6)], dtype=object),
                  "", "новое"))
    values = np.array([(i, i / 2, b"ab") for i in range(10)], dtype=STRUCT)
    cases.append(("struct", STRUCT, values, np.array((1, 2.5, b"f"), dtype=STRUCT)[()],
                  np.array((-1, -1.0, b"zz"), dtype=STRUCT)[()]))
    return cases


KINDS = kind_cases()


class TestDataKinds:
    @pytest.mark.parametrize("dtype,values,fill,more", [k[1:] for k in KINDS],
                             ids=[k[0] for k in KINDS])
    def test_round_trip(self, path, tmp_path, dtype, values, fill, more):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("data", data=values, dtype=dtype, chunks=(4,),
                                 maxshape=(None,), fillvalue=fill)
                g.create_dataset("sparse", shape=(10,), dtype=dtype, chunks=(4,),
                                 fillvalue=fill)
                g["sparse"][5] = more
                g.create_dataset("scalar", data=np.asarray(values[1], dtype=dtype),
                                 dtype=dtype)
            check_mirror(path, tmp_path)
            with vf.stage_version("v2") as g:
                g["data"][2] = more
                g["data"].resize(12)  # grows with the fill value
                g["scalar"][()] = more
                g["sparse"][9] = more
            check_mirror(path, tmp_path)
            sparse1 = np.array([fill] * 10, dtype=dtype)
            sparse1[5] = more
            sparse2 = sparse1.copy()
            sparse2[9] = more
            data2 = np.concatenate([values, np.array([fill, fill], dtype=dtype)])
            data2[2] = more
            for name, data, sparse, scalar in (("v1", values, sparse1, values[1]),
                                               ("v2", data2, sparse2, more)):
                view = vf[name]
                assert view["data"].dtype == np.dtype(dtype)
                assert_values(view["data"][:], data)
                assert_values(view["sparse"][:], sparse)
                assert_values(view["scalar"][()], np.asarray(scalar, dtype=dtype))
                assert_values(view["sparse"].fillvalue, np.asarray(fill, dtype=dtype))
                assert_values(view["data"][5:7], data[5:7])
        with VersionedFile(path, "r") as vf:  # fresh session: nothing cached
            assert_values(vf["v1"]["data"][:], values)
            assert_values(vf["v1"]["sparse"][:], sparse1)

    def test_vlen_strings_read_as_bytes_like_h5py(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("s", shape=(6,), dtype=h5py.string_dtype(), chunks=(2,))
                g["s"][3] = "hello"
            with vf.stage_version("v2") as g:
                g["s"][0] = "x"
            with h5py.File(path, "r") as f:
                plain = f["s"][()]
            # h5py's reading of the same data, whatever element type it uses, for each version
            for version in ("v1", "v2"):
                got = vf[version]["s"][:]
                kinds = {type(v) for v in got}
                assert kinds == {type(plain[0])}, (version, got)

    def test_vlen_strings_with_fill_readable_by_plain_h5py(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("s", shape=(10,), dtype=h5py.string_dtype(), chunks=(4,),
                                 fillvalue="zz")
                g["s"][5] = "x"
        with h5py.File(path, "r") as f:
            assert_values(f["s"][()], ["zz"] * 5 + ["x"] + ["zz"] * 4)

    def test_strings_from_python(self, path, tmp_path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g["words"] = ["one", "two", "three"]
                g["bytes"] = np.array([b"ab", b"c"])
                g["one"] = "single"
            assert h5py.check_string_dtype(vf["v1"]["words"].dtype) is not None
            assert_values(vf["v1"]["words"][:], ["one", "two", "three"])
            assert vf["v1"]["bytes"].dtype == np.dtype("S2")
            with h5py.File(path, "r") as f:
                plain = f["one"][()]  # h5py reads a 0-d variable-length string as bytes
            assert vf["v1"]["one"][()] == plain
            assert plain in (b"single", "single")
            with vf.stage_version("v2") as g:
                g["words"][1] = "zwei"
            assert_values(vf["v1"]["words"][:], ["one", "two", "three"])
            assert_values(vf["v2"]["words"][:], ["one", "zwei", "three"])
            assert vf["v1"]["one"][()] == plain  # now read from the pool
        check_mirror(path, tmp_path)

    def test_vlen_string_dedup(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("s", data=np.array(["a", "b"] * 4, dtype=object),
                                 dtype=h5py.string_dtype(), chunks=(2,))
            with vf.stage_version("v2") as g:
                g["s"][0] = "changed"
            with vf.stage_version("v3") as g:
                g["s"][0] = "a"
        assert pool_slots(path) == 2

    def test_vlen_string_sparse_stores_written_chunks_only(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("s", shape=(100,), dtype=h5py.string_dtype(), chunks=(10,))
                g["s"][42] = "only"
            with vf.stage_version("v2") as g:
                g["s"][43] = "two"
            with vf.stage_version("v3") as g:
                g["s"][42] = ""
                g["s"][43] = ""  # chunk 4 is all fill again
            assert_values(vf["v1"]["s"][40:45], ["", "", "only", "", ""])
        assert used_slots(path) == 2

    def test_vlen_arrays_supported_or_refused_up_front(self, path):
        """Ragged (variable-length numeric) data: either versioned correctly or refused by
        create_dataset -- not a crash when the version is committed."""
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g["x"] = [1]
            try:
                with vf.stage_version("v2") as g:
                    g.create_dataset("rag", shape=(4,), dtype=h5py.vlen_dtype("i4"),
                                     chunks=(2,))
                    g["rag"][1] = np.arange(3, dtype="i4")
            except VersionError:
                assert vf.versions == ["v1"]
                return
            got = vf["v2"]["rag"][:]
            np.testing.assert_array_equal(got[1], np.arange(3))
            assert len(got[0]) == 0

    def test_enum_dtype_kept(self, path):
        enum = h5py.enum_dtype({"OFF": 0, "ON": 1}, basetype="u1")
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("state", data=np.array([0, 1, 1], dtype="u1"), dtype=enum,
                                 chunks=(2,))
            with vf.stage_version("v2") as g:
                g["other"] = [1]
            assert h5py.check_enum_dtype(vf["v1"]["state"].dtype) == {"OFF": 0, "ON": 1}
            assert_values(vf["v1"]["state"][:], [0, 1, 1])
            vf.current_version = "v1"  # the mirror is rebuilt from the stored version
        with h5py.File(path, "r") as f:
            assert h5py.check_enum_dtype(f["state"].dtype) == {"OFF": 0, "ON": 1}

    def test_nan_fill(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("x", shape=(8,), dtype="f4", chunks=(4,), fillvalue=np.nan)
                g["x"][1] = 1
            got = vf["v1"]["x"][:]
            assert got[1] == 1 and np.isnan(got[[0, 2, 3, 4, 5, 6, 7]]).all()
            assert np.isnan(vf["v1"]["x"].fillvalue)

    def test_multidimensional_kinds(self, path, tmp_path):
        data = np.arange(2 * 3 * 5, dtype="u2").reshape(2, 3, 5)
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("cube", data=data, chunks=(1, 2, 2))
            with vf.stage_version("v2") as g:
                g["cube"][1, :, 4] = 1000
            expected = data.copy()
            expected[1, :, 4] = 1000
            assert_values(vf["v2"]["cube"][:], expected)
            assert_values(vf["v1"]["cube"][:], data)
            assert_values(vf["v1"]["cube"][..., 4], data[..., 4])
        check_mirror(path, tmp_path)

    def test_empty_dataset(self, path, tmp_path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("e", shape=(0, 3), dtype="f8", maxshape=(None, 3))
                g["e2"] = np.zeros((0,))
            assert vf["v1"]["e"].shape == (0, 3)
            assert vf["v1"]["e"][:].shape == (0, 3)
            assert vf["v1"]["e2"][()].shape == (0,)
            with vf.stage_version("v2") as g:
                g["e"].resize((2, 3))
                g["e"][1] = [1, 2, 3]
            assert_values(vf["v2"]["e"][:], [[0, 0, 0], [1, 2, 3]])
        check_mirror(path, tmp_path)


# -- nested groups, deletion and diff -----------------------------------------------------------
class TestNestedAndDiff:
    @pytest.fixture
    def nested(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("top", data=np.arange(30), chunks=(10,))
                g.create_dataset("g/h/deep", data=np.arange(12.0).reshape(3, 4), chunks=(2, 2))
                g.create_dataset("g/y", data=[1, 2, 3])
                g.create_group("g/empty")
                g.create_group("gone/inside")
                g["gone/inside/z"] = [7]
        return path

    def test_delete_dataset_and_group(self, nested, tmp_path):
        with VersionedFile(nested, "a") as vf:
            with vf.stage_version("v2") as g:
                del g["g/y"]
                del g["gone"]
                assert "gone" not in g and "gone/inside/z" not in g
            assert sorted(vf["v2"].keys()) == ["g", "top"]
            assert sorted(vf["v2"]["g"].keys()) == ["empty", "h"]
            assert_values(vf["v1"]["g/y"][:], [1, 2, 3])
            assert_values(vf["v1"]["gone/inside/z"][:], [7])
            assert_values(vf["v2"]["g/h/deep"][:], np.arange(12.0).reshape(3, 4))
        with h5py.File(nested, "r") as f:
            assert "gone" not in f and "y" not in f["g"]
        check_mirror(nested, tmp_path)
        with VersionedFile(nested, "a") as vf:  # reading v1 after a reopen
            assert_values(vf["v1"]["gone/inside/z"][:], [7])
            vf.current_version = "v1"
        check_mirror(nested, tmp_path)

    def test_diff(self, nested):
        with VersionedFile(nested, "a") as vf:
            with vf.stage_version("v2") as g:
                g["top"][25] = -1
                g["top"][3] = -1
                g["g/h/deep"][2, 3] = -1
                del g["g/y"]
                del g["gone"]
                g["g/new"] = [1]
                g.create_group("fresh/sub")
                g["g/empty"].attrs["now"] = "has an attribute"
            d = vf.diff("v1", "v2")
            assert d["added"] == ["/g/new"]
            assert d["removed"] == ["/g/y", "/gone/inside/z"]
            assert d["groups_added"] == ["/fresh", "/fresh/sub"]
            assert d["groups_removed"] == ["/gone", "/gone/inside"]
            assert d["changed"] == {
                "/top": [(slice(0, 10),), (slice(20, 30),)],
                "/g/h/deep": [(slice(2, 3), slice(2, 4))],
            }
            back = vf.diff("v2", "v1")
            assert back["added"] == d["removed"] and back["removed"] == d["added"]
            assert back["groups_added"] == d["groups_removed"]
            assert sorted(back["changed"]) == sorted(d["changed"])
            same = vf.diff("v1", "v1")
            assert same == {"added": [], "removed": [], "changed": {}, "groups_added": [],
                            "groups_removed": []}
            with pytest.raises(KeyError):
                vf.diff("v1", "nope")
            info = vf.version_info("v2")
            assert sorted(info["changed"]) == ["/g/h/deep", "/g/new", "/top"]

    def test_diff_shape_and_attribute_changes(self, nested):
        with VersionedFile(nested, "a") as vf:
            with vf.stage_version("v2") as g:
                g["g/y"].attrs["unit"] = "s"
            with vf.stage_version("v3") as g:
                del g["top"]
                g.create_dataset("top", data=np.arange(35), chunks=(10,))
            d2 = vf.diff("v1", "v2")
            assert d2["changed"] == {"/g/y": []}
            d3 = vf.diff("v2", "v3")
            assert list(d3["changed"]) == ["/top"]
            assert d3["added"] == [] and d3["removed"] == []

    def test_diff_unrelated_branches(self, nested):
        with VersionedFile(nested, "a") as vf:
            with vf.stage_version("a") as g:
                g["top"][0] = 100
            with vf.stage_version("b", prev_version="v1") as g:
                g["top"][29] = 100
            assert vf.diff("a", "b")["changed"] == {"/top": [(slice(0, 10),),
                                                             (slice(20, 30),)]}


# -- deleting versions --------------------------------------------------------------------------
def linear(path: str, n: int = 4) -> None:
    """v1..vn: x (chunks 10) where vi changes chunk i-1 to i * 1000 + arange."""
    with VersionedFile(path, "w") as vf:
        with vf.stage_version("v1") as g:
            g.create_dataset("x", data=np.arange(1, 101), chunks=(10,))
        for i in range(2, n + 1):
            with vf.stage_version(f"v{i}") as g:
                g["x"][(i - 1) * 10:i * 10] = i * 1000 + np.arange(10)


def linear_expected(i: int) -> np.ndarray:
    x = np.arange(1, 101)
    for j in range(2, i + 1):
        x[(j - 1) * 10:j * 10] = j * 1000 + np.arange(10)
    return x


class TestDeleteVersions:
    def test_reparent_children(self, path, tmp_path):
        linear(path, 4)
        with VersionedFile(path, "a") as vf:
            vf.delete_versions("v2")
            assert vf.versions == ["v1", "v3", "v4"]
            assert vf.version_info("v3")["prev_version"] == "v1"
            assert vf.current_version == "v4"
            for i in (1, 3, 4):
                assert_values(vf[f"v{i}"]["x"][:], linear_expected(i))
            with pytest.raises(KeyError):
                vf["v2"]
        with VersionedFile(path, "r") as vf:
            for i in (1, 3, 4):
                assert_values(vf[f"v{i}"]["x"][:], linear_expected(i))
        check_mirror(path, tmp_path)

    def test_delete_several(self, path, tmp_path):
        linear(path, 5)
        with VersionedFile(path, "a") as vf:
            vf.delete_versions(["v3", "v2"])
            assert vf.versions == ["v1", "v4", "v5"]
            assert vf.version_info("v4")["prev_version"] == "v1"
            assert vf[-1].version == "v4" and vf[-2].version == "v1"
            for i in (1, 4, 5):
                assert_values(vf[f"v{i}"]["x"][:], linear_expected(i))
        check_mirror(path, tmp_path)

    def test_delete_first(self, path, tmp_path):
        linear(path, 3)
        with VersionedFile(path, "a") as vf:
            vf.delete_versions(["v1"])
            assert vf.version_info("v2")["prev_version"] == FIRST_VERSION
            assert_values(vf["v2"]["x"][:], linear_expected(2))
            assert_values(vf["v3"]["x"][:], linear_expected(3))
            with pytest.raises(IndexError):
                vf[-2]

    def test_delete_current(self, path, tmp_path):
        linear(path, 4)
        with VersionedFile(path, "a") as vf:
            vf.delete_versions(["v4", "v3"])
            assert vf.current_version == "v2"
            assert vf.versions == ["v1", "v2"]
        assert check_mirror(path, tmp_path) == "v2"
        with h5py.File(path, "r") as f:
            assert_values(f["x"][()], linear_expected(2))

    def test_delete_all(self, path, tmp_path):
        linear(path, 2)
        with VersionedFile(path, "a") as vf:
            vf.delete_versions(["v1", "v2"])
            assert vf.versions == []
            assert vf.current_version == FIRST_VERSION
            with vf.stage_version("again") as g:
                assert list(g) == []
                g["y"] = [1]
        assert check_mirror(path, tmp_path) == "again"
        assert used_slots(path) == 1

    def test_delete_branch_keeps_current(self, path, tmp_path):
        linear(path, 3)
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("side", prev_version="v1", make_current=False) as g:
                g["x"][99] = -9
            with vf.stage_version("side2", prev_version="side", make_current=False) as g:
                g["x"][98] = -8
            vf.delete_versions("side")
            assert vf.current_version == "v3"
            assert vf.version_info("side2")["prev_version"] == "v1"
            assert vf["side2"]["x"][99] == -9 and vf["side2"]["x"][98] == -8
        assert check_mirror(path, tmp_path) == "v3"

    def test_unknown_version_deletes_nothing(self, path):
        linear(path, 3)
        with VersionedFile(path, "a") as vf:
            with pytest.raises(KeyError):
                vf.delete_versions(["v2", "nope"])
            assert vf.versions == ["v1", "v2", "v3"]

    def test_frees_only_unused_chunks(self, path):
        linear(path, 4)
        assert pool_slots(path) == 13
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("v5") as g:
                g["x"][10:20] = np.arange(11, 21)  # v2's change undone
            vf.delete_versions(["v2"])
        # v2's chunk 1 is used by v3 and v4 (they build on it): nothing is free yet
        assert free_slots(path) == 0
        with VersionedFile(path, "a") as vf:
            vf.delete_versions(["v3", "v4"])
            assert_values(vf["v5"]["x"][:20], np.arange(1, 21))
        # now v2's chunk 1 is unused, while v3's and v4's chunks are still used by v5
        assert free_slots(path) == 1
        with VersionedFile(path, "r") as vf:
            expected = linear_expected(4)
            expected[10:20] = np.arange(11, 21)
            assert_values(vf["v5"]["x"][:], expected)

    def test_freed_slots_reused(self, path, tmp_path):
        rng = np.random.default_rng(1)
        chunk = 4096
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("x", data=np.arange(20 * chunk, dtype="f8"), chunks=(chunk,))
            with vf.stage_version("big") as g:
                g["x"][:8 * chunk] = rng.random(8 * chunk)
        slots = pool_slots(path)
        assert slots == 28
        with VersionedFile(path, "a") as vf:
            vf.delete_versions(["big"])
            assert vf.current_version == "v1"
        assert free_slots(path) == 8
        assert check_mirror(path, tmp_path) == "v1"
        size = os.path.getsize(path)
        replacement = rng.random(8 * chunk)
        commit(path, "big2", lambda g: g["x"].__setitem__(slice(0, 8 * chunk), replacement))
        assert pool_slots(path) == slots  # the pool did not grow
        assert free_slots(path) == 0
        # the file did not grow by the new chunks (only version bookkeeping was added)
        assert os.path.getsize(path) - size < chunk * 8
        with VersionedFile(path, "r") as vf:
            assert_values(vf["big2"]["x"][:8 * chunk], replacement)
            assert_values(vf["v1"]["x"][:], np.arange(20 * chunk, dtype="f8"))
        check_mirror(path, tmp_path)

    def test_delete_then_commit_same_session(self, path, tmp_path):
        linear(path, 4)
        with VersionedFile(path, "a") as vf:
            vf.delete_versions(["v4"])
            assert free_slots(path) == 1
            with vf.stage_version("v5") as g:
                g["x"][95] = -95
            vf.delete_versions(["v2"])
            with vf.stage_version("v6") as g:
                g["x"][5] = -5
            expected5 = linear_expected(3)
            expected5[95] = -95
            expected6 = expected5.copy()
            expected6[5] = -5
            assert_values(vf["v5"]["x"][:], expected5)
            assert_values(vf["v6"]["x"][:], expected6)
            assert_values(vf["v3"]["x"][:], linear_expected(3))
        with VersionedFile(path, "r") as vf:
            assert_values(vf["v1"]["x"][:], linear_expected(1))
            assert_values(vf["v3"]["x"][:], linear_expected(3))
            assert_values(vf["v5"]["x"][:], expected5)
            assert_values(vf["v6"]["x"][:], expected6)
        check_mirror(path, tmp_path)

    def test_delete_in_long_delta_chain(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v0") as g:
                g.create_dataset("x", data=np.zeros(200, dtype="i4"), chunks=(5,))
            for i in range(1, 25):
                with vf.stage_version(f"v{i}") as g:
                    g["x"][i * 5] = i
            vf.delete_versions([f"v{i}" for i in range(1, 24, 2)])
        with VersionedFile(path, "r") as vf:
            for i in range(0, 25, 2):
                expected = np.zeros(200, dtype="i4")
                for j in range(1, i + 1):
                    expected[j * 5] = j
                assert_values(vf[f"v{i}"]["x"][:], expected)


# -- the plain mirror at the root ---------------------------------------------------------------
class TestMirror:
    def test_mirror_after_each_commit(self, path, tmp_path):
        rng = np.random.default_rng(3)
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                g.create_dataset("a", data=rng.random((9, 7)), chunks=(4, 3),
                                 maxshape=(None, None))
                g["grp/b"] = np.arange(5)
                g.attrs["n"] = 1
        assert check_mirror(path, tmp_path) == "v1"
        steps = [
            lambda g: g["a"].__setitem__((slice(2, 6), 1), -1.0),
            lambda g: g["a"].resize((12, 9)),
            lambda g: g["a"].resize((3, 2)),
            lambda g: g.__delitem__("grp"),
            lambda g: g.create_dataset("grp", data=[1.5]),
            lambda g: g.attrs.__setitem__("n", 2),
            lambda g: g["a"].attrs.__setitem__("a", "b"),
        ]
        for i, step in enumerate(steps, start=2):
            commit(path, f"v{i}", step)
            assert check_mirror(path, tmp_path) == f"v{i}"

    def test_mirror_is_plain_hdf5(self, path):
        simple_file(path)
        with h5py.File(path, "r") as f:
            x = f["x"]
            assert isinstance(x, h5py.Dataset)
            expected = np.arange(100)
            expected[3] = -1
            assert_values(x[()], expected)
            assert x.chunks == (10,)
            meta = f[DATA_GROUP]
            assert isinstance(meta, h5py.Group)
            current = meta.attrs["current_version"]
            assert (current.decode() if isinstance(current, bytes) else current) == "v2"
            assert list(meta["versions"]) == ["v1", "v2"]
            changed = meta["versions/v2"].attrs["changed"]
            assert json.loads(changed) == ["/x"]

    def test_renamed_file(self, path, tmp_path):
        linear(path, 3)
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("side", prev_version="v1", make_current=False) as g:
                g["extra/y"] = ["text"]
        moved = str(tmp_path / "sub" / "renamed.h5")
        os.makedirs(os.path.dirname(moved))
        os.rename(path, moved)
        with VersionedFile(moved, "r") as vf:
            assert vf.versions == ["v1", "v2", "v3", "side"]
            for i in (1, 2, 3):
                assert_values(vf[f"v{i}"]["x"][:], linear_expected(i))
            assert_values(vf["side"]["extra/y"][:], ["text"])
        with VersionedFile(moved, "a") as vf:
            with vf.stage_version("v4") as g:
                g["x"][0] = 0
            vf.current_version = "side"
        assert check_mirror(moved, tmp_path) == "side"

    def test_export(self, path, tmp_path):
        linear(path, 3)
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("v4") as g:
                g.attrs["a"] = 1
                g["grp/y"] = [1, 2]
                g["grp/y"].attrs["u"] = "m"
            out = str(tmp_path / "v2.h5")
            vf.export("v2", out)
            with h5py.File(str(tmp_path / "into.h5"), "w") as f:
                vf.export("v4", f.create_group("copy"))
            with pytest.raises(KeyError):
                vf.export("nope", str(tmp_path / "nope.h5"))
        with h5py.File(out, "r") as f:
            assert list(f) == ["x"]
            assert_values(f["x"][()], linear_expected(2))
        with h5py.File(str(tmp_path / "into.h5"), "r") as f:
            assert f["copy"].attrs["a"] == 1
            assert f["copy/grp/y"].attrs["u"] == "m"
            assert_values(f["copy/x"][()], linear_expected(3))


# -- the object store inside a stage ------------------------------------------------------------
def store_object() -> dict[str, Any]:
    return {
        "array": np.arange(12.0).reshape(3, 4),
        "numbers": [1, 2, 3],
        "name": "session M12",
        "nested": {"gain": 1.5, "labels": ["a", "b"], "mask": np.array([True, False])},
    }


def assert_same_object(actual: Any, expected: Any) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and sorted(actual) == sorted(expected)
        for key in expected:
            assert_same_object(actual[key], expected[key])
    elif isinstance(expected, np.ndarray):
        np.testing.assert_array_equal(actual, expected)
    else:
        assert actual == expected


class TestStore:
    def test_dump_into_stage_load_from_version(self, path):
        obj = store_object()
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                h5forge.dump(obj, g, "obj")
            changed = store_object()
            changed["nested"]["gain"] = 2.5
            with vf.stage_version("v2") as g:
                h5forge.dump(changed, g, "obj", overwrite=True)
            assert_same_object(h5forge.load(vf["v1"]["obj"]), obj)
            assert_same_object(h5forge.load(vf["v1"], "obj"), obj)
            assert_same_object(h5forge.load(vf["v2"]["obj"]), changed)
        # the mirror is a plain h5forge tree
        assert_same_object(h5forge.load(path, "obj"), changed)

    def test_lazy_load_from_version(self, path):
        big = np.arange(300_000.0)  # 2.4 MB: loaded lazily
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                h5forge.dump({"big": big, "n": 1}, g, "obj")
            with vf.stage_version("v2") as g:
                g["obj/big"][0] = -1
            for version, first in (("v1", 0.0), ("v2", -1.0)):
                obj = h5forge.load(vf[version]["obj"], lazy=True)
                data = np.asarray(obj["big"])
                assert data[0] == first
                np.testing.assert_array_equal(data[1:], big[1:])
                assert obj["n"] == 1

    def test_dump_existing_path_needs_overwrite(self, path):
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                h5forge.dump({"a": 1}, g, "obj")
            with pytest.raises(NodeExistsError):
                with vf.stage_version("v2") as g:
                    h5forge.dump({"a": 2}, g, "obj")
            assert vf.versions == ["v1"]

    def test_dump_at_stage_root(self, path):
        obj = store_object()
        with VersionedFile(path, "w") as vf:
            with vf.stage_version("v1") as g:
                h5forge.dump(obj, g)
            assert_same_object(h5forge.load(vf["v1"]), obj)


# -- the command line ---------------------------------------------------------------------------


class TestCLI:
    def run(self, capsys, *args: str) -> tuple[int, str, str]:
        from h5forge.cli.main import main

        code = main(["versions", *args])
        out, err = capsys.readouterr()
        return code, out, err

    def test_log(self, path, capsys):
        linear(path, 3)
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("side", prev_version="v1", make_current=False,
                                  timestamp=T1) as g:
                g["x"][0] = 0
        code, out, err = self.run(capsys, "log", path)
        assert code == 0, err
        assert err == ""
        lines = out.splitlines()
        rows = {line.split()[1] if line.startswith("*") else line.split()[0]: line
                for line in lines[1:]}
        assert list(rows) == ["v1", "v2", "v3", "side"]  # oldest commit first
        assert rows["v3"].startswith("*")  # the current version is marked
        assert not rows["v2"].startswith("*")
        assert "2024-01-01 12:00:00" in rows["side"]
        assert FIRST_VERSION in rows["v1"]
        assert "/x" in rows["v2"]

    def test_diff(self, path, capsys):
        linear(path, 3)
        with VersionedFile(path, "a") as vf:
            with vf.stage_version("v4") as g:
                g["added"] = [1]
                g.create_group("grp")
        code, out, err = self.run(capsys, "diff", path, "v2", "v4")
        assert code == 0, err
        lines = out.splitlines()
        assert "+ /added" in lines
        assert any(line.startswith("+ /grp") for line in lines)
        assert "~ /x: [20:30]" in lines
        code, out, err = self.run(capsys, "diff", path, "v1", "v1")
        assert code == 0, err
        assert "no differences" in out

    def test_export(self, path, tmp_path, capsys):
        linear(path, 3)
        out_file = str(tmp_path / "v2.h5")
        code, _, err = self.run(capsys, "export", path, "v2", out_file)
        assert code == 0, err
        with h5py.File(out_file, "r") as f:
            assert list(f) == ["x"]
            assert_values(f["x"][()], linear_expected(2))
        before = sha(out_file)
        code, _, err = self.run(capsys, "export", path, "v3", out_file)
        assert code != 0 and "overwrite" in err
        assert sha(out_file) == before
        code, _, err = self.run(capsys, "export", path, "v3", out_file, "--overwrite")
        assert code == 0, err
        with h5py.File(out_file, "r") as f:
            assert_values(f["x"][()], linear_expected(3))

    def test_unknown_version(self, path, tmp_path, capsys):
        linear(path, 2)
        code, _, err = self.run(capsys, "export", path, "nope", str(tmp_path / "o.h5"))
        assert code != 0
        assert "nope" in err and "Traceback" not in err
        assert not (tmp_path / "o.h5").exists()
        code, _, err = self.run(capsys, "diff", path, "v1", "nope")
        assert code != 0 and "nope" in err

    def test_missing_file(self, tmp_path, capsys):
        code, _, err = self.run(capsys, "log", str(tmp_path / "missing.h5"))
        assert code != 0 and "missing.h5" in err
