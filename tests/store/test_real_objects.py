"""Objects scientists hold that are neither builtins nor user classes: numpy dtypes,
StringDType with missing values, scipy.sparse matrices, dateutil time zones, lazy loads
inside objects. Real objects of the real libraries, real files."""

from __future__ import annotations

import datetime as dt
import sys
import warnings

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.errors import CodecError, CorruptFileError

sp = pytest.importorskip("scipy.sparse")
dateutil_tz = pytest.importorskip("dateutil.tz")
import dateutil.parser  # noqa: E402
import pandas as pd  # noqa: E402

SD = np.dtypes.StringDType


def roundtrip(obj, tmp_path, **kwargs):
    path = tmp_path / "r.h5"
    h5forge.dump(obj, path)
    return h5forge.load(path, **kwargs)


# -- numpy dtypes ---------------------------------------------------------------------------------
DTYPES = [np.dtype("f4"), np.dtype(">i8"), np.dtype("M8[ns]"), np.dtype("m8[s]"), np.dtype("O"),
          np.dtype("U5"), np.dtype("S3"), np.dtype("V7"), np.dtype("?"), np.dtype("c16"),
          np.dtype([("a", "f4"), ("b", "S3", (2,))]), np.dtype(("f4", (2, 3))),
          np.dtype({"names": ["a", "b"], "formats": ["u1", "f8"], "offsets": [0, 8],
                    "itemsize": 16}, align=True),
          np.dtype([("outer", [("inner", "<i2")])]), SD(), SD(na_object=None, coerce=False)]


def test_dtype_objects_round_trip_with_their_class(tmp_path):
    out = roundtrip({"dtypes": DTYPES}, tmp_path)["dtypes"]
    for a, b in zip(DTYPES, out):
        assert a == b and type(a) is type(b), (a, b)
        assert a.isalignedstruct == b.isalignedstruct
    assert out[-1].na_object is None and out[-1].coerce is False


def test_dtype_is_text_readable_with_h5py(tmp_path):
    path = tmp_path / "r.h5"
    h5forge.dump({"d": np.dtype("<f8")}, path)
    with h5py.File(path) as f:
        assert f["d"].attrs["class"] == "numpy.dtype" and f["d"].asstr()[()] == "<f8"


def test_dtype_with_metadata_is_refused(tmp_path):
    with pytest.raises(CodecError, match="metadata"):
        h5forge.dump({"d": h5py.string_dtype()}, tmp_path / "r.h5")


@pytest.mark.parametrize("text", ['{"names": ["a"]}', '"zz9"', "[1, 2]", "{not json"])
def test_a_crafted_dtype_description_is_a_corrupt_file(text, tmp_path):
    path = tmp_path / "r.h5"
    h5forge.dump({"d": np.dtype([("a", "f4")])}, path)
    with h5py.File(path, "a") as f:
        del f["d"]
        d = f.create_dataset("d", data=text, dtype=h5py.string_dtype())
        d.attrs["class"] = "numpy.dtype"
        d.attrs["format"] = "json"
    with pytest.raises(CorruptFileError):
        h5forge.load(path)


# -- StringDType ----------------------------------------------------------------------------------
@pytest.mark.parametrize("na", [None, np.nan, "NA", pd.NA])
def test_string_dtype_with_missing_values_keeps_them(na, tmp_path):
    arr = np.array([["a", na], ["x\x00y", "ü"]], dtype=SD(na_object=na))
    out = roundtrip(arr, tmp_path)
    assert out.dtype == arr.dtype and out.shape == arr.shape
    assert [v is out.dtype.na_object for v in out.astype(object).ravel()] == \
        [False, True, False, False]
    assert out[0, 0] == "a" and out[1, 0] == "x\x00y" and out[1, 1] == "ü"


def test_string_dtype_missing_mask_is_plain_hdf5(tmp_path):
    path = tmp_path / "r.h5"
    h5forge.dump(np.array(["a", None, "c"], dtype=SD(na_object=None)), path)
    with h5py.File(path) as f:
        assert f.attrs["na_object"] == "None"
        assert list(f["missing"][()]) == [False, True, False]
        assert list(f["values"].asstr()[()]) == ["a", "", "c"]


