"""Writes ``real_objects_v1.h5``: one small object of every layout added for the objects
scientists hold (format 1) - astropy quantities, units, times and tables, xarray variables,
data arrays and datasets, scipy.sparse matrices, numpy dtypes, StringDType with missing values,
dateutil time zones, SimpleNamespace and a class rebuilt by the reduce rule.

    python tests/data/make_real_objects_golden.py

Run once per format version (needs astropy, xarray, scipy, dateutil, pandas). The file is
committed; ``tests/store/test_real_objects_golden.py`` loads it and compares it with
:func:`make_objects`, so the data here must never change.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import types

import numpy as np

GOLDEN = pathlib.Path(__file__).resolve().parent / "real_objects_v1.h5"


class Reading:
    """A class whose ``__new__`` needs its arguments (stored by the reduce rule)."""

    def __new__(cls, channel, value):
        self = super().__new__(cls)
        self.channel, self.value = channel, value
        return self

    def __getnewargs__(self):
        return (self.channel, self.value)

    def __eq__(self, other):
        return type(other) is type(self) and (self.channel, self.value) == \
            (other.channel, other.value)


def make_objects() -> dict:
    import astropy.units as u
    import dateutil.tz
    import pandas as pd
    import scipy.sparse as sp
    import xarray as xr
    from astropy.coordinates import Angle, Longitude
    from astropy.table import MaskedColumn, QTable, Table
    from astropy.time import Time, TimeDelta

    table = Table({"id": [1, 2, 3], "flux": [0.5, 1.5, 2.5]}, meta={"telescope": "T1"})
    table["flux"].unit = u.Jy
    table["flux"].description = "peak flux"
    time = Time(["2024-05-01T10:00:00.123456789", "2024-05-02T11:30:00"], scale="utc",
                precision=9)
    masked_time = Time(["2024-01-01", "2024-01-02"], scale="tai")
    masked_time[1] = np.ma.masked
    return {
        "astropy": {
            "distance": np.array([1.0, 2.5, 4.0]) * u.km / u.s,
            "scalar": 7 * u.m,
            "angle": Angle([10.5, 20.25], u.deg),
            "longitude": Longitude([350.0, 10.0] * u.deg, wrap_angle=180 * u.deg),
            "unit": u.erg / u.s,
            "time": time,
            "masked_time": masked_time,
            "delta": TimeDelta([1.5, 2.0], format="jd"),
            "table": table,
            "qtable": QTable({"d": [1.0, 2.0] * u.pc, "when": time,
                              "flag": MaskedColumn([1, 2], mask=[False, True])}),
        },
        "xarray": {
            "data_array": xr.DataArray(
                np.arange(6.0).reshape(2, 3), dims=("x", "y"),
                coords={"x": [10, 20], "y": ["a", "b", "c"], "label": ("x", ["p", "q"])},
                attrs={"units": "K", "history": {"step": 1}}, name="temperature"),
            "dataset": xr.Dataset(
                {"v": (("t",), np.arange(3), {"units": "s"}), "w": ((), 5.5)},
                coords={"t": pd.date_range("2024-01-01", periods=3)},
                attrs={"title": "run 7"}),
        },
        "scipy": {
            "csr": sp.csr_matrix(np.array([[0, 1.5, 0], [2, 0, 0]])),
            "coo_array": sp.coo_array(np.array([[0, 1], [3, 0]], dtype=np.int32)),
            "dok": sp.dok_matrix(np.eye(3, dtype=np.float32)),
        },
        "numpy": {
            "dtypes": [np.dtype("<f8"), np.dtype([("a", "<i4"), ("b", "S2", (2,))]),
                       np.dtypes.StringDType(na_object=None)],
            "strings": np.array(["a", None, "c"], dtype=np.dtypes.StringDType(na_object=None)),
        },
        "stdlib": {
            "berlin": dt.datetime(2024, 7, 1, 12, 0, tzinfo=dateutil.tz.gettz("Europe/Berlin")),
            "offset": dt.datetime(2024, 1, 1, tzinfo=dateutil.tz.tzoffset("EST", -18000)),
            "pandas_tz": pd.Timestamp("2024-03-31 01:30", tz="dateutil/Europe/Berlin"),
            "namespace": types.SimpleNamespace(rig="rig3", gain=2.5),
            "reading": Reading("ch1", [0.5, 0.25]),
        },
    }


if __name__ == "__main__":  # pragma: no cover - run by hand once per format version
    import sys

    sys.path.insert(0, str(GOLDEN.parents[2]))  # Reading is stored as tests.data.make_...
    from tests.data.make_real_objects_golden import make_objects as make

    import h5forge

    h5forge.dump(make(), GOLDEN, overwrite=True)
    print("wrote", GOLDEN, GOLDEN.stat().st_size, "bytes")
