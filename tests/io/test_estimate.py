"""Default chunk and buffer shapes (h5forge.io.estimate)."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from h5forge.errors import ConfigurationError
from h5forge.io import (
    DEFAULT_BUFFER_GB,
    DEFAULT_CHUNK_MB,
    estimate_default_buffer_shape,
    estimate_default_chunk_shape,
)
from h5forge.io.estimate import storage_itemsize

MB = 10**6
GB = 10**9


def nbytes(shape, dtype):
    return math.prod(shape) * storage_itemsize(np.dtype(dtype))


def test_defaults():
    assert DEFAULT_CHUNK_MB == 10
    assert DEFAULT_BUFFER_GB == 0.5


@pytest.mark.parametrize("shape, dtype, expected", [
    ((1_000_000, 384), "int16", (13020, 384)),
    ((10**8,), "float64", (1_250_000,)),
    ((10**8, 4), "float32", (625_000, 4)),
    ((10**7, 128), "int16", (39062, 128)),
    ((3600, 304, 608), "uint16", (27, 304, 608)),
    ((10, 20), "float64", (10, 20)),
])
def test_default_chunks_of_typical_arrays(shape, dtype, expected):
    chunk = estimate_default_chunk_shape(shape, dtype)
    assert chunk == expected
    assert all(isinstance(c, int) for c in chunk)
    size = nbytes(chunk, dtype)
    assert size <= 10 * MB
    if nbytes(shape, dtype) > 10 * MB:
        assert size >= 1 * MB
        # trailing axes whole: every axis right of the first one split is full
        split = next(i for i, (c, n) in enumerate(zip(chunk, shape)) if c < n)
        assert chunk[split + 1:] == shape[split + 1:]
        assert all(c == 1 for c in chunk[:split])
    else:
        assert chunk == shape  # a small array is one chunk


def test_trailing_axis_that_does_not_fit_is_split_and_the_rest_is_one():
    # a frame of 2000 x 2000 float64 is 32 MB: more than a chunk, so frames are split by rows
    chunk = estimate_default_chunk_shape((5, 2000, 2000), "f8")
    assert chunk == (1, 625, 2000)
    assert nbytes(chunk, "f8") == 10 * MB


def test_dtype_accepted_as_string_or_dtype():
    assert estimate_default_chunk_shape((10**7,), "f4") == \
        estimate_default_chunk_shape((10**7,), np.dtype("float32")) == (2_500_000,)


def test_variable_length_elements_count_as_16_bytes():
    assert storage_itemsize(h5py.string_dtype()) == 16
    assert storage_itemsize(np.dtype(object)) == 16
    assert estimate_default_chunk_shape((10**7,), h5py.string_dtype()) == (625_000,)


def test_compound_dtype_uses_its_itemsize():
    dtype = np.dtype([("t", "<f8"), ("x", "<i4", (3,))])  # 20 bytes
    assert estimate_default_chunk_shape((10**7,), dtype) == (500_000,)


@pytest.mark.parametrize("chunk_mb, expected", [
    (1, (125_000,)), (2.5, (312_500,)), (100, (10**7,)), (0.000008, (1,)),
])
def test_chunk_mb_is_respected(chunk_mb, expected):
    assert estimate_default_chunk_shape((10**7,), "f8", chunk_mb=chunk_mb) == expected


def test_chunk_mb_splits_the_trailing_axis_once_a_row_is_too_big():
    # rows of 128 int16 = 256 bytes; a 1 KB target takes 3 rows... 4 rows = 1024 B > 1000 B
    assert estimate_default_chunk_shape((1000, 128), "i2", chunk_mb=0.001) == (3, 128)
    # a 100 B target cannot hold one row: the row itself is split
    assert estimate_default_chunk_shape((1000, 128), "i2", chunk_mb=0.0001) == (1, 50)


@pytest.mark.parametrize("shape", [(), (0,), (10, 0), (0, 0), (-1, 4), (5, -2)])
def test_chunk_estimate_refuses_empty_or_negative_shapes(shape):
    with pytest.raises(ConfigurationError, match="contiguous"):
        estimate_default_chunk_shape(shape, "f8")


@pytest.mark.parametrize("chunk_mb", [0, -1, -0.5, float("nan")])
def test_chunk_estimate_refuses_non_positive_targets(chunk_mb):
    with pytest.raises(ConfigurationError, match="chunk_mb must be positive"):
        estimate_default_chunk_shape((100,), "f8", chunk_mb=chunk_mb)


@pytest.mark.parametrize("shape, dtype, chunk, expected", [
    ((1_000_000, 384), "int16", (13020, 384), (651_000, 384)),
    ((10**8,), "float64", (1_250_000,), (62_500_000,)),
    ((10**8, 4), "float32", (625_000, 4), (31_250_000, 4)),
    ((10**7, 128), "int16", (39062, 128), (1_953_100, 128)),
    ((3600, 304, 608), "uint16", (27, 304, 608), (1350, 304, 608)),
    ((10, 20), "float64", (10, 20), (10, 20)),
])
def test_default_buffers_of_typical_arrays(shape, dtype, chunk, expected):
    buffer = estimate_default_buffer_shape(shape, chunk, dtype)
    assert buffer == expected
    check_buffer(shape, chunk, dtype, buffer, DEFAULT_BUFFER_GB)


def check_buffer(shape, chunk, dtype, buffer, buffer_gb):
    assert len(buffer) == len(shape)
    for b, c, n in zip(buffer, chunk, shape):
        assert min(c, n) <= b <= n
        assert b % c == 0 or b == n  # whole chunks, or the full extent
    size, chunk_size = nbytes(buffer, dtype), nbytes(chunk, dtype)
    assert size >= min(chunk_size, nbytes(shape, dtype))
    if chunk_size <= buffer_gb * GB:
        assert size <= buffer_gb * GB
    else:
        assert buffer == tuple(min(c, n) for c, n in zip(chunk, shape))  # one chunk


def test_buffer_grows_from_the_last_axis_by_whole_chunks():
    # chunk (10, 10) of float64 = 800 B; a 100 KB buffer: the last axis whole (1000 -> 80 KB),
    # then only one step of the first axis fits
    buffer = estimate_default_buffer_shape((1000, 1000), (10, 10), "f8", buffer_gb=1e-4)
    assert buffer == (10, 1000)
    # a 1 MB buffer: 12 steps of 10 rows of 8000 B = 960 KB
    buffer = estimate_default_buffer_shape((1000, 1000), (10, 10), "f8", buffer_gb=1e-3)
    assert buffer == (120, 1000)


def test_buffer_clipped_to_an_extent_that_is_not_a_multiple_of_the_chunk():
    buffer = estimate_default_buffer_shape((105, 33), (10, 7), "f8")
    assert buffer == (105, 33)  # everything fits: the full extent, not a multiple of the chunk


def test_buffer_is_never_smaller_than_one_chunk():
    # one chunk is 80 MB, the buffer target 1 MB
    assert estimate_default_buffer_shape((10**8,), (10**7,), "f8", buffer_gb=0.001) == (10**7,)


def test_buffer_gb_is_respected():
    assert estimate_default_buffer_shape((10**8,), (1000,), "f8", buffer_gb=0.1) == \
        (12_500_000,)


@pytest.mark.parametrize("shape", [(), (0,), (4, 0)])
def test_buffer_estimate_refuses_empty_shapes(shape):
    with pytest.raises(ConfigurationError):
        estimate_default_buffer_shape(shape, (1,) * len(shape), "f8")


@pytest.mark.parametrize("chunk", [(10,), (10, 10, 10), (0, 10), (10, -1)])
def test_buffer_estimate_refuses_chunks_that_do_not_fit(chunk):
    with pytest.raises(ConfigurationError, match="does not fit"):
        estimate_default_buffer_shape((100, 100), chunk, "f8")


@pytest.mark.parametrize("buffer_gb", [0, -1, float("nan")])
def test_buffer_estimate_refuses_non_positive_targets(buffer_gb):
    with pytest.raises(ConfigurationError, match="buffer_gb must be positive"):
        estimate_default_buffer_shape((100,), (10,), "f8", buffer_gb=buffer_gb)


# ---- properties over random shapes and dtypes -----------------------------------------------

dtypes = st.sampled_from(["u1", "i2", "<f4", "<f8", "<c16", "S7", "<U5", "O"])
shapes = st.lists(st.integers(1, 10**6), min_size=1, max_size=4).map(tuple)
chunk_targets = st.floats(0.001, 50)  # MB; never smaller than an element (at most 20 bytes)
buffer_targets = st.floats(0.00001, 2)  # GB


@settings(max_examples=300, deadline=None)
@given(shape=shapes, dtype=dtypes, chunk_mb=chunk_targets)
def test_chunk_properties(shape, dtype, chunk_mb):
    chunk = estimate_default_chunk_shape(shape, dtype, chunk_mb=chunk_mb)
    target = chunk_mb * MB
    assert len(chunk) == len(shape)
    assert all(isinstance(c, int) and 1 <= c <= n for c, n in zip(chunk, shape))
    size = nbytes(chunk, dtype)
    assert size <= target
    if nbytes(shape, dtype) > target:
        assert size >= target / 2
    else:
        assert chunk == shape
    # trailing axes are whole up to the one axis that is split; 1 to the left of it
    split = [i for i, (c, n) in enumerate(zip(chunk, shape)) if c < n]
    if split:
        assert chunk[split[-1] + 1:] == shape[split[-1] + 1:]
        assert all(c == 1 for c in chunk[:split[-1]])


@settings(max_examples=300, deadline=None)
@given(shape=shapes, dtype=dtypes, chunk_mb=st.floats(0.0001, 20), buffer_gb=buffer_targets)
def test_buffer_properties(shape, dtype, chunk_mb, buffer_gb):
    chunk = estimate_default_chunk_shape(shape, dtype, chunk_mb=chunk_mb)
    buffer = estimate_default_buffer_shape(shape, chunk, dtype, buffer_gb=buffer_gb)
    check_buffer(shape, chunk, dtype, buffer, buffer_gb)


@settings(max_examples=200, deadline=None)
@given(shape=shapes, chunk=st.lists(st.integers(1, 10**4), min_size=4, max_size=4),
       dtype=dtypes, buffer_gb=buffer_targets)
def test_buffer_properties_for_any_chunk(shape, chunk, dtype, buffer_gb):
    chunk = tuple(min(c, n) for c, n in zip(chunk, shape))
    buffer = estimate_default_buffer_shape(shape, chunk, dtype, buffer_gb=buffer_gb)
    check_buffer(shape, chunk, dtype, buffer, buffer_gb)
