"""Physical quantities (``quantities`` and ``pint``) round-trip with their units; the files are
plain HDF5 (magnitude dataset + ``units`` text); a missing library or an undefined unit loads the
magnitude with a warning naming the unit; crafted unit texts fail as ``CorruptFileError``."""

from __future__ import annotations

import decimal
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

import h5forge
from h5forge import UnknownClassWarning
from h5forge.errors import CodecError, CorruptFileError

pq = pytest.importorskip("quantities")
pint = pytest.importorskip("pint")

APP = pint.get_application_registry()


def roundtrip(obj, tmp_path, **load_kwargs):
    path = tmp_path / "units.h5"
    h5forge.dump(obj, path, overwrite=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean round trip warns about nothing
        return h5forge.load(path, **load_kwargs)


def load_warned(path):
    """(loaded tree, messages of the UnknownClassWarnings raised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = h5forge.load(path)
    messages = [str(w.message) for w in caught if issubclass(w.category, UnknownClassWarning)]
    assert len(messages) == len(caught)
    return out, messages


def wrapped(obj, tmp_path, same):
    """Round-trip ``obj`` alone, inside a dict and inside a list, checking each with ``same``."""
    same(obj, roundtrip(obj, tmp_path))
    same(obj, roundtrip({"q": obj, "n": 1}, tmp_path)["q"])
    same(obj, roundtrip([obj, "x"], tmp_path)[0])


def same_pq(a, b):
    assert type(b) is type(a)
    assert b.dimensionality == a.dimensionality
    assert b.dimensionality.string == a.dimensionality.string
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(b.magnitude, a.magnitude)


def same_pint(a, b, registry=APP):
    assert type(b) is registry.Quantity
    assert format(b.units, "D") == format(a.units, "D")
    assert type(b.magnitude) is type(a.magnitude)
    assert np.asarray(b.magnitude).dtype == np.asarray(a.magnitude).dtype
    np.testing.assert_array_equal(np.asarray(b.magnitude), np.asarray(a.magnitude))


# -- quantities ------------------------------------------------------------------------------
QUANTITIES = [
    np.arange(5.0) * pq.mV / pq.ms,  # compound, kept as mV/ms (not simplified)
    3 * pq.m,  # scalar (0-d)
    pq.Quantity(np.arange(6, dtype="i2").reshape(2, 3), "s"),
    pq.Quantity(np.arange(4, dtype="f4"), pq.kg * pq.m / pq.s**2),
    pq.Quantity(np.array([1 + 2j, 3j]), pq.J / (pq.mol * pq.K)),
    pq.Quantity(np.asfortranarray(np.arange(6.0).reshape(2, 3)), "uV"),
    pq.Quantity(np.array([True, False]), "dimensionless"),
    pq.Quantity([1.0, 2.0], pq.m**0.5),
    pq.Quantity([1.0], 1 / pq.s),
    pq.Quantity([20.0], pq.degC),
    pq.Quantity([5.0], pq.percent),  # text "%"
    pq.Quantity([1, 2], pq.attosecond),  # symbol "as" is a Python keyword: stored by name
    pq.Quantity(2.0, pq.statampere),  # symbol "(esu/s)" does not read back: stored by name
    pq.Quantity(np.zeros((0, 2)), "Hz"),
]


@pytest.mark.parametrize("q", QUANTITIES, ids=lambda q: q.dimensionality.string)
def test_quantities_roundtrip(q, tmp_path):
    wrapped(q, tmp_path, same_pq)


def test_uncertain_quantity(tmp_path):
    q = pq.UncertainQuantity([1.0, 2.0, 3.0], pq.mV, [0.1, 0.2, 0.3])
    out = roundtrip({"u": q}, tmp_path)["u"]
    assert type(out) is pq.UncertainQuantity
    same_pq(q.view(pq.Quantity), out.view(pq.Quantity))
    same_pq(q.uncertainty, out.uncertainty)


def test_quantities_file_is_plain_hdf5(tmp_path):
    path = tmp_path / "plain.h5"
    h5forge.dump({"trace": pq.Quantity(np.arange(4, dtype="f4"), "mV/ms")}, path)
    with h5py.File(path, "r") as f:
        ds = f["trace"]
        assert isinstance(ds, h5py.Dataset) and ds.dtype == np.float32
        assert ds.attrs["class"] == "quantities.Quantity"
        assert ds.attrs["units"] == "mV/ms"
        np.testing.assert_array_equal(ds[()], np.arange(4))


def test_quantities_shared_loaded_once(tmp_path):
    q = np.arange(3.0) * pq.mV
    out = roundtrip({"a": q, "b": [q]}, tmp_path)
    assert out["a"] is out["b"][0]


def test_quantities_lazy_load_is_a_quantity(tmp_path):
    q = np.zeros(200_000) * pq.V  # above the lazy threshold
    out = roundtrip({"q": q}, tmp_path, lazy=True)["q"]
    same_pq(q, out)


def test_quantities_refusals(tmp_path):
    class MyQuantity(pq.Quantity):
        pass

    for obj, match in [(pq.mV, "is a unit"), (MyQuantity([1.0], "m"), "subclass"),
                       (pq.Quantity(np.array([None]), "m"), "magnitude")]:
        with pytest.raises(CodecError, match=match):
            h5forge.dump({"x": obj}, tmp_path / "no.h5", overwrite=True)


def test_quantities_unimportable(tmp_path, monkeypatch):
    path = tmp_path / "q.h5"
    h5forge.dump({"v": np.arange(3.0) * pq.mV / pq.ms,
                  "u": pq.UncertainQuantity([1.0], pq.s, [0.5])}, path)
    monkeypatch.setitem(sys.modules, "quantities", None)
    out, messages = load_warned(path)
    assert type(out["v"]) is np.ndarray
    np.testing.assert_array_equal(out["v"], [0.0, 1.0, 2.0])
    assert type(out["u"]) is dict and list(out["u"]["uncertainty"]) == [0.5]
    assert len(messages) == 3 and all("quantities cannot be imported" in m for m in messages)
    assert any("/v" in m and "'mV/ms'" in m for m in messages)
    assert sum("/u/" in m and "'s'" in m for m in messages) == 2


def test_quantities_undefined_unit(tmp_path):
    path = tmp_path / "q.h5"
    h5forge.dump({"v": np.arange(3.0) * pq.m}, path)
    with h5py.File(path, "r+") as f:
        f["v"].attrs["units"] = "m*h5forge_no_such_unit**2"
    with pytest.warns(UnknownClassWarning, match="h5forge_no_such_unit"):
        out = h5forge.load(path)
    np.testing.assert_array_equal(out["v"], [0.0, 1.0, 2.0])


# -- pint ------------------------------------------------------------------------------------
PINTS = [
    APP.Quantity(3.0, "m"), APP.Quantity(5, "meter / second ** 2"), APP.Quantity(1j, ""),
    APP.Quantity(np.float32(2.5), "degC"), APP.Quantity(np.int16(-4), "mV/ms"),
    APP.Quantity(np.bool_(True), "count"), APP.Quantity(np.arange(6).reshape(2, 3), "kg"),
    APP.Quantity(np.array(2.0), "ohm"), APP.Quantity(np.arange(3.0, dtype="f4"), "m**0.5"),
    APP.Quantity(np.array([1 + 1j]), "1/s"), APP.Quantity(np.zeros((0,)), "delta_degC"),
    APP.Quantity(np.asfortranarray(np.ones((2, 3))), "J / (mol * K)"),
    APP.Quantity(2.0, APP.parse_units("degC/s", as_delta=False)),  # not read as delta_degC/s
]


@pytest.mark.parametrize("q", PINTS, ids=lambda q: f"{type(q.magnitude).__name__}-{q.units}")
def test_pint_roundtrip(q, tmp_path):
    wrapped(q, tmp_path, same_pint)


def test_pint_file_is_plain_hdf5(tmp_path):
    path = tmp_path / "plain.h5"
    h5forge.dump({"a": APP.Quantity(np.arange(3), "m/s**2"), "s": APP.Quantity(1.5, "ms")}, path)
    with h5py.File(path, "r") as f:
        assert f["a"].attrs["units"] == "meter / second ** 2"
        assert f["a"].attrs["class"] == "pint.Quantity" and f["a"].dtype == np.int64
        assert f["s"].shape == () and f["s"][()] == 1.5
        assert f["s"].attrs["units"] == "millisecond" and f["s"].attrs["magnitude_class"] == "float"


def test_pint_shared_loaded_once(tmp_path):
    q = APP.Quantity(np.arange(3.0), "mV")
    out = roundtrip([q, {"again": q}], tmp_path)
    assert out[0] is out[1]["again"]


@pytest.fixture(scope="module")
def custom_registry():
    ureg = pint.UnitRegistry()
    ureg.define("smoot = 1.7018 m")
    return ureg


def test_pint_custom_registry_loads_in_application_registry(tmp_path, custom_registry):
    q = custom_registry.Quantity(np.arange(3.0), "mV/ms")
    out = roundtrip({"q": q, "s": custom_registry.Quantity(2, "kilometer")}, tmp_path)
    same_pint(q, out["q"])
    assert type(out["s"]) is APP.Quantity and out["s"] == APP.Quantity(2, "km")
    assert (out["q"] == APP.Quantity(np.arange(3.0), "mV/ms")).all()


def test_pint_unit_only_in_custom_registry(tmp_path, custom_registry):
    path = tmp_path / "smoot.h5"
    h5forge.dump({"bridge": custom_registry.Quantity(364.4, "smoot")}, path)
    with pytest.warns(UnknownClassWarning, match="smoot.*set_application_registry"):
        out = h5forge.load(path)
    assert out["bridge"] == 364.4 and type(out["bridge"]) is float
    previous = APP.get()
    pint.set_application_registry(custom_registry)
    try:
        out = roundtrip({"bridge": custom_registry.Quantity(364.4, "smoot")}, tmp_path)
        assert type(out["bridge"]) is custom_registry.Quantity
        assert out["bridge"] == custom_registry.Quantity(364.4, "smoot")
    finally:
        pint.set_application_registry(previous)


def test_pint_unimportable(tmp_path, monkeypatch):
    path = tmp_path / "p.h5"
    h5forge.dump({"a": APP.Quantity(np.arange(3.0), "m/s"), "s": APP.Quantity(np.float32(2), "s")},
                 path)
    monkeypatch.setitem(sys.modules, "pint", None)
    out, messages = load_warned(path)
    assert type(out["a"]) is np.ndarray and list(out["a"]) == [0.0, 1.0, 2.0]
    assert type(out["s"]) is np.float32 and out["s"] == 2
    assert len(messages) == 2 and all("pint cannot be imported" in m for m in messages)
    assert any("/a" in m and "'meter / second'" in m for m in messages)
    assert any("/s" in m and "'second'" in m for m in messages)


def test_pint_refusals(tmp_path):
    for obj, match in [(APP.meter, "a pint unit"), (APP.Quantity(decimal.Decimal("1.5"), "m"),
                                                    "Decimal"),
                       (APP.Quantity(2**70, "m"), "64-bit")]:
        with pytest.raises(CodecError, match=match):
            h5forge.dump({"x": obj}, tmp_path / "no.h5", overwrite=True)


# -- crafted files -----------------------------------------------------------------------------
def craft(tmp_path, class_name, data=None, **attrs):
    path = tmp_path / "crafted.h5"
    data = np.arange(3.0) if data is None else data
    with h5py.File(path, "w") as f:
        f.attrs["class"], f.attrs["keys"] = "dict", ["victim"]
        ds = f.create_dataset("victim", data=data)
        ds.attrs["class"] = class_name
        for key, value in attrs.items():
            ds.attrs[key] = value
    return path


BAD_UNITS = ["", "m/(s", "__import__('os').system('touch pwned')", "m.__class__", "10**10**10",
             "m**(2**2**40)", "m[0]", "m()", "2*m", "3 meter", "m ** x", "(" * 50 + "m" + ")" * 50,
             "m" * 2000]


@pytest.mark.parametrize("class_name", ["quantities.Quantity", "pint.Quantity"])
@pytest.mark.parametrize("units", BAD_UNITS, ids=range(len(BAD_UNITS)))
def test_bad_unit_text(class_name, units, tmp_path):
    path = craft(tmp_path, class_name, units=units)
    with pytest.raises(CorruptFileError, match="/victim"):
        h5forge.load(path)


@pytest.mark.parametrize("class_name", ["quantities.Quantity", "pint.Quantity"])
def test_bad_quantity_nodes(class_name, tmp_path):
    for kwargs in [{}, {"units": 3}]:  # missing or non-text units
        with pytest.raises(CorruptFileError, match="units"):
            h5forge.load(craft(tmp_path, class_name, **kwargs))
    path = tmp_path / "group.h5"
    with h5py.File(path, "w") as f:
        f.attrs["class"], f.attrs["units"] = class_name, "m"
    with pytest.raises(CorruptFileError, match="needs a dataset"):
        h5forge.load(path)


def test_bad_pint_magnitude_class(tmp_path):
    for data, name in [(np.arange(3.0), "float"), (np.float64(1.0), "int"),
                       (np.float64(1.0), "numpy.int8"), (np.float64(1.0), "os.system")]:
        path = craft(tmp_path, "pint.Quantity", data=data, units="m", magnitude_class=name)
        with pytest.raises(CorruptFileError, match="magnitude_class"):
            h5forge.load(path)


def test_bad_uncertain_quantity(tmp_path):
    path = tmp_path / "u.h5"
    h5forge.dump({"u": pq.UncertainQuantity([1.0, 2.0], pq.m, [0.1, 0.2])}, path)
    with h5py.File(path, "r+") as f:
        del f["u/uncertainty"]
        f["u/uncertainty"] = np.zeros(3)
        f["u/uncertainty"].attrs.update({"class": "quantities.Quantity", "units": "m"})
    with pytest.raises(CorruptFileError, match="shape"):
        h5forge.load(path)
    with h5py.File(path, "r+") as f:
        f["u/uncertainty"].attrs["class"] = "numpy.ndarray"
    with pytest.raises(CorruptFileError, match="uncertainty: class 'quantities.Quantity'"):
        h5forge.load(path)


def test_libraries_not_imported_by_h5forge(tmp_path):
    code = ("import sys, h5forge, numpy; h5forge.dump({'a': numpy.arange(2)}, sys.argv[1]); "
            "h5forge.load(sys.argv[1]); print(sorted({'quantities', 'pint'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.h5")],
                         capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "[]", out.stderr
