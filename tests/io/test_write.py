"""write_dataset: buffered writes from arrays, array-likes and iterators of blocks."""

from __future__ import annotations

import contextlib
import math

import h5py
import hdf5plugin
import numpy as np
import pytest

from h5forge.errors import ConfigurationError, NodeExistsError, ShapeMismatchError
from h5forge.io import BackendConfiguration, DatasetConfiguration, write_dataset
from h5forge.io.parallel import ChunkWriter

SHAPE = (37, 10)  # 37 rows: not a whole number of chunks or buffers
DATA = np.arange(math.prod(SHAPE), dtype="f8").reshape(SHAPE)
CHUNK, BUFFER = (4, 5), (8, 10)  # 10 buffers of 2 chunks each (the last one short)
BLOCK_SIZES = (1, 5, 0, 7, 3, 13, 8)  # irregular, summing to 37


def small_plan(location="target", shape=SHAPE, dtype="f8", **fields):
    fields = {"chunk_shape": CHUNK, "buffer_shape": BUFFER, **fields}
    return DatasetConfiguration(location, dtype, shape, **fields)


def blocks(data=DATA, sizes=BLOCK_SIZES):
    start = 0
    for size in sizes:
        yield data[start:start + size]
        start += size


class ArrayLike:
    """The least an array-like source has: shape, dtype and __getitem__."""

    def __init__(self, data):
        self.data = data
        self.shape, self.dtype = data.shape, data.dtype

    def __getitem__(self, key):
        return self.data[key]


class RecordingArray(ArrayLike):
    """Records every requested block and refuses one larger than ``limit`` on any axis."""

    def __init__(self, data, limit):
        super().__init__(data)
        self.limit, self.requests = limit, []

    def __getitem__(self, key):
        assert isinstance(key, tuple) and all(isinstance(k, slice) for k in key), key
        extent = tuple(len(range(*k.indices(n))) for k, n in zip(key, self.shape))
        if any(e > b for e, b in zip(extent, self.limit)):
            raise MemoryError(f"requested {extent}, more than the buffer {self.limit}")
        self.requests.append(key)
        return self.data[key]


class FailingArray(ArrayLike):
    def __init__(self, data, fail_at):
        super().__init__(data)
        self.calls, self.fail_at = 0, fail_at

    def __getitem__(self, key):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("the source broke")
        return self.data[key]


@pytest.fixture
def h5file(tmp_path):
    with h5py.File(tmp_path / "out.h5", "w") as f:
        yield f


@pytest.fixture
def stack():
    with contextlib.ExitStack() as s:
        yield s


def from_ndarray(tmp_path, stack):
    return DATA.copy()


def from_memmap(tmp_path, stack):
    path = tmp_path / "source.dat"
    writable = np.memmap(path, dtype=DATA.dtype, mode="w+", shape=DATA.shape)
    writable[:] = DATA
    writable.flush()
    del writable
    return np.memmap(path, dtype=DATA.dtype, mode="r", shape=DATA.shape)


def from_h5py_dataset(tmp_path, stack):
    path = tmp_path / "source.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("src", data=DATA, chunks=(5, 3), **hdf5plugin.Zstd())
    return stack.enter_context(h5py.File(path, "r"))["src"]


def from_array_like(tmp_path, stack):
    return ArrayLike(DATA.copy())


def from_dask(tmp_path, stack):
    da = pytest.importorskip("dask.array")
    return da.from_array(DATA.copy(), chunks=(6, 7))


SOURCES = [from_ndarray, from_memmap, from_h5py_dataset, from_array_like, from_dask]


@pytest.mark.parametrize("make_source", SOURCES, ids=lambda f: f.__name__)
def test_array_sources_are_written_as_planned(h5file, tmp_path, stack, make_source):
    source = make_source(tmp_path, stack)
    dset = write_dataset(h5file, "target", source, small_plan())
    assert isinstance(dset, h5py.Dataset) and dset.name == "/target"
    assert dset.shape == SHAPE and dset.dtype == DATA.dtype
    assert np.array_equal(dset[()], DATA)
    assert dset.chunks == CHUNK
    assert dset.compression == "gzip" and dset.compression_opts == 4


@pytest.mark.parametrize("make_source", SOURCES, ids=lambda f: f.__name__)
def test_array_sources_with_the_default_plan(h5file, tmp_path, stack, make_source):
    dset = write_dataset(h5file, "target", make_source(tmp_path, stack))
    assert np.array_equal(dset[()], DATA)
    assert dset.chunks == SHAPE  # small: one chunk of the full shape
    assert dset.compression == "gzip" and dset.compression_opts == 4


