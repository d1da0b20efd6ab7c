"""Paths that used to lose or corrupt data silently: writes to an ended stage, two handles on
one file, a group as the versioned target, plain h5py writes into the mirror."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from h5forge.errors import VersionClosedError, VersionError
from h5forge.versions import FIRST_VERSION, VersionedFile
from h5forge.versions.journal import FileLockedError


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "data.h5")


def _one_version(path: str) -> None:
    """A file with one version, "v1", holding x = [1]."""
    with VersionedFile(path, "w") as vf:
        with vf.stage_version("v1") as g:
            g["x"] = [1]


# -- 1. a stage that has ended refuses every use -------------------------------------------------

def _ended_stage(vf: VersionedFile, fail: bool = False):
    if fail:
        with pytest.raises(RuntimeError):
            with vf.stage_version("v1") as g:
                x = g.create_dataset("x", data=np.arange(4), maxshape=(None,))
                raise RuntimeError("boom")
    else:
        with vf.stage_version("v1") as g:
            x = g.create_dataset("x", data=np.arange(4), maxshape=(None,))
            sub = g.create_group("sub")
    return g, x, (sub if not fail else None)


WRITES = [
    ("dataset item", lambda g, x: x.__setitem__(0, 100)),
    ("new dataset by assignment", lambda g, x: g.__setitem__("y", [1, 2])),
    ("resize", lambda g, x: x.resize((10,))),
    ("create_dataset", lambda g, x: g.create_dataset("z", data=[1])),
    ("create_group", lambda g, x: g.create_group("h")),
    ("delete", lambda g, x: g.__delitem__("x")),
    ("group attribute", lambda g, x: g.attrs.__setitem__("a", 1)),
    ("dataset attribute", lambda g, x: x.attrs.__setitem__("a", 1)),
    ("attrs.update", lambda g, x: g.attrs.update({"a": 1})),
    ("read", lambda g, x: x[0]),
    ("member lookup", lambda g, x: g["x"]),
    ("membership", lambda g, x: "x" in g),
    ("iteration", lambda g, x: list(g)),
    ("attribute read", lambda g, x: g.attrs.get("a")),
]


@pytest.mark.parametrize("what, use", WRITES, ids=[w for w, _ in WRITES])
def test_committed_stage_refuses_use(path, what, use):
    with VersionedFile(path, "w") as vf:
        g, x, _ = _ended_stage(vf)
        with pytest.raises(VersionClosedError, match="stage of version 'v1' was committed"):
            use(g, x)
        # nothing of the refused call reached the version or the mirror
        np.testing.assert_array_equal(vf["v1"]["x"][:], np.arange(4))
        assert sorted(vf["v1"]) == ["sub", "x"] and dict(vf["v1"]["x"].attrs) == {}
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["x"][()], np.arange(4))
        assert "y" not in f and "a" not in f.attrs


def test_issue_example_raises_at_each_write(path):
    with VersionedFile(path, "w") as vf:
        with vf.stage_version("v1") as g:
            g.create_dataset("x", data=np.arange(4), maxshape=(None,))
        for write in (lambda: g["x"].__setitem__(0, 100), lambda: g.__setitem__("y", [1, 2]),
                      lambda: g["x"].resize((10,))):
            with pytest.raises(VersionClosedError):
                write()
    with VersionedFile(path, "r") as vf:
        np.testing.assert_array_equal(vf["v1"]["x"][:], np.arange(4))


def test_stage_ended_by_exception_refuses_use(path):
    with VersionedFile(path, "w") as vf:
        g, x, _ = _ended_stage(vf, fail=True)
        with pytest.raises(VersionClosedError, match="ended with an exception"):
            x[0] = 1
        assert vf.versions == []


def test_subgroup_and_dataset_taken_from_ended_stage_refuse(path):
    with VersionedFile(path, "w") as vf:
        g, x, sub = _ended_stage(vf)
        with pytest.raises(VersionClosedError):
            sub.create_dataset("late", data=[1])
        with pytest.raises(VersionClosedError):
            sub.attrs["late"] = 1


def test_closed_file_refuses_use(path):
    vf = VersionedFile(path, "w")
    with vf.stage_version("v1") as g:
        g["x"] = [1, 2, 3]
    view = vf["v1"]
    vf.close()
    assert vf.closed
    for use in (lambda: vf["v1"], lambda: vf.versions, lambda: vf.current_version,
                lambda: view["x"], lambda: vf.stage_version("v2").__enter__(),
                lambda: vf.delete_versions("v1")):
        with pytest.raises(VersionClosedError, match="closed"):
            use()


def test_closing_the_file_inside_a_stage_ends_it(path):
    vf = VersionedFile(path, "w")
    stage = vf.stage_version("v1")
    g = stage.__enter__()
    g["x"] = [1]
    vf.close()
    with pytest.raises(VersionClosedError):
        g["y"] = [2]
    with VersionedFile(path, "r") as again:
        assert again.versions == []


# -- 2. handles over one open h5py.File share one state -----------------------------------------

def _fill(vf: VersionedFile, name: str, value: int) -> None:
    with vf.stage_version(name) as g:
        if "x" not in g:
            g.create_dataset("x", shape=(40,), dtype="i8", chunks=(4,))
        g["x"][:] = np.arange(40) + value


def test_two_handles_over_one_file_never_share_a_slot(path):
    """The issue's corruption: after delete_versions, each handle reused slots the other still
    mapped, and a version read another version's chunks."""
    with h5py.File(path, "w") as f:
        a, b = VersionedFile(f), VersionedFile(f)
        _fill(a, "v1", 0)
        _fill(b, "v2", 1000)
        _fill(a, "v3", 2000)
        a.delete_versions(["v2"])      # frees v2's slots, in the shared pool
        _fill(b, "v4", 3000)           # b reuses them: a must not hand them out again
        _fill(a, "v5", 4000)
        for vf in (a, b):
            for name, value in (("v1", 0), ("v3", 2000), ("v4", 3000), ("v5", 4000)):
                np.testing.assert_array_equal(vf[name]["x"][:], np.arange(40) + value)
        a.close()
        b.close()
    with VersionedFile(path, "r") as vf:
        for name, value in (("v1", 0), ("v3", 2000), ("v4", 3000), ("v5", 4000)):
            np.testing.assert_array_equal(vf[name]["x"][:], np.arange(40) + value)


