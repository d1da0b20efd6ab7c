"""``LiveWriter``: write a scan that readers follow while it is written (HDF5 SWMR).

SWMR's rules, which the writer enforces: everything (datasets, groups, attributes) is created
before SWMR starts; afterwards only data is written and chunked datasets grow. Readers must
never see a key before its frame, so :meth:`LiveWriter.append` writes and flushes the frames
first, then sets and flushes the keys.
"""

from __future__ import annotations

import os
from typing import Any

import h5py
import numpy as np

from h5forge.errors import LiveWriterError

__all__ = ["LiveWriter"]


class _Attrs:
    """Attributes of the file root: writable until SWMR starts."""

    def __init__(self, writer: LiveWriter):
        self._writer = writer

    def __setitem__(self, name: str, value: Any) -> None:
        self._writer._before_start(f"set attribute {name!r}")
        self._writer.file.attrs[name] = value

    def __getitem__(self, name: str) -> Any:
        return self._writer.file.attrs[name]


class LiveWriter:
    """Declare frame, key and finished datasets, :meth:`start` SWMR, then :meth:`append`."""

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = True):
        path = os.fspath(path)
        if os.path.exists(path) and not overwrite:
            raise LiveWriterError(f"{path} exists; pass overwrite=True to replace it")
        self.path = path
        self.file = h5py.File(path, "w", libver="latest")
        self.attrs = _Attrs(self)
        self._frames: dict[str, h5py.Dataset] = {}
        self._keys: dict[str, h5py.Dataset] = {}
        self._finished: h5py.Dataset | None = None
        self._started = False
        self._next = 0
        self._scan_shape: tuple[int, ...] | None = None

    # -- declaring ------------------------------------------------------------------------------
    def _before_start(self, what: str) -> None:
        if self._started:
            raise LiveWriterError(f"{self.path}: cannot {what} after start(): SWMR allows no new "
                                  f"datasets, groups or attributes once readers may be reading. "
                                  f"Declare everything before start()")

    def _parent(self, path: str) -> tuple[h5py.Group, str]:
        parent, _, name = path.strip("/").rpartition("/")
        return (self.file.require_group(parent) if parent else self.file), name

    def create_frames(self, path: str, frame_shape: tuple[int, ...], dtype: Any,
                      n_frames: int | None = None, chunks: Any = None, compression: Any = None,
                      compression_opts: Any = None, fillvalue: Any = None) -> h5py.Dataset:
        """A frame dataset: ``(n_frames, *frame_shape)``, growing along axis 0 when
        ``n_frames`` is None; for a grid scan declare the key first (``create_key(path,
        scan_shape)``) and the frames get the scan's shape: ``(*scan_shape, *frame_shape)``."""
        self._before_start(f"create dataset {path!r}")
        dtype = np.dtype(dtype)
        if h5py.check_vlen_dtype(dtype) is not None or dtype.hasobject:
            raise LiveWriterError(f"{path}: variable-length types ({dtype}) cannot be written "
                                  f"live under SWMR; use fixed-length data (e.g. 'S32')")
        frame_shape = tuple(int(n) for n in frame_shape)
        scan = self._scan_shape if n_frames is None and self._scan_shape else None
        if scan is not None:
            shape, maxshape = scan + frame_shape, scan + frame_shape
        elif n_frames is None:
            shape, maxshape = (0,) + frame_shape, (None,) + frame_shape
        else:
            shape = maxshape = (int(n_frames),) + frame_shape
        if chunks is False:
            if None in maxshape:
                raise LiveWriterError(f"{path}: a growing dataset must be chunked (SWMR extends "
                                      f"datasets chunk by chunk); drop chunks=False")
            chunks = None
        elif chunks is None or chunks is True:
            chunks = (1,) * (len(shape) - len(frame_shape)) + frame_shape
        parent, name = self._parent(path)
        kwargs = {"compression": compression, "compression_opts": compression_opts}
        if fillvalue is not None:
            kwargs["fillvalue"] = fillvalue
        dataset = parent.create_dataset(name, shape=shape, maxshape=maxshape, dtype=dtype,
                                        chunks=chunks, **kwargs)
        self._frames[path.strip("/")] = dataset
        return dataset

    def create_key(self, path: str, scan_shape: tuple[int, ...] | None = None) -> h5py.Dataset:
        """A key dataset (int8, 0 = not done): growing 1-D, or shaped like a fixed scan."""
        self._before_start(f"create dataset {path!r}")
        parent, name = self._parent(path)
        if scan_shape is None:
            dataset = parent.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.int8,
                                            chunks=(4096,))
        else:
            scan_shape = tuple(int(n) for n in scan_shape)
            if self._scan_shape is not None and scan_shape != self._scan_shape:
                raise LiveWriterError(f"{path}: scan shape {scan_shape} differs from "
                                      f"{self._scan_shape}")
            self._scan_shape = scan_shape
            dataset = parent.create_dataset(name, shape=scan_shape, dtype=np.int8,
                                            chunks=scan_shape, fillvalue=0)
        self._keys[path.strip("/")] = dataset
        return dataset

    def create_finished(self, path: str = "finished") -> h5py.Dataset:
        """The finished flag: a scalar int8, set to 1 by :meth:`finish`."""
        self._before_start(f"create dataset {path!r}")
        parent, name = self._parent(path)
        self._finished = parent.create_dataset(name, shape=(), dtype=np.int8, data=0)
        return self._finished

    def start(self) -> None:
        """Switch SWMR on: readers may open the file from now on."""
        if self._started:
            return
        if not self._keys:
            raise LiveWriterError(f"{self.path}: declare at least one key (create_key) before "
                                  f"start()")
        self.file.swmr_mode = True
        self._started = True

    # -- writing ----------------------------------------------------------------------------------
    @property
    def frames_written(self) -> int:
        return self._next

    def append(self, index: int | None = None, **data: Any) -> int:
        """Write frames and mark them done: ``data`` maps frame dataset paths (their last
        name is enough) to one frame or a block of frames. Frames are written and flushed
        before their keys. Returns the next index."""
        if not self._started:
            self.start()
        start = self._next if index is None else int(index)
        count = None
        targets = []
        for name, value in data.items():
            dataset = self._frames.get(name) or next(
                (d for p, d in self._frames.items() if p.rpartition("/")[2] == name), None)
            if dataset is None:
                raise LiveWriterError(f"{self.path}: no frame dataset {name!r}; declared: "
                                      f"{', '.join(self._frames) or '(none)'}")
            value = np.asarray(value)
            frame_shape = dataset.shape[self._scan_rank(dataset):]
            n = 1 if value.shape == frame_shape else (
                value.shape[0] if value.shape[1:] == frame_shape else None)
            if n is None:
                raise LiveWriterError(f"{self.path}: {name}: a frame of shape {frame_shape} (or "
                                      f"a block of them) expected, got {value.shape}")
            if count is not None and n != count:
                raise LiveWriterError(f"{self.path}: blocks of different lengths in one append")
            count = n
            targets.append((dataset, value.reshape((n,) + frame_shape)))
        count = 1 if count is None else count
        for dataset, block in targets:
            self._write(dataset, start, block)
        for dataset, _ in targets:
            dataset.flush()
        for key in self._keys.values():
            self._write(key, start, np.ones((count,) + key.shape[self._scan_rank(key):],
                                            dtype=np.int8))
            key.flush()
        self._next = max(self._next, start + count)
        return self._next

    def _scan_rank(self, dataset: h5py.Dataset) -> int:
        return len(self._scan_shape) if self._scan_shape is not None else 1

    def _write(self, dataset: h5py.Dataset, start: int, block: np.ndarray) -> None:
        count = block.shape[0]
        rank = self._scan_rank(dataset)
        if rank == 1:
            if dataset.shape[0] < start + count:
                if dataset.maxshape[0] is not None and start + count > dataset.maxshape[0]:
                    raise LiveWriterError(f"{self.path}:{dataset.name}: frame {start + count - 1}"
                                          f" is past the scan's {dataset.maxshape[0]} frames")
                dataset.resize(start + count, axis=0)
            dataset[start:start + count] = block
            return
        scan = self._scan_shape
        if start + count > int(np.prod(scan)):
            raise LiveWriterError(f"{self.path}: frame {start + count - 1} is past the scan "
                                  f"{scan}")
        for i in range(count):
            position = np.unravel_index(start + i, scan)
            dataset[tuple(int(p) for p in position)] = block[i]

    def finish(self) -> None:
        """Set the finished flag (readers stop after one more poll)."""
        if self._finished is not None:
            self._finished[()] = 1
            self._finished.flush()
        self.file.flush()

    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()

    def __enter__(self) -> LiveWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
