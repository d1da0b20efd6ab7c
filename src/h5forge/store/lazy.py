"""Arrays read on first access, for ``load(..., lazy=True)``."""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

__all__ = ["LazyArray", "LAZY_MIN_BYTES"]

#: Arrays at least this large load as :class:`LazyArray` when ``lazy=True``; smaller ones are
#: read at once (a read costs about as much as keeping the dataset open).
LAZY_MIN_BYTES = 1 << 20


class LazyArray:
    """A stored numpy array that reads from its HDF5 dataset only when indexed.

    ``lazy[10:20]`` reads just those rows; ``np.asarray(lazy)`` or :meth:`load` reads it all.
    The file stays open as long as a LazyArray refers to it.
    """

    __slots__ = ("dataset",)

    def __init__(self, dataset: h5py.Dataset):
        self.dataset = dataset

    @property
    def shape(self) -> tuple[int, ...]:
        return self.dataset.shape

    @property
    def dtype(self) -> np.dtype:
        return self.dataset.dtype

    @property
    def ndim(self) -> int:
        return self.dataset.ndim

    @property
    def size(self) -> int:
        return self.dataset.size

    @property
    def nbytes(self) -> int:
        return self.dataset.size * self.dataset.dtype.itemsize

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.dataset[key]

    def load(self) -> np.ndarray:
        """The whole array, read now."""
        out = np.empty(self.shape, self.dtype)
        if out.size:
            self.dataset.read_direct(out)
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.load()
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"<LazyArray {self.dataset.name!r} shape={self.shape} dtype={self.dtype}>"
