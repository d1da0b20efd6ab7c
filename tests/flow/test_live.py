"""Live flows (``source: follow``) against real writer processes (tests/follow/writer_proc.py):
stages run on each batch of completed frames while the writer goes on."""

from __future__ import annotations

import textwrap
import time

import h5py
import numpy as np
import pytest

from h5forge.cli.main import main
from h5forge.errors import FlowConfigError, FlowError
from h5forge.flow import run
from h5forge.flow.config import parse_config
from tests.follow.test_follow import spawn  # noqa: F401 - the writer-process fixture
from tests.follow.writer_proc import frame

STAGES = '''
import time
import numpy as np
from h5forge.flow import Stage


class Sums(Stage):
    """Per frame: its index, its sum, and when this batch was processed."""

    def init(self, source_name):
        self.data_manager.create_dset("sums", [("index", "<i8"), ("sum", "<f8"),
                                               ("at", "<f8")])

    def run(self, source_name, source_slice, cache):
        frames = cache[source_name]
        out = np.zeros(len(frames), [("index", "<i8"), ("sum", "<f8"), ("at", "<f8")])
        out["index"] = frames["index"]
        out["sum"] = frames["image"].reshape(len(frames), -1).sum(axis=1)
        out["at"] = time.time()
        sel = self.data_manager.reserve_data("sums", source_slice)
        self.data_manager.write_data("sums", sel, out)
'''


def write_config(folder, follow: str) -> str:
    (folder / "stages.py").write_text(STAGES)
    config = folder / "live.yaml"
    config.write_text(textwrap.dedent("""
        flow:
          source: follow
          stages: [sums]
        follow:
        """) + textwrap.indent(textwrap.dedent(follow), "  ") + textwrap.dedent("""
        sums: {classname: Sums, path: stages.py}
        """))
    return str(config)


LIVE = """
keys: [entry/keys]
finished: entry/finished
frames: {image: entry/data}
timeout: 10
poll_interval: 0.02
"""


def test_stages_run_on_batches_while_the_writer_writes(tmp_path, spawn):  # noqa: F811
    scan = tmp_path / "scan.h5"
    writer = spawn("live", scan, "--count", 30, "--interval", 0.05)
    summary = run(write_config(tmp_path, LIVE), tmp_path / "out.h5", input=scan,
                  progress=False)
    assert writer.join() == 0
    written_at = writer.times("frame")  # when the writer had flushed each frame
    with h5py.File(tmp_path / "out.h5", "r") as f:
        frames, sums = f["frames/data"][()], f["sums/data"][()]
    assert frames["index"].tolist() == list(range(30))           # each frame once, in order
    for i in range(30):
        np.testing.assert_array_equal(frames["image"][i], frame(i))  # never a fill value
    assert sums["sum"].tolist() == [float(frame(i).sum()) for i in range(30)]
    assert summary.rows == 30 and summary.chunks > 3                # several batches
    # the first frames were processed while the writer was still writing the last ones
    assert sums["at"][0] < written_at[29]


def test_a_grid_scan_with_two_keys_and_a_late_key(tmp_path, spawn):  # noqa: F811
    scan = tmp_path / "grid.h5"
    writer = spawn("raw", scan, "--count", 12, "--interval", 0.03, "--scan", "3,4",
                   "--keys", "a,b", "--gap", 4, "--gap-len", 3)
    summary = run(write_config(tmp_path, LIVE), tmp_path / "out.h5", input=scan,
                  progress=False)
    assert writer.join() == 0 and summary.rows == 12
    with h5py.File(tmp_path / "out.h5", "r") as f:
        frames = f["frames/data"][()]
    assert frames["index"].tolist() == list(range(12))
    assert frames["image"].shape == (12, 4, 5)
    for i in range(12):
        np.testing.assert_array_equal(frames["image"][i], frame(i))


def test_a_stalled_writer_ends_the_run_with_an_error_and_keeps_the_rows(tmp_path, spawn):  # noqa: F811,E501
    scan = tmp_path / "scan.h5"
    writer = spawn("live", scan, "--count", 5, "--interval", 0.02, "--stall", 30,
                   "--no-finish")
    writer.wait_for("swmr")  # the file exists: a slow start under load is not the stall
    config = write_config(tmp_path, LIVE.replace("timeout: 10", "timeout: 1"))
    began = time.monotonic()
    with pytest.raises(FlowError, match=r"no new frame in .*scan\.h5 for 1 s .*entry/finished"):
        run(config, tmp_path / "out.h5", input=scan, progress=False)
    assert time.monotonic() - began < 15
    with h5py.File(tmp_path / "out.h5", "r") as f:  # closed, valid, the 5 frames kept
        assert f["frames/data"]["index"].tolist() == list(range(5))
        assert len(f["sums/data"]) == 5


def test_the_cli_follows_the_input(tmp_path, spawn, capsys):  # noqa: F811
    scan, out = tmp_path / "scan.h5", tmp_path / "out.h5"
    writer = spawn("live", scan, "--count", 8, "--interval", 0.03)
    code = main(["flow", "-c", write_config(tmp_path, LIVE), "-i", str(scan), "-o", str(out),
                 "--no-progress"])
    assert code == 0 and writer.join() == 0
    assert f"{out}: 8 rows in" in capsys.readouterr().out


def test_the_file_may_be_named_in_the_config(tmp_path, spawn):  # noqa: F811
    spawn("live", tmp_path / "scan.h5", "--count", 3, "--interval", 0.02)
    config = write_config(tmp_path, LIVE + "file: scan.h5\n")  # relative to the config
    assert run(config, tmp_path / "out.h5", progress=False).rows == 3


@pytest.mark.parametrize("section, message", [
    ("frames: {image: entry/data}", "missing 'keys'"),
    ("keys: []\nframes: {image: entry/data}", "'keys' is empty"),
    ("keys: [k]", "'frames' must map names"),
    ("keys: [k]\nframes: [entry/data]", "'frames' must map names"),
    ("keys: [k]\nframes: {index: entry/data}", "'index' is the frame number"),
    ("keys: [k]\nframes: {a: d}\ntimeout: 0", "'timeout' must be a positive number"),
    ("keys: [k]\nframes: {a: d}\ntimeout: soon", "'timeout' must be a positive number"),
    ("keys: [k]\nframes: {a: d}\nmax_frames: 0", "'max_frames' must be a positive integer"),
    ("keys: [k]\nframes: {a: d}\nkey: [k]", "unknown key 'key'"),
])
def test_follow_section_errors_name_the_key(section, message):
    import yaml

    data = {"flow": {"source": "follow"}, "follow": yaml.safe_load(section)}
    with pytest.raises(FlowConfigError, match=message) as info:
        parse_config(data, "live.yaml")
    assert str(info.value).startswith("live.yaml: follow")


def test_without_a_file_the_run_says_what_to_give(tmp_path):
    with pytest.raises(FlowError, match="no live file: give 'file' in the follow section"):
        run(write_config(tmp_path, LIVE), tmp_path / "out.h5", progress=False)
