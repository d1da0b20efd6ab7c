"""DatasetConfiguration and BackendConfiguration: defaults, validation, h5py keywords, text."""

from __future__ import annotations

import re

import h5py
import hdf5plugin
import numpy as np
import pytest

from h5forge.errors import ConfigurationError, H5ForgeError
from h5forge.io import (
    BackendConfiguration,
    DatasetConfiguration,
    estimate_default_buffer_shape,
    estimate_default_chunk_shape,
)

FIELDS = ("chunk_shape", "buffer_shape", "compression_method", "compression_options", "filter")


def state(cfg):
    return {name: getattr(cfg, name) for name in FIELDS}


@pytest.fixture
def cfg():
    """100 x 60 float64 with chunks (10, 20) and buffers (50, 60): a small plan to change."""
    return DatasetConfiguration("grp/data", "f8", (100, 60), chunk_shape=(10, 20),
                                buffer_shape=(50, 60))


# ---- construction and defaults ----------------------------------------------------------------

@pytest.mark.parametrize("shape, dtype", [
    ((1_000_000, 384), "int16"), ((10**8,), "float64"), ((10**8, 4), "float32"),
    ((3600, 304, 608), "uint16"), ((10, 20), "float64"), ((7,), h5py.string_dtype()),
])
def test_defaults_come_from_the_estimates(shape, dtype):
    cfg = DatasetConfiguration("a", dtype, shape)
    assert cfg.location == "a"
    assert cfg.dtype == np.dtype(dtype)
    assert cfg.full_shape == shape
    assert cfg.chunk_shape == estimate_default_chunk_shape(shape, dtype)
    assert cfg.buffer_shape == estimate_default_buffer_shape(shape, cfg.chunk_shape, dtype)
    assert cfg.compression_method == "gzip"
    assert cfg.compression_options == {"level": 4}
    assert cfg.filter == ()


def test_default_buffer_follows_a_given_chunk_shape():
    cfg = DatasetConfiguration("a", "f8", (10**8,), chunk_shape=(1000,))
    assert cfg.buffer_shape == estimate_default_buffer_shape((10**8,), (1000,), "f8")
    assert cfg.buffer_shape == (62_500_000,)


def test_derived_sizes():
    cfg = DatasetConfiguration("a", "f4", (10**8, 4))
    assert cfg.itemsize == 4
    assert cfg.full_size == 1_600_000_000
    assert cfg.chunk_shape == (625_000, 4) and cfg.chunk_size == 10_000_000
    assert cfg.buffer_shape == (31_250_000, 4) and cfg.buffer_size == 500_000_000
    assert DatasetConfiguration("v", h5py.string_dtype(), (10,)).itemsize == 16


@pytest.mark.parametrize("shape", [(), (0,), (0, 5), (5, 0, 3)])
def test_scalar_and_empty_datasets_are_contiguous_and_uncompressed(shape):
    cfg = DatasetConfiguration("a", "f8", shape)
    assert cfg.chunk_shape is None
    assert cfg.chunk_size is None
    assert cfg.buffer_shape == shape
    assert cfg.compression_method is None
    assert cfg.compression_options is None
    assert cfg.filter == ()
    assert cfg.h5py_kwargs() == {"chunks": None}


@pytest.mark.parametrize("shape", [(), (0, 5)])
def test_scalar_and_empty_datasets_refuse_chunks_and_compression(shape):
    cfg = DatasetConfiguration("s/x", "f8", shape)
    with pytest.raises(ConfigurationError, match="^s/x: .*cannot be chunked"):
        cfg.chunk_shape = tuple(1 for _ in shape)
    with pytest.raises(ConfigurationError, match="^s/x: a contiguous dataset"):
        cfg.compression_method = "gzip"
    with pytest.raises(ConfigurationError, match="^s/x: a contiguous dataset"):
        cfg.filter = "shuffle"
    with pytest.raises(ConfigurationError, match="^s/x: "):
        DatasetConfiguration("s/x", "f8", shape, compression_method="gzip")
    assert cfg.chunk_shape is None and cfg.compression_method is None


