"""`h5forge config` / `h5forge repack` on a .nwb file written by pynwb keep it a valid NWB file:
pynwb validates and reads it back with the same data, and the NWB Inspector finds nothing it did
not find before. A file written through configure_nwbfile passes the same checks."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")
nwbinspector = pytest.importorskip("nwbinspector")

from h5forge.cli.main import main  # noqa: E402
from h5forge.io import (  # noqa: E402
    configure_nwbfile,
    get_current_configuration,
    get_default_configuration,
)

from .test_nwb import RECORDING, make_nwbfile, write  # noqa: E402


def inspector_findings(path) -> set[tuple[str, str, str]]:
    return {(m.check_function_name, m.location, m.message)
            for m in nwbinspector.inspect_nwbfile(nwbfile_path=str(path))}


def same_content(a: h5py.File, b: h5py.File, *, other_session: bool = False) -> None:
    """Every group, dataset and attribute of ``a`` is in ``b`` with equal values (references
    compared by what they point at). ``other_session``: ``b`` was made from another NWBFile
    object of the same content, so object ids and the creation date differ."""
    unique = {"object_id", "file_create_date"} if other_session else set()
    def compare_value(where, x, y):
        if isinstance(x, h5py.Reference):
            assert a[x].name == b[y].name, where
        elif isinstance(x, np.ndarray) and x.dtype.kind == "O" and x.size and \
                isinstance(x.flat[0], h5py.Reference):
            assert [a[r].name for r in x.flat] == [b[r].name for r in y.flat], where
        elif isinstance(x, np.ndarray) and x.dtype.names:
            for name in x.dtype.names:
                compare_value(f"{where}.{name}", x[name], y[name])
        else:
            np.testing.assert_array_equal(x, y, err_msg=where)

    def visit(name, obj):
        other = b[name]
        assert type(other) is type(obj), name
        assert set(obj.attrs) == set(other.attrs), name
        for key in set(obj.attrs) - unique:
            compare_value(f"{name}@{key}", obj.attrs[key], other.attrs[key])
        if isinstance(obj, h5py.Dataset) and name not in unique:
            assert obj.dtype == other.dtype and obj.shape == other.shape, name
            compare_value(name, obj[()], other[()])

    a.visititems(visit)
    names_a, names_b = [], []
    a.visit(names_a.append)
    b.visit(names_b.append)
    assert sorted(names_a) == sorted(names_b)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A file pynwb wrote, and what the NWB Inspector finds in it."""
    path = tmp_path_factory.mktemp("nwb") / "session.nwb"
    write(make_nwbfile(), path)
    return path, inspector_findings(path)


@pytest.mark.parametrize("options", [[], ["-z", "zstd", "--level", "5"]])
def test_repack_keeps_a_valid_nwb_file(session, tmp_path, options):
    session, found_before = session
    out = tmp_path / "repacked.nwb"
    assert main(["repack", str(session), str(out), *options]) == 0
    assert pynwb.validate(path=str(out)) == []
    with h5py.File(session) as a, h5py.File(out) as b:
        same_content(a, b)
        assert b["acquisition/ElectricalSeries/data"].chunks == (3000, 8)
    method = options[1] if options else "gzip"
    assert get_current_configuration(out)["acquisition/ElectricalSeries/data"]\
        .compression_method == method
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        back = io.read()
        np.testing.assert_array_equal(back.acquisition["ElectricalSeries"].data[:], RECORDING)
        assert back.acquisition["ElectricalSeries"].electrodes.table is back.electrodes
        assert back.electrodes["group"][0].name == "shank0"  # object references remapped
        assert back.units["spike_times"][1].tolist() == [0.15, 0.25]
        assert list(back.processing["behavior"]["licks"]["side"][:3]) == ["right", "left", "right"]
    assert found_before and inspector_findings(out) <= found_before


def test_config_prints_the_nwb_files_datasets(session, capsys):
    session, _ = session
    assert main(["config", str(session)]) == 0
    text = capsys.readouterr().out
    assert "acquisition/ElectricalSeries/data\n---------------------------------" in text
    assert "general/extracellular_ephys/electrodes/location" in text


def test_configured_write_passes_the_inspector_as_pynwbs_own(tmp_path, session):
    session, found_before = session
    nwb = make_nwbfile()
    plan = get_default_configuration(nwb)
    plan.apply_global_compression("zstd", {"clevel": 3})
    configure_nwbfile(nwb, plan)
    path = tmp_path / "configured.nwb"
    write(nwb, path)
    assert pynwb.validate(path=str(path)) == []
    assert inspector_findings(path) <= found_before
    # The same file as pynwb writes by default, but for chunks and filters.
    with h5py.File(session) as a, h5py.File(path) as b:
        same_content(a, b, other_session=True)
