"""The flow data manager: exact table lengths, h5flow's reference layout, exact regions."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from h5forge.errors import FlowError
from h5forge.flow.data import REGION_DTYPE, DataManager


@pytest.fixture
def dm(tmp_path):
    with h5py.File(tmp_path / "out.h5", "w") as f:
        manager = DataManager(f)
        manager.create_dset("events", [("id", "i4")])
        manager.create_dset("hits", [("q", "f4")])
        yield manager


def fill(dm, name, n):
    sel = dm.reserve_data(name, n)
    dtype = dm.get_dset(name).dtype
    data = np.zeros(n, dtype)
    data[dtype.names[0]] = np.arange(sel.start, sel.stop)
    dm.write_data(name, sel, data)
    return sel


def test_tables_are_exactly_as_long_as_the_rows_reserved_at_every_moment(dm):
    """Another reader of the file mid-run (h5flow, h5py in another process) sees only reserved
    rows: no capacity beyond them, and nothing left to trim at the end."""
    dset = dm.get_dset("hits")
    for i in range(1, 30):
        fill(dm, "hits", 7)
        assert dset.shape == (7 * i,) and dm.rows("hits") == 7 * i
    dm.file.flush()
    seen = subprocess.run(  # a second process reading the file mid-run
        [sys.executable, "-c", "import h5py, sys; f = h5py.File(sys.argv[1], 'r', "
         "locking=False); d = f['hits/data']; print(d.shape[0], d['q'][:3].tolist())",
         dm.file.filename], capture_output=True, text=True, timeout=60)
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.split(None, 1) == ["203", "[0.0, 1.0, 2.0]\n"]
    dm.close()
    assert dset.shape == (203,) and "h5forge_rows" not in dset.attrs


def test_region_tables_grow_with_their_tables(dm):
    fill(dm, "events", 3)
    dm.create_ref("events", "hits")
    assert dm.get_ref_region("events", "hits").shape == (3,)
    assert dm.get_ref_region("hits", "events").shape == (0,)
    fill(dm, "hits", 5)
    fill(dm, "events", 2)
    assert dm.get_ref_region("events", "hits").shape == (5,)
    assert dm.get_ref_region("hits", "events").shape == (5,)
    assert dm.get_ref_region("hits", "events")[:].tolist() == [(0, 0)] * 5  # no references


def test_writing_rows_not_reserved_is_refused(dm):
    fill(dm, "events", 2)
    with pytest.raises(FlowError, match="not reserved"):
        dm.write_data("events", slice(0, 5), np.zeros(5, dm.get_dset("events").dtype))
    with pytest.raises(FlowError, match="no table 'nope'"):
        dm.reserve_data("nope", 3)


def test_existing_table_with_another_dtype_is_refused(dm):
    assert dm.create_dset("events", [("id", "i4")]) == dm.get_dset("events")  # kept
    with pytest.raises(FlowError, match="exists with dtype"):
        dm.create_dset("events", "f8")


def test_regions_span_each_rows_references_over_several_writes(dm):
    fill(dm, "events", 4)
    fill(dm, "hits", 6)
    dm.create_ref("events", "hits")
    dm.write_ref("events", "hits", [[0, 0], [0, 1], [2, 2]])
    dm.write_ref("events", "hits", [[2, 3], [0, 5]])  # event 0 again, later in the table
    dm.write_ref("hits", "events", [[4, 3]])  # from the child's side
    dm.close()
    ref, direction = dm.get_ref("events", "hits")
    assert direction == (0, 1) and dm.get_ref("hits", "events")[1] == (1, 0)
    assert ref[:].tolist() == [[0, 0], [0, 1], [2, 2], [2, 3], [0, 5], [3, 4]]
    region = dm.get_ref_region("events", "hits")[:]
    assert region.dtype == REGION_DTYPE
    assert region.tolist() == [(0, 5), (0, 0), (2, 4), (5, 6)]
    back = dm.get_ref_region("hits", "events")[:]
    assert back.tolist() == [(0, 1), (1, 2), (2, 3), (3, 4), (5, 6), (4, 5)]
    for row, (start, stop) in enumerate(region):  # exact: starts at the first reference
        mine = np.flatnonzero(ref[:, 0] == row)
        if len(mine):
            assert (start, stop) == (mine[0], mine[-1] + 1)


def test_reference_layout_is_h5flows(dm):
    """What h5flow's create_ref writes: one table under the parent, two regions, and the
    attributes that link them; no table under the child (h5flow reads it from there with
    direction (1, 0))."""
    fill(dm, "events", 2)
    fill(dm, "hits", 3)
    dm.create_ref("events", "hits")
    f = dm.file
    assert "hits/ref/events/ref" not in f
    assert sorted(f["events/ref/hits"]) == ["ref", "ref_region"]
    assert sorted(f["hits/ref/events"]) == ["ref_region"]
    ref = f["events/ref/hits/ref"]
    assert dict(ref.attrs) == {"dset0": "/events/data", "dset1": "/hits/data",
                               "ref_region0": "/events/ref/hits/ref_region",
                               "ref_region1": "/hits/ref/events/ref_region"}
    assert ref.shape == (0, 2) and ref.maxshape == (None, 2)
    for side in ("events/ref/hits/ref_region", "hits/ref/events/ref_region"):
        assert dict(f[side].attrs) == {"ref": "/events/ref/hits/ref"}
    assert f["events/ref/hits/ref_region"].shape == (2,)
    assert f["hits/ref/events/ref_region"].shape == (3,)
    assert dm.ref_exists("hits", "events") and dm.ref_exists("events", "hits")
    assert dm.get_ref("hits", "events")[0] == ref
    dm.create_ref("hits", "events")  # the other direction: kept, nothing new
    assert "hits/ref/events/ref" not in f
    assert dm.get_refs("hits") == [ref]
    with pytest.raises(FlowError, match="no table 'nope'"):
        dm.create_ref("events", "nope")
    with pytest.raises(FlowError, match="neither /events/ref/clusters/ref nor"):
        dm.get_ref("events", "clusters")


def test_attrs(dm):
    dm.set_attrs("events", units="mm", n=3)
    assert dm.get_attrs("events") == {"units": "mm", "n": 3}
    assert dm.attrs_exist("events") and not dm.attrs_exist("nothing")