def test_scalar_and_empty_datasets_are_written_contiguous(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as f:
        for name, data in [("scalar", np.float64(2.5)), ("empty", np.zeros((0, 5)))]:
            cfg = DatasetConfiguration(name, data.dtype, data.shape)
            dset = f.create_dataset(name, data=data, **cfg.h5py_kwargs())
            assert dset.chunks is None and dset.compression is None
            np.testing.assert_array_equal(dset[()], data)


@pytest.mark.parametrize("location, expected", [
    ("a", "a"), ("/a/b/", "a/b"), ("a//b", "a/b"), ("/x", "x"),
])
def test_location_is_normalized(location, expected):
    assert DatasetConfiguration(location, "f8", (3,)).location == expected


@pytest.mark.parametrize("location", ["", "/", "///", 5, None, b"a"])
def test_bad_location(location):
    with pytest.raises(ConfigurationError, match="location"):
        DatasetConfiguration(location, "f8", (3,))


def test_bad_dtype_and_full_shape_name_the_location():
    with pytest.raises(ConfigurationError, match="^g/x: not a dtype: 'nonsense'"):
        DatasetConfiguration("g/x", "nonsense", (3,))
    with pytest.raises(ConfigurationError, match=r"^g/x: full_shape \(-3,\) has a negative"):
        DatasetConfiguration("g/x", "f8", (-3,))
    with pytest.raises(ConfigurationError, match="^g/x: full_shape must be a tuple of integers"):
        DatasetConfiguration("g/x", "f8", (3.0,))
    with pytest.raises(ConfigurationError, match="^g/x: full_shape must be a tuple of integers"):
        DatasetConfiguration("g/x", "f8", 3)


def test_numpy_integers_are_accepted_and_stored_as_int():
    cfg = DatasetConfiguration("a", "f8", np.array([100, 60]),
                               chunk_shape=(np.int64(10), np.int32(20)),
                               buffer_shape=[np.uint16(50), 60])
    assert cfg.full_shape == (100, 60) and cfg.chunk_shape == (10, 20)
    assert cfg.buffer_shape == (50, 60)
    assert all(type(n) is int for n in (*cfg.full_shape, *cfg.chunk_shape, *cfg.buffer_shape))


def test_a_list_is_stored_as_a_tuple(cfg):
    cfg.chunk_shape = [5, 20]
    assert cfg.chunk_shape == (5, 20)
    cfg.filter = ["shuffle"]
    assert cfg.filter == ("shuffle",)


# ---- frozen fields ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, value", [
    ("location", "other"), ("dtype", np.dtype("f4")), ("full_shape", (200, 60)),
])
def test_frozen_fields_cannot_be_assigned(cfg, name, value):
    before = getattr(cfg, name)
    with pytest.raises(ConfigurationError, match=f"^grp/data: {name} is fixed by the data"):
        setattr(cfg, name, value)
    with pytest.raises(ConfigurationError, match=f"^grp/data: {name} is fixed by the data"):
        cfg.update(**{name: value})
    assert getattr(cfg, name) == before


def test_unknown_fields(cfg):
    before = state(cfg)
    with pytest.raises(AttributeError, match="no field 'chunks'; fields: chunk_shape"):
        cfg.chunks = (5, 5)
    with pytest.raises(ConfigurationError, match=r"^grp/data: unknown field\(s\) chunks"):
        cfg.update(chunks=(5, 5))
    with pytest.raises(ConfigurationError, match="unknown field"):
        cfg.update(chunk_shape=(5, 20), compresion_method="lzf")  # typo: nothing changes
    with pytest.raises(TypeError):
        DatasetConfiguration("a", "f8", (3,), chunks=(3,))
    assert state(cfg) == before
    assert not hasattr(cfg, "chunks")


# ---- validation on every assignment ---------------------------------------------------------

BAD_ASSIGNMENTS = [
    ("chunk_shape", (0, 20), r"size 0 on axis 0; sizes must be positive"),
    ("chunk_shape", (10, -4), r"size -4 on axis 1; sizes must be positive"),
    ("chunk_shape", (10,), r"chunk_shape \(10,\) has rank 1 but full_shape \(100, 60\) has rank 2"),
    ("chunk_shape", (10, 20, 1), "has rank 3"),
    ("chunk_shape", (), "has rank 0"),
    ("chunk_shape", (200, 20), r"exceeds full_shape \(100, 60\) on axis 0"),
    ("chunk_shape", (10.0, 20), "chunk_shape must be a tuple of integers"),
    ("chunk_shape", (10, 20.5), "chunk_shape must be a tuple of integers"),
    ("chunk_shape", (True, 20), "chunk_shape must be a tuple of integers"),
    ("chunk_shape", (np.bool_(True), 20), "chunk_shape must be a tuple of integers"),
    ("chunk_shape", ("10", 20), "chunk_shape must be a tuple of integers"),
    ("chunk_shape", 10, "chunk_shape must be a tuple of integers"),
    ("chunk_shape", (100, 60), r"buffer_shape \(50, 60\) is smaller than chunk_shape"),
    ("chunk_shape", (15, 20), "not a whole number of chunks"),  # 50 % 15 != 0
    ("buffer_shape", (0, 60), "size 0 on axis 0; sizes must be positive"),
    ("buffer_shape", (-10, 60), "sizes must be positive"),
    ("buffer_shape", (50,), "buffer_shape \\(50,\\) has rank 1"),
    ("buffer_shape", (110, 60), r"buffer_shape \(110, 60\) exceeds full_shape"),
    ("buffer_shape", (5, 60), "is smaller than chunk_shape"),
    ("buffer_shape", (55, 60), r"not a whole number of chunks \(10, 20\) on axis 0"),
    ("buffer_shape", (50, 50), "on axis 1"),
    ("buffer_shape", (50.0, 60), "buffer_shape must be a tuple of integers"),
    ("buffer_shape", (False, 60), "buffer_shape must be a tuple of integers"),
    ("compression_method", "gzipp", "unknown compression method 'gzipp'"),
    ("compression_options", {"level": 11}, "gzip level must be an integer 0..9"),
    ("compression_options", {"clevel": 3}, r"unknown option\(s\) clevel"),
    ("filter", ["shuffle", "bitshuffle"], "choose one of shuffle and bitshuffle"),
    ("filter", "scaleoffset", "unknown filter 'scaleoffset'"),
]


