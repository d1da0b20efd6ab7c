"""Buffered writes: a source larger than memory goes into a dataset one buffer at a time.

Each buffer covers whole chunks (see :mod:`h5forge.io.estimate`), so every chunk is compressed
and written exactly once and memory stays bounded by the buffer, whatever the source's size.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterable, Iterator

import h5py
import numpy as np

from h5forge import _h5
from h5forge._progress import progress_bar
from h5forge.errors import ConfigurationError, NodeExistsError, ShapeMismatchError
from h5forge.io.configuration import BackendConfiguration, DatasetConfiguration
from h5forge.io.parallel import ChunkPool, ChunkReader, ChunkWriter, WriteReport

__all__ = ["write_dataset", "buffer_slices", "copy_buffered", "create_planned"]


def buffer_slices(full_shape: tuple[int, ...], buffer_shape: tuple[int, ...]
                  ) -> Iterator[tuple[slice, ...]]:
    """The buffer-sized blocks covering ``full_shape``, in C order."""
    ranges = [range(0, n, b) for n, b in zip(full_shape, buffer_shape)]
    for starts in itertools.product(*ranges):
        yield tuple(slice(s, min(s + b, n)) for s, b, n in zip(starts, buffer_shape, full_shape))


def _is_array_like(source: Any) -> bool:
    return all(hasattr(source, name) for name in ("shape", "dtype", "__getitem__"))


def write_dataset(group: _h5.PathLike | h5py.Group, name: str, source: Any,
                  configuration: DatasetConfiguration | BackendConfiguration | None = None,
                  progress: bool | None = None, *, shape: Iterable[int] | None = None,
                  dtype: Any = None, threads: int | None = None) -> h5py.Dataset | None:
    """Create dataset ``name`` in ``group`` and fill it from ``source``, one buffer at a time.

    ``source`` is an ndarray (``np.memmap`` included; a list or tuple is one, unless ``shape=``
    or a DatasetConfiguration declares it a list of blocks), an ``h5py.Dataset``, any
    array-like with ``shape``, ``dtype`` and ``__getitem__`` (dask, zarr), or an iterator of
    blocks along axis 0 whose total shape and dtype come from ``configuration`` or
    ``shape=``/``dtype=``. Only one buffer (``configuration.buffer_shape``) is requested from
    the source at a time.
    ``configuration`` is a :class:`DatasetConfiguration` (checked against the source), a
    :class:`BackendConfiguration` (the entry for ``name``), or ``None`` (the defaults).
    ``progress``: a tqdm bar (``None``: only when stderr is a terminal).
    ``threads``: how many threads compress the chunks (``None``: ``os.cpu_count()``; see
    :mod:`h5forge.io.parallel`; filters without a threaded encoder go through HDF5's pipeline,
    logged at INFO on ``h5forge.io.parallel``).

    Returns the new dataset when ``group`` is an open h5py group (for a path the file is closed
    again). An existing ``name`` raises :class:`NodeExistsError`; a source that fails or does
    not match its declared shape leaves no dataset behind.
    """
    with _h5.open_group(group, "a") as parent:
        where = _h5.describe(parent, name)
        if name in parent:
            raise NodeExistsError(f"{where} already exists; delete it first or choose another "
                                  f"name")
        array_like = _is_array_like(source)
        declared = shape is not None or isinstance(configuration, DatasetConfiguration)
        as_array = isinstance(source, (list, tuple)) and not declared
        if not array_like and (as_array or not isinstance(source, Iterable)):
            source, array_like = np.asarray(source), True  # nested lists are an array too
        if array_like and source.shape is None:
            raise ShapeMismatchError(f"{where}: the source has no shape (an empty dataspace); "
                                     f"create it with create_dataset(name, data=h5py.Empty(...))")
        created = _first_missing(parent, name)
        config = _configuration(configuration, name, source if array_like else None,
                                shape, dtype, where)
        pool = ChunkPool(threads)  # a bad thread count raises before anything is written
        try:
            dset = create_planned(parent, name, config, where, shape=config.full_shape,
                                  dtype=config.dtype)
            with progress_bar(config.full_size, f"writing {name}", progress) as bar:
                if array_like:
                    copy_buffered(source, dset, config, bar, pool)
                else:
                    _copy_blocks(iter(source), dset, config, bar, where, pool)
        except BaseException:
            if created in parent:  # the dataset, or the first group made on the way to it
                del parent[created]
            raise
        finally:
            pool.close()
        return dset if isinstance(group, h5py.Group) else None


def create_planned(parent: h5py.Group, name: str, config: DatasetConfiguration, where: str,
                   **kwargs: Any) -> h5py.Dataset:
    """``parent.create_dataset(name, **kwargs)`` with ``config``'s chunks and filters; HDF5
    refusing them (a filter that cannot take this dtype, say) is a :class:`ConfigurationError`
    naming the dataset."""
    try:
        return parent.create_dataset(name, **kwargs, **config.h5py_kwargs())
    except (ValueError, TypeError, OSError) as exc:
        raise ConfigurationError(f"{where}: HDF5 cannot create this dataset with chunks "
                                 f"{config.chunk_shape}, compression "
                                 f"{config.compression_method} and filter {list(config.filter)}: "
                                 f"{exc}; choose another compression for it") from exc


def _first_missing(parent: h5py.Group, name: str) -> str:
    """The first part of ``name`` not yet in ``parent`` (what to delete if the write fails)."""
    parts = [p for p in name.split("/") if p]
    for i in range(1, len(parts) + 1):
        if "/".join(parts[:i]) not in parent:
            return "/".join(parts[:i])
    return name


def _configuration(configuration: Any, name: str, source: Any, shape: Any, dtype: Any,
                   where: str) -> DatasetConfiguration:
    if source is not None:
        if shape is not None and tuple(shape) != tuple(source.shape):
            raise ShapeMismatchError(f"{where}: shape={tuple(shape)} given but the source has "
                                     f"shape {tuple(source.shape)}")
        shape, dtype = tuple(source.shape), np.dtype(dtype if dtype is not None else source.dtype)
    if isinstance(configuration, BackendConfiguration):
        configuration = configuration.get(name)
    if configuration is None:
        if shape is None or dtype is None:
            raise ConfigurationError(f"{where}: an iterator of blocks needs its total shape and "
                                     f"dtype: pass shape= and dtype=, or a DatasetConfiguration")
        return DatasetConfiguration(name, dtype, shape)
    if not isinstance(configuration, DatasetConfiguration):
        raise ConfigurationError(f"{where}: configuration must be a DatasetConfiguration or "
                                 f"BackendConfiguration, got {type(configuration).__name__}")
    if shape is not None or dtype is not None:
        configuration.check_data(shape if shape is not None else configuration.full_shape,
                                 dtype if dtype is not None else configuration.dtype, where)
    return configuration


def copy_buffered(source: Any, dset: h5py.Dataset, config: DatasetConfiguration, bar,
                  pool: ChunkPool | None = None) -> WriteReport:
    """Copy the array-like ``source`` into ``dset`` one ``config.buffer_shape`` block at a time
    (``bar``: a progress bar counting bytes), each block's chunks compressed in ``pool``
    (``None``: a pool of ``os.cpu_count()`` threads). An ``h5py.Dataset`` source with filters
    is decompressed in the pool too. Returns how the chunks were written."""
    if pool is None:
        with ChunkPool() as own:
            return copy_buffered(source, dset, config, bar, own)
    writer = ChunkWriter(dset, pool, config.buffer_size)
    if not math.prod(config.full_shape) or not config.full_shape:
        if config.full_shape == ():
            dset[()] = np.asarray(source[()])
        return writer.report
    blocks = list(buffer_slices(config.full_shape, config.buffer_shape))
    read = source.__getitem__
    if isinstance(source, h5py.Dataset) and source.shape == config.full_shape:
        reader = ChunkReader(source, pool, config.buffer_size)
        if reader.usable and reader.amplification(blocks) <= 1.5:  # else h5py's chunk cache
            read = reader.read
    for block in blocks:
        data = np.asarray(read(block))
        writer.write(block, data)
        bar.update(data.nbytes)
        del data  # released before the next block is requested: one buffer in memory, not two
    return writer.report


def _copy_blocks(blocks: Iterator[Any], dset: h5py.Dataset, config: DatasetConfiguration, bar,
                 where: str, pool: ChunkPool) -> None:
    """Gather blocks along axis 0 into a staging buffer of whole chunks, writing it each time
    it fills: every chunk is written once, whatever sizes the blocks come in."""
    full = config.full_shape
    if not full:
        raise ShapeMismatchError(f"{where}: a 0-d dataset cannot be written from blocks; pass "
                                 f"the value itself")
    rows = config.buffer_shape[0]
    if config.buffer_shape[1:] != full[1:]:  # the buffer holds whole rows here
        row_bytes = max(config.itemsize * math.prod(full[1:]), 1)
        step = config.chunk_shape[0] if config.chunk_shape is not None else 1
        rows = max(step, config.buffer_size // row_bytes // step * step)
    staging = np.empty((min(rows, full[0]),) + full[1:], dtype=config.dtype)
    writer = ChunkWriter(dset, pool, staging.nbytes)
    rest = tuple(slice(0, n) for n in full[1:])
    filled = written = 0
    for block in blocks:
        block = np.asarray(block)
        if block.ndim != len(full) or block.shape[1:] != full[1:]:
            raise ShapeMismatchError(f"{where}: a block of shape {block.shape} does not fit "
                                     f"rows of shape {full[1:]} (declared total {full})")
        if written + filled + len(block) > full[0]:
            raise ShapeMismatchError(f"{where}: the blocks hold more than the declared "
                                     f"{full[0]} rows")
        offset = 0
        while offset < len(block):
            take = min(len(staging) - filled, len(block) - offset)
            staging[filled:filled + take] = block[offset:offset + take]
            filled, offset = filled + take, offset + take
            if filled == len(staging):
                writer.write((slice(written, written + filled),) + rest, staging)
                written, filled = written + filled, 0
                bar.update(staging.nbytes)
    if filled:
        writer.write((slice(written, written + filled),) + rest, staging[:filled])
        written += filled
        bar.update(staging[:filled].nbytes)
    if written != full[0]:
        raise ShapeMismatchError(f"{where}: the blocks held {written} rows but {full[0]} were "
                                 f"declared")
