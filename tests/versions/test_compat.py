"""``h5forge.versions.compat`` next to the real versioned-hdf5: the same steps through both,
results compared (differential tests), plus the public behaviours its users rely on."""

from __future__ import annotations

import datetime as dt

import h5py
import hdf5plugin
import numpy as np
import pytest

from h5forge.errors import H5ForgeError, VersionClosedError
from h5forge.versions import compat

vh5 = pytest.importorskip("versioned_hdf5")

MODULES = {"versioned_hdf5": vh5, "h5forge": compat}
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
#: Attributes versioned-hdf5 puts on every dataset of a version: its layout, not user data.
PEER_LAYOUT_ATTRS = ("raw_data", "chunks")


def snapshot(vfile, names) -> dict:
    """Every version's datasets (values, dtype, shape) and attributes, as plain Python."""
    return {name: _walk(vfile[name], "", {}) for name in names}


def _walk(group, prefix: str, items: dict) -> dict:
    for key in sorted(group):
        obj = group[key]
        where = f"{prefix}/{key}"
        attrs = {k: _plain(obj.attrs[k]) for k in sorted(obj.attrs)
                 if k not in PEER_LAYOUT_ATTRS}
        if hasattr(obj, "shape"):
            items[where] = (_plain(obj[()]), str(obj.dtype), tuple(obj.shape), attrs)
        else:
            items[where] = attrs
            _walk(obj, where, items)
    return items


def _plain(value):
    value = np.asarray(value)
    if value.dtype.kind == "O":
        return [v.decode() if isinstance(v, bytes) else v for v in value.ravel().tolist()]
    return value.tolist()


def run_both(tmp_path, steps, names, after=None):
    """Run ``steps`` through each module on a new file; reopen it read-only and snapshot
    ``names`` (and call ``after(vfile, module)`` there)."""
    results = {}
    for label, module in MODULES.items():
        path = tmp_path / f"{label}.h5"
        with h5py.File(path, "w") as f:
            vfile = module.VersionedHDF5File(f)
            steps(vfile, module, f)
        with h5py.File(path, "r") as f:
            vfile = module.VersionedHDF5File(f)
            results[label] = snapshot(vfile, names)
            if after is not None:
                after(vfile, module)
    return results


def assert_same(results):
    assert results["h5forge"] == results["versioned_hdf5"]


# -- differential: the same steps through versioned-hdf5 and h5forge -----------------------------

def test_history_of_edits_matches(tmp_path):
    def steps(vfile, module, f):
        with vfile.stage_version("r0", timestamp=T0) as g:
            g.create_dataset("values", data=np.arange(20, dtype="f8"), chunks=(4,))
            g.create_dataset("names", data=np.array(["a", "bb", "ccc"], dtype=object),
                             dtype=h5py.string_dtype())
            g.create_dataset("grid", data=np.arange(12, dtype="i4").reshape(3, 4),
                             chunks=(2, 2), fillvalue=-1)
            g.create_group("meta").attrs["instrument"] = "A"
            g["values"].attrs["units"] = "K"
        with vfile.stage_version("r1", timestamp=T0 + dt.timedelta(hours=1)) as g:
            g["values"][3] = -3.5
            g["values"].resize((25,))
            g["grid"].resize((5, 4))
            g["grid"][4] = 9
            g["meta"].attrs["instrument"] = "B"
            g["meta/new"] = np.array([1, 2, 3])
        with vfile.stage_version("r2", prev_version="r0",
                                 timestamp=T0 + dt.timedelta(hours=2)) as g:
            del g["names"]
            g["values"].resize((6,))
        with vfile.stage_version("r3", timestamp=T0 + dt.timedelta(hours=3)) as g:
            g["values"][:] = 1.0

    assert_same(run_both(tmp_path, steps, ["r0", "r1", "r2", "r3"]))


