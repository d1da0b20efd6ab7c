"""h5forge.io.parallel: chunks encoded and decoded in threads, stored with write_direct_chunk,
read back through h5py's normal filter pipeline (and h5dump when it is installed)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import zlib

import h5py
import hdf5plugin
import numpy as np
import pytest

from h5forge.errors import ConfigurationError, CorruptFileError
from h5forge.io import DatasetConfiguration, parallel, repack, write_dataset
from h5forge.io.parallel import ChunkPool, ChunkReader, ChunkWriter, chunk_pipeline, fletcher32

RNG = np.random.default_rng(7)
#: A compressible signal with noise: neither trivially small nor incompressible.
SIGNAL = np.cumsum(RNG.integers(-4, 5, size=(203, 37)), axis=0).astype("i4")
CHUNK = (40, 10)  # 203 x 37 is not a whole number of chunks: edge chunks on both axes
BUFFER = (80, 37)

# (compression, options, filter): every method the pool encodes
ACCELERATED = [
    ("gzip", {"level": 4}, ()),
    ("gzip", {"level": 1}, ("shuffle",)),
    ("zstd", {"clevel": 3}, ()),
    ("zstd", {"clevel": 9}, ("shuffle",)),
    ("lz4", None, ()),
    ("lz4", None, ("shuffle",)),
]


def plan(data=SIGNAL, method="gzip", options=None, filters=(), chunks=CHUNK, buffer=BUFFER):
    return DatasetConfiguration("d", data.dtype, data.shape, chunk_shape=chunks,
                                buffer_shape=buffer, compression_method=method,
                                compression_options=options, filter=filters)


def write_both(path, data, config, threads=2):
    """``d``: written by write_dataset in threads; ``ref``: the same plan through h5py."""
    with h5py.File(path, "w") as f:
        write_dataset(f, "d", data, config, threads=threads)
        f.create_dataset("ref", data=data, **config.h5py_kwargs())


def chunk_offsets(dset):
    return [dset.id.get_chunk_info(i).chunk_offset for i in range(dset.id.get_num_chunks())]


@pytest.mark.parametrize(("method", "options", "filters"), ACCELERATED)
def test_round_trip_through_h5py_normal_reads(tmp_path, method, options, filters):
    path = tmp_path / "t.h5"
    config = plan(method=method, options=options, filters=filters)
    with h5py.File(path, "w") as f:
        with ChunkPool(2) as pool:
            writer = ChunkWriter(f.create_dataset("d", shape=SIGNAL.shape, dtype=SIGNAL.dtype,
                                                  **config.h5py_kwargs()),
                                 pool, config.buffer_size)
            for start in range(0, SIGNAL.shape[0], BUFFER[0]):
                stop = min(start + BUFFER[0], SIGNAL.shape[0])
                writer.write((slice(start, stop), slice(0, 37)), SIGNAL[start:stop])
        assert writer.pipeline is not None, writer.report.reason
        assert writer.report.chunks_threaded == 6 * 4 and writer.report.blocks_pipeline == 0
    with h5py.File(path, "r") as f:  # a fresh open: nothing cached, HDF5 decodes every chunk
        dset = f["d"]
        assert np.array_equal(dset[()], SIGNAL)
        assert np.array_equal(dset[41:77, 3:29], SIGNAL[41:77, 3:29])
        assert all(dset.id.get_chunk_info(i).filter_mask == 0
                   for i in range(dset.id.get_num_chunks()))
        assert dset.id.get_storage_size() < SIGNAL.nbytes  # compressed


@pytest.mark.parametrize(("method", "options", "filters"),
                         [m for m in ACCELERATED if m[0] in ("gzip", "zstd")])
def test_gzip_and_zstd_chunks_are_the_filter_pipelines_bytes(tmp_path, method, options,
                                                             filters):
    """Same library, same level, same filter order: the stored bytes are identical."""
    write_both(tmp_path / "t.h5", SIGNAL, plan(method=method, options=options,
                                              filters=filters))
    with h5py.File(tmp_path / "t.h5", "r") as f:
        offsets = chunk_offsets(f["ref"])
        assert sorted(chunk_offsets(f["d"])) == sorted(offsets) and len(offsets) == 24
        for offset in offsets:
            assert f["d"].id.read_direct_chunk(offset) == f["ref"].id.read_direct_chunk(offset)


@pytest.mark.parametrize("dtype", ["u1", "i2", ">i8", "f4", "f8", "c16", "?", "S3",
                                   [("x", "f4", (2,)), ("n", "<i2")]])
def test_dtypes_round_trip(tmp_path, dtype):
    data = np.zeros((57, 5), dtype=dtype)
    flat = data.reshape(-1).view(np.uint8)
    flat[...] = RNG.integers(0, 3, size=flat.shape)  # any bit pattern of the type
    if np.dtype(dtype).kind == "b":
        data = data.view(np.uint8).astype(bool)
    config = plan(data, "zstd", None, ("shuffle",), chunks=(10, 2), buffer=(20, 5))
    write_both(tmp_path / "t.h5", data, config)
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert f["d"].dtype == f["ref"].dtype
        assert f["d"][()].tobytes() == data.tobytes() == f["ref"][()].tobytes()
        assert chunk_pipeline(f["d"])[0] is not None  # written in threads, not a fallback
        for offset in chunk_offsets(f["ref"]):  # and byte for byte what HDF5 wrote
            assert f["d"].id.read_direct_chunk(offset) == f["ref"].id.read_direct_chunk(offset)


def test_edge_chunks_are_stored_full_size_padded_with_the_fill_value(tmp_path):
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        dset = f.create_dataset("d", shape=SIGNAL.shape, dtype="i4", chunks=CHUNK,
                                compression="gzip", fillvalue=-7)
        with ChunkPool(2) as pool:
            writer = ChunkWriter(dset, pool, 10**6)
            writer.write((slice(0, 203), slice(0, 37)), SIGNAL)
    with h5py.File(path, "r") as f:
        dset = f["d"]
        assert np.array_equal(dset[()], SIGNAL)
        mask, raw = dset.id.read_direct_chunk((200, 30))  # 3 x 7 of 40 x 10 in the dataspace
        chunk = np.frombuffer(zlib.decompress(raw), "<i4").reshape(CHUNK)
        assert mask == 0 and np.array_equal(chunk[:3, :7], SIGNAL[200:, 30:])
        assert (chunk[3:, :] == -7).all() and (chunk[:, 7:] == -7).all()
        assert dset.fillvalue == -7


def test_fletcher32_is_hdf5s_checksum(tmp_path):
    """Our checksum equals the one HDF5 appended, on chunks of odd and even length."""
    with h5py.File(tmp_path / "t.h5", "w") as f:
        lengths = set()
        for i, size in enumerate([1, 2, 3, 720, 721, 5001]):
            data = RNG.integers(0, 256, size=size, dtype="u1")
            dset = f.create_dataset(f"x{i}", data=data, chunks=(size,), fletcher32=True,
                                    compression="gzip")
            _mask, raw = dset.id.read_direct_chunk((0,))
            lengths.add(len(raw) % 2)
            assert int.from_bytes(raw[-4:], "little") == fletcher32(raw[:-4])
        assert lengths == {0, 1}
    assert fletcher32(b"") == 0


def test_shuffle_gzip_fletcher32_in_hdf5s_order(tmp_path):
    path = tmp_path / "t.h5"
    kwargs = dict(chunks=CHUNK, shuffle=True, compression="gzip", compression_opts=5,
                  fletcher32=True)
    with h5py.File(path, "w") as f:
        dset = f.create_dataset("d", shape=SIGNAL.shape, dtype="i4", **kwargs)
        ref = f.create_dataset("ref", data=SIGNAL, **kwargs)
        pipeline, _ = chunk_pipeline(dset)
        assert [c.name for c, _ in pipeline.filters] == ["shuffle", "gzip", "fletcher32"]
        assert [optional for _, optional in pipeline.filters] == [True, True, False]
        with ChunkPool(3) as pool:
            ChunkWriter(dset, pool, 10**6).write((slice(0, 203), slice(0, 37)), SIGNAL)
        for offset in chunk_offsets(ref):
            assert dset.id.read_direct_chunk(offset) == ref.id.read_direct_chunk(offset)
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["d"][()], SIGNAL)


def test_a_damaged_chunk_is_refused_by_the_threaded_reader_too(tmp_path):
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        dset = f.create_dataset("d", data=SIGNAL, chunks=CHUNK, fletcher32=True,
                                compression="gzip")
        mask, raw = dset.id.read_direct_chunk((40, 10))
        damaged = bytearray(raw)
        damaged[5] ^= 0xFF
        dset.id.write_direct_chunk((40, 10), bytes(damaged), mask)
    with h5py.File(path, "r") as f:
        with pytest.raises(OSError):
            f["d"][40:80, 10:20]  # HDF5's own check
        with ChunkPool(2) as pool:
            with pytest.raises(CorruptFileError, match="/d"):
                ChunkReader(f["d"], pool, 10**6).read((slice(0, 203), slice(0, 37)))


def test_an_optional_filter_that_fails_is_skipped_in_the_mask(tmp_path, monkeypatch):
    """HDF5 skips an optional filter that fails and records it in the chunk's filter mask;
    readers then leave that filter out. Here deflate 'fails' on every chunk."""
    monkeypatch.setattr(parallel._Deflate, "encode", lambda self, data: None)
    path = tmp_path / "t.h5"
    write_both(path, SIGNAL, plan(method="gzip", filters=("shuffle",)))
    with h5py.File(path, "r") as f:
        dset = f["d"]
        assert {dset.id.get_chunk_info(i).filter_mask
                for i in range(dset.id.get_num_chunks())} == {0b10}
        assert np.array_equal(dset[()], SIGNAL)
        with ChunkPool(2) as pool:
            assert np.array_equal(ChunkReader(dset, pool, 10**6).read(
                (slice(0, 203), slice(0, 37))), SIGNAL)


def test_a_mandatory_filter_that_fails_leaves_the_chunk_to_hdf5(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel._Fletcher32, "encode", lambda self, data: None)
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        dset = f.create_dataset("d", shape=SIGNAL.shape, dtype="i4", chunks=CHUNK,
                                fletcher32=True)
        with ChunkPool(2) as pool:
            writer = ChunkWriter(dset, pool, 10**6)
            writer.write((slice(0, 203), slice(0, 37)), SIGNAL)
        assert writer.report.chunks_threaded == 0  # each chunk written by h5py instead
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["d"][()], SIGNAL)


@pytest.mark.parametrize(("method", "options", "filters", "why"), [
    ("bitshuffle", None, (), "32008"),
    ("blosc", None, (), "32001"),
    ("lzf", None, (), "32000"),
    ("gzip", None, ("bitshuffle",), "32008"),
])
def test_filters_without_encoder_fall_back_and_say_so(tmp_path, caplog, method, options,
                                                     filters, why):
    path = tmp_path / "t.h5"
    with caplog.at_level(logging.INFO, logger="h5forge.io.parallel"):
        write_both(path, SIGNAL, plan(method=method, options=options, filters=filters))
    assert any(why in r.getMessage() and "/d" in r.getMessage() for r in caplog.records)
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["d"][()], SIGNAL)
        pipeline, reason = chunk_pipeline(f["d"])
        assert pipeline is None and "no thread-safe encoder" in reason


def test_a_missing_codec_library_falls_back(tmp_path, monkeypatch):
    real = parallel._has_module
    monkeypatch.setattr(parallel, "_has_module", lambda name: name != "zstandard" and real(name))
    path = tmp_path / "t.h5"
    write_both(path, SIGNAL, plan(method="zstd"))
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["d"][()], SIGNAL)
        assert "pip install h5forge[fast]" in chunk_pipeline(f["d"])[1]


def test_variable_length_strings_go_through_h5py(tmp_path):
    data = np.array(["a", "bb", "ccc"] * 20, dtype=object)
    config = DatasetConfiguration("d", h5py.string_dtype(), data.shape, chunk_shape=(7,),
                                  buffer_shape=(14,))
    with h5py.File(tmp_path / "t.h5", "w") as f:
        dset = write_dataset(f, "d", data, config)
        assert "converted" in chunk_pipeline(dset)[1]
        assert dset.asstr()[()].tolist() == data.tolist()


@pytest.mark.parametrize("shape", [(0,), (0, 5), (5, 0), ()])
def test_empty_and_scalar_datasets(tmp_path, shape):
    data = np.ones(shape, dtype="f8")
    with h5py.File(tmp_path / "t.h5", "w") as f:
        dset = write_dataset(f, "d", data, threads=2)
        assert dset.shape == shape and np.array_equal(dset[()], data)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_refused_before_writing(tmp_path, threads):
    with h5py.File(tmp_path / "t.h5", "w") as f:
        with pytest.raises(ConfigurationError, match="threads must be a positive integer"):
            write_dataset(f, "d", SIGNAL, plan(), threads=threads)
        assert "d" not in f
    with pytest.raises(ConfigurationError, match="threads"):
        repack(tmp_path / "t.h5", tmp_path / "out.h5", threads=threads)
    assert not os.path.exists(tmp_path / "out.h5")


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_any_thread_count_writes_the_same_bytes(tmp_path, threads):
    write_both(tmp_path / "t.h5", SIGNAL, plan(method="gzip"), threads=threads)
    with h5py.File(tmp_path / "t.h5", "r") as f:
        for offset in chunk_offsets(f["ref"]):
            assert f["d"].id.read_direct_chunk(offset) == f["ref"].id.read_direct_chunk(offset)


def test_in_flight_chunks_are_bounded():
    ten_mb = 10 * 2**20
    assert parallel.max_in_flight(2, ten_mb, 100 * 10**6) == 4  # two per thread
    assert parallel.max_in_flight(64, ten_mb, 100 * 10**6) == 6  # 128 MB / (2 x 10 MB)
    assert parallel.max_in_flight(64, ten_mb, 2000 * 10**6) == 47  # half the buffer
    assert parallel.max_in_flight(4, 2**31, 10**6) == 1


def test_a_worker_error_leaves_no_dataset(tmp_path, monkeypatch):
    def broken(self, data):
        raise RuntimeError("codec exploded")

    monkeypatch.setattr(parallel._Deflate, "encode", broken)
    with h5py.File(tmp_path / "t.h5", "w") as f:
        with pytest.raises(RuntimeError, match="codec exploded"):
            write_dataset(f, "d", SIGNAL, plan(), threads=2)
        assert "d" not in f


def test_direct_chunks_replace_what_the_chunk_cache_holds(tmp_path):
    """A chunk written through h5py and still in HDF5's chunk cache is replaced, not
    resurrected, when the same chunk is then written directly."""
    with h5py.File(tmp_path / "t.h5", "w", rdcc_nbytes=64 * 2**20) as f:
        dset = f.create_dataset("d", shape=SIGNAL.shape, dtype="i4", chunks=CHUNK,
                                compression="gzip")
        dset[...] = -1  # dirty in the cache
        with ChunkPool(2) as pool:
            ChunkWriter(dset, pool, 10**6).write((slice(0, 80), slice(0, 37)), SIGNAL[:80])
        assert np.array_equal(dset[:80], SIGNAL[:80]) and (dset[80:] == -1).all()
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert np.array_equal(f["d"][:80], SIGNAL[:80]) and (f["d"][80:] == -1).all()


def test_unaligned_blocks_go_through_h5py(tmp_path):
    with h5py.File(tmp_path / "t.h5", "w") as f:
        dset = f.create_dataset("d", shape=SIGNAL.shape, dtype="i4", chunks=CHUNK,
                                compression="gzip")
        with ChunkPool(2) as pool:
            writer = ChunkWriter(dset, pool, 10**6)
            writer.write((slice(0, 80), slice(0, 37)), SIGNAL[:80])
            writer.write((slice(80, 130), slice(0, 37)), SIGNAL[80:130])  # ends mid-chunk
            writer.write((slice(130, 203), slice(0, 37)), SIGNAL[130:])  # starts mid-chunk
        assert writer.report.blocks_pipeline == 2 and "aligned" in writer.report.reason
        assert np.array_equal(dset[()], SIGNAL)


def test_iterator_blocks_are_written_in_threads(tmp_path):
    def blocks():
        for start in range(0, 203, 13):
            yield SIGNAL[start:start + 13]

    with h5py.File(tmp_path / "t.h5", "w") as f:
        dset = write_dataset(f, "d", blocks(), plan(method="zstd"), threads=2)
        assert np.array_equal(dset[()], SIGNAL)


def test_reader_gives_fill_for_chunks_never_written(tmp_path):
    with h5py.File(tmp_path / "t.h5", "w") as f:
        dset = f.create_dataset("d", shape=SIGNAL.shape, dtype="i4", chunks=CHUNK,
                                compression="gzip", fillvalue=3)
        dset[40:80] = SIGNAL[40:80]
        with ChunkPool(2) as pool:
            got = ChunkReader(dset, pool, 10**6).read((slice(30, 203), slice(5, 37)))
        assert np.array_equal(got, dset[30:, 5:])


@pytest.mark.parametrize(("method", "options"), [("zstd", {"clevel": 5}), ("gzip", None)])
def test_repack_decodes_and_encodes_in_threads(tmp_path, method, options):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("a/sig", data=SIGNAL, chunks=CHUNK, compression="gzip", shuffle=True)
        f.create_dataset("other", data=SIGNAL[:, :3], chunks=(7, 3), compression="lzf")
        f.create_dataset("bs", data=SIGNAL, chunks=CHUNK, **hdf5plugin.Bitshuffle())
    from h5forge.io import get_default_configuration
    config = get_default_configuration(str(src))
    config.apply_global_compression(method, options)
    config["a/sig"].update(chunk_shape=(80, 37), buffer_shape=(160, 37))
    reports = {r.location: r for r in repack(src, dst, config, threads=2)}
    assert reports["a/sig"].chunks_threaded == 3 and reports["a/sig"].blocks_pipeline == 0
    with h5py.File(dst, "r") as f:
        for name in ("a/sig", "bs"):
            assert np.array_equal(f[name][()], SIGNAL)
            filters = f[name].id.get_create_plist()
            assert filters.get_filter(0)[0] == (1 if method == "gzip" else hdf5plugin.ZSTD_ID)
        assert np.array_equal(f["other"][()], SIGNAL[:, :3])
    assert "a/sig: 3 chunks encoded" in str(reports["a/sig"])


def test_repack_reads_unaligned_source_chunks_correctly(tmp_path):
    """Source chunks straddling the new buffers: decoded per buffer they meet (or read through
    h5py's chunk cache when that would decode too much)."""
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("x", data=SIGNAL, chunks=(30, 37), compression="gzip")
        f.create_dataset("y", data=SIGNAL, chunks=(203, 37), compression="gzip")
    from h5forge.io import BackendConfiguration
    config = BackendConfiguration({
        "x": DatasetConfiguration("x", "i4", SIGNAL.shape, chunk_shape=(20, 37),
                                  buffer_shape=(40, 37)),
        "y": DatasetConfiguration("y", "i4", SIGNAL.shape, chunk_shape=(20, 37),
                                  buffer_shape=(40, 37))})
    repack(src, dst, config, threads=3)
    with h5py.File(dst, "r") as f:
        assert np.array_equal(f["x"][()], SIGNAL) and np.array_equal(f["y"][()], SIGNAL)


@pytest.mark.skipif(shutil.which("h5dump") is None,
                    reason="h5dump not installed (Debian's hdf5-tools; `make mpi` installs it); "
                           "h5py's own reader checks the same chunks in the other tests")
def test_h5dump_reads_threaded_chunks(tmp_path):
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        for name in ("d", "ref"):
            f.create_dataset(name, shape=SIGNAL.shape, dtype="i4", chunks=CHUNK, shuffle=True,
                             compression="gzip", fletcher32=True)
        with ChunkPool(2) as pool:
            ChunkWriter(f["d"], pool, 10**6).write((slice(0, 203), slice(0, 37)), SIGNAL)
        f["ref"][...] = SIGNAL

    def dump(name):
        out = subprocess.run(["h5dump", "-d", name, "-w", "0", str(path)],
                             capture_output=True, text=True, check=True).stdout
        return out[out.index("DATA {"):]

    assert dump("/d") == dump("/ref")
    assert f"(0,0): {SIGNAL[0, 0]}, {SIGNAL[0, 1]}," in dump("/d")


def test_data_of_another_dtype_is_converted_by_hdf5(tmp_path):
    """HDF5 saturates an int64 that does not fit int16 where numpy would wrap: a block whose
    dtype differs from the dataset's keeps HDF5's conversion."""
    data = np.array([[70000, -70000, 5, 6]] * 8, dtype="i8")
    with h5py.File(tmp_path / "t.h5", "w") as f:
        dset = f.create_dataset("d", shape=data.shape, dtype="i2", chunks=(4, 4),
                                compression="gzip")
        with ChunkPool(2) as pool:
            writer = ChunkWriter(dset, pool, 10**6)
            writer.write((slice(0, 8), slice(0, 4)), data)
        assert "converted" in writer.report.reason and writer.report.blocks_pipeline == 1
        assert dset[0].tolist() == [32767, -32768, 5, 6]


def test_lz4_blocks_both_ways(tmp_path):
    """lz4 with a block size smaller than the chunk (header, then one length per block):
    hdf5plugin's chunks decode in threads, and ours read through HDF5's plugin."""
    data = np.repeat(SIGNAL, 3, axis=1)[:, :100]  # some blocks compress, some barely
    kwargs = dict(chunks=(100, 100), **hdf5plugin.LZ4(nbytes=3000))
    with h5py.File(tmp_path / "t.h5", "w") as f:
        ref = f.create_dataset("ref", data=data, **kwargs)
        dset = f.create_dataset("d", shape=data.shape, dtype=data.dtype, **kwargs)
        with ChunkPool(2) as pool:
            assert np.array_equal(ChunkReader(ref, pool, 10**6).read(
                (slice(0, 203), slice(0, 100))), data)
            ChunkWriter(dset, pool, 10**6).write((slice(0, 203), slice(0, 100)), data)
        _mask, raw = dset.id.read_direct_chunk((0, 0))
        assert int.from_bytes(raw[8:12], "big") == 3000  # the block size in the header
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert np.array_equal(f["d"][()], data)


def test_reports_say_what_happened(tmp_path):
    with h5py.File(tmp_path / "t.h5", "w") as f:
        plain = f.create_dataset("plain", shape=(10,), dtype="i4", chunks=(5,))
        with ChunkPool(1) as pool:
            writer = ChunkWriter(plain, pool, 100)
            writer.write((slice(0, 10),), np.arange(10, dtype="i4"))
        assert str(writer.report) == "/plain: written by h5py (no filters (nothing to compress))"
        assert plain[()].tolist() == list(range(10))
