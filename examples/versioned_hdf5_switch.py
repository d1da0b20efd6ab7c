"""Switch from versioned-hdf5 by changing the import, version one group of a file that holds
other data, and see that h5forge refuses the writes it could not keep.

Run with ``python examples/versioned_hdf5_switch.py [OUT_DIR]``.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

# from versioned_hdf5 import VersionedHDF5File, delete_versions, modify_metadata
from h5forge.errors import VersionClosedError
from h5forge.versions.compat import VersionedHDF5File, delete_versions, modify_metadata

T0 = dt.datetime(2025, 1, 6, 9, 0, tzinfo=dt.timezone.utc)


def main(out_dir: Path) -> None:
    path = out_dir / "run.h5"
    with h5py.File(path, "w") as f:
        f["raw/adc"] = np.arange(1000, dtype="i2")  # plain data the versions must leave alone
        vf = VersionedHDF5File(f.create_group("calibration"))  # its own history in a group

        for day in range(3):
            with vf.stage_version(f"day{day}", timestamp=T0 + dt.timedelta(days=day)) as g:
                if "gains" not in g:
                    g.create_dataset("gains", data=np.ones(64), chunks=(16,))
                g["gains"][day * 8:(day + 1) * 8] = 1.0 + 0.01 * (day + 1)
                g.attrs["operator"] = ["ana", "ben", "chen"][day]

        print("versions:", vf.versions, "current:", vf.current_version)
        print("day1 prev_version:", vf["day1"].attrs["prev_version"],
              "timestamp:", vf["day1"].attrs["timestamp"])
        noon = T0 + dt.timedelta(days=1, hours=3)
        print("version in force at", noon.isoformat(), "->",
              vf[noon].attrs["operator"])
        for region, (old, new) in vf.get_diff("gains", "day0", "day1").items():
            print("changed chunk", region.raw, "max change", float(np.max(new - old)))

        # A write after the stage ended would be lost: it raises instead.
        with vf.stage_version("day3") as g:
            gains = g["gains"]
        try:
            gains[0] = 5.0
        except VersionClosedError as exc:
            print("refused:", str(exc).split(";")[0])

        modify_metadata(vf, "gains", dtype="f4", compression="gzip", compression_opts=4)
        delete_versions(vf, ["day0"])
        print("after delete:", vf.versions, "gains dtype:", vf["day3"]["gains"].dtype)
        assert np.array_equal(f["raw/adc"][()], np.arange(1000, dtype="i2"))
        vf.close()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
