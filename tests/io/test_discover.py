"""The plans of datasets already in a file: get_default_configuration (what repack writes by
default) and get_current_configuration (what they were written with)."""

from __future__ import annotations

import h5py
import hdf5plugin
import numpy as np
import pytest

from h5forge.errors import H5ForgeError, NodeNotFoundError
from h5forge.io import (
    DatasetConfiguration,
    get_current_configuration,
    get_default_configuration,
    write_dataset,
)


@pytest.fixture
def layout(tmp_path):
    """Datasets at several depths, a hard link, soft and external links and an Empty."""
    with h5py.File(tmp_path / "other.h5", "w") as other:
        other["far"] = np.arange(4)
    path = tmp_path / "layout.h5"
    with h5py.File(path, "w") as f:
        f["top"] = np.arange(10.0)
        f["text"] = np.array(["a", "bc"], dtype=h5py.string_dtype())
        grp = f.create_group("grp")
        grp["image"] = np.zeros((30, 20, 3), dtype="u1")
        grp.create_group("deeper")["scalar"] = np.int32(5)
        grp["deeper"]["empty_rows"] = np.zeros((0, 4))
        f["again"] = grp["image"]  # the same dataset under a second name
        grp["again"] = f["top"]
        f["soft"] = h5py.SoftLink("/top")
        f["dangling"] = h5py.SoftLink("/nowhere")
        f["external"] = h5py.ExternalLink("other.h5", "/far")
        f["nothing"] = h5py.Empty("f8")
        f.attrs["note"] = "attributes are not datasets"
    return path


def _addresses(group, locations):
    return [h5py.h5o.get_info(group[loc].id).addr for loc in locations]


@pytest.mark.parametrize("open_as", ["str", "path", "file"])
def test_default_lists_every_dataset_once_with_defaults(layout, open_as):
    if open_as == "file":
        with h5py.File(layout, "r") as f:
            plan = get_default_configuration(f)
            assert f.id.valid  # what it was given it leaves open
    else:
        plan = get_default_configuration(str(layout) if open_as == "str" else layout)
    with h5py.File(layout, "r") as f:
        locations = list(plan)
        assert len(locations) == 5
        # each object once, whichever of its names was found first
        assert len(set(_addresses(f, locations))) == 5
        expected = {"top", "text", "grp/image", "grp/deeper/scalar", "grp/deeper/empty_rows"}
        by_address = {h5py.h5o.get_info(f[loc].id).addr for loc in expected}
        assert set(_addresses(f, locations)) == by_address
        assert not {"soft", "dangling", "external", "nothing"} & set(locations)
        for location, entry in plan.items():
            assert entry.location == location
            dset = f[location]
            assert entry == DatasetConfiguration(location, dset.dtype, dset.shape)
            entry.check_data(dset.shape, dset.dtype)
    # the defaults: gzip 4 where chunkable, contiguous for 0-d and empty datasets
    image = [entry for entry in plan.values() if entry.full_shape == (30, 20, 3)][0]
    assert image.chunk_shape == (30, 20, 3) and image.compression_method == "gzip"
    assert image.compression_options == {"level": 4} and image.filter == ()
    assert plan["grp/deeper/scalar"].chunk_shape is None
    assert plan["grp/deeper/scalar"].compression_method is None
    assert plan["grp/deeper/empty_rows"].chunk_shape is None


def test_default_locations_are_relative_to_the_group(layout):
    with h5py.File(layout, "r") as f:
        plan = get_default_configuration(f["grp"])
        assert sorted(plan) == ["again", "deeper/empty_rows", "deeper/scalar", "image"]
        assert plan["again"].full_shape == (10,)
        assert plan["deeper/scalar"].dtype == np.int32
        assert sorted(get_default_configuration(f["grp/deeper"])) == ["empty_rows", "scalar"]


def test_hard_link_listed_once_in_a_creation_ordered_file(tmp_path):
    path = tmp_path / "ordered.h5"
    with h5py.File(path, "w", track_order=True) as f:
        f["z"] = np.arange(5)
        f["a"] = f["z"]
        f.create_group("g", track_order=True)["m"] = f["z"]
    for function in (get_default_configuration, get_current_configuration):
        plan = function(path)
        assert len(plan) == 1
        with h5py.File(path, "r") as f:
            assert f[list(plan)[0]].shape == (5,)