def test_compression_and_filter_as_configured(h5file):
    plan = small_plan(compression_method="zstd", compression_options={"clevel": 5},
                      filter="shuffle")
    dset = write_dataset(h5file, "target", DATA, plan)
    assert str(hdf5plugin.ZSTD_ID) in dset._filters and "shuffle" in dset._filters
    assert "gzip" not in dset._filters
    assert np.array_equal(dset[()], DATA)

    contiguous = small_plan("plain").update(chunk_shape=None, compression_method=None)
    dset = write_dataset(h5file, "plain", DATA, contiguous)
    assert dset.chunks is None and dset.compression is None
    assert np.array_equal(dset[()], DATA)


@pytest.mark.parametrize("buffer", [(8, 10), (4, 5), (12, 5), (37, 10)])
def test_array_like_is_read_one_buffer_at_a_time(h5file, buffer):
    source = RecordingArray(DATA, buffer)
    plan = small_plan(buffer_shape=buffer)
    write_dataset(h5file, "target", source, plan)
    assert np.array_equal(h5file["target"][()], DATA)
    covered = np.zeros(SHAPE, dtype=int)
    for request in source.requests:
        covered[request] += 1
        # every request starts on a chunk boundary: each chunk is written in one piece
        assert all(k.start % c == 0 for k, c in zip(request, CHUNK)), request
    assert (covered == 1).all()  # the whole source, each element exactly once
    expected = math.prod(math.ceil(n / b) for n, b in zip(SHAPE, buffer))
    assert len(source.requests) == expected


def test_recording_array_refuses_a_request_larger_than_its_buffer():
    # the guard the test above relies on
    with pytest.raises(MemoryError):
        RecordingArray(DATA, (8, 10))[0:9, :]


@pytest.fixture
def row_writes(monkeypatch):
    """The row ranges of the blocks written into datasets named 'target', in order (every
    block goes through ChunkWriter.write, threaded or through h5py)."""
    writes = []
    real = ChunkWriter.write

    def spy(self, region, data):
        if self.dset.name.endswith("/target"):
            writes.append(region[0])
        real(self, region, data)

    monkeypatch.setattr(ChunkWriter, "write", spy)
    return writes


@pytest.mark.parametrize("buffer", [(8, 10), (8, 5), (16, 10), (37, 10)])
def test_blocks_are_staged_into_whole_chunk_writes(h5file, row_writes, buffer):
    plan = small_plan(buffer_shape=buffer)
    dset = write_dataset(h5file, "target", blocks(), plan)
    assert np.array_equal(dset[()], DATA)
    assert dset.chunks == CHUNK and dset.compression == "gzip"
    position = 0
    for i, key in enumerate(row_writes):
        start, stop, step = key.indices(SHAPE[0]) if isinstance(key, slice) else (None,) * 3
        assert step == 1 and start == position, (key, row_writes)  # in order, no overlap
        assert start % CHUNK[0] == 0  # each write begins on a chunk boundary ...
        if i < len(row_writes) - 1:
            assert (stop - start) % CHUNK[0] == 0  # ... and covers whole chunks
        # memory stays within the buffer (a full row of chunks at least)
        assert (stop - start) * SHAPE[1] <= max(math.prod(buffer), CHUNK[0] * SHAPE[1])
        position = stop
    assert position == SHAPE[0]


def test_blocks_with_shape_and_dtype_keywords(h5file):
    dset = write_dataset(h5file, "target", blocks(), shape=SHAPE, dtype="f8")
    assert np.array_equal(dset[()], DATA) and dset.dtype == np.float64
    assert dset.compression == "gzip"


def test_blocks_of_another_dtype_are_cast(h5file):
    dset = write_dataset(h5file, "target", blocks(DATA.astype("i4")), small_plan())
    assert dset.dtype == np.float64 and np.array_equal(dset[()], DATA)


def test_one_dimensional_blocks_and_a_list_of_blocks(h5file):
    data = np.arange(23, dtype="i2")
    parts = [data[:10], data[10:11], data[11:]]
    dset = write_dataset(h5file, "target", parts, shape=(23,), dtype="i2")
    assert np.array_equal(dset[()], data) and dset.dtype == np.int16