@pytest.mark.parametrize("name, value, message", BAD_ASSIGNMENTS)
def test_bad_assignment_is_refused_and_changes_nothing(cfg, name, value, message):
    before = state(cfg)
    with pytest.raises(ConfigurationError, match=message) as info:
        setattr(cfg, name, value)
    assert str(info.value).startswith("grp/data: ")
    assert state(cfg) == before
    with pytest.raises(ConfigurationError, match=message):
        cfg.update(**{name: value})
    assert state(cfg) == before


@pytest.mark.parametrize("name, value, message", BAD_ASSIGNMENTS)
def test_bad_value_at_construction_is_refused(name, value, message):
    fields = {"chunk_shape": (10, 20), "buffer_shape": (50, 60), name: value}
    with pytest.raises(ConfigurationError, match=message) as info:
        DatasetConfiguration("grp/data", "f8", (100, 60), **fields)
    assert str(info.value).startswith("grp/data: ")


@pytest.mark.parametrize("value", [5, True, 1.5, object()])
def test_a_filter_that_is_not_a_name_or_a_list_is_a_configuration_error(cfg, value):
    before = state(cfg)
    with pytest.raises(ConfigurationError, match="^grp/data: "):
        cfg.filter = value
    assert state(cfg) == before


@pytest.mark.parametrize("chunk, buffer", [
    ((10, 20), (100, 60)),  # buffer = the full shape
    ((30, 20), (90, 60)),  # whole chunks
    ((30, 25), (100, 60)),  # full extent, not a multiple of the chunk: allowed
    ((30, 20), (100, 40)),  # axis 0 spans the full extent, axis 1 is whole chunks
    ((100, 60), (100, 60)),  # one chunk
    ((1, 1), (1, 1)),
])
def test_valid_chunk_and_buffer_pairs(cfg, chunk, buffer):
    cfg.update(chunk_shape=chunk, buffer_shape=buffer)
    assert (cfg.chunk_shape, cfg.buffer_shape) == (chunk, buffer)


def test_buffer_not_a_multiple_is_refused_short_of_the_full_extent(cfg):
    with pytest.raises(ConfigurationError, match="use a multiple of 30 or 100"):
        cfg.update(chunk_shape=(30, 20), buffer_shape=(99, 60))
    assert (cfg.chunk_shape, cfg.buffer_shape) == ((10, 20), (50, 60))
    cfg.update(chunk_shape=(30, 20), buffer_shape=(100, 60))
    assert (cfg.chunk_shape, cfg.buffer_shape) == ((30, 20), (100, 60))


def test_chunks_of_4_gib_or_more_are_refused():
    cfg = DatasetConfiguration("big", "u1", (2**33,))
    with pytest.raises(ConfigurationError, match="^big: .*4 GiB or more"):
        cfg.update(chunk_shape=(2**32,), buffer_shape=(2**32,))
    # the largest chunk HDF5 takes: 2**32 - 1 bytes
    cfg.update(chunk_shape=(2**32 - 1,), buffer_shape=(2**33,))
    assert cfg.chunk_size == 2**32 - 1
    wide = DatasetConfiguration("wide", "f4", (2**31,))
    with pytest.raises(ConfigurationError, match="4 GiB"):
        wide.update(chunk_shape=(2**30,), buffer_shape=(2**31,))  # exactly 4 GiB
    vlen = DatasetConfiguration("vlen", h5py.string_dtype(), (2**29,))
    with pytest.raises(ConfigurationError, match="4 GiB"):
        vlen.update(chunk_shape=(2**28,), buffer_shape=(2**29,))  # 16 bytes per reference


def test_contiguous_refuses_compression_and_filters(cfg):
    with pytest.raises(ConfigurationError, match="^grp/data: a contiguous dataset"):
        cfg.chunk_shape = None  # gzip is still set
    assert cfg.chunk_shape == (10, 20)
    with pytest.raises(ConfigurationError, match="a contiguous dataset"):
        cfg.update(chunk_shape=None, compression_method=None, filter="shuffle")
    with pytest.raises(ConfigurationError, match="a contiguous dataset"):
        DatasetConfiguration("a", "f8", (10,), chunk_shape=None, compression_method="lzf")
    cfg.update(chunk_shape=None, compression_method=None)
    assert cfg.chunk_shape is None and cfg.compression_method is None
    assert cfg.compression_options is None and cfg.buffer_shape == (50, 60)
    assert cfg.h5py_kwargs() == {"chunks": None}


def test_contiguous_by_default_when_chunk_shape_none():
    cfg = DatasetConfiguration("a", "f8", (100,), chunk_shape=None)
    assert cfg.compression_method is None and cfg.compression_options is None
    assert cfg.buffer_shape == (100,)  # from a chunk of 1 element: the whole array fits


# ---- update() and compression assignments ---------------------------------------------------

