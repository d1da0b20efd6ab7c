"""Store the objects an analysis really holds - astropy quantities, times and tables, an
xarray Dataset with coordinates and attributes, a scipy sparse matrix, a dateutil-zoned
timestamp, numpy dtypes - as plain HDF5 that h5py reads without any of those libraries, and
that still loads (arrays intact) when astropy or xarray are missing.

Run with ``python examples/observation_record.py [OUT.h5]``.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import astropy.units as u
import dateutil.parser
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr
from astropy.table import QTable
from astropy.time import Time

import h5forge


def make_record(rng: np.random.Generator) -> dict:
    exposures = QTable({
        "start": Time(["2024-05-01T22:10:00", "2024-05-01T22:20:00", "2024-05-01T22:30:00"],
                      scale="utc"),
        "exptime": [300.0, 300.0, 600.0] * u.s,
        "airmass": [1.21, 1.18, 1.16],
    }, meta={"telescope": "T80", "filter": "r"})
    cube = xr.Dataset(
        {"flux": (("time", "wavelength"), rng.random((3, 50)), {"units": "erg / (s cm2 AA)"})},
        coords={"time": pd.date_range("2024-05-01T22:10", periods=3, freq="10min"),
                "wavelength": ("wavelength", np.linspace(5500, 5600, 50), {"units": "AA"})},
        attrs={"object": "NGC 4151"})
    return {
        "exposures": exposures,
        "cube": cube,
        "distance": 15.8 * u.Mpc,
        "masks": sp.random(50, 50, density=0.05, format="csr", random_state=1),
        "logged_at": dateutil.parser.parse("2024-05-01T22:41:07+02:00"),
        "pixel_dtype": np.dtype([("adu", "<u2"), ("flag", "u1")]),
    }


def main(out: Path) -> None:
    record = make_record(np.random.default_rng(0))
    h5forge.dump(record, out, overwrite=True)

    with h5py.File(out, "r") as f:  # no astropy or xarray needed to read the numbers
        flux = f["cube/data_vars/flux"]
        print(f"h5py: cube flux {flux.shape}, dims {list(flux.attrs['dims'])}, "
              f"units {flux.attrs['units']!r}")
        print(f"h5py: distance = {f['distance'][()]} {f['distance'].attrs['unit']}")
        start = f["exposures/columns/start"]
        print(f"h5py: exposure start jd1+jd2 = {start['jd1'][0] + start['jd2'][0]:.6f} "
              f"({start.attrs['scale']})")

    loaded = h5forge.load(out)
    assert loaded["distance"].unit == u.Mpc and loaded["distance"].to(u.km).unit == u.km
    xr.testing.assert_identical(loaded["cube"], record["cube"])
    assert (loaded["masks"] != record["masks"]).nnz == 0
    assert loaded["logged_at"] == record["logged_at"]
    print(f"loaded: distance {loaded['distance'].to(u.lyr):.4g}; exposures "
          f"{loaded['exposures'].colnames}, first start {loaded['exposures']['start'][0].iso}")

    # Without astropy and xarray (here: hidden from the import system), the record still
    # loads: UnknownObjects with the arrays and their units/dims, and one warning per library.
    hidden = {name: sys.modules.pop(name) for name in list(sys.modules)
              if name.split(".")[0] in ("astropy", "xarray")}
    sys.modules.update({"astropy": None, "xarray": None})
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            bare = h5forge.load(out)
        distance = bare["distance"]
        print(f"without astropy/xarray: {distance!r} = {distance.state} "
              f"{distance.attrs['unit']}; {len(caught)} warnings")
    finally:
        del sys.modules["astropy"], sys.modules["xarray"]
        sys.modules.update(hidden)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "observation.h5")