def test_string_dtype_coerce_false_is_kept(tmp_path):
    out = roundtrip(np.array(["a"], dtype=SD(coerce=False)), tmp_path)
    assert out.dtype.coerce is False


def test_string_dtype_with_another_missing_object_is_a_clear_error(tmp_path):
    arr = np.array(["a"], dtype=SD(na_object=3.5))
    with pytest.raises(CodecError, match="missing-value object"):
        h5forge.dump({"a": arr}, tmp_path / "r.h5")


# -- lazy loading never reaches inside objects ----------------------------------------------------
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_lazy_arrays_only_where_the_user_gets_the_array(tmp_path):
    big = sp.random(1500, 1500, density=0.1, format="csr", random_state=0)
    matrix = np.matrix(np.ones((400, 400)))
    out = roundtrip({"sparse": big, "matrix": matrix, "plain": np.ones(200_000)}, tmp_path,
                    lazy=True)
    assert type(out["sparse"].data) is np.ndarray and (out["sparse"] * 2).nnz == big.nnz
    assert type(out["matrix"]) is np.matrix
    assert (out["matrix"] * out["matrix"])[0, 0] == 400.0  # a matrix product
    assert isinstance(out["plain"], h5forge.LazyArray)


# -- scipy.sparse ---------------------------------------------------------------------------------
DENSE = np.array([[0, 1.5, 0, 0], [2, 0, 0, 0], [0, 0, 3, 4]], dtype=np.float32)


@pytest.mark.parametrize("fmt", ["csr", "csc", "bsr", "coo", "dia", "lil", "dok"])
@pytest.mark.parametrize("kind", ["matrix", "array"])
def test_sparse_every_format_round_trips(fmt, kind, tmp_path):
    m = getattr(sp, f"{fmt}_{kind}")(DENSE)
    out = roundtrip({"m": m}, tmp_path)["m"]
    assert type(out) is type(m) and out.dtype == m.dtype and out.shape == m.shape
    assert np.array_equal(out.toarray(), DENSE)


@pytest.mark.parametrize("fmt", ["csr", "csc", "bsr", "coo", "dia"])
def test_sparse_layout_holds_what_save_npz_saves(fmt, tmp_path):
    m = getattr(sp, f"{fmt}_matrix")(DENSE)
    sp.save_npz(tmp_path / "m.npz", m, compressed=False)
    h5forge.dump(m, tmp_path / "m.h5")
    with np.load(tmp_path / "m.npz") as npz, h5py.File(tmp_path / "m.h5") as f:
        assert f.attrs["format"] == npz["format"].item().decode()
        assert list(f.attrs["shape"]) == list(npz["shape"])
        for part in set(npz.files) - {"format", "shape"}:
            assert np.array_equal(f[part][()], npz[part]), part


def test_dok_matrix_is_stored_not_refused_for_depth(tmp_path):
    m = sp.dok_matrix((5, 5), dtype=np.int64)
    m[1, 2], m[4, 0] = 7, -3
    out = roundtrip({"dok": m}, tmp_path)["dok"]
    assert type(out) is sp.dok_matrix and dict(out.items()) == dict(m.items())


def test_lil_matrix_with_dtype_state_round_trips(tmp_path):
    m = sp.lil_matrix((3, 3), dtype=np.complex64)
    m[0, 1] = 1 + 2j
    out = roundtrip(m, tmp_path)
    assert type(out) is sp.lil_matrix and out.dtype == np.complex64 and out[0, 1] == 1 + 2j


