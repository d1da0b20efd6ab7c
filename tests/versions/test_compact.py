"""``h5forge.versions.compact`` (``h5forge versions gc``): deleted versions give their disk space
back, every remaining version reads back byte for byte the same, and a failure or a kill at any
point leaves the original file as it was."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.errors import (
    CorruptFileError,
    H5ForgeError,
    NodeExistsError,
    TargetError,
    VersionError,
)
from h5forge.versions import VersionedFile, compact
from h5forge.versions.journal import FileLockedError, JournalFile, journal_path

from . import _snapshot

compact_module = sys.modules["h5forge.versions.compact"]  # the name is the function
DATA_GROUP = "_h5forge_versions"
UTC = dt.timezone.utc
SRC = str(Path(h5forge.__file__).resolve().parent.parent)


def stamp(i: int) -> dt.datetime:
    return dt.datetime(2024, 6, 1, tzinfo=UTC) + dt.timedelta(hours=i, microseconds=i)


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build(path: str | Path) -> None:
    """A history with every kind of chunk map: snapshots, delta chains whose bases belong to
    deleted versions, a branch, a resized string dataset, a sparse and a 0-d dataset, a
    removed dataset, and versions deleted in the middle."""
    rng = np.random.default_rng(11)
    with VersionedFile(path, "a") as vf:
        with vf.stage_version("v1", timestamp=stamp(1)) as g:
            g.create_dataset("grid", data=rng.random((40, 30)), chunks=(10, 10),
                             maxshape=(None, 30), compression="gzip")
            g.create_dataset("names", data=np.array([f"n{i}" for i in range(9)], dtype=object),
                             dtype=h5py.string_dtype(), chunks=(4,), maxshape=(None,))
            g.create_dataset("rec", data=np.array([(i, i / 2) for i in range(12)],
                                                  dtype=[("a", "<i4"), ("b", "<f8")]),
                             chunks=(5,))
            g.create_dataset("scalar", data=np.float64(2.5))
            g.create_dataset("sparse", shape=(1000,), dtype="i4", fillvalue=-1, chunks=(100,))
            g["sparse"][500] = 5
            g.create_group("meta").attrs["who"] = "me"
            g.attrs["title"] = "history"
        for i in range(2, 25):
            with vf.stage_version(f"v{i}", timestamp=stamp(i)) as g:
                g["grid"][i % 40, :] = i
                if i % 5 == 0:
                    g["grid"][...] = rng.random((40, 30))
                if i % 7 == 0:
                    n = g["names"].shape[0]
                    g["names"].resize((n + 1,))
                    g["names"][n] = f"added {i}"
                g["scalar"][()] = float(i)
                g["sparse"][i * 10] = i
                if i == 12:
                    del g["rec"]
        with vf.stage_version("branch", prev_version="v6", make_current=False,
                              timestamp=stamp(30)) as g:
            g["grid"][0, 0] = -1.0
        vf.delete_versions([f"v{i}" for i in range(1, 20) if i not in (6, 13)])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`build`'s file, made once per module (tests work on copies)."""
    path = tmp_path_factory.mktemp("history") / "template.h5"
    build(path)
    return path


@pytest.fixture
def history_file(built: Path, tmp_path: Path) -> Path:
    """A fresh copy of the built history, as ``tmp_path / "data.h5"``."""
    path = tmp_path / "data.h5"
    shutil.copyfile(built, path)
    return path


def everything(path: str | Path) -> dict:
    """Every version (record and tree), the diffs between neighbours, and the plain mirror."""
    with VersionedFile(path, "r") as vf:
        out = _snapshot.history(vf)
        names = vf.versions
        out["__diffs__"] = [vf.diff(a, b) for a, b in zip(names, names[1:])]
    with h5py.File(path, "r") as f:
        mirror = {}
        f.visititems(lambda name, obj: mirror.__setitem__(name, _snapshot.value(obj[()])) if
                     isinstance(obj, h5py.Dataset) and not name.startswith(DATA_GROUP) else None)
        out["__mirror__"] = (mirror, _snapshot.attrs(f))
    return out


def pool_slots(path: str | Path, group: str = DATA_GROUP) -> tuple[int, int]:
    """(slots, freed slots) over all pools."""
    with h5py.File(path, "r") as f:
        pools = f[group]["pools"]
        return (sum(pools[k]["hashes"].shape[0] for k in pools),
                sum(pools[k]["free"].shape[0] for k in pools))


