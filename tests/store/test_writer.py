"""The writer's low-level dataset path makes the dataset h5py's create_dataset makes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5forge.store.writer import _create_plain_dataset, _plain_numeric


def _properties(ds: h5py.Dataset) -> tuple:
    plist = ds.id.get_create_plist()
    return (plist.get_layout(), plist.get_obj_track_times(), plist.get_fill_time(),
            plist.get_alloc_time(), plist.fill_value_defined(), plist.get_nfilters(),
            ds.shape, ds.dtype, ds.id.get_type().get_class(), ds.id.get_type().get_size())


@pytest.mark.parametrize("data", [np.arange(5.0), np.zeros((2, 3), np.int16), np.array(3.5),
                                  np.array([True, False]), np.zeros(0), np.ones(3, np.complex64),
                                  np.arange(4, dtype=np.uint8), np.eye(3)[:, 1]],
                         ids=lambda d: f"{d.dtype}{d.shape}")
def test_plain_dataset_is_the_one_h5py_makes(tmp_path, data):
    assert _plain_numeric(data)
    with h5py.File(tmp_path / "w.h5", "w") as f:
        ours, theirs = _create_plain_dataset(f, "é", data), f.create_dataset("h", data=data)
        assert _properties(ours) == _properties(theirs)
        assert np.array_equal(ours[()], data) and ours[()].dtype == data.dtype
        assert f.id.links.get_info("é".encode()).cset == h5py.h5t.CSET_UTF8


@pytest.mark.parametrize("data", [np.zeros(2, ">f8"), np.array(["a"]), np.zeros(2, "f4,i2"),
                                  np.array([1, None], dtype=object), [1.0, 2.0]],
                         ids=["big-endian", "str", "compound", "object", "list"])
def test_other_data_takes_h5pys_path(data):
    assert not _plain_numeric(data)


@pytest.mark.parametrize("obj", [None, {"a": None, "b": [None, b"x"]}, ...],
                         ids=["none", "inside", "ellipsis"])
def test_empty_datasets_with_a_configuration(tmp_path, obj):
    """None is an empty dataset: nothing to chunk or compress (a plan crashed on it)."""
    import h5forge

    path = tmp_path / "n.h5"
    plan = h5forge.get_default_configuration(obj)
    plan.apply_global_compression("gzip", {"level": 4})
    h5forge.dump(obj, path, configuration=plan)
    assert h5forge.load(path) == obj
    other = tmp_path / "at-a-path.h5"
    h5forge.dump(obj, other, "x", configuration=h5forge.get_default_configuration(obj, "x"))
    assert h5forge.load(other, "x") == obj
