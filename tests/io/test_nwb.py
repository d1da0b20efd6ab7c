"""Plans for in-memory NWB files (h5forge.io.nwb): every dataset pynwb writes is listed by its
HDF5 location, NWBHDF5IO.write follows the plan, bad plans are refused before anything changes,
and sources larger than memory are read one plan buffer at a time. Real pynwb objects, real
files written by pynwb, read back by pynwb."""

from __future__ import annotations

import datetime
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")
from hdmf.backends.hdf5.h5_utils import H5DataIO  # noqa: E402
from hdmf.common import DynamicTable  # noqa: E402
from hdmf.data_utils import DataChunkIterator, GenericDataChunkIterator  # noqa: E402
from pynwb import NWBHDF5IO, NWBFile, TimeSeries  # noqa: E402
from pynwb.ecephys import ElectricalSeries  # noqa: E402
from pynwb.image import ImageSeries  # noqa: E402

import h5forge  # noqa: E402
from h5forge.errors import (  # noqa: E402
    ConfigurationError,
    MissingDependencyError,
    TargetError,
)
from h5forge.io import (  # noqa: E402
    AVAILABLE_COMPRESSION_METHODS,
    BackendConfiguration,
    configure_nwbfile,
    get_current_configuration,
    get_default_configuration,
)
from h5forge.io.nwb import find_nwb_datasets  # noqa: E402

RECORDING = np.arange(3000 * 8, dtype="int16").reshape(3000, 8)
START = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


def make_nwbfile(recording=RECORDING, identifier="session-1") -> NWBFile:
    """A small session with the NWB objects users configure: an ElectricalSeries over an
    electrodes table, a TimeSeries with timestamps, an ImageSeries, a DynamicTable in a
    processing module, trials and units."""
    nwb = NWBFile(session_description="test", identifier=identifier, session_start_time=START)
    device = nwb.create_device("probe")
    group = nwb.create_electrode_group("shank0", description="d", location="CA1", device=device)
    for i in range(8):
        nwb.add_electrode(group=group, location="CA1", x=float(i), y=0.0, z=2.0 * i)
    region = nwb.create_electrode_table_region(list(range(8)), "all electrodes")
    nwb.add_acquisition(ElectricalSeries(name="ElectricalSeries", data=recording,
                                         electrodes=region, rate=30000.0))
    nwb.add_acquisition(TimeSeries(name="speed", data=np.linspace(0, 1, 500),
                                   timestamps=np.arange(500) / 50.0, unit="m/s"))
    nwb.add_acquisition(ImageSeries(name="movie", data=np.arange(6 * 24 * 32, dtype="uint8")
                                    .reshape(6, 24, 32), unit="n/a", rate=30.0))
    table = DynamicTable(name="licks", description="lick events")
    table.add_column("side", "left or right")
    table.add_column("force", "force in N")
    for i in range(20):
        table.add_row(side="left" if i % 2 else "right", force=0.5 * i)
    nwb.create_processing_module("behavior", "behavior").add(table)
    for i in range(3):
        nwb.add_trial(start_time=float(i), stop_time=i + 0.5)
    nwb.add_unit(spike_times=[0.1, 0.2, 0.3])
    nwb.add_unit(spike_times=[0.15, 0.25])
    return nwb


def write(nwb: NWBFile, path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pynwb's own notes (e.g. on plugin filters' portability)
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)


EXPECTED = {
    "acquisition/ElectricalSeries/data",
    "acquisition/ElectricalSeries/electrodes",
    "acquisition/movie/data",
    "acquisition/speed/data",
    "acquisition/speed/timestamps",
    "general/extracellular_ephys/electrodes/id",
    "general/extracellular_ephys/electrodes/location",
    "general/extracellular_ephys/electrodes/group_name",
    "general/extracellular_ephys/electrodes/x",
    "general/extracellular_ephys/electrodes/y",
    "general/extracellular_ephys/electrodes/z",
    "intervals/trials/id",
    "intervals/trials/start_time",
    "intervals/trials/stop_time",
    "processing/behavior/licks/force",
    "processing/behavior/licks/id",
    "processing/behavior/licks/side",
    "units/id",
    "units/spike_times",
    "units/spike_times_index",
}


