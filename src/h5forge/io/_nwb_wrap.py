"""hdmf wrappers that make ``NWBHDF5IO.write`` follow an h5forge plan (imported only by
:mod:`h5forge.io.nwb`, and only when it is used: this module imports hdmf).

* :class:`PlannedDataIO` is an ``H5DataIO`` whose ``io_settings`` are the plan's
  ``create_dataset`` keywords (chunks, gzip/szip/lzf or any hdf5plugin filter, shuffle or
  bitshuffle): hdmf hands ``io_settings`` straight to ``h5py.Group.create_dataset``, so every
  filter h5forge can plan is written, with no second validation that knows fewer of them.
* :class:`PlannedChunkIterator` is an hdmf ``GenericDataChunkIterator`` that reads its source
  one plan buffer at a time, so a source larger than memory (an ``h5py.Dataset``, a memmap, a
  dask or zarr array, another ``GenericDataChunkIterator``) is written with bounded RAM.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from hdmf.backends.hdf5.h5_utils import H5DataIO
from hdmf.data_utils import GenericDataChunkIterator

from h5forge.io.configuration import DatasetConfiguration

__all__ = ["PlannedDataIO", "PlannedChunkIterator"]


class PlannedChunkIterator(GenericDataChunkIterator):
    """Serve ``source`` to hdmf one ``configuration.buffer_shape`` block at a time.

    ``source`` is anything with ``__getitem__`` over slices (an array-like), or an hdmf
    ``GenericDataChunkIterator`` (read through its ``_get_data``, the random access every
    such iterator implements). Only one buffer is held at a time."""

    def __init__(self, source: Any, configuration: DatasetConfiguration,
                 progress: bool | None = None) -> None:
        self._source = source
        self._configuration = configuration
        self._read = (source._get_data if isinstance(source, GenericDataChunkIterator)
                      else source.__getitem__)
        # A contiguous plan still iterates: one "chunk" per buffer (hdmf needs a chunk shape
        # for its bookkeeping; PlannedDataIO writes the dataset contiguous).
        chunk = configuration.chunk_shape or configuration.buffer_shape
        if progress is None:
            progress = sys.stderr.isatty()
        super().__init__(chunk_shape=tuple(chunk), buffer_shape=tuple(configuration.buffer_shape),
                         display_progress=bool(progress),
                         progress_bar_options={"desc": f"writing {configuration.location}",
                                               "leave": False})

    @property
    def source(self) -> Any:
        """What the blocks are read from."""
        return self._source

    def _get_data(self, selection: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self._read(selection), dtype=self._configuration.dtype)

    def _get_maxshape(self) -> tuple[int, ...]:
        return tuple(self._configuration.full_shape)

    def _get_dtype(self) -> np.dtype:
        return self._configuration.dtype

    def __reduce__(self):  # pragma: no cover - hdmf's pickling of iterators is not supported
        raise TypeError("a PlannedChunkIterator cannot be pickled; plan the file again")


class PlannedDataIO(H5DataIO):
    """An ``H5DataIO`` that writes its data as ``configuration`` plans.

    ``data`` is what hdmf writes (the source itself, or a :class:`PlannedChunkIterator` over
    it); ``source`` is the user's data it stands for (what a new plan unwraps)."""

    def __init__(self, data: Any, configuration: DatasetConfiguration, source: Any) -> None:
        super().__init__(data=data)
        self._configuration = configuration
        self._source = source

    @property
    def configuration(self) -> DatasetConfiguration:
        """The plan this dataset is written with."""
        return self._configuration

    @property
    def source(self) -> Any:
        """The data this wrapper stands for (before any iterator)."""
        return self._source

    def get_io_params(self) -> dict[str, Any]:
        """The plan as ``H5DataIO`` keywords: hdmf rebuilds a plain ``H5DataIO`` from these
        for compound datasets. Contiguous layouts and bitshuffle cannot be said this way;
        :func:`h5forge.io.nwb.configure_nwbfile` refuses them for compound datasets."""
        params = super().get_io_params()
        kwargs = self._configuration.h5py_kwargs()
        kwargs.pop("dcpl", None)
        params.update({k: v for k, v in kwargs.items() if v is not None})
        if not isinstance(params.get("compression", "gzip"), str) or \
                params.get("compression") not in (None, "gzip", "lzf", "szip"):
            params["allow_plugin_filters"] = True
        return params

    @property
    def maxshape(self) -> Any:
        """What hdmf checks the data's shape with: the planned shape when contiguous (the
        ``maxshape=None`` passed to h5py below means "not resizable", not "no shape")."""
        if self._configuration.chunk_shape is None:
            return tuple(self._configuration.full_shape)
        return super().maxshape

    @property
    def io_settings(self) -> dict[str, Any]:
        """The ``create_dataset`` keywords hdmf passes on: the plan's, fresh at every call
        (hdmf adds ``maxshape`` to the dict it gets for expandable table columns)."""
        settings = dict(super().io_settings)
        settings.update(self._configuration.h5py_kwargs())
        if self._configuration.chunk_shape is None:
            # Contiguous: h5py chunks any dataset given a maxshape (hdmf gives table columns
            # one unless the key is there), so the key is there and says "fixed size".
            settings["maxshape"] = None
        return settings
