"""The flow engine on 2 MPI ranks (parallel HDF5): the same output as on one rank, exact
regions where ranks reference the same rows, compression, and a failure on one rank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from h5forge.errors import FlowError
from h5forge.flow import run
from h5forge.flow.mpi import PeerFailed

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "flow" / "pipeline.yaml"
PIPELINES = Path(__file__).resolve().with_name("pipelines.py")

REFS_YAML = f"""
flow:
  source: events
  stages: [hits, tracks]
events: {{classname: LoopGenerator, dset_name: events, params: {{chunk_size: 40}}}}
hits: {{classname: Hits, path: {PIPELINES}}}
tracks:
  classname: Tracks
  path: {PIPELINES}
  requires:
    - {{name: event_hits, path: hits}}
    - {{name: event_channels, path: [hits, channels]}}
"""


def tables(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of a file, read whole."""
    found: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return found


def assert_same_tables(a: dict[str, np.ndarray], b: dict[str, np.ndarray],
                       skip: tuple[str, ...] = (), ref_order: bool = True) -> None:
    """The same datasets with the same contents. ``ref_order=False``: reference tables may
    hold their rows in another order (a stage writing references in several calls per chunk
    writes them step by step on N ranks, chunk by chunk on one), so they are compared
    sorted and region tables (positions in them) are left to :func:`assert_exact_regions`."""
    assert sorted(a) == sorted(b)
    for name in a:
        if name in skip or (not ref_order and name.endswith("/ref_region")):
            continue
        x, y = a[name], b[name]
        if not ref_order and name.endswith("/ref"):
            x, y = x[np.lexsort(x.T[::-1])], y[np.lexsort(y.T[::-1])]
        assert x.dtype == y.dtype and x.shape == y.shape, name
        for field in x.dtype.names or (None,):
            np.testing.assert_array_equal(x if field is None else x[field],
                                          y if field is None else y[field], err_msg=name)


def assert_exact_regions(path: Path) -> int:
    """Every region row spans exactly its row's references (first to last), and rows without
    references have an empty region. Returns how many reference tables were checked."""
    refs: dict[tuple[str, str], np.ndarray] = {}
    with h5py.File(path, "r") as f:  # h5flow's layout: the tables named by dset0 / dset1
        f.visititems(lambda name, obj: refs.__setitem__(
            (obj.attrs["dset0"][1:-len("/data")], obj.attrs["dset1"][1:-len("/data")]), obj[()])
            if isinstance(obj, h5py.Dataset) and "dset0" in obj.attrs else None)
        for (a, b), ref in refs.items():
            for side, (table, other) in enumerate(((a, b), (b, a))):
                region = f[f"{table}/ref/{other}/ref_region"][()]
                assert len(region) == len(f[f"{table}/data"])
                for row in range(len(region)):
                    where = np.flatnonzero(ref[:, side] == row)
                    start, stop = region[row]["start"], region[row]["stop"]
                    if where.size:
                        assert (start, stop) == (where[0], where[-1] + 1), (table, other, row)
                    else:
                        assert stop <= start, (table, other, row)
    return len(refs)


def make_events(path: Path, comm: Any, n: int = 400) -> None:
    if comm.rank == 0:
        with h5py.File(path, "w") as f:
            events = np.zeros(n, [("id", "<i8"), ("t", "<f8")])
            events["id"] = np.arange(n)
            events["t"] = np.arange(n) * 0.5
            f.create_dataset("events/data", data=events, maxshape=(None,), chunks=(64,))
    comm.Barrier()


def two_runs(comm: Any, config: Path, folder: Path, prepare: Any = None,
             **options: Any) -> tuple[Any, Any, Path, Path]:
    """The same flow on one rank (rank 0, ``nompi``) and on all ranks."""
    serial, parallel = folder / "serial.h5", folder / "parallel.h5"
    if prepare is not None:
        prepare(serial)
        prepare(parallel)
    one = run(config, serial, nompi=True, progress=False, **options)
    comm.Barrier()
    many = run(config, parallel, progress=False, **options)
    comm.Barrier()
    return one, many, serial, parallel


def test_example_on_two_ranks_equals_one_rank(comm, shared_dir):
    one, many, serial, parallel = two_runs(comm, EXAMPLE, shared_dir)
    assert many.ranks == 2 and many.mpi.startswith("MPI: 2 ranks")
    if comm.rank == 0:
        assert one.ranks == 1 and one.rows == many.rows == 2000
        assert one.chunks == many.chunks == 8
    else:  # --nompi under mpiexec: only rank 0 works
        assert one.rows == 0 and "does nothing" in one.mpi
    assert many.stage_seconds["clusterer"] > 0  # this rank ran chunks
    assert_same_tables(tables(serial), tables(parallel))
    assert "event_t0" not in tables(parallel)  # dropped
    assert not list(shared_dir.glob(".h5forge-scratch-*"))