def test_backend_configuration_entry_is_looked_up_by_name(h5file):
    other = DatasetConfiguration("other", "i4", (3,))
    plan = BackendConfiguration([small_plan("target", chunk_shape=(2, 5), buffer_shape=(6, 10)),
                                 other])
    dset = write_dataset(h5file, "target", DATA, plan)
    assert dset.chunks == (2, 5)
    # a name the plan does not have gets the defaults
    dset = write_dataset(h5file, "unplanned", DATA, plan)
    assert dset.chunks == SHAPE and dset.compression_opts == 4
    # names are relative to the group written into
    group = h5file.create_group("sub")
    dset = write_dataset(group, "target", blocks(), plan)
    assert dset.name == "/sub/target" and dset.chunks == (2, 5)
    assert np.array_equal(dset[()], DATA)


@pytest.mark.parametrize("as_str", [True, False])
def test_path_target_returns_none_and_closes_the_file(tmp_path, as_str):
    path = tmp_path / "by_path.h5"
    with h5py.File(path, "w") as f:
        f["keep"] = [1, 2]
    target = str(path) if as_str else path
    assert write_dataset(target, "target", DATA, small_plan()) is None
    assert write_dataset(target, "blocks", blocks(), shape=SHAPE, dtype="f8") is None
    with h5py.File(path, "w"):  # would fail if the file were still open
        pass
    path.unlink()
    assert write_dataset(target, "target", DATA) is None  # a missing file is created
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["target"][()], DATA)


@pytest.mark.parametrize("value", [np.array(3.5), np.float32(-1.25), 7, True, np.array(b"ab")],
                         ids=["0d-array", "numpy-scalar", "int", "bool", "bytes"])
def test_zero_dimensional_sources(h5file, value):
    dset = write_dataset(h5file, "target", value)
    expected = np.asarray(value)
    assert dset.shape == () and dset.chunks is None
    assert dset.dtype == expected.dtype and dset[()] == expected[()]


def test_zero_dimensional_array_like_and_h5py_dataset(h5file, tmp_path):
    dset = write_dataset(h5file, "target", ArrayLike(np.array(2.5, dtype="f4")))
    assert dset.shape == () and dset[()] == np.float32(2.5)
    with h5py.File(tmp_path / "scalar.h5", "w") as f:
        f["s"] = np.int64(42)
        dset = write_dataset(h5file, "copy", f["s"])
    assert dset.shape == () and dset.dtype == np.int64 and dset[()] == 42


def test_zero_dimensional_blocks_are_refused(h5file):
    with pytest.raises(ShapeMismatchError):
        write_dataset(h5file, "target", iter([np.array(1.0)]), shape=(), dtype="f8")
    assert "target" not in h5file


@pytest.mark.parametrize("shape", [(0,), (0, 4), (3, 0)])
def test_empty_sources(h5file, shape):
    data = np.zeros(shape, dtype="i4")
    dset = write_dataset(h5file, "target", data)
    assert dset.shape == shape and dset.dtype == np.int32 and dset.chunks is None
    dset = write_dataset(h5file, "like", ArrayLike(data))
    assert dset.shape == shape
    dset = write_dataset(h5file, "blocks", iter([data[:1], data[1:]]), shape=shape, dtype="i4")
    assert dset.shape == shape
    if shape[0] == 0:
        dset = write_dataset(h5file, "no_blocks", iter([]), shape=shape, dtype="i4")
        assert dset.shape == shape


def test_existing_name_is_refused_and_untouched(h5file):
    h5file["target"] = np.arange(5)
    with pytest.raises(NodeExistsError, match="target"):
        write_dataset(h5file, "target", DATA)
    with pytest.raises(NodeExistsError, match="target"):
        write_dataset(h5file, "target", blocks(), shape=SHAPE, dtype="f8")
    assert h5file["target"][()].tolist() == [0, 1, 2, 3, 4]


def test_existing_name_in_a_file_given_by_path(tmp_path):
    path = tmp_path / "existing.h5"
    with h5py.File(path, "w") as f:
        f["target"] = np.arange(5)
    with pytest.raises(NodeExistsError):
        write_dataset(path, "target", DATA)
    with h5py.File(path, "r") as f:
        assert f["target"][()].tolist() == [0, 1, 2, 3, 4]


def test_blocks_need_a_total_shape_and_dtype(h5file):
    with pytest.raises(ConfigurationError, match="shape"):
        write_dataset(h5file, "target", blocks())
    with pytest.raises(ConfigurationError):
        write_dataset(h5file, "target", blocks(), shape=SHAPE)  # no dtype
    with pytest.raises(ConfigurationError):
        write_dataset(h5file, "target", blocks(), dtype="f8")  # no shape
    assert "target" not in h5file