# -- the result -----------------------------------------------------------------------------------
def test_every_remaining_version_is_identical(history_file: Path, tmp_path: Path) -> None:
    path = history_file
    before = everything(path)
    slots, freed = pool_slots(path)
    assert freed > 0
    summary = compact(path, progress=False)
    assert summary.trees == ["/"]
    assert summary.slots_before == slots
    assert summary.slots_after == slots - freed
    assert pool_slots(path) == (slots - freed, 0)
    assert summary.bytes_after == os.path.getsize(path) < summary.bytes_before
    assert everything(path) == before
    assert not list(tmp_path.glob(".h5forge-gc-*"))
    assert sorted(os.listdir(tmp_path)) == ["data.h5"]  # no journal or lock left


def test_commits_after_compaction_reuse_and_append(history_file: Path, tmp_path: Path) -> None:
    path = history_file
    compact(path, progress=False)
    before = everything(path)
    slots, _ = pool_slots(path)
    with VersionedFile(path, "a") as vf:
        current = vf[vf.current_version]["grid"][()]
        with vf.stage_version("same", timestamp=stamp(40)) as g:
            g["grid"][...] = current  # equal chunks: found by hash, nothing stored
        assert pool_slots(path)[0] == slots
        with vf.stage_version("new", timestamp=stamp(41)) as g:
            g["grid"][0, 0] = 1234.5  # one new chunk
        assert pool_slots(path)[0] == slots + 1
        assert vf["new"]["grid"][0, 0] == 1234.5
    after = everything(path)
    for name in before["__order__"]:
        assert after[name] == before[name], name


def test_the_issue_scenario_gets_close_to_live_size(tmp_path: Path) -> None:
    """11 versions of a 1 MiB array (each all new), 10 deleted: the compact file holds the
    live chunks once plus the plain mirror of the current version."""
    path = tmp_path / "data.h5"
    rng = np.random.default_rng(3)
    arrays = [rng.random(131072) for _ in range(11)]
    with VersionedFile(path, "a") as vf:
        for i, arr in enumerate(arrays):
            with vf.stage_version(f"v{i}") as g:
                if i == 0:
                    g.create_dataset("x", data=arr, chunks=(8192,))
                else:
                    g["x"][...] = arr
        vf.delete_versions([f"v{i}" for i in range(10)])
    size = os.path.getsize(path)
    assert size > 11 * arrays[0].nbytes
    summary = compact(path, progress=False)
    assert summary.bytes_before == size
    live = arrays[0].nbytes
    assert summary.bytes_after < 2 * live + 128 * 1024  # pool + mirror + metadata
    with VersionedFile(path, "r") as vf:
        assert vf.versions == ["v10"]
        np.testing.assert_array_equal(vf["v10"]["x"][()], arrays[10])


def test_a_copy_elsewhere_leaves_the_source(history_file: Path, tmp_path: Path) -> None:
    path = history_file
    before = everything(path)
    original = digest(path)
    out = tmp_path / "small.h5"
    summary = compact(path, out, progress=False)
    assert summary.out == str(out) and summary.bytes_after == os.path.getsize(out)
    assert digest(path) == original
    assert everything(out) == before
    with pytest.raises(NodeExistsError, match="exists; pass overwrite=True"):
        compact(path, out)
    compact(path, out, overwrite=True, progress=False)
    assert everything(out) == before


def test_plain_data_beside_a_tree_in_a_group(history_file: Path, tmp_path: Path) -> None:
    """A versioned tree below a group (the whole versioned file copied there) next to plain
    data with a second hard link: the tree is compacted, the rest kept, links included."""
    path = history_file
    before = everything(path)
    mixed = tmp_path / "mixed.h5"
    with h5py.File(path, "r") as src, h5py.File(mixed, "w", track_order=True) as dst:
        dst.attrs["kind"] = np.array([1, 2], dtype="u2")
        dst.create_dataset("plain", data=np.arange(10), compression="gzip")
        dst["alias"] = dst["plain"]
        dst["soft"] = h5py.SoftLink("/plain")
        inner = dst.create_group("inner")
        for key in src:  # the mirror, then the versions group (one copy: its links kept)
            src.copy(src[key], inner, key)
        for key, value in src.attrs.items():
            inner.attrs[key] = value
    slots, freed = pool_slots(mixed, f"inner/{DATA_GROUP}")
    summary = compact(mixed, progress=False)
    assert summary.trees == ["/inner"]
    assert pool_slots(mixed, f"inner/{DATA_GROUP}") == (slots - freed, 0)
    with h5py.File(mixed, "r") as f:
        assert list(f) == ["plain", "alias", "soft", "inner"]  # creation order kept
        assert f["alias"] == f["plain"] and f["plain"].compression == "gzip"
        assert f.get("soft", getlink=True).path == "/plain"
        assert f.attrs["kind"].dtype == np.dtype("u2")
        back = tmp_path / "back.h5"
        with h5py.File(back, "w") as out:
            for key in f["inner"]:
                f.copy(f["inner"][key], out, key)
            for key, value in f["inner"].attrs.items():
                out.attrs[key] = value
    assert everything(back) == before


