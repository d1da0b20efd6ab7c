"""The data manager of a flow: tables, references between their rows, and their regions.

Layout (h5flow's, so files move between the two):

* ``/<name>/data``: a 1-D table (rows may have a fixed shape of their own), growing along
  axis 0;
* ``/<a>/ref/<b>/ref``: ``N x 2`` int64 references, column 0 a row of ``a``, column 1 a row of
  ``b``; ``/<b>/ref/<a>/ref`` is a hard link to the same dataset (read it the other way round);
* ``/<a>/ref/<b>/ref_region`` and ``/<b>/ref/<a>/ref_region``: one ``(start, stop)`` row per
  row of ``a`` (of ``b``): the part of ``ref`` holding that row's references. A region always
  spans all of its row's references and starts at the first of them.

Tables grow in amortized steps (capacity doubles); :meth:`DataManager.close` trims every table
to the rows actually reserved, so no space is left unused.

On MPI ranks (``ranks``: :class:`h5forge.flow.mpi.Ranks`, the file opened with the ``mpio``
driver) every method that changes the file is collective: each rank calls it the same number of
times, in the same order, with its own rows (possibly none). ``reserve_data(name, n)`` gives each
rank its rows in rank order; ``write_data`` and ``write_ref`` write collectively (so compressed
tables work) and return once every rank's rows are in the file; ``write_ref`` merges all ranks'
references to a row into one exact region (rank 0 writes the merged regions, so no rank reads
and rewrites a region another rank is changing). A rank that fails in such a call stops all.
"""

from __future__ import annotations

from typing import Any, Callable

import h5py
import numpy as np

from h5forge.errors import FlowError
from h5forge.flow._rows import fast_table, read_span, write_span
from h5forge.flow.mpi import Ranks
from h5forge.flow.refs import REGION_DTYPE, dereference_chain
from h5forge.io.compression import h5py_filter_kwargs, normalize_compression

__all__ = ["DataManager", "REGION_DTYPE"]

_MIN_CAPACITY = 1024
_LENGTH = "h5forge_rows"  # attribute: rows in use (the dataset may be longer while running)


