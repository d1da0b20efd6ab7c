"""Follow a growing grid scan the swmr_tools way, with h5forge.follow.compat.

A plain h5py writer (it knows nothing of h5forge) creates its keys (1, 1) with maxshape (3, 4)
and its blosc-compressed frames (1, 1, 32, 32) with maxshape (3, 4, 32, 32), and resizes both
as the scan goes. This process holds the datasets itself, as swmr_tools code does, and passes
them to ``DataSource``: every frame arrives complete, read with direct chunk reads.

Run with ``python examples/follow_swmr_tools_style.py [OUT_DIR]``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from h5forge.follow import compat as swmr_tools  # swmr_tools' names, h5forge's reading

WRITER = """
import sys, time
import h5py, hdf5plugin, numpy as np

with h5py.File(sys.argv[1], "w", libver="latest") as f:
    blosc = hdf5plugin.Blosc(cname="lz4", clevel=5)
    data = f.create_dataset("entry/data", shape=(1, 1, 32, 32), maxshape=(3, 4, 32, 32),
                            chunks=(1, 1, 32, 32), dtype="u2", **blosc)
    keys = f.create_dataset("entry/keys", shape=(1, 1), maxshape=(3, 4), chunks=(1, 4),
                            dtype="i1")
    finished = f.create_dataset("entry/finished", data=np.zeros(1, "i1"))
    f.swmr_mode = True                        # readers may open the file from here on
    for i in range(12):
        row, col = divmod(i, 4)
        if data.shape[0] <= row:              # a new row: grow both
            data.resize(row + 1, axis=0)
            keys.resize(row + 1, axis=0)
        if data.shape[1] < 4:
            data.resize(4, axis=1)
            keys.resize(4, axis=1)
        data[row, col] = np.full((32, 32), i + 1, "u2")
        data.flush()                          # the frame first...
        keys[row, col] = 1
        keys.flush()                          # ... then its key
        time.sleep(0.03)
    finished[0] = 1
    finished.flush()
"""


def open_when_ready(path: Path, timeout: float = 10) -> h5py.File:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return h5py.File(path, "r", libver="latest", swmr=True)
        except OSError:  # not created yet, or SWMR not on yet (file locking)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def main(out_dir: Path) -> None:
    path = out_dir / "grid.h5"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
    try:
        with open_when_ready(path) as f:
            keys, data, finished = f["entry/keys"], f["entry/data"], f["entry/finished"]
            source = swmr_tools.DataSource([keys], {"image": data}, timeout=5,
                                           finished_dataset=finished, use_direct_chunk=True)
            print(f"scan shape {source.kf.maxshape} (from maxshape; the keys are "
                  f"{keys.shape} now), direct chunk reads: "
                  f"{source.frame_readers['image'].use_direct_chunk}")
            for item in source:
                image = item["image"]  # (1, 1, 32, 32): the scan axes kept, as swmr_tools
                assert np.all(image == item.index + 1), item.index  # never a fill-value frame
                row, col = (s.start for s in item.slice_metadata)
                print(f"frame {item.index:2d} at ({row}, {col}): mean {image.mean():.0f}")
            print(f"finished: {source.is_scan_finished()}, timed out: "
                  f"{source.has_timed_out()}")
    finally:
        writer.wait(30)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
