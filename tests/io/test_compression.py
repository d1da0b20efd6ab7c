"""Compression methods by name, their options, and reading back what a file was written with."""

from __future__ import annotations

import h5py
import hdf5plugin
import numpy as np
import pytest

from h5forge.errors import ConfigurationError
from h5forge.io import (
    AVAILABLE_COMPRESSION_METHODS,
    AVAILABLE_FILTERS,
    BackendConfiguration,
    CompressionMethod,
    DatasetConfiguration,
    get_compression_method,
)
from h5forge.io.compression import (
    DEFAULT_COMPRESSION_METHOD,
    DEFAULT_COMPRESSION_OPTIONS,
    normalize_compression,
    normalize_filters,
    read_filters,
)

EXPECTED_METHODS = ["gzip", "lzf", "zstd", "blosc", "blosc2", "lz4", "bitshuffle", "bzip2"]
LOSSY = {"sz", "sz3", "zfp", "sperr"}  # htj2k is reversible in hdf5plugin
#: Options that make a lossy method keep every value within TOLERANCE of the original.
TOLERANCE = 1e-3
LOSSY_OPTIONS = {
    "sz": {"absolute": TOLERANCE},
    "sz3": {"absolute": TOLERANCE},
    "sperr": {"absolute": TOLERANCE},
    "zfp": {"accuracy": TOLERANCE},
    "htj2k": {},  # reversible HTJ2K: hdf5plugin's filter takes no options and loses nothing
}
#: JPEG-LS (fcidecomp) and HTJ2K only take 8/16-bit integer images (see their hdf5plugin
#: docstrings); fcidecomp silently stores 8-bit chunks raw, so both get 16-bit images.
INTEGER_IMAGE_ONLY = {"fcidecomp", "htj2k"}

rng = np.random.default_rng(20240601)
#: float64 on a grid of 1/64: compressible enough that every lossless filter keeps its output
#: (lzf, szip and blosc skip a chunk they cannot shrink), yet not trivial.
SMOOTH = np.round(np.cumsum(rng.normal(size=(64, 32)), axis=0) * 64) / 64
IMAGE = rng.integers(0, 4000, size=(64, 32)).astype("uint16")


def data_for(name):
    return IMAGE if name in INTEGER_IMAGE_ONLY else SMOOTH


def write(path, data, cfg, name="x"):
    with h5py.File(path, "a") as f:
        f.create_dataset(name, data=data, **cfg.h5py_kwargs())


def chunk_filter_masks(dset):
    """One mask per chunk: 0 when every filter ran (a skipped optional filter sets a bit)."""
    return [dset.id.get_chunk_info(i).filter_mask for i in range(dset.id.get_num_chunks())]


# ---- the table of methods ---------------------------------------------------------------------

def test_expected_methods_are_available():
    for name in EXPECTED_METHODS:
        assert name in AVAILABLE_COMPRESSION_METHODS, name
    assert ("szip" in AVAILABLE_COMPRESSION_METHODS) == \
        bool(h5py.h5z.filter_avail(h5py.h5z.FILTER_SZIP))


def test_method_table_entries():
    for name, method in AVAILABLE_COMPRESSION_METHODS.items():
        assert isinstance(method, CompressionMethod)
        assert method.name == name == name.lower()
        assert h5py.h5z.filter_avail(method.filter_id)
        assert method.lossy == (name in LOSSY)
    gzip = AVAILABLE_COMPRESSION_METHODS["gzip"]
    assert gzip.filter_id == h5py.h5z.FILTER_DEFLATE and dict(gzip.options) == {"level": 4}
    assert gzip.plugin is None
    zstd = AVAILABLE_COMPRESSION_METHODS["zstd"]
    assert zstd.plugin is hdf5plugin.Zstd and zstd.filter_id == hdf5plugin.ZSTD_ID
    assert dict(zstd.options) == {"clevel": 3}
    assert set(AVAILABLE_COMPRESSION_METHODS["blosc"].options) == {"cname", "clevel", "shuffle"}
    assert AVAILABLE_FILTERS == ("shuffle", "bitshuffle")


def test_default_method_is_gzip_level_4():
    assert DEFAULT_COMPRESSION_METHOD == "gzip"
    assert DEFAULT_COMPRESSION_OPTIONS == {"level": 4}


