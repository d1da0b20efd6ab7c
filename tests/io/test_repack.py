"""repack: a whole file rewritten with a new plan, everything else as it was."""

from __future__ import annotations

import os

import h5py
import hdf5plugin
import numpy as np
import pytest

import h5forge
from h5forge.errors import ConfigurationError, H5ForgeError, NodeExistsError
from h5forge.io import (
    BackendConfiguration,
    DatasetConfiguration,
    get_current_configuration,
    get_default_configuration,
    repack,
)
from tests.store import equality
from tests.store import golden_objects as golden
from tests.store import sample_types as st

ZSTD = str(hdf5plugin.ZSTD_ID)


def assert_loads_same(obj, source):
    """``load(source)`` is ``obj``, type for type (tests.store.equality.assert_same)."""
    equality.assert_same(obj, h5forge.load(source))


def numeric_tree():
    """A rich tree with shared arrays and cycles whose datasets are all numeric."""
    shared = np.arange(12.0).reshape(3, 4)
    loop = [np.ones(3)]
    loop.append(loop)
    cyclic = {"x": 1}
    cyclic["self"] = cyclic
    plain = st.Plain(np.arange(5))
    plain.children = [shared, {"nested": shared}]
    return {
        "trace": np.random.default_rng(1).standard_normal((200, 6)).astype("f4"),
        "counts": np.arange(40, dtype=">i8"),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "floats": [0.25] * 100,
        "ints": list(range(100)),
        "nested": {"a": {"b": np.eye(3)}, "shared": shared},
        "also_shared": shared,
        "loop": loop,
        "cyclic": cyclic,
        "objects": [plain, st.Point(1, 2), st.MyList([np.zeros(2)]), st.MyDict(k=np.ones(4))],
        "frozen": st.Frozen(1, (2, 3)),
        "empty": np.zeros((0, 3)),
        "scalar": np.float64(2.5),
        "masked": np.ma.MaskedArray([1.0, 2.0, 3.0], mask=[False, True, False]),
        "complex": np.arange(4) * (1 + 2j),
        "structured": np.zeros(3, [("x", "f4", (2,)), ("n", "i2")]),
        "dates": np.array(["2024-05-01", "2024-05-02"], "datetime64[D]"),
    }


def strings_tree():
    """Strings in arrays and in user objects are stored as variable-length string datasets."""
    return {"channels": np.array(["CA1-a", "CA1-b", "DG"]), "names": ["ab"] * 100,
            "trial": st.Trial(1, "first", np.arange(3.0), ["x"]), "data": np.ones(5)}


@pytest.fixture
def dumped(tmp_path):
    obj = numeric_tree()
    path = tmp_path / "dumped.h5"
    h5forge.dump(obj, path)
    return obj, path


def written_as(plan):
    """What a file records of a plan (buffer shapes are not stored)."""
    return {location: (str(entry.dtype), entry.full_shape, entry.chunk_shape,
                       entry.compression_method, entry.compression_options, entry.filter)
            for location, entry in plan.items()}


def _datasets(path):
    """``{name: (chunks, filters)}`` of every dataset in the file."""
    found = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            found[name] = (obj.chunks, obj._filters)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


@pytest.mark.parametrize("make", [numeric_tree, strings_tree, golden.experiment_record,
                                  golden.all_types])
def test_dumped_tree_loads_the_same_after_repack(tmp_path, make):
    obj = make()
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    h5forge.dump(obj, src)
    repack(src, dst)
    assert_loads_same(obj, dst)
    assert_loads_same(obj, src)  # the source is untouched


def test_default_plan_is_gzip_level_4(dumped, tmp_path):
    _obj, src = dumped
    dst = tmp_path / "dst.h5"
    repack(src, dst)
    assert get_current_configuration(dst) == get_default_configuration(src)
    chunked = 0
    for name, (chunks, filters) in _datasets(dst).items():
        with h5py.File(dst, "r") as f:
            shape = f[name].shape
        if shape and all(shape):
            assert chunks == shape and filters == {"gzip": 4}, name  # small: one chunk
            chunked += 1
        else:
            assert chunks is None and filters == {}, name
    assert chunked >= 15


def test_global_zstd_plan(dumped, tmp_path):
    obj, src = dumped
    dst = tmp_path / "dst.h5"
    plan = get_default_configuration(src)
    plan.apply_global_compression("zstd", {"clevel": 3})
    repack(src, dst, plan)
    assert get_current_configuration(dst) == plan
    zstd = [name for name, (_c, filters) in _datasets(dst).items() if ZSTD in filters]
    assert len(zstd) == sum(entry.chunk_shape is not None for entry in plan.values()) >= 15
    assert all("gzip" not in filters for _c, filters in _datasets(dst).values())
    assert_loads_same(obj, dst)


