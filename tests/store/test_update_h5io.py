"""The same update steps through h5io (``write_hdf5(..., overwrite="update")``) and h5forge."""

from __future__ import annotations

import numpy as np
import pytest

import h5forge
from h5forge.errors import NodeExistsError

h5io = pytest.importorskip("h5io")


def test_titles_replaced_like_h5io(tmp_path):
    """h5io's own update steps (its test_hdf5): a title is added, refused without "update",
    replaced with it. h5forge: a path at the file root, overwrite=True."""
    peer, ours = tmp_path / "peer.h5", tmp_path / "ours.h5"
    h5io.write_hdf5(peer, 1, title="first", overwrite=True)
    h5forge.dump(1, ours, "first")
    h5io.write_hdf5(peer, 2, title="second", overwrite="update")
    h5forge.dump(2, ours, "second")
    with pytest.raises(IOError):
        h5io.write_hdf5(peer, 3, title="second")
    with pytest.raises(IOError):  # NodeExistsError is an IOError too
        h5forge.dump(3, ours, "second")
    with pytest.raises(NodeExistsError):
        h5forge.dump(3, ours, "second")
    h5io.write_hdf5(peer, 3, title="second", overwrite="update")
    h5forge.dump(3, ours, "second", overwrite=True)
    h5io.write_hdf5(peer, np.arange(5.0), title="arr", overwrite="update", compression=5)
    h5forge.dump(np.arange(5.0), ours, "arr")
    for title in ("first", "second"):
        assert h5io.read_hdf5(peer, title=title) == h5forge.load(ours, title)
    np.testing.assert_array_equal(h5io.read_hdf5(peer, title="arr"), h5forge.load(ours, "arr"))


def test_adding_inside_a_stored_dict_h5io_breaks_h5forge_keeps(tmp_path):
    record = {"name": "run", "trials": {"t1": np.arange(5)}, "n": 3}
    peer, ours = tmp_path / "peer.h5", tmp_path / "ours.h5"
    h5io.write_hdf5(peer, record, title="rec", overwrite=True)
    h5forge.dump(record, ours, "rec")
    h5io.write_hdf5(peer, np.arange(7), title="rec/trials/t2", overwrite="update")
    h5forge.dump(np.arange(7), ours, "rec/trials/t2")
    with pytest.raises(KeyError):  # h5io can no longer read its own record
        h5io.read_hdf5(peer, title="rec")
    out = h5forge.load(ours, "rec")
    assert list(out["trials"]) == ["t1", "t2"] and out["name"] == "run"


def test_h5io_update_replaces_the_whole_title_h5forge_one_member(tmp_path):
    record = {"name": "run", "trials": {"t1": np.arange(5)}, "n": 3}
    peer, ours = tmp_path / "peer.h5", tmp_path / "ours.h5"
    h5io.write_hdf5(peer, record, title="rec", overwrite=True)
    h5forge.dump(record, ours, "rec")
    h5io.write_hdf5(peer, {"n": 4}, title="rec", overwrite="update")
    h5forge.dump(4, ours, "rec/n", overwrite=True)
    assert h5io.read_hdf5(peer, title="rec") == {"n": 4}  # name and trials are gone
    out = h5forge.load(ours, "rec")
    assert out["n"] == 4 and out["name"] == "run" and list(out["trials"]) == ["t1"]