def test_sparse_and_empty_datasets_match(tmp_path):
    def steps(vfile, module, f):
        with vfile.stage_version("r0") as g:
            g.create_dataset("sparse", shape=(1000,), dtype="i8", chunks=(100,))
            g["sparse"][500] = 7
            g.create_dataset("empty", shape=(0,), dtype="f8", chunks=(8,))
        with vfile.stage_version("r1") as g:
            g["empty"].resize((5,))
            g["empty"][:] = 3

    assert_same(run_both(tmp_path, steps, ["r0", "r1"]))


def test_version_indexing_and_timestamps_match(tmp_path):
    seen = {}

    def steps(vfile, module, f):
        for i in range(3):
            with vfile.stage_version(f"r{i}", timestamp=T0 + dt.timedelta(minutes=i)) as g:
                g["x"] = np.full(3, i)
        got = seen.setdefault(module.__name__, [])
        got.append(vfile.current_version)
        got.append(sorted(vfile.versions))
        got.append(vfile[-1]["x"][0])
        got.append(vfile[0]["x"][0])
        got.append(vfile[None]["x"][0])
        got.append(vfile[T0 + dt.timedelta(minutes=1, seconds=30)]["x"][0])
        got.append(vfile.get_version_by_timestamp(T0 + dt.timedelta(minutes=1),
                                                  exact=True)["x"][0])
        got.append(vfile[np.datetime64("2024-05-01T12:02")]["x"][0])
        got.append(vfile["r1"].attrs["prev_version"])
        got.append(vfile["r2"].attrs["timestamp"])
        got.append(dt.datetime.strptime(vfile["r2"].attrs["timestamp"], module.__dict__.get(
            "TIMESTAMP_FMT", compat.TIMESTAMP_FMT)))
        vfile.current_version = "r0"
        got.append(vfile[0]["x"][0])

    run_both(tmp_path, steps, [])
    assert seen["h5forge.versions.compat"] == seen["versioned_hdf5"]


def test_delete_versions_matches(tmp_path):
    def steps(vfile, module, f):
        for i in range(4):
            with vfile.stage_version(f"r{i}") as g:
                if "x" not in g:
                    g.create_dataset("x", shape=(30,), dtype="i8", chunks=(5,))
                g["x"][i * 5:(i + 1) * 5] = i + 1
        module.delete_versions(f, ["r1", "r3"])
        with vfile.stage_version("r4") as g:  # freed chunks get reused
            g["x"][0] = 99

    results = run_both(tmp_path, steps, ["r0", "r2", "r4"])
    assert_same(results)


def test_prev_version_of_survivors_after_delete_matches(tmp_path):
    seen = {}

    def steps(vfile, module, f):
        for i in range(4):
            with vfile.stage_version(f"r{i}") as g:
                g["x"] = [i]
        module.delete_versions(vfile, ["r1", "r2"])
        seen[module.__name__] = (vfile["r3"].attrs["prev_version"], vfile.current_version,
                                 sorted(vfile.versions))

    run_both(tmp_path, steps, [])
    assert seen["h5forge.versions.compat"] == seen["versioned_hdf5"]


def test_modify_metadata_matches(tmp_path):
    seen = {}

    def steps(vfile, module, f):
        with vfile.stage_version("r0") as g:
            g.create_dataset("x", data=np.arange(10), chunks=(3,), fillvalue=0)
        with vfile.stage_version("r1") as g:
            g["x"][1] = 0
        module.modify_metadata(f, "x", dtype="f8", chunks=(4,), fillvalue=-1,
                               compression="gzip", compression_opts=3)
        vf2 = module.VersionedHDF5File(f)
        seen[module.__name__] = [(str(vf2[v]["x"].dtype), vf2[v]["x"].chunks,
                                  vf2[v]["x"].fillvalue, vf2[v]["x"].compression)
                                 for v in ("r0", "r1")]

    assert_same(run_both(tmp_path, steps, ["r0", "r1"]))
    assert seen["h5forge.versions.compat"] == seen["versioned_hdf5"]