def test_edited_entries_and_small_buffers(dumped, tmp_path):
    obj, src = dumped
    dst = tmp_path / "dst.h5"
    plan = BackendConfiguration([
        DatasetConfiguration("trace", "f4", (200, 6), chunk_shape=(16, 3), buffer_shape=(32, 3),
                             compression_method="zstd", compression_options={"clevel": 9},
                             filter="shuffle"),
        DatasetConfiguration("ints", "i8", (100,), chunk_shape=(7,), buffer_shape=(14,),
                             compression_method="lzf", filter="bitshuffle"),
        DatasetConfiguration("counts", ">i8", (40,), chunk_shape=None, compression_method=None),
    ])
    repack(src, dst, plan)
    current = get_current_configuration(dst)
    for location in plan:
        assert current[location].chunk_shape == plan[location].chunk_shape
        assert current[location].compression_method == plan[location].compression_method
        assert current[location].filter == plan[location].filter
    assert current["trace"].compression_options == {"clevel": 9}
    assert current["floats"].chunk_shape == (100,)  # not in the plan: the default
    assert current["floats"].compression_options == {"level": 4}
    assert_loads_same(obj, dst)


def test_yaml_plan_path(dumped, tmp_path):
    _obj, src = dumped
    plan = get_default_configuration(src)
    plan["trace"].update(chunk_shape=(50, 6), buffer_shape=(100, 6))
    yaml_path = tmp_path / "plan.yaml"
    plan.to_yaml(yaml_path)
    for i, given in enumerate((yaml_path, str(yaml_path))):
        dst = tmp_path / f"dst{i}.h5"
        repack(src, dst, given)
        assert written_as(get_current_configuration(dst)) == written_as(plan)


def test_plan_naming_a_missing_dataset_writes_nothing(dumped, tmp_path):
    _obj, src = dumped
    plan = BackendConfiguration([DatasetConfiguration("trace", "f4", (200, 6)),
                                 DatasetConfiguration("not/there", "f8", (3,))])
    dst = tmp_path / "dst.h5"
    with pytest.raises(ConfigurationError, match="not/there"):
        repack(src, dst, plan)
    assert not dst.exists()
    assert sorted(os.listdir(tmp_path)) == ["dumped.h5"]  # no temporary file left either
    # an existing destination stays as it was
    with h5py.File(dst, "w") as f:
        f["old"] = [1, 2, 3]
    before = dst.read_bytes()
    with pytest.raises(ConfigurationError):
        repack(src, dst, plan, overwrite=True)
    assert dst.read_bytes() == before
    # and so does an open destination group
    with h5py.File(tmp_path / "group.h5", "w") as f:
        with pytest.raises(ConfigurationError):
            repack(src, f.create_group("into"), plan)
        assert len(f["into"]) == 0 and len(f["into"].attrs) == 0


@pytest.mark.parametrize("entry", [
    pytest.param(DatasetConfiguration("trace", "f4", (201, 6)), id="shape"),
    pytest.param(DatasetConfiguration("trace", "f8", (200, 6)), id="dtype"),
])
def test_plan_for_other_data_is_refused(dumped, tmp_path, entry):
    _obj, src = dumped
    dst = tmp_path / "dst.h5"
    with pytest.raises(ConfigurationError, match="trace"):
        repack(src, dst, BackendConfiguration([entry]))
    assert not dst.exists()


@pytest.mark.parametrize("bad", [42, {"trace": {"chunks": (2, 2)}}, ["trace"]])
def test_configuration_of_another_type_is_refused(dumped, tmp_path, bad):
    with pytest.raises(ConfigurationError):
        repack(dumped[1], tmp_path / "dst.h5", bad)
    assert not (tmp_path / "dst.h5").exists()


def _type_of(attrs, name):
    return attrs.get_id(name).get_type()


