"""h5forge.get_default_configuration(obj) and dump(..., configuration=...): the plan lists the
datasets dump writes, where it writes them, and dump applies it."""

from __future__ import annotations

import pathlib

import h5py
import hdf5plugin
import numpy as np
import pytest

import h5forge
from h5forge.errors import ConfigurationError, NodeNotFoundError
from h5forge.io import BackendConfiguration, DatasetConfiguration, repack
from tests.store import equality
from tests.store import sample_types as st


def _address(obj):
    return h5py.h5o.get_info(obj.id).addr


def file_datasets(group):
    """``{address: [names]}`` of the datasets h5py finds under ``group`` (Empty ones left out)."""
    found = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.shape is not None:
            found.setdefault(_address(obj), []).append(name)

    group.visititems(visit)
    return found


OBJECTS = {
    "dict": lambda: {"trace": np.zeros((50, 4)), "meta": {"gain": 2.0, "unit": "mV"},
                     "more": {"deep": {"counts": np.arange(30, dtype="u2")}}},
    "list": lambda: [np.ones(3), [0.5] * 100, {"x": np.eye(2)}, list(range(100)), "text"],
    "arrays": lambda: {"f": np.asfortranarray(np.ones((3, 4))),
                       "big_endian": np.arange(5, dtype=">i4"),
                       "structured": np.zeros(2, [("a", "f4"), ("b", "i2", (2,))]),
                       "strings": np.array(["ab", "c"]), "scalar": np.float32(1.5),
                       "empty": np.zeros((0, 2)), "masked": np.ma.MaskedArray([1, 2], [0, 1])},
    "objects": lambda: {"trials": [st.Trial(i, f"t{i}", np.arange(4) * i, ["x"])
                                   for i in range(3)],
                        "plain": st.Plain(np.ones(6)), "mine": st.MyDict(a=np.zeros(3))},
    "no_datasets": lambda: {"a": 1, "b": "short"},
}


@pytest.mark.parametrize("path", ["/", "run1", "/runs/run1/"])
@pytest.mark.parametrize("name", list(OBJECTS))
def test_plan_lists_the_datasets_dump_writes(tmp_path, name, path):
    obj = OBJECTS[name]()
    plan = h5forge.get_default_configuration(obj, path)
    target = tmp_path / "out.h5"
    h5forge.dump(obj, target, path)
    with h5py.File(target, "r") as f:
        found = file_datasets(f)
        assert len(plan) == len(found)
        for location, entry in plan.items():
            assert entry.location == location
            dset = f[location]
            assert isinstance(dset, h5py.Dataset)
            entry.check_data(dset.shape, dset.dtype)  # planned for exactly that data
            assert entry == DatasetConfiguration(location, dset.dtype, dset.shape)
        assert {_address(f[location]) for location in plan} == set(found)
        # without shared objects every dataset has one name, and the plan uses it
        assert sorted(plan) == sorted(names[0] for names in found.values())
        prefix = "/".join(part for part in path.split("/") if part)
        assert all(location.startswith(prefix + "/") for location in plan) or not prefix


def test_plan_defaults(tmp_path):
    plan = h5forge.get_default_configuration(OBJECTS["arrays"]())
    # a Fortran-ordered array is stored transposed (see docs/FORMAT.md): one chunk of it all
    assert sorted(plan["f"].full_shape) == [3, 4]
    assert plan["f"].chunk_shape == plan["f"].full_shape
    assert plan["f"].compression_method == "gzip"
    assert plan["f"].compression_options == {"level": 4}
    assert plan["big_endian"].dtype == np.dtype(">i4")
    assert plan["scalar"].chunk_shape is None and plan["scalar"].compression_method is None
    assert plan["empty"].chunk_shape is None


def test_shared_arrays_are_listed_once(tmp_path):
    shared = np.arange(20.0)
    obj = {"b": shared, "a": shared, "nested": {"c": shared, "own": np.ones(3)},
           "trial": st.Trial(1, "t", shared)}
    plan = h5forge.get_default_configuration(obj)
    h5forge.dump(obj, tmp_path / "shared.h5")
    with h5py.File(tmp_path / "shared.h5", "r") as f:
        found = file_datasets(f)
        assert len(plan) == len(found)
        assert {_address(f[location]) for location in plan} == set(found)
        shared_names = {"b", "a", "nested/c", "trial/instance_attributes/samples"}
        assert len(shared_names & set(plan)) == 1
        assert len({_address(f[name]) for name in shared_names}) == 1