def test_update_changes_fields_that_depend_on_each_other_at_once(cfg):
    with pytest.raises(ConfigurationError, match="use update"):
        cfg.chunk_shape = (100, 60)  # larger than the buffer (50, 60)
    with pytest.raises(ConfigurationError, match="is smaller than chunk_shape"):
        cfg.buffer_shape = (5, 20)  # smaller than the chunk (10, 20)
    cfg.chunk_shape = (25, 30)  # the buffer (50, 60) is whole chunks of this too: fine
    assert cfg.chunk_shape == (25, 30)
    result = cfg.update(chunk_shape=(100, 60), buffer_shape=(100, 60),
                        compression_method="zstd", compression_options={"clevel": 9},
                        filter="bitshuffle")
    assert result is cfg
    assert state(cfg) == {"chunk_shape": (100, 60), "buffer_shape": (100, 60),
                          "compression_method": "zstd", "compression_options": {"clevel": 9},
                          "filter": ("bitshuffle",)}


def test_failed_update_changes_nothing(cfg):
    before = state(cfg)
    with pytest.raises(ConfigurationError, match="gzip level"):
        cfg.update(chunk_shape=(50, 60), buffer_shape=(100, 60), compression_options={"level": 99})
    assert state(cfg) == before
    with pytest.raises(ConfigurationError, match="exceeds"):
        cfg.update(compression_method="zstd", buffer_shape=(100, 61))
    assert state(cfg) == before


def test_update_with_nothing_keeps_everything(cfg):
    before = state(cfg)
    assert cfg.update() is cfg
    assert state(cfg) == before


def test_assigning_a_method_alone_resets_options_to_its_defaults(cfg):
    cfg.compression_options = {"level": 9}
    cfg.compression_method = "zstd"
    assert cfg.compression_options == {"clevel": 3}
    cfg.compression_method = "blosc"
    assert cfg.compression_options == {"cname": "lz4", "clevel": 5, "shuffle": 1}
    cfg.compression_method = "lzf"
    assert cfg.compression_options == {}
    cfg.compression_method = "gzip"
    assert cfg.compression_options == {"level": 4}
    cfg.compression_method = None
    assert cfg.compression_options is None
    cfg.update(compression_method="zstd", compression_options={"clevel": 1})
    assert cfg.compression_options == {"clevel": 1}


def test_options_alone_are_checked_against_the_current_method(cfg):
    cfg.compression_options = {"level": 1}
    assert (cfg.compression_method, cfg.compression_options) == ("gzip", {"level": 1})
    cfg.compression_options = None
    assert cfg.compression_options == {"level": 4}
    cfg.compression_method = None
    with pytest.raises(ConfigurationError, match="without a compression_method"):
        cfg.compression_options = {"level": 1}


def test_options_given_are_copied(cfg):
    options = {"level": 2}
    cfg.compression_options = options
    options["level"] = 99
    assert cfg.compression_options == {"level": 2}


def test_method_name_stored_in_lower_case(cfg):
    cfg.compression_method = "ZSTD"
    assert cfg.compression_method == "zstd"


@pytest.mark.parametrize("value, expected", [
    ("shuffle", ("shuffle",)), ("bitshuffle", ("bitshuffle",)), (["Shuffle"], ("shuffle",)),
    ((), ()), (None, ()), ([], ()),
])
def test_filter_values(cfg, value, expected):
    cfg.filter = value
    assert cfg.filter == expected


@pytest.mark.parametrize("value, message", [
    (["shuffle", "bitshuffle"], "choose one of shuffle and bitshuffle, not both"),
    ("bitshuffle2", "unknown filter 'bitshuffle2'; available: shuffle, bitshuffle"),
    (["shuffle", "SHUFFLE"], "filter 'shuffle' given twice"),
])
def test_bad_filters(cfg, value, message):
    with pytest.raises(ConfigurationError, match=f"^grp/data: {message}"):
        cfg.filter = value
    assert cfg.filter == ()


def test_filter_without_compression_is_allowed(cfg):
    cfg.update(compression_method=None, filter="shuffle")
    assert cfg.h5py_kwargs() == {"chunks": (10, 20), "shuffle": True}


# ---- h5py keywords, applied to real datasets ------------------------------------------------

def pipeline(dset):
    plist = dset.id.get_create_plist()
    return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]


def create(tmp_path, cfg, data, name="x"):
    f = h5py.File(tmp_path / "f.h5", "a")
    dset = f.create_dataset(name, data=data, **cfg.h5py_kwargs())
    return f, dset


def test_h5py_kwargs_default_plan(tmp_path):
    data = np.arange(2000, dtype="i4").reshape(100, 20)
    cfg = DatasetConfiguration("x", data.dtype, data.shape)
    assert cfg.h5py_kwargs() == {"chunks": (100, 20), "compression": "gzip",
                                 "compression_opts": 4}
    f, dset = create(tmp_path, cfg, data)
    with f:
        assert dset.chunks == (100, 20)
        assert dset.compression == "gzip" and dset.compression_opts == 4
        assert dset.shuffle is False
        assert dset._filters == {"gzip": 4}
        np.testing.assert_array_equal(dset[()], data)


