"""Reading the frame of a flat index from a live dataset, and the usual follow loop in one call."""

from __future__ import annotations

import math
import os
from typing import Any, Iterable, Iterator, Mapping

import h5py
import numpy as np

from h5forge.errors import FollowError
from h5forge.follow.direct import DirectChunkReader
from h5forge.follow.follower import Follower, KeySpec, _is_array_like, scan_shape_of
from h5forge.follow.handles import (
    FollowedDataset,
    describe,
    is_open,
    is_swmr_reader,
    open_dataset,
    refresh,
    usable,
)

__all__ = ["FrameReader", "frames", "follow_frames", "scan_rank_of"]


class FrameReader:
    """Frames of ``dataset`` by flat scan index: the first ``scan_rank`` axes are the scan
    (flattened in C order over the dataset's *declared* scan, its maxshape), the rest is one
    frame. So a grid dataset created ``(1, 1, ...)`` with maxshape ``(3, 4, ...)`` and grown
    by the writer maps index 5 to position (1, 1) from the start.

    The dataset is refreshed whenever an index lies past what was seen, so a keyed frame is
    never read as fill value. Pass ``read_frame(index, follower.ready)`` so that one refresh
    serves every frame the last poll found complete (else each new index refreshes).

    ``direct``: read each frame's chunk with ``read_direct_chunk`` and decode it here, without
    HDF5's filter pipeline (swmr_tools' ``use_direct_chunk``). ``None`` (default) does so where
    it is the fast path: one chunk per frame, no filter or one this module decodes (blosc,
    with the ``blosc`` package). ``True`` insists (a :class:`FollowError` says why it cannot),
    ``False`` never does.
    """

    def __init__(self, dataset: h5py.Dataset | Any, scan_rank: int, direct: bool | None = None):
        shape = getattr(dataset, "shape", None)
        if shape is None or not 0 < scan_rank <= len(shape):
            raise FollowError(f"{describe(dataset)}: scan_rank {scan_rank} does not fit shape "
                              f"{shape}")
        self.dataset = dataset
        self.scan_rank = scan_rank
        maxshape = getattr(dataset, "maxshape", None)
        declared = tuple(shape if maxshape is None else maxshape)[:scan_rank]
        self._declared = declared
        self._rest = (slice(None),) * (len(shape) - scan_rank)
        self._shape: tuple[int, ...] = tuple(shape)
        self._inner = self._inner_of(self._shape)
        self._seen = -1  # highest index known complete at the last refresh
        self._refreshes = is_swmr_reader(dataset)
        self.direct = DirectChunkReader.for_frames(dataset, scan_rank, direct)

    def _inner_of(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape[a] if m is None else m
                     for a, m in enumerate(self._declared[1:], 1))

    def position(self, index: int) -> tuple[int, ...]:
        """The scan position of flat ``index`` (C order over the declared scan; the first
        axis may be unlimited)."""
        if self.scan_rank == 1:
            return (index,)
        width = math.prod(self._inner)
        first, rest = divmod(index, width) if width else (index, 0)
        if width:
            return (first,) + tuple(int(p) for p in np.unravel_index(rest, self._inner))
        return (first,) + (0,) * len(self._inner)

    def selection(self, index: int) -> tuple[Any, ...]:
        """The selection of frame ``index`` (scan position, then every frame axis)."""
        return self.position(index) + self._rest

    def _inside(self, position: tuple[int, ...]) -> bool:
        return all(p < n for p, n in zip(position, self._shape))

    def _refresh(self) -> None:
        self.dataset = refresh([self.dataset])[0] if self._refreshes else usable(self.dataset)
        if self.direct is not None and self.direct.dataset is not self.dataset:
            self.direct = DirectChunkReader(self.dataset, self.direct.codec)
        self._shape = tuple(self.dataset.shape)
        self._inner = self._inner_of(self._shape)

    def read_frame(self, index: int, ready: int | None = None, refresh: bool = False
                   ) -> tuple[np.ndarray, tuple[Any, ...]]:
        """``(frame, selection)`` for flat index ``index``. ``ready`` (optional): how many
        frames the keys showed complete, so one refresh serves all of them. ``refresh``:
        refresh the dataset first whatever was seen before."""
        if index < 0:
            raise IndexError(f"frame index {index} is negative")
        position = self.position(index)
        if refresh or (isinstance(self.dataset, FollowedDataset) and not is_open(self.dataset)):
            self._seen = -1  # (a borrowed dataset whose owner dropped it: open it again)
        if index > self._seen or not self._inside(position):
            # The writer flushed this frame before setting its key: after a refresh every
            # frame keyed so far is visible (the extent too, for a growing dataset).
            self._refresh()
            position = self.position(index)
            if not self._inside(position):
                raise IndexError(f"{describe(self.dataset)}: frame {index} (scan position "
                                 f"{position}) is past the dataset's extent {self._shape} "
                                 f"(has the writer flushed it?)")
            self._seen = max(index, (ready or 0) - 1)
        selection = position + self._rest
        if self.direct is not None:
            return self.direct.read(position), selection
        # integer positions alone: h5py's fast path (the frame axes are implied)
        return np.asarray(self.dataset[position]), selection


def scan_rank_of(key: h5py.Dataset | Any) -> int:
    """The scan rank a key dataset implies: the rank of its maxshape without trailing
    length-1 axes ((rows, cols, 1, 1) -> 2; created (1, 1) with maxshape (3, 4) -> 2), at
    least 1."""
    return max(len(scan_shape_of(key)), 1)


def frames(file: str | os.PathLike | h5py.Group | None,
           data: Mapping[str, str | h5py.Dataset],
           keys: KeySpec | Iterable[KeySpec], **follower_options: Any
           ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Follow ``file`` and yield ``(index, {name: frame})`` for every completed frame of the
    datasets in ``data`` ({name: path or h5py.Dataset}); ``follower_options`` go to
    :class:`Follower`."""
    with Follower(file, keys, **follower_options) as follower:
        yield from follow_frames(follower, data)


def follow_frames(follower: Follower, data: Mapping[str, str | h5py.Dataset],
                  direct: bool | None = None
                  ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """:func:`frames` over a :class:`Follower` you made (and then can ask ``finished``).
    ``data`` maps names to paths (a dataset you already hold is reused, never opened twice)
    or to ``h5py.Dataset`` objects."""
    rank = follower.scan_rank
    readers = {}
    for name, spec in data.items():
        if isinstance(spec, str):
            if follower.file is None:
                raise FollowError(f"data {name!r}: the path {spec!r} needs the follower to "
                                  f"have a file; pass an h5py.Dataset instead")
            dataset = open_dataset(follower.file, spec, f"data ({name!r})")
        elif isinstance(spec, h5py.Dataset) or _is_array_like(spec):
            dataset = spec
        else:
            raise FollowError(f"data {name!r}: expected a path or an h5py.Dataset, got "
                              f"{type(spec).__name__}")
        readers[name] = FrameReader(dataset, min(rank, len(dataset.shape)), direct=direct)
    for index in follower:
        ready = follower.ready
        yield index, {name: reader.read_frame(index, ready)[0]
                      for name, reader in readers.items()}
