"""Reading the frame of a flat index from a live dataset, and the usual follow loop in one call."""

from __future__ import annotations

import math
import os
from typing import Any, Iterable, Iterator, Mapping

import h5py
import numpy as np

from h5forge.errors import FollowError
from h5forge.follow.follower import Follower

__all__ = ["FrameReader", "frames", "follow_frames", "scan_rank_of"]


class FrameReader:
    """Frames of ``dataset`` by flat scan index: the first ``scan_rank`` axes are the scan
    (flattened in C order), the rest is one frame. The dataset is refreshed whenever an index
    lies past what was seen, so a keyed frame is never read as fill value. Pass
    ``read_frame(index, follower.ready)`` so that one refresh serves every frame the last
    poll found complete (else each new index refreshes)."""

    def __init__(self, dataset: h5py.Dataset, scan_rank: int):
        if dataset.shape is None or not 0 < scan_rank <= dataset.ndim:
            raise FollowError(f"{dataset.file.filename}:{dataset.name}: scan_rank {scan_rank} "
                              f"does not fit shape {dataset.shape}")
        self.dataset = dataset
        self.scan_rank = scan_rank
        self._rest = (slice(None),) * (dataset.ndim - scan_rank)  # h5py's ndim is not free
        self._scan: tuple[int, ...] = dataset.shape[:scan_rank]
        self._seen = -1  # highest index read since the last refresh showed it complete

    def selection(self, index: int) -> tuple[Any, ...]:
        """The selection of frame ``index`` (scan position, then every frame axis)."""
        if self.scan_rank == 1:
            return (index,) + self._rest
        position = np.unravel_index(index, self._scan)
        return tuple(int(p) for p in position) + self._rest

    def read_frame(self, index: int, ready: int | None = None
                   ) -> tuple[np.ndarray, tuple[Any, ...]]:
        """``(frame, selection)`` for flat index ``index``. ``ready`` (optional): how many
        frames the keys showed complete, so one refresh serves all of them."""
        if index < 0:
            raise IndexError(f"frame index {index} is negative")
        if index > self._seen:
            # The writer flushed this frame before setting its key: after a refresh every
            # frame keyed so far is visible (the extent too, for a growing dataset).
            self.dataset.refresh()
            self._scan = self.dataset.shape[:self.scan_rank]
            self._seen = min(math.prod(self._scan), max(index + 1, ready or 0)) - 1
            if index > self._seen:
                raise IndexError(f"{self.dataset.file.filename}:{self.dataset.name}: frame "
                                 f"{index} is past the dataset's scan of {self._seen + 1} "
                                 f"frames (has the writer flushed it?)")
        selection = self.selection(index)
        return self.dataset[selection], selection


def scan_rank_of(key: h5py.Dataset) -> int:
    """The scan rank a key dataset implies: its rank without trailing length-1 axes
    ((rows, cols, 1, 1) -> 2), at least 1."""
    shape = list(key.shape or ())
    while len(shape) > 1 and shape[-1] == 1:
        shape.pop()
    return max(len(shape), 1)


def frames(file: str | os.PathLike | h5py.File, data: Mapping[str, str],
           keys: str | Iterable[str], **follower_options: Any
           ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Follow ``file`` and yield ``(index, {name: frame})`` for every completed frame of the
    datasets in ``data`` ({name: path}); ``follower_options`` go to :class:`Follower`."""
    with Follower(file, keys, **follower_options) as follower:
        yield from follow_frames(follower, data)


def follow_frames(follower: Follower, data: Mapping[str, str]
                  ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """:func:`frames` over a :class:`Follower` you made (and then can ask ``finished``)."""
    rank = scan_rank_of(follower._keys[0].dataset)
    readers = {}
    for name, path in data.items():
        dataset = follower.file.get(path)
        if not isinstance(dataset, h5py.Dataset):
            raise FollowError(f"{follower.file.filename}:{path}: no such data dataset "
                              f"(for {name!r})")
        readers[name] = FrameReader(dataset, min(rank, dataset.ndim))
    for index in follower:
        ready = follower.ready
        yield index, {name: reader.read_frame(index, ready)[0]
                      for name, reader in readers.items()}