def test_h5py_kwargs_gzip_with_shuffle(tmp_path, cfg):
    cfg.update(compression_options={"level": 9}, filter="shuffle")
    f, dset = create(tmp_path, cfg, np.ones((100, 60)))
    with f:
        assert dset.chunks == (10, 20)
        assert dset.compression == "gzip" and dset.compression_opts == 9
        assert dset.shuffle is True
        assert pipeline(dset) == [h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_DEFLATE]
        assert dset._filters == {"shuffle": (8,), "gzip": 9}


def test_h5py_kwargs_lzf(tmp_path, cfg):
    cfg.compression_method = "lzf"
    assert cfg.h5py_kwargs() == {"chunks": (10, 20), "compression": "lzf"}
    f, dset = create(tmp_path, cfg, np.ones((100, 60)))
    with f:
        assert dset.compression == "lzf" and dset.compression_opts is None


def test_h5py_kwargs_plugin(tmp_path, cfg):
    cfg.update(compression_method="zstd", compression_options={"clevel": 7})
    kwargs = cfg.h5py_kwargs()
    assert kwargs == {"chunks": (10, 20), "compression": hdf5plugin.ZSTD_ID,
                      "compression_opts": (7,)}
    f, dset = create(tmp_path, cfg, np.ones((100, 60)))
    with f:
        assert dset.chunks == (10, 20)
        assert dset._filters == {str(hdf5plugin.ZSTD_ID): (7,)}


@pytest.mark.parametrize("method, method_id", [
    ("zstd", hdf5plugin.ZSTD_ID), ("gzip", h5py.h5z.FILTER_DEFLATE),
    ("lz4", hdf5plugin.LZ4_ID), ("lzf", h5py.h5z.FILTER_LZF),
])
def test_bitshuffle_filter_goes_before_the_compressor(tmp_path, cfg, method, method_id):
    cfg.update(compression_method=method, filter="bitshuffle")
    data = np.arange(6000, dtype="f8").reshape(100, 60)
    f, dset = create(tmp_path, cfg, data)
    with f:
        assert pipeline(dset) == [hdf5plugin.BSHUF_ID, method_id]
        assert dset.shuffle is False
        assert dset.chunks == (10, 20)
        _id, _flags, values, _name = dset.id.get_create_plist().get_filter(0)
        assert values[3:4] in ((), (0,))  # a pure bit shuffle: no compression inside it
        np.testing.assert_array_equal(dset[()], data)


def test_bitshuffle_filter_alone(tmp_path, cfg):
    cfg.update(compression_method=None, filter="bitshuffle")
    data = np.arange(6000, dtype="f8").reshape(100, 60)
    f, dset = create(tmp_path, cfg, data)
    with f:
        assert pipeline(dset) == [hdf5plugin.BSHUF_ID]
        np.testing.assert_array_equal(dset[()], data)


def test_h5py_kwargs_can_be_used_for_several_datasets(tmp_path, cfg):
    cfg.update(compression_method="zstd", filter="bitshuffle")
    data = np.ones((100, 60))
    with h5py.File(tmp_path / "f.h5", "w") as f:
        first = f.create_dataset("a", data=data, **cfg.h5py_kwargs())
        second = f.create_dataset("b", data=data, **cfg.h5py_kwargs())
        assert pipeline(first) == pipeline(second) == [hdf5plugin.BSHUF_ID, hdf5plugin.ZSTD_ID]


def test_h5py_kwargs_contiguous(tmp_path, cfg):
    cfg.update(chunk_shape=None, compression_method=None)
    f, dset = create(tmp_path, cfg, np.ones((100, 60)))
    with f:
        assert dset.chunks is None and dset.compression is None and pipeline(dset) == []


def test_h5py_kwargs_vlen_strings(tmp_path):
    data = np.array(["a", "bb", "ccc", "dddd"], dtype=object)
    cfg = DatasetConfiguration("s", h5py.string_dtype(), data.shape, compression_method="zstd")
    with h5py.File(tmp_path / "f.h5", "w") as f:
        dset = f.create_dataset("s", data=data, dtype=cfg.dtype, **cfg.h5py_kwargs())
        assert dset.chunks == (4,)
        assert list(dset.asstr()[()]) == ["a", "bb", "ccc", "dddd"]


# ---- check_data ------------------------------------------------------------------------------

def test_check_data_accepts_what_the_plan_was_made_for(cfg):
    assert cfg.check_data((100, 60), np.dtype("f8")) is None
    assert cfg.check_data([100, 60], "float64") is None
    vlen = DatasetConfiguration("v", h5py.string_dtype(), (3,))
    assert vlen.check_data((3,), h5py.string_dtype()) is None


@pytest.mark.parametrize("shape, dtype, data_text", [
    ((100, 61), "f8", r"\(100, 61\) float64"),
    ((60, 100), "f8", r"\(60, 100\) float64"),
    ((6000,), "f8", r"\(6000,\) float64"),
    ((100, 60), "f4", r"\(100, 60\) float32"),
    ((100, 60), "i8", r"\(100, 60\) int64"),
])
def test_check_data_mismatch(cfg, shape, dtype, data_text):
    with pytest.raises(ConfigurationError) as info:
        cfg.check_data(shape, dtype)
    message = str(info.value)
    assert message.startswith(r"grp/data: the plan is for (100, 60) float64 but the data is")
    assert re.search(data_text, message)
    with pytest.raises(ConfigurationError, match="^file.h5:/grp/data: the plan is for"):
        cfg.check_data(shape, dtype, where="file.h5:/grp/data")


