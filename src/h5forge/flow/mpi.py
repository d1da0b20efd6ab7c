"""The ranks of a flow run: MPI (mpi4py + parallel h5py) when it is there, else one rank.

A run uses MPI when it was started under an MPI launcher with more than one rank, mpi4py imports,
and h5py was built with parallel HDF5 (``h5py.get_config().mpi``). ``nompi=True`` or the
environment variable ``H5FORGE_NOMPI=1`` forces one rank. :func:`ranks` says why it chose what
it chose (``Ranks.reason``; the CLI prints it at ``-v``).

Every collective step of a run (the generator's turn, each data manager call that changes the
file, the end) starts with :meth:`Ranks.gather`, an ``allgather`` that also carries failures: a
rank whose stage raised joins the next gather with its error, so every other rank learns of it
there and stops, instead of waiting forever in a collective call the failed rank never makes.
The error is reported once: by the lowest rank that failed; the others raise
:class:`PeerFailed`, which the CLI does not print.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from h5forge.errors import FlowError

__all__ = ["Ranks", "PeerFailed", "ranks", "NOMPI_ENV"]

#: Set to 1 (or true/yes) to run flows on one rank even under mpiexec.
NOMPI_ENV = "H5FORGE_NOMPI"

# What MPI launchers set in each rank's environment: (size, rank) variables of MPICH/Hydra,
# Open MPI and PMIx launchers.
_LAUNCHER_ENV = (("PMI_SIZE", "PMI_RANK"), ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
                 ("PMIX_SIZE", "PMIX_RANK"))


class PeerFailed(FlowError):
    """Another rank failed; its error is reported there (this rank stops quietly)."""

    h5forge_report = False


@dataclass
class Ranks:
    """The communicator of a run (``comm`` None on one rank), this rank and how many there
    are, and why MPI is or is not used."""

    comm: Any = None
    rank: int = 0
    size: int = 1
    reason: str = "one rank"
    #: False on the extra processes of a launcher whose ranks cannot work together (no mpi4py
    #: or no parallel h5py): only the launcher's rank 0 runs the flow, the others do nothing.
    active: bool = True

    @property
    def parallel(self) -> bool:
        return self.comm is not None

    def gather(self, payload: Any = None, error: BaseException | None = None) -> list[Any]:
        """Every rank's ``payload`` (rank order). If any rank passes an ``error``, every rank
        raises: the failed ones their own error, the others :class:`PeerFailed`."""
        if self.comm is None:
            if error is not None:
                raise error
            return [payload]
        if error is not None and getattr(error, "h5forge_shared", False):
            raise error  # every rank knows of it already (raised by an earlier gather)
        text = None if error is None else f"{type(error).__name__}: {error}"
        gathered = self.comm.allgather((text, payload))
        failed = [(r, msg) for r, (msg, _) in enumerate(gathered) if msg is not None]
        if failed:
            first, message = failed[0]
            if error is None:
                error = PeerFailed(f"rank {first} of {self.size} failed, so this rank "
                                   f"stopped: {message}")
            else:
                error.h5forge_report = self.rank == first  # type: ignore[attr-defined]
            error.h5forge_shared = True  # type: ignore[attr-defined]
            raise error
        return [payload for _, payload in gathered]

    def fail(self, error: BaseException) -> None:
        """Tell the other ranks this one failed, then raise ``error`` (the other ranks raise
        :class:`PeerFailed` at their next gather). An error a gather raised is known to every
        rank already: it is raised again without another gather."""
        self.gather(error=error)
        raise error  # pragma: no cover - gather raised already

    def barrier(self) -> None:
        if self.comm is not None:
            self.comm.Barrier()


def _nompi_env() -> bool:
    return os.environ.get(NOMPI_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _launched() -> tuple[int, int] | None:
    """``(size, rank)`` from an MPI launcher's environment, or None."""
    for size, rank in _LAUNCHER_ENV:
        if os.environ.get(size, "").isdigit():
            return int(os.environ[size]), int(os.environ.get(rank, "0") or 0)
    return None


def ranks(nompi: bool | None = None) -> Ranks:
    """The ranks to run on: MPI's ``COMM_WORLD`` when this process is one of several MPI ranks
    and both mpi4py and parallel h5py are there; else one rank, with the reason. When a
    launcher started several processes that cannot work together, only its rank 0 is active
    (two serial runs must not write one file)."""
    launched = _launched()
    extra = launched is not None and launched[1] != 0

    def serial(reason: str) -> Ranks:
        if extra:
            reason += f"; launcher rank {launched[1]} does nothing"
        return Ranks(reason=reason, active=not extra)

    if nompi or (nompi is None and _nompi_env()):
        return serial("one rank: MPI switched off (" + (
            "nompi=True" if nompi else f"{NOMPI_ENV} is set") + ")")
    if launched is None or launched[0] <= 1:
        return Ranks(reason="one rank: not started by an MPI launcher with several ranks "
                            "(mpiexec -n N ...)")
    try:
        from mpi4py import MPI
    except ImportError as exc:
        return serial(f"one rank: mpi4py is not installed ({exc}); pip install "
                      f"'h5forge[mpi]' and build h5py with MPI (make mpi)")
    import h5py

    if not h5py.get_config().mpi:
        return serial(f"one rank: h5py {h5py.__version__} was built without MPI (parallel "
                      f"HDF5); see the README's 'make mpi'")
    comm = MPI.COMM_WORLD
    return Ranks(comm=comm, rank=comm.Get_rank(), size=comm.Get_size(),
                 reason=f"MPI: {comm.Get_size()} ranks, parallel HDF5 "
                        f"{h5py.version.hdf5_version}")
