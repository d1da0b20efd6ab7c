"""What a flow is made of: generators (which chunks to process), stages (what to do with each
chunk) and resources (shared state). h5flow's vocabulary and call shapes: subclasses take
their ``params`` as keyword arguments and pass them on to ``super().__init__(**params)``, and
reach the data manager as ``self.data_manager``.

On MPI ranks every rank builds the same objects; ``self.rank``, ``self.size`` and ``self.comm``
say which rank this is (0, 1 and None on one rank). A generator gives each rank its own chunks
(:class:`LoopGenerator` deals them round-robin) and returns ``None`` (or h5flow's
``Generator.EMPTY``) once it has no more; the run goes on until every rank is done, and a rank
that is done runs its stages with the empty slice ``Generator.EMPTY``, because the data
manager's writes are collective: every rank makes the same calls, some with no rows.
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
        # which MPI rank this is, of how many, and the mpi4py communicator (h5flow's names)
        ranks = getattr(data_manager, "ranks", None)
        self.rank: int = ranks.rank if ranks is not None else 0
        self.size: int = ranks.size if ranks is not None else 1
        self.comm: Any = ranks.comm if ranks is not None else None

    def init(self, *args: Any) -> None:
        """Called once before the first chunk."""

    def finish(self, *args: Any) -> None:
        """Called once after the last chunk."""


class Resource(FlowObject):
    """Shared state stages can reach (``self.resources[name]``, or h5flow's global
    ``resources[name]`` from :mod:`h5forge.flow.compat`): ``init(source_name)`` /
    ``finish(source_name)``. Like h5flow's, it gets the run's ``input_filename``,
    ``start_position`` and ``end_position``."""

    def __init__(self, input_filename: str | None = None, start_position: int | None = None,
                 end_position: int | None = None, **params: Any):
        super().__init__(**params)
        self.input_filename = input_filename
        self.start_position = start_position
        self.end_position = end_position


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
        stage's requires. The base does nothing (as h5flow's: subclasses call
        ``super().run(...)``)."""

    def finish(self, source_name: str) -> None:
        """Called once after the last chunk."""


class Generator(FlowObject):
    """Yields the slices of the source to process, one chunk at a time."""

    #: What a rank with nothing (more) to do gets, and may return (h5flow's value).
    EMPTY = slice(-1, -1)

    def __init__(self, dset_name: str = "", input_filename: str | None = None,
                 start_position: int | None = None, end_position: int | None = None,
                 **params: Any):
        super().__init__(**params)
        self.dset_name = dset_name
        self.input_filename = input_filename
        self.start_position = start_position
        self.end_position = end_position

    def __iter__(self) -> Iterator[slice]:
        """This rank's chunks, until ``next()`` says it is done."""
        while True:
            chunk = self.next()
            if chunk is None or (isinstance(chunk, slice) and chunk == Generator.EMPTY):
                return
            yield chunk

    def next(self) -> slice | None:
        """This rank's next slice, or None (or ``Generator.EMPTY``) when it has no more. On
        MPI ranks it is called on every rank until all are done, so a generator that writes
        its source must make its collective writes on every call, with no rows when done."""
        raise NotImplementedError(f"generator {self.name!r} ({self.classname}) defines no "
                                  f"next()")


class LoopGenerator(Generator):
    """The default generator: loop over table ``dset_name`` in chunks of ``chunk_size`` rows
    (``auto``: the table's HDF5 chunking, or 65,536 rows for a contiguous table), from
    ``start_position`` to ``end_position``. On MPI ranks rank ``r`` of ``N`` takes chunks
    ``r``, ``r + N``, ... so the rows each parallel step appends land in the serial order."""

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
        self.chunk_rows = self._rows_per_chunk(dset)
        self._position, self._stop = start + self.rank * self.chunk_rows, max(stop, start)

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
        self._position += self.size * self.chunk_rows
        return chunk

    @property
    def chunks(self) -> int:
        """How many chunks the loop makes on all ranks together (for progress bars)."""
        if self._position is None:
            self.init()
        return math.ceil((self._stop - (self.start_position or 0)) / self.chunk_rows)