def test_default_plan_lists_every_dataset_by_its_location():
    nwb = make_nwbfile()
    plan = get_default_configuration(nwb)
    assert isinstance(plan, BackendConfiguration)
    assert set(plan) == EXPECTED
    assert list(plan) == sorted(plan)
    es = plan["acquisition/ElectricalSeries/data"]
    assert (es.dtype, es.full_shape, es.chunk_shape) == (np.dtype("int16"), (3000, 8), (3000, 8))
    assert es.compression_method == "gzip" and es.compression_options == {"level": 4}
    assert plan["general/extracellular_ephys/electrodes/location"].dtype == \
        h5py.string_dtype("utf-8")
    assert plan["units/spike_times_index"].dtype == np.dtype("uint8")  # as pynwb writes it
    # Float times are shuffled before compression; other data is not.
    assert plan["acquisition/speed/timestamps"].filter == ("shuffle",)
    assert plan["intervals/trials/start_time"].filter == ("shuffle",)
    assert plan["acquisition/speed/data"].filter == ()
    text = str(plan)
    assert text.startswith(f"HDF5 dataset configuration: {len(EXPECTED)} dataset(s)")
    assert "acquisition/ElectricalSeries/data\n---------------------------------" in text
    assert "chunk shape          : (3000, 8)" in text
    # The same through the top-level name, and nothing changed in the file.
    assert h5forge.get_default_configuration(nwb) == plan
    assert nwb.acquisition["ElectricalSeries"].data is RECORDING


def test_references_and_dates_are_left_to_pynwb_and_said_why():
    found, skipped = find_nwb_datasets(make_nwbfile())
    assert "general/extracellular_ephys/electrodes/group" not in found
    assert "references" in skipped["general/extracellular_ephys/electrodes/group"]
    assert "file_create_date" in skipped


def test_written_file_follows_the_plan(tmp_path):
    nwb = make_nwbfile()
    plan = get_default_configuration(nwb)
    plan["acquisition/ElectricalSeries/data"].update(chunk_shape=(1000, 8),
                                                      buffer_shape=(2000, 8))
    plan["acquisition/ElectricalSeries/data"].compression_method = "zstd"
    plan["acquisition/movie/data"].update(chunk_shape=(1, 24, 32), compression_method="blosc2",
                                          compression_options={"clevel": 7})
    plan["acquisition/speed/data"].update(compression_method="lz4", filter="bitshuffle")
    plan["processing/behavior/licks/side"].compression_method = "lzf"
    plan["units/spike_times"].update(chunk_shape=None, compression_method=None, filter=())
    applied = configure_nwbfile(nwb, plan)
    assert applied == plan
    plan["acquisition/movie/data"].compression_method = "gzip"  # too late: not applied
    write(nwb, tmp_path / "s.nwb")
    written = get_current_configuration(tmp_path / "s.nwb")
    for location, entry in applied.items():
        got = written[location]
        assert got.full_shape == entry.full_shape, location
        assert h5py.check_string_dtype(got.dtype) == h5py.check_string_dtype(entry.dtype)
        assert got.dtype == entry.dtype, location
        assert got.chunk_shape == entry.chunk_shape, location
        assert got.compression_method == entry.compression_method, location
        assert got.filter == entry.filter, location
    assert written["acquisition/movie/data"].compression_method == "blosc2"  # as configured
    assert written["acquisition/movie/data"].compression_options["clevel"] == 7
    with h5py.File(tmp_path / "s.nwb") as f:
        assert f["units/spike_times"].chunks is None  # contiguous as planned
        assert f["general/extracellular_ephys/electrodes/x"].maxshape == (None,)  # still growable
    with NWBHDF5IO(str(tmp_path / "s.nwb"), "r") as io:
        back = io.read()
        np.testing.assert_array_equal(back.acquisition["ElectricalSeries"].data[:], RECORDING)
        assert back.acquisition["ElectricalSeries"].electrodes.table is back.electrodes
        np.testing.assert_array_equal(back.acquisition["movie"].data[:],
                                      nwb.acquisition["movie"].data.source)
        np.testing.assert_array_equal(back.acquisition["speed"].timestamps[:],
                                      np.arange(500) / 50.0)
        licks = back.processing["behavior"]["licks"].to_dataframe()
        assert list(licks["side"][:2]) == ["right", "left"]
        assert back.units["spike_times"][1] .tolist() == [0.15, 0.25]
        assert back.electrodes["x"][:].tolist() == [float(i) for i in range(8)]


