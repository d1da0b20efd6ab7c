"""``Follower``: the indices of frames a live writer has completed, in order, as they come.

A writer marks frame ``i`` complete by setting key ``i`` non-zero (after flushing the frame's
data). The follower polls: it refreshes each key dataset and reads only the part past the
frames it has already yielded, so a poll costs the same with ten keys done or ten million.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Iterable, Iterator, Union

import h5py
import numpy as np

from h5forge.errors import FollowError, FollowTimeout
from h5forge.follow.handles import describe, layout_hint, open_dataset, refresh

__all__ = ["Follower", "open_swmr", "scan_shape_of", "DEFAULT_POLL_INTERVAL"]

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


def scan_shape_of(dataset: Any) -> tuple[int | None, ...]:
    """The scan shape a key (or frame) dataset declares, as swmr_tools reads it: its
    ``maxshape`` without trailing length-1 axes, so a key created ``(1, 1)`` with maxshape
    ``(3, 4)`` and resized as the scan goes is a (3, 4) scan from the start. ``None`` marks an
    unlimited axis. Objects without ``maxshape`` (numpy arrays) use their shape; a scalar
    key is the scan ``()`` (one frame)."""
    shape = getattr(dataset, "shape", None)
    if shape is None:
        raise FollowError(f"{describe(dataset)}: a key dataset needs a shape (it has an empty "
                          f"dataspace)")
    maxshape = getattr(dataset, "maxshape", None)
    maxshape = tuple(shape if maxshape is None else maxshape)
    if len(maxshape) != len(shape):
        raise FollowError(f"{describe(dataset)}: maxshape {maxshape} does not fit shape "
                          f"{tuple(shape)}")
    scan = list(maxshape)
    while len(scan) > 1 and scan[-1] == 1:
        scan.pop()
    return tuple(scan)


def _is_array_like(obj: Any) -> bool:
    """A dataset-like object that is not an h5py one (numpy array, test double)."""
    return not isinstance(obj, (str, bytes, h5py.HLObject)) and hasattr(obj, "shape") and \
        hasattr(obj, "__getitem__")


def _flag_value(dataset: Any) -> bool:
    """The finished flag: a dataset of one element (scalar, (1,), (1, 1)...), set when
    non-zero. Empty means not set yet. Several elements are refused: which would count?"""
    value = np.asarray(dataset[()])
    if value.size > 1:
        raise FollowError(f"{describe(dataset)}: a finished flag must hold one element "
                          f"(a scalar or shape (1,)); it has shape {value.shape}. Point "
                          f"'finished' at a one-element dataset")
    return bool(value.size and value.reshape(-1)[0])


class _Key:
    """One key dataset, read from the ready prefix on.

    Flat index ``i`` is the position ``unravel_index(i, scan)`` of the declared scan shape
    (:func:`scan_shape_of`): rows along the first axis may still be missing (growing keys),
    and so may parts of a row when the writer resizes the inner axes as it goes; missing
    positions are simply not ready yet.
    """

    def __init__(self, dataset: Any):
        self.dataset = dataset
        self.scan = scan_shape_of(dataset)
        self.rank = len(self.scan)
        # for messages: after a failed refresh HDF5 may not answer questions about it
        self.where = describe(dataset)

    def _inner(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The scan's inner axes: the declared ones, or (unlimited) the current extent."""
        return tuple(shape[a] if m is None else m for a, m in enumerate(self.scan[1:], 1))

    def size(self) -> int:
        """Flat positions inside the rows that exist now (some may be past the extent of a
        row the writer has not grown yet: those read as not ready)."""
        shape = tuple(self.dataset.shape)
        if not shape:
            return 1
        if any(n == 0 for n in shape[self.rank:]):
            return 0
        return shape[0] * math.prod(self._inner(shape))

    def _failed(self, exc: Exception) -> FollowError:
        return FollowError(f"{self.where}: the key dataset cannot be read "
                           f"({type(exc).__name__}: {exc}).{layout_hint(self.dataset)}")

    def read(self, start: int, stop: int) -> np.ndarray:
        """Keys ``start .. stop`` (flat, C order) as booleans, reading only the rows needed."""
        try:
            return self._read(start, stop)
        except (OSError, RuntimeError) as exc:
            raise self._failed(exc) from exc

    def _read(self, start: int, stop: int) -> np.ndarray:
        ds = self.dataset
        shape = tuple(ds.shape)
        if not shape:
            return np.atleast_1d(np.asarray(ds[()]) != 0)[start:stop]
        inner = self._inner(shape)
        width = math.prod(inner)
        if self.rank == 1 and len(shape) == 1:
            return np.asarray(ds[start:stop]) != 0
        first, last = start // width, -(-stop // width)
        have = shape[1:self.rank]
        block = np.asarray(ds[first:last]).reshape((-1,) + have)
        if have != inner:  # the writer has not grown these rows to the full scan yet
            full = np.zeros((block.shape[0],) + inner, dtype=block.dtype)
            full[(slice(None),) + tuple(slice(0, n) for n in have)] = block
            block = full
        block = block.reshape(-1)
        offset = start - first * width
        return block[offset:offset + stop - start] != 0

    def is_full_size(self) -> bool | None:
        """Whether the key has reached its declared scan (None: it can grow without bound)."""
        if any(m is None for m in self.scan):
            return None
        return tuple(self.dataset.shape)[:self.rank] == self.scan


KeySpec = Union[str, h5py.Dataset, h5py.Group, Any]