@pytest.mark.parametrize("spelling, name", [
    ("gzip", "gzip"), ("GZIP", "gzip"), ("Zstd", "zstd"), ("BLOSC2", "blosc2"), ("lZ4", "lz4"),
    ("deflate", "gzip"), ("bshuf", "bitshuffle"), ("BitShuffle", "bitshuffle"),
])
def test_names_are_case_insensitive(spelling, name):
    assert get_compression_method(spelling) is AVAILABLE_COMPRESSION_METHODS[name]
    cfg = DatasetConfiguration("x", "f8", (100,), compression_method=spelling)
    assert cfg.compression_method == name


@pytest.mark.parametrize("name", ["gzipp", "snappy", "", None, 5])
def test_unknown_method_lists_the_available_ones(name):
    with pytest.raises(ConfigurationError) as info:
        get_compression_method(name, "grp/dset")
    message = str(info.value)
    assert message.startswith("grp/dset: unknown compression method")
    for available in AVAILABLE_COMPRESSION_METHODS:
        assert available in message


def test_unknown_method_in_a_configuration_names_the_location():
    cfg = DatasetConfiguration("grp/dset", "f8", (100,))
    with pytest.raises(ConfigurationError, match=r"^grp/dset: unknown compression method 'nope'"):
        cfg.compression_method = "nope"
    assert cfg.compression_method == "gzip"


# ---- every method round-trips data through a real file ------------------------------------

@pytest.mark.parametrize("name", sorted(AVAILABLE_COMPRESSION_METHODS))
def test_every_method_round_trips(tmp_path, name):
    method = AVAILABLE_COMPRESSION_METHODS[name]
    data = data_for(name)
    options = LOSSY_OPTIONS.get(name) if method.lossy else None
    cfg = DatasetConfiguration("x", data.dtype, data.shape, chunk_shape=(16, 32),
                               compression_method=name, compression_options=options)
    path = tmp_path / f"{name}.h5"
    write(path, data, cfg)
    with h5py.File(path, "r") as f:
        dset = f["x"]
        back = dset[()]
        assert dset.chunks == (16, 32)
        assert chunk_filter_masks(dset) == [0, 0, 0, 0]  # the filter ran on every chunk
        assert read_filters(dset)[0] == name
        assert dset.id.get_create_plist().get_filter(0)[0] == method.filter_id
    assert back.dtype == data.dtype and back.shape == data.shape
    if method.lossy:
        assert np.max(np.abs(back - data)) <= TOLERANCE * (1 + 1e-6)
        assert not np.array_equal(back, np.zeros_like(data))
    else:
        np.testing.assert_array_equal(back, data)


LOSSLESS_GENERAL = sorted(name for name, m in AVAILABLE_COMPRESSION_METHODS.items()
                          if not m.lossy and name not in INTEGER_IMAGE_ONLY)


@pytest.mark.parametrize("name", LOSSLESS_GENERAL)
@pytest.mark.parametrize("dtype", ["int16", "uint8", "float32", "int64"])
def test_lossless_methods_round_trip_other_dtypes_exactly(tmp_path, name, dtype):
    data = rng.integers(-100, 100, size=(40, 24)).astype(dtype)
    cfg = DatasetConfiguration("x", data.dtype, data.shape, chunk_shape=(10, 24),
                               compression_method=name, filter="shuffle")
    write(tmp_path / "f.h5", data, cfg)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        np.testing.assert_array_equal(f["x"][()], data)
        assert f["x"].shuffle


@pytest.mark.parametrize("name", ["gzip", "zstd", "blosc", "lz4"])
@pytest.mark.parametrize("flt", ["shuffle", "bitshuffle"])
def test_round_trip_with_a_filter(tmp_path, name, flt):
    data = SMOOTH.astype("f4")
    cfg = DatasetConfiguration("x", data.dtype, data.shape, chunk_shape=(16, 32),
                               compression_method=name, filter=flt)
    write(tmp_path / "f.h5", data, cfg)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        np.testing.assert_array_equal(f["x"][()], data)
        assert chunk_filter_masks(f["x"]) == [0, 0, 0, 0]
        method, _options, filters = read_filters(f["x"])
        assert (method, filters) == (name, (flt,))


def test_compression_makes_compressible_data_smaller(tmp_path):
    data = np.zeros((200, 100), dtype="f8")
    cfg = DatasetConfiguration("x", data.dtype, data.shape, chunk_shape=(50, 100))
    write(tmp_path / "f.h5", data, cfg)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert f["x"].id.get_storage_size() < data.nbytes / 10