LOSSLESS = [name for name, m in AVAILABLE_COMPRESSION_METHODS.items()
            if not m.lossy and name not in ("szip", "fcidecomp", "htj2k", "jpeg", "sperr")]


def test_every_lossless_filter_is_written_through_pynwb(tmp_path):
    """gzip, lzf and every lossless hdf5plugin filter this machine has: one series each."""
    assert {"gzip", "lzf", "zstd", "blosc", "blosc2", "lz4", "bitshuffle", "bzip2"} <= \
        set(LOSSLESS)
    nwb = make_nwbfile()
    for name in LOSSLESS:
        nwb.add_acquisition(TimeSeries(name=name, data=RECORDING, unit="V", rate=1.0))
    plan = get_default_configuration(nwb)
    for name in LOSSLESS:
        plan[f"acquisition/{name}/data"].compression_method = name
    configure_nwbfile(nwb, plan)
    write(nwb, tmp_path / "filters.nwb")
    written = get_current_configuration(tmp_path / "filters.nwb")
    with NWBHDF5IO(str(tmp_path / "filters.nwb"), "r") as io:
        back = io.read()
        for name in LOSSLESS:
            got = written[f"acquisition/{name}/data"]
            assert got.compression_method == name
            np.testing.assert_array_equal(back.acquisition[name].data[:], RECORDING)


def test_a_plan_for_another_file_is_refused_before_anything_changes():
    other = get_default_configuration(make_nwbfile(recording=RECORDING[:2000]))
    nwb = make_nwbfile()
    before = {loc: d.source for loc, d in find_nwb_datasets(nwb)[0].items()}
    with pytest.raises(ConfigurationError, match="acquisition/ElectricalSeries/data: the plan "
                                                 r"is for \(2000, 8\) int16 but the data is"):
        configure_nwbfile(nwb, other)
    # Nothing was wrapped: every dataset still holds the user's data itself.
    assert nwb.acquisition["ElectricalSeries"].data is RECORDING
    after = find_nwb_datasets(nwb)[0]
    assert all(after[loc].source is src for loc, src in before.items())
    assert not any(type(d.container.fields.get(d.field)).__name__ == "PlannedDataIO"
                   for d in after.values())


def test_plan_naming_a_missing_or_unplannable_dataset_is_refused():
    nwb = make_nwbfile()
    plan = get_default_configuration(nwb)
    extra = get_default_configuration(make_nwbfile())
    extra.dataset_configurations["acquisition/LFP/data"] = type(
        plan["acquisition/speed/data"])("acquisition/LFP/data", "int16", (10, 2))
    with pytest.raises(ConfigurationError, match="acquisition/LFP/data: the plan names a dataset "
                                                 "this NWB file does not have"):
        configure_nwbfile(nwb, extra)
    refs = BackendConfiguration([type(plan["acquisition/speed/data"])(
        "general/extracellular_ephys/electrodes/group", "int64", (8,))])
    with pytest.raises(ConfigurationError, match="electrodes/group: this dataset cannot be "
                                                 "planned: .*references"):
        configure_nwbfile(nwb, refs)
    with pytest.raises(ConfigurationError, match="takes a BackendConfiguration"):
        configure_nwbfile(nwb, {"acquisition/speed/data": {}})
    with pytest.raises(TargetError, match="pynwb.NWBFile"):
        configure_nwbfile(object(), None)
    assert nwb.acquisition["ElectricalSeries"].data is RECORDING