def test_plan_from_the_object_and_from_its_file_agree_on_shared_arrays(tmp_path):
    """The documented workflow: plan from the object, repack its file with it (and plan from
    the file, dump the object with it). They may name a shared array by different links (the
    object's first place; the file's first name), and either name works both ways."""
    shared = np.arange(20.0)
    obj = {"b": shared, "a": shared, "other": np.ones(4)}
    path = tmp_path / "shared.h5"
    h5forge.dump(obj, path)
    from_object = h5forge.get_default_configuration(obj)
    from_file = h5forge.get_default_configuration(path)
    assert len(from_object) == len(from_file) == 2  # the shared array once in each
    from_object.apply_global_compression("zstd", {"clevel": 1})
    repack(path, tmp_path / "repacked.h5", from_object)
    from_file.apply_global_compression("lzf")
    h5forge.dump(obj, tmp_path / "dumped.h5", configuration=from_file)
    equality.assert_same(obj, h5forge.load(tmp_path / "repacked.h5"))
    equality.assert_same(obj, h5forge.load(tmp_path / "dumped.h5"))
    with h5py.File(tmp_path / "repacked.h5", "r") as f:
        assert f["a"] == f["b"] and str(hdf5plugin.ZSTD_ID) in f["a"]._filters
    with h5py.File(tmp_path / "dumped.h5", "r") as f:
        assert f["a"] == f["b"] and f["a"].compression == "lzf"


def test_a_leaf_dumped_at_the_root_is_planned_as_value(tmp_path):
    for leaf in (np.arange(5), [1.5] * 100):
        plan = h5forge.get_default_configuration(leaf)
        assert list(plan) == ["value"]
        path = tmp_path / "leaf.h5"
        h5forge.dump(leaf, path, overwrite=True)
        with h5py.File(path, "r") as f:
            assert list(file_datasets(f).values()) == [["value"]]
            plan["value"].check_data(f["value"].shape, f["value"].dtype)
    assert list(h5forge.get_default_configuration(np.arange(5), "x/y")) == ["x/y"]


def test_a_path_reads_the_file(tmp_path):
    path = tmp_path / "existing.h5"
    h5forge.dump(OBJECTS["dict"](), path)
    with h5py.File(path, "a") as f:
        f["foreign"] = np.arange(7)  # not written by dump: the file is what is planned
    for given in (path, str(path)):
        plan = h5forge.get_default_configuration(given)
        assert sorted(plan) == ["foreign", "more/deep/counts", "trace"]
        assert plan == h5forge.io.get_default_configuration(path)
    with h5py.File(path, "r") as f:
        assert sorted(h5forge.get_default_configuration(f["more"])) == ["deep/counts"]
    # a string is always a path, never an object to plan
    with pytest.raises(NodeNotFoundError):
        h5forge.get_default_configuration(str(tmp_path / "missing.h5"))
    with pytest.raises(NodeNotFoundError):
        h5forge.get_default_configuration(pathlib.Path("no such file"))


def _obj():
    return {"trace": np.arange(600.0).reshape(100, 6), "counts": np.arange(50, dtype="i4"),
            "nested": {"image": np.ones((8, 8), dtype="u1"), "note": "x" * 300},
            "trials": [st.Trial(i, "t", np.arange(10.0) + i) for i in range(2)]}


def test_dump_applies_edited_entries_and_defaults_elsewhere(tmp_path):
    obj = _obj()
    plan = h5forge.get_default_configuration(obj)
    plan["trace"].update(chunk_shape=(10, 3), buffer_shape=(20, 6),
                         compression_method="zstd", compression_options={"clevel": 7},
                         filter="shuffle")
    plan["counts"].update(chunk_shape=None, compression_method=None)
    plan["nested/image"].update(chunk_shape=(4, 8), compression_method="gzip",
                                compression_options={"level": 9})
    plan["trials/1/instance_attributes/samples"].compression_method = "lzf"
    path = tmp_path / "planned.h5"
    h5forge.dump(obj, path, configuration=plan)
    with h5py.File(path, "r") as f:
        trace = f["trace"]
        assert trace.chunks == (10, 3) and trace.shuffle
        assert trace._filters[str(hdf5plugin.ZSTD_ID)][-1] == 7
        assert f["counts"].chunks is None and f["counts"].compression is None
        assert f["nested/image"].chunks == (4, 8)
        assert f["nested/image"].compression == "gzip"
        assert f["nested/image"].compression_opts == 9
        assert f["trials/1/instance_attributes/samples"].compression == "lzf"
        for location, entry in plan.items():
            if location in ("trace", "counts", "nested/image",
                            "trials/1/instance_attributes/samples"):
                continue
            dset = f[location]  # not edited: the default plan
            assert dset.chunks == entry.chunk_shape, location
            if entry.chunk_shape is not None:
                assert (dset.compression, dset.compression_opts) == ("gzip", 4), location
            else:
                assert dset.compression is None, location
        assert f["trials/0/instance_attributes/samples"].compression_opts == 4
    equality.assert_same(obj, h5forge.load(path))


def test_dump_with_a_plan_at_a_path_and_into_a_group(tmp_path):
    obj = _obj()
    plan = h5forge.get_default_configuration(obj, "run1")
    plan["run1/trace"].update(chunk_shape=(25, 6), buffer_shape=(50, 6))
    path = tmp_path / "runs.h5"
    with h5py.File(path, "w") as f:
        f["foreign"] = np.arange(3)
        h5forge.dump(obj, f, "run1", configuration=plan)
        assert f["run1/trace"].chunks == (25, 6)
        assert f["run1/counts"].compression == "gzip"
        assert f["foreign"].chunks is None
    equality.assert_same(obj, h5forge.load(path, "run1"))
    # a plan is relative to the target: into a group, it names what is under that group
    with h5py.File(path, "a") as f:
        group = f.create_group("all")
        inner = h5forge.get_default_configuration(obj, "run2")
        inner["run2/trace"].update(chunk_shape=(5, 6), buffer_shape=(5, 6))
        h5forge.dump(obj, group, "run2", configuration=inner)
        assert f["all/run2/trace"].chunks == (5, 6)


