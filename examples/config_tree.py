"""Store an acquisition config -- a nest of small dicts, lists, numbers and parameter arrays --
beside the data it produced: the config becomes one packed tree (a few tables, format 3), the
data keeps its own dataset. Then read one setting, change one in place, and look at both with
plain h5py and with ``h5forge tree``.

Run with ``python examples/config_tree.py [OUT.h5]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

import h5forge
from h5forge.store.inspect import tree_lines


def acquisition_config(n_channels: int = 32) -> dict:
    return {
        "rig": {"name": "rig-3", "sampling_hz": 30_000.0, "gain": 0.195, "dc_offset": None},
        "filters": [{"kind": "bandpass", "band_hz": (300.0, 6000.0), "order": 3},
                    {"kind": "notch", "f_hz": 50.0, "q": 30.0}],
        "channels": {f"ch{i:02d}": {"enabled": i % 7 != 0, "depth_um": 25.0 * i,
                                    "shank": i // 8, "position": np.array([i % 2, i // 2],
                                                                         dtype=np.int16)}
                     for i in range(n_channels)},
        "stimulus": {"protocol": "drifting gratings", "orientations": np.arange(0, 360, 45.0),
                     "contrast": [0.1, 0.3, 1.0]},
    }


def main(path: Path) -> None:
    config = acquisition_config()
    recording = np.random.default_rng(0).integers(-2000, 2000, size=(30_000, 32),
                                                  dtype=np.int16)
    start = time.perf_counter()
    h5forge.dump({"config": config, "recording": recording}, path, overwrite=True)
    print(f"dumped in {1e3 * (time.perf_counter() - start):.1f} ms")

    # Plain h5py sees the big array as a dataset, and the config as a group of small tables.
    with h5py.File(path, "r") as f:
        print("recording:", f["recording"].shape, f["recording"].dtype)
        print("config:", dict(f["config"].attrs), sorted(f["config"]))
        nodes = f["config/nodes"][()]
        print("config/nodes has", len(nodes), "rows with fields", nodes.dtype.names)

    # Read one setting (the whole tree is a few reads), change another in place.
    print("band:", h5forge.load(path, "config/filters/0/band_hz"))
    h5forge.dump(0.2, path, "config/rig/gain", overwrite=True)
    h5forge.append({"kind": "highpass", "f_hz": 1.0}, path, "config/filters")
    loaded = h5forge.load(path)
    assert loaded["config"]["rig"]["gain"] == 0.2 and len(loaded["config"]["filters"]) == 3
    assert np.array_equal(loaded["recording"], recording)

    print("\n".join(tree_lines(path, depth=2)))

    # One HDF5 object per node instead, as hickle writes (slower; browsable node by node).
    per_node = path.with_name(path.stem + "-nodes.h5")
    start = time.perf_counter()
    h5forge.dump({"config": config, "recording": recording}, per_node, overwrite=True,
                 pack_trees=False)
    took = 1e3 * (time.perf_counter() - start)
    with h5py.File(per_node, "r") as f:
        print(f"pack_trees=False dumped in {took:.1f} ms; config/rig/gain is a plain attribute "
              f"there: {f['config/rig'].attrs['gain']}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "config_tree.h5")