# ---- bad options ------------------------------------------------------------------------------

BAD_OPTIONS = [
    ("gzip", {"level": 10}, "gzip level must be an integer 0..9"),
    ("gzip", {"level": -1}, "gzip level must be an integer 0..9"),
    ("gzip", {"level": 2.0}, "gzip level must be an integer 0..9"),
    ("gzip", {"level": True}, "gzip level must be an integer 0..9"),
    ("gzip", {"level": "4"}, "gzip level must be an integer 0..9"),
    ("gzip", {"lvl": 1}, r"unknown option\(s\) lvl; gzip takes level \(default 4\)"),
    ("lzf", {"level": 1}, "lzf takes no options"),
    ("zstd", {"level": 3}, r"unknown option\(s\) level; zstd takes clevel"),
    ("zstd", {"clevel": 100}, "clevel"),
    ("blosc", {"clevel": 20}, "clevel"),
    ("bzip2", {"blocksize": 10}, "blocksize"),
    ("bitshuffle", {"cname": "nope"}, "nope"),
    ("zfp", {"rate": "fast"}, "bad options for zfp"),
    ("gzip", 5, "compression_options must be a mapping"),
    ("gzip", [("level", 4)], "compression_options must be a mapping"),
]
if "szip" in AVAILABLE_COMPRESSION_METHODS:
    BAD_OPTIONS += [
        ("szip", {"pixels_per_block": 7}, "even integer 2..32"),
        ("szip", {"pixels_per_block": 34}, "even integer 2..32"),
        ("szip", {"pixels_per_block": 0}, "even integer 2..32"),
        ("szip", {"coding": "xx"}, "szip coding must be 'nn' or 'ec'"),
    ]


@pytest.mark.parametrize("method, options, message", BAD_OPTIONS)
def test_bad_options_are_refused_naming_the_location(method, options, message):
    cfg = DatasetConfiguration("grp/data", "f8", (100, 10))
    before = cfg.to_dict()
    with pytest.raises(ConfigurationError, match=message) as info:
        cfg.update(compression_method=method, compression_options=options)
    assert str(info.value).startswith("grp/data: ")
    assert cfg.to_dict() == before
    with pytest.raises(ConfigurationError, match="^grp/data: "):
        DatasetConfiguration("grp/data", "f8", (100, 10), compression_method=method,
                             compression_options=options)


def test_unknown_plugin_option_value_is_a_configuration_error():
    # hdf5plugin.Blosc raises KeyError for an unknown compressor name; the plan must still
    # answer with a ConfigurationError naming the dataset
    cfg = DatasetConfiguration("grp/data", "f8", (100, 10))
    with pytest.raises(ConfigurationError, match="^grp/data: .*nope"):
        cfg.update(compression_method="blosc", compression_options={"cname": "nope"})
    assert cfg.compression_method == "gzip"


def test_options_without_a_method_are_refused():
    with pytest.raises(ConfigurationError, match="^here: compression_options .* without"):
        normalize_compression(None, {"level": 3}, "here")
    assert normalize_compression(None, None, "here") == (None, None)
    assert normalize_compression(None, {}, "here") == (None, None)


@pytest.mark.parametrize("method, options, expected", [
    ("gzip", None, ("gzip", {"level": 4})),
    ("GZIP", {"level": 9}, ("gzip", {"level": 9})),
    ("gzip", {"level": 0}, ("gzip", {"level": 0})),
    ("lzf", None, ("lzf", {})),
    ("zstd", None, ("zstd", {"clevel": 3})),
    ("zstd", {"clevel": -5}, ("zstd", {"clevel": -5})),
    ("blosc", {"cname": "zstd"}, ("blosc", {"cname": "zstd", "clevel": 5, "shuffle": 1})),
    ("bitshuffle", None, ("bitshuffle", {"nelems": 0, "clevel": 3})),  # None defaults left out
    ("zfp", {"accuracy": 0.01}, ("zfp", {"reversible": False, "accuracy": 0.01})),
])
def test_normalized_options_are_filled_with_defaults(method, options, expected):
    assert normalize_compression(method, options, "x") == expected


def test_valid_szip_options():
    if "szip" not in AVAILABLE_COMPRESSION_METHODS:
        pytest.skip("this HDF5 has no szip encoder")
    assert normalize_compression("szip", {"coding": "ec", "pixels_per_block": 32}, "x") == \
        ("szip", {"coding": "ec", "pixels_per_block": 32})
    assert normalize_compression("szip", None, "x") == \
        ("szip", {"coding": "nn", "pixels_per_block": 8})


