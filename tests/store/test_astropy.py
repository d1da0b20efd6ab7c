"""astropy objects through the store: real units (not look-alikes), exact times, tables,
plain layouts readable with h5py, and loading without astropy."""

from __future__ import annotations

import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.errors import CodecError

u = pytest.importorskip("astropy.units")
from astropy.coordinates import Angle, Distance, Latitude, Longitude  # noqa: E402
from astropy.table import Column, MaskedColumn, QTable, Table  # noqa: E402
from astropy.time import Time, TimeDelta  # noqa: E402


def roundtrip(obj, tmp_path, **kwargs):
    path = tmp_path / "a.h5"
    h5forge.dump(obj, path)
    return h5forge.load(path, **kwargs)


def test_quantity_loads_with_the_real_unit(tmp_path):
    out = roundtrip({"q": 7 * u.m, "v": np.arange(3.0) * u.km / u.s**2}, tmp_path)
    assert out["q"].unit == u.m and out["q"].unit is u.m
    assert out["q"].to(u.cm).value == 700.0
    assert out["v"].unit == u.km / u.s**2
    assert np.array_equal(out["v"].to_value(u.m / u.s**2), [0.0, 1000.0, 2000.0])


@pytest.mark.parametrize("q", [
    Angle([1.5, 2.0], u.deg),
    Latitude(-30 * u.deg),
    Longitude([350, 10] * u.deg, wrap_angle=180 * u.deg),
    Distance(3, u.pc),
    u.Magnitude(np.array([1.0, 2.5])),
    u.Quantity(np.arange(4, dtype=np.int32), u.s, dtype=np.int32),
    np.float32(2.5) * u.Unit(1000 * u.m),
    3.0 * u.dimensionless_unscaled,
    np.asfortranarray(np.arange(6.0).reshape(2, 3)) * u.mJy,
])
def test_quantity_subclasses_keep_class_unit_dtype_and_state(q, tmp_path):
    out = roundtrip(q, tmp_path)
    assert type(out) is type(q)
    assert out.unit == q.unit and out.dtype == q.dtype
    assert np.array_equal(out.value, q.value)
    if isinstance(q, Longitude):
        assert out.wrap_angle == q.wrap_angle


def test_quantity_layout_is_plain_hdf5(tmp_path):
    path = tmp_path / "a.h5"
    h5forge.dump({"q": np.arange(3.0) * u.km / u.s, "a": Angle(1, u.deg), "unit": u.erg}, path)
    with h5py.File(path) as f:
        assert f["q"].attrs["class"] == "astropy.units.Quantity"
        assert f["q"].attrs["unit"] == "km / s"
        assert np.array_equal(f["q"][()], [0.0, 1.0, 2.0])
        assert f["a"].attrs["class"] == "astropy.coordinates.Angle"
        assert f["unit"].attrs["class"] == "astropy.units.Unit"
        assert f["unit"].asstr()[()] == "erg"


def test_units_alone_round_trip(tmp_path):
    units = [u.m, u.km / u.s, u.deg_C, u.dex(u.cm / u.s**2), u.mag, u.dimensionless_unscaled]
    out = roundtrip(units, tmp_path)
    assert out == units


def test_a_unit_astropy_cannot_read_back_is_refused(tmp_path):
    odd = u.def_unit("h5forge_test_unit_that_is_not_registered", 3 * u.m)
    with pytest.raises(CodecError, match="does not read back"):
        h5forge.dump({"x": 2 * odd}, tmp_path / "a.h5")


