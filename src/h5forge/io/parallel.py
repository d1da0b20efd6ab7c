"""Compression on every core: whole chunks encoded and decoded in a thread pool.

h5py's filter pipeline compresses one chunk at a time on the calling thread, so a buffered
write with gzip runs at one core's deflate speed. Here each chunk of a buffer is encoded by a
:class:`ChunkFilter` chain in a thread pool (the codecs release the GIL: ``zlib``,
``zstandard``, ``lz4``, numpy for shuffle and fletcher32) and stored with
``Dataset.id.write_direct_chunk``; reads decode ``read_direct_chunk`` bytes the same way.

The bytes are what HDF5's own filters write, in the dataset's own pipeline order (read from
its creation property list, so shuffle runs before the compressor and fletcher32 after it, as
h5py sets them up), with the same filter mask: an optional filter that fails (lz4 on a chunk
over 2 GB, say) is skipped and its bit set, as HDF5 does. Edge chunks are padded to
the full chunk shape with the fill value. Any HDF5 reader reads the result.

A dataset falls back to the filter pipeline (one core) when a filter in its pipeline has no
encoder here (bitshuffle, szip, lzf, scaleoffset, nbit, the lossy plugins...), its codec
library is not installed (``pip install h5forge[fast]`` brings zstandard and lz4), its file
type needs a conversion (variable-length strings, references), or the file uses the MPI
driver. :func:`chunk_pipeline` says why; the writers log it on the ``h5forge.io.parallel``
logger at INFO (``h5forge repack -v`` prints it) and record it in their :class:`WriteReport`.

Memory: at most ``max_in_flight`` chunks are being encoded or decoded at once (from the buffer
size and thread count), and each buffer is drained before the next is requested, so a buffered
write holds one buffer plus those chunks.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import math
import os
import struct
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterator, Protocol

import h5py
import numpy as np

from h5forge.errors import ConfigurationError, CorruptFileError

__all__ = [
    "ChunkFilter",
    "ChunkPipeline",
    "ChunkPool",
    "ChunkWriter",
    "ChunkReader",
    "WriteReport",
    "chunk_pipeline",
    "resolve_threads",
    "ENCODED_FILTERS",
]

logger = logging.getLogger(__name__)

FILTER_DEFLATE, FILTER_SHUFFLE, FILTER_FLETCHER32 = 1, 2, 3
FILTER_BLOSC, FILTER_LZ4, FILTER_ZSTD = 32001, 32004, 32015

#: Peak bytes the chunks in flight may take, at least (see :func:`max_in_flight`).
MIN_IN_FLIGHT_BYTES = 128 * 2**20


def resolve_threads(threads: Any) -> int:
    """``None`` -> ``os.cpu_count()``; else a positive integer, or :class:`ConfigurationError`."""
    if threads is None:
        return max(1, os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ConfigurationError(f"threads must be a positive integer (or None for all "
                                 f"{os.cpu_count()} cores), got {threads!r}")
    return int(threads)


# ----------------------------------------------------------------------------- filters


class ChunkFilter(Protocol):
    """One HDF5 filter as a pair of functions on a chunk's bytes; both must be safe to call
    from several threads at once and should release the GIL for the bulk of their work."""

    name: str

    def encode(self, data: memoryview) -> bytes | memoryview | None:
        """The filtered bytes, or ``None`` when the filter fails on this chunk (HDF5 then skips
        an optional filter and sets its bit in the chunk's filter mask)."""

    def decode(self, data: memoryview, nbytes: int) -> bytes | memoryview:
        """The bytes before this filter; ``nbytes`` is the unfiltered chunk size."""


def _as_bytes_view(data: Any) -> memoryview:
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class _Shuffle:
    """HDF5's byte shuffle (filter 2): byte ``j`` of every element together; a tail shorter
    than an element stays as it is; one element or 1-byte elements are left unchanged."""

    name = "shuffle"

    def __init__(self, itemsize: int):
        self.itemsize = itemsize

    def _split(self, data: memoryview) -> tuple[int, np.ndarray]:
        arr = np.frombuffer(data, dtype=np.uint8)
        return len(arr) // self.itemsize, arr

    def encode(self, data: memoryview) -> memoryview:
        count, arr = self._split(data)
        if self.itemsize <= 1 or count <= 1:
            return data
        out = np.empty_like(arr)
        body = count * self.itemsize
        out[:body].reshape(self.itemsize, count)[...] = arr[:body].reshape(count, self.itemsize).T
        out[body:] = arr[body:]
        return memoryview(out)

    def decode(self, data: memoryview, nbytes: int) -> memoryview:
        count, arr = self._split(data)
        if self.itemsize <= 1 or count <= 1:
            return data
        out = np.empty_like(arr)
        body = count * self.itemsize
        out[:body].reshape(count, self.itemsize)[...] = arr[:body].reshape(self.itemsize, count).T
        out[body:] = arr[body:]
        return memoryview(out)


class _Deflate:
    """HDF5's deflate (filter 1): a zlib stream (header, deflate data, adler32)."""

    name = "gzip"

    def __init__(self, level: int):
        self.level = level

    def encode(self, data: memoryview) -> bytes:
        return zlib.compress(data, self.level)

    def decode(self, data: memoryview, nbytes: int) -> bytes:
        return zlib.decompress(data, bufsize=max(nbytes, 1))


def _zstandard():
    import zstandard
    return zstandard


class _Zstd:
    """hdf5plugin's zstd (filter 32015): one zstd frame with its content size, as
    ``ZSTD_compress`` writes it; the level is clamped to zstd's range as the plugin does."""

    name = "zstd"

    def __init__(self, level: int):
        zstd = _zstandard()
        self.level = min(max(level, -(1 << 17)), zstd.MAX_COMPRESSION_LEVEL)
        self._local = threading.local()  # zstandard's (de)compressors are per thread

    def _get(self, kind: str):
        codec = getattr(self._local, kind, None)
        if codec is None:
            zstd = _zstandard()
            codec = (zstd.ZstdCompressor(level=self.level, write_content_size=True)
                     if kind == "c" else zstd.ZstdDecompressor())
            setattr(self._local, kind, codec)
        return codec

    def encode(self, data: memoryview) -> bytes:
        return self._get("c").compress(data)

    def decode(self, data: memoryview, nbytes: int) -> bytes:
        return self._get("d").decompress(data, max_output_size=nbytes)


class _Lz4:
    """hdf5plugin's lz4 (filter 32004): big-endian 8-byte size and 4-byte block size, then per
    block a big-endian 4-byte length and the lz4 block (stored raw when it would not shrink)."""

    name = "lz4"
    _MAX = 2**31 - 1

    def __init__(self, block_size: int):
        self.block_size = block_size if block_size > 0 else 1 << 30

    def encode(self, data: memoryview) -> bytes | None:
        import lz4.block
        nbytes = len(data)
        if nbytes > self._MAX:
            return None  # the plugin refuses chunks over 2 GB
        block = min(self.block_size, nbytes) or 1
        parts = [struct.pack(">QI", nbytes, block)]
        for start in range(0, nbytes, block):
            piece = data[start:start + block]
            packed = lz4.block.compress(piece, mode="default", store_size=False)
            if len(packed) >= len(piece):
                packed = bytes(piece)
            parts.append(struct.pack(">I", len(packed)))
            parts.append(packed)
        return b"".join(parts)

    def decode(self, data: memoryview, nbytes: int) -> bytes:
        import lz4.block
        total, block = struct.unpack_from(">QI", data, 0)
        block = min(block, total)
        pos, out = 12, bytearray()
        while len(out) < total:
            size = min(block, total - len(out))
            (stored,) = struct.unpack_from(">I", data, pos)
            piece = data[pos + 4:pos + 4 + stored]
            out += piece if stored == size else lz4.block.decompress(piece,
                                                                     uncompressed_size=size)
            pos += 4 + stored
        return bytes(out)


def fletcher32(data: Any) -> int:
    """HDF5's Fletcher-32 checksum of ``data`` (``H5_checksum_fletcher32``): big-endian 16-bit
    words, sums reduced modulo 65535 by end-around carry (so a non-zero sum never reduces
    to 0)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    words = len(arr) // 2
    sum1 = sum2 = 0
    step = 1 << 20  # bounded temporaries whatever the chunk size
    for start in range(0, words, step):
        stop = min(start + step, words)
        w = arr[2 * start:2 * stop].view(">u2").astype(np.uint64)
        weights = np.arange(words - start, words - stop, -1, dtype=np.uint64) % 65535
        sum1 += int(w.sum())
        sum2 += int((weights * w).sum())
    if len(arr) % 2:
        sum1 += int(arr[-1]) << 8
        sum2 += sum1
    reduce = lambda s: 0 if s == 0 else (s - 1) % 65535 + 1  # noqa: E731
    return (reduce(sum2) << 16) | reduce(sum1)


class _Fletcher32:
    """HDF5's fletcher32 (filter 3): the checksum appended, little-endian; checked on read."""

    name = "fletcher32"

    def encode(self, data: memoryview) -> bytes:
        return bytes(data) + struct.pack("<I", fletcher32(data))

    def decode(self, data: memoryview, nbytes: int) -> memoryview:
        body = data[:-4]
        (stored,) = struct.unpack("<I", data[-4:])
        found = fletcher32(body)
        # HDF5 also accepts the byte-swapped sum some old versions wrote.
        swapped = ((found & 0xFF) << 24) | ((found & 0xFF00) << 8) | \
            ((found >> 8) & 0xFF00) | (found >> 24)
        if stored not in (found, swapped):
            raise CorruptFileError("fletcher32 checksum mismatch: the chunk is damaged")
        return body


_BLOSC_NAMES = {0: "blosclz", 1: "lz4", 2: "lz4hc", 3: "snappy", 4: "zlib", 5: "zstd"}


def _has_module(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def _make_filter(filter_id: int, values: tuple[int, ...], itemsize: int
                 ) -> tuple[ChunkFilter | None, str]:
    """The encoder for one pipeline entry, or ``(None, why not)``."""
    if filter_id == FILTER_SHUFFLE:
        return _Shuffle(values[0] if values else itemsize), ""
    if filter_id == FILTER_DEFLATE:
        return _Deflate(values[0] if values else 6), ""
    if filter_id == FILTER_FLETCHER32:
        return _Fletcher32(), ""
    if filter_id == FILTER_ZSTD:
        if not _has_module("zstandard"):
            return None, "zstd needs the zstandard package (pip install h5forge[fast])"
        level = values[0] if values else 3
        return _Zstd(level - 2**32 if level >= 2**31 else level), ""
    if filter_id == FILTER_LZ4:
        if not _has_module("lz4"):
            return None, "lz4 needs the lz4 package (pip install h5forge[fast])"
        return _Lz4(values[0] if values else 0), ""
    return None, f"HDF5 filter {filter_id} has no thread-safe encoder in h5forge"


#: The HDF5 filter ids h5forge encodes in threads (when their libraries are installed).
ENCODED_FILTERS = {FILTER_DEFLATE: "gzip", FILTER_SHUFFLE: "shuffle",
                   FILTER_FLETCHER32: "fletcher32", FILTER_ZSTD: "zstd", FILTER_LZ4: "lz4"}


@dataclasses.dataclass
class ChunkPipeline:
    """A dataset's filter pipeline as encoders, in HDF5's order (index = bit in the mask)."""

    filters: list[tuple[ChunkFilter, bool]]  # (encoder, optional)
    chunk_shape: tuple[int, ...]
    dtype: np.dtype
    fillvalue: Any

    @property
    def chunk_nbytes(self) -> int:
        return math.prod(self.chunk_shape) * self.dtype.itemsize

    @property
    def names(self) -> str:
        return "+".join(f.name for f, _ in self.filters)

    def encode(self, data: np.ndarray) -> tuple[int, bytes] | None:
        """``(filter_mask, bytes)`` for one chunk's data (padded here when it is an edge
        chunk), or ``None`` when a mandatory filter failed."""
        if data.shape != self.chunk_shape:
            full = np.empty(self.chunk_shape, dtype=self.dtype)
            full[...] = self.fillvalue
            full[tuple(slice(0, n) for n in data.shape)] = data
            data = full
        else:
            data = np.ascontiguousarray(data)
        buf = _as_bytes_view(data.reshape(-1).view(np.uint8))
        mask = 0
        for i, (codec, optional) in enumerate(self.filters):
            out = codec.encode(buf)
            if out is None:
                if not optional:
                    return None
                mask |= 1 << i
                continue
            buf = _as_bytes_view(out)
        return mask, buf.obj if isinstance(buf.obj, bytes) and len(buf) == len(buf.obj) \
            else bytes(buf)

    def decode(self, mask: int, raw: bytes) -> np.ndarray:
        """The chunk's array from its stored bytes and filter mask."""
        buf = memoryview(raw)
        nbytes = self.chunk_nbytes
        for i in range(len(self.filters) - 1, -1, -1):
            if not mask & (1 << i):
                buf = _as_bytes_view(self.filters[i][0].decode(buf, nbytes))
        if len(buf) != nbytes:
            raise CorruptFileError(f"a chunk decoded to {len(buf)} bytes instead of {nbytes}")
        return np.frombuffer(buf, dtype=self.dtype).reshape(self.chunk_shape)


_NOTHING_TO_COMPRESS = ("contiguous (no chunks, no filters)", "no filters (nothing to compress)")


def chunk_pipeline(dset: h5py.Dataset) -> tuple[ChunkPipeline | None, str]:
    """The threaded encoders for ``dset``'s filters, or ``(None, the reason it cannot have
    them)``: then its chunks go through HDF5's filter pipeline."""
    if dset.chunks is None:
        return None, _NOTHING_TO_COMPRESS[0]
    if dset.file.driver == "mpio":
        return None, "the MPI driver writes chunks collectively"
    plist = dset.id.get_create_plist()
    nfilters = plist.get_nfilters()
    if not nfilters:
        return None, _NOTHING_TO_COMPRESS[1]
    dtype = dset.dtype
    if dtype.hasobject or not h5py.h5t.py_create(dtype).equal(dset.id.get_type()):
        return None, f"its type {dtype} is converted on write (variable-length or references)"
    if hasattr(plist, "get_chunk_opts") and plist.get_chunk_opts():
        return None, "partial edge chunks are stored unfiltered"
    filters = []
    for i in range(nfilters):
        filter_id, flags, values, _name = plist.get_filter(i)
        codec, reason = _make_filter(filter_id, tuple(int(v) for v in values), dtype.itemsize)
        if codec is None:
            return None, reason
        filters.append((codec, bool(flags & h5py.h5z.FLAG_OPTIONAL)))
    fill = dset.fillvalue
    return ChunkPipeline(filters, tuple(dset.chunks), dtype, fill), ""


# ----------------------------------------------------------------------------- the pool


class ChunkPool:
    """The worker threads (``threads`` of them; one means: work in the calling thread)."""

    def __init__(self, threads: Any = None):
        self.threads = resolve_threads(threads)
        self._executor = (ThreadPoolExecutor(self.threads, thread_name_prefix="h5forge-chunk")
                          if self.threads > 1 else None)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        if self._executor is not None:
            return self._executor.submit(fn, *args)
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def __enter__(self) -> ChunkPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def max_in_flight(threads: int, chunk_nbytes: int, buffer_nbytes: int) -> int:
    """How many chunks may be in the pool at once: two per thread, within half the buffer (at
    least :data:`MIN_IN_FLIGHT_BYTES`) at two chunk-sized copies each, so peak memory stays
    within 1.5 buffers plus a bounded margin."""
    budget = max(buffer_nbytes // 2, MIN_IN_FLIGHT_BYTES)
    return max(1, min(2 * threads, budget // max(2 * chunk_nbytes, 1)))


def _drain(pending: collections.deque, handle: Callable[[Any, Any], None]) -> None:
    """Hand every pending result, oldest first, to ``handle``; on an error, wait for the rest
    (no worker still touches the buffer) and raise the first error."""
    try:
        while pending:
            key, future = pending.popleft()
            handle(key, future.result())
    except BaseException:
        for _key, future in pending:
            future.cancel()
        for _key, future in pending:
            if not future.cancelled():
                future.exception()
        pending.clear()
        raise


def _chunk_offsets(region: tuple[slice, ...], chunks: tuple[int, ...]
                   ) -> Iterator[tuple[int, ...]]:
    ranges = [range(s.start // c * c, s.stop, c) for s, c in zip(region, chunks)]
    return itertools.product(*ranges)


# ----------------------------------------------------------------------------- writing


@dataclasses.dataclass
class WriteReport:
    """How one dataset was written: ``chunks_threaded`` through the pool on ``threads``
    threads, ``blocks_pipeline`` buffers through HDF5's filter pipeline (and why)."""

    location: str
    filters: str = ""
    threads: int = 1
    chunks_threaded: int = 0
    blocks_pipeline: int = 0
    reason: str = ""

    def __str__(self) -> str:
        if self.blocks_pipeline == 0 and self.chunks_threaded:
            return f"{self.location}: {self.chunks_threaded} chunks encoded ({self.filters}) " \
                   f"on {self.threads} thread(s)"
        if self.chunks_threaded:
            return f"{self.location}: {self.chunks_threaded} chunks on {self.threads} " \
                   f"thread(s), {self.blocks_pipeline} block(s) through HDF5's filter " \
                   f"pipeline ({self.reason})"
        if self.reason.startswith(_NOTHING_TO_COMPRESS):
            return f"{self.location}: written by h5py ({self.reason})"
        return f"{self.location}: HDF5's filter pipeline, one core ({self.reason})"


class ChunkWriter:
    """Writes buffer-sized blocks into ``dset``: whole chunks encoded in ``pool`` and stored
    with ``write_direct_chunk``, or the block through h5py when that cannot be done."""

    def __init__(self, dset: h5py.Dataset, pool: ChunkPool, buffer_nbytes: int):
        self.dset, self.pool = dset, pool
        self.pipeline, reason = chunk_pipeline(dset)
        self.report = WriteReport(dset.name, self.pipeline.names if self.pipeline else "",
                                  pool.threads, reason=reason)
        if self.pipeline is not None:
            self.in_flight = max_in_flight(pool.threads, self.pipeline.chunk_nbytes,
                                           buffer_nbytes)
        elif dset.compression is not None or dset.id.get_create_plist().get_nfilters():
            logger.info("%s: filters through HDF5's pipeline on one core: %s", dset.name, reason)

    def _aligned(self, region: tuple[slice, ...]) -> bool:
        return all(s.start % c == 0 and (s.stop % c == 0 or s.stop == n)
                   for s, c, n in zip(region, self.pipeline.chunk_shape, self.dset.shape))

    def _why_not(self, region: tuple[slice, ...], data: np.ndarray) -> str:
        """Why this block cannot be written as whole chunks ('' when it can)."""
        if self.pipeline is None:
            return "no threaded pipeline"
        if not self._aligned(region) or data.shape != tuple(s.stop - s.start for s in region):
            return "a block not aligned to the chunks"
        if data.dtype != self.pipeline.dtype:  # HDF5's conversion rules, not numpy's
            return f"{data.dtype} data converted to {self.pipeline.dtype}"
        return ""

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        """``dset[region] = data``; returns once every chunk is stored (``data`` is free)."""
        why = self._why_not(region, data)
        if why:
            if self.pipeline is not None and not self.report.reason:
                self.report.reason = why
                logger.info("%s: %s goes through HDF5's filter pipeline", self.dset.name, why)
            self.dset[region] = data
            self.report.blocks_pipeline += 1
            return
        chunks = self.pipeline.chunk_shape
        pending: collections.deque = collections.deque()
        dsetid = self.dset.id

        def store(offset: tuple[int, ...], result: tuple[int, bytes] | None) -> None:
            if result is None:  # a mandatory filter failed: let HDF5 try (and report)
                where = tuple(slice(o, min(o + c, n))
                              for o, c, n in zip(offset, chunks, self.dset.shape))
                self.dset[where] = data[tuple(slice(w.start - r.start, w.stop - r.start)
                                              for w, r in zip(where, region))]
                return
            mask, payload = result
            dsetid.write_direct_chunk(offset, payload, mask)
            self.report.chunks_threaded += 1

        for offset in _chunk_offsets(region, chunks):
            local = tuple(slice(o - r.start, min(o + c, r.stop) - r.start)
                          for o, c, r in zip(offset, chunks, region))
            pending.append((offset, self.pool.submit(self.pipeline.encode, data[local])))
            if len(pending) >= self.in_flight:
                key, future = pending.popleft()
                try:
                    store(key, future.result())
                except BaseException:
                    _drain(pending, lambda *_: None)
                    raise
        _drain(pending, store)


# ----------------------------------------------------------------------------- reading


class ChunkReader:
    """Reads blocks of ``dset``: the chunks it overlaps read raw, decoded in ``pool`` and
    copied into place by the workers; a missing chunk is the fill value."""

    def __init__(self, dset: h5py.Dataset, pool: ChunkPool, buffer_nbytes: int):
        self.dset, self.pool = dset, pool
        self.pipeline, self.reason = chunk_pipeline(dset)
        if self.pipeline is not None:
            self.in_flight = max_in_flight(pool.threads, self.pipeline.chunk_nbytes,
                                           buffer_nbytes)

    @property
    def usable(self) -> bool:
        return self.pipeline is not None

    def amplification(self, blocks: list[tuple[slice, ...]]) -> float:
        """Chunk decodes per stored chunk if ``blocks`` are read (> 1: chunks that straddle
        blocks are decoded once per block)."""
        chunks = self.pipeline.chunk_shape
        touched = sum(math.prod((s.stop - 1) // c - s.start // c + 1
                                for s, c in zip(block, chunks)) for block in blocks)
        total = math.prod(math.ceil(n / c) for n, c in zip(self.dset.shape, chunks))
        return touched / max(total, 1)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """``dset[region]`` for a region of slices with steps of 1."""
        pipe = self.pipeline
        out = np.empty(tuple(s.stop - s.start for s in region), dtype=pipe.dtype)
        dsetid = self.dset.id
        pending: collections.deque = collections.deque()

        def place(chunk: np.ndarray | None, target: tuple[slice, ...],
                  source: tuple[slice, ...]) -> None:
            out[target] = chunk[source]

        def decode_into(offset: tuple[int, ...], mask: int, raw: bytes,
                        target: tuple[slice, ...], source: tuple[slice, ...]) -> None:
            try:
                chunk = pipe.decode(mask, raw)
            except Exception as exc:  # zlib.error, ZstdError, a bad checksum, ...
                raise CorruptFileError(
                    f"{self.dset.file.filename}:{self.dset.name}: the chunk at {offset} cannot "
                    f"be decoded ({type(exc).__name__}: {exc}); the file is damaged") from exc
            place(chunk, target, source)

        for offset in _chunk_offsets(region, pipe.chunk_shape):
            lo = [max(o, r.start) for o, r in zip(offset, region)]
            hi = [min(o + c, r.stop) for o, c, r in zip(offset, pipe.chunk_shape, region)]
            target = tuple(slice(a - r.start, b - r.start) for a, b, r in zip(lo, hi, region))
            source = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, offset))
            info = dsetid.get_chunk_info_by_coord(offset)
            if info.byte_offset is None:  # never written: the fill value
                out[target] = pipe.fillvalue
                continue
            mask, raw = dsetid.read_direct_chunk(offset)
            pending.append((offset, self.pool.submit(decode_into, offset, mask, raw, target,
                                                               source)))
            if len(pending) >= self.in_flight:
                _key, future = pending.popleft()
                try:
                    future.result()
                except BaseException:
                    _drain(pending, lambda *_: None)
                    raise
        _drain(pending, lambda *_: None)
        return out
