"""``Follower``: the indices of frames a live writer has completed, in order, as they come.

A writer marks frame ``i`` complete by setting key ``i`` non-zero (after flushing the frame's
data). The follower polls: it refreshes each key dataset and reads only the part past the
frames it has already yielded, so a poll costs the same with ten keys done or ten million.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Iterable, Iterator

import h5py
import numpy as np

from h5forge.errors import FollowError, FollowTimeout

__all__ = ["Follower", "open_swmr", "DEFAULT_POLL_INTERVAL"]

DEFAULT_POLL_INTERVAL = 0.05


def open_swmr(path: str | os.PathLike, timeout: float, poll_interval: float) -> h5py.File:
    """Open ``path`` for SWMR reading, retrying until the writer has switched SWMR on (until
    then HDF5's file locking refuses readers) or ``timeout`` seconds have passed."""
    path = os.fspath(path)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return h5py.File(path, "r", libver="latest", swmr=True)
        except (OSError, BlockingIOError) as exc:
            if time.monotonic() >= deadline:
                missing = not os.path.exists(path)
                raise FollowTimeout(
                    f"{path}: {'no such file' if missing else 'cannot be opened for SWMR reading'}"
                    f" after {timeout:g} s ({exc}). A writer must open it with libver='latest' "
                    f"and switch swmr_mode on before readers can open it: until then HDF5's file "
                    f"locking refuses them. If the file system has no locking (some network "
                    f"file systems), set HDF5_USE_FILE_LOCKING=FALSE") from None
            time.sleep(poll_interval)


class _Key:
    """One key dataset, read from the ready prefix on."""

    def __init__(self, dataset: h5py.Dataset):
        self.dataset = dataset
        shape = dataset.shape
        if shape is None:
            raise FollowError(f"{dataset.file.filename}:{dataset.name}: a key dataset needs a "
                              f"shape (it is empty)")
        self.inner = math.prod(shape[1:]) if len(shape) > 1 else 1
        # for messages: after a failed refresh HDF5 may not answer questions about it
        self.where = f"{dataset.file.filename}:{dataset.name}"
        self.layout = "contiguous" if dataset.chunks is None else f"chunks {dataset.chunks}"

    def size(self) -> int:
        shape = self.dataset.shape
        return math.prod(shape) if shape else 1

    def _failed(self, exc: Exception) -> FollowError:
        return FollowError(f"{self.where}: the key dataset cannot be read live "
                           f"({type(exc).__name__}: {exc}). It is {self.layout}; HDF5 refreshes "
                           f"only chunked datasets for SWMR readers, so the writer must create "
                           f"keys with chunks (LiveWriter.create_key does)")

    def read(self, start: int, stop: int) -> np.ndarray:
        """Keys ``start .. stop`` (flat, C order) as booleans, reading only the rows needed."""
        try:
            return self._read(start, stop)
        except (OSError, RuntimeError) as exc:
            raise self._failed(exc) from exc

    def _read(self, start: int, stop: int) -> np.ndarray:
        ds = self.dataset
        if not ds.shape:
            return np.atleast_1d(ds[()] != 0)[start:stop]
        if ds.ndim == 1:
            return ds[start:stop] != 0
        first, last = start // self.inner, -(-stop // self.inner)
        block = ds[first:last].reshape(-1)
        offset = start - first * self.inner
        return block[offset:offset + stop - start] != 0

    def refresh(self) -> None:
        try:
            self.dataset.refresh()
        except (OSError, RuntimeError) as exc:
            raise self._failed(exc) from exc


class Follower:
    """Iterate over the flat indices of completed frames of a live (SWMR) file, in order.

    ``file`` is a path (opened for SWMR reading, retried while the writer has not switched
    SWMR on) or an open ``h5py.File``. ``key_paths`` names key datasets, or groups meaning
    every dataset inside; a frame is ready when its key is non-zero in all of them. Iteration
    ends when the ``finished`` dataset becomes non-zero and one more poll finds nothing new
    (:attr:`finished`), or when no new frame came for ``timeout`` seconds (:attr:`timed_out`).
    """

    def __init__(self, file: str | os.PathLike | h5py.File, key_paths: str | Iterable[str],
                 timeout: float = 10, finished: str | None = None,
                 poll_interval: float | None = None):
        if timeout <= 0:
            raise FollowError(f"timeout must be positive, got {timeout!r}")
        self.timeout = float(timeout)
        interval = DEFAULT_POLL_INTERVAL if poll_interval is None else float(poll_interval)
        self.poll_interval = max(min(interval, self.timeout / 4), 0.0)
        if isinstance(file, h5py.File):
            self.file, self._own = file, False
        else:
            self.file = open_swmr(file, self.timeout, self.poll_interval or 0.01)
            self._own = True
        paths = [key_paths] if isinstance(key_paths, str) else list(key_paths)
        if not paths:
            raise FollowError("give at least one key dataset path")
        self._keys = [_Key(ds) for ds in self._datasets(paths)]
        self._finished_path = finished
        self._finished_ds: h5py.Dataset | None = None
        if finished is not None:
            obj = self.file.get(finished)
            if not isinstance(obj, h5py.Dataset):
                raise FollowError(f"{self.file.filename}:{finished}: no such dataset for the "
                                  f"finished flag")
            self._finished_ds = obj
        self.reset()

    def _datasets(self, paths: list[str]) -> list[h5py.Dataset]:
        found: list[h5py.Dataset] = []
        for path in paths:
            obj = self.file.get(path)
            if isinstance(obj, h5py.Dataset):
                found.append(obj)
            elif isinstance(obj, h5py.Group):
                inside = [obj[name] for name in obj if isinstance(obj[name], h5py.Dataset)]
                if not inside:
                    raise FollowError(f"{self.file.filename}:{path}: the key group holds no "
                                      f"datasets")
                found.extend(inside)
            else:
                raise FollowError(f"{self.file.filename}:{path}: no such key dataset or group")
        return found

    # -- state ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Start over from frame 0 (the next iteration yields every ready frame again)."""
        self._next = 0
        self.ready = 0  # frames the last poll found complete (from frame 0)
        self.finished = False
        self.timed_out = False

    def close(self) -> None:
        if self._own and self.file.id.valid:
            self.file.close()

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- polling ------------------------------------------------------------------------------
    def poll(self) -> int:
        """Refresh the keys and return how many frames are ready from the start (reading only
        past what was already found ready)."""
        start = self._next
        limit = None
        for key in self._keys:
            key.refresh()
            size = key.size()
            limit = size if limit is None else min(limit, size)
        if not limit or limit <= start:
            return start
        ready = np.ones(limit - start, dtype=bool)
        for key in self._keys:
            ready &= key.read(start, limit)
        missing = np.flatnonzero(~ready)
        self.ready = start + (int(missing[0]) if len(missing) else len(ready))
        return self.ready

    def _is_finished(self) -> bool:
        ds = self._finished_ds
        if ds is None:
            return False
        ds.refresh()
        value = ds[()]  # a scalar, or a (usually 1-element) array
        return bool(value.any()) if isinstance(value, np.ndarray) else bool(value)

    def are_keys_complete(self) -> bool:
        """Whether every frame of the scan is ready: every key non-zero over its extent. A
        growing key (unlimited maxshape) can only be complete once the writer has set the
        finished flag; a fixed one must be at its full size."""
        growing = False
        for key in self._keys:
            key.refresh()
            ds = key.dataset
            maxshape = ds.maxshape or ()
            if any(m is None for m in maxshape):
                growing = True
            elif ds.shape != maxshape:
                return False
            if key.size() == 0 or not bool(np.all(key.read(0, key.size()))):
                return False
        return not growing or self._is_finished()

    def _polls(self) -> Iterator[int]:
        """The ready count each time a poll finds frames past ``_next``; ends once the
        finished flag is set and one more poll finds nothing new, or on the timeout."""
        last_new = time.monotonic()
        finishing = False
        while True:
            ready = self.poll()
            if ready > self._next:
                yield ready
                last_new = time.monotonic()
                finishing = False
                continue
            if finishing:  # finished was set and one more poll found nothing new
                self.finished = True
                return
            if self._is_finished():
                finishing = True
                continue
            if time.monotonic() - last_new >= self.timeout:
                self.timed_out = True
                return
            time.sleep(self.poll_interval)

    def __iter__(self) -> Iterator[int]:
        for ready in self._polls():
            for index in range(self._next, ready):
                self._next = index + 1
                yield index

    def batches(self, max_frames: int | None = None) -> Iterator[range]:
        """The completed frames in batches: each ``range`` holds the frames one poll found
        (at most ``max_frames``), in order, each frame once; it ends as iteration does."""
        if max_frames is not None and max_frames < 1:
            raise FollowError(f"max_frames must be at least 1, got {max_frames!r}")
        for ready in self._polls():
            while self._next < ready:
                stop = ready if max_frames is None else min(ready, self._next + max_frames)
                batch, self._next = range(self._next, stop), stop
                yield batch
