"""Following references between the rows of flow tables (h5flow's ``dereference``).

A flow file keeps tables and the references between their rows in h5flow's layout:

* ``/<a>/data``: a 1-D table (structured or plain dtype);
* ``/<a>/ref/<b>/ref``: ``N x 2`` integer pairs, column 0 a row of ``a``, column 1 a row of ``b``;
* ``/<a>/ref/<b>/ref_region`` (and ``/<b>/ref/<a>/ref_region``): one ``(start, stop)`` row per
  row of ``a`` (of ``b``): the span of ``ref`` holding that row's references. A span may also
  hold other rows' references; an empty span (``start == stop``) means "no references".

:func:`dereference` turns a selection of parent rows into the child rows (or child indices)
they refer to, as a masked array with one row per selected parent row; :func:`dereference_chain`
follows several reference tables one after the other (events -> clusters -> hits), adding one
axis per hop.

Region tables written by h5forge have 64-bit ``start``/``stop`` fields; h5flow's have 32-bit (or
64-bit, depending on its version). Both are read (:func:`read_regions`), as are plain ``N x 2``
integer arrays.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import h5py
import numpy as np
import numpy.ma as ma

from h5forge import errors as _errors
from h5forge.flow._rows import fast_table, read_points, read_span

__all__ = [
    "REGION_DTYPE",
    "dereference",
    "dereference_chain",
    "read_regions",
    "region_dtype_ok",
]

#: dtype of a region table row: where in the reference table a row's references lie.
REGION_DTYPE = np.dtype([("start", "<i8"), ("stop", "<i8")])

_FlowError = _errors.FlowError  # bad input: shapes, reference tables, selections

# A contiguous read of rows lo..hi is preferred to a point selection when the span is at most
# _DENSE_FACTOR times the rows wanted (plus _DENSE_SLACK), or at most _SPARSE_FACTOR times and
# no more than _SPAN_BYTES: HDF5 reads a hyperslab row in nanoseconds but a point selection
# costs about a microsecond per point.
_DENSE_FACTOR = 4
_DENSE_SLACK = 4096
_SPARSE_FACTOR = 128
_SPAN_BYTES = 16 << 20

Selection = slice | int | np.integer | Sequence[int] | np.ndarray


# -- small helpers ------------------------------------------------------------------------------
def _name(obj: Any) -> str:
    """A name for messages: the HDF5 path of a dataset, else the type of an array."""
    name = getattr(obj, "name", None)
    if isinstance(name, str):
        filename = getattr(getattr(obj, "file", None), "filename", None)
        return f"{filename}:{name}" if filename else name
    return f"<{type(obj).__name__}>"


class _Dataset:
    """An h5py dataset with its shape, dtype and low-level handles looked up once per call:
    h5py asks HDF5 for the ``shape`` of a dataset in a writable file on every access (about
    8 microseconds), and a dereference needs it many times."""

    __slots__ = ("dataset", "shape", "dtype", "fast")

    def __init__(self, dataset: h5py.Dataset):
        self.dataset = dataset
        self.fast = fast_table(dataset)
        self.shape = dataset.id.shape  # h5py's Dataset.shape costs twice as much
        self.dtype = self.fast[1] if self.fast is not None else dataset.dtype

    def __getitem__(self, key: Any) -> Any:
        return self.dataset[key]

    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def file(self) -> h5py.File:
        return self.dataset.file


def _as_table(obj: Any) -> Any:
    """h5py datasets become :class:`_Dataset`; other datasets (anything with ``shape``,
    ``dtype`` and ``__getitem__``) are used as they are; other sequences become numpy arrays."""
    if isinstance(obj, h5py.Dataset):
        return _Dataset(obj)
    if isinstance(obj, (np.ndarray, _Dataset)) or (
            hasattr(obj, "shape") and hasattr(obj, "__getitem__") and hasattr(obj, "dtype")):
        return obj
    return np.asarray(obj)


def _length(obj: Any) -> int:
    return int(obj.shape[0])


def _unique(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(a, return_inverse=True)``, without the sort when ``a`` is already strictly
    increasing (a slice's rows, a parent's children in order: the usual case)."""
    if a.size < 2 or bool(np.all(a[1:] > a[:-1])):
        return a, np.arange(a.size)
    uniq, inverse = np.unique(a, return_inverse=True)
    return uniq, inverse.reshape(-1)


