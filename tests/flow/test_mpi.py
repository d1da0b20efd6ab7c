"""When flows run on one rank, and why (the MPI runs themselves are in tests/mpi)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from h5forge.cli.main import main
from h5forge.flow import run
from h5forge.flow.mpi import NOMPI_ENV, Ranks, ranks

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flow" / "pipeline.yaml"
LAUNCHERS = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
             "PMIX_SIZE", "PMIX_RANK", NOMPI_ENV)


@pytest.fixture(autouse=True)
def no_launcher(monkeypatch):
    for name in LAUNCHERS:
        monkeypatch.delenv(name, raising=False)


def launched(monkeypatch, size: int, rank: int) -> None:
    monkeypatch.setenv("PMI_SIZE", str(size))
    monkeypatch.setenv("PMI_RANK", str(rank))


def test_without_a_launcher_one_rank():
    here = ranks()
    assert (here.parallel, here.rank, here.size, here.active) == (False, 0, 1, True)
    assert "not started by an MPI launcher" in here.reason


@pytest.mark.parametrize("rank", [0, 1])
def test_several_launched_processes_without_mpi_support_leave_the_work_to_rank_0(
        monkeypatch, rank):
    launched(monkeypatch, 2, rank)
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # not installed (as in make test's venv)
    here = ranks()
    assert "mpi4py is not installed" in here.reason and "h5forge[mpi]" in here.reason
    assert here.active is (rank == 0) and not here.parallel


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_nompi_under_a_launcher(monkeypatch, how):
    launched(monkeypatch, 4, 3)
    if how == "environment":
        monkeypatch.setenv(NOMPI_ENV, "1")
    here = ranks(True if how == "argument" else None)
    assert not here.active and "MPI switched off" in here.reason
    assert ("nompi=True" if how == "argument" else NOMPI_ENV) in here.reason
    assert "launcher rank 3 does nothing" in here.reason


def test_an_idle_rank_writes_nothing(monkeypatch, tmp_path):
    launched(monkeypatch, 2, 1)
    out = tmp_path / "out.h5"
    summary = run(EXAMPLE, out, nompi=True, progress=False)
    assert summary.rows == 0 and not out.exists() and "does nothing" in summary.mpi


def test_cli_verbose_says_why_one_rank(tmp_path, capsys):
    out = tmp_path / "out.h5"
    assert main(["flow", "-c", str(EXAMPLE), "-o", str(out), "--no-progress", "-v",
                 "-e", "500"]) == 0
    printed = capsys.readouterr().out
    assert "h5forge flow: one rank: not started by an MPI launcher" in printed
    assert "500 rows in 2 chunks," in printed


def test_a_failing_gather_on_one_rank_raises_the_error():
    error = ValueError("bad")
    with pytest.raises(ValueError, match="bad"):
        Ranks().fail(error)
    assert Ranks().gather(5) == [5]
