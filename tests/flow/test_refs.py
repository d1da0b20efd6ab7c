"""Tests of h5forge.flow.refs: dereference / dereference_chain over h5flow's file layout."""

from __future__ import annotations

import h5py
import numpy as np
import numpy.ma as ma
import pytest

from h5forge.errors import H5ForgeError
from h5forge.flow.refs import (
    REGION_DTYPE,
    dereference,
    dereference_chain,
    read_regions,
    region_dtype_ok,
)

H5FLOW_REGION_DTYPE = np.dtype([("start", "<i4"), ("stop", "<i4")])
HIT_DTYPE = np.dtype([("id", "<i8"), ("q", "<f4"), ("xyz", "<f4", (3,))])
EVENT_DTYPE = np.dtype([("id", "<i4"), ("t", "<f8")])


# -- building files ----------------------------------------------------------------------------
def spans(rows: np.ndarray, n_rows: int, positions: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Regions: for each row, first position .. last position + 1 of its references."""
    region = np.zeros(n_rows, dtype=dtype)
    for r in np.unique(rows):
        where = positions[rows == r]
        region[r] = (where.min(), where.max() + 1)
    return region


def write_pairs(f: h5py.File, a: str, b: str, pairs: np.ndarray, *, n_a: int, n_b: int,
                ref_dtype: str = "<i8", region_dtype: np.dtype = REGION_DTYPE,
                batches: int = 1) -> None:
    """Write references a -> b the way h5flow does: appended in ``batches``, with both region
    tables kept as spans over everything appended so far."""
    ref = f.create_dataset(f"{a}/ref/{b}/ref", shape=(0, 2), maxshape=(None, 2), dtype=ref_dtype)
    fill = np.zeros((), dtype=region_dtype)
    reg_a = f.create_dataset(f"{a}/ref/{b}/ref_region", shape=(n_a,), maxshape=(None,),
                             dtype=region_dtype, fillvalue=fill)
    reg_b = f.create_dataset(f"{b}/ref/{a}/ref_region", shape=(n_b,), maxshape=(None,),
                             dtype=region_dtype, fillvalue=fill)
    ref.attrs["dset0"] = f[f"{a}/data"].name
    ref.attrs["dset1"] = f[f"{b}/data"].name
    ref.attrs["ref_region0"] = reg_a.name
    ref.attrs["ref_region1"] = reg_b.name
    reg_a.attrs["ref"] = ref.name
    reg_b.attrs["ref"] = ref.name
    for batch in np.array_split(pairs, batches):
        offset = len(ref)
        ref.resize((offset + len(batch), 2))
        ref[offset:] = batch
        positions = np.arange(offset, offset + len(batch))
        for region, rows in ((reg_a, batch[:, 0]), (reg_b, batch[:, 1])):
            current = region[...]
            new = spans(rows, len(current), positions, region_dtype)
            had, got = current["stop"] > current["start"], new["stop"] > new["start"]
            both = had & got
            current["start"] = np.where(both, np.minimum(current["start"], new["start"]),
                                        np.where(got, new["start"], current["start"]))
            current["stop"] = np.where(both, np.maximum(current["stop"], new["stop"]),
                                       np.where(got, new["stop"], current["stop"]))
            region[...] = current


def make_tables(rng: np.random.Generator, n_events: int = 20, n_clusters: int = 60,
                n_hits: int = 300):
    events = np.zeros(n_events, EVENT_DTYPE)
    events["id"] = np.arange(n_events)
    events["t"] = rng.random(n_events)
    clusters = np.arange(n_clusters, dtype=np.int64) * 10  # a plain dtype
    hits = np.zeros(n_hits, HIT_DTYPE)
    hits["id"] = np.arange(n_hits)
    hits["q"] = rng.random(n_hits)
    hits["xyz"] = rng.random((n_hits, 3))
    # events -> clusters: each cluster in one event, events 3 and 7 without clusters
    owners = rng.choice([e for e in range(n_events) if e not in (3, 7)], size=n_clusters)
    ev_cl = np.c_[owners, np.arange(n_clusters)]
    # hits -> clusters (stored under hits): each hit in 0..2 clusters, cluster 5 without hits
    rows = []
    for h in range(n_hits):
        for c in rng.choice([c for c in range(n_clusters) if c != 5], size=rng.integers(0, 3),
                            replace=False):
            rows.append((h, c))
    hit_cl = np.array(rows, dtype=np.int64)
    return events, clusters, hits, rng.permutation(ev_cl), rng.permutation(hit_cl)


@pytest.fixture(params=["h5forge", "h5flow"])
def layout(request, tmp_path):
    """A file with /events, /clusters, /hits and references events->clusters and
    hits->clusters (so clusters->hits is read from the child side), in h5forge's layout
    (int64 refs, 64-bit regions) or h5flow's (uint32 refs, 32-bit regions, several batches)."""
    rng = np.random.default_rng(7)
    events, clusters, hits, ev_cl, hit_cl = make_tables(rng)
    h5flow = request.param == "h5flow"
    kw = dict(ref_dtype="<u4" if h5flow else "<i8",
              region_dtype=H5FLOW_REGION_DTYPE if h5flow else REGION_DTYPE,
              batches=4 if h5flow else 1)
    f = h5py.File(tmp_path / f"{request.param}.h5", "w")
    for name, table in (("events", events), ("clusters", clusters), ("hits", hits)):
        f.create_dataset(f"{name}/data", data=table, maxshape=(None,))
    write_pairs(f, "events", "clusters", ev_cl, n_a=len(events), n_b=len(clusters), **kw)
    write_pairs(f, "hits", "clusters", hit_cl, n_a=len(hits), n_b=len(clusters), **kw)
    yield f, {"events": events, "clusters": clusters, "hits": hits, "ev_cl": ev_cl,
              "hit_cl": hit_cl}
    f.close()


# -- what the answers should be ------------------------------------------------------------------
def expected_children(sel: np.ndarray, pairs: np.ndarray, direction=(0, 1)) -> list[np.ndarray]:
    d0, d1 = direction
    return [np.sort(pairs[pairs[:, d0] == i, d1]) for i in sel]


def row_mask(res: ma.MaskedArray) -> np.ndarray:
    """True where an entry is masked, reduced over structured fields and row shapes."""
    m = ma.getmaskarray(res)
    if m.dtype.names:
        m = np.any([m[n].reshape(m.shape + (-1,)).any(-1) for n in m.dtype.names], axis=0)
    return m.reshape(m.shape[:2] + (-1,)).any(-1) if m.ndim > 2 else m


def rows_of(res: ma.MaskedArray) -> list[np.ndarray]:
    """The unmasked entries of each row; checks masked entries come last."""
    m = row_mask(res)
    out = []
    for j in range(res.shape[0]):
        n = int((~m[j]).sum())
        assert not m[j, :n].any(), f"row {j}: masked entries before unmasked ones"
        out.append(np.asarray(res.data[j, :n]))
    return out


def assert_rows(res, expected: list[np.ndarray]) -> None:
    got = rows_of(res)
    assert len(got) == len(expected)
    for j, (g, e) in enumerate(zip(got, expected)):
        np.testing.assert_array_equal(g, e, err_msg=f"row {j}")


# -- dereference -------------------------------------------------------------------------------
@pytest.mark.parametrize("use_region", [True, False])
def test_simple(layout, use_region):
    f, t = layout
    region = f["events/ref/clusters/ref_region"] if use_region else None
    res = dereference(slice(0, 20), f["events/ref/clusters/ref"], f["clusters/data"],
                      region=region)
    assert isinstance(res, ma.MaskedArray)
    exp_idx = expected_children(np.arange(20), t["ev_cl"])
    assert res.shape == (20, max(len(e) for e in exp_idx))
    assert res.dtype == t["clusters"].dtype
    assert_rows(res, [t["clusters"][e] for e in exp_idx])


def test_with_and_without_region_agree(layout):
    f, _ = layout
    ref, data = f["hits/ref/clusters/ref"], f["hits/data"]
    region = f["clusters/ref/hits/ref_region"]
    for sel in (slice(0, 60), slice(10, 30, 3), np.array([40, 2, 2, 59, 5]), 17):
        a = dereference(sel, ref, data, region=region, ref_direction=(1, 0))
        b = dereference(sel, ref, data, ref_direction=(1, 0))
        assert a.shape == b.shape
        np.testing.assert_array_equal(row_mask(a), row_mask(b))
        np.testing.assert_array_equal(a.data, b.data)  # masked entries are zeros in both


def test_reversed_direction(layout):
    """clusters -> hits, reading /hits/ref/clusters/ref from the child side."""
    f, t = layout
    sel = np.arange(60)
    res = dereference(sel, f["hits/ref/clusters/ref"], f["hits/data"],
                      region=f["clusters/ref/hits/ref_region"], ref_direction=(1, 0))
    exp = expected_children(sel, t["hit_cl"], (1, 0))
    assert res.dtype == HIT_DTYPE  # structured dtype (with a subarray field) kept
    assert_rows(res, [t["hits"][e] for e in exp])
    assert row_mask(res)[5].all()  # cluster 5 has no hits


def test_indices_only(layout):
    f, t = layout
    sel = np.array([0, 1, 2, 3])
    exp = expected_children(sel, t["ev_cl"])
    for kwargs in ({"data": f["clusters/data"], "indices_only": True}, {"data": None}):
        res = dereference(sel, f["events/ref/clusters/ref"],
                          region=f["events/ref/clusters/ref_region"], **kwargs)
        assert res.dtype == np.int64
        assert_rows(res, exp)


def test_h5flow_docstring_example():
    """h5flow documents: [[1,0],[2,1]] over 'ABCD' gives [[],[A],[B]] / [[B],[C],[]]."""
    data = np.array(list("ABCD"))
    fwd = dereference([0, 1, 2], [[1, 0], [2, 1]], data)
    assert fwd.shape == (3, 1)
    assert fwd.mask.tolist() == [[True], [False], [False]]
    assert fwd.compressed().tolist() == ["A", "B"]
    back = dereference([0, 1, 2], [[1, 0], [2, 1]], data, ref_direction=(1, 0))
    assert back.mask.tolist() == [[False], [False], [True]]
    assert back.compressed().tolist() == ["B", "C"]


def test_mask(layout):
    f, t = layout
    sel = np.arange(10)
    skip = sel % 2 == 1
    res = dereference(sel, f["events/ref/clusters/ref"], f["clusters/data"],
                      region=f["events/ref/clusters/ref_region"], mask=skip)
    exp = expected_children(sel, t["ev_cl"])
    exp = [np.zeros(0, np.int64) if s else t["clusters"][e] for s, e in zip(skip, exp)]
    assert_rows(res, exp)
    assert row_mask(res)[skip].all()
    # everything masked: fully masked, one row per selected row
    res = dereference(sel, f["events/ref/clusters/ref"], f["clusters/data"],
                      mask=np.ones(10, bool))
    assert res.shape == (10, 1) and res.mask.all()
    as_list = dereference(sel, f["events/ref/clusters/ref"], f["clusters/data"], mask=skip,
                          as_masked=False)
    assert [len(x) for x in as_list] == [len(e) for e in exp]


def test_empty_selection(layout):
    f, _ = layout
    ref, data = f["events/ref/clusters/ref"], f["clusters/data"]
    region = f["events/ref/clusters/ref_region"]
    for sel in (slice(5, 5), np.array([], dtype=np.int64), [], np.zeros(20, bool)):
        res = dereference(sel, ref, data, region=region)
        assert isinstance(res, ma.MaskedArray)
        assert res.shape == (0, 1) and res.dtype == data.dtype
        assert dereference(sel, ref, data, region=region, as_masked=False) == []
    assert dereference_chain(slice(0, 0), [ref], data).shape == (0, 1)
    assert dereference_chain(slice(0, 0), [ref, ref], indices_only=True).shape == (0, 1, 1)
    # reductions along axis 1 work, as on an MPI rank with no rows left
    assert dereference(slice(5, 5), ref, indices_only=True).min(axis=1).shape == (0,)


def test_rows_without_refs(layout):
    f, t = layout
    ref, data = f["events/ref/clusters/ref"], f["clusters/data"]
    region = f["events/ref/clusters/ref_region"]
    res = dereference([2, 3, 4, 7], ref, data, region=region)
    m = row_mask(res)
    assert m[1].all() and m[3].all()
    assert not m[0].all() and not m[2].all()
    # only rows without references: fully masked, width 1 (as h5flow)
    for reg in (region, None):
        res = dereference([3, 7], ref, data, region=reg)
        assert res.shape == (2, 1) and res.mask.all()
        assert [len(x) for x in dereference([3, 7], ref, data, region=reg,
                                            as_masked=False)] == [0, 0]


def test_as_masked_false(layout):
    f, t = layout
    sel = np.array([0, 3, 0, 9])
    res = dereference(sel, f["events/ref/clusters/ref"], f["clusters/data"],
                      region=f["events/ref/clusters/ref_region"], as_masked=False)
    assert isinstance(res, list) and len(res) == 4
    for got, exp in zip(res, expected_children(sel, t["ev_cl"])):
        np.testing.assert_array_equal(got, t["clusters"][exp])
    assert res[0] is not res[2]  # a repeated row gets its own array
    idx = dereference(sel, f["events/ref/clusters/ref"], indices_only=True, as_masked=False)
    for got, exp in zip(idx, expected_children(sel, t["ev_cl"])):
        np.testing.assert_array_equal(got, exp)


def test_selection_forms(layout):
    f, t = layout
    ref, data = f["events/ref/clusters/ref"], f["clusters/data"]
    region = f["events/ref/clusters/ref_region"]
    full = dereference(slice(0, 20), ref, data, region=region)
    width = full.shape[1]

    def same(res, rows):
        assert res.shape[0] == len(rows)
        assert_rows(res, [t["clusters"][e] for e in expected_children(np.array(rows),
                                                                        t["ev_cl"])])
        assert res.shape[1] <= width

    same(dereference(4, ref, data, region=region), [4])
    same(dereference(np.int32(4), ref, data, region=region), [4])
    same(dereference([9, 1, 9, 0], ref, data, region=region), [9, 1, 9, 0])
    same(dereference(np.arange(20) % 5 == 0, ref, data, region=region), [0, 5, 10, 15])
    same(dereference(slice(15, None), ref, data, region=region), list(range(15, 20)))
    same(dereference(slice(None, None, -4), ref, data, region=region), [19, 15, 11, 7, 3])
    same(dereference([-1], ref, data, region=region), [19])


def test_structured_parent_and_child():
    """A structured child table, refs from arrays (no file), with subarray fields kept."""
    hits = np.zeros(6, HIT_DTYPE)
    hits["id"] = np.arange(6) + 100
    hits["xyz"] = np.arange(18).reshape(6, 3)
    ref = np.array([[1, 4], [0, 2], [1, 0], [0, 5], [1, 1]], dtype=np.uint32)
    res = dereference([0, 1, 2], ref, hits)
    assert res.dtype == HIT_DTYPE and res.shape == (3, 3)
    np.testing.assert_array_equal(res.data[0, :2]["id"], [102, 105])
    np.testing.assert_array_equal(res.data[1]["id"], [100, 101, 104])
    np.testing.assert_array_equal(res.data[1, 2]["xyz"], [12, 13, 14])
    assert row_mask(res).tolist() == [[False, False, True], [False] * 3, [True] * 3]


def test_child_rows_with_their_own_shape():
    data = np.arange(12.0).reshape(4, 3)
    res = dereference([0, 1], [[0, 3], [0, 1]], data)
    assert res.shape == (2, 2, 3)
    np.testing.assert_array_equal(res.data[0], data[[1, 3]])
    assert res.mask[1].all() and not res.mask[0].any()


def test_random_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(25):
        n_parent, n_child = rng.integers(1, 40, size=2)
        pairs = np.c_[rng.integers(0, n_parent, 80), rng.integers(0, n_child, 80)]
        pairs = pairs[: rng.integers(0, 80)]  # including no references at all
        for direction in ((0, 1), (1, 0)):
            d0 = direction[0]
            n_side = n_parent if d0 == 0 else n_child
            region = spans(pairs[:, d0], n_side, np.arange(len(pairs)), REGION_DTYPE)
            sel = rng.integers(0, n_side, rng.integers(0, 15))
            skip = rng.random(len(sel)) < 0.2
            exp = [np.zeros(0, np.int64) if s else e
                   for s, e in zip(skip, expected_children(sel, pairs, direction))]
            for reg in (region, None):
                res = dereference(sel, pairs.reshape(-1, 2), region=reg, mask=skip,
                                  ref_direction=direction)
                if len(sel):
                    assert_rows(res, exp)
                    assert res.shape[1] == max([1] + [len(e) for e in exp])
                else:
                    assert res.shape == (0, 1)


# -- reading only what is needed -----------------------------------------------------------------
class Recording:
    """A dataset stand-in that records every read."""

    def __init__(self, dset):
        self.dset, self.reads = dset, []

    shape = property(lambda self: self.dset.shape)
    dtype = property(lambda self: self.dset.dtype)
    name = property(lambda self: self.dset.name)

    def __len__(self):
        return len(self.dset)

    def __getitem__(self, key):
        self.reads.append(key)
        return self.dset[key]


def test_region_reads_only_the_needed_refs(tmp_path):
    n_parent, per = 1000, 5
    pairs = np.c_[np.repeat(np.arange(n_parent), per), np.arange(n_parent * per)]
    with h5py.File(tmp_path / "big.h5", "w") as f:
        f.create_dataset("a/data", data=np.arange(n_parent))
        f.create_dataset("b/data", data=np.arange(n_parent * per) * 2)
        write_pairs(f, "a", "b", pairs, n_a=n_parent, n_b=n_parent * per)
        ref = Recording(f["a/ref/b/ref"])
        region = Recording(f["a/ref/b/ref_region"])
        data = Recording(f["b/data"])
        res = dereference(slice(100, 110), ref, data, region=region)
        assert ref.reads == [slice(500, 550)]  # only these rows' references
        assert region.reads == [slice(100, 110)]
        assert len(data.reads) == 1 and data.reads[0] == slice(500, 550)
        np.testing.assert_array_equal(res.data, (np.arange(500, 550) * 2).reshape(10, 5))
        # an index selection: one region read, one ref span read
        ref.reads.clear(), region.reads.clear()
        dereference([107, 103], ref, indices_only=True, region=region)
        assert ref.reads == [slice(515, 540)]
        assert len(region.reads) == 1
        # without a region the whole table is read
        ref.reads.clear()
        dereference(slice(100, 110), ref, indices_only=True)
        assert ref.reads == [slice(0, n_parent * per)]


def test_sparse_data_read_uses_one_point_selection(tmp_path):
    n = 100_000
    with h5py.File(tmp_path / "sparse.h5", "w") as f:
        f.create_dataset("b/data", data=np.arange(n))
        data = Recording(f["b/data"])
        res = dereference([0, 1], np.array([[0, n - 1], [1, 0], [0, 50_000]]), data)
        assert len(data.reads) == 1
        assert not isinstance(data.reads[0], slice)  # not the whole span
        np.testing.assert_array_equal(res.data, [[50_000, n - 1], [0, 0]])


# -- chains ----------------------------------------------------------------------------------
@pytest.mark.parametrize("use_region", [True, False])
def test_chain_two_tables(layout, use_region):
    """events -> clusters -> hits (second hop read from the child side)."""
    f, t = layout
    refs = [f["events/ref/clusters/ref"], f["hits/ref/clusters/ref"]]
    regions = ([f["events/ref/clusters/ref_region"], f["clusters/ref/hits/ref_region"]]
               if use_region else None)
    sel = np.arange(20)
    skip = np.zeros(20, bool)
    skip[11] = True
    res = dereference_chain(sel, refs, f["hits/data"], regions=regions, mask=skip,
                            ref_directions=[(0, 1), (1, 0)])
    clusters = expected_children(sel, t["ev_cl"])
    n1 = max(len(c) for c in clusters)
    n2 = max(len(h) for c in clusters for h in expected_children(c, t["hit_cl"], (1, 0)))
    assert res.shape == (20, n1, n2) and res.dtype == HIT_DTYPE
    m = ma.getmaskarray(res)["id"]
    for e in range(20):
        if skip[e]:
            assert m[e].all()
            continue
        for k in range(n1):
            if k >= len(clusters[e]):
                assert m[e, k].all()
                continue
            hits = expected_children([clusters[e][k]], t["hit_cl"], (1, 0))[0]
            assert (~m[e, k]).sum() == len(hits)
            np.testing.assert_array_equal(res.data[e, k, :len(hits)], t["hits"][hits])
    idx = dereference_chain(sel, refs, regions=regions, mask=skip,
                            ref_directions=[(0, 1), (1, 0)], indices_only=True)
    assert idx.shape == res.shape and idx.dtype == np.int64
    np.testing.assert_array_equal(idx.mask, m)
    np.testing.assert_array_equal(idx.compressed(), res.data["id"][~m])


def test_chain_three_tables(layout):
    """events -> clusters -> hits -> clusters (back again)."""
    f, t = layout
    refs = [f["events/ref/clusters/ref"], f["hits/ref/clusters/ref"], f["hits/ref/clusters/ref"]]
    regions = [f["events/ref/clusters/ref_region"], f["clusters/ref/hits/ref_region"],
               f["hits/ref/clusters/ref_region"]]
    dirs = [(0, 1), (1, 0), (0, 1)]
    sel = [0, 3, 5]
    res = dereference_chain(sel, refs, f["clusters/data"], regions=regions, ref_directions=dirs)
    no_region = dereference_chain(sel, refs, f["clusters/data"], ref_directions=dirs)
    assert res.ndim == 4 and res.shape[0] == 3
    assert res.shape == no_region.shape
    np.testing.assert_array_equal(res.mask, no_region.mask)
    np.testing.assert_array_equal(res.compressed(), no_region.compressed())
    assert res.mask[1].all()  # event 3 has no clusters
    # brute force over the nesting
    for j, e in enumerate(sel):
        for k, c in enumerate(expected_children([e], t["ev_cl"])[0]):
            for h_i, h in enumerate(expected_children([c], t["hit_cl"], (1, 0))[0]):
                back = expected_children([h], t["hit_cl"])[0]
                row = res[j, k, h_i]
                np.testing.assert_array_equal(row.compressed(), t["clusters"][back])
                assert c * 10 in row.compressed()


def test_chain_on_arrays():
    a_b = np.array([[0, 0], [0, 1], [1, 2]])
    c_b = np.array([[5, 0], [3, 0], [4, 1], [1, 2]])  # stored c -> b
    res = dereference_chain(slice(0, 3), [a_b, c_b], ref_directions=[None, (1, 0)])
    assert res.shape == (3, 2, 2)
    assert res[0].tolist() == [[3, 5], [4, None]]
    assert res[1].tolist() == [[1, None], [None, None]]
    assert res.mask[2].all()


# -- regions --------------------------------------------------------------------------------------
def test_read_regions(tmp_path):
    raw = np.array([(0, 2), (2, 2), (2, 5), (5, 9)], dtype=H5FLOW_REGION_DTYPE)
    with h5py.File(tmp_path / "r.h5", "w") as f:
        f["r32"] = raw
        f["r64"] = raw.astype(REGION_DTYPE)
        f["plain"] = np.c_[raw["start"], raw["stop"]].astype(np.uint32)
        for name in ("r32", "r64", "plain"):
            for source in (f[name], f[name][...]):
                got = read_regions(source, slice(1, 3))
                assert got.dtype == REGION_DTYPE
                assert got.tolist() == [(2, 2), (2, 5)]
                got = read_regions(source, [3, 0, 3])
                assert got.tolist() == [(5, 9), (0, 2), (5, 9)]
                # rows past the end (a table still growing): empty regions
                assert read_regions(source, [2, 10]).tolist() == [(2, 5), (0, 0)]
                assert read_regions(source, slice(2, 6)).tolist() == [(2, 5), (5, 9), (0, 0),
                                                                      (0, 0)]
    assert region_dtype_ok(H5FLOW_REGION_DTYPE) and region_dtype_ok(REGION_DTYPE)
    assert not region_dtype_ok(np.dtype([("start", "f8"), ("stop", "f8")]))
    assert not region_dtype_ok(np.int64)


def test_h5flow_file_layout(tmp_path):
    """A file laid out exactly as h5flow writes one: uint32 (N, 2) refs, int32 regions filled
    with zeros, links between them as attributes, references written in several batches."""
    path = tmp_path / "h5flow.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("A/data", shape=(0,), maxshape=(None,), dtype="i8")
        f.create_dataset("B/data", shape=(0,), maxshape=(None,), dtype="i8")
        f["A/data"].resize((10,))
        f["A/data"][:] = np.arange(10)
        f["B/data"].resize((100,))
        f["B/data"][:] = np.arange(100)
        a_b = np.c_[np.repeat(np.arange(10), 10), np.arange(100)]
        a_b = a_b[np.random.default_rng(3).permutation(100)]
        write_pairs(f, "A", "B", a_b, n_a=10, n_b=100, ref_dtype="u4",
                    region_dtype=H5FLOW_REGION_DTYPE, batches=5)
    with h5py.File(path, "r") as f:
        assert f["A/ref/B/ref"].dtype == np.uint32
        assert f["A/ref/B/ref_region"].dtype == H5FLOW_REGION_DTYPE
        ref, dset = f["A/ref/B/ref"], f["B/data"]
        reg = f["A/ref/B/ref_region"]
        with_region = dereference(slice(0, 10), ref, dset, region=reg)
        without = dereference(slice(0, 10), ref, dset)
        # h5flow's own test: all 10 x 10 filled, same with and without the region
        assert with_region.shape == (10, 10) and not with_region.mask.any()
        assert ma.all(with_region == without)
        np.testing.assert_array_equal(with_region.data, np.arange(100).reshape(10, 10))
        back = dereference(slice(0, 100), ref, f["A/data"], region=f["B/ref/A/ref_region"],
                           ref_direction=(1, 0))
        assert back.shape == (100, 1)
        np.testing.assert_array_equal(back.data[:, 0], np.arange(100) // 10)


# -- errors ------------------------------------------------------------------------------------
def test_errors():
    data = np.arange(5)
    good = np.array([[0, 1], [1, 2]])
    with pytest.raises(H5ForgeError, match="shape"):
        dereference([0], np.zeros((3, 3), int), data)
    with pytest.raises(H5ForgeError, match="integers"):
        dereference([0], np.zeros((3, 2), float), data)
    with pytest.raises(H5ForgeError, match="ref_direction"):
        dereference([0], good, data, ref_direction=(0, 0))
    with pytest.raises(H5ForgeError, match="mask"):
        dereference([0, 1], good, data, mask=[True, False, True])
    with pytest.raises(H5ForgeError, match="out of range"):
        dereference([0], [[0, 9]], data)
    with pytest.raises(H5ForgeError, match="start"):
        dereference([0], good, data, region=np.zeros(2, [("a", "i8"), ("b", "i8")]))
    with pytest.raises(H5ForgeError, match="regions point"):
        dereference([0], good, data, region=np.array([(0, 7), (0, 0)], REGION_DTYPE))
    with pytest.raises(H5ForgeError, match="selection"):
        dereference(np.array([0.5]), good, data)
    with pytest.raises(H5ForgeError, match="at least one"):
        dereference_chain([0], [], data)
    with pytest.raises(H5ForgeError, match="regions"):
        dereference_chain([0], [good, good], data, regions=[None])
    with pytest.raises(ValueError):  # the errors are ValueErrors too
        dereference([0], np.zeros(4, int), data)