def test_refs_to_shared_rows_stay_exact_on_two_ranks(comm, shared_dir):
    config = shared_dir / "refs.yaml"
    if comm.rank == 0:
        config.write_text(REFS_YAML)
    one, many, serial, parallel = two_runs(
        comm, config, shared_dir, prepare=lambda p: make_events(p, comm))
    a, b = tables(serial), tables(parallel)
    assert_same_tables(a, b, skip=("who/data",), ref_order=False)
    # 10 chunks of 40 dealt round-robin: rank 0 took the even chunks, rank 1 the odd ones
    assert b["who/data"].tolist() == [(i // 40) % 2 for i in range(400)]
    assert a["who/data"].tolist() == [0] * 400
    with h5py.File(parallel, "r") as f:  # every hit references two of the 16 channels
        assert len(f["channels/data"]) == 16
        assert len(f["hits/ref/channels/ref"]) == 2 * len(f["hits/data"]) > 0
    assert assert_exact_regions(parallel) == assert_exact_regions(serial) == 3


def test_naive_region_update_loses_references_ours_does_not(comm, shared_dir):
    """h5flow updates a region by reading it, widening it and writing it back on each rank:
    when two ranks reference the same child rows in one step, one rank's update overwrites
    the other's. Here both ranks reference channels 0..3 in the same step."""
    path = shared_dir / "race.h5"
    positions = {0: np.arange(0, 4), 1: np.arange(4, 8)}  # where each rank's refs land
    with h5py.File(path, "w", driver="mpio", comm=comm) as f:
        region = f.create_dataset("channels/ref/hits/ref_region", shape=(4,),
                                  dtype=[("start", "<i8"), ("stop", "<i8")])
        current = region[0:4]                       # read ...
        comm.Barrier()
        mine = positions[comm.rank]
        current["start"] = np.where(current["stop"] > current["start"],
                                    np.minimum(current["start"], mine), mine)
        current["stop"] = np.maximum(current["stop"], mine + 1)
        for rank in range(comm.size):               # ... widen, write back, rank by rank
            if rank == comm.rank:
                region[0:4] = current
            comm.Barrier()
        naive = region[0:4]
    # every channel is referenced at position r (rank 0) and 4 + r (rank 1): region (r, r+5)
    exact = [(r, r + 5) for r in range(4)]
    assert naive.tolist() != exact                   # the first rank's references are lost

    from h5forge.flow import DataManager
    from h5forge.flow.mpi import ranks

    with h5py.File(shared_dir / "ours.h5", "w", driver="mpio", comm=comm) as f:
        dm = DataManager(f, ranks=ranks())
        dm.create_dset("hits", "<i8")
        dm.create_dset("channels", "<i8")
        sel = dm.reserve_data("channels", 4 if comm.rank == 0 else 0)
        dm.write_data("channels", sel, np.arange(sel.start, sel.stop))
        hits = dm.reserve_data("hits", 4)
        dm.write_data("hits", hits, np.arange(hits.start, hits.stop))
        dm.create_ref("channels", "hits")
        dm.write_ref("channels", "hits", np.stack([np.arange(4), np.arange(hits.start,
                                                                           hits.stop)], 1))
        dm.close()
        ours = f["channels/ref/hits/ref_region"][()]
    assert ours.tolist() == exact


@pytest.mark.parametrize("method", ["gzip", "zstd"])
def test_compressed_tables_on_two_ranks(comm, shared_dir, method):
    config = shared_dir / "refs.yaml"
    if comm.rank == 0:
        config.write_text(REFS_YAML)
    one, many, serial, parallel = two_runs(
        comm, config, shared_dir, prepare=lambda p: make_events(p, comm), compression=method)
    assert_same_tables(tables(serial), tables(parallel), skip=("who/data",), ref_order=False)
    assert assert_exact_regions(parallel) == 3
    with h5py.File(parallel, "r") as f:
        filters = f["hits/data"]._filters
        assert f["events/ref/tracks/ref_region"]._filters == filters
    assert ({"gzip": "gzip", "zstd": "32015"}[method]) in filters


def failing_config(folder: Path) -> Path:
    config = folder / "fail.yaml"
    config.write_text(REFS_YAML.replace("stages: [hits, tracks]",
                                        "stages: [hits, calibrate, tracks]")
                      + f"calibrate: {{classname: FailOnRank, path: {PIPELINES}}}\n")
    return config


def test_a_failure_on_one_rank_stops_every_rank(comm, shared_dir):
    config = shared_dir / "fail.yaml"
    if comm.rank == 0:
        failing_config(shared_dir)
    out = shared_dir / "out.h5"
    make_events(out, comm)
    with pytest.raises(FlowError) as info:
        run(config, out, progress=False)
    error = info.value
    if comm.rank == 1:  # the rank whose stage raised reports it
        assert not isinstance(error, PeerFailed) and error.h5forge_report
        assert "stage 'calibrate' (FailOnRank) failed in run() on rows 120:160" in str(error)
        assert "rank 1 of 2" in str(error) and "calibration missing" in str(error)
    else:  # the other rank stops quietly, naming the rank that failed
        assert isinstance(error, PeerFailed) and not error.h5forge_report
        assert "rank 1 of 2 failed" in str(error) and "calibration missing" in str(error)
    comm.Barrier()
    with h5py.File(out, "r") as f:  # closed and valid: the rows of the finished steps
        # exactly the rows written, and one region per row (nothing over-allocated)
        assert len(f["hits/data"]) == len(f["hits/ref/channels/ref_region"]) > 0
        assert "h5forge_rows" not in f["hits/data"].attrs
        assert len(f["who/data"]) == 160  # 2 steps of 2 chunks of 40 finished


def test_the_cli_reports_a_failure_once(comm, shared_dir, capsys):
    from h5forge.cli.main import main

    if comm.rank == 0:
        failing_config(shared_dir)
    out = shared_dir / "out.h5"
    make_events(out, comm)
    code = main(["flow", "-c", str(shared_dir / "fail.yaml"), "-o", str(out),
                 "--no-progress"])
    err = capsys.readouterr().err
    codes, errs = comm.allgather(code), comm.allgather(err)
    assert codes == [2, 2]
    assert errs[0] == "" and "calibration missing" in errs[1] and errs[1].count("error") == 1


def test_nompi_runs_on_rank_zero_only(comm, shared_dir, monkeypatch, capsys):
    from h5forge.cli.main import main

    for how in ("argument", "environment"):
        out = shared_dir / f"{how}.h5"
        if how == "environment":
            monkeypatch.setenv("H5FORGE_NOMPI", "1")
        args = ["flow", "-c", str(EXAMPLE), "-o", str(out), "--no-progress", "-v"]
        assert main(args + (["--nompi"] if how == "argument" else [])) == 0
        printed = capsys.readouterr().out
        if comm.rank == 0:
            assert "one rank: MPI switched off" in printed and "2000 rows in 8 chunks," in printed
        else:
            assert printed == ""
        comm.Barrier()
    assert_same_tables(tables(shared_dir / "argument.h5"), tables(shared_dir / "environment.h5"))


def test_the_cli_on_two_ranks_says_so(comm, shared_dir, capsys):
    from h5forge.cli.main import main

    out = shared_dir / "out.h5"
    assert main(["flow", "-c", str(EXAMPLE), "-o", str(out), "--no-progress", "-v"]) == 0
    printed = comm.allgather(capsys.readouterr().out)
    assert "MPI: 2 ranks, parallel HDF5" in printed[0] and "on 2 ranks" in printed[0]
    assert printed[1] == ""


def test_a_bad_call_on_one_rank_stops_both_in_the_data_manager(comm, shared_dir):
    """Checks run before the collective step: a rank whose call is wrong raises, the other
    raises PeerFailed in the same call instead of waiting in HDF5."""
    from h5forge.flow import DataManager
    from h5forge.flow.mpi import ranks

    with h5py.File(shared_dir / "dm.h5", "w", driver="mpio", comm=comm) as f:
        dm = DataManager(f, ranks=ranks())
        dm.create_dset("hits", "<f8")
        sel = dm.reserve_data("hits", 5)
        assert (sel.stop - sel.start, sel.start) == (5, 5 * comm.rank)
        bad = slice(sel.start, sel.stop + (100 if comm.rank == 1 else 0))  # not reserved
        with pytest.raises(FlowError) as info:
            dm.write_data("hits", bad, np.zeros(bad.stop - bad.start))
        if comm.rank == 1:
            assert "rows up to 110 were not reserved" in str(info.value)
        else:
            assert isinstance(info.value, PeerFailed) and "rank 1 of 2" in str(info.value)
        with pytest.raises(FlowError, match="give a slice of rows"):  # on every rank
            dm.write_data("hits", np.array([sel.start]), [1.0])
        dm.write_data("hits", sel, np.full(5, comm.rank, "<f8"))  # both go on afterwards
        dm.close()
    with h5py.File(shared_dir / "dm.h5", "r") as f:
        assert f["hits/data"][()].tolist() == [0.0] * 5 + [1.0] * 5
