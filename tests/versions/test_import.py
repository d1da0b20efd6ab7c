"""``h5forge.versions.import_versioned_hdf5``: a versioned-hdf5 file comes in with its whole
history. The committed golden file (made by versioned-hdf5 2.6.0, see
``tests/data/make_versioned_hdf5_golden.py``) is imported everywhere; where versioned-hdf5 is
installed, fresh files are written with it and every version is compared with what
versioned-hdf5 itself reads."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.errors import (
    H5ForgeError,
    MissingDependencyError,
    NodeExistsError,
    TargetError,
    VersionError,
)
from h5forge.versions import (
    FIRST_VERSION,
    TIMESTAMP_FORMAT,
    VersionedFile,
    import_versioned_hdf5,
)
from h5forge.versions import importer as importer_module

from . import _snapshot

DATA = Path(__file__).resolve().parent.parent / "data"
UTC = dt.timezone.utc


def _golden_module():
    spec = importlib.util.spec_from_file_location("make_versioned_hdf5_golden",
                                                  DATA / "make_versioned_hdf5_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GOLDEN = _golden_module()
HAS_PEER = importlib.util.find_spec("versioned_hdf5") is not None
needs_peer = pytest.mark.skipif(not HAS_PEER, reason="versioned-hdf5 is not installed")


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def reference_trees() -> dict[str, dict]:
    """The expected tree of every remaining version (plain h5py replay of the history)."""
    with GOLDEN.reference() as ref:
        return {name: _snapshot.tree(ref[name]) for name in ref}


def peer_trees(path: str | Path) -> dict[str, tuple[str, str, dict]]:
    """Every version as versioned-hdf5 reads it: (prev_version, timestamp text, tree)."""
    from versioned_hdf5 import VersionedHDF5File

    with h5py.File(path, "r") as f:
        vf = VersionedHDF5File(f)
        return {name: (vf[name].attrs["prev_version"], vf[name].attrs["timestamp"],
                       _snapshot.tree(vf[name], peer=True)) for name in vf}


def assert_history_matches_golden(path: str | Path) -> None:
    with VersionedFile(path, "r") as vf:
        assert sorted(vf.versions) == sorted(GOLDEN.EXPECTED_PREV)
        assert vf.current_version == GOLDEN.EXPECTED_CURRENT
        expected = reference_trees()
        for name in vf.versions:
            info = vf.version_info(name)
            assert info["prev_version"] == GOLDEN.EXPECTED_PREV[name], name
            assert info["timestamp"] == GOLDEN.EXPECTED_TIMESTAMPS[name], name  # to the µs
            assert _snapshot.tree(vf[name]) == expected[name], name


# -- the committed golden file (no versioned-hdf5 needed) -----------------------------------------
def test_golden_file_imports_every_version_exactly(tmp_path: Path) -> None:
    out = tmp_path / "imported.h5"
    before = digest(GOLDEN.GOLDEN)
    summary = import_versioned_hdf5(GOLDEN.GOLDEN, out, progress=False)
    assert digest(GOLDEN.GOLDEN) == before  # the source is only read
    assert summary.current_version == GOLDEN.EXPECTED_CURRENT
    assert summary.notes == []
    assert_history_matches_golden(out)


def test_commit_order_is_parents_first_and_branches_stay_branches(tmp_path: Path) -> None:
    out = tmp_path / "imported.h5"
    summary = import_versioned_hdf5(GOLDEN.GOLDEN, out, progress=False)
    order = summary.versions
    for name, prev in GOLDEN.EXPECTED_PREV.items():
        if prev != FIRST_VERSION:
            assert order.index(prev) < order.index(name), (prev, name)
    # b2 is stamped before its parent b1: only the prev chain puts it after b1
    assert GOLDEN.EXPECTED_TIMESTAMPS["b2"] < GOLDEN.EXPECTED_TIMESTAMPS["b1"]
    with VersionedFile(out, "r") as vf:
        assert vf.versions == order
        assert vf.version_info("b1")["prev_version"] == "v1"  # a branch off v1, not off v2
        np.testing.assert_array_equal(vf["b1"]["x"][:3], [-1.0, 1.0, 2.0])
        np.testing.assert_array_equal(vf["b2"]["empty"][()], [1.0, 2.0, 3.0])
        assert vf.version_info("v4")["prev_version"] == "v3"  # tmp, deleted, in between


def test_each_version_stores_only_what_changed(tmp_path: Path) -> None:
    out = tmp_path / "imported.h5"
    import_versioned_hdf5(GOLDEN.GOLDEN, out, progress=False)
    with VersionedFile(out, "r") as vf:
        assert vf.version_info("b1")["changed"] == ["/x"]
        assert vf.version_info("v5")["changed"] == []  # the empty commit
        diff = vf.diff("v1", "b1")
        assert list(diff["changed"]) == ["/x"]
        assert diff["changed"]["/x"] == [(slice(0, 4),)]  # one chunk of (4,)
        diff = vf.diff("v2", "v3")
        assert diff["changed"]["/packed"] == [(slice(500, 600),)]


def test_chunks_compression_and_fill_values_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "imported.h5"
    import_versioned_hdf5(GOLDEN.GOLDEN, out, progress=False)
    with VersionedFile(out, "r") as vf:
        v1 = vf["v1"]
        assert (v1["x"].chunks, v1["x"].compression, v1["x"].compression_opts) == \
            ((4,), "gzip", 3)
        assert (v1["nan"].chunks, v1["nan"].compression) == ((1, 2), "lzf")
        assert v1["packed"].compression == 32001  # Blosc, by its HDF5 filter id
        assert v1["sparse"].fillvalue == 7 and v1["sparse"][50] == 7
        assert v1["x"].maxshape == (None,)  # resizable, as in versioned-hdf5
    with h5py.File(out, "r") as f:  # the plain mirror of the current version
        assert f["x"].compression == "gzip"
        assert 32001 in f["packed"]._filters or "32001" in f["packed"]._filters
        with VersionedFile(out, "r") as vf:
            current = _snapshot.tree(vf[vf.current_version], storage=False)
        for path, entry in current.items():
            if entry[0] == "dataset":
                assert _snapshot.value(f[path][()]) == entry[4], path


def test_cli_import(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from h5forge.cli.main import main

    out = tmp_path / "imported.h5"
    assert main(["versions", "import", str(GOLDEN.GOLDEN), str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "8 versions" in printed and "current: v5" in printed
    assert_history_matches_golden(out)
    # the destination exists now: refused, exit code 2, file untouched
    before = digest(out)
    assert main(["versions", "import", str(GOLDEN.GOLDEN), str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert digest(out) == before
    assert main(["versions", "import", str(GOLDEN.GOLDEN), str(out), "--overwrite",
                 "--no-progress"]) == 0


# -- bad input: clear errors, nothing written ------------------------------------------------------
def test_a_plain_hdf5_file_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    out = tmp_path / "out.h5"
    with pytest.raises(VersionError, match="not a versioned-hdf5 file.*_version_data"):
        import_versioned_hdf5(plain, out)
    assert os.listdir(tmp_path) == ["plain.h5"]


def test_an_h5forge_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    ours = tmp_path / "ours.h5"
    with VersionedFile(ours, "a") as vf:
        with vf.stage_version("v1") as g:
            g["x"] = np.arange(3)
    with pytest.raises(VersionError, match="h5forge versioned file already"):
        import_versioned_hdf5(ours, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_missing_and_non_hdf5_sources(tmp_path: Path) -> None:
    with pytest.raises(H5ForgeError, match="no such file"):
        import_versioned_hdf5(tmp_path / "missing.h5", tmp_path / "out.h5")
    text = tmp_path / "notes.txt"
    text.write_text("not HDF5")
    with pytest.raises(H5ForgeError, match="cannot open as HDF5"):
        import_versioned_hdf5(text, tmp_path / "out.h5")
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_an_existing_destination_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "out.h5"
    out.write_bytes(b"keep me")
    with pytest.raises(NodeExistsError, match="exists; pass overwrite=True"):
        import_versioned_hdf5(GOLDEN.GOLDEN, out)
    assert out.read_bytes() == b"keep me"
    with pytest.raises(TargetError, match="must be a file path"):
        with h5py.File(tmp_path / "open.h5", "w") as f:
            import_versioned_hdf5(GOLDEN.GOLDEN, f)
    import_versioned_hdf5(GOLDEN.GOLDEN, out, overwrite=True, progress=False)
    assert_history_matches_golden(out)


def test_without_versioned_hdf5_the_error_names_the_extra(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "versioned_hdf5", None)  # import now fails
    with pytest.raises(MissingDependencyError, match=r'pip install "h5forge\[versioned-hdf5\]"'):
        import_versioned_hdf5(GOLDEN.GOLDEN, tmp_path / "out.h5")
    assert os.listdir(tmp_path) == []


def test_a_failure_half_way_leaves_nothing(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    original = importer_module._VersionCopier.dataset

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 30:  # a few versions in
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(importer_module._VersionCopier, "dataset", failing)
    out = tmp_path / "out.h5"
    with pytest.raises(OSError, match="disk full"):
        import_versioned_hdf5(GOLDEN.GOLDEN, out, progress=False)
    assert calls["n"] == 30
    assert os.listdir(tmp_path) == []  # no destination, no temporary file, journal or lock


def test_public_names() -> None:
    assert h5forge.versions.import_versioned_hdf5 is import_versioned_hdf5
    assert "import_versioned_hdf5" in h5forge.versions.__all__
    assert "compact" in h5forge.versions.__all__


# -- fresh files written by versioned-hdf5 itself -------------------------------------------------
@needs_peer
def test_fresh_peer_file_every_version_as_the_peer_reads_it(tmp_path: Path) -> None:
    source = tmp_path / "peer.h5"
    GOLDEN.write_peer(source)
    out = tmp_path / "imported.h5"
    import_versioned_hdf5(source, out, progress=False)
    peer = peer_trees(source)
    expected = reference_trees()
    with VersionedFile(out, "r") as vf:
        assert sorted(vf.versions) == sorted(peer)
        for name, (prev, stamp, tree) in peer.items():
            info = vf.version_info(name)
            assert info["prev_version"] == prev
            assert info["timestamp"].strftime(TIMESTAMP_FORMAT) == stamp  # the same text
            mine = _snapshot.tree(vf[name], storage=False)
            assert mine == tree, name
            assert _snapshot.tree(vf[name]) == expected[name], name
    assert_history_matches_golden(out)


@needs_peer
def test_a_versioned_tree_in_a_group_and_an_open_file(tmp_path: Path) -> None:
    from versioned_hdf5 import VersionedHDF5File

    source = tmp_path / "peer.h5"
    with h5py.File(source, "w") as f:
        f["plain"] = np.arange(2)
        vf = VersionedHDF5File(f.create_group("inner"))
        with vf.stage_version("a") as g:
            g.create_dataset("x", data=np.arange(10.0), chunks=(5,))
        with vf.stage_version("b") as g:
            g["x"][7] = -7.0
    with h5py.File(source, "r") as f:
        summary = import_versioned_hdf5(f["inner"], tmp_path / "out.h5", progress=False)
        assert f.id.valid  # what it was given, it leaves open
    assert summary.versions == ["a", "b"] and summary.current_version == "b"
    with VersionedFile(tmp_path / "out.h5", "r") as vf:
        np.testing.assert_array_equal(vf["a"]["x"][()], np.arange(10.0))
        assert vf["b"]["x"][7] == -7.0
        assert "plain" not in vf["b"]
        expected = _snapshot.history(vf)
    # a file open for writing: versioned-hdf5 hands out its wrapper objects instead
    with h5py.File(source, "r+") as f:
        import_versioned_hdf5(f["inner"], tmp_path / "out2.h5", progress=False)
    with VersionedFile(tmp_path / "out2.h5", "r") as vf:
        assert _snapshot.history(vf) == expected


@needs_peer
def test_many_versions_share_chunks(tmp_path: Path) -> None:
    """20 versions each changing one chunk of a 64-chunk dataset: the import stores each
    changed chunk once, so the file grows by about a chunk per version."""
    from versioned_hdf5 import VersionedHDF5File

    source = tmp_path / "peer.h5"
    rng = np.random.default_rng(5)
    data = rng.random(64 * 512)
    with h5py.File(source, "w") as f:
        vf = VersionedHDF5File(f)
        with vf.stage_version("v0") as g:
            g.create_dataset("x", data=data, chunks=(512,))
        for i in range(1, 21):
            with vf.stage_version(f"v{i}") as g:
                g["x"][i * 512 + 3] = -float(i)
    out = tmp_path / "out.h5"
    import_versioned_hdf5(source, out, progress=False)
    with VersionedFile(out, "r") as vf:
        for i in range(1, 21):
            assert vf.version_info(f"v{i}")["changed"] == ["/x"]
            assert list(vf.diff(f"v{i - 1}", f"v{i}")["changed"]["/x"]) == \
                [(slice(i * 512, (i + 1) * 512),)]
        expected = data.copy()
        for i in range(1, 21):
            expected[i * 512 + 3] = -float(i)
        np.testing.assert_array_equal(vf["v20"]["x"][()], expected)
    with h5py.File(out, "r") as f:
        pools = f["_h5forge_versions/pools"]
        assert sum(pools[k]["hashes"].shape[0] for k in pools) == 64 + 20


@needs_peer
def test_dangling_parent_and_reserved_names(tmp_path: Path) -> None:
    from versioned_hdf5 import VersionedHDF5File

    source = tmp_path / "peer.h5"
    with h5py.File(source, "w") as f:
        vf = VersionedHDF5File(f)
        with vf.stage_version("v1") as g:
            g.create_dataset("x", data=np.arange(4), chunks=(2,))
        with vf.stage_version("v2") as g:
            g["x"][0] = 9
        del vf["v1"]  # versioned-hdf5 leaves v2 naming v1 as its parent
    out = tmp_path / "out.h5"
    summary = import_versioned_hdf5(source, out, progress=False)
    assert any("'v1'" in note and "no longer has" in note for note in summary.notes)
    with VersionedFile(out, "r") as vf:
        assert vf.versions == ["v2"]
        assert vf.version_info("v2")["prev_version"] == FIRST_VERSION
        np.testing.assert_array_equal(vf["v2"]["x"][()], [9, 1, 2, 3])

    with h5py.File(source, "r+") as f:
        vf = VersionedHDF5File(f)
        with vf.stage_version("__mine") as g:
            g["x"][1] = 8
    with pytest.raises(VersionError, match="'__mine' starts with '__'"):
        import_versioned_hdf5(source, tmp_path / "out2.h5")
    assert not (tmp_path / "out2.h5").exists()


@needs_peer
def test_storage_filters_keep_values(tmp_path: Path) -> None:
    from versioned_hdf5 import VersionedHDF5File

    source = tmp_path / "peer.h5"
    with h5py.File(source, "w") as f:
        vf = VersionedHDF5File(f)
        with vf.stage_version("v1") as g:
            g.create_dataset("x", data=np.arange(100), chunks=(10,), compression="gzip",
                             shuffle=True, fletcher32=True)
    summary = import_versioned_hdf5(source, tmp_path / "out.h5", progress=False)
    with VersionedFile(tmp_path / "out.h5", "r") as vf:
        np.testing.assert_array_equal(vf["v1"]["x"][()], np.arange(100))
        assert vf["v1"]["x"].compression == "gzip"
    with h5py.File(tmp_path / "out.h5", "r") as f:
        kept = bool(f["x"].shuffle)
    # kept where the stage takes them; otherwise said so (the values are the same)
    assert kept or any("shuffle" in note and "fletcher32" in note for note in summary.notes)