def test_get_diff_matches(tmp_path):
    diffs = {}

    def steps(vfile, module, f):
        with vfile.stage_version("r0") as g:
            g.create_dataset("x", data=np.arange(40.0), chunks=(10,))
        with vfile.stage_version("r1") as g:
            g["x"][0] = -1
            g["x"][35] = -2
        with vfile.stage_version("r2") as g:
            g["x"].resize((45,))
            g["x"][42] = 5

    def after(vfile, module):  # versioned-hdf5 diffs only a file reopened after the commits
        diffs[module.__name__] = {
            pair: {tuple((s.start, s.stop) for s in k.raw):
                   tuple(None if v is None else v.tolist() for v in val)
                   for k, val in vfile.get_diff("x", *pair).items()}
            for pair in (("r0", "r1"), ("r1", "r2"), ("r1", "r1"))}

    run_both(tmp_path, steps, [], after)
    assert diffs["h5forge.versions.compat"] == diffs["versioned_hdf5"]
    assert diffs["versioned_hdf5"][("r1", "r1")] == {}


@pytest.mark.parametrize("size", [(6,), [6], 6, np.int8(6), np.asarray([6]), np.asarray(6)])
def test_resize_sizes_match(tmp_path, size):
    def steps(vfile, module, f):
        with vfile.stage_version("r0") as g:
            g.create_dataset("x", shape=(5,), chunks=(3,))
            g.create_dataset("y", data=np.arange(5), chunks=(3,))
            g["x"].resize(size)
            g["y"].resize(size)
            assert g["x"].shape == (6,) and type(g["x"].shape[0]) is int

    assert_same(run_both(tmp_path, steps, ["r0"]))


# -- behaviours users rely on (read from versioned-hdf5's docs and tests) -----------------------

