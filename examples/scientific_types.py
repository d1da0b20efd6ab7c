"""Store what a lab actually holds: a pandas trial table, physical quantities (quantities and
pint) and a neo Block of recordings, in plain HDF5 that h5py alone can read, and that still
loads when pandas, quantities, pint or neo change or are missing.

Run with ``python examples/scientific_types.py [OUT.h5]``.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import h5py
import neo
import numpy as np
import pandas as pd
import pint
import quantities as pq

import h5forge
from h5forge.store.inspect import tree_lines


def make_session(rng: np.random.Generator) -> dict:
    trials = pd.DataFrame({
        "onset": pd.to_datetime("2024-05-01 09:30", utc=True) + pd.to_timedelta(
            np.arange(6) * 2.5, unit="s"),
        "outcome": pd.Categorical(["hit", "miss", "hit", "hit", "miss", "hit"],
                                  categories=["miss", "hit"], ordered=True),
        "licks": pd.array([3, None, 5, 2, None, 4], dtype="Int64"),
        "note": ["", None, "late", "", None, "good"],
    }, index=pd.RangeIndex(1, 7, name="trial"))

    block = neo.Block(name="session 12", rec_datetime=None, file_origin="rig-3")
    for s in range(2):
        segment = neo.Segment(name=f"run {s}")
        signal = neo.AnalogSignal(rng.standard_normal((30_000, 4)).astype(np.float32),
                                  units="uV", sampling_rate=30 * pq.kHz, t_start=s * 10 * pq.s,
                                  name="lfp", channel=[0, 1, 2, 3])
        signal.array_annotate(channel_ids=np.arange(4))
        spikes = neo.SpikeTrain(np.sort(rng.uniform(0, 1, 40)) * pq.s + s * 10 * pq.s,
                                t_start=s * 10 * pq.s, t_stop=(s * 10 + 1) * pq.s, name="unit 1")
        segment.analogsignals.append(signal)
        segment.spiketrains.append(spikes)
        block.segments.append(segment)
    ureg = pint.get_application_registry()
    return {
        "trials": trials,
        "electrode_impedance": pq.Quantity([150.0, 180.0, 210.0, 175.0], "kOhm"),
        "laser_power": 12.5 * ureg.milliwatt,
        "recording": block,
    }


def main(out: Path) -> None:
    session = make_session(np.random.default_rng(0))
    h5forge.dump(session, out, overwrite=True)

    print("The file, as h5forge tree shows it:")
    for line in tree_lines(out, "/", depth=2):
        print("  " + line)
    with h5py.File(out, "r") as f:  # plain datasets and string attributes
        power = f["laser_power"]
        print(f"\nwith h5py alone: laser_power = {power[()]} {power.attrs['units']}")

    loaded = h5forge.load(out)
    pd.testing.assert_frame_equal(loaded["trials"], session["trials"])
    signal = loaded["recording"].segments[1].analogsignals[0]
    print(f"loaded: {type(loaded['trials']).__name__} with dtypes "
          f"{dict(loaded['trials'].dtypes.astype(str))}")
    print(f"loaded: {signal.name!r} {signal.shape} {signal.units.dimensionality} at "
          f"{signal.sampling_rate}, t_start {signal.t_start}")

    # Without neo (here: hidden from the import system), the recording still loads:
    # UnknownObjects holding the arrays and attributes, with a warning saying why.
    hidden = {name: sys.modules.pop(name) for name in list(sys.modules)
              if name == "neo" or name.startswith("neo.")}
    sys.modules["neo"] = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            without_neo = h5forge.load(out, "recording")
        print(f"\nwithout neo: {without_neo!r}, {len(caught)} warning(s), e.g. "
              f"{str(caught[0].message)[:90]}...")
    finally:
        del sys.modules["neo"]
        sys.modules.update(hidden)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "session.h5")