def test_attributes_keep_their_exact_types(tmp_path):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    with h5py.File(src, "w") as f:
        for target in (f, f.create_group("g"), f.create_dataset("d", data=np.arange(3))):
            attrs = target.attrs
            attrs["fixed"] = np.bytes_("abc")
            attrs.create("fixed_utf8", "hé".encode(), dtype=h5py.string_dtype("utf-8", 5))
            attrs["vlen"] = "a variable-length string"
            attrs.create("vlen_ascii", b"bytes", dtype=h5py.string_dtype("ascii"))
            attrs.create("vlen_array", ["a", "bcd"], dtype=h5py.string_dtype())
            attrs["array"] = np.arange(6, dtype=">i2").reshape(2, 3)
            attrs["scalar"] = np.float32(1.5)
            attrs["int"] = 7
            attrs["bool"] = np.bool_(True)
            attrs["compound"] = np.array((1, 2.5), dtype=[("a", "<i4"), ("b", "<f8")])
            attrs["empty"] = h5py.Empty("f8")
            attrs["empty_string"] = h5py.Empty(h5py.string_dtype())
            attrs["zero_length"] = np.zeros(0, dtype="i4")
    repack(src, dst)
    with h5py.File(src, "r") as a, h5py.File(dst, "r") as b:
        for name in ("/", "g", "d"):
            old, new = a[name].attrs, b[name].attrs
            assert sorted(old) == sorted(new)
            for key in old:
                assert _type_of(old, key).equal(_type_of(new, key)), (name, key)
                assert old.get_id(key).shape == new.get_id(key).shape, (name, key)
                if old.get_id(key).shape is None:
                    assert isinstance(new[key], h5py.Empty)
                else:
                    assert np.array_equal(np.asarray(old[key]), np.asarray(new[key])), key
        assert b.attrs["vlen"] == "a variable-length string"
        assert b["d"].attrs["fixed_utf8"] == "hé".encode()


@pytest.mark.parametrize("where", ["/", "g", "g/sub"])
def test_creation_order_of_links_and_attributes_kept(tmp_path, where):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    names = ["zeta", "alpha", "mid", "beta"]
    with h5py.File(src, "w", track_order=True) as f:
        f.create_group("g", track_order=True).create_group("sub", track_order=True)
        group = f[where]
        for i, name in enumerate(names):
            group.attrs[name] = i
            if name == "mid":
                group.create_group(f"{name}_g", track_order=True)
            else:
                group[f"{name}_d"] = np.arange(i + 1)
        assert list(group.attrs) == names
        links = list(group)
    repack(src, dst)
    with h5py.File(dst, "r") as f:
        assert list(f[where].attrs) == names
        assert list(f[where]) == links


def test_attribute_creation_order_of_datasets_kept(tmp_path):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    names = ["zeta", "alpha", "mid"]
    with h5py.File(src, "w", track_order=True) as f:
        dset = f.create_dataset("d", data=np.arange(4), track_order=True)
        for i, name in enumerate(names):
            dset.attrs[name] = i
        assert list(dset.attrs) == names
    repack(src, dst)
    with h5py.File(dst, "r") as f:
        assert list(f["d"].attrs) == names


def _address(obj):
    return h5py.h5o.get_info(obj.id).addr


@pytest.mark.parametrize("track_order", [False, True])
def test_hard_links_stay_one_object(tmp_path, track_order):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    with h5py.File(src, "w", track_order=track_order) as f:
        f["z"] = np.arange(5.0)  # created first, but "a" comes first by name
        f["a"] = f["z"]
        grp = f.create_group("grp", track_order=track_order)
        grp["z_again"] = f["z"]
        grp["data"] = np.ones((4, 4))
        f["grp_again"] = grp
    plan = BackendConfiguration([DatasetConfiguration("grp/data", "f8", (4, 4),
                                                      chunk_shape=(2, 2))])
    repack(src, dst, plan)
    with h5py.File(dst, "r") as f:
        assert _address(f["z"]) == _address(f["a"]) == _address(f["grp/z_again"])
        assert _address(f["grp"]) == _address(f["grp_again"])
        assert f["grp_again/data"].chunks == (2, 2)
        assert f["z"][()].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert list(f) == (["z", "a", "grp", "grp_again"] if track_order
                           else ["a", "grp", "grp_again", "z"])


def test_hard_link_back_to_the_root_stays_a_cycle(tmp_path):
    """An object tree whose root is in a cycle is dumped with a hard link to '/'."""
    cyclic = {"data": np.arange(3)}
    cyclic["me"] = cyclic
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    h5forge.dump(cyclic, src)
    repack(src, dst)
    with h5py.File(dst, "r") as f:
        assert _address(f["me"]) == _address(f)
        assert list(f) == ["data", "me"]
    assert_loads_same(cyclic, dst)


