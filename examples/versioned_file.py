"""Keep every state of a data file: stage changes, commit them as versions, read any version
back, branch, compare, and export one version as a plain HDF5 file.

The API is versioned-hdf5's (``VersionedFile``, ``stage_version``); only the import changes.
Chunks are stored once however many versions use them, and the file's root always holds the
current version as plain datasets, so h5py alone reads it at full speed.

Run with ``python examples/versioned_file.py [OUT_DIR]``.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

import h5forge
from h5forge.versions import VersionedFile


def main(out_dir: Path) -> None:
    path = out_dir / "calibration.h5"
    rng = np.random.default_rng(0)
    gains = rng.uniform(0.9, 1.1, (365, 1200))  # one row of channel gains per day

    with VersionedFile(path, "w") as vf:
        new_year = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
        with vf.stage_version("initial", timestamp=new_year) as g:
            g.create_dataset("gains", data=gains, chunks=(10, 100), fillvalue=1.0,
                             maxshape=(None, 1200))
            g["gains"].attrs["units"] = "V/V"
            g.create_group("runs")
        with vf.stage_version("fix-day-42") as g:  # a one-element correction
            g["gains"][42, 7] = 1.0
        with vf.stage_version("add-run") as g:  # a whole object tree, versioned too
            h5forge.dump({"operator": "A. Smith", "temperature_c": 21.5,
                          "offsets": np.zeros(4)}, g, "runs/run1")
        with vf.stage_version("experiment", prev_version="fix-day-42", make_current=False) as g:
            g["gains"].resize((400, 1200))  # a branch: grown, new rows are the fill value
        print("versions:", vf.versions, "current:", vf.current_version)
        print("day 42, channel 7 in 'initial':", round(vf["initial"]["gains"][42, 7], 4),
              "now:", vf[0]["gains"][42, 7])
        print("the branch:", vf["experiment"]["gains"].shape, "row 399:",
              vf["experiment"]["gains"][399, :3])
        print("version at 2024-06-01:", vf[dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)]
              .version)
        print("diff fix-day-42 -> add-run:", vf.diff("fix-day-42", "add-run")["added"])
        print("run1 as stored:", h5forge.load(vf["add-run"], "runs/run1"))
        vf.export("initial", out_dir / "initial.h5")

    with h5py.File(path, "r") as f:  # the current version, plain HDF5
        print("plain h5py sees:", sorted(k for k in f if not k.startswith("_")),
              f["gains"].shape, "stored chunks:",
              sum(f[f"_h5forge_versions/pools/{k}/hashes"].shape[0]
                  for k in f["_h5forge_versions/pools"]))
    print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB for {gains.nbytes / 1e6:.1f} MB of "
          f"data in 4 versions (current copy + one copy of each distinct chunk)")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