@pytest.mark.parametrize("t", [
    Time(["2024-01-01T00:00:00", "2024-06-01T12:34:56.123456789"], scale="utc"),
    Time(2460000.123456789, 1e-9, format="jd", scale="tdb"),
    Time("2024-01-01", scale="tai", precision=6, out_subfmt="date"),
    Time(np.datetime64("2020-02-29T01:02:03.5"), scale="utc"),
    TimeDelta([1.5, 2.25], format="jd"),
    TimeDelta(30.0 * u.s, format="sec", scale="tai"),
])
def test_time_round_trips_exactly(t, tmp_path):
    out = roundtrip(t, tmp_path)
    assert type(out) is type(t)
    assert (out.scale, out.format, out.precision, out.out_subfmt) == \
        (t.scale, t.format, t.precision, t.out_subfmt)
    assert np.array_equal(out.jd1, t.jd1) and np.array_equal(out.jd2, t.jd2)
    assert np.all(out.value == t.value)


def test_masked_time_keeps_its_mask(tmp_path):
    t = Time(["2024-01-01", "2024-01-02", "2024-01-03"], scale="utc")
    t[1] = np.ma.masked
    out = roundtrip(t, tmp_path)
    assert out.masked and list(out.mask) == [False, True, False]
    assert out[0] == t[0] and out[2] == t[2]


def test_time_layout_is_plain_hdf5(tmp_path):
    path = tmp_path / "a.h5"
    t = Time(["2024-01-01T00:00:00"], scale="utc")
    h5forge.dump(t, path)
    with h5py.File(path) as f:
        assert f.attrs["class"] == "astropy.time.Time"
        assert f.attrs["scale"] == "utc" and f.attrs["format"] == "isot"
        assert f["jd1"][()] + f["jd2"][()] == pytest.approx(t.jd)


def test_time_with_a_location_is_refused(tmp_path):
    from astropy.coordinates import EarthLocation

    t = Time("2024-01-01", location=EarthLocation.from_geodetic(0, 51.5))
    with pytest.raises(CodecError, match="location"):
        h5forge.dump(t, tmp_path / "a.h5")


def test_table_and_qtable_round_trip(tmp_path):
    t = Table({"a": [1, 2, 3], "b": [1.5, 2.5, 3.5], "name": ["x", "y", "z"]},
              meta={"observer": "me", "n": 3})
    t["b"].unit = u.s
    t["b"].description = "exposure"
    t["a"].format = "{:03d}"
    q = QTable({"d": [1.0, 2.0] * u.pc, "when": Time(["2024-01-01", "2024-01-02"])})
    m = Table({"v": MaskedColumn([1.0, 2.0, 3.0], mask=[False, True, False], fill_value=-1)})
    out = roundtrip({"t": t, "q": q, "m": m}, tmp_path)
    assert type(out["t"]) is Table and out["t"].colnames == ["a", "b", "name"]
    assert out["t"].meta == t.meta and out["t"]["b"].unit == u.s
    assert out["t"]["b"].description == "exposure" and out["t"]["a"].format == "{:03d}"
    assert np.array_equal(out["t"]["name"], t["name"])
    assert all(np.array_equal(out["t"][c], t[c]) for c in t.colnames)
    assert type(out["q"]) is QTable and out["q"]["d"].unit == u.pc
    assert isinstance(out["q"]["when"], Time) and np.all(out["q"]["when"] == q["when"])
    assert list(out["m"]["v"].mask) == [False, True, False] and out["m"]["v"].fill_value == -1
    assert type(out["m"]["v"]) is MaskedColumn


def test_table_columns_are_datasets_readable_with_h5py(tmp_path):
    path = tmp_path / "a.h5"
    t = Table({"flux": [1.0, 2.0]})
    t["flux"].unit = u.Jy
    h5forge.dump(t, path)
    with h5py.File(path) as f:
        assert f.attrs["class"] == "astropy.table.Table"
        assert f["columns/flux"].attrs["class"] == "astropy.table.Column"
        assert f["columns/flux"].attrs["unit"] == "Jy"
        assert list(f["columns/flux"][()]) == [1.0, 2.0]


