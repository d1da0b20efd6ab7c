"""A live flow (``source: follow``) on 2 MPI ranks: rank 0 polls the writer's file and every
rank takes its part of each batch, so the rows are those of one rank."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5forge.errors import FlowError
from h5forge.flow import run

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "follow"))
from writer_proc import frame  # noqa: E402

STAGES = '''
import numpy as np
from h5forge.flow import Stage


class Who(Stage):
    def init(self, source_name):
        self.data_manager.create_dset("who", [("index", "<i8"), ("rank", "<i4"),
                                              ("sum", "<f8")])

    def run(self, source_name, source_slice, cache):
        frames = cache[source_name]
        out = np.zeros(len(frames), [("index", "<i8"), ("rank", "<i4"), ("sum", "<f8")])
        out["index"] = frames["index"]
        out["rank"] = self.rank
        out["sum"] = frames["image"].reshape(len(frames), -1).sum(axis=1) if len(frames) else 0
        sel = self.data_manager.reserve_data("who", source_slice)
        self.data_manager.write_data("who", sel, out)
'''

CONFIG = """
flow: {source: follow, stages: [who]}
follow:
  keys: [entry/keys]
  finished: entry/finished
  frames: {image: entry/data}
  timeout: 20
  poll_interval: 0.05          # ~10 frames per batch: both ranks get some
who: {classname: Who, path: stages.py}
"""


def test_a_live_flow_on_two_ranks(comm, shared_dir):
    scan, out = shared_dir / "scan.h5", shared_dir / "out.h5"
    writer = None
    if comm.rank == 0:
        (shared_dir / "stages.py").write_text(STAGES)
        (shared_dir / "live.yaml").write_text(CONFIG)
        writer = subprocess.Popen([sys.executable, str(TESTS / "follow" / "writer_proc.py"),
                                   "live", str(scan), "--count", "40", "--interval", "0.005"],
                                  stdout=subprocess.DEVNULL)
    comm.Barrier()
    summary = run(shared_dir / "live.yaml", out, input=scan, progress=False)
    if writer is not None:
        assert writer.wait(30) == 0
    comm.Barrier()
    assert summary.ranks == 2 and summary.rows == 40
    with h5py.File(out, "r") as f:
        frames, who = f["frames/data"][()], f["who/data"][()]
    assert frames["index"].tolist() == list(range(40)) == who["index"].tolist()
    for i in range(40):
        np.testing.assert_array_equal(frames["image"][i], frame(i))
    assert who["sum"].tolist() == [float(frame(i).sum()) for i in range(40)]
    # rank 1 took its share of the batches with more than one frame
    assert set(who["rank"].tolist()) == {0, 1}


def test_a_stalled_writer_stops_both_ranks_reported_once(comm, shared_dir):
    scan, out = shared_dir / "scan.h5", shared_dir / "out.h5"
    writer = None
    if comm.rank == 0:
        (shared_dir / "stages.py").write_text(STAGES)
        (shared_dir / "live.yaml").write_text(CONFIG.replace("timeout: 20", "timeout: 1"))
        writer = subprocess.Popen([sys.executable, str(TESTS / "follow" / "writer_proc.py"),
                                   "live", str(scan), "--count", "6", "--interval", "0.005",
                                   "--stall", "30", "--no-finish"], stdout=subprocess.DEVNULL)
    comm.Barrier()
    try:
        with pytest.raises(FlowError, match="no new frame in .* for 1 s") as info:
            run(shared_dir / "live.yaml", out, input=scan, progress=False)
    finally:
        if writer is not None:
            writer.kill()
            writer.wait(10)
    assert comm.allgather(info.value.h5forge_report) == [True, False]
    comm.Barrier()
    with h5py.File(out, "r") as f:  # closed and valid, the 6 frames kept
        assert f["frames/data"]["index"].tolist() == list(range(6))