@pytest.mark.parametrize("bad", [
    pytest.param([np.zeros((5, 9))], id="wrong-trailing-shape"),
    pytest.param([np.zeros(10)], id="wrong-rank"),
    pytest.param(list(blocks()) + [np.zeros((1, 10))], id="too-many-rows"),
    pytest.param([np.zeros((40, 10))], id="too-many-rows-in-one-block"),
    pytest.param(list(blocks())[:-1], id="too-few-rows"),
    pytest.param([], id="no-blocks"),
])
@pytest.mark.parametrize("with_plan", [False, True])
def test_blocks_that_do_not_match_leave_no_dataset(h5file, bad, with_plan):
    kwargs = {"configuration": small_plan()} if with_plan else {"shape": SHAPE, "dtype": "f8"}
    with pytest.raises(ShapeMismatchError):
        write_dataset(h5file, "target", iter(bad), **kwargs)
    assert "target" not in h5file


def test_a_source_that_fails_midway_leaves_no_dataset(h5file, tmp_path):
    source = FailingArray(DATA, fail_at=3)
    with pytest.raises(RuntimeError, match="broke"):
        write_dataset(h5file, "target", source, small_plan())
    assert source.calls == 3 and "target" not in h5file

    def failing_blocks():
        yield from list(blocks())[:4]
        raise RuntimeError("the generator broke")

    with pytest.raises(RuntimeError, match="broke"):
        write_dataset(h5file, "target", failing_blocks(), small_plan())
    assert "target" not in h5file
    # the name is free again
    write_dataset(h5file, "target", DATA)
    assert np.array_equal(h5file["target"][()], DATA)


def test_a_failure_in_a_file_given_by_path_leaves_no_dataset(tmp_path):
    path = tmp_path / "fail.h5"
    with pytest.raises(RuntimeError):
        write_dataset(path, "target", FailingArray(DATA, fail_at=2), small_plan())
    with h5py.File(path, "r") as f:
        assert "target" not in f


@pytest.mark.parametrize("plan", [
    pytest.param(small_plan(shape=(36, 10)), id="shape"),
    pytest.param(small_plan(dtype="f4"), id="dtype"),
])
def test_a_plan_for_other_data_is_refused(h5file, plan):
    with pytest.raises(ConfigurationError, match="plan"):
        write_dataset(h5file, "target", DATA, plan)
    with pytest.raises(ConfigurationError):
        write_dataset(h5file, "target", ArrayLike(DATA), BackendConfiguration([plan]))
    with pytest.raises(ConfigurationError):  # blocks declared as other data than planned
        write_dataset(h5file, "target", blocks(), plan, shape=SHAPE, dtype="f8")
    assert "target" not in h5file


def test_declared_shape_must_match_an_array_source(h5file):
    with pytest.raises(ShapeMismatchError):
        write_dataset(h5file, "target", DATA, shape=(10, 37))
    assert "target" not in h5file
    dset = write_dataset(h5file, "target", DATA, shape=SHAPE, dtype="f4")
    assert dset.dtype == np.float32 and np.array_equal(dset[()], DATA)


@pytest.mark.parametrize("bad", [{"chunks": (4, 5)}, "target", 3])
def test_a_configuration_of_another_type_is_refused(h5file, bad):
    with pytest.raises(ConfigurationError):
        write_dataset(h5file, "target", DATA, bad)
    assert "target" not in h5file


def test_progress_true_shows_a_bar(h5file, capsys):
    write_dataset(h5file, "target", DATA, small_plan(), progress=True)
    write_dataset(h5file, "blocks", blocks(), small_plan("blocks"), progress=True)
    err = capsys.readouterr().err
    assert "writing target" in err and "writing blocks" in err
    assert np.array_equal(h5file["target"][()], DATA)
    assert np.array_equal(h5file["blocks"][()], DATA)


@pytest.mark.parametrize("progress", [False, None])
def test_progress_false_prints_nothing(h5file, capsys, progress):
    # None: only on a terminal, and capsys's stderr is not one
    write_dataset(h5file, "target", DATA, small_plan(), progress=progress)
    write_dataset(h5file, "blocks", blocks(), small_plan("blocks"), progress=progress)
    assert capsys.readouterr() == ("", "")
    assert np.array_equal(h5file["blocks"][()], DATA)
