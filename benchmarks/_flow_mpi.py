"""The MPI section of bench_flow.py: one flow over 10 million rows on 1 and on 2 MPI ranks.

Two flows over a source table of ``--mpi-rows`` float64 rows (10,000,000; ``--quick``
1,000,000) in chunks of 200,000 rows:

* **cpu**: a stage doing about 60 transcendental operations per row (numpy, one thread) and
  writing one float32 per row to a table aligned with the source;
* **copy**: a stage copying each chunk to a new table (I/O-bound: read, write, nothing else).

Each runs under ``mpiexec -n 1`` and ``mpiexec -n 2`` with the MPI environment's python
(``make mpi``; its path is in ``.make-mpi-python``, or give ``H5FORGE_MPI_PYTHON``). With one
rank the flow takes the serial path (no MPI-IO); with two, parallel HDF5. Timed: the whole
``h5forge.flow.run`` call on rank 0 (best of ``--repeat``), on a fresh copy of the source file.
Checked after each run: the output table equals what one rank computes. Goal: 2 ranks give at
least 1.7x the rows per second of 1 rank for the CPU-bound stage; the copy's ratio is reported.

    python benchmarks/_flow_mpi.py child KIND SOURCE OUT   # what mpiexec runs (rank 0 prints)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
from _common import fmt_time, print_table, report_target  # noqa: E402 (benchmarks/ on path)

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 200_000
ROUNDS = 30  # sin + cos + 3 arithmetic ops per round, per row
GOAL_CPU = 1.7

STAGES = f'''
import numpy as np
from h5forge.flow import Stage


class Cpu(Stage):
    def init(self, source_name):
        self.data_manager.create_dset("result", "<f4")

    def run(self, source_name, source_slice, cache):
        y = np.asarray(cache[source_name], dtype=np.float64)
        for _ in range({ROUNDS}):
            y = np.sin(y) * 1.0001 + np.cos(y) * 0.5
        sel = self.data_manager.reserve_data("result", source_slice)
        self.data_manager.write_data("result", sel, y.astype("<f4"))


class Copy(Stage):
    def init(self, source_name):
        self.data_manager.create_dset("copy", "<f8")

    def run(self, source_name, source_slice, cache):
        sel = self.data_manager.reserve_data("copy", source_slice)
        self.data_manager.write_data("copy", sel, cache[source_name])
'''


def expected(kind: str, x: np.ndarray) -> np.ndarray:
    if kind == "copy":
        return x
    y = x.astype(np.float64)
    for _ in range(ROUNDS):
        y = np.sin(y) * 1.0001 + np.cos(y) * 0.5
    return y.astype("<f4")


def mpi_python() -> tuple[str | None, str]:
    """The MPI environment's python, or None and why not."""
    path = os.environ.get("H5FORGE_MPI_PYTHON")
    if not path:
        marker = ROOT / ".make-mpi-python"
        if not marker.exists():
            return None, "no MPI environment: run `make mpi` (or set H5FORGE_MPI_PYTHON)"
        path = marker.read_text().strip()
    if shutil.which("mpiexec") is None:
        return None, "mpiexec is not installed (make mpi installs Debian's mpich)"
    return path, ""


def make_source(workdir: Path, rows: int) -> Path:
    path = workdir / "mpi_source.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x/data", data=np.linspace(0.0, 50.0, rows), maxshape=(None,),
                         chunks=(8192,))
    return path


def write_config(workdir: Path, kind: str) -> Path:
    (workdir / "mpi_stages.py").write_text(STAGES)
    config = workdir / f"mpi_{kind}.yaml"
    config.write_text(
        f"flow: {{source: loop, stages: [work]}}\n"
        f"loop: {{classname: LoopGenerator, dset_name: x, params: {{chunk_size: {CHUNK}}}}}\n"
        f"work: {{classname: {kind.capitalize()}, path: mpi_stages.py}}\n")
    return config


def one_run(python: str, ranks: int, kind: str, source: Path, workdir: Path) -> float:
    out = workdir / f"mpi_{kind}_{ranks}.h5"
    shutil.copyfile(source, out)
    env = dict(os.environ, MPIEXEC_TIMEOUT="900")
    env.pop("H5FORGE_NOMPI", None)
    done = subprocess.run(["mpiexec", "-n", str(ranks), python, __file__, "child",
                           str(write_config(workdir, kind)), str(out)],
                          env=env, capture_output=True, text=True, timeout=1000)
    if done.returncode:
        raise RuntimeError(f"mpiexec -n {ranks} failed:\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if report["ranks"] != ranks:
        raise RuntimeError(f"asked for {ranks} ranks, the flow ran on {report['ranks']}: "
                           f"{report['mpi']}")
    with h5py.File(out, "r") as f:
        got = f["result/data" if kind == "cpu" else "copy/data"][()]
        x = f["x/data"][()]
    if not np.array_equal(got, expected(kind, x)):
        raise RuntimeError(f"{kind} on {ranks} ranks: wrong output")
    out.unlink()
    return report["seconds"]


def child(config: str, out: str) -> None:
    from mpi4py import MPI

    from h5forge.flow import run

    comm = MPI.COMM_WORLD
    comm.Barrier()
    began = time.perf_counter()
    summary = run(config, out, progress=False)
    comm.Barrier()
    seconds = time.perf_counter() - began
    if comm.rank == 0:
        print(json.dumps({"seconds": seconds, "ranks": summary.ranks, "mpi": summary.mpi,
                          "rows": summary.rows}))


def case_mpi(args, workdir: str, tools) -> None:
    rows = args.mpi_rows
    print(f"\n== MPI: {rows:,} rows in chunks of {CHUNK:,}, 1 rank vs 2 ranks "
          f"(best of {args.repeat})")
    python, missing = mpi_python()
    if python is None:
        print(f"n/a: {missing}")
        return
    work = Path(workdir)
    source = make_source(work, rows)
    table = []
    for kind in ("cpu", "copy"):
        best = {}
        try:
            for _ in range(args.repeat):
                for ranks in (1, 2):
                    seconds = one_run(python, ranks, kind, source, work)
                    best[ranks] = min(best.get(ranks, seconds), seconds)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            print(f"{kind}: n/a ({exc})", file=sys.stderr)
            table.append([kind, "n/a", "n/a", "n/a"])
            continue
        speedup = best[1] / best[2]
        table.append([kind, f"{fmt_time(best[1])} ({rows / best[1] / 1e6:.2f} M rows/s)",
                      f"{fmt_time(best[2])} ({rows / best[2] / 1e6:.2f} M rows/s)",
                      f"{speedup:.2f}x"])
        if kind == "cpu":
            report_target(f"CPU-bound stage, 2 ranks vs 1: >= {GOAL_CPU}x the rows per second",
                          f"{speedup:.2f}x", speedup >= GOAL_CPU)
        else:
            print(f"I/O-bound copy, 2 ranks vs 1: {speedup:.2f}x (reported, no goal)")
    print_table("flow on MPI ranks", ["stage", "1 rank", "2 ranks", "2 ranks / 1 rank"],
                table)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "child":
    child(sys.argv[2], sys.argv[3])