def test_empty_file_and_group_have_empty_plans(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        f.create_group("g")
    assert len(get_default_configuration(path)) == 0
    assert len(get_current_configuration(path)) == 0


@pytest.fixture
def written(tmp_path):
    """Datasets written with known chunks, compressors and filters."""
    path = tmp_path / "written.h5"
    data = np.arange(120.0).reshape(12, 10)
    with h5py.File(path, "w") as f:
        f.create_dataset("gzip7", data=data, chunks=(4, 10), compression="gzip",
                         compression_opts=7)
        f.create_dataset("gzip_shuffle", data=data, chunks=(3, 5), compression="gzip",
                         shuffle=True)
        f.create_dataset("zstd7", data=data, chunks=(6, 10), **hdf5plugin.Zstd(clevel=7))
        f.create_dataset("zstd_default", data=data, chunks=(12, 10), **hdf5plugin.Zstd())
        f.create_dataset("lzf", data=data, chunks=(2, 2), compression="lzf")
        f.create_dataset("chunked_only", data=data, chunks=(5, 5))
        f.create_dataset("contiguous", data=data)
        f.create_dataset("scalar", data=3.0)
        f.create_dataset("empty_resizable", shape=(0, 4), maxshape=(None, 4), chunks=(64, 4),
                         dtype="i2")
        f.create_dataset("short_resizable", data=np.arange(3), maxshape=(None,), chunks=(100,))
        bitshuffled = DatasetConfiguration("bitshuffle_zstd", data.dtype, data.shape,
                                           chunk_shape=(4, 10), compression_method="zstd",
                                           compression_options={"clevel": 2},
                                           filter="bitshuffle")
        f.create_dataset("bitshuffle_zstd", data=data, **bitshuffled.h5py_kwargs())
        f.create_dataset("bitshuffle_lz4", data=data, chunks=(4, 10), **hdf5plugin.Bitshuffle())
    return path


@pytest.mark.parametrize("location, chunks, method, options, filters", [
    ("gzip7", (4, 10), "gzip", {"level": 7}, ()),
    ("gzip_shuffle", (3, 5), "gzip", {"level": 4}, ("shuffle",)),
    ("zstd7", (6, 10), "zstd", {"clevel": 7}, ()),
    ("zstd_default", (12, 10), "zstd", {"clevel": 3}, ()),
    ("lzf", (2, 2), "lzf", {}, ()),
    ("chunked_only", (5, 5), None, None, ()),
    ("contiguous", None, None, None, ()),
    ("scalar", None, None, None, ()),
    ("empty_resizable", None, None, None, ()),  # no extent to chunk
    ("short_resizable", (3,), None, None, ()),  # the chunk clipped to the extent
    ("bitshuffle_zstd", (4, 10), "zstd", {"clevel": 2}, ("bitshuffle",)),
])
def test_current_reads_how_datasets_were_written(written, location, chunks, method, options,
                                                 filters):
    entry = get_current_configuration(written)[location]
    assert entry.chunk_shape == chunks
    assert entry.compression_method == method
    assert entry.compression_options == options
    assert entry.filter == filters
    with h5py.File(written, "r") as f:
        entry.check_data(f[location].shape, f[location].dtype)


def test_current_bitshuffle_as_the_compressor(written):
    entry = get_current_configuration(written)["bitshuffle_lz4"]
    assert entry.compression_method == "bitshuffle" and entry.filter == ()
    assert entry.compression_options["cname"] == "lz4"


def test_current_bitshuffle_filter_with_a_block_size(tmp_path):
    """A pure bit shuffle (no compression of its own) ahead of gzip is a filter, whatever its
    block size: the filter's cd_values are (major, minor, itemsize, block size, compression)."""
    path = tmp_path / "blocksize.h5"
    shuffle = hdf5plugin.Bitshuffle(nelems=2048, cname="none")
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_filter(shuffle.filter_id, h5py.h5z.FLAG_MANDATORY, shuffle.filter_options)
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=np.arange(4096.0), chunks=(4096,), dcpl=dcpl,
                         compression="gzip", compression_opts=5)
        assert f["d"].id.get_create_plist().get_nfilters() == 2
    entry = get_current_configuration(path)["d"]
    assert entry.compression_method == "gzip" and entry.compression_options == {"level": 5}
    assert entry.filter == ("bitshuffle",)


def test_current_of_a_written_plan_is_that_plan(tmp_path):
    path = tmp_path / "planned.h5"
    plans = [
        DatasetConfiguration("a", "f4", (50, 6), chunk_shape=(10, 3), buffer_shape=(20, 6),
                             compression_method="zstd", compression_options={"clevel": 9},
                             filter="shuffle"),
        DatasetConfiguration("b/c", "i8", (40,), chunk_shape=(8,)),
        DatasetConfiguration("d", "u2", (7, 7), chunk_shape=None, compression_method=None),
    ]
    with h5py.File(path, "w") as f:
        for plan in plans:
            write_dataset(f, plan.location, np.ones(plan.full_shape, plan.dtype), plan)
    current = get_current_configuration(path)
    for plan in plans:
        entry = current[plan.location]
        assert (entry.chunk_shape, entry.compression_method, entry.compression_options,
                entry.filter) == (plan.chunk_shape, plan.compression_method,
                                  plan.compression_options, plan.filter)
        assert (entry.dtype, entry.full_shape) == (plan.dtype, plan.full_shape)


def test_current_is_relative_to_a_group_and_skips_links(layout):
    with h5py.File(layout, "r") as f:
        plan = get_current_configuration(f["grp"])
        assert sorted(plan) == ["again", "deeper/empty_rows", "deeper/scalar", "image"]
        assert all(entry.chunk_shape is None for entry in plan.values())  # all contiguous
    assert len(get_current_configuration(layout)) == 5


@pytest.mark.parametrize("function", [get_default_configuration, get_current_configuration])
def test_missing_or_unreadable_file(tmp_path, function):
    with pytest.raises(NodeNotFoundError):
        function(tmp_path / "missing.h5")
    assert issubclass(NodeNotFoundError, H5ForgeError)
    junk = tmp_path / "junk.h5"
    junk.write_text("not HDF5")
    with pytest.raises(H5ForgeError):
        function(junk)
