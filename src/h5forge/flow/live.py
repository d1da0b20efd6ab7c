"""A flow whose source is a file another process is still writing (``source: follow``).

``FollowGenerator`` follows the live file with :class:`h5forge.follow.Follower` (keys, finished
flag, timeout) and, for each batch of frames a poll finds complete, appends one row per frame to
the source table of the output (``dset_name``, default ``frames``): the frame's flat index and
one field per ``frames`` dataset, holding that frame. The stages then run on those rows, as they
would on any source table, while the writer goes on; the run ends when the writer sets its
finished flag (or nothing new came for ``timeout`` seconds: then the run fails, naming the file).

On MPI ranks rank 0 polls and every rank takes its part of each batch, in rank order, so the
rows are the same as on one rank.

::

    flow:
      source: follow
      stages: [integrate]
    follow:
      file: scan.h5                   # relative to this file; or the run's input (-i)
      keys: [entry/keys]              # key datasets (or groups of them)
      finished: entry/finished
      frames: {image: entry/data, i0: entry/i0}
      timeout: 30                     # seconds without a new frame before giving up
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import h5py
import numpy as np

from h5forge.errors import FlowError, FollowError
from h5forge.flow.objects import Generator
from h5forge.follow import Follower, FrameReader, scan_rank_of

__all__ = ["FollowGenerator", "FOLLOW_KEYS"]

#: The keys of a ``follow:`` section (the generator's params).
FOLLOW_KEYS = ("file", "keys", "finished", "frames", "timeout", "poll_interval", "max_frames",
               "dset_name")


class FollowGenerator(Generator):
    """The source of a live flow: rows appended as the writer completes frames."""

    def __init__(self, keys: str | list[str] = (), frames: Mapping[str, str] | None = None,
                 file: str | None = None, finished: str | None = None,
                 timeout: float = 10.0, poll_interval: float | None = None,
                 max_frames: int | None = None, **params: Any):
        super().__init__(**params)
        self.file = file or self.input_filename
        self.keys = [keys] if isinstance(keys, str) else list(keys)
        self.frames = dict(frames or {})
        self.finished = finished
        self.timeout = float(timeout)
        self.poll_interval = poll_interval
        self.max_frames = max_frames
        self.follower: Follower | None = None
        self._batches: Iterator[range] | None = None
        self._readers: dict[str, FrameReader] = {}
        self._dtype: np.dtype | None = None

    def init(self) -> None:
        if not self.file:
            raise FlowError(f"generator {self.name!r}: no live file: give 'file' in the "
                            f"follow section or the run's input (-i)")
        if self.rank == 0:
            self.follower = Follower(self.file, self.keys, timeout=self.timeout,
                                     finished=self.finished, poll_interval=self.poll_interval)
            self._batches = self.follower.batches(self.max_frames)
            live = self.follower.file
        else:  # the other ranks only read frames rank 0 found complete
            from h5forge.follow import open_swmr

            live = open_swmr(self.file, self.timeout, 0.05)
        self._live = live
        scan_rank = scan_rank_of(_dataset(live, self.keys[0], "key"))
        fields: list[tuple[Any, ...]] = [("index", "<i8")]
        for name, path in self.frames.items():
            dataset = _dataset(live, path, f"frames {name!r}")
            rank = min(scan_rank, dataset.ndim)
            self._readers[name] = FrameReader(dataset, rank)
            fields.append((name, dataset.dtype, dataset.shape[rank:]))
        self._dtype = np.dtype(fields)
        self.data_manager.create_dset(self.dset_name, self._dtype)

    def next(self) -> slice | None:
        ranks = self.data_manager.ranks
        batch = next(self._batches, None) if self._batches is not None else None
        start, stop = ranks.gather(None if batch is None else (batch.start, batch.stop))[0] \
            or (0, 0)
        if stop <= start:  # the writer finished (or timed out): every rank stops here
            self._check_ended()
            return None
        share = np.array_split(np.arange(start, stop), ranks.size)[ranks.rank]
        rows = np.zeros(len(share), self._dtype)
        rows["index"] = share
        for name, reader in self._readers.items():
            for i, index in enumerate(share.tolist()):
                rows[name][i] = reader.read_frame(index, stop)[0]
        sel = self.data_manager.reserve_data(self.dset_name, len(rows))
        self.data_manager.write_data(self.dset_name, sel, rows)
        return sel if len(rows) else Generator.EMPTY

    def _check_ended(self) -> None:
        timed_out = self.data_manager.ranks.gather(
            self.follower.timed_out if self.follower is not None else False)[0]
        if timed_out:  # raised on every rank; the engine reports it once (from rank 0)
            raise FlowError(f"generator {self.name!r}: no new frame in {self.file} for "
                            f"{self.timeout:g} s and the writer did not set "
                            f"{self.finished or 'a finished flag'}; the rows so far are kept")

    def finish(self) -> None:
        if self.follower is not None:
            self.follower.close()
        elif getattr(self, "_live", None) is not None:
            self._live.close()


def _dataset(file: h5py.File, path: str, what: str) -> h5py.Dataset:
    obj = file.get(path)
    if isinstance(obj, h5py.Group):  # a key group: its first dataset gives the scan shape
        obj = next((obj[n] for n in obj if isinstance(obj[n], h5py.Dataset)), None)
    if not isinstance(obj, h5py.Dataset):
        raise FollowError(f"{file.filename}:{path}: no such dataset ({what})")
    return obj
