"""The data manager of a flow: tables, references between their rows, and their regions.

Layout: exactly h5flow's (``H5FlowDataManager``), so files move between the two tools.
``create_ref(a, b)`` writes

* ``/<a>/data``, ``/<b>/data``: 1-D tables (rows may have a fixed shape of their own);
* ``/<a>/ref/<b>/ref``: ``N x 2`` references, column 0 a row of ``a``, column 1 a row of ``b``,
  with attributes ``dset0`` / ``dset1`` (the two tables' ``data`` paths) and ``ref_region0`` /
  ``ref_region1`` (the two region tables). There is no ``/<b>/ref/<a>/ref``: ``b``'s side reads
  ``a``'s table with direction ``(1, 0)`` (h5flow's ``get_ref`` falls back the same way);
* ``/<a>/ref/<b>/ref_region`` and ``/<b>/ref/<a>/ref_region`` (attribute ``ref``: the
  reference table's path): one ``(start, stop)`` row per row of ``a`` (of ``b``), always as
  long as that table: the part of ``ref`` holding that row's references. A region spans all
  of its row's references and starts at the first of them; ``start == stop``: none.

Every table is exactly as long as the rows reserved in it, at every moment (h5flow resizes the
same way): a reader of the file mid-run, after a crash, or h5flow itself never sees rows beyond
those. Rows reserved but not written yet read as the fill value (zeros), as in h5flow. The only
differences from h5flow's files: references and regions are 64-bit (h5flow: ``uint32``
references, ``int32`` regions; each tool reads and appends to both).

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

__all__ = ["DataManager", "REGION_DTYPE", "REF_DTYPE"]

#: dtype of new reference tables (h5flow: uint32; both are read and appended to).
REF_DTYPE = np.dtype("<i8")


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
        self._rows: dict[str, int] = {}  # length of each dataset written to, per path
        self._regions: dict[str, list[str]] = {}  # table name -> its region tables' paths
        self._read_only: set[str] = set()  # paths found in the input file (h5py's .file is slow)
        self._refs: dict[tuple[str, str], tuple[h5py.Dataset, tuple[int, int]]] = {}  # get_ref
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
            if dset is not None and path not in self._read_only:
                if dset.dtype != np.dtype(dtype) or dset.shape[1:] != tuple(shape):
                    raise FlowError(f"{self.file.filename}:/{path} exists with dtype "
                                    f"{dset.dtype} and rows {dset.shape[1:]}, not "
                                    f"{np.dtype(dtype)} {tuple(shape)}")
                return dset
            return None

        existing, _ = self._agree(lambda: (check(), None))
        return existing or self._growing(path, np.dtype(dtype), tuple(shape))

    def _growing(self, path: str, dtype: np.dtype, row_shape: tuple[int, ...],
                 fillvalue: Any = None, length: int = 0) -> h5py.Dataset:
        """A new table of ``length`` rows at ``path`` (output, or scratch when dropped),
        growing along axis 0."""
        itemsize = max(dtype.itemsize * int(np.prod(row_shape)), 1)
        rows = max(1, min(65536, (1 << 16) // itemsize))  # 64 KB chunks: small outputs stay small
        kwargs: dict[str, Any] = {}
        if self.compression is not None:
            kwargs = h5py_filter_kwargs(self.compression, self.compression_opts)
        if fillvalue is not None:
            kwargs["fillvalue"] = fillvalue
        dset = self._home(path).create_dataset(path, shape=(length,) + row_shape,
                                               maxshape=(None,) + row_shape, dtype=dtype,
                                               chunks=(rows,) + row_shape, **kwargs)
        self._objects[path] = dset
        self._read_only.discard(path)  # a table of the input, now shadowed by the output's
        self._rows[path] = length
        return dset

    def rows(self, name: str) -> int:
        """Rows of table ``name`` (reserved ones included: the table is exactly that long)."""
        return self._used(_path(name, "data"))

    def _used(self, path: str) -> int:
        """The length of the dataset at ``path``, cached (h5py asks HDF5 on every ``shape``)."""
        if path not in self._rows:
            dset = self._find(path)
            if dset is None:
                raise FlowError(f"{self.file.filename}: no table /{path}")
            self._rows[path] = int(dset.id.shape[0])
        return self._rows[path]

    def _ensure(self, path: str, stop: int) -> h5py.Dataset:
        """Make ``path`` at least ``stop`` rows long, exactly (never longer: readers see only
        reserved rows). A table's region tables grow with it (one region per row, as h5flow
        keeps them)."""
        dset = self._find(path)
        if dset is None or path in self._read_only:
            raise FlowError(f"{self.file.filename}: /{path} is not a table of this output (an "
                            f"input table is read-only)")
        if stop > self._used(path):
            dsid = dset.id  # h5py's resize() costs 60 us, the low-level call 4-8
            dsid.set_extent((stop,) + dsid.shape[1:])
            self._rows[path] = stop
            if path.endswith("/data"):
                for region in self._regions_of(path[:-len("/data")]):
                    self._ensure(region, stop)
        return dset

    def _regions_of(self, name: str) -> list[str]:
        """Paths of the region tables of table ``name`` (``<name>/ref/<other>/ref_region``) in
        the output and scratch files: what h5flow's ``get_refs`` finds."""
        found = self._regions.get(name)
        if found is None:
            found = []
            top = _path(name, "ref")
            for f in (self.file, self.scratch):
                group = f.get(top) if f is not None else None
                if not isinstance(group, h5py.Group):
                    continue

                def visit(sub: str, obj: Any, group_path: str = top) -> None:
                    if sub.rsplit("/", 1)[-1] == "ref_region" and isinstance(obj, h5py.Dataset):
                        path = _path(group_path, sub)
                        if path not in found:
                            found.append(path)

                group.visititems(visit)
            self._regions[name] = found
        return found

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
                if f is self.input:
                    self._read_only.add(path)
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
        """Create the reference table ``parent -> child`` and both region tables, as h5flow
        does (see the module docstring). Kept if references between the two exist already, in
        either direction (h5flow refuses the other direction; both tools append to it).
        Collective on MPI ranks."""

        def check() -> tuple[None, None]:
            for name in (parent, child):
                if not self.dset_exists(name):
                    raise FlowError(f"create_ref({parent!r}, {child!r}): no table {name!r}")
            return None, None

        self._agree(check)
        if self.ref_exists(parent, child):
            return
        ref_path = _path(parent, "ref", child, "ref")
        regions = (_path(parent, "ref", child, "ref_region"),
                   _path(child, "ref", parent, "ref_region"))
        ref = self._growing(ref_path, REF_DTYPE, (2,))
        fill = np.zeros((), REGION_DTYPE)
        for region_path, name in zip(regions, (parent, child)):
            region = self._growing(region_path, REGION_DTYPE, (), fillvalue=fill,
                                   length=self.rows(name))
            region.attrs["ref"] = ref.name
            self._regions.pop(name.strip("/"), None)  # found again on the next resize
        ref.attrs["dset0"] = self.get_dset(parent).name
        ref.attrs["dset1"] = self.get_dset(child).name
        ref.attrs["ref_region0"] = "/" + regions[0]
        ref.attrs["ref_region1"] = "/" + regions[1]

    def ref_exists(self, parent: str, child: str) -> bool:
        """Whether references between the two tables exist, in either direction."""
        return (self._find(_path(parent, "ref", child, "ref")) is not None
                or self._find(_path(child, "ref", parent, "ref")) is not None)

    def ref_region_exists(self, parent: str, child: str) -> bool:
        """Whether ``parent``'s region table towards ``child`` exists."""
        return self._find(_path(parent, "ref", child, "ref_region")) is not None

    def get_ref(self, parent: str, child: str) -> tuple[h5py.Dataset, tuple[int, int]]:
        """The reference table between two tables and the direction to read it from
        ``parent``'s side: ``(0, 1)`` for ``/<parent>/ref/<child>/ref``, ``(1, 0)`` for
        ``/<child>/ref/<parent>/ref`` (h5flow's rule). When the table names its tables
        (``dset0``, as h5flow and h5forge write it) the direction follows that."""
        key = (parent.strip("/"), child.strip("/"))
        known = self._refs.get(key)
        if known is not None:
            return known
        ref = self._find(_path(parent, "ref", child, "ref"))
        direction = (0, 1)
        if ref is None:
            ref = self._find(_path(child, "ref", parent, "ref"))
            direction = (1, 0)
        if ref is None:
            raise FlowError(f"{self.file.filename}: no references between {parent!r} and "
                            f"{child!r} (neither /{_path(parent, 'ref', child, 'ref')} nor "
                            f"/{_path(child, 'ref', parent, 'ref')}); create_ref first")
        attrs = ref.attrs
        first = attrs.get("dset0")
        if isinstance(first, bytes):
            first = first.decode()
        if isinstance(first, str) and key[0] != key[1]:
            if first.strip("/") == _path(key[0], "data"):
                direction = (0, 1)
            elif first.strip("/") == _path(key[1], "data"):
                direction = (1, 0)
        elif "parent" in attrs:  # h5forge files from before h5flow's layout (both sides linked)
            direction = (0, 1) if attrs["parent"] == key[0] else (1, 0)
        self._refs[key] = (ref, direction)
        return ref, direction

    def get_ref_region(self, parent: str, child: str) -> h5py.Dataset:
        """``parent``'s region table towards ``child`` (``/<parent>/ref/<child>/ref_region``)."""
        path = _path(parent, "ref", child, "ref_region")
        region = self._find(path)
        if region is None:
            raise FlowError(f"{self.file.filename}: no region table /{path}")
        return region

    def get_refs(self, name: str) -> list[h5py.Dataset]:
        """Every reference table involving table ``name`` (found through its region tables,
        as h5flow's ``get_refs``)."""
        out: list[h5py.Dataset] = []
        for path in self._regions_of(name.strip("/")):
            target = self._find(path).attrs.get("ref")
            if isinstance(target, bytes):
                target = target.decode()
            ref = self._find(target.strip("/")) if isinstance(target, str) else None
            if ref is not None and ref not in out:
                out.append(ref)
        return out

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
            ref, direction = self.get_ref(parent, child)
            if direction != (0, 1):  # stored in the table's order
                pairs = pairs[:, ::-1]
            if ref.dtype != pairs.dtype and pairs.size and (
                    int(pairs.max()) > np.iinfo(ref.dtype).max):
                raise FlowError(f"write_ref({parent!r}, {child!r}): row {int(pairs.max())} does "
                                f"not fit {ref.file.filename}:{ref.name} ({ref.dtype})")
            return pairs, (len(pairs), _spans(pairs[:, 0]), _spans(pairs[:, 1]))

        pairs, shared = self._agree(check)
        ref, direction = self.get_ref(parent, child)
        if direction != (0, 1):
            parent, child = child, parent
        path = ref.name.strip("/")
        counts = [n for n, _, _ in shared]
        base = self._used(path)
        offsets = base + np.cumsum([0] + counts[:-1])
        self._ensure(path, base + sum(counts))
        sel = slice(int(offsets[self.ranks.rank]), int(offsets[self.ranks.rank]) + len(pairs))
        if sum(counts):
            rows = pairs if ref.dtype == pairs.dtype else pairs.astype(ref.dtype)
            self._write_rows(ref, sel, pairs, np.ascontiguousarray(rows))
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
        length = self._used(path)
        region = self._ensure(path, hi)  # references to rows not reserved yet (as h5flow)
        if self.ranks.rank != 0:
            self._write_rows(region, slice(lo, lo), None, np.zeros(0, region.dtype))
            return
        current = np.zeros(hi - lo, REGION_DTYPE)
        if lo < length:
            top = min(hi, length)
            old_rows = read_span(fast_table(region), (length,), lo, top)
            current["start"][:top - lo] = old_rows["start"]
            current["stop"][:top - lo] = old_rows["stop"]
        at = rows - lo
        old = current[at]
        empty = old["stop"] <= old["start"]
        current["start"][at] = np.where(empty, first, np.minimum(old["start"], first))
        current["stop"][at] = np.where(empty, stop, np.maximum(old["stop"], stop))
        if region.dtype != REGION_DTYPE:  # h5flow's 32-bit regions: checked, then converted
            limit = np.iinfo(region.dtype["stop"]).max
            if int(current["stop"].max()) > limit:
                raise FlowError(f"{region.file.filename}:{region.name}: reference "
                                f"{int(current['stop'].max())} does not fit its "
                                f"{region.dtype['stop']} regions")
            current = current.astype(region.dtype)
        self._write_rows(region, slice(lo, hi), current, current)

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

    def attr_exists(self, name: str, key: str) -> bool:
        """Whether object ``name`` exists and has attribute ``key`` (h5flow's name)."""
        obj = self._find(name.strip("/"))
        return obj is not None and key in obj.attrs

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists in the output, scratch or input file (h5flow's name)."""
        return self._find(path.strip("/")) is not None

    def __getitem__(self, key: str | tuple) -> Any:
        """h5flow's item access:

        * ``dm["a/data"]``, ``dm["a"]``: the HDF5 object at that path (dataset, group);
        * ``dm["a", sel]``: rows ``sel`` of table ``a`` (a slice, an int: that one row as a
          1-row array, or row indices);
        * ``dm["a", "b", ..., sel]``: the rows of the last table referenced from rows ``sel``
          of ``a`` through the chain (a masked array); without ``sel``, all rows of ``a``.
        """
        if isinstance(key, str):
            found = self._find(key.strip("/"))
            if found is None:
                raise FlowError(f"{self.file.filename}: nothing at /{key.strip('/')}")
            return found
        if not isinstance(key, tuple) or not key:
            raise FlowError("index the data manager as dm['path'], dm['table', sel] or "
                            "dm['a', 'b', ..., sel]")
        names, sel = list(key), None
        last = names[-1]
        if isinstance(last, slice):
            sel = names.pop()
        elif isinstance(last, (int, np.integer)) and not isinstance(last, bool):
            sel = slice(int(last), int(last) + 1)
            names.pop()
        elif not isinstance(last, (str, bytes)):
            sel = np.r_[last]
            names.pop()
        names = [n.decode() if isinstance(n, bytes) else n for n in names]
        if not names or not all(isinstance(n, str) for n in names):
            raise FlowError(f"dm[{key!r}]: name the tables first, then the rows")
        if isinstance(sel, slice) and (sel.stop is None or sel.stop < 0
                                       or (sel.start or 0) < 0):
            sel = slice(*sel.indices(self.rows(names[0])))
        if len(names) == 1:
            dset = self.get_dset(names[0])
            if sel is None:
                return dset  # h5flow: the dataset itself
            if isinstance(sel, slice):
                return dset[sel]
            rows = np.asarray(sel, dtype=np.int64).reshape(-1)
            uniq, inverse = np.unique(rows, return_inverse=True)  # h5py wants them sorted
            return dset[uniq][inverse.reshape(-1)] if uniq.size else dset[0:0]
        refs, regions, directions = [], [], []
        for a, b in zip(names[:-1], names[1:]):
            ref, direction = self.get_ref(a, b)
            refs.append(ref)
            regions.append(self.get_ref_region(a, b))
            directions.append(direction)
        if sel is None:
            sel = slice(0, self.rows(names[0]))
        return dereference_chain(sel, refs, data=self.get_dset(names[-1]), regions=regions,
                                 ref_directions=directions)

    # -- end ------------------------------------------------------------------------------------
    def close(self) -> None:
        """End of a run: every region table of a table written to is as long as its table
        (they grow together; this also covers a table a stage resized through h5py).
        Nothing else to trim: tables are never longer than their rows. Collective on MPI
        ranks."""
        self._agree(lambda: (None, None))
        for path in [p for p in self._rows if p.endswith("/data")]:
            dset = self._find(path)
            if dset is None or path in self._read_only:
                continue
            length = int(dset.id.shape[0])
            self._rows[path] = max(self._rows[path], length)
            for region in self._regions_of(path[:-len("/data")]):
                self._ensure(region, length)
