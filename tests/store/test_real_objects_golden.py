"""The golden file of the layouts for astropy, xarray, scipy.sparse, numpy dtypes, StringDType,
dateutil zones and the reduce rule: it must load forever to the objects its script builds."""

from __future__ import annotations

import sys
import warnings

import h5py
import numpy as np
import pytest

import h5forge

pytest.importorskip("astropy")
pytest.importorskip("xarray")
pytest.importorskip("scipy.sparse")
from tests.data.make_real_objects_golden import GOLDEN, Reading, make_objects  # noqa: E402


def test_golden_file_loads_to_the_objects_the_script_builds():
    import xarray as xr

    expected = make_objects()
    out = h5forge.load(GOLDEN)
    a, b = expected["astropy"], out["astropy"]
    for key in ("distance", "scalar", "angle", "longitude"):
        assert type(b[key]) is type(a[key]) and b[key].unit == a[key].unit, key
        assert np.array_equal(b[key].value, a[key].value), key
    assert b["longitude"].wrap_angle == a["longitude"].wrap_angle
    assert b["unit"] == a["unit"]
    for key in ("time", "masked_time", "delta"):
        assert type(b[key]) is type(a[key]) and b[key].format == a[key].format, key
        assert np.array_equal(b[key].jd1, a[key].jd1) and np.array_equal(b[key].jd2, a[key].jd2)
    assert list(b["masked_time"].mask) == [False, True]
    assert b["table"].meta == a["table"].meta and b["table"]["flux"].unit == a["table"]["flux"].unit
    assert b["table"]["flux"].description == "peak flux"
    assert all(np.array_equal(b["table"][c], a["table"][c]) for c in a["table"].colnames)
    assert b["qtable"]["d"].unit == a["qtable"]["d"].unit
    assert np.all(b["qtable"]["when"] == a["qtable"]["when"])
    assert list(b["qtable"]["flag"].mask) == [False, True]
    for key in ("data_array", "dataset"):
        xr.testing.assert_identical(out["xarray"][key], expected["xarray"][key])
    for key, m in expected["scipy"].items():
        assert type(out["scipy"][key]) is type(m) and out["scipy"][key].dtype == m.dtype
        assert np.array_equal(out["scipy"][key].toarray(), m.toarray())
    assert out["numpy"]["dtypes"] == expected["numpy"]["dtypes"]
    strings = out["numpy"]["strings"]
    assert strings.dtype == expected["numpy"]["strings"].dtype and strings[1] is None
    s, e = out["stdlib"], expected["stdlib"]
    for key in ("berlin", "offset", "pandas_tz"):
        assert s[key] == e[key] and type(s[key].tzinfo) is type(e[key].tzinfo), key
    assert s["namespace"] == e["namespace"] and s["reading"] == Reading("ch1", [0.5, 0.25])
    assert GOLDEN.stat().st_size < 200_000


def test_golden_file_is_plain_hdf5():
    with h5py.File(GOLDEN) as f:
        q = f["astropy/distance"]
        assert q.attrs["class"] == "astropy.units.Quantity" and q.attrs["unit"] == "km / s"
        t = f["astropy/time"]
        assert t.attrs["scale"] == "utc" and t.attrs["format"] == "isot"
        assert t["jd1"].dtype == np.float64
        assert f["astropy/table/columns/flux"].attrs["unit"] == "Jy"
        v = f["xarray/dataset/data_vars/v"]
        assert list(v.attrs["dims"]) == ["t"] and v.attrs["units"] == "s"
        assert f["scipy/csr"].attrs["format"] == "csr"
        assert list(f["scipy/csr/indptr"][()]) == [0, 1, 2]
        assert f["numpy/dtypes/0"].asstr()[()] == "<f8"
        assert f["stdlib/berlin"].attrs["tz"] == "dateutil/Europe/Berlin"
        assert f["stdlib/reading"].attrs["construct"] == "new"


def test_golden_file_loads_without_astropy_xarray_and_scipy(monkeypatch):
    for name in list(sys.modules):
        if name.split(".")[0] in ("astropy", "xarray", "scipy"):
            monkeypatch.setitem(sys.modules, name, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = h5forge.load(GOLDEN)
    messages = " ".join(str(w.message) for w in caught)
    for lib in ("astropy", "xarray", "scipy"):
        assert f"{lib} cannot be imported" in messages
    q = out["astropy"]["distance"]
    assert isinstance(q, h5forge.UnknownObject) and q.attrs["unit"] == "km / s"
    assert np.array_equal(q.state, [1.0, 2.5, 4.0])
    v = out["xarray"]["dataset"].state["data_vars"]["v"]
    assert list(v.state) == [0, 1, 2] and list(v.attrs["dims"]) == ["t"]
    assert np.array_equal(out["scipy"]["csr"].state["data"], [1.5, 2.0])
    assert out["stdlib"]["namespace"].gain == 2.5  # not an optional library