def test_one_stage_at_a_time_across_handles(path):
    with h5py.File(path, "w") as f:
        a, b = VersionedFile(f), VersionedFile(f)
        with a.stage_version("v1") as g:
            g["x"] = [1]
            with pytest.raises(VersionError, match="'v1' is already being staged"):
                with b.stage_version("other"):
                    pass
            with pytest.raises(VersionError, match="while version 'v1' is being staged"):
                b.delete_versions([])
        assert b.versions == ["v1"]


def test_open_h5py_file_gets_the_writer_lock(path):
    _one_version(path)
    with h5py.File(path, "r+") as f:
        held = VersionedFile(f)
        with pytest.raises(FileLockedError):
            VersionedFile(path, "a")           # a path writer while an h5py.File writes
        held.close()
        with VersionedFile(path, "a") as vf:    # the lock is gone with the last handle
            assert vf.versions == ["v1"]
    with VersionedFile(path, "a"):
        with h5py.File(path, "r+") as f:        # the other way round
            with pytest.raises(FileLockedError):
                VersionedFile(f)


def test_writer_lock_across_processes(path):
    _one_version(path)
    with h5py.File(path, "r+") as f:
        held = VersionedFile(f)
        code = textwrap.dedent(f"""
            from h5forge.versions import VersionedFile
            from h5forge.versions.journal import FileLockedError
            try:
                VersionedFile({path!r}, "a")
            except FileLockedError:
                print("locked")
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60)
        assert out.stdout.strip() == "locked", out.stderr
        held.close()


def test_read_only_h5py_file_is_not_locked(path):
    _one_version(path)
    with h5py.File(path, "r") as f:
        reader = VersionedFile(f)
        assert reader.versions == ["v1"]
        with pytest.raises(VersionError, match="read-only"):
            with reader.stage_version("v2"):
                pass


# -- 3. a group holds its own versioned tree -----------------------------------------------------

def test_group_as_target_leaves_the_rest_of_the_file(path):
    with h5py.File(path, "w") as f:
        f["keep/me"] = np.arange(3)
        f.attrs["title"] = "not versioned"
        grp = f.create_group("calibration")
        vf = VersionedFile(grp)
        with vf.stage_version("v1") as g:
            g["gains"] = np.ones(5)
            g.attrs["note"] = "in the group"
        with vf.stage_version("v2") as g:
            g["gains"][0] = 7
        vf.current_version = "v1"  # rebuilds the mirror: only inside the group
        assert f.attrs["title"] == "not versioned"
        np.testing.assert_array_equal(f["keep/me"][()], np.arange(3))
        np.testing.assert_array_equal(f["calibration/gains"][()], np.ones(5))
        assert f["calibration"].attrs["note"] == "in the group"
        assert vf["v2"]["gains"][0] == 7
        vf.close()
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["calibration", "keep"]
        with VersionedFile(f["calibration"]) as vf:
            assert vf.versions == ["v1", "v2"]


def test_two_groups_hold_independent_histories(path):
    with h5py.File(path, "w") as f:
        a = VersionedFile(f.create_group("a"))
        b = VersionedFile(f.create_group("b"))
        with a.stage_version("v1") as g:
            g["x"] = np.arange(10)
        with b.stage_version("v1") as g:
            g["x"] = np.arange(10) * 2
        with b.stage_version("v2") as g:
            g["x"][:] = 5
        assert a.versions == ["v1"] and b.versions == ["v1", "v2"]
        np.testing.assert_array_equal(a["v1"]["x"][:], np.arange(10))
        np.testing.assert_array_equal(b["v1"]["x"][:], np.arange(10) * 2)
        np.testing.assert_array_equal(f["a/x"][()], np.arange(10))
        np.testing.assert_array_equal(f["b/x"][()], np.full(10, 5))
        a.close()
        b.close()


def test_group_with_plain_data_is_refused(path):
    with h5py.File(path, "w") as f:
        f["grp/data"] = [1]
        with pytest.raises(VersionError, match="grp already holds plain HDF5 data"):
            VersionedFile(f["grp"])
        assert list(f["grp"]) == ["data"]


# -- 4. plain h5py writes into the mirror are not deleted by the next commit --------------------

def test_foreign_member_in_mirror_stops_the_commit(path):
    with VersionedFile(path, "w") as vf:
        with vf.stage_version("v1") as g:
            g["x"] = np.arange(3)
    with h5py.File(path, "r+") as f:
        f["mine"] = np.arange(5)  # written outside any stage
    with VersionedFile(path, "a") as vf:
        with pytest.raises(VersionError, match="/mine is not part of version 'v1'"):
            with vf.stage_version("v2") as g:
                g["y"] = [1]
        assert vf.versions == ["v1"]
        with pytest.raises(VersionError, match="/mine"):
            vf.current_version = "v1"
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["mine"][()], np.arange(5))


def test_foreign_member_in_a_changed_group_is_found(path):
    with VersionedFile(path, "w") as vf:
        with vf.stage_version("v1") as g:
            g["grp/x"] = np.arange(3)
    with h5py.File(path, "r+") as f:
        f["grp/mine"] = [1]
    with VersionedFile(path, "a") as vf:
        with pytest.raises(VersionError, match="/grp/mine"):
            with vf.stage_version("v2") as g:
                g["grp/x"][0] = 9
    with h5py.File(path, "r") as f:
        assert list(f["grp/mine"][()]) == [1]


def test_foreign_attribute_in_mirror_stops_the_commit(path):
    with VersionedFile(path, "w") as vf:
        with vf.stage_version("v1") as g:
            g["x"] = np.arange(3)
            g.attrs["title"] = "run 1"
    with h5py.File(path, "r+") as f:
        f.attrs["comment"] = "written with h5py"
    with VersionedFile(path, "a") as vf:
        with pytest.raises(VersionError, match="attribute 'comment'"):
            with vf.stage_version("v2") as g:
                g.attrs["title"] = "run 2"
    with h5py.File(path, "r") as f:
        assert f.attrs["comment"] == "written with h5py" and f.attrs["title"] == "run 1"


def test_prev_version_empty_string_means_no_previous(path):
    with VersionedFile(path, "w") as vf:
        with vf.stage_version("v1") as g:
            g["x"] = [1]
        with vf.stage_version("fresh", prev_version="") as g:
            assert list(g) == []
            g["y"] = [2]
        assert vf["fresh"].attrs["prev_version"] == FIRST_VERSION
        assert list(vf["fresh"]) == ["y"]


def test_cli_reads_a_tree_kept_in_a_group(path, tmp_path):
    with h5py.File(path, "w") as f:
        f["other"] = [1]
        with VersionedFile(f.create_group("cal")) as vf:
            with vf.stage_version("v1") as g:
                g["x"] = np.arange(5)
            with vf.stage_version("v2") as g:
                g["x"][0] = 9
    cli = [sys.executable, "-m", "h5forge", "versions"]
    log = subprocess.run(cli + ["log", path, "--group", "cal"], capture_output=True, text=True)
    assert log.returncode == 0 and "v2" in log.stdout and "v1" in log.stdout
    out = str(tmp_path / "v1.h5")
    export = subprocess.run(cli + ["export", path, "v1", out, "-g", "/cal"],
                            capture_output=True, text=True)
    assert export.returncode == 0, export.stderr
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["x"][()], np.arange(5))
    root = subprocess.run(cli + ["log", path], capture_output=True, text=True)
    assert root.returncode == 2 and "versioned trees in groups: /cal" in root.stderr
    missing = subprocess.run(cli + ["diff", path, "v1", "v2", "-g", "nope"],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "nope: no such group" in missing.stderr


def test_fixed_length_utf8_strings_keep_their_encoding(path):
    """'|S20' would store the text as ASCII: h5py then reads it back as bytes of unknown
    encoding (found importing versioned-hdf5's own test files)."""
    dtype = h5py.string_dtype("utf-8", 20)
    text = np.array(["héllo".encode(), "wörld".encode()], dtype=dtype)
    with VersionedFile(path, "w") as vf:
        with vf.stage_version("v1") as g:
            g.create_dataset("s", data=text, dtype=dtype)
        with vf.stage_version("v2") as g:
            g["s"][1] = "ok".encode()
        for name in ("v1", "v2"):
            assert h5py.check_string_dtype(vf[name]["s"].dtype).encoding == "utf-8"
    with h5py.File(path, "r") as f:
        assert list(f["s"].asstr()[()]) == ["héllo", "ok"]