def test_plan_naming_a_missing_location_writes_nothing(tmp_path):
    obj = _obj()
    plan = h5forge.get_default_configuration(obj)
    plan = BackendConfiguration([*plan.values(), DatasetConfiguration("not/there", "f8", (3,))])
    path = tmp_path / "new.h5"
    with pytest.raises(ConfigurationError, match="not/there"):
        h5forge.dump(obj, path, configuration=plan)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    # an existing file is not changed, whether or not overwrite is given
    h5forge.dump({"old": np.arange(3)}, path)
    before = path.read_bytes()
    with pytest.raises(ConfigurationError):
        h5forge.dump(obj, path, overwrite=True, configuration=plan)
    with pytest.raises(ConfigurationError):
        h5forge.dump(obj, path, "inside", configuration=plan)
    assert path.read_bytes() == before
    # a plan made for another dump path names locations this dump does not write
    with pytest.raises(ConfigurationError, match="trace"):
        h5forge.dump(obj, tmp_path / "other.h5", "run1",
                     configuration=h5forge.get_default_configuration(obj))
    assert not (tmp_path / "other.h5").exists()


@pytest.mark.parametrize("entry", [
    pytest.param(DatasetConfiguration("trace", "f8", (101, 6)), id="shape"),
    pytest.param(DatasetConfiguration("trace", "f4", (100, 6)), id="dtype"),
    pytest.param(DatasetConfiguration("counts", "i4", (5, 10)), id="rank"),
])
def test_plan_for_other_data_is_refused(tmp_path, entry):
    path = tmp_path / "wrong.h5"
    with pytest.raises(ConfigurationError, match=entry.location):
        h5forge.dump(_obj(), path, configuration=BackendConfiguration([entry]))
    assert not path.exists()


def test_dict_of_h5py_keywords_is_accepted(tmp_path):
    obj = _obj()
    path = tmp_path / "kwargs.h5"
    configuration = {
        "trace": {"chunks": (50, 2), "compression": "gzip", "compression_opts": 1},
        "/nested/image/": dict(hdf5plugin.Zstd(clevel=4), chunks=(8, 2)),
        "counts": DatasetConfiguration("counts", "i4", (50,), chunk_shape=(5,),
                                       compression_method="lzf"),
    }
    h5forge.dump(obj, path, configuration=configuration)
    with h5py.File(path, "r") as f:
        assert f["trace"].chunks == (50, 2) and f["trace"].compression_opts == 1
        assert f["nested/image"].chunks == (8, 2)
        assert str(hdf5plugin.ZSTD_ID) in f["nested/image"]._filters
        assert f["counts"].chunks == (5,) and f["counts"].compression == "lzf"
        assert f["trials/0/instance_attributes/samples"].compression_opts == 4  # default
    equality.assert_same(obj, h5forge.load(path))


@pytest.mark.parametrize("bad", [
    pytest.param(42, id="int"),
    pytest.param("plan.yaml", id="str"),
    pytest.param(["trace"], id="list"),
    pytest.param({"trace": 5}, id="entry-int"),
    pytest.param({"trace": [("chunks", (10, 6))]}, id="entry-list"),
    pytest.param({"trace": None}, id="entry-none"),
])
def test_bad_configuration_type_is_refused(tmp_path, bad):
    path = tmp_path / "bad.h5"
    with pytest.raises(ConfigurationError):
        h5forge.dump(_obj(), path, configuration=bad)
    assert not path.exists()


def test_no_configuration_writes_contiguous_datasets(tmp_path):
    path = tmp_path / "plain.h5"
    h5forge.dump(_obj(), path)
    with h5py.File(path, "r") as f:
        assert f["trace"].chunks is None and f["trace"].compression is None
    empty = BackendConfiguration([])
    h5forge.dump(_obj(), tmp_path / "empty_plan.h5", configuration=empty)
    with h5py.File(tmp_path / "empty_plan.h5", "r") as f:  # an empty plan: all defaults
        assert f["trace"].chunks == (100, 6) and f["trace"].compression_opts == 4


def test_h5py_keywords_hdf5_refuses_are_a_configuration_error_and_nothing_is_left(tmp_path):
    path = tmp_path / "keep.h5"
    h5forge.dump({"old": np.arange(3)}, path)
    with pytest.raises(ConfigurationError, match=r"^a: HDF5 cannot write this dataset with "
                                                 r"chunks=\(20,\)"):
        h5forge.dump({"a": np.zeros(10)}, path, overwrite=True,
                     configuration={"a": {"chunks": (20,)}})
    assert list(h5forge.load(path)) == ["old"]  # the file as it was
