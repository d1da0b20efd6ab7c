"""What a flow is made of: generators (which chunks to process), stages (what to do with each
chunk) and resources (shared state). h5flow's vocabulary and call shapes: subclasses take
their ``params`` as keyword arguments and pass them on to ``super().__init__(**params)``, and
reach the data manager as ``self.data_manager``.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import h5py

from h5forge.errors import FlowConfigError

__all__ = ["FlowObject", "Generator", "Stage", "Resource", "LoopGenerator"]

#: Rows per chunk for ``chunk_size: auto`` when the source is contiguous (no chunking to follow).
AUTO_ROWS = 65536


class FlowObject:
    """Common base: ``name``, ``classname``, ``data_manager``, ``resources`` and the params."""

    def __init__(self, name: str = "", classname: str = "", data_manager: Any = None,
                 resources: dict[str, Resource] | None = None, **params: Any):
        self.name = name
        self.classname = classname or type(self).__name__
        self.data_manager = data_manager
        self.resources = resources if resources is not None else {}
        self.params = params

    def init(self, *args: Any) -> None:
        """Called once before the first chunk."""

    def finish(self, *args: Any) -> None:
        """Called once after the last chunk."""


class Resource(FlowObject):
    """Shared state stages can reach (``self.resources[name]``): ``init()`` / ``finish()``."""


class Stage(FlowObject):
    """One step of a flow. ``requires`` (from the config) names what the engine loads into
    the cache for each chunk; ``run`` reads the cache and writes through the data manager."""

    def __init__(self, requires: list[Any] | None = None, **params: Any):
        super().__init__(**params)
        self.requires = list(requires or [])

    def init(self, source_name: str) -> None:
        """Called once before the first chunk of ``source_name``."""

    def run(self, source_name: str, source_slice: slice, cache: dict[str, Any]) -> None:
        """Process rows ``source_slice`` of ``source_name``; ``cache`` holds them and the
        stage's requires."""
        raise NotImplementedError(f"stage {self.name!r} ({self.classname}) defines no run()")

    def finish(self, source_name: str) -> None:
        """Called once after the last chunk."""


class Generator(FlowObject):
    """Yields the slices of the source to process, one chunk at a time."""

    def __init__(self, dset_name: str = "", input_filename: str | None = None,
                 start_position: int | None = None, end_position: int | None = None,
                 **params: Any):
        super().__init__(**params)
        self.dset_name = dset_name
        self.input_filename = input_filename
        self.start_position = start_position
        self.end_position = end_position

    def __iter__(self) -> Iterator[slice]:
        while True:
            chunk = self.next()
            if chunk is None:
                return
            yield chunk

    def next(self) -> slice | None:
        """The next slice, or None when done (h5flow's protocol)."""
        raise NotImplementedError(f"generator {self.name!r} ({self.classname}) defines no "
                                  f"next()")


class LoopGenerator(Generator):
    """The default generator: loop over table ``dset_name`` in chunks of ``chunk_size`` rows
    (``auto``: the table's HDF5 chunking, or 65,536 rows for a contiguous table), from
    ``start_position`` to ``end_position``."""

    def __init__(self, chunk_size: int | str = "auto", **params: Any):
        super().__init__(**params)
        self.chunk_size = chunk_size
        self._position: int | None = None
        self._stop = 0

    def init(self) -> None:
        dset = self._table()
        rows = dset.shape[0] if dset.shape else 0
        start = 0 if self.start_position is None else int(self.start_position)
        stop = rows if self.end_position is None else min(int(self.end_position), rows)
        if start < 0 or start > rows:
            raise FlowConfigError(f"generator {self.name!r}: start position {start} is outside "
                                  f"{self.dset_name!r} ({rows} rows)")
        self._position, self._stop = start, max(stop, start)
        self.chunk_rows = self._rows_per_chunk(dset)

    def _table(self) -> h5py.Dataset:
        dm = self.data_manager
        if dm is None or not dm.dset_exists(self.dset_name):
            raise FlowConfigError(f"generator {self.name!r}: no table {self.dset_name!r} to "
                                  f"loop over")
        return dm.get_dset(self.dset_name)

    def _rows_per_chunk(self, dset: h5py.Dataset) -> int:
        size = self.chunk_size
        if size == "auto":
            return int(dset.chunks[0]) if dset.chunks else AUTO_ROWS
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise FlowConfigError(f"generator {self.name!r}: chunk_size must be a positive "
                                  f"integer or 'auto', got {size!r}")
        return size

    def next(self) -> slice | None:
        if self._position is None:
            self.init()
        if self._position >= self._stop:
            return None
        chunk = slice(self._position, min(self._position + self.chunk_rows, self._stop))
        self._position = chunk.stop
        return chunk

    @property
    def chunks(self) -> int:
        """How many chunks the loop makes (for progress bars)."""
        if self._position is None:
            self.init()
        return math.ceil((self._stop - (self.start_position or 0)) / self.chunk_rows)
