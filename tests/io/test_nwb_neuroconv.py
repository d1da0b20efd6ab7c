"""Differential tests against NeuroConv itself (skipped where neuroconv is not installed: it is
in the ``bench`` extra, not ``test``): the datasets NeuroConv configures are datasets h5forge
plans, at their real HDF5 paths; a NeuroConv configuration carried over with
plan_from_neuroconv and written through h5forge gives the file NeuroConv's configure_backend
writes."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest

pytest.importorskip("pynwb")
nwb_helpers = pytest.importorskip("neuroconv.tools.nwb_helpers")

from pynwb import TimeSeries  # noqa: E402

from h5forge.errors import ConfigurationError  # noqa: E402
from h5forge.io import configure_nwbfile, get_default_configuration  # noqa: E402
from h5forge.io.nwb import plan_from_neuroconv  # noqa: E402

from .test_nwb import RECORDING, make_nwbfile, write  # noqa: E402


def neuroconv_configuration(nwb):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NeuroConv's deprecation notes
        return nwb_helpers.get_default_backend_configuration(nwb, backend="hdf5")


def edit(config):
    """The same user edits on a NeuroConv configuration."""
    table = config.dataset_configurations
    es = table["acquisition/ElectricalSeries/data"]
    es.chunk_shape, es.buffer_shape = (1000, 8), (3000, 8)
    es.compressors = ["Zstd"]
    table["acquisition/movie/data"].compressors = ["shuffle", "Blosc2"]
    table["acquisition/speed/data"].compressors = ["gzip"]
    table["acquisition/speed/data"].compressor_options = [{"level": 9}]


def test_neuroconvs_datasets_are_planned_at_their_hdf5_paths(tmp_path):
    nwb = make_nwbfile()
    config = neuroconv_configuration(nwb)
    plan = get_default_configuration(nwb)
    carried = plan_from_neuroconv(nwb, config)
    assert len(carried) == len(config.dataset_configurations)
    assert set(carried) < set(plan)  # h5forge also plans ids and table regions
    for entry, nc in zip(carried.values(), config.dataset_configurations.values()):
        assert entry.full_shape == tuple(nc.full_shape)
        assert entry.chunk_shape == tuple(nc.chunk_shape)
    nwb_helpers.configure_backend(nwb, config)
    write(nwb, tmp_path / "nc.nwb")
    with h5py.File(tmp_path / "nc.nwb") as f:
        for location in plan:
            assert isinstance(f.get(location), h5py.Dataset), location
        not_paths = [loc for loc in config.dataset_configurations if loc not in f]
    # NeuroConv's names for table columns are not where the columns are in the file.
    assert "electrodes/location/data" in not_paths and "trials/start_time/data" in not_paths
    assert (len(not_paths), len(config.dataset_configurations)) == (11, 15)  # as README says
    assert "general/extracellular_ephys/electrodes/location" in carried
    assert "intervals/trials/start_time" in carried


def test_a_neuroconv_plan_written_through_h5forge_gives_neuroconvs_file(tmp_path):
    theirs = make_nwbfile()
    config = neuroconv_configuration(theirs)
    edit(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hdmf's note on plugin filters' portability
        nwb_helpers.configure_backend(theirs, config)
    write(theirs, tmp_path / "neuroconv.nwb")

    ours = make_nwbfile()
    config = neuroconv_configuration(ours)
    edit(config)
    plan = plan_from_neuroconv(ours, config)
    assert plan["acquisition/ElectricalSeries/data"].compression_method == "zstd"
    assert plan["acquisition/movie/data"].filter == ("shuffle",)
    assert plan["acquisition/speed/data"].compression_options == {"level": 9}
    assert plan["acquisition/speed/timestamps"].filter == ("shuffle",)  # NeuroConv's default
    configure_nwbfile(ours, plan)
    write(ours, tmp_path / "h5forge.nwb")

    with h5py.File(tmp_path / "neuroconv.nwb") as a, h5py.File(tmp_path / "h5forge.nwb") as b:
        for location in plan:
            x, y = a[location], b[location]
            assert x.chunks == y.chunks, location
            assert x.shuffle == y.shuffle, location
            assert x.compression_opts == y.compression_opts, location
            assert list(x._filters) == list(y._filters), location
            np.testing.assert_array_equal(x[()], y[()])


def test_a_neuroconv_configuration_of_another_file(tmp_path):
    """Of a file of the same structure: carried over by NeuroConv's location, as NeuroConv
    remaps it. Of data of another shape, or of another structure: refused."""
    same = neuroconv_configuration(make_nwbfile())
    edit(same)
    nwb = make_nwbfile()
    plan = plan_from_neuroconv(nwb, same)
    assert plan["acquisition/ElectricalSeries/data"].chunk_shape == (1000, 8)
    assert plan == plan_from_neuroconv(make_nwbfile(), same)
    shorter = neuroconv_configuration(make_nwbfile(recording=RECORDING[:2000]))
    with pytest.raises(ConfigurationError, match=r"acquisition/ElectricalSeries/data .*shape "
                                                 r"\(2000, 8\) but the data is \(3000, 8\)"):
        plan_from_neuroconv(nwb, shorter)
    other = make_nwbfile()
    other.add_acquisition(TimeSeries(name="extra", data=np.ones(10), unit="V", rate=1.0))
    with pytest.raises(ConfigurationError, match="acquisition/extra/data: .*which this NWB "
                                                 "file does not have"):
        plan_from_neuroconv(nwb, neuroconv_configuration(other))
    with pytest.raises(ConfigurationError, match="NeuroConv backend configuration"):
        plan_from_neuroconv(nwb, {"a": 1})


def test_an_h5py_source_is_written_as_planned_where_neuroconv_drops_the_plan(tmp_path):
    """NeuroConv 0.10.2 wraps an h5py.Dataset of an in-memory NWBFile in H5DataIO, which copies
    it as it is: the planned chunks and gzip are silently dropped. h5forge reads it by
    buffers and writes it as planned."""
    with h5py.File(tmp_path / "raw.h5", "w") as f:
        f["raw"] = np.arange(3000 * 8, dtype="int16").reshape(3000, 8)
    outputs = {}
    with h5py.File(tmp_path / "raw.h5") as raw:
        for tool in ("neuroconv", "h5forge"):
            nwb = make_nwbfile(recording=raw["raw"])
            if tool == "neuroconv":
                config = neuroconv_configuration(nwb)
                config.dataset_configurations["acquisition/ElectricalSeries/data"]\
                    .chunk_shape = (100, 8)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    nwb_helpers.configure_backend(nwb, config)
            else:
                plan = get_default_configuration(nwb)
                plan["acquisition/ElectricalSeries/data"].update(chunk_shape=(100, 8))
                configure_nwbfile(nwb, plan)
            write(nwb, tmp_path / f"{tool}.nwb")
            with h5py.File(tmp_path / f"{tool}.nwb") as f:
                dset = f["acquisition/ElectricalSeries/data"]
                outputs[tool] = (dset.chunks, dset.compression)
                np.testing.assert_array_equal(dset[()], raw["raw"][()])
    assert outputs["h5forge"] == ((100, 8), "gzip")
    assert outputs["neuroconv"] == (None, None)  # the peer's behaviour this part improves on