def test_plan_from_yaml_and_configure_again(tmp_path):
    nwb = make_nwbfile()
    plan = get_default_configuration(nwb)
    plan["acquisition/ElectricalSeries/data"].update(chunk_shape=(500, 8), buffer_shape=(1000, 8))
    plan.to_yaml(tmp_path / "plan.yaml")
    configure_nwbfile(nwb, tmp_path / "plan.yaml")
    # The configured file plans the same (the wrappers are seen through) and takes a new plan.
    assert get_default_configuration(nwb) == get_default_configuration(make_nwbfile())
    second = get_default_configuration(nwb)
    second["acquisition/ElectricalSeries/data"].update(chunk_shape=(300, 4), buffer_shape=(600, 8))
    configure_nwbfile(nwb, second)
    write(nwb, tmp_path / "s.nwb")
    with h5py.File(tmp_path / "s.nwb") as f:
        assert f["acquisition/ElectricalSeries/data"].chunks == (300, 4)


def test_users_own_h5dataio_is_kept(tmp_path):
    nwb = make_nwbfile()
    speed = nwb.acquisition["speed"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hdmf's note on lzf's portability
        speed.fields["data"] = H5DataIO(np.linspace(0, 1, 500), compression="lzf",
                                        chunks=(50,))
    plan = get_default_configuration(nwb)
    assert "acquisition/speed/data" not in plan
    configure_nwbfile(nwb)
    write(nwb, tmp_path / "s.nwb")
    with h5py.File(tmp_path / "s.nwb") as f:
        assert f["acquisition/speed/data"].chunks == (50,)
        assert f["acquisition/speed/data"].compression == "lzf"
        assert f["acquisition/ElectricalSeries/data"].compression == "gzip"


class RowIterator(GenericDataChunkIterator):
    """A user's hdmf iterator (its own, larger buffer)."""

    def __init__(self, array, **kwargs):
        self.array, self.requested = array, []
        super().__init__(**kwargs)

    def _get_data(self, selection):
        self.requested.append(tuple(s.stop - s.start for s in selection))
        return self.array[selection]

    def _get_maxshape(self):
        return self.array.shape

    def _get_dtype(self):
        return self.array.dtype


def test_sources_not_in_memory_are_read_one_plan_buffer_at_a_time(tmp_path):
    shape = (20_000, 16)
    expected = (np.arange(shape[0])[:, None] * 3 + np.arange(shape[1])).astype("int32")
    mapped = np.memmap(tmp_path / "raw.dat", dtype="int32", mode="w+", shape=shape)
    mapped[:] = expected
    mapped.flush()
    with h5py.File(tmp_path / "raw.h5", "w") as f:
        f["raw"] = expected
    user_iterator = RowIterator(expected, chunk_shape=(10_000, 16), buffer_shape=(20_000, 16))
    names = ("Mapped", "FromH5", "Iterated")
    with h5py.File(tmp_path / "raw.h5") as raw:
        nwb = make_nwbfile()
        for name, data in zip(names, (mapped, raw["raw"], user_iterator)):
            nwb.add_acquisition(TimeSeries(name=name, data=data, unit="V", rate=1.0))
        plan = get_default_configuration(nwb)
        # The user's iterator keeps its own shapes in the default plan.
        assert plan["acquisition/Iterated/data"].chunk_shape == (10_000, 16)
        assert plan["acquisition/Iterated/data"].buffer_shape == (20_000, 16)
        for name in names:
            plan[f"acquisition/{name}/data"].update(chunk_shape=(1000, 16),
                                                    buffer_shape=(4000, 16))
        configure_nwbfile(nwb, plan, progress=False)
        for name in names:
            wrapped = nwb.acquisition[name].data
            assert type(wrapped.data).__name__ == "PlannedChunkIterator"
            assert wrapped.data.buffer_shape == (4000, 16)
        write(nwb, tmp_path / "s.nwb")
    assert user_iterator.requested == [(4000, 16)] * 5
    with NWBHDF5IO(str(tmp_path / "s.nwb"), "r") as io:
        back = io.read()
        for name in names:
            dset = back.acquisition[name].data
            assert dset.chunks == (1000, 16) and dset.compression == "gzip"
            np.testing.assert_array_equal(dset[:], expected)


def test_iterator_of_unknown_length_is_written_by_pynwb(tmp_path):
    nwb = make_nwbfile()
    rows = (np.full(2, i, dtype="float32") for i in range(500))  # one row per step
    nwb.add_acquisition(TimeSeries(name="stream", data=DataChunkIterator(rows), unit="V",
                                   rate=1.0))
    found, skipped = find_nwb_datasets(nwb)
    assert "unknown length" in skipped["acquisition/stream/data"]
    configure_nwbfile(nwb)
    write(nwb, tmp_path / "s.nwb")
    with NWBHDF5IO(str(tmp_path / "s.nwb"), "r") as io:
        assert io.read().acquisition["stream"].data.shape == (500, 2)


_RSS_CHILD = r"""
import json, resource, sys, warnings
import numpy as np
from pynwb import NWBFile, NWBHDF5IO, TimeSeries
import datetime
import h5forge.io as hio

from hdmf.data_utils import GenericDataChunkIterator

class Lazy(GenericDataChunkIterator):  # {rows} x 64 float32 made on request, never whole
    def _get_data(self, selection):
        r = np.arange({rows}, dtype="float32")[selection[0]]
        return r[:, None] + np.arange(64, dtype="float32")[selection[1]]
    def _get_maxshape(self):
        return ({rows}, 64)
    def _get_dtype(self):
        return np.dtype("float32")

nwb = NWBFile(session_description="x", identifier="x",
              session_start_time=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
nwb.add_acquisition(TimeSeries(name="big", data=Lazy(buffer_gb=1.0), unit="V", rate=1.0))
plan = hio.get_default_configuration(nwb)
plan["acquisition/big/data"].update(chunk_shape=(40_000, 64), buffer_shape=({buffer_rows}, 64),
                                    compression_method=None)
hio.configure_nwbfile(nwb, plan, progress=False)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    with NWBHDF5IO(sys.argv[1], "w") as io:
        io.write(nwb)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"base": base, "peak": peak}}))
"""


def test_peak_memory_stays_near_the_buffer(tmp_path):
    """A 300 MB series from an hdmf iterator (whose own buffer is hdmf's default 1 GB, so it
    would hold the whole series), planned with a 30 MB buffer: the writer's peak RSS grows by
    about a buffer or two, not by the series (the 2-4 GB case is benchmarks/bench_nwb.py)."""
    import json

    rows, buffer_rows = 1_200_000, 120_000  # 64 float32 = 256 B a row: 307 MB and 31 MB
    code = _RSS_CHILD.format(rows=rows, buffer_rows=buffer_rows)
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "big.nwb")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rss = json.loads(out.stdout.strip().splitlines()[-1])
    grown = rss["peak"] - rss["base"]
    buffer_bytes = buffer_rows * 64 * 4
    assert grown <= 3 * buffer_bytes + 50 * 2**20, (grown, buffer_bytes)
    with h5py.File(tmp_path / "big.nwb") as f:
        dset = f["acquisition/big/data"]
        assert dset.shape == (rows, 64) and dset.chunks == (40_000, 64)
        np.testing.assert_array_equal(dset[rows - 2:], np.arange(rows - 2, rows,
                                                                 dtype="float32")[:, None]
                                      + np.arange(64, dtype="float32"))