def test_soft_and_external_links_kept_as_links(tmp_path):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    with h5py.File(tmp_path / "other.h5", "w") as other:
        other["far"] = np.arange(4)
    with h5py.File(src, "w") as f:
        f["data"] = np.arange(10.0)
        f["soft"] = h5py.SoftLink("/data")
        f.create_group("g")["relative"] = h5py.SoftLink("../data")
        f["dangling"] = h5py.SoftLink("/nowhere")
        f["external"] = h5py.ExternalLink("other.h5", "/far")
    repack(src, dst)
    with h5py.File(dst, "r") as f:
        assert f.get("soft", getlink=True).path == "/data"
        assert f["g"].get("relative", getlink=True).path == "../data"
        assert f.get("dangling", getlink=True).path == "/nowhere"
        link = f.get("external", getlink=True)
        assert isinstance(link, h5py.ExternalLink)
        assert (link.filename, link.path) == ("other.h5", "/far")
        assert f["soft"][()].tolist() == list(range(10))
        assert f["external"][()].tolist() == [0, 1, 2, 3]
        assert _address(f["soft"]) == _address(f["data"])


@pytest.fixture
def named_type_file(tmp_path):
    src = tmp_path / "src.h5"
    with h5py.File(src, "w") as f:
        f["pair"] = np.dtype([("a", "<i4"), ("b", "<f8")])
        f["pair_again"] = f["pair"]
        data = np.array([(1, 1.5), (2, 2.5)], dtype=f["pair"].dtype)
        f.create_dataset("typed", data=data, dtype=f["pair"])
        assert f["typed"].id.get_type().committed()
    return src


def test_named_datatypes_kept(named_type_file, tmp_path):
    dst = tmp_path / "dst.h5"
    repack(named_type_file, dst)
    with h5py.File(dst, "r") as f:
        assert isinstance(f["pair"], h5py.Datatype)
        assert f["pair"].dtype == np.dtype([("a", "<i4"), ("b", "<f8")])
        assert _address(f["pair"]) == _address(f["pair_again"])
        assert f["typed"][()].tolist() == [(1, 1.5), (2, 2.5)]


def test_datasets_keep_using_their_named_datatype(named_type_file, tmp_path):
    dst = tmp_path / "dst.h5"
    repack(named_type_file, dst)
    with h5py.File(dst, "r") as f:
        assert f["typed"].id.get_type().committed()


def test_fill_values_kept(tmp_path):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    with h5py.File(src, "w") as f:
        dset = f.create_dataset("partly", shape=(10,), dtype="i4", fillvalue=-7, chunks=(5,))
        dset[:3] = [1, 2, 3]
        f.create_dataset("unwritten", shape=(2, 3), dtype="f4", fillvalue=np.nan)
        f.create_dataset("default", shape=(4,), dtype="i2")
    repack(src, dst)
    with h5py.File(dst, "r") as f:
        assert f["partly"].fillvalue == -7
        assert f["partly"][()].tolist() == [1, 2, 3] + [-7] * 7
        assert np.isnan(f["unwritten"].fillvalue) and np.isnan(f["unwritten"][()]).all()
        assert f["default"].fillvalue == 0
        plist = f["default"].id.get_create_plist()
        assert plist.fill_value_defined() != h5py.h5d.FILL_VALUE_USER_DEFINED


def test_resizable_datasets_stay_resizable(tmp_path):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("grow", data=np.arange(7), maxshape=(None,), chunks=(2,))
        f.create_dataset("rows", data=np.ones((3, 4)), maxshape=(None, 4), chunks=(1, 4))
        f.create_dataset("bounded", data=np.arange(3), maxshape=(10,))
        f.create_dataset("empty", shape=(0, 3), maxshape=(None, 3), dtype="f4", chunks=(4, 3))
    plan = BackendConfiguration([DatasetConfiguration("rows", "f8", (3, 4), chunk_shape=None,
                                                      compression_method=None)])
    repack(src, dst, plan)
    with h5py.File(dst, "r+") as f:
        assert f["grow"].maxshape == (None,) and f["grow"][()].tolist() == list(range(7))
        assert f["rows"].maxshape == (None, 4) and f["rows"].chunks is not None
        assert f["bounded"].maxshape == (10,)
        assert f["empty"].maxshape == (None, 3) and f["empty"].shape == (0, 3)
        assert f["empty"].chunks is not None and f["empty"].dtype == np.float32
        for name, rows in (("grow", 9), ("rows", 5), ("bounded", 10), ("empty", 2)):
            f[name].resize(rows, axis=0)
            assert f[name].shape[0] == rows
        f["empty"][:] = 1.0
        assert f["empty"][()].sum() == 6.0


