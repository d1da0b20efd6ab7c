"""Bring a versioned-hdf5 file into h5forge with its whole history, then give back the disk
space of the versions you delete.

* ``import_versioned_hdf5`` (``h5forge versions import OLD.h5 NEW.h5``) commits every version
  of the versioned-hdf5 file again: names, timestamps, branches, the current version, data and
  attributes. The import part needs versioned-hdf5 (``pip install "h5forge[versioned-hdf5]"``)
  and is skipped without it.
* ``delete_versions`` frees the chunks no remaining version uses, for reuse; ``compact``
  (``h5forge versions gc FILE``) rewrites the file with only the live chunks, so it shrinks.

Run with ``python examples/versions_import_gc.py [OUT_DIR]``.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

from h5forge.versions import VersionedFile, compact, import_versioned_hdf5

T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.timezone.utc)


def import_part(out_dir: Path) -> None:
    try:
        from versioned_hdf5 import VersionedHDF5File
    except ImportError:
        print("versioned-hdf5 is not installed: skipping the import part")
        return
    old = out_dir / "written_by_versioned_hdf5.h5"
    with h5py.File(old, "w") as f:
        vf = VersionedHDF5File(f)
        with vf.stage_version("r1", timestamp=T0) as g:
            g.create_dataset("temperature", data=np.linspace(15, 25, 1000), chunks=(100,))
            g["temperature"].attrs["unit"] = "degC"
        with vf.stage_version("r2", timestamp=T0 + dt.timedelta(days=1)) as g:
            g["temperature"][10] = -99.0
        with vf.stage_version("trial", prev_version="r1", make_current=False,
                              timestamp=T0 + dt.timedelta(days=2)) as g:
            g["temperature"].resize((1200,))  # a branch off r1, never made current
    new = out_dir / "imported.h5"
    summary = import_versioned_hdf5(old, new, overwrite=True, progress=False)
    print(f"imported {summary.versions} (current: {summary.current_version})")
    with VersionedFile(new, "r") as vf:
        for name in vf.versions:
            info = vf.version_info(name)
            print(f"  {name}: prev {info['prev_version']}, {info['timestamp']:%Y-%m-%d %H:%M}, "
                  f"shape {vf[name]['temperature'].shape}")
        assert vf["r2"]["temperature"][10] == -99.0 and vf["r1"]["temperature"][10] != -99.0
        assert vf["trial"]["temperature"].shape == (1200,)
        assert vf["r1"]["temperature"].attrs["unit"] == "degC"


def gc_part(out_dir: Path) -> None:
    path = out_dir / "runs.h5"
    rng = np.random.default_rng(1)
    with VersionedFile(path, "w") as vf:
        for day in range(6):  # every run rewrites the whole 2 MB array
            with vf.stage_version(f"run{day}", timestamp=T0 + dt.timedelta(days=day)) as g:
                if day == 0:
                    g.create_dataset("frame", data=rng.random((512, 512)), chunks=(64, 512))
                else:
                    g["frame"][...] = rng.random((512, 512))
        last = vf["run5"]["frame"][()]
        vf.delete_versions([f"run{day}" for day in range(5)])
    print(f"after deleting 5 of 6 versions: {os.path.getsize(path) / 2**20:.1f} MiB")
    summary = compact(path, progress=False)
    print(f"after compact (h5forge versions gc): {summary.bytes_after / 2**20:.1f} MiB "
          f"({summary.slots_after} of {summary.slots_before} chunk slots kept)")
    with VersionedFile(path, "r") as vf:
        assert vf.versions == ["run5"]
        assert np.array_equal(vf["run5"]["frame"][()], last)


def main(out_dir: Path) -> None:
    import_part(out_dir)
    gc_part(out_dir)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        target = Path(sys.argv[1])
        target.mkdir(parents=True, exist_ok=True)
        main(target)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