def test_without_scipy_sparse_arrays_stay(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    h5forge.dump({"m": sp.csr_matrix(DENSE)}, path)
    for name in list(sys.modules):
        if name.split(".")[0] == "scipy":
            monkeypatch.setitem(sys.modules, name, None)
    with pytest.warns(h5forge.UnknownClassWarning, match="scipy cannot be imported"):
        out = h5forge.load(path)
    assert np.array_equal(out["m"].state["data"], [1.5, 2, 3, 4])


def test_sparse_files_of_the_object_layout_still_load(tmp_path):
    """csr matrices were stored as plain objects before the sparse codec."""
    path = tmp_path / "old.h5"
    m = sp.csr_matrix(DENSE)
    with h5py.File(path, "w") as f:
        h5forge.dump({"_shape": (3, 4), "maxprint": 50, "data": m.data, "indices": m.indices,
                      "indptr": m.indptr}, f, "instance_attributes")
        del f["instance_attributes"].attrs["h5forge_format"]
        f.attrs["h5forge_format"] = "1"
        f.attrs["class"] = "scipy.sparse._csr.csr_matrix"
    out = h5forge.load(path)
    assert type(out) is sp.csr_matrix and np.array_equal(out.toarray(), DENSE)


# -- dateutil time zones --------------------------------------------------------------------------
TZ_VALUES = [
    dateutil.parser.parse("2024-01-01T00:00:00+02:00"),
    dt.datetime(2024, 7, 1, 12, tzinfo=dateutil_tz.gettz("Europe/Berlin")),
    dt.datetime(2024, 1, 1, tzinfo=dateutil_tz.tzutc()),
    dt.datetime(2024, 1, 1, tzinfo=dateutil_tz.tzoffset("EST", -18000)),
    dt.datetime(2024, 1, 1, tzinfo=dateutil_tz.tzlocal()),
    dt.time(1, 2, tzinfo=dateutil_tz.tzutc()),
]


def test_dateutil_zones_round_trip_with_their_class(tmp_path):
    out = roundtrip(TZ_VALUES, tmp_path)
    for a, b in zip(TZ_VALUES, out):
        assert a == b and type(a.tzinfo) is type(b.tzinfo) and a.tzinfo == b.tzinfo
    assert out[3].tzname() == "EST"


def test_dateutil_zone_key_is_readable_text(tmp_path):
    path = tmp_path / "r.h5"
    h5forge.dump({"t": TZ_VALUES[1]}, path)
    with h5py.File(path) as f:
        assert f["t"].attrs["tz"] == "dateutil/Europe/Berlin"
        assert f["t"].asstr()[()] == "2024-07-01T12:00:00+02:00"


def test_pandas_dateutil_zones_round_trip(tmp_path):
    s = pd.Series(pd.date_range("2024-03-30", periods=3, tz="dateutil/Europe/Berlin"))
    obj = {"ts": pd.Timestamp("2024-03-31 01:30", tz="dateutil/Europe/Berlin"), "s": s,
           "df": pd.DataFrame({"t": s})}
    out = roundtrip(obj, tmp_path)
    assert out["ts"] == obj["ts"] and out["ts"].tz is obj["ts"].tz
    pd.testing.assert_series_equal(out["s"], s)
    pd.testing.assert_frame_equal(out["df"], obj["df"])


def test_dateutil_zones_that_cannot_be_named_are_refused(tmp_path):
    value = dt.datetime(2024, 1, 1, tzinfo=dateutil_tz.tzstr("EST5EDT"))
    with pytest.raises(CodecError, match="cannot be named"):
        h5forge.dump({"t": value}, tmp_path / "r.h5")


def test_without_dateutil_zones_load_as_zoneinfo_with_a_warning(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    h5forge.dump(TZ_VALUES[:4], path)
    for name in list(sys.modules):
        if name.split(".")[0] == "dateutil":
            monkeypatch.setitem(sys.modules, name, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = h5forge.load(path)
    assert any("dateutil cannot be imported" in str(w.message) for w in caught)
    assert out == TZ_VALUES[:4]
    assert out[1].tzinfo.key == "Europe/Berlin"


def test_a_crafted_dateutil_key_is_a_corrupt_file(tmp_path):
    path = tmp_path / "r.h5"
    h5forge.dump({"t": TZ_VALUES[1]}, path)
    with h5py.File(path, "a") as f:
        f["t"].attrs["tz"] = "dateutil/../../etc/passwd"
    with pytest.raises(CorruptFileError, match="time zone"):
        h5forge.load(path)