def test_object_references_in_attributes_point_into_the_new_file(tmp_path):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    with h5py.File(src, "w") as f:
        grp = f.create_group("g")
        data = grp.create_dataset("data", data=np.arange(5))
        f["linked"] = data
        data.attrs["self"] = data.ref
        f.attrs["to_group"] = grp.ref
        f.attrs["to_root"] = f.ref
        f.attrs.create("several", [grp.ref, data.ref, h5py.Reference()], dtype=h5py.ref_dtype)
        f.attrs.create("null", h5py.Reference(), dtype=h5py.ref_dtype)
    repack(src, dst)
    with h5py.File(dst, "r") as f:
        assert f[f["g/data"].attrs["self"]].file.filename == str(dst)
        assert _address(f[f["g/data"].attrs["self"]]) == _address(f["g/data"])
        assert _address(f[f.attrs["to_group"]]) == _address(f["g"])
        assert _address(f[f.attrs["to_root"]]) == _address(f)
        several = f.attrs["several"]
        assert f.attrs.get_id("several").shape == (3,)
        assert _address(f[several[0]]) == _address(f["g"])
        assert _address(f[several[1]]) == _address(f["g/data"])
        assert not several[2] and not f.attrs["null"]


def test_object_references_in_datasets_point_into_the_new_file(tmp_path):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    with h5py.File(src, "w") as f:
        grp = f.create_group("g")
        data = grp.create_dataset("data", data=np.arange(5))
        refs = f.create_dataset("refs", (4,), dtype=h5py.ref_dtype)
        refs[0], refs[1], refs[3] = grp.ref, data.ref, f.ref
        f.create_dataset("one", data=data.ref, dtype=h5py.ref_dtype)
        table = f.create_dataset("table", (2,), dtype=[("n", "i4"), ("r", h5py.ref_dtype)])
        table[0] = (7, data.ref)
    repack(src, dst)
    with h5py.File(dst, "r") as f:
        refs = f["refs"][()]
        assert _address(f[refs[0]]) == _address(f["g"])
        assert _address(f[refs[1]]) == _address(f["g/data"])
        assert not refs[2]
        assert _address(f[refs[3]]) == _address(f)
        assert _address(f[f["one"][()]]) == _address(f["g/data"])
        row = f["table"][0]
        assert row["n"] == 7 and _address(f[row["r"]]) == _address(f["g/data"])


def test_variable_length_string_datasets(tmp_path):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("text", data=["a", "bc", "déf"], dtype=h5py.string_dtype())
        f.create_dataset("raw", data=[b"x", b"yz"], dtype=h5py.string_dtype("ascii"))
    repack(src, dst)
    with h5py.File(dst, "r") as f:
        assert f["text"].asstr()[()].tolist() == ["a", "bc", "déf"]
        assert f["raw"][()].tolist() == [b"x", b"yz"]
        assert h5py.check_string_dtype(f["text"].dtype).encoding == "utf-8"
        assert f["text"].compression == "gzip"


def test_dimension_scales_stay_attached(tmp_path):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    with h5py.File(src, "w") as f:
        data = f.create_dataset("data", data=np.arange(20.0).reshape(4, 5))
        time = f.create_dataset("time", data=np.arange(4.0))
        time.make_scale("seconds")
        freq = f.create_dataset("freq", data=np.arange(5.0))
        freq.make_scale("hertz")
        index = f.create_dataset("index", data=np.arange(5))
        index.make_scale()
        data.dims[0].attach_scale(time)
        data.dims[1].attach_scale(freq)
        data.dims[1].attach_scale(index)
        data.dims[0].label = "t"
        other = f.create_dataset("other", data=np.zeros(4))
        other.dims[0].attach_scale(time)
    repack(src, dst)
    with h5py.File(dst, "r") as f:
        data = f["data"]
        assert data.dims[0].label == "t"
        assert list(data.dims[0].keys()) == ["seconds"]
        assert list(data.dims[1].keys()) == ["hertz", ""]
        assert _address(data.dims[0][0]) == _address(f["time"])
        assert _address(data.dims[1][0]) == _address(f["freq"])
        assert _address(data.dims[1][1]) == _address(f["index"])
        assert _address(f["other"].dims[0][0]) == _address(f["time"])
        assert f["time"].is_scale and f["index"].is_scale
        assert h5py.h5ds.is_attached(data.id, f["time"].id, 0)
        assert not h5py.h5ds.is_attached(data.id, f["time"].id, 1)