# ---- filters ---------------------------------------------------------------------------------

@pytest.mark.parametrize("given, expected", [
    (None, ()), ((), ()), ([], ()), ("shuffle", ("shuffle",)), ("SHUFFLE", ("shuffle",)),
    (["bitshuffle"], ("bitshuffle",)), (("BitShuffle",), ("bitshuffle",)),
])
def test_normalize_filters(given, expected):
    assert normalize_filters(given, "x") == expected


@pytest.mark.parametrize("given, message", [
    (["shuffle", "bitshuffle"], "choose one of shuffle and bitshuffle"),
    (["shuffle", "shuffle"], "filter 'shuffle' given twice"),
    ("fletcher32", r"unknown filter 'fletcher32'; available: shuffle, bitshuffle"),
    (["gzip"], "unknown filter 'gzip'"),
])
def test_bad_filters_are_refused(given, message):
    with pytest.raises(ConfigurationError, match=f"^loc: {message}"):
        normalize_filters(given, "loc")


# ---- reading back what a file was written with -------------------------------------------

READ_BACK = [
    ("gzip", {"level": 7}, (), ("gzip", {"level": 7}, ())),
    ("gzip", {"level": 0}, (), ("gzip", {"level": 0}, ())),
    ("gzip", None, ("shuffle",), ("gzip", {"level": 4}, ("shuffle",))),
    ("lzf", None, (), ("lzf", {}, ())),
    ("zstd", {"clevel": 7}, (), ("zstd", {"clevel": 7}, ())),
    ("zstd", None, (), ("zstd", {}, ())),  # defaults are not repeated
    ("blosc", {"cname": "zstd", "clevel": 3, "shuffle": 2}, (),
     ("blosc", {"cname": "zstd", "clevel": 3, "shuffle": 2}, ())),
    ("blosc", None, ("shuffle",), ("blosc", {}, ("shuffle",))),
    ("blosc2", {"cname": "lz4", "clevel": 2, "filters": 0}, (),
     ("blosc2", {"cname": "lz4", "clevel": 2, "filters": 0}, ())),
    ("lz4", {"nbytes": 1024}, (), ("lz4", {"nbytes": 1024}, ())),
    ("bzip2", {"blocksize": 5}, (), ("bzip2", {"blocksize": 5}, ())),
    ("bitshuffle", {"cname": "zstd", "clevel": 5}, (),
     ("bitshuffle", {"cname": "zstd", "clevel": 5}, ())),
    ("zstd", {"clevel": 5}, ("bitshuffle",), ("zstd", {"clevel": 5}, ("bitshuffle",))),
    ("gzip", {"level": 1}, ("bitshuffle",), ("gzip", {"level": 1}, ("bitshuffle",))),
    ("lzf", None, ("bitshuffle",), ("lzf", {}, ("bitshuffle",))),
    (None, None, ("shuffle",), (None, None, ("shuffle",))),
]
if "szip" in AVAILABLE_COMPRESSION_METHODS:
    READ_BACK += [
        ("szip", {"coding": "ec", "pixels_per_block": 16}, (),
         ("szip", {"coding": "ec", "pixels_per_block": 16}, ())),
        ("szip", None, (), ("szip", {"coding": "nn", "pixels_per_block": 8}, ())),
    ]


@pytest.mark.parametrize("method, options, filters, expected", READ_BACK)
def test_read_filters(tmp_path, method, options, filters, expected):
    data = np.arange(64 * 64, dtype="i4").reshape(64, 64)
    cfg = DatasetConfiguration("x", data.dtype, data.shape, chunk_shape=(16, 64),
                               compression_method=method, compression_options=options,
                               filter=filters)
    write(tmp_path / "f.h5", data, cfg)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert read_filters(f["x"]) == expected
        np.testing.assert_array_equal(f["x"][()], data)
        # what was read back plans the same filter pipeline
        method_back, options_back, filters_back = read_filters(f["x"])
        again = DatasetConfiguration("x", data.dtype, data.shape, chunk_shape=(16, 64),
                                     compression_method=method_back,
                                     compression_options=options_back, filter=filters_back)
        assert again == cfg