# -- refusals -------------------------------------------------------------------------------------
def test_refused_while_a_writer_has_the_file(history_file: Path, tmp_path: Path) -> None:
    path = history_file
    original = digest(path)
    with VersionedFile(path, "a"):
        with pytest.raises(FileLockedError, match="open for writing"):
            compact(path)
    assert digest(path) == original


def test_bad_targets(tmp_path: Path) -> None:
    with pytest.raises(H5ForgeError, match="no such file"):
        compact(tmp_path / "missing.h5")
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    original = digest(plain)
    with pytest.raises(VersionError, match="has no versions.*h5forge repack"):
        compact(plain)
    assert digest(plain) == original
    with h5py.File(plain, "r") as f:
        with pytest.raises(TargetError, match="takes the path"):
            compact(f)
    text = tmp_path / "notes.txt"
    text.write_text("not HDF5")
    with pytest.raises(H5ForgeError, match="cannot open as HDF5"):
        compact(text)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "plain.h5"]


# -- crash safety ---------------------------------------------------------------------------------
def test_a_failure_half_way_leaves_the_original(history_file: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = history_file
    original = digest(path)

    def failing(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(compact_module._Copier, "copy_slots", failing)
    with pytest.raises(OSError, match="disk full"):
        compact(path, progress=False)
    assert digest(path) == original
    assert sorted(os.listdir(tmp_path)) == ["data.h5"]


def test_a_bad_copy_is_caught_before_the_rename(history_file: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = history_file
    original = digest(path)
    copy_slots = compact_module._Copier.copy_slots

    def corrupting(self, data, new, live, rows):
        copy_slots(self, data, new, live, rows)
        if new.shape[0] and not new.dtype.hasobject and new.dtype.names is None:
            new[0] = new[0] + 1  # one wrong chunk

    monkeypatch.setattr(compact_module._Copier, "copy_slots", corrupting)
    with pytest.raises(CorruptFileError, match="differs from the original.*was not changed"):
        compact(path, progress=False)
    assert digest(path) == original
    assert sorted(os.listdir(tmp_path)) == ["data.h5"]


def test_a_wrong_chunk_map_is_caught_before_the_rename(history_file: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = history_file
    original = digest(path)
    renumber = compact_module._Copier.renumber
    calls = {"n": 0}

    def off_by_one(self, node, old, new, tree, delta):
        renumber(self, node, old, new, tree, delta)
        values = np.array(new[()])
        if delta or not values.ndim or not (values >= 0).any():
            return
        calls["n"] += 1
        if calls["n"] == 3:  # one map names the next slot
            values[values >= 0] += 1
            new[...] = values

    monkeypatch.setattr(compact_module._Copier, "renumber", off_by_one)
    with pytest.raises(CorruptFileError, match="maps the chunks of .* differently"):
        compact(path, progress=False)
    assert digest(path) == original
    assert sorted(os.listdir(tmp_path)) == ["data.h5"]


def test_an_interrupted_commit_is_undone_first(history_file: Path, tmp_path: Path) -> None:
    path = history_file
    before = everything(path)
    journal = JournalFile(str(path))  # a writer that dies after overwriting the superblock
    journal.seek(0)
    journal.write(b"\0" * 512)
    journal.close()
    assert os.path.exists(journal_path(str(path)))
    compact(path, progress=False)
    assert not os.path.exists(journal_path(str(path)))
    assert everything(path) == before


def test_kill_9_while_compacting(history_file: Path, tmp_path: Path) -> None:
    path = history_file
    before = everything(path)
    original = digest(path)
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {SRC!r})
        import h5forge.versions
        c = sys.modules["h5forge.versions.compact"]
        copy_slots = c._Copier.copy_slots
        def slow(self, *args):
            copy_slots(self, *args)
            print("copying", flush=True)
            time.sleep(60)
        c._Copier.copy_slots = slow
        c.compact({str(path)!r}, progress=False)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "copying"
        assert list(tmp_path.glob(".h5forge-gc-*"))  # the copy was being written aside
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert digest(path) == original
    assert everything(path) == before
    for leftover in tmp_path.glob(".h5forge-gc-*"):  # the killed run's partial copy
        leftover.unlink()
    compact(path, progress=False)  # the lock died with the process
    assert everything(path) == before


# -- command line ---------------------------------------------------------------------------------
def test_cli_gc(history_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from h5forge.cli.main import main

    path = history_file
    before = everything(path)
    out = tmp_path / "out.h5"
    assert main(["versions", "gc", str(path), "-o", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{out}: ") and " -> " in printed and "freed" in printed
    assert everything(out) == before
    assert main(["versions", "gc", str(path), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["versions", "gc", str(path), "--no-progress", "--no-verify"]) == 0
    capsys.readouterr()
    assert everything(path) == before
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = 1
    assert main(["versions", "gc", str(plain)]) == 2
    assert "has no versions" in capsys.readouterr().err


def test_a_versioned_group_of_a_file(tmp_path: Path) -> None:
    """``VersionedFile(f["cal"])`` keeps its history inside the group; gc compacts it there
    and leaves the plain data of the file alone."""
    path = tmp_path / "run.h5"
    rng = np.random.default_rng(9)
    with h5py.File(path, "w") as f:
        f["raw/adc"] = np.arange(1000, dtype="i2")
        with VersionedFile(f.create_group("cal")) as vf:
            for i in range(6):
                with vf.stage_version(f"c{i}", timestamp=stamp(i)) as g:
                    if i == 0:
                        g.create_dataset("gains", data=rng.random(4096), chunks=(512,))
                    else:
                        g["gains"][...] = rng.random(4096)
            vf.delete_versions(["c1", "c2", "c3"])
    with h5py.File(path, "r") as f, VersionedFile(f["cal"]) as vf:
        before = _snapshot.history(vf)
    slots, freed = pool_slots(path, f"cal/{DATA_GROUP}")
    summary = compact(path, progress=False)
    assert summary.trees == ["/cal"]
    assert pool_slots(path, f"cal/{DATA_GROUP}") == (slots - freed, 0) and freed == 3 * 8
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["raw/adc"][()], np.arange(1000, dtype="i2"))
        with VersionedFile(f["cal"]) as vf:
            assert _snapshot.history(vf) == before


def test_a_user_block_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "data.h5"
    with h5py.File(path, "w", userblock_size=512) as f:
        with VersionedFile(f) as vf:
            for i in range(3):
                with vf.stage_version(f"v{i}", timestamp=stamp(i)) as g:
                    g["x"] = np.full(1000, float(i))
            vf.delete_versions(["v0", "v1"])
    with open(path, "r+b") as raw:
        raw.write(b"#!header written by the application\n")
    compact(path, progress=False)
    with open(path, "rb") as raw:
        assert raw.read(36) == b"#!header written by the application\n"
    with VersionedFile(path, "r") as vf:
        assert vf.versions == ["v2"]
        np.testing.assert_array_equal(vf["v2"]["x"][()], np.full(1000, 2.0))


def test_a_dataset_never_written_and_a_pool_with_no_chunks(tmp_path: Path) -> None:
    """A dataset of fill value only stores no chunk: its pool is empty and its map all -1."""
    path = tmp_path / "data.h5"
    with VersionedFile(path, "a") as vf:
        with vf.stage_version("v1", timestamp=stamp(1)) as g:
            g.create_dataset("blank", shape=(100,), dtype="f4", chunks=(10,), fillvalue=3.0)
            g.create_dataset("back", shape=(100,), dtype="i2", chunks=(10,), fillvalue=7)
            g.create_dataset("x", data=np.arange(50.0), chunks=(10,))
        with vf.stage_version("v2", timestamp=stamp(2)) as g:
            g["x"][...] = -1.0
            g["back"][5] = 1
        with vf.stage_version("v3", timestamp=stamp(3)) as g:
            g["back"][5] = 7  # all fill again: v2's chunk is used by no version left
        vf.delete_versions(["v2"])
        before = _snapshot.history(vf)
    compact(path, progress=False)
    with VersionedFile(path, "r") as vf:
        assert _snapshot.history(vf) == before
        np.testing.assert_array_equal(vf["v3"]["blank"][()], np.full(100, 3.0, dtype="f4"))
