"""swmr_tools' names and call shapes, over ``h5forge.follow``.

For code written against swmr_tools 0.9 (``KeyFollower``, ``RowKeyFollower``, ``DataSource``,
``FrameReader``, ``ChunkSource``): change the import to ``from h5forge.follow import compat
as swmr_tools`` (or import the names from here) and it runs the same way -- constructed from the
h5py datasets you hold, iterated with ``next``, the same attributes (``current_key``,
``current_max``, ``scan_rank``, ``maxshape``, ``timed_out``, ``finished_set``) and the same
``SliceDict`` outputs. The iteration protocol, timeouts and the finished-flag rules are
swmr_tools'; reading the keys, refreshing and reading frames is h5forge's, so what swmr_tools
gets wrong is fixed here:

- the datasets you hold are refreshed as they are, never opened a second time (HDF5 cannot
  refresh a dataset opened twice: stale frames, or a crash on earliest-format files);
- a file opened without SWMR is read without refreshing;
- each poll reads only the keys past the frames already found ready, not every key;
- the scan shape of keys and frames is their maxshape (grids started (1, 1) and grown);
- empty keys and a scalar finished flag work (swmr_tools fails on both);
- direct chunk reads honour the chunk's filter mask, read unfiltered chunks too, and fall back
  to an ordinary read where the filters cannot be decoded here (swmr_tools raises);
- ``ChunkSource`` yields a chunk of a growing dataset only once the whole chunk is within the
  extent (or the finished flag is set), and stops at once at the end of a bounded dataset.

Errors are :class:`h5forge.errors.FollowError` (an ``H5ForgeError``) where swmr_tools raises
``RuntimeError``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Iterable, Mapping, Sequence

import h5py
import numpy as np

from h5forge.errors import FollowError
from h5forge.follow.chunk_grid import chunk_writes, snake_position, write_chunk
from h5forge.follow.direct import DirectChunkReader, decodable_filters
from h5forge.follow.follower import Follower, open_swmr, scan_shape_of
from h5forge.follow.frames import FrameReader as _FrameReader
from h5forge.follow.handles import describe, refresh

__all__ = ["KeyFollower", "RowKeyFollower", "DataSource", "FrameReader", "ChunkSource",
           "SliceDict", "create_dataset", "append_data", "get_position", "get_position_snake",
           "get_position_snake_row", "get_row_slice", "convert_stack_to_grid",
           "check_file_readable", "get_slice_structure", "write_data"]

logger = logging.getLogger(__name__)


class KeyFollower:
    """swmr_tools' ``KeyFollower``: iterate over the flat indices of frames whose keys (in
    every one of ``key_datasets``) are non-zero, waiting up to ``timeout`` seconds for each
    next one; ``finished_dataset`` (one element, non-zero when the scan is done) ends the
    iteration without waiting for the timeout."""

    def __init__(self, key_datasets: Sequence[Any], timeout: float = 10,
                 finished_dataset: Any = None):
        self.current_key = -1
        self.current_max = -1
        self.timeout = timeout
        self.timed_out = False
        self.end_time: float | None = None
        self.key_datasets = key_datasets
        self.finished_dataset = finished_dataset
        self._finish_tag = False
        self.finished_set = False
        self.scan_rank = -1
        self.maxshape: Any = None
        self._engine: Follower | None = None

    def __iter__(self) -> KeyFollower:
        return self

    def _follower(self) -> Follower:
        if self._engine is None:
            self._engine = Follower(None, list(self.key_datasets),
                                    timeout=max(float(self.timeout), 1e-3))
        return self._engine

    def check_datasets(self) -> None:
        """Set :attr:`scan_rank` and :attr:`maxshape` from the keys' maxshape (trailing
        length-1 axes are not part of the scan)."""
        rank = -1
        for key in self.key_datasets:
            r = len(scan_shape_of(key))
            if rank == -1:
                rank = r
            if r != rank:
                raise FollowError(f"{describe(key)}: key datasets must have the same rank "
                                  f"(scan rank {r}, the first key's is {rank})")
            maxshape = getattr(key, "maxshape", None)
            maxshape = key.shape if maxshape is None else maxshape
            if self.maxshape is None:
                self.maxshape = maxshape[:rank]
            elif tuple(self.maxshape) != tuple(maxshape[:rank]):
                logger.warning("Max shape not consistent in keys")
        self.scan_rank = rank

    def __next__(self) -> int:
        if self.current_key < self.current_max:
            self.current_key += 1
            return self.current_key
        self._timer_reset()
        while not self._is_next():
            time.sleep(self.timeout / 20.0)
            if self.is_finished():
                self._finish_tag = True
                raise StopIteration
        self.current_key += 1
        return self.current_key

    def reset(self) -> None:
        """Start again from index 0."""
        self.current_key = -1
        self.current_max = -1
        self.timed_out = False
        self._finish_tag = False

    def _timer_reset(self) -> None:
        self.end_time = time.time() + self.timeout

    def _is_next(self) -> bool:
        ready = self._follower().poll(self.current_max + 1)
        if ready - 1 == self.current_max:
            return False
        self.current_max = ready - 1
        return True

    def _timeout(self) -> bool:
        if not self.end_time:
            return False
        if time.time() > self.end_time:
            self.timed_out = True
            return True
        return False

    def _check_finished_dataset(self) -> None:
        # set on an attribute so that the keys are polled once more after it is set
        self.finished_dataset, self.finished_set = _read_flag(self.finished_dataset,
                                                              self.finished_set)

    def is_finished(self) -> bool:
        """True when the iteration has completed: every ready key yielded and either the
        timeout passed or the finished flag was set (at a previous call)."""
        if self.current_key != self.current_max:
            return False
        if self._timeout():
            return True
        if not self.finished_set:
            self._check_finished_dataset()
            return False
        return self.finished_set

    def get_current_max(self) -> int:
        """The highest index known ready."""
        return self.current_max

    def refresh(self) -> bool:
        """Poll the keys now; True when :attr:`current_max` moved."""
        return self._is_next()

    def are_keys_complete(self) -> bool:
        """Whether the highest ready index is the last of the scan's maxshape (False while the
        maxshape is unlimited: the scan could still grow)."""
        if self.maxshape is None:
            self.check_datasets()
        if any(m is None for m in self.maxshape):
            return False
        return self.current_max == math.prod(self.maxshape) - 1


class RowKeyFollower:
    """swmr_tools' ``RowKeyFollower``: a :class:`KeyFollower` yielding the last index of each
    complete row (``row_size`` frames; by default the last axis of the keys' maxshape)."""

    def __init__(self, key_datasets: Sequence[Any], timeout: float = 10,
                 finished_dataset: Any = None, row_size: int | None = None):
        self.inner_key_follower = KeyFollower(key_datasets, timeout=timeout,
                                              finished_dataset=finished_dataset)
        self.row_size = row_size
        self.scan_rank = -1
        self.maxshape: Any = None

    def __iter__(self) -> RowKeyFollower:
        return self

    def check_datasets(self) -> None:
        self.inner_key_follower.check_datasets()
        self.scan_rank = self.inner_key_follower.scan_rank
        self.maxshape = self.inner_key_follower.maxshape
        if self.row_size is None:
            size = self.maxshape[-1]
            if size is None:
                raise FollowError("row_size must be given when the keys' last scan axis is "
                                  "unlimited (maxshape None)")
            self.row_size = size

    def __next__(self) -> int:
        if self.row_size is None:
            self.check_datasets()
        for _ in range(self.row_size - 1):
            next(self.inner_key_follower)
        return next(self.inner_key_follower)

    def reset(self) -> None:
        self.inner_key_follower.reset()


class SliceDict(dict):
    """A dict of frames with the scan position: ``slice_metadata``, ``maxshape``, ``index``."""

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.slice_metadata: Any = None
        self.maxshape: Any = None
        self.index: int | None = None


class FrameReader:
    """swmr_tools' ``FrameReader``: ``read_frame(index)`` gives ``(frame, slices)`` with the
    frame keeping its scan axes (length 1) and ``slices`` the scan position as slices.
    ``use_direct_chunk``: read one-frame chunks with ``read_direct_chunk`` where this module
    can decode them (none, or blosc)."""

    def __init__(self, dataset: Any, scan_rank: int, use_direct_chunk: bool = False):
        self.scan_rank = scan_rank
        self._reader = _FrameReader(dataset, scan_rank,
                                    direct=None if use_direct_chunk else False)
        self.use_direct_chunk = self._reader.direct is not None

    @property
    def dataset(self) -> Any:
        return self._reader.dataset

    def read_frame(self, index: int, force_refresh: bool = False, *, ready: int | None = None
                   ) -> tuple[np.ndarray, tuple[slice, ...]]:
        """``(frame, slices)`` of flat ``index``. The dataset is refreshed when forced, and
        (unlike swmr_tools, which would read a stale chunk index) whenever ``index`` is past
        what the last refresh covered; ``ready`` (h5forge's addition): how many frames the
        keys showed complete, so that one refresh covers them all."""
        frame, selection = self._reader.read_frame(index, ready, refresh=force_refresh)
        position = selection[:self.scan_rank]
        frame = np.asarray(frame)
        return (frame.reshape((1,) * self.scan_rank + frame.shape),
                tuple(slice(p, p + 1) for p in position))

    def get_pos(self, index: int, shape: Any = None) -> tuple[int, ...]:
        """The scan position of ``index`` (over the dataset's declared scan)."""
        return self._reader.position(index)


class DataSource:
    """swmr_tools' ``DataSource``: frames of several datasets, as they complete. Each item is
    a :class:`SliceDict` {name: frame} with ``index``, ``slice_metadata`` and ``maxshape``.
    ``interleaved_datasets`` ({name: [datasets]}): frames written in turn by several writers,
    frame ``i`` from dataset ``i % n`` at ``i // n``."""

    def __init__(self, key_datasets: Sequence[Any], datasets: Mapping[str, Any] | None,
                 timeout: float = 10, finished_dataset: Any = None,
                 use_direct_chunk: bool = False,
                 interleaved_datasets: Mapping[str, Sequence[Any]] | None = None):
        self._datasets = datasets
        self._interleaved_datasets = interleaved_datasets
        self.max_index = -1
        self.kf = KeyFollower(key_datasets, timeout, finished_dataset)
        self.kf.check_datasets()
        if datasets is None and interleaved_datasets is None:
            raise FollowError("no data to follow: give datasets or interleaved_datasets")
        rank = self.kf.scan_rank
        self.frame_readers = {name: FrameReader(data, rank, use_direct_chunk=use_direct_chunk)
                              for name, data in (datasets or {}).items()}
        self.interleaved_frame_readers = {
            name: [FrameReader(data, rank, use_direct_chunk=use_direct_chunk) for data in group]
            for name, group in (interleaved_datasets or {}).items()}

    def __iter__(self) -> DataSource:
        return self

    def __next__(self) -> SliceDict:
        index = next(self.kf)
        force_refresh = False
        if self.max_index < index:
            self.max_index = self.kf.current_max
            force_refresh = True
        output = SliceDict()
        ready = self.kf.current_max + 1
        for name, reader in self.frame_readers.items():
            frame, slices = reader.read_frame(index, force_refresh=force_refresh, ready=ready)
            output[name] = frame
            if output.slice_metadata is None:
                output.slice_metadata, output.maxshape, output.index = (
                    slices, self.kf.maxshape, index)
        for name, readers in self.interleaved_frame_readers.items():
            n = len(readers)
            frame, slices = readers[index % n].read_frame(
                index // n, force_refresh=force_refresh, ready=-(-ready // n))
            output[name] = frame
            if output.slice_metadata is None:
                output.slice_metadata = (slice(index, index + 1), *slices[1:])
                output.maxshape, output.index = self.kf.maxshape, index
        return output

    def reset(self) -> None:
        """Start again from frame 0."""
        self.kf.reset()
        self.max_index = -1

    def create_dataset(self, data: np.ndarray, fh: h5py.Group, path: str) -> h5py.Dataset:
        return create_dataset(data, self.kf.maxshape, fh, path)

    def append_data(self, data: np.ndarray, slice_metadata: Sequence[slice],
                    dataset: h5py.Dataset) -> None:
        append_data(data, slice_metadata, dataset)

    def is_scan_finished(self) -> bool:
        return self.kf.finished_set

    def has_timed_out(self) -> bool:
        return self.kf.timed_out


def create_dataset(data: np.ndarray, scan_maxshape: Sequence[int | None], fh: h5py.Group,
                   path: str, **kwargs: Any) -> h5py.Dataset:
    """A dataset for results of a scan of ``scan_maxshape``, holding ``data`` as the first
    point (shape ``(1, ..., *data.shape)``, maxshape ``(*scan_maxshape, *data.shape)``);
    ``kwargs`` go to ``create_dataset`` (chunks: one point, or the whole scan for data of
    fewer than 10 elements)."""
    data = np.asarray(data)
    maxshape = tuple(scan_maxshape) + data.shape
    shape = (1,) * len(scan_maxshape) + data.shape
    if "chunks" not in kwargs:
        kwargs["chunks"] = (tuple(1 if n is None else n for n in maxshape) if data.size < 10
                            else shape)
    return fh.create_dataset(path, data=data.reshape(shape), maxshape=maxshape, **kwargs)


def append_data(data: np.ndarray, slice_metadata: Sequence[slice], dataset: h5py.Dataset
                ) -> None:
    """Write ``data`` at the scan position ``slice_metadata``, growing ``dataset`` to it."""
    data = np.asarray(data)
    full = tuple(slice_metadata) + tuple(slice(0, n, 1) for n in data.shape)
    shape = tuple(max(s.stop, n) for s, n in zip(full, dataset.shape))
    if shape != dataset.shape:
        dataset.resize(shape)
    dataset[full] = data


class ChunkSource:
    """swmr_tools' ``ChunkSource``: whole chunks (along the first axis) of ``datasets``
    ({name: dataset}, chunked alike, one chunk across every other axis), read with
    ``read_direct_chunk`` and decoded here where possible (no filter, blosc), else read
    through HDF5. Each item is a :class:`SliceDict` {name: block} whose ``index`` is the
    chunk's first frame. A chunk is ready once it is written and, for a growing dataset,
    within the extent as a whole (or the finished flag is set): writers must write whole
    chunks, as swmr_tools assumes; with keys, use :class:`DataSource`."""

    def __init__(self, datasets: Mapping[str, h5py.Dataset], timeout: float = 10,
                 finished_dataset: Any = None):
        if not datasets:
            raise FollowError("ChunkSource needs at least one dataset")
        for data in datasets.values():
            if not isinstance(data, h5py.Dataset) or data.chunks is None:
                raise FollowError(f"{describe(data)}: ChunkSource reads chunked h5py datasets")
            if tuple(data.shape[1:]) != tuple(data.chunks[1:]):
                raise FollowError(f"{describe(data)}: chunks {data.chunks} and shape "
                                  f"{data.shape} not compatible (one chunk must span every "
                                  f"axis but the first)")
        self._datasets = dict(datasets)
        self.finished_dataset = finished_dataset
        self.timeout = timeout
        self.finished_set = False
        sizes = [d.maxshape[0] for d in self._datasets.values() if d.maxshape[0] is not None]
        self.max_size = min(sizes) if sizes else None
        chunk_sizes = {d.chunks[0] for d in self._datasets.values()}
        if len(chunk_sizes) != 1:
            raise FollowError(f"ChunkSource datasets must have the same chunk length along "
                              f"the first axis, got {sorted(chunk_sizes)}")
        self.chunk_size = chunk_sizes.pop()
        self.current_index = 0
        self._readers = {name: (DirectChunkReader(d, codec) if (codec := decodable_filters(d))
                                else None) for name, d in self._datasets.items()}

    def __iter__(self) -> ChunkSource:
        return self

    def _stop(self, data: h5py.Dataset, start: int) -> int:
        stop = start + self.chunk_size
        if self.max_size is not None:
            stop = min(stop, self.max_size)
        if data.maxshape[0] is None:
            stop = min(stop, data.shape[0])
        return stop

    def _ready(self) -> bool:
        start = self.current_index * self.chunk_size
        for data in self._datasets.values():
            if data.shape[0] <= start:
                return False
            offset = (start,) + (0,) * (data.ndim - 1)
            if data.id.get_chunk_info_by_coord(offset).byte_offset is None:
                return False
            whole = min(start + self.chunk_size, self.max_size or math.inf)
            if data.maxshape[0] is None and data.shape[0] < whole and not self.finished_set:
                return False
        return True

    def _at_end(self) -> bool:
        return self.max_size is not None and self.current_index * self.chunk_size >= \
            self.max_size

    def __next__(self) -> SliceDict:
        if self._at_end():
            raise StopIteration
        if self._ready():
            return self._generate_output()
        started = time.time()
        while self.timeout > time.time() - started:
            time.sleep(self.timeout / 20.0)
            self._check_finished_dataset()
            names = list(self._datasets)
            self._datasets = dict(zip(names, refresh(self._datasets.values())))
            if self._ready():
                return self._generate_output()
            if self.finished_set:
                raise StopIteration
        raise StopIteration

    def _generate_output(self) -> SliceDict:
        start = self.current_index * self.chunk_size
        output = SliceDict()
        output.index = start
        output.maxshape = [self.max_size]
        stop = None
        for name, data in self._datasets.items():
            reader = self._readers[name]
            if reader is not None and reader.dataset is not data:
                reader = self._readers[name] = DirectChunkReader(data, reader.codec)
            end = self._stop(data, start)
            if reader is None:
                block = data[start:end]
            else:
                block = reader.read_chunk((start,) + (0,) * (data.ndim - 1))[:end - start]
            output[name] = block
            stop = end if stop is None else min(stop, end)
        output.slice_metadata = [slice(start, stop)]
        self.current_index += 1
        return output

    def _check_finished_dataset(self) -> None:
        self.finished_dataset, self.finished_set = _read_flag(self.finished_dataset,
                                                              self.finished_set)


def _read_flag(dataset: Any, current: bool) -> tuple[Any, bool]:
    """swmr_tools' finished rule: ``(dataset to use from now on, finished)``; a flag that is
    not one element is logged and ignored (``current`` kept). Any one-element shape works,
    a scalar too (swmr_tools' ``dataset[0]`` fails on a scalar)."""
    if dataset is None:
        return None, current
    dataset = refresh([dataset])[0]
    value = np.asarray(dataset[()])
    if value.size != 1:
        logger.warning(f"finished dataset ({describe(dataset)}) is non-singular")
        return dataset, current
    return dataset, bool(value.reshape(-1)[0] != 0)


# -- swmr_tools.utils: scan positions ----------------------------------------------------------
def get_position(index: int, shape: Sequence[int], scan_rank: int) -> tuple[int, ...]:
    """The scan position of flat ``index`` (C order over ``shape[:scan_rank]``)."""
    return tuple(int(p) for p in np.unravel_index(index, tuple(shape[:scan_rank])))


def get_position_snake_row(index: int, shape: Sequence[int], scan_rank: int
                           ) -> tuple[tuple[int, ...], bool]:
    """``(position, reversed)`` of flat ``index`` in a snake scan: an axis runs backwards
    when the positions outside it add up to an odd number; ``reversed`` says whether the
    fastest axis runs backwards at this point."""
    return snake_position(index, tuple(shape[:scan_rank]))


def get_position_snake(index: int, shape: Sequence[int], scan_rank: int) -> tuple[int, ...]:
    """The scan position of flat ``index`` in a snake scan."""
    return get_position_snake_row(index, shape, scan_rank)[0]


def get_row_slice(index: int, shape: Sequence[int], scan_rank: int) -> tuple[slice, ...]:
    """The scan-axes selection of the row holding flat ``index``."""
    position = get_position(index, shape, scan_rank)
    return tuple(slice(p, p + 1) for p in position[:-1]) + (slice(None),)


def convert_stack_to_grid(slices: Sequence[slice], scan_shape: Sequence[int],
                          snake: bool = False) -> list[slice]:
    """Selection ``slices`` of a stack (first axis: the flat index) turned into the grid
    position of ``scan_shape`` (raster or snake) followed by the other axes."""
    index = slices[0].start
    rank = len(scan_shape)
    position = (get_position_snake if snake else get_position)(index, scan_shape, rank)
    return [slice(p, p + 1, 1) for p in position] + list(slices[1:])


def check_file_readable(path: str, datasets: str | Iterable[str], timeout: float = 10,
                        retrys: int = 5) -> bool:
    """Whether ``path`` opens for SWMR reading with every one of ``datasets`` in it within
    ``timeout`` seconds (retried ``retrys`` times)."""
    names = [datasets] if isinstance(datasets, str) else list(datasets)
    started = time.time()
    while True:
        try:
            with open_swmr(path, 0.0001, 0.0) as f:
                if all(name in f for name in names):
                    return True
        except (FollowError, OSError):
            pass
        if time.time() - started >= timeout:
            logger.error(f"Could not read file {path}")
            return False
        time.sleep(timeout / retrys)


# -- swmr_tools.chunk_utils: a stream of chunks into a grid -------------------------------------
#: ``get_slice_structure(index, n_points_chunk, scan_shape, snake)``: the grid segments the
#: chunk starting at ``index`` completes (see :mod:`h5forge.follow.chunk_grid`). Unlike
#: swmr_tools, a segment is written by the chunk that brings its last point (swmr_tools writes
#: the end of a snake row one chunk later).
get_slice_structure = chunk_writes
#: ``write_data(slice_structure, data, last_data, output)``
write_data = write_chunk