def _span(table: Any, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` (in range) of a table, low-level for an h5py dataset."""
    if isinstance(table, _Dataset) and table.fast is not None and hi > lo:
        return read_span(table.fast, table.shape, lo, hi)
    return np.asarray(table[lo:hi])


# A point costs HDF5 about 90 ns per element through the low-level API; a contiguous read about
# 0.1 ns per byte: a span is read when it is at most _POINT_BYTES bytes per element wanted
# (or small).
_POINT_BYTES = 512
_SMALL_SPAN_BYTES = 64 << 10


def _read_rows(table: Any, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (sorted, unique, in range) of ``table``: a fancy index for arrays; for a
    dataset one contiguous read of the span when it is dense enough, else one point read."""
    if isinstance(table, np.ndarray):
        return table[rows]
    if rows.size == 0:
        return np.asarray(table[0:0])
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    span = hi - lo
    fast = table.fast if isinstance(table, _Dataset) else None
    if fast is not None:
        shape = table.shape
        elems = 1
        for s in shape[1:]:
            elems *= int(s)
        if elems == 0:
            return np.asarray(table[lo:hi])[rows - lo]
        span_bytes = span * elems * fast[1].itemsize
        if span == rows.size:
            return read_span(fast, shape, lo, hi)
        if span_bytes <= _SMALL_SPAN_BYTES or span_bytes <= _POINT_BYTES * rows.size * elems:
            return read_span(fast, shape, lo, hi)[rows - lo]
        return read_points(fast, shape, rows)
    row_bytes = np.dtype(table.dtype).itemsize * int(np.prod(table.shape[1:], dtype=np.int64))
    if (span <= _DENSE_FACTOR * rows.size + _DENSE_SLACK
            or (span <= _SPARSE_FACTOR * rows.size and span * row_bytes <= _SPAN_BYTES)):
        return np.asarray(table[lo:hi])[rows - lo]
    return np.asarray(table[rows])


def _take(table: Any, rows: np.ndarray, what: str) -> np.ndarray:
    """``table[rows]`` for any (unsorted, repeated) ``rows``, read once in sorted order."""
    n = _length(table)
    if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= n):
        bad = int(rows.max()) if int(rows.max()) >= n else int(rows.min())
        raise _FlowError(f"{_name(table)}: {what} row {bad} is out of range (the table has {n} "
                         f"rows); is the reference table from another file or run?")
    if isinstance(table, np.ndarray):
        return table[rows]
    uniq, inverse = _unique(rows)
    values = _read_rows(table, uniq)
    return values if uniq is rows else values[inverse]


def _check_direction(direction: Any) -> tuple[int, int]:
    try:
        d0, d1 = (int(d) for d in direction)
    except (TypeError, ValueError):
        d0 = d1 = -1
    if (d0, d1) not in ((0, 1), (1, 0)):
        raise _FlowError(f"ref_direction must be (0, 1) or (1, 0), not {direction!r}")
    return d0, d1


def _check_ref(ref: Any) -> Any:
    ref = _as_table(ref)
    shape = tuple(ref.shape)
    if len(shape) == 1 and shape[0] == 0:  # an empty list
        return np.zeros((0, 2), dtype=np.int64)
    if len(shape) != 2 or shape[1] != 2:
        raise _FlowError(f"{_name(ref)}: a reference table must have shape (N, 2) (parent row, "
                         f"child row), not {shape}")
    if np.dtype(ref.dtype).kind not in "iu":
        raise _FlowError(f"{_name(ref)}: a reference table must hold integers, not "
                         f"{ref.dtype}")
    return ref


def _regions_from_array(raw: np.ndarray, table: Any) -> np.ndarray:
    """``raw`` (structured with start/stop, or ``N x 2`` integers; read from ``table``) as
    :data:`REGION_DTYPE`."""
    out = np.empty(raw.shape[0] if raw.ndim else 0, dtype=REGION_DTYPE)
    names = raw.dtype.names
    if names is not None:
        if "start" not in names or "stop" not in names:
            raise _FlowError(f"{_name(table)}: a region table needs fields 'start' and 'stop', has "
                             f"{names}")
        for field in ("start", "stop"):
            if raw.dtype[field].kind not in "iu":
                raise _FlowError(f"{_name(table)}: region field {field!r} must be an integer, not "
                                 f"{raw.dtype[field]}")
            out[field] = raw[field]
        return out
    if raw.ndim != 2 or raw.shape[1] != 2 or raw.dtype.kind not in "iu":
        raise _FlowError(f"{_name(table)}: a region table is structured (start, stop) or an (N, 2) "
                         f"integer array, not {raw.dtype} of shape {raw.shape}")
    out["start"] = raw[:, 0]
    out["stop"] = raw[:, 1]
    return out


def region_dtype_ok(dtype: Any) -> bool:
    """Whether ``dtype`` is a region dtype :func:`read_regions` accepts: structured with integer
    fields ``start`` and ``stop`` (any width, so h5flow's 32-bit files too)."""
    dtype = np.dtype(dtype)
    names = dtype.names or ()
    return ("start" in names and "stop" in names
            and dtype["start"].kind in "iu" and dtype["stop"].kind in "iu")


def read_regions(region: Any, sel: slice | Sequence[int] | np.ndarray) -> np.ndarray:
    """The regions of rows ``sel`` (a slice or an array of row indices, repeats allowed) as a
    :data:`REGION_DTYPE` array (``start``/``stop`` int64) with one entry per selected row.

    ``region`` is a region dataset or array: structured with integer fields ``start`` and
    ``stop`` of any width (h5flow's files use 32 or 64 bits), or a plain ``N x 2`` integer array.
    A dataset is read once: the selected slice, or the span of the selected rows when dense
    enough, else a point selection. Rows at or past the end of ``region`` get an empty region
    (a region table may be shorter than its data table while a flow is still writing).
    """
    region = _as_table(region)
    n = _length(region)
    if isinstance(sel, slice):
        idx = _selection(sel, lambda: n)
        if idx.size and idx[-1] < n and (idx.size == 1 or np.all(np.diff(idx) == 1)):
            raw = _span(region, int(idx[0]), int(idx[-1]) + 1)
            return _regions_from_array(raw, region)
    else:
        idx = np.asarray(sel)
        if idx.dtype == bool:
            raise _FlowError(f"{_name(region)}: read_regions takes row indices, not a boolean mask")
        if idx.size and idx.dtype.kind not in "iu":
            raise _FlowError(f"{_name(region)}: row indices must be integers, not {idx.dtype}")
        idx = idx.astype(np.int64, copy=False).reshape(-1)
    if idx.size and int(idx.min()) < 0:
        raise _FlowError(f"{_name(region)}: negative row {int(idx.min())} in the selection")
    out = np.zeros(idx.size, dtype=REGION_DTYPE)
    inside = idx < n
    if not inside.any():
        return out
    uniq, inverse = _unique(idx[inside])
    raw = _read_rows(region, uniq)
    out[inside] = _regions_from_array(np.asarray(raw), region)[inverse.reshape(-1)]
    return out


def _selection(sel: Any, length: Callable[[], int]) -> np.ndarray:
    """``sel`` (slice, int, index array or boolean mask) as an int64 index array. ``length``
    gives the parent table's length, asked only when a slice or negative index needs it."""
    if isinstance(sel, slice):
        step = 1 if sel.step is None else int(sel.step)
        start, stop = sel.start, sel.stop
        if (start is None or start >= 0) and stop is not None and stop >= 0 and step > 0:
            return np.arange(0 if start is None else int(start), int(stop), step, dtype=np.int64)
        return np.arange(*sel.indices(length()), dtype=np.int64)
    if isinstance(sel, ma.MaskedArray):
        sel = sel.filled(0)
    arr = np.asarray(sel)
    if arr.dtype == bool:
        return np.flatnonzero(arr.reshape(-1)).astype(np.int64)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise _FlowError(f"a selection must be a slice, integers or a boolean mask, not "
                         f"{arr.dtype}")
    if arr.ndim > 1:
        raise _FlowError(f"a selection must be 1-D, not of shape {arr.shape}")
    idx = arr.astype(np.int64, copy=False).reshape(-1)
    if idx.size and int(idx.min()) < 0:
        idx = np.where(idx < 0, idx + length(), idx)
        if int(idx.min()) < 0:
            raise _FlowError(f"selection row {int(arr.min())} is out of range")
    return idx


def _row_mask(mask: Any, n: int) -> np.ndarray:
    if mask is None:
        return np.zeros(n, dtype=bool)
    if isinstance(mask, ma.MaskedArray):
        mask = mask.filled(True)
    out = np.asarray(mask, dtype=bool).reshape(-1)
    if out.size == 1 and n != 1:
        return np.full(n, bool(out[0]))
    if out.size != n:
        raise _FlowError(f"mask has {out.size} entries but the selection has {n} rows")
    return out


# -- the core -----------------------------------------------------------------------------------
class _Result:
    """What :func:`_dereference` found: per unique parent, its children's values in ascending
    child order (``values`` grouped by ``row`` with ``counts`` per unique parent), and how the
    selection maps onto the unique parents (``rows_of_sel``; masked rows: ``active`` False)."""

    __slots__ = ("values", "row", "slot", "counts", "n_uniq", "rows_of_sel", "active", "dtype",
                 "item_shape")

    def __init__(self, values: np.ndarray, row: np.ndarray, slot: np.ndarray, counts: np.ndarray,
                 n_uniq: int, rows_of_sel: np.ndarray, active: np.ndarray, dtype: np.dtype,
                 item_shape: tuple[int, ...]):
        self.values, self.row, self.slot, self.counts = values, row, slot, counts
        self.n_uniq, self.rows_of_sel, self.active = n_uniq, rows_of_sel, active
        self.dtype, self.item_shape = dtype, item_shape

    @property
    def width(self) -> int:
        return max(int(self.counts.max()) if self.counts.size else 0, 1)

    def padded(self) -> tuple[np.ndarray, np.ndarray]:
        """``(values, row_mask)`` of shape ``(len(sel), width) [+ item_shape]`` and
        ``(len(sel), width)``; ``row_mask`` True where there is nothing."""
        n, width = self.rows_of_sel.size, self.width
        condensed = np.zeros((self.n_uniq, width) + self.item_shape, dtype=self.dtype)
        empty = np.ones((self.n_uniq, width), dtype=bool)
        if self.values.size:
            condensed[self.row, self.slot] = self.values
            empty[self.row, self.slot] = False
        if self.active.all() and n == self.n_uniq and np.array_equal(self.rows_of_sel,
                                                                      np.arange(n)):
            return condensed, empty
        out = np.zeros((n, width) + self.item_shape, dtype=self.dtype)
        mask = np.ones((n, width), dtype=bool)
        rows = self.rows_of_sel[self.active]
        out[self.active] = condensed[rows]
        mask[self.active] = empty[rows]
        return out, mask

    def listed(self) -> list[np.ndarray]:
        """One array per selected row (empty for masked rows and rows without references)."""
        pieces = np.split(self.values, np.cumsum(self.counts)[:-1]) if self.n_uniq else []
        nothing = np.zeros((0,) + self.item_shape, dtype=self.dtype)
        seen = np.zeros(self.n_uniq, dtype=bool)
        out: list[np.ndarray] = []
        for active, row in zip(self.active.tolist(), self.rows_of_sel.tolist()):
            if not active:
                out.append(nothing.copy())
            elif seen[row]:  # a repeated selection row gets its own array
                out.append(pieces[row].copy())
            else:
                seen[row] = True
                out.append(pieces[row])
        return out


def _dereference(sel: Any, ref: Any, data: Any, region: Any, mask: Any,
                 ref_direction: Any, indices_only: bool) -> _Result:
    d0, d1 = _check_direction(ref_direction)
    ref = _check_ref(ref)
    if region is not None:
        region = _as_table(region)
        if not (np.dtype(region.dtype).names is None or region_dtype_ok(region.dtype)):
            raise _FlowError(f"{_name(region)}: a region table needs integer fields 'start' and "
                             f"'stop', has dtype {region.dtype}")
    want_data = data is not None and not indices_only
    if want_data:
        data = _as_table(data)
        dtype, item_shape = np.dtype(data.dtype), tuple(data.shape[1:])
    else:
        dtype, item_shape = np.dtype(np.int64), ()

    block: np.ndarray | None = None  # the part of ``ref`` read

    def whole_ref() -> np.ndarray:
        nonlocal block
        if block is None:
            block = _span(ref, 0, _length(ref))
        return block

    def parent_length() -> int:
        if region is not None:
            return _length(region)
        # no region: the parent table's length is unknown; rows past the last one referenced
        # have no references, so the last referenced row + 1 is used.
        parents = whole_ref()[:, d0]
        return int(parents.max()) + 1 if parents.size else 0

    idx = _selection(sel, parent_length)
    n = idx.size
    active = ~_row_mask(mask, n)
    uniq = _unique(idx[active])[0]
    rows_of_sel = np.searchsorted(uniq, idx)
    rows_of_sel[~active] = 0
    empty_result = _Result(np.zeros((0,) + item_shape, dtype), np.zeros(0, np.intp),
                           np.zeros(0, np.intp), np.zeros(uniq.size, np.intp), uniq.size,
                           rows_of_sel, active, dtype, item_shape)
    if uniq.size == 0:
        return empty_result

    # the references to read: the span of the selected rows' regions, or the whole table
    if region is not None:
        regs = read_regions(region, uniq)
        valid = regs["stop"] > regs["start"]
        if not valid.any():
            return empty_result
        lo, hi = int(regs["start"][valid].min()), int(regs["stop"][valid].max())
        if lo < 0 or hi > _length(ref):
            raise _FlowError(f"{_name(region)}: regions point at rows {lo}..{hi} of "
                             f"{_name(ref)}, which has {_length(ref)} rows; do the region and "
                             f"reference tables belong together?")
        starts, stops = regs["start"][valid], regs["stop"][valid]
        if starts.size > 1:
            # only the union of the selected rows' regions is read: merge them into runs
            order = np.argsort(starts, kind="stable")
            starts, stops = starts[order], np.maximum.accumulate(stops[order])
            new_run = np.empty(starts.size, dtype=bool)
            new_run[0] = True
            new_run[1:] = starts[1:] > stops[:-1]
            run_starts = starts[new_run]
            run_stops = stops[np.append(new_run[1:], True)]
        else:
            run_starts, run_stops = starts, stops
        if run_starts.size == 1:
            block = _span(ref, lo, hi)
        else:
            lengths = run_stops - run_starts
            total = int(lengths.sum())
            offsets = np.repeat(run_starts - (np.cumsum(lengths) - lengths), lengths)
            block = np.asarray(_read_rows(ref, offsets + np.arange(total, dtype=np.int64)))
    else:
        block = whole_ref()
    if block.size == 0:
        return empty_result

    parents = block[:, d0]
    # references of parents within the selection's range (a cheap test that leaves few rows
    # of a whole table), then the exact match of those few
    near = np.flatnonzero((parents >= uniq[0]) & (parents <= uniq[-1]))
    near_parents = parents[near]
    lo_parent, span = int(uniq[0]), int(uniq[-1]) - int(uniq[0]) + 1
    if span <= 4 * near_parents.size + 4096:  # a lookup table: one gather, no binary search
        lookup = np.full(span, -1, dtype=np.intp)
        lookup[uniq - lo_parent] = np.arange(uniq.size)
        pos = lookup[near_parents - lo_parent]
        keep = pos >= 0
    else:
        pos = np.searchsorted(uniq, near_parents)
        keep = uniq[pos] == near_parents
    row = pos[keep]
    children = block[near[keep], d1].astype(np.int64, copy=False)
    if row.size == 0:
        return empty_result
    order = np.lexsort((children, row))  # by parent, then ascending child
    row, children = row[order], children[order]
    counts = np.bincount(row, minlength=uniq.size)
    first = np.cumsum(counts) - counts
    slot = np.arange(row.size) - first[row]
    if want_data:
        values = _take(data, children, "child")
    else:
        if children.size and int(children.min()) < 0:
            raise _FlowError(f"{_name(ref)}: negative child row {int(children.min())}")
        values = children
    return _Result(values, row, slot, counts, uniq.size, rows_of_sel, active, dtype, item_shape)


def _masked(values: np.ndarray, row_mask: np.ndarray) -> ma.MaskedArray:
    """A masked array of ``values`` masked where ``row_mask`` (its leading axes) is True."""
    extra = values.ndim - row_mask.ndim
    full = row_mask.reshape(row_mask.shape + (1,) * extra)
    full = np.broadcast_to(full, values.shape).copy()
    return ma.MaskedArray(values, mask=full)


# -- public API -------------------------------------------------------------------------------
def dereference(sel: Selection, ref: Any, data: Any = None, region: Any = None,
                mask: Any = None, ref_direction: tuple[int, int] = (0, 1),
                indices_only: bool = False, as_masked: bool = True
                ) -> ma.MaskedArray | list[np.ndarray]:
    """The child rows referred to by parent rows ``sel``.

    :param sel: parent rows: a slice, an index (or an array of indices; repeats allowed), or a
        boolean mask over the parent table (its True rows). The result has one row per selected
        row, in the selection's order.
    :param ref: the reference table, an ``N x 2`` integer dataset or array;
        ``ref[:, ref_direction[0]]`` are parent rows, ``ref[:, ref_direction[1]]`` child rows.
    :param data: the child table (dataset or array, structured dtypes kept). Without it (or with
        ``indices_only``) the child row indices are returned.
    :param region: the parent's region table (dataset or array, one ``(start, stop)`` row per
        parent row, 32- or 64-bit). With it only the span of ``ref`` holding the selected
        rows' references is read; without it the whole table is.
    :param mask: one bool per selected row; True rows are skipped (fully masked / empty).
    :param ref_direction: ``(0, 1)`` to read ``/a/ref/b/ref`` from ``a``'s side, ``(1, 0)``
        to read it from ``b``'s side.
    :param indices_only: return child row indices (int64) rather than child rows.
    :param as_masked: return a masked array (else a list with one array per selected row).
    :returns: a masked array of shape ``(len(sel), width)`` (plus the child rows' own shape),
        ``width`` the most references any selected row has, at least 1 (as in h5flow; an
        empty selection gives shape ``(0, 1)``, so reductions along axis 1 still work). Each
        row holds its children in ascending child order, then masked entries; masked rows and
        rows without references are fully masked. With ``as_masked=False``: a list of
        ``len(sel)`` arrays.
    :raises h5forge.errors.ShapeMismatchError: for a reference table that is not ``N x 2``
        integers, a region table without ``start``/``stop``, a mask of the wrong length, a bad
        ``ref_direction`` or references out of range of ``data``.
    """
    result = _dereference(sel, ref, data, region, mask, ref_direction, indices_only)
    if not as_masked:
        return result.listed()
    values, row_mask = result.padded()
    return _masked(values, row_mask)


def dereference_chain(sel: Selection, refs: Sequence[Any], data: Any = None,
                      regions: Sequence[Any] | None = None, mask: Any = None,
                      ref_directions: Sequence[tuple[int, int] | None] | None = None,
                      indices_only: bool = False) -> ma.MaskedArray:
    """Follow several reference tables in a row, e.g. events -> clusters -> hits.

    :param sel: rows of the first table (as for :func:`dereference`).
    :param refs: the reference tables, hop by hop (``refs[i]`` leads from table ``i`` to
        table ``i + 1``).
    :param data: the last table (optional: without it, or with ``indices_only``, its row
        indices are returned).
    :param regions: per hop, the region table of that hop's parent side (or None), or None.
    :param mask: one bool per selected row; True rows are skipped.
    :param ref_directions: per hop, ``(0, 1)`` or ``(1, 0)`` (default ``(0, 1)``).
    :param indices_only: return row indices into the last table.
    :returns: a masked array of shape ``(len(sel), n1, n2, ...)``, one axis per hop (plus the
        last table's row shape), masked wherever there is nothing.
    """
    refs = list(refs)
    if not refs:
        raise _FlowError("dereference_chain needs at least one reference table")
    hops = len(refs)
    regions = [None] * hops if regions is None else list(regions)
    directions = [(0, 1)] * hops if ref_directions is None else list(ref_directions)
    if len(regions) != hops or len(directions) != hops:
        raise _FlowError(f"dereference_chain: {hops} reference tables but {len(regions)} "
                         f"regions and {len(directions)} ref_directions")
    directions = [(0, 1) if d is None else d for d in directions]

    def first_length() -> int:
        if regions[0] is not None:
            return _length(_as_table(regions[0]))
        d0 = _check_direction(directions[0])[0]
        parents = np.asarray(_check_ref(refs[0])[:])[:, d0]
        return int(parents.max()) + 1 if parents.size else 0

    current = _selection(sel, first_length)
    skip = _row_mask(mask, current.size)
    shape: tuple[int, ...] = (current.size,)
    for hop in range(hops):
        last = hop == hops - 1
        result = _dereference(current.reshape(-1), refs[hop], data if last else None,
                              regions[hop], skip.reshape(-1), directions[hop],
                              indices_only if last else True)
        values, row_mask = result.padded()
        shape = shape + (values.shape[1],)
        skip = skip[..., np.newaxis] | row_mask.reshape(shape)
        current = values.reshape(shape + values.shape[2:])
    return _masked(current, skip)