def test_io_imports_no_pynwb_and_says_which_extra_is_missing(monkeypatch):
    code = ("import sys, h5forge, h5forge.io; "
            "print('pynwb' in sys.modules, 'hdmf' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"], out.stderr
    monkeypatch.setitem(sys.modules, "pynwb", None)
    with pytest.raises(MissingDependencyError, match=r"h5forge\[nwb\]"):
        configure_nwbfile(object())


def test_masks_links_and_external_files(tmp_path):
    """A PlaneSegmentation's compound pixel_mask and its image_mask rows, a TimeSeries whose
    timestamps link to another's, and an ImageSeries of external files."""
    from pynwb.ophys import OpticalChannel, PlaneSegmentation

    nwb = make_nwbfile()
    device = nwb.devices["probe"]
    plane = nwb.create_imaging_plane(
        name="plane", optical_channel=OpticalChannel(name="green", description="green",
                                                             emission_lambda=525.0),
        description="d", device=device, excitation_lambda=600.0, imaging_rate=30.0,
        indicator="GFP", location="V1")
    pixels = PlaneSegmentation(name="pixels", description="d", imaging_plane=plane)
    images = PlaneSegmentation(name="images", description="d", imaging_plane=plane)
    for i in range(6):
        pixels.add_roi(pixel_mask=[(i, i + 1, 0.5), (i + 2, i, 1.0)])
        images.add_roi(image_mask=np.full((8, 8), i, dtype="float32"))
    module = nwb.create_processing_module("ophys", "ophys")
    module.add(pixels)
    module.add(images)
    speed = nwb.acquisition["speed"]
    nwb.add_acquisition(TimeSeries(name="accel", data=np.ones(500), timestamps=speed,
                                   unit="m/s2"))
    nwb.add_acquisition(ImageSeries(name="video", external_file=["a.avi", "b.avi"],
                                    format="external", starting_frame=[0, 100], rate=30.0,
                                    num_samples=200, unit="n/a"))
    found, skipped = find_nwb_datasets(nwb)
    assert found["processing/ophys/pixels/pixel_mask"].dtype.names == ("x", "y", "weight")
    assert found["processing/ophys/images/image_mask"].shape == (6, 8, 8)
    assert "acquisition/accel/timestamps" not in found  # a link: written once, at speed
    assert "text" in skipped["acquisition/video/external_file"]
    plan = get_default_configuration(nwb)
    plan["processing/ophys/pixels/pixel_mask"].update(chunk_shape=(4,), buffer_shape=(12,),
                                                      compression_method="zstd")
    bad = get_default_configuration(nwb)
    bad["processing/ophys/pixels/pixel_mask"].update(chunk_shape=None, compression_method=None)
    with pytest.raises(ConfigurationError, match="pixel_mask: pynwb writes a compound dataset"):
        configure_nwbfile(nwb, bad)
    configure_nwbfile(nwb, plan)
    write(nwb, tmp_path / "s.nwb")
    written = get_current_configuration(tmp_path / "s.nwb")
    assert written["processing/ophys/pixels/pixel_mask"].chunk_shape == (4,)
    assert written["processing/ophys/pixels/pixel_mask"].compression_method == "zstd"
    assert written["processing/ophys/images/image_mask"].compression_method == "gzip"
    with NWBHDF5IO(str(tmp_path / "s.nwb"), "r") as io:
        back = io.read()
        assert back.processing["ophys"]["pixels"]["pixel_mask"][5].tolist() == \
            [(5, 6, 0.5), (7, 5, 1.0)]
        assert back.processing["ophys"]["images"]["image_mask"][3][0, 0] == 3.0
    with h5py.File(tmp_path / "s.nwb") as f:  # still one dataset, linked
        link = f["acquisition/accel"].get("timestamps", getlink=True)
        assert isinstance(link, h5py.SoftLink) and link.path == "/acquisition/speed/timestamps"
    with NWBHDF5IO(str(tmp_path / "s.nwb"), "r") as io:
        back = io.read()
        assert list(back.acquisition["video"].external_file[:]) == ["a.avi", "b.avi"]