def test_check_data_tells_vlen_strings_from_bytes():
    cfg = DatasetConfiguration("v", h5py.string_dtype("utf-8"), (3,))
    with pytest.raises(ConfigurationError, match="vlen-str but the data is .*vlen-bytes"):
        cfg.check_data((3,), h5py.string_dtype("ascii"))


# ---- str() and repr() -------------------------------------------------------------------------

def test_str_of_a_chunked_dataset():
    cfg = DatasetConfiguration("rec/data", "f4", (10**8, 4),
                               compression_method="zstd", compression_options={"clevel": 5},
                               filter="shuffle")
    text = str(cfg)
    lines = text.splitlines()
    assert lines[0] == "rec/data"
    assert lines[1] == "-" * len("rec/data")
    for expected in ["dtype", "float32", "full shape", "(100000000, 4)", "full size",
                     "1.60 GB", "buffer shape", "(31250000, 4)", "expected RAM", "500.00 MB",
                     "chunk shape", "(625000, 4)", "disk space per chunk",
                     "10.00 MB before compression", "compression", "zstd (clevel=5)",
                     "filter", "shuffle"]:
        assert expected in text, expected
    row = next(line for line in lines if "full size" in line)
    assert row.strip().endswith(": 1.60 GB")


def test_str_of_a_default_plan_shows_gzip_level():
    text = str(DatasetConfiguration("a", "i2", (10**7, 128)))
    assert "gzip (level=4)" in text
    assert "2.56 GB" in text and "(39062, 128)" in text and "(1953100, 128)" in text
    assert "filter" not in text  # no filter row without a filter


def test_str_of_a_contiguous_dataset():
    text = str(DatasetConfiguration("c", "u1", (50,), chunk_shape=None))
    assert "None (contiguous)" in text
    assert "disk space per chunk" not in text
    assert "compression" in text and text.splitlines()[-1].endswith(": none")
    assert "50 B" in text


def test_str_of_a_scalar_and_of_vlen_strings():
    assert "full shape   : ()" in str(DatasetConfiguration("s", "f8", ()))
    text = str(DatasetConfiguration("names", h5py.string_dtype(), (100,)))
    assert "vlen-str" in text and "1.60 KB" in text


def test_repr(cfg):
    text = repr(cfg)
    assert text.startswith("DatasetConfiguration('grp/data', 'float64', (100, 60), ")
    assert "chunk_shape=(10, 20)" in text and "compression_method='gzip'" in text


# ---- equality and dict form ----------------------------------------------------------------

def test_equality(cfg):
    same = DatasetConfiguration("/grp/data/", np.dtype("float64"), (100, 60),
                                chunk_shape=(10, 20), buffer_shape=(50, 60))
    assert cfg == same
    same.compression_method = "lzf"
    assert cfg != same
    other = DatasetConfiguration("grp/other", "f8", (100, 60), chunk_shape=(10, 20),
                                 buffer_shape=(50, 60))
    assert cfg != other
    assert cfg != "grp/data"
    with pytest.raises(TypeError):
        hash(cfg)


def test_to_dict(cfg):
    assert cfg.to_dict() == {"dtype": "<f8", "full_shape": [100, 60], "chunk_shape": [10, 20],
                             "buffer_shape": [50, 60], "compression_method": "gzip",
                             "compression_options": {"level": 4}, "filter": []}
    assert DatasetConfiguration("s", "f8", ()).to_dict()["chunk_shape"] is None


def test_to_dict_is_a_copy(cfg):
    # editing the dict form (to write it out, say) must not change the plan behind validation
    fields = cfg.to_dict()
    fields["compression_options"]["level"] = 99
    fields["chunk_shape"][0] = 1000
    assert cfg.compression_options == {"level": 4}
    assert cfg.chunk_shape == (10, 20)


@pytest.mark.parametrize("make", [
    lambda: DatasetConfiguration("a/b", "f8", (100, 60), chunk_shape=(10, 20),
                                 buffer_shape=(50, 60)),
    lambda: DatasetConfiguration("a", "i2", (1000, 16), compression_method="blosc",
                                 compression_options={"cname": "zstd"}, filter="bitshuffle"),
    lambda: DatasetConfiguration("s", "f8", ()),
    lambda: DatasetConfiguration("e", "f8", (0, 3)),
    lambda: DatasetConfiguration("c", "u1", (10,), chunk_shape=None),
    lambda: DatasetConfiguration("t", np.dtype([("a", "<i4"), ("b", "<f8", (2,))]), (5,)),
    lambda: DatasetConfiguration("v", h5py.string_dtype(), (5,), compression_method="lzf"),
    lambda: DatasetConfiguration("z", "f4", (64, 64), compression_method="zfp",
                                 compression_options={"accuracy": 0.01}),
])
def test_dict_round_trip(make):
    cfg = make()
    again = DatasetConfiguration.from_dict(cfg.location, cfg.to_dict())
    assert again == cfg
    assert again.dtype == cfg.dtype
    assert h5py.check_string_dtype(again.dtype) == h5py.check_string_dtype(cfg.dtype)


