"""``h5forge versions import`` and ``h5forge versions gc`` as a user runs them: the real command
in a subprocess, exit codes, what it prints, and what it leaves on disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

from h5forge.versions import VersionedFile

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "versioned_hdf5_v1.h5"


def h5forge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "h5forge", *args], capture_output=True,
                          text=True, timeout=120)


def test_help_lists_import_and_gc() -> None:
    result = h5forge("versions", "--help")
    assert result.returncode == 0
    assert "import" in result.stdout and "gc" in result.stdout
    result = h5forge("versions", "gc", "--help")
    assert result.returncode == 0 and "--out" in result.stdout and "--no-verify" in result.stdout


def test_import_then_delete_then_gc(tmp_path: Path) -> None:
    out = tmp_path / "imported.h5"
    result = h5forge("versions", "import", str(GOLDEN), str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("imported 8 versions (current: v5)")
    log = h5forge("versions", "log", str(out))
    assert log.returncode == 0 and "b2" in log.stdout and "2024-03-01 08:30:15" in log.stdout
    with VersionedFile(out, "r+") as vf:
        before = {name: vf[name]["x"][()] for name in ("v2", "v5")}
        vf.delete_versions(["v1", "b1", "b2", "v3", "v4", "z0"])
    size = os.path.getsize(out)
    result = h5forge("versions", "gc", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{out}: ") and "freed" in result.stdout
    assert os.path.getsize(out) < size
    with VersionedFile(out, "r") as vf:
        assert vf.versions == ["v2", "v5"]
        for name, values in before.items():
            np.testing.assert_array_equal(vf[name]["x"][()], values)
    assert sorted(os.listdir(tmp_path)) == ["imported.h5"]


def test_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    result = h5forge("versions", "import", str(plain), str(tmp_path / "out.h5"))
    assert result.returncode == 2
    assert result.stderr.startswith("h5forge: error: ") and "not a versioned-hdf5 file" in \
        result.stderr and "Traceback" not in result.stderr
    result = h5forge("versions", "gc", str(plain))
    assert result.returncode == 2 and "has no versions" in result.stderr
    result = h5forge("versions", "gc", str(tmp_path / "missing.h5"))
    assert result.returncode == 2 and "no such file" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["plain.h5"]