def test_table_with_indices_or_column_meta_is_refused(tmp_path):
    t = Table({"a": [1, 2]})
    t.add_index("a")
    with pytest.raises(CodecError, match="indices"):
        h5forge.dump(t, tmp_path / "a.h5")
    c = Table({"a": Column([1, 2], meta={"k": 1})})
    with pytest.raises(CodecError, match="meta"):
        h5forge.dump(c, tmp_path / "b.h5")


def test_quantity_info_that_would_be_lost_is_refused(tmp_path):
    q = np.arange(3.0) * u.m
    q.info.description = "heights"
    with pytest.raises(CodecError, match="description"):
        h5forge.dump({"q": q}, tmp_path / "a.h5")


def test_lazy_load_gives_real_arrays_inside_astropy_objects(tmp_path):
    q = np.ones(300_000) * u.m
    out = roundtrip({"q": q}, tmp_path, lazy=True)
    assert type(out["q"]) is u.Quantity and (out["q"] * 2).sum() == 600_000 * u.m


def hide_astropy(monkeypatch):
    for name in list(sys.modules):
        if name.split(".")[0] == "astropy":
            monkeypatch.setitem(sys.modules, name, None)


def test_without_astropy_objects_load_as_unknown_objects_with_data(tmp_path, monkeypatch):
    path = tmp_path / "a.h5"
    t = Time(["2024-01-01"], scale="utc")
    h5forge.dump({"q": np.arange(3.0) * u.m, "t": t, "tab": Table({"a": [1, 2]}),
                  "unit": u.s}, path)
    hide_astropy(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = h5forge.load(path)
    assert len([w for w in caught if "astropy cannot be imported" in str(w.message)]) == 1
    assert isinstance(out["q"], h5forge.UnknownObject)
    assert np.array_equal(out["q"].state, [0.0, 1.0, 2.0]) and out["q"].attrs["unit"] == "m"
    assert np.array_equal(out["t"].state["jd1"], t.jd1)
    assert out["tab"].state["columns"]["a"].state.tolist() == [1, 2]
    h5forge.dump(out, tmp_path / "again.h5")
    monkeypatch.undo()
    again = h5forge.load(tmp_path / "again.h5")
    assert again["q"].unit is u.m and again["t"] == t and again["unit"] == u.s


def test_files_with_look_alike_units_load_the_real_unit(tmp_path):
    """Before the astropy codec, a quantity was stored as an ndarray subclass with its unit
    object's state; such a file now loads the real unit."""
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:
        f.attrs["class"] = "astropy.units.quantity.Quantity"
        f.attrs["h5forge_format"] = "1"
        d = f.create_dataset("data", data=np.array([7.0]))
        d.attrs["class"] = "numpy.ndarray"
        ia = f.create_group("instance_attributes")
        ia.attrs["class"] = "dict"
        ia.attrs["keys"] = ["_unit"]
        unit = ia.create_group("_unit")
        unit.attrs["class"] = "astropy.units.core.IrreducibleUnit"
        state = unit.create_group("instance_attributes")
        state.attrs["class"] = "dict"
        state.attrs["keys"] = ["_names"]
        state.attrs["_names"] = ["m", "meter"]
    out = h5forge.load(path)
    assert out.unit is u.m and out.to(u.cm).value[0] == 700.0


def test_importing_h5forge_does_not_import_astropy_xarray_scipy_dateutil():
    code = ("import sys, h5forge; "
            "bad = sorted({m.split('.')[0] for m in sys.modules} & "
            "{'astropy', 'xarray', 'scipy', 'dateutil', 'pandas'}); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


class MyTable(Table):
    pass


class MyTime(Time):
    pass


@pytest.mark.parametrize("obj", [MyTable({"a": [1]}), MyTime("2024-01-01")])
def test_unknown_subclasses_are_refused_not_reduced(obj, tmp_path):
    with pytest.raises(CodecError, match="subclass of astropy"):
        h5forge.dump({"x": obj}, tmp_path / "a.h5")