def test_from_dict_fills_defaults():
    cfg = DatasetConfiguration.from_dict("a", {"dtype": "<i2", "full_shape": [10**7, 128]})
    assert cfg == DatasetConfiguration("a", "i2", (10**7, 128))
    cfg = DatasetConfiguration.from_dict("a", {"dtype": "<f8", "full_shape": [100],
                                               "compression_method": "zstd"})
    assert cfg.compression_options == {"clevel": 3}
    cfg = DatasetConfiguration.from_dict("a", {"dtype": "<f8", "full_shape": [100],
                                               "chunk_shape": None})
    assert cfg.compression_method is None


@pytest.mark.parametrize("fields, message", [
    ({"full_shape": [3]}, "lacks 'dtype'"),
    ({"dtype": "<f8"}, "lacks 'full_shape'"),
    ({"dtype": "<f8", "full_shape": [3], "chunks": [3]}, r"unknown field\(s\) chunks"),
    ({"dtype": "nonsense", "full_shape": [3]}, "bad dtype 'nonsense'"),
    ({"dtype": 5, "full_shape": [3]}, "bad dtype 5"),
    ({"dtype": "<f8", "full_shape": [3], "chunk_shape": [4]}, "exceeds"),
    ([1, 2], "a dataset plan must be a mapping of fields, got list"),
])
def test_from_dict_errors_name_the_location(fields, message):
    with pytest.raises(ConfigurationError, match=f"^g/x: .*{message}"):
        DatasetConfiguration.from_dict("/g/x", fields)


# ---- BackendConfiguration -----------------------------------------------------------------

@pytest.fixture
def plan():
    return BackendConfiguration([
        DatasetConfiguration("rec/data", "i2", (10**7, 128)),
        DatasetConfiguration("rec/time", "f8", (10**7,), compression_method="zstd"),
        DatasetConfiguration("meta/name", h5py.string_dtype(), ()),
        DatasetConfiguration("meta/notes", "u1", (50,), chunk_shape=None),
    ])


def test_backend_access(plan):
    assert plan["rec/data"].full_shape == (10**7, 128)
    assert plan["/rec/data/"] is plan["rec/data"]
    assert plan["rec//time"] is plan.dataset_configurations["rec/time"]
    assert plan.get("/meta/name").full_shape == ()
    assert plan.get("missing") is None
    assert plan.get("missing", 5) == 5


def test_backend_unknown_location_lists_the_planned_ones(plan):
    with pytest.raises(ConfigurationError) as info:
        plan["/rec/dat"]
    message = str(info.value)
    assert message.startswith("rec/dat: no dataset of that location in the plan; planned: ")
    for location in plan:
        assert location in message


def test_backend_unknown_location_in_a_long_plan_is_summarized():
    plan = BackendConfiguration([DatasetConfiguration(f"d{i}", "f8", (3,)) for i in range(8)])
    with pytest.raises(ConfigurationError, match="planned: d0, d1, d2, d3, d4 and 3 more"):
        plan["x"]
    with pytest.raises(ConfigurationError, match=r"planned: \(none\)"):
        BackendConfiguration()["x"]


def test_backend_container_protocol(plan):
    assert "rec/data" in plan and "/rec/data" in plan and "rec/data/" in plan
    assert "rec" not in plan and "nope" not in plan
    assert 5 not in plan and "" not in plan and None not in plan
    assert list(plan) == ["rec/data", "rec/time", "meta/name", "meta/notes"]
    assert len(plan) == 4
    assert len(BackendConfiguration()) == 0
    assert [loc for loc, _ in plan.items()] == list(plan)
    assert all(isinstance(v, DatasetConfiguration) for v in plan.values())


def test_backend_from_a_mapping():
    entry = DatasetConfiguration("a/b", "f8", (10,))
    plan = BackendConfiguration({"a/b": entry})
    assert plan["a/b"] is entry


def test_backend_refuses_duplicates_and_strangers():
    with pytest.raises(ConfigurationError, match="^a/b: planned twice"):
        BackendConfiguration([DatasetConfiguration("a/b", "f8", (10,)),
                              DatasetConfiguration("/a/b/", "i4", (5,))])
    with pytest.raises(ConfigurationError, match="holds DatasetConfiguration objects, got dict"):
        BackendConfiguration([{"dtype": "<f8"}])


def test_backend_entries_stay_validated(plan):
    with pytest.raises(ConfigurationError, match="^rec/data: "):
        plan["rec/data"].chunk_shape = (10**8, 128)
    plan["rec/data"].update(chunk_shape=(30000, 128), buffer_shape=(300000, 128))
    assert plan["rec/data"].chunk_shape == (30000, 128)