def _path(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def _spans(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For references numbered 0..n-1 whose rows are ``rows``: each distinct row (sorted), the
    number of its first reference and one past its last."""
    uniq, first = np.unique(rows, return_index=True)
    last = len(rows) - 1 - np.unique(rows[::-1], return_index=True)[1]
    return uniq, first.astype(np.int64), last.astype(np.int64) + 1


def _merge_spans(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                 offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The spans of several ranks (each shifted to where its references were written) merged
    per row: each distinct row, its first reference and one past its last."""
    rows = np.concatenate([p[0] for p in parts])
    first = np.concatenate([p[1] + off for p, off in zip(parts, offsets)])
    stop = np.concatenate([p[2] + off for p, off in zip(parts, offsets)])
    order = np.argsort(rows, kind="stable")
    rows, first, stop = rows[order], first[order], stop[order]
    uniq, at = np.unique(rows, return_index=True)
    return uniq, np.minimum.reduceat(first, at), np.maximum.reduceat(stop, at)


class DataManager:
    """Tables and references of one flow output file (``file``: an open, writable h5py
    file). ``compression`` (a method of ``h5forge.io.AVAILABLE_COMPRESSION_METHODS``, e.g.
    ``"gzip"`` or ``"zstd"``) applies to every table created."""

    def __init__(self, file: h5py.File, *, input: h5py.File | None = None,  # noqa: A002
                 scratch: h5py.File | None = None, dropped: Any = (),
                 compression: str | None = None, compression_opts: Any = None,
                 ranks: Ranks | None = None):
        self.file = file
        self.ranks = ranks if ranks is not None else Ranks()
        self.input = input  # read-only: tables not in the output are read from here
        # Tables the flow drops at the end (and references to them) are written to a scratch
        # file beside the output instead, so the output never holds space they used.
        self.scratch = scratch
        self.dropped = tuple(d.strip("/") for d in dropped)
        self._objects: dict[str, h5py.HLObject] = {}
        # any h5forge.io compression method by name (gzip, lzf, zstd, blosc2, ...)
        self.compression, self.compression_opts = normalize_compression(
            compression, compression_opts, f"{file.filename}: flow compression")
        self._rows: dict[str, int] = {}  # rows in use, per growing dataset path
        self._directions: dict[tuple[str, str], tuple[int, int]] = {}  # get_ref's, cached
        self.dxpl: Any = None  # transfer property list of row writes: collective on MPI
        if self.ranks.parallel:
            self.dxpl = h5py.h5p.create(h5py.h5p.DATASET_XFER)
            self.dxpl.set_dxpl_mpio(h5py.h5fd.MPIO_COLLECTIVE)

    def _agree(self, prepare: Callable[[], tuple[Any, Any]]) -> tuple[Any, list[Any]]:
        """The start of a collective step: run this rank's part (checks, local work), which
        returns ``(kept, shared)``; gather every rank's ``shared``. Returns ``(kept, [shared of
        each rank])``. If any rank raised, every rank stops (see ``Ranks``)."""
        try:
            kept, shared = prepare()
        except Exception as exc:  # noqa: BLE001 - passed on to every rank, then raised
            self.ranks.fail(exc)
        return kept, self.ranks.gather(shared)

    # -- tables ---------------------------------------------------------------------------------
    def create_dset(self, name: str, dtype: Any, shape: tuple[int, ...] = ()) -> h5py.Dataset:
        """Create table ``name`` (``/<name>/data``) of rows of ``dtype`` and ``shape``; an
        existing table of the same dtype is kept. Collective on MPI ranks."""
        path = _path(name, "data")

        def check() -> h5py.Dataset | None:
            dset = self._find(path)
            if dset is not None and dset.file != self.input:
                if dset.dtype != np.dtype(dtype) or dset.shape[1:] != tuple(shape):
                    raise FlowError(f"{self.file.filename}:/{path} exists with dtype "
                                    f"{dset.dtype} and rows {dset.shape[1:]}, not "
                                    f"{np.dtype(dtype)} {tuple(shape)}")
                return dset
            return None

        existing, _ = self._agree(lambda: (check(), None))
        return existing or self._growing(path, np.dtype(dtype), tuple(shape))

    def _growing(self, path: str, dtype: np.dtype, row_shape: tuple[int, ...],
                 fillvalue: Any = None) -> h5py.Dataset:
        itemsize = max(dtype.itemsize * int(np.prod(row_shape)), 1)
        rows = max(1, min(65536, (1 << 16) // itemsize))  # 64 KB chunks: small outputs stay small
        kwargs: dict[str, Any] = {}
        if self.compression is not None:
            kwargs = h5py_filter_kwargs(self.compression, self.compression_opts)
        if fillvalue is not None:
            kwargs["fillvalue"] = fillvalue
        dset = self._home(path).create_dataset(path, shape=(0,) + row_shape,
                                        maxshape=(None,) + row_shape, dtype=dtype,
                                        chunks=(rows,) + row_shape, **kwargs)
        dset.attrs[_LENGTH] = 0
        self._rows[path] = 0
        return dset

    def rows(self, name: str) -> int:
        """Rows in use in table ``name``."""
        return self._used(_path(name, "data"))

    def _used(self, path: str) -> int:
        if path not in self._rows:
            dset = self._find(path)
            if dset is None:
                raise FlowError(f"{self.file.filename}: no table /{path}")
            self._rows[path] = int(dset.attrs.get(_LENGTH, dset.shape[0]))
        return self._rows[path]

    def _ensure(self, path: str, stop: int) -> h5py.Dataset:
        """Make ``path`` at least ``stop`` rows long (capacity doubles: amortized growth)."""
        dset = self._find(path)
        if dset is None or dset.file == self.input:
            raise FlowError(f"{self.file.filename}: /{path} is not a table of this output (an "
                            f"input table is read-only)")
        if stop > dset.shape[0]:
            dset.resize(max(stop, 2 * dset.shape[0], _MIN_CAPACITY), axis=0)
        if stop > self._used(path):
            self._rows[path] = stop
        return dset

    def reserve_data(self, name: str, n_or_slice: int | slice) -> slice:
        """Reserve rows of table ``name``: ``n`` new rows at the end, or an explicit slice.
        Returns the slice to write. On MPI ranks each rank gets its ``n`` rows after those of
        the ranks before it."""
        path = _path(name, "data")

        def check() -> int | slice:
            if self._find(path) is None:
                raise FlowError(f"{self.file.filename}: no table {name!r}; create_dset first")
            if isinstance(n_or_slice, slice):
                sel = n_or_slice
                if sel.start is None or sel.stop is None or (sel.step or 1) != 1:
                    raise FlowError(f"reserve_data({name!r}, {sel}): give start and stop")
                return sel
            if int(n_or_slice) < 0:
                raise FlowError(f"reserve_data({name!r}, {n_or_slice}): a negative count")
            return int(n_or_slice)

        mine, wanted = self._agree(lambda: (check(),) * 2)
        if isinstance(mine, slice):
            stop = max((w.stop for w in wanted if isinstance(w, slice) and w.stop > w.start),
                       default=0)
            self._ensure(path, stop)
            return mine
        counts = [w for w in wanted if not isinstance(w, slice)]
        if len(counts) != len(wanted):
            raise FlowError(f"reserve_data({name!r}): ranks mixed counts and slices")
        start = self._used(path) + sum(counts[:self.ranks.rank])
        self._ensure(path, self._used(path) + sum(counts))
        return slice(start, start + mine)

    def write_data(self, name: str, sel: slice | np.ndarray, data: Any) -> None:
        """Write rows ``sel`` of table ``name`` (reserved first). Collective on MPI ranks
        (there ``sel`` is a slice); it returns when every rank's rows are written."""
        path = _path(name, "data")

        def check() -> Any:
            dset = self.get_dset(name)
            if isinstance(sel, slice):
                stop = sel.stop
            else:
                stop = int(np.max(sel)) + 1 if len(sel) else 0
                if self.ranks.parallel:
                    raise FlowError(f"write_data({name!r}): on MPI ranks give a slice of rows, "
                                    f"not an index array")
            if stop > self._used(path):
                raise FlowError(f"write_data({name!r}): rows up to {stop} were not reserved "
                                f"(reserved: {self._used(path)})")
            return self._rows_for(dset, sel, data)

        rows, _ = self._agree(lambda: (check(), None))
        self._write_rows(self.get_dset(name), sel, data, rows)

    def _rows_for(self, dset: h5py.Dataset, sel: Any, data: Any) -> np.ndarray | None:
        """``data`` as a C-contiguous array of ``dset``'s dtype and the shape of slice
        ``sel``, fields matched by name (as h5py does), or None where only h5py's own
        conversion applies (index arrays, object dtypes). Every MPI write takes this path."""
        if not isinstance(sel, slice) or sel.step not in (None, 1) or fast_table(dset) is None:
            return None
        n = max(sel.stop - sel.start, 0)
        dtype = dset.dtype
        arr = np.asarray(data)
        if arr.dtype != dtype:
            if dtype.names is not None:
                if arr.dtype.names is None or set(dtype.names) - set(arr.dtype.names):
                    raise FlowError(f"{dset.name}: rows of dtype {arr.dtype} do not have the "
                                    f"fields {dtype.names}")
                out = np.empty(arr.shape, dtype)
                for field in dtype.names:
                    out[field] = arr[field]
                arr = out
            else:
                arr = arr.astype(dtype)
        try:
            arr = np.broadcast_to(arr, (n,) + dset.shape[1:])
        except ValueError as exc:
            raise FlowError(f"{dset.name}: cannot write data of shape {arr.shape} to rows "
                            f"{sel.start}:{sel.stop} (rows of shape {dset.shape[1:]})") from exc
        return np.ascontiguousarray(arr)

    def _write_rows(self, dset: h5py.Dataset, sel: Any, data: Any,
                    rows: np.ndarray | None = None) -> None:
        """``dset[sel] = data``: through the low-level API (3-4x faster than h5py's slicing)
        with ``rows`` from :meth:`_rows_for`, collectively on MPI ranks; else through h5py."""
        if rows is None and self.ranks.parallel:
            rows = self._rows_for(dset, sel, data)
        if rows is not None:
            write_span(fast_table(dset), sel.start, rows, self.dxpl)
            self.ranks.barrier()  # collective I/O may write a rank's rows from another rank
        else:
            dset[sel] = data

    def _is_dropped(self, path: str) -> bool:
        return any(path == d or path.startswith(d + "/") or f"/ref/{d}/" in f"{path}/"
                   for d in self.dropped)

    def _home(self, path: str) -> h5py.File:
        """Where a new object at ``path`` is written: the scratch file for dropped tables."""
        if self.scratch is not None and self._is_dropped(path):
            return self.scratch
        return self.file

    def _find(self, path: str) -> h5py.HLObject | None:
        """``path`` in the output (or scratch), else in the input file. Found objects are
        cached: an h5py path lookup costs tens of microseconds, and a chunk makes many."""
        found = self._objects.get(path)
        if found is not None:
            return found
        for f in (self.file, self.scratch, self.input):
            if f is not None and path in f:
                found = self._objects[path] = f[path]
                return found
        return None

    def get_dset(self, name: str) -> h5py.Dataset:
        dset = self._find(_path(name, "data"))
        if dset is None:
            raise FlowError(f"{self.file.filename}: no table {name!r}")
        return dset

    def dset_exists(self, name: str) -> bool:
        return self._find(_path(name, "data")) is not None

    # -- references -----------------------------------------------------------------------------
    def create_ref(self, parent: str, child: str) -> None:
        """Create the reference table ``parent -> child`` and both region tables (kept if
        they exist). Collective on MPI ranks."""

        def check() -> tuple[None, None]:
            for name in (parent, child):
                if not self.dset_exists(name):
                    raise FlowError(f"create_ref({parent!r}, {child!r}): no table {name!r}")
            return None, None

        self._agree(check)
        ref_path = _path(parent, "ref", child, "ref")
        if self._find(ref_path) is not None:
            return
        ref = self._growing(ref_path, np.dtype("<i8"), (2,))
        ref.attrs["parent"], ref.attrs["child"] = parent.strip("/"), child.strip("/")
        ref.file[_path(child, "ref", parent, "ref")] = ref  # both sides in the same file
        fill = np.zeros((), REGION_DTYPE)
        for a, b in ((parent, child), (child, parent)):
            self._growing(_path(a, "ref", b, "ref_region"), REGION_DTYPE, (), fillvalue=fill)

    def ref_exists(self, parent: str, child: str) -> bool:
        return self._find(_path(parent, "ref", child, "ref")) is not None

    def get_ref(self, parent: str, child: str) -> tuple[h5py.Dataset, tuple[int, int]]:
        """The reference table between two tables and the direction to read it from
        ``parent``'s side: ``(0, 1)`` if it was created parent -> child, else ``(1, 0)``."""
        ref = self._find(_path(parent, "ref", child, "ref"))
        if ref is None:
            raise FlowError(f"{self.file.filename}: no references between {parent!r} and "
                                f"{child!r}; create_ref first")
        key = (parent.strip("/"), child.strip("/"))
        if key not in self._directions:
            owner = ref.attrs.get("parent", key[0])  # files without it: read as named
            self._directions[key] = (0, 1) if owner == key[0] else (1, 0)
        return ref, self._directions[key]

    def get_ref_region(self, parent: str, child: str) -> h5py.Dataset:
        path = _path(parent, "ref", child, "ref_region")
        region = self._find(path)
        if region is None:
            raise FlowError(f"{self.file.filename}: no region table /{path}")
        return region

    def write_ref(self, parent: str, child: str, refs: Any) -> slice:
        """Append references (``N x 2``: parent row, child row) and update both regions so
        each row's region spans all its references. Returns where they were written.
        Collective on MPI ranks: each rank's references land after those of the ranks
        before it, and a row referenced from several ranks gets one region over all."""

        def check() -> tuple[np.ndarray, tuple]:
            pairs = np.asarray(refs, dtype=np.int64).reshape(-1, 2)
            if pairs.size and int(pairs.min()) < 0:
                raise FlowError(f"write_ref({parent!r}, {child!r}): negative row index "
                                f"{int(pairs.min())} in the references")
            if self.get_ref(parent, child)[1] != (0, 1):  # stored in the table's order
                pairs = pairs[:, ::-1]
            return pairs, (len(pairs), _spans(pairs[:, 0]), _spans(pairs[:, 1]))

        pairs, shared = self._agree(check)
        ref, direction = self.get_ref(parent, child)
        if direction != (0, 1):
            parent, child = child, parent
        path = _path(parent, "ref", child, "ref")
        counts = [n for n, _, _ in shared]
        base = self._used(path)
        offsets = base + np.cumsum([0] + counts[:-1])
        self._ensure(path, base + sum(counts))
        sel = slice(int(offsets[self.ranks.rank]), int(offsets[self.ranks.rank]) + len(pairs))
        if sum(counts):
            self._write_rows(ref, sel, pairs, np.ascontiguousarray(pairs))
            for side, (a, b) in enumerate(((parent, child), (child, parent))):
                merged = _merge_spans([spans[side + 1] for spans in shared], offsets)
                self._update_region(_path(a, "ref", b, "ref_region"), *merged)
        return sel

    def _update_region(self, path: str, rows: np.ndarray, first: np.ndarray,
                       stop: np.ndarray) -> None:
        """Widen the regions of ``rows`` (sorted, unique) to cover ``first:stop``. Every rank
        has the same merged rows; rank 0 reads and writes them, the others take part in the
        collective write with nothing."""
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        written = self._used(path)  # rows from here on were never written: empty regions
        region = self._ensure(path, hi)
        if self.ranks.rank != 0:
            self._write_rows(region, slice(lo, lo), None, np.zeros(0, region.dtype))
            return
        current = np.zeros(hi - lo, REGION_DTYPE)
        if lo < written:
            current[:min(hi, written) - lo] = read_span(fast_table(region), (hi,), lo,
                                                        min(hi, written))
        at = rows - lo
        old = current[at]
        empty = old["stop"] <= old["start"]
        current["start"][at] = np.where(empty, first, np.minimum(old["start"], first))
        current["stop"][at] = np.where(empty, stop, np.maximum(old["stop"], stop))
        self._write_rows(region, slice(lo, hi), current,
                         current if region.dtype == REGION_DTYPE else None)

    # -- attributes and item access ------------------------------------------------------------
    def set_attrs(self, name: str, **attrs: Any) -> None:
        """Set attributes of table ``name``'s group. Collective on MPI ranks: rank 0's values
        are written (HDF5 needs the same metadata from every rank)."""
        _, shared = self._agree(lambda: (None, attrs))
        group = self._home(name.strip("/")).require_group(name.strip("/"))
        for key, value in shared[0].items():
            group.attrs[key] = value

    def get_attrs(self, name: str) -> dict[str, Any]:
        group = self._find(name.strip("/"))
        if group is None:
            raise FlowError(f"{self.file.filename}: no table {name!r}")
        return dict(group.attrs)

    def attrs_exist(self, name: str) -> bool:
        return self._find(name.strip("/")) is not None

    def __getitem__(self, key: tuple) -> Any:
        """``dm["a", sel]``: rows of ``a``; ``dm["a", "b", sel]``: the rows of ``b`` referenced
        by rows ``sel`` of ``a`` (a masked array), and so on along a chain."""
        if not isinstance(key, tuple) or len(key) < 2:
            raise FlowError("index the data manager as dm['table', sel] or "
                                "dm['a', 'b', ..., sel]")
        *names, sel = key
        if isinstance(sel, slice) and sel.stop is None:  # tables may be longer while running
            sel = slice(sel.start, self.rows(names[0]) if _path(names[0], "data") in self._rows
                        else self.get_dset(names[0]).shape[0], sel.step)
        if len(names) == 1:
            return self.get_dset(names[0])[sel]
        refs, regions, directions = [], [], []
        for a, b in zip(names[:-1], names[1:]):
            ref, direction = self.get_ref(a, b)
            refs.append(ref)
            regions.append(self.get_ref_region(a, b))
            directions.append(direction)
        return dereference_chain(sel, refs, data=self.get_dset(names[-1]), regions=regions,
                                 ref_directions=directions)

    # -- end ------------------------------------------------------------------------------------
    def close(self) -> None:
        """Trim every growing table to the rows in use (and record them); a region table gets
        one row per row of its table (rows without references: an empty region).
        Collective on MPI ranks."""
        self._agree(lambda: (None, None))
        for path in list(self._rows):
            if path.endswith("/ref_region"):
                owner = _path(path.split("/ref/")[0], "data")
                if self._find(owner) is not None:
                    self._ensure(path, self._used(owner))
                    self._rows[path] = self._used(owner)
        for path, used in self._rows.items():
            dset = self._find(path)
            if dset is not None and dset.file != self.input:
                if dset.shape[0] != used:
                    dset.resize(used, axis=0)
                dset.attrs[_LENGTH] = used