@pytest.fixture(params=list(MODULES))
def vfile(request, tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as f:
        yield MODULES[request.param].VersionedHDF5File(f)


def test_resize_axis_errors_like_numpy(vfile):
    with vfile.stage_version("v0") as sv:
        ds = sv.create_dataset("x", shape=(5, 5), chunks=(3, 3))
        ds.resize(7, axis=-2)
        ds.resize(9.0, axis=0)
        assert ds.shape == (9, 5)
        with pytest.raises(np.exceptions.AxisError):
            ds.resize(8, axis=2)
        with pytest.raises(np.exceptions.AxisError):
            ds.resize(8, axis=-3)
        with pytest.raises(TypeError):
            ds.resize((2, 2), axis=0)


@pytest.mark.parametrize("dtype", ["i2", int, float, np.uint8])
def test_create_dataset_dtype(vfile, dtype):
    with vfile.stage_version("r0") as sv:
        assert sv.create_dataset("x", shape=(2,), dtype=dtype).dtype == np.dtype(dtype)
        assert sv.create_dataset("d", shape=(2,)).dtype == np.float64  # no silent float32
    with vfile.stage_version("r1") as sv:
        assert sv["x"].dtype == np.dtype(dtype) and sv["d"].dtype == np.float64


def test_datasets_resizable_by_default_and_assignment_replaces(vfile):
    with vfile.stage_version("r0") as sv:
        sv.create_dataset("x", data=np.arange(4), chunks=4)  # an int: 1-D chunks
        sv["x"].resize((10,))
        sv["y"] = [1, 2]
        sv["y"] = np.arange(5)  # replaces
    assert vfile["r0"]["x"].shape == (10,)
    np.testing.assert_array_equal(vfile["r0"]["y"][:], np.arange(5))


@pytest.mark.parametrize("name, value", [("fletcher32", True), ("scaleoffset", 5),
                                         ("shuffle", True)])
@pytest.mark.parametrize("sparse", [False, True])
def test_other_filters_are_kept(vfile, name, value, sparse):
    kwargs = {"shape": (2,), "dtype": "i4"} if sparse else {"data": [1, 2]}
    kwargs[name] = value
    with vfile.stage_version("r0") as sv:
        assert getattr(sv.create_dataset("x", **kwargs), name) == value
    with vfile.stage_version("r1") as sv:
        assert getattr(sv["x"], name) == value
    assert getattr(vfile["r1"]["x"], name) == value


@pytest.mark.parametrize("raw", [True, False])
def test_plugin_filter_objects(vfile, raw):
    kwargs = {"compression": 32001, "compression_opts": (0, 0, 0, 0, 7, 1, 2)} if raw else \
        {"compression": hdf5plugin.Blosc(cname="lz4hc", clevel=7,
                                         shuffle=hdf5plugin.Blosc.SHUFFLE)}
    with vfile.stage_version("r0") as sv:
        sv.create_dataset("values", data=np.arange(10), chunks=(5,), **kwargs)
    np.testing.assert_array_equal(vfile["r0"]["values"][:], np.arange(10))


def test_invalid_compression_is_refused_at_create(vfile):
    with pytest.raises(ValueError):
        with vfile.stage_version("r0") as sv:
            sv.create_dataset("values", data=np.arange(10), compression=-1,
                              compression_opts=(0, 0, 0, 0, 7, 1, 2))


def test_errors_are_the_builtin_types(vfile):
    with vfile.stage_version("r0") as g:
        g["x"] = [1]
    with pytest.raises(KeyError):
        vfile["nope"]
    with pytest.raises(IndexError):
        vfile[1]
    with pytest.raises(ValueError):  # an existing version name
        with vfile.stage_version("r0"):
            pass
    with pytest.raises(ValueError):
        vfile.get_version_by_name("/r0")
    with pytest.raises(ValueError):
        vfile[dt.datetime(2024, 1, 1)]  # naive: must be UTC


def test_empty_first_version_and_closed(vfile):
    assert vfile.current_version == "__first_version__"
    with vfile.stage_version("r0", prev_version="") as g:
        g["x"] = [1]
    assert vfile["r0"] == vfile["r0"]
    vfile.close()
    assert vfile.closed
    with pytest.raises(ValueError):
        vfile["r0"]


def test_h5forge_errors_are_h5forge_and_builtin(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as f:
        vfile = compat.VersionedHDF5File(f)
        assert list(vfile.get_version_by_name("")) == []  # (versioned-hdf5 2.6 raises here)
        vfile.close()
        with pytest.raises(VersionClosedError) as info:
            vfile["r0"]
        assert isinstance(info.value, (H5ForgeError, ValueError))
        assert not hasattr(vfile, "f") and f.id.valid  # gone from the object; still open


def test_recreate_dataset_per_version(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as f:
        vfile = compat.VersionedHDF5File(f)
        for i in range(3):
            with vfile.stage_version(f"r{i}") as g:
                if "x" not in g:
                    g["x"] = np.arange(6)
                g["keep"] = [i]

        def callback(dataset, version):
            return None if version == "r1" else dataset[()] * 10

        compat.recreate_dataset(f, "x", callback=callback)
        assert "x" not in vfile["r1"]
        np.testing.assert_array_equal(vfile["r0"]["x"][:], np.arange(6) * 10)
        np.testing.assert_array_equal(vfile["r2"]["x"][:], np.arange(6) * 10)
        np.testing.assert_array_equal(f["x"][()], np.arange(6) * 10)  # the mirror follows
        assert [vfile[f"r{i}"]["keep"][0] for i in range(3)] == [0, 1, 2]


def test_modify_metadata_on_unknown_dataset_is_refused(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as f:
        vfile = compat.VersionedHDF5File(f)
        with vfile.stage_version("r0") as g:
            g["x"] = [1]
        with pytest.raises(ValueError, match="no version holds a dataset '/y'"):
            compat.modify_metadata(f, "y", chunks=(2,))
        np.testing.assert_array_equal(vfile["r0"]["x"][:], [1])


def test_delete_by_something_else_than_a_name(vfile):
    with vfile.stage_version("r0") as g:
        g["x"] = [1]
    with pytest.raises(NotImplementedError):
        del vfile[0]
    with pytest.raises(KeyError):
        del vfile["nope"]
    assert list(vfile.versions) == ["r0"]
