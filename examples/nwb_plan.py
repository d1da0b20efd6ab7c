"""Plan how an NWB file's datasets are chunked and compressed, then write it with pynwb.

The workflow NeuroConv users know (``get_default_backend_configuration``, edit,
``configure_backend``, ``NWBHDF5IO.write``), with h5forge's plans:

1. ``h5forge.io.get_default_configuration(nwbfile)`` lists every dataset pynwb will write, by
   the HDF5 path it will have (``general/extracellular_ephys/electrodes/location``, not a
   name of h5forge's own);
2. change a few entries (each change validated at once, errors name the location);
3. ``h5forge.io.configure_nwbfile(nwbfile, plan)`` checks the whole plan, then wraps the data;
4. ``pynwb.NWBHDF5IO(path, "w").write(nwbfile)``.

Then a recording that is not in memory (an ``h5py.Dataset`` here; a memmap or an hdmf
``GenericDataChunkIterator`` work the same) is written one plan buffer at a time, and the
written file is repacked with zstd (``h5forge repack SRC DST -z zstd`` on the command line)
and read back by pynwb.

Needs the ``nwb`` extra (``pip install 'h5forge[nwb]'``). Run with
``python examples/nwb_plan.py [OUT_DIR]``.
"""

from __future__ import annotations

import datetime
import sys
import tempfile
import warnings
from pathlib import Path

import h5py
import numpy as np
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.ecephys import ElectricalSeries

import h5forge.io
from h5forge.errors import ConfigurationError


def make_session(recording) -> NWBFile:
    nwb = NWBFile(session_description="example session", identifier="example-1",
                  session_start_time=datetime.datetime(2024, 5, 1, 9, tzinfo=datetime.UTC))
    probe = nwb.create_device("probe")
    shank = nwb.create_electrode_group("shank0", description="32 sites", location="CA1",
                                       device=probe)
    for i in range(recording.shape[1]):
        nwb.add_electrode(group=shank, location="CA1", x=0.0, y=20.0 * i, z=0.0)
    electrodes = nwb.create_electrode_table_region(list(range(recording.shape[1])), "all")
    nwb.add_acquisition(ElectricalSeries(name="ElectricalSeries", data=recording,
                                         electrodes=electrodes, rate=30_000.0))
    nwb.add_acquisition(TimeSeries(name="running_speed", data=np.linspace(0, 30, 6000),
                                   timestamps=np.arange(6000) / 60.0, unit="cm/s"))
    for start in range(0, 10, 2):
        nwb.add_trial(start_time=float(start), stop_time=start + 1.5)
    return nwb


def write(nwb: NWBFile, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hdmf's note that plugin filters need hdf5plugin to read
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)


def main(out: Path) -> None:
    rng = np.random.default_rng(0)
    recording = rng.integers(-500, 500, (300_000, 32), dtype=np.int16)  # 10 s, 19 MB

    # 1. The default plan: every dataset pynwb will write, by its place in the file.
    nwb = make_session(recording)
    plan = h5forge.io.get_default_configuration(nwb)
    print(f"{len(plan)} datasets planned:", ", ".join(plan))
    print()
    print(plan["acquisition/ElectricalSeries/data"])
    print()
    print(plan["acquisition/running_speed/timestamps"])  # float times: shuffled, then gzip

    # 2. Change what you need: one second of all channels per chunk, zstd.
    es = plan["acquisition/ElectricalSeries/data"]
    es.update(chunk_shape=(30_000, 32), buffer_shape=(150_000, 32))
    es.compression_method = "zstd"  # its options reset to zstd's defaults
    try:
        es.chunk_shape = (30_000, 64)  # more channels than the recording has
    except ConfigurationError as exc:
        print(f"\nrefused: {exc}")

    # 3. A plan made for another file is refused before anything changes.
    other = h5forge.io.get_default_configuration(make_session(recording[:1000]))
    try:
        h5forge.io.configure_nwbfile(nwb, other)
    except ConfigurationError as exc:
        print(f"refused: {exc}")
    assert nwb.acquisition["ElectricalSeries"].data is recording  # untouched

    # 4. Configure and write with pynwb.
    h5forge.io.configure_nwbfile(nwb, plan)
    write(nwb, out / "session.nwb")
    written = h5forge.io.get_current_configuration(out / "session.nwb")
    entry = written["acquisition/ElectricalSeries/data"]
    print(f"\nwritten: chunks {entry.chunk_shape}, {entry.compression_method} "
          f"{entry.compression_options}")

    # 5. A source not in memory: read one plan buffer (here 60,000 rows) at a time.
    with h5py.File(out / "raw.h5", "w") as raw:
        raw["recording"] = recording
    with h5py.File(out / "raw.h5") as raw:
        lazy = make_session(raw["recording"])
        plan = h5forge.io.get_default_configuration(lazy)
        plan["acquisition/ElectricalSeries/data"].update(chunk_shape=(30_000, 32),
                                                         buffer_shape=(60_000, 32))
        h5forge.io.configure_nwbfile(lazy, plan, progress=False)
        write(lazy, out / "from_disk.nwb")

    # 6. Repack the written file with zstd everywhere: still an NWB file pynwb reads.
    plan = h5forge.io.get_default_configuration(out / "session.nwb")
    plan.apply_global_compression("zstd", {"clevel": 5})
    h5forge.io.repack(out / "session.nwb", out / "session_zstd.nwb", plan, progress=False)
    for name in ("session.nwb", "from_disk.nwb", "session_zstd.nwb"):
        with NWBHDF5IO(str(out / name), "r") as io:
            back = io.read()
            data = back.acquisition["ElectricalSeries"].data
            assert np.array_equal(data[:], recording)
            assert back.trials["start_time"][:].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
        entry = h5forge.io.get_current_configuration(out / name)[
            "acquisition/ElectricalSeries/data"]
        size = (out / name).stat().st_size / 1e6
        print(f"{name:18} read back by pynwb: {entry.full_shape} {entry.dtype}, chunks "
              f"{entry.chunk_shape}, {entry.compression_method}, {size:.1f} MB")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