@pytest.mark.parametrize("where", ["dataset", "attribute"])
def test_region_references_are_refused(tmp_path, where):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    with h5py.File(src, "w") as f:
        data = f.create_dataset("data", data=np.arange(10))
        if where == "dataset":
            regions = f.create_dataset("regions", (2,), dtype=h5py.regionref_dtype)
            regions[0] = data.regionref[2:5]
        else:
            data.attrs["region"] = data.regionref[2:5]
    with pytest.raises(H5ForgeError, match="region"):
        repack(src, dst)
    assert not dst.exists()


def test_empty_dataspace_datasets_kept(tmp_path):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    with h5py.File(src, "w") as f:
        f["nothing"] = h5py.Empty("f4")
        f["nothing"].attrs["kept"] = 1
    repack(src, dst)
    with h5py.File(dst, "r") as f:
        assert f["nothing"].shape is None and f["nothing"].dtype == np.float32
        assert f["nothing"].attrs["kept"] == 1


def test_existing_destination_needs_overwrite(dumped, tmp_path):
    obj, src = dumped
    dst = tmp_path / "dst.h5"
    with h5py.File(dst, "w") as f:
        f["old"] = np.arange(3)
    before = dst.read_bytes()
    with pytest.raises(NodeExistsError, match="overwrite"):
        repack(src, dst)
    assert dst.read_bytes() == before
    repack(src, str(dst), overwrite=True)
    assert_loads_same(obj, dst)
    assert sorted(os.listdir(tmp_path)) == ["dst.h5", "dumped.h5"]


def test_repack_in_place(dumped, tmp_path):
    obj, src = dumped
    plan = get_default_configuration(src)
    plan["trace"].update(chunk_shape=(10, 6), buffer_shape=(30, 6))
    plan.apply_global_compression("zstd", {"clevel": 2})
    repack(src, src, plan, overwrite=True)
    assert written_as(get_current_configuration(src)) == written_as(plan)
    assert_loads_same(obj, src)
    assert sorted(os.listdir(tmp_path)) == ["dumped.h5"]


def test_into_an_open_empty_group(dumped, tmp_path):
    obj, src = dumped
    with h5py.File(tmp_path / "host.h5", "w") as host:
        host["unrelated"] = [1, 2]
        into = host.create_group("copy")
        reports = repack(src, into)  # one per dataset copied, the trace among them
        assert "trace" in {r.location for r in reports}
        assert into.id.valid and host["unrelated"][()].tolist() == [1, 2]
        assert host["copy/trace"].compression == "gzip"
        assert_loads_same(obj, host["copy"])
        assert _address(host["copy/also_shared"]) == _address(host["copy/nested/shared"])


@pytest.mark.parametrize("content", ["member", "attribute"])
def test_into_a_non_empty_group_is_refused(dumped, tmp_path, content):
    _obj, src = dumped
    with h5py.File(tmp_path / "host.h5", "w") as host:
        into = host.create_group("copy")
        if content == "member":
            into["there"] = 1
        else:
            into.attrs["there"] = 1
        with pytest.raises(NodeExistsError):
            repack(src, into)
        assert list(into) == (["there"] if content == "member" else [])
        assert list(into.attrs) == (["there"] if content == "attribute" else [])
    with h5py.File(tmp_path / "root.h5", "w") as host:  # a file's root group alike
        if content == "member":
            host["there"] = 1
        else:
            host.attrs["there"] = 1
        with pytest.raises(NodeExistsError):
            repack(src, host)


def test_source_given_as_an_open_file(dumped, tmp_path):
    obj, src = dumped
    dst = tmp_path / "dst.h5"
    with h5py.File(src, "r") as f:
        repack(f, dst)
        assert f.id.valid  # what it was given it leaves open
        assert list(f)
    assert get_current_configuration(dst) == get_default_configuration(src)
    assert_loads_same(obj, dst)


def test_source_given_as_a_group(tmp_path):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    h5forge.dump({"inner": {"a": np.arange(4.0), "b": [1.5] * 100}}, src, "run1")
    with h5py.File(src, "r") as f:
        repack(f["run1"], dst)
    assert sorted(get_default_configuration(dst)) == ["inner/a", "inner/b"]
    loaded = h5forge.load(dst)
    assert loaded["inner"]["a"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert loaded["inner"]["b"] == [1.5] * 100
