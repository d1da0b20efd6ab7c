"""Plans for the datasets already in a file: the default plan, and the plan they were written
with."""

from __future__ import annotations

from typing import Any, Iterator

import h5py

from h5forge import _h5
from h5forge.io.compression import read_filters
from h5forge.io.configuration import BackendConfiguration, DatasetConfiguration
from h5forge.io.nwb import get_default_nwb_configuration, is_nwbfile

__all__ = ["get_default_configuration", "get_current_configuration", "iter_datasets"]


def iter_datasets(group: h5py.Group) -> Iterator[tuple[str, h5py.Dataset]]:
    """``(location, dataset)`` for every dataset under ``group``, each once (a dataset reached
    by several hard links is listed at the first), locations relative to ``group``. Soft and
    external links are not followed; datasets without a shape (``h5py.Empty``) are skipped."""
    found: list[tuple[str, h5py.Dataset]] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and obj.shape is not None:
            found.append((name, obj))

    group.visititems(visit)
    return iter(found)


def get_default_configuration(file_or_group: _h5.PathLike | h5py.Group | Any
                              ) -> BackendConfiguration:
    """The default plan (about 10 MB chunks, 500 MB buffers, gzip level 4; see
    :mod:`h5forge.io.estimate`) for every dataset already in ``file_or_group`` (a path or an
    open ``h5py.File``/``Group``), located relative to it. What :func:`repack` writes by
    default. For an in-memory ``pynwb.NWBFile``, every dataset pynwb will write, located as
    in the written file (see :func:`h5forge.io.nwb.get_default_nwb_configuration`)."""
    if is_nwbfile(file_or_group):
        return get_default_nwb_configuration(file_or_group)
    with _h5.open_group(file_or_group, "r") as group:
        return BackendConfiguration([DatasetConfiguration(location, dset.dtype, dset.shape)
                                     for location, dset in iter_datasets(group)])


def get_current_configuration(file_or_group: _h5.PathLike | h5py.Group) -> BackendConfiguration:
    """The plan the datasets in ``file_or_group`` were written with: their chunks, compression
    and filters (buffers are the defaults for those chunks). A resizable dataset whose chunk is
    larger than its current extent is shown with the chunk clipped to the extent (contiguous
    when the extent is empty)."""
    with _h5.open_group(file_or_group, "r") as group:
        return BackendConfiguration([_current(location, dset)
                                     for location, dset in iter_datasets(group)])


def _current(location: str, dset: h5py.Dataset) -> DatasetConfiguration:
    chunks = dset.chunks
    if chunks is not None:
        if not all(dset.shape):
            chunks = None
        else:
            chunks = tuple(min(c, n) for c, n in zip(chunks, dset.shape))
    method, options, filters = read_filters(dset) if chunks is not None else (None, None, ())
    return DatasetConfiguration(location, dset.dtype, dset.shape, chunk_shape=chunks,
                                compression_method=method, compression_options=options,
                                filter=filters)
