"""The flow data manager: tables, amortized growth, references and exact regions."""

from __future__ import annotations

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


def test_reserve_grows_in_amortized_steps_and_close_trims(dm):
    resizes = []
    dset = dm.get_dset("hits")
    for _ in range(200):
        before = dset.shape[0]
        fill(dm, "hits", 7)
        if dset.shape[0] != before:
            resizes.append(dset.shape[0])
    assert dm.rows("hits") == 1400
    assert len(resizes) <= 3  # 1024, 2048: doubling, not one resize per chunk
    dm.close()
    assert dset.shape == (1400,) and dset.attrs["h5forge_rows"] == 1400
    assert list(dset["q"][:3]) == [0, 1, 2]


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


def test_child_side_is_a_hard_link_to_the_same_table(dm):
    fill(dm, "events", 1)
    fill(dm, "hits", 1)
    dm.create_ref("events", "hits")
    f = dm.file
    assert f["events/ref/hits/ref"] == f["hits/ref/events/ref"]
    assert dm.ref_exists("hits", "events")
    with pytest.raises(FlowError, match="no table 'nope'"):
        dm.create_ref("events", "nope")


def test_attrs(dm):
    dm.set_attrs("events", units="mm", n=3)
    assert dm.get_attrs("events") == {"units": "mm", "n": 3}
    assert dm.attrs_exist("events") and not dm.attrs_exist("nothing")
