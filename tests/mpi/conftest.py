"""Tests run under ``mpiexec -n 2`` (``make test`` does it with the environment built by
``scripts/mpi-env.sh``): every rank runs every test, so tests make the same collective calls on
every rank. Outside such a run (plain ``pytest tests``) the files here are not collected."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest


def _parallel() -> bool:
    try:
        import h5py
        from mpi4py import MPI
    except ImportError:
        return False
    return MPI.COMM_WORLD.Get_size() > 1 and bool(h5py.get_config().mpi)


if not _parallel():
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture
def comm() -> Any:
    from mpi4py import MPI

    return MPI.COMM_WORLD


@pytest.fixture
def shared_dir(comm: Any) -> Iterator[Path]:
    """One temporary directory for all ranks (rank 0 makes it and removes it)."""
    path = comm.bcast(tempfile.mkdtemp(prefix="h5forge-mpi-") if comm.rank == 0 else None)
    yield Path(path)
    comm.Barrier()
    if comm.rank == 0:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_nompi_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("H5FORGE_NOMPI", raising=False)


def all_ranks(comm: Any, value: Any) -> list[Any]:
    """Every rank's ``value`` (rank order), so each rank can assert on all of them."""
    return comm.allgather(value)