def test_apply_global_compression(plan):
    plan.apply_global_compression("zstd", {"clevel": 3})
    for location in ("rec/data", "rec/time"):
        assert plan[location].compression_method == "zstd"
        assert plan[location].compression_options == {"clevel": 3}
    for location in ("meta/name", "meta/notes"):  # contiguous: left alone
        assert plan[location].compression_method is None
        assert plan[location].chunk_shape is None
    plan.apply_global_compression("BLOSC")
    assert plan["rec/data"].compression_options == {"cname": "lz4", "clevel": 5, "shuffle": 1}
    plan.apply_global_compression(None)
    assert all(entry.compression_method is None for entry in plan.values())
    assert plan["rec/data"].chunk_shape == estimate_default_chunk_shape((10**7, 128), "i2")


def test_apply_global_compression_keeps_filters(plan):
    plan["rec/data"].filter = "shuffle"
    plan.apply_global_compression("lzf")
    assert plan["rec/data"].filter == ("shuffle",)
    assert plan["rec/data"].compression_method == "lzf"


@pytest.mark.parametrize("method, options, message", [
    ("nope", None, "unknown compression method 'nope'"),
    ("gzip", {"level": 10}, "gzip level"),
    ("zstd", {"level": 3}, r"unknown option\(s\) level"),
    (None, {"level": 3}, "without a compression_method"),
])
def test_apply_global_compression_refuses_bad_input_and_changes_nothing(plan, method, options,
                                                                        message):
    before = plan.to_dict()
    with pytest.raises(ConfigurationError, match=message):
        plan.apply_global_compression(method, options)
    assert plan.to_dict() == before


def test_backend_equality(plan):
    again = BackendConfiguration.from_dict(plan.to_dict())
    assert again == plan
    again["rec/time"].compression_method = "gzip"
    assert again != plan
    assert BackendConfiguration() == BackendConfiguration()
    assert plan != plan.to_dict()
    with pytest.raises(TypeError):
        hash(plan)


def test_backend_str(plan):
    text = str(plan)
    total = sum(entry.full_size for entry in plan.values())
    assert total == 2_560_000_000 + 80_000_000 + 16 + 50
    assert text.splitlines()[0] == "HDF5 dataset configuration: 4 dataset(s), 2.64 GB in all"
    for entry in plan.values():
        assert str(entry) in text
    assert text.count("None (contiguous)") == 2
    assert str(BackendConfiguration()).startswith("HDF5 dataset configuration: 0 dataset(s)")


def test_backend_repr(plan):
    assert repr(plan) == ("BackendConfiguration(4 datasets: rec/data, rec/time, meta/name, "
                          "meta/notes)")


def test_backend_dict_round_trip(plan):
    plan["rec/data"].update(filter="bitshuffle", compression_method="zstd")
    fields = plan.to_dict()
    assert list(fields) == list(plan)
    assert fields["meta/notes"]["chunk_shape"] is None
    assert fields["rec/data"]["filter"] == ["bitshuffle"]
    assert BackendConfiguration.from_dict(fields) == plan
    assert BackendConfiguration.from_dict({}) == BackendConfiguration()


def test_backend_from_dict_errors():
    with pytest.raises(ConfigurationError, match="must map dataset locations to fields"):
        BackendConfiguration.from_dict([("a", {})])
    with pytest.raises(ConfigurationError, match="^b: the plan lacks 'full_shape'"):
        BackendConfiguration.from_dict({"a": {"dtype": "<f8", "full_shape": [1]},
                                        "b": {"dtype": "<f8"}})
    with pytest.raises(ConfigurationError, match="^a: planned twice"):
        BackendConfiguration.from_dict({"a": {"dtype": "<f8", "full_shape": [1]},
                                        "/a": {"dtype": "<f8", "full_shape": [1]}})


def test_errors_are_h5forge_and_value_errors(cfg):
    with pytest.raises(H5ForgeError):
        cfg.chunk_shape = (0, 0)
    with pytest.raises(ValueError):
        cfg.chunk_shape = (0, 0)


def test_whole_plan_written_to_a_file(tmp_path):
    """Each entry's keywords create the dataset the plan describes."""
    small = BackendConfiguration([
        DatasetConfiguration("rec/data", "i2", (300, 16), chunk_shape=(50, 16),
                             buffer_shape=(150, 16), compression_method="zstd",
                             filter="shuffle"),
        DatasetConfiguration("rec/time", "f8", (300,), compression_method="lzf"),
        DatasetConfiguration("meta/notes", "u1", (50,), chunk_shape=None),
    ])
    data = {"rec/data": np.arange(4800, dtype="i2").reshape(300, 16),
            "rec/time": np.linspace(0, 1, 300), "meta/notes": np.arange(50, dtype="u1")}
    with h5py.File(tmp_path / "plan.h5", "w") as f:
        for location, entry in small.items():
            entry.check_data(data[location].shape, data[location].dtype)
            f.create_dataset(location, data=data[location], **entry.h5py_kwargs())
    with h5py.File(tmp_path / "plan.h5", "r") as f:
        assert f["rec/data"].chunks == (50, 16) and f["rec/data"].shuffle
        assert f["rec/time"].chunks == (300,) and f["rec/time"].compression == "lzf"
        assert f["meta/notes"].chunks is None
        for location, values in data.items():
            np.testing.assert_array_equal(f[location][()], values)
