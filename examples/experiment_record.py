"""Store a realistic experiment record in HDF5 with h5forge, reload it, and show what the file
looks like to h5py alone.

Run with ``make run`` (or ``python examples/experiment_record.py [OUT.h5]``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import tempfile
import zoneinfo
from pathlib import Path

import h5py
import numpy as np

import h5forge
from h5forge.store.inspect import tree_lines


@dataclasses.dataclass
class Probe:
    """Recording hardware: stored as a group with `instance_attributes`."""

    model: str
    channels: int
    impedance_kohm: np.ndarray


def make_record(rng: np.random.Generator) -> dict:
    probe = Probe("NP1.0", 4, rng.uniform(150, 250, 4))
    return {
        "subject": {"id": "M12", "species": "Mus musculus", "weight_g": 23.5},
        "started": dt.datetime(2024, 5, 1, 9, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
        "probe": probe,
        "sampling_rate_hz": 30_000.0,
        "lfp": rng.standard_normal((4, 300_000)).astype(np.float32),  # 4.8 MB
        "trials": [{"number": i, "onset_s": 2.0 * i, "outcome": "hit" if i % 4 else "miss",
                    "licks_s": np.sort(rng.uniform(0, 1, 3))} for i in range(200)],
        "spike_times": {f"unit_{u}": np.sort(rng.uniform(0, 600, rng.integers(50, 500)))
                        for u in range(8)},
        "notes": "Electrode 3 drifted after trial 120.",
        "devices": [probe],  # the same object twice: stored once, loaded shared
    }


def main(out: Path) -> None:
    record = make_record(np.random.default_rng(0))
    h5forge.dump(record, out, overwrite=True)
    loaded = h5forge.load(out)

    assert loaded["devices"][0] is loaded["probe"], "shared objects stay shared"
    assert type(loaded["probe"]) is Probe and loaded["trials"][7]["outcome"] == "hit"
    assert np.array_equal(loaded["lfp"], record["lfp"]) and loaded["started"] == record["started"]

    print(f"stored and reloaded {out} ({out.stat().st_size / 1e6:.1f} MB)\n")
    print("\n".join(tree_lines(out, depth=2)))

    with h5py.File(out, "r") as f:  # the same file with nothing but h5py
        print("\nwith h5py alone:")
        print("  subject id  :", f["subject"].attrs["id"])
        print("  lfp         :", f["lfp"].shape, f["lfp"].dtype)
        print("  trial onsets:", f["trials"]["onset_s"][:5], "...")

    lazy = h5forge.load(out, lazy=True)  # big arrays are read on access
    print("\nlazy lfp:", lazy["lfp"], "first samples:", lazy["lfp"][0, :3])


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "experiment.h5")