class Follower:
    """Iterate over the flat indices of completed frames of a live (SWMR) file, in order.

    ``file`` is a path (opened for SWMR reading, retried while the writer has not switched
    SWMR on), an open ``h5py.File``/``h5py.Group``, or None when every key is given as a
    dataset object. ``key_paths`` names key datasets (paths, or groups meaning every dataset
    inside) or gives them as ``h5py.Dataset`` objects; a frame is ready when its key is
    non-zero in all of them. Datasets you hold are used as they are, and a path to a dataset
    you hold reuses your handle: HDF5 cannot refresh a dataset opened twice.

    Iteration ends when the ``finished`` flag (a path or dataset with one element) becomes
    non-zero and one more poll finds nothing new (:attr:`finished`), or when no new frame
    came for ``timeout`` seconds (:attr:`timed_out`). A file opened without SWMR is read as it
    is (it is not being written), so a complete file is followed like a live one.
    """

    def __init__(self, file: str | os.PathLike | h5py.Group | None,
                 key_paths: KeySpec | Iterable[KeySpec],
                 timeout: float = 10, finished: str | h5py.Dataset | None = None,
                 poll_interval: float | None = None):
        if timeout <= 0:
            raise FollowError(f"timeout must be positive, got {timeout!r}")
        self.timeout = float(timeout)
        interval = DEFAULT_POLL_INTERVAL if poll_interval is None else float(poll_interval)
        self.poll_interval = max(min(interval, self.timeout / 4), 0.0)
        specs = [key_paths] if isinstance(key_paths, (str, h5py.HLObject)) or _is_array_like(
            key_paths) else list(key_paths)
        if not specs:
            raise FollowError("give at least one key dataset (a path or an h5py.Dataset)")
        self._own = False
        if isinstance(file, h5py.Group):
            self.file = file
        elif file is None:
            held = [k for k in specs if isinstance(k, h5py.HLObject)]
            if any(isinstance(k, str) for k in specs + [finished]):
                raise FollowError("key or finished paths need a file: pass the file (a path "
                                  "or an open h5py.File) or give h5py.Dataset objects")
            self.file = held[0].file if held else None
        elif isinstance(file, (str, os.PathLike)):
            self.file = open_swmr(file, self.timeout, self.poll_interval or 0.01)
            self._own = True
        else:
            raise FollowError(f"file: expected a path, an open h5py.File/Group or None, got "
                              f"{type(file).__name__}")
        try:
            self._keys = [_Key(ds) for ds in self._datasets(specs)]
            self._finished_ds = None if finished is None else self._finished_dataset(finished)
        except BaseException:
            self.close()
            raise
        self.reset()

    def _where(self, path: str) -> str:
        return f"{self.file.file.filename}:{path}" if self.file is not None else path

    def _datasets(self, specs: list[Any]) -> list[Any]:
        found: list[Any] = []
        for spec in specs:
            if isinstance(spec, str):
                obj = self.file.get(spec, getclass=True)
                if obj is None:
                    raise FollowError(f"{self._where(spec)}: no such key dataset or group")
                if issubclass(obj, h5py.Group):
                    spec = self.file[spec]
                else:
                    found.append(open_dataset(self.file, spec, "key"))
                    continue
            if isinstance(spec, h5py.Group):
                names = [name for name in spec
                         if spec.get(name, getclass=True) is h5py.Dataset]
                if not names:
                    raise FollowError(f"{spec.file.filename}:{spec.name}: the key group holds "
                                      f"no datasets")
                found.extend(open_dataset(spec, name, "key") for name in names)
            elif isinstance(spec, h5py.Dataset) or _is_array_like(spec):
                found.append(spec)
            else:
                raise FollowError(f"a key must be a path, an h5py.Dataset or an h5py.Group, "
                                  f"got {type(spec).__name__}")
        return found

    def _finished_dataset(self, finished: Any) -> Any:
        if isinstance(finished, str):
            finished = open_dataset(self.file, finished, "finished flag")
        if isinstance(finished, h5py.Dataset) or _is_array_like(finished):
            _flag_value(finished)  # refuses a flag of several elements now, not at the end
            return finished
        raise FollowError(f"finished: expected a path or an h5py.Dataset, got "
                          f"{type(finished).__name__}")

    @property
    def scan_shape(self) -> tuple[int | None, ...]:
        """The scan the (first) key declares: its maxshape without trailing 1s (None:
        unlimited), as swmr_tools reads it."""
        return self._keys[0].scan

    @property
    def scan_rank(self) -> int:
        """How many leading axes of a frame dataset are the scan (at least 1)."""
        return max(self._keys[0].rank, 1)

    @property
    def key_datasets(self) -> list[Any]:
        """The key datasets followed (yours where you gave them or held them)."""
        return [key.dataset for key in self._keys]

    @property
    def finished_dataset(self) -> Any:
        return self._finished_ds

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

    def _refresh_keys(self) -> None:
        for key, ds in zip(self._keys, refresh([key.dataset for key in self._keys])):
            key.dataset = ds

    # -- polling ------------------------------------------------------------------------------
    def poll(self, start: int | None = None) -> int:
        """Refresh the keys and return how many frames are ready from the start, reading only
        the keys from ``start`` on (default: past the frames already yielded; the frames
        before ``start`` must be known ready)."""
        start = self._next if start is None else int(start)
        limit = None
        self._refresh_keys()
        for key in self._keys:
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
        self._finished_ds = ds = refresh([ds])[0]
        return _flag_value(ds)

    def is_finished(self) -> bool:
        """Whether the writer has set the finished flag (read now; False without one).
        Iteration goes on until one more poll after this found nothing new."""
        return self._is_finished()

    def are_keys_complete(self) -> bool:
        """Whether every frame of the scan is ready: every key non-zero over its extent. A
        growing key (unlimited maxshape) can only be complete once the writer has set the
        finished flag; a bounded one must have reached its maxshape."""
        growing = False
        self._refresh_keys()
        for key in self._keys:
            full = key.is_full_size()
            if full is None:
                growing = True
            elif not full:
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