def test_read_filters_of_an_uncompressed_dataset(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("chunked", data=np.arange(100), chunks=(10,))
        f.create_dataset("contiguous", data=np.arange(100))
        assert read_filters(f["chunked"]) == (None, None, ())
        assert read_filters(f["contiguous"]) == (None, None, ())


def test_read_filters_ignores_fletcher32(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("x", data=np.arange(100), chunks=(10,), compression="gzip",
                         compression_opts=2, fletcher32=True)
        assert read_filters(f["x"]) == ("gzip", {"level": 2}, ())


def test_read_filters_of_a_file_written_by_hdf5plugin_directly(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("x", data=np.arange(1000), chunks=(100,),
                         **hdf5plugin.Blosc(cname="zlib", clevel=9,
                                            shuffle=hdf5plugin.Blosc.BITSHUFFLE))
        assert read_filters(f["x"]) == ("blosc", {"cname": "zlib", "clevel": 9, "shuffle": 2},
                                        ())


def test_read_filters_names_an_unknown_filter(tmp_path):
    path = tmp_path / "nbit.h5"
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        # HDF5's N-bit filter (id 5): not a method h5forge has a name for
        dcpl.set_filter(h5py.h5z.FILTER_NBIT, h5py.h5z.FLAG_OPTIONAL)
        f.create_dataset("grp/x", data=np.arange(100, dtype="i4"), chunks=(10,), dcpl=dcpl)
    with h5py.File(path, "r") as f:
        with pytest.raises(ConfigurationError, match=r"nbit\.h5:/grp/x uses HDF5 filter id 5"):
            read_filters(f["grp/x"])


# ---- methods that cannot take a dtype are refused, not skipped by HDF5 ------------------------

@pytest.mark.parametrize("name", ["blosc", "blosc2", "sz", "zfp", "szip", "bitshuffle"])
def test_variable_length_data_takes_byte_compressors_only(name):
    if name not in AVAILABLE_COMPRESSION_METHODS:
        pytest.skip(f"{name} is not available in this HDF5")
    cfg = DatasetConfiguration("names", h5py.string_dtype(), (100,))
    with pytest.raises(ConfigurationError, match=r"^names: .* variable-length data"):
        cfg.compression_method = name
    assert cfg.compression_method == "gzip"
    with pytest.raises(ConfigurationError, match="bitshuffle cannot filter variable-length"):
        cfg.filter = ["bitshuffle"]


@pytest.mark.parametrize("name", ["gzip", "lzf", "zstd", "lz4", "bzip2"])
def test_variable_length_strings_round_trip_with_byte_compressors(tmp_path, name):
    data = np.array([f"label {i}" * (i % 5) for i in range(200)], dtype=object)
    cfg = DatasetConfiguration("names", h5py.string_dtype(), data.shape, chunk_shape=(50,),
                               compression_method=name)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("names", data=data, dtype=h5py.string_dtype(), **cfg.h5py_kwargs())
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert list(f["names"].asstr()[:]) == list(data)
        assert read_filters(f["names"])[0] == name


@pytest.mark.parametrize("name, dtype", [("sz", "int16"), ("sz3", "int64"), ("sperr", "u1"),
                                         ("zfp", "int16"), ("fcidecomp", "f4"),
                                         ("htj2k", "f8"), ("szip", [("a", "f4")])])
def test_numeric_methods_refuse_dtypes_they_would_skip(name, dtype):
    cfg = DatasetConfiguration("x", dtype, (64, 64))
    with pytest.raises(ConfigurationError, match=rf"^x: {name} compresses .* only"):
        cfg.compression_method = name


def test_global_compression_skips_datasets_it_cannot_take():
    plan = BackendConfiguration([DatasetConfiguration("names", h5py.string_dtype(), (10,)),
                                 DatasetConfiguration("trace", "f4", (1000,)),
                                 DatasetConfiguration("scalar", "f8", ())])
    assert plan.apply_global_compression("blosc", {"clevel": 7}) == ["names"]
    assert plan["trace"].compression_method == "blosc"
    assert plan["trace"].compression_options["clevel"] == 7
    assert plan["names"].compression_method == "gzip"  # kept
    assert plan["scalar"].compression_method is None  # contiguous
    with pytest.raises(ConfigurationError, match="unknown option"):
        plan.apply_global_compression("blosc", {"speed": 1})
    assert plan["trace"].compression_options["clevel"] == 7  # unchanged by the failed call
