"""xarray objects through the store: coords, attrs, names and dims in a netCDF-like layout
readable with h5py, and loading without xarray."""

from __future__ import annotations

import sys
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest

import h5forge
from h5forge.errors import CodecError

xr = pytest.importorskip("xarray")


def data_array():
    return xr.DataArray(
        np.arange(6.0).reshape(2, 3), dims=("x", "y"),
        coords={"x": [10, 20], "y": ["a", "b", "c"], "label": ("x", ["p", "q"]),
                "when": pd.Timestamp("2024-01-01")},
        attrs={"units": "m", "history": {"step": 1}}, name="temperature")


def dataset():
    return xr.Dataset(
        {"v": (("t",), np.arange(3), {"units": "s", "scale": 2.0}), "w": ((), 5.5),
         "flags": (("t", "c"), np.zeros((3, 2), bool))},
        coords={"t": pd.date_range("2024-01-01", periods=3), "c": ["u", "v"]},
        attrs={"title": "run 7", "channels": [1, 2]})


def roundtrip(obj, tmp_path, **kwargs):
    path = tmp_path / "x.h5"
    h5forge.dump(obj, path)
    return h5forge.load(path, **kwargs)


@pytest.mark.parametrize("make", [data_array, dataset,
                                  lambda: data_array().variable,
                                  lambda: dataset().isel(t=0),
                                  lambda: xr.DataArray([1, 2], dims="x"),
                                  lambda: xr.DataArray(3.0, name=("tuple", 1))])
def test_round_trip_is_identical(make, tmp_path):
    obj = make()
    out = roundtrip({"obj": obj}, tmp_path)["obj"]
    assert type(out) is type(obj)
    xr.testing.assert_identical(out, obj)


def test_variables_are_datasets_with_dims_and_attrs(tmp_path):
    path = tmp_path / "x.h5"
    h5forge.dump(dataset(), path)
    with h5py.File(path) as f:
        assert f.attrs["class"] == "xarray.Dataset"
        v = f["data_vars/v"]
        assert isinstance(v, h5py.Dataset) and list(v[()]) == [0, 1, 2]
        assert list(v.attrs["dims"]) == ["t"]
        assert v.attrs["units"] == "s" and v.attrs["scale"] == 2.0
        assert list(f["coords/t"].attrs["dims"]) == ["t"]
        assert f["attrs"].attrs["title"] == "run 7"


def test_data_array_layout(tmp_path):
    path = tmp_path / "x.h5"
    h5forge.dump(data_array(), path)
    with h5py.File(path) as f:
        assert f.attrs["class"] == "xarray.DataArray"
        data = f["data"]  # attrs that are not HDF5 attributes: the variable is a group
        assert list(data.attrs["dims"]) == ["x", "y"]
        assert data["data"].shape == (2, 3)
        assert list(f["coords/x"][()]) == [10, 20]
        assert f["name"].asstr()[()] == "temperature"


def test_encoding_is_kept(tmp_path):
    obj = dataset()
    obj["v"].encoding = {"dtype": np.dtype("int16"), "zlib": True}
    out = roundtrip(obj, tmp_path)
    assert out["v"].encoding == {"dtype": np.dtype("int16"), "zlib": True}


def test_multi_index_is_refused_with_what_to_do(tmp_path):
    obj = xr.Dataset(coords={"a": ("z", [1, 2]), "b": ("z", [3, 4])}).set_index(z=["a", "b"])
    with pytest.raises(CodecError, match="reset_index"):
        h5forge.dump(obj, tmp_path / "x.h5")


def test_non_string_dims_are_refused(tmp_path):
    with pytest.raises(CodecError, match="dimension names"):
        h5forge.dump(xr.DataArray([1, 2], dims=[0]), tmp_path / "x.h5")


def test_lazy_load_gives_real_arrays_inside_xarray(tmp_path):
    obj = xr.DataArray(np.ones(300_000), dims="x")
    out = roundtrip({"da": obj}, tmp_path, lazy=True)["da"]
    assert float((out * 2).sum()) == 600_000.0


def test_without_xarray_arrays_and_dims_stay(tmp_path, monkeypatch):
    path = tmp_path / "x.h5"
    h5forge.dump(dataset(), path)
    for name in list(sys.modules):
        if name.split(".")[0] == "xarray":
            monkeypatch.setitem(sys.modules, name, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = h5forge.load(path)
    assert len([w for w in caught if "xarray cannot be imported" in str(w.message)]) == 1
    v = out.state["data_vars"]["v"]
    assert isinstance(v, h5forge.UnknownObject) and list(v.state) == [0, 1, 2]
    assert list(v.attrs["dims"]) == ["t"] and v.attrs["units"] == "s"
    h5forge.dump(out, tmp_path / "again.h5")
    monkeypatch.undo()
    xr.testing.assert_identical(h5forge.load(tmp_path / "again.h5"), dataset())


class MyArray(xr.DataArray):
    __slots__ = ()


def test_unknown_subclasses_are_refused_not_reduced(tmp_path):
    with pytest.raises(CodecError, match="subclass of xarray.DataArray"):
        h5forge.dump({"x": MyArray([1, 2], dims="x")}, tmp_path / "x.h5")
