"""Following with the caller's own h5py handles, old-format static files and growing grids.

The failures these guard against (issue 15) crash the process, so the reader runs in a
subprocess (``reader_proc.py``): a segfault fails one test, and its return code says so. Each
frame's values are checked (every element of frame ``i`` is ``i + 1``), not only counts.
"""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from h5forge.errors import FollowError
from h5forge.follow import Follower, FrameReader, follow_frames, scan_rank_of

from .conftest import WRITER, run_reader
from .writer_proc import FRAME_SHAPE, frame

KEY, DATA, FINISHED = "entry/keys/k1", "entry/data", "entry/finished"


def assert_every_frame(lines: list[dict], count: int, rc: int, err: str) -> dict:
    """Frames 0..count-1 in order, each all ``index + 1``; a clean exit; returns the end."""
    assert rc == 0, f"reader exit {rc}: {err}"
    frames = [line for line in lines if "index" in line]
    assert [line["index"] for line in frames] == list(range(count)), lines
    for line in frames:
        i = line["index"]
        assert (line["min"], line["max"]) == (i + 1, i + 1), f"frame {i}: {line}"
        assert tuple(line["shape"]) == FRAME_SHAPE
    end = next(line for line in lines if line.get("end"))
    assert lines[-1] == {"closed": True}
    return end


# -- 1. the caller holds the data or the key (a live plain-h5py writer) ------------------------
@pytest.mark.parametrize("hold, scan", [("data", None), ("key", "3,4"),
                                        ("data,key,finished", "3,4")])
def test_caller_holds_handles_live(tmp_path, spawn, hold, scan):
    """swmr_tools users keep f["data"] / f["keys"] open and pass paths: no fill-value or
    stale frame, no frame announced early, and their handles still work afterwards."""
    path = tmp_path / "scan.h5"
    count = 12 if scan else 8
    args = ["--count", count, "--interval", 0.03] + (["--scan", scan] if scan else [])
    writer = spawn("raw", path, *args)
    writer.wait_for("swmr")
    rc, lines, err = run_reader(path, "--hold", hold)
    end = assert_every_frame(lines, count, rc, err)
    assert end["finished"] and not end["timed_out"] and end["held_valid"]
    assert end["scan_rank"] == (2 if scan else 1)
    assert writer.join() == 0


@pytest.mark.parametrize("direct", ["no", "auto"])
def test_caller_passes_datasets_live(tmp_path, spawn, direct):
    """Keys, frames and finished given as the caller's h5py.Dataset objects (no file)."""
    path = tmp_path / "scan.h5"
    writer = spawn("raw", path, "--count", 10, "--interval", 0.03, "--scan", "2,5")
    writer.wait_for("swmr")
    rc, lines, err = run_reader(path, "--datasets", "--hold", "data,key,finished",
                                "--direct", direct)
    end = assert_every_frame(lines, 10, rc, err)
    assert end["finished"] and end["complete"]
    assert writer.join() == 0


def test_handle_opened_after_the_follower_is_taken_over(tmp_path, spawn):
    """The caller opens the key after the follower did: the follower drops its own
    identifier and shares theirs; both keep seeing the writer's progress."""
    path = tmp_path / "scan.h5"
    writer = spawn("raw", path, "--count", 10, "--interval", 0.03, "--first-delay", 0.2)
    writer.wait_for("swmr")
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        follower = Follower(f, KEY, finished=FINISHED, timeout=3)
        mine = f[KEY]  # a second identifier, opened after the follower's
        got = []
        for index, data in follow_frames(follower, {"d": DATA}):
            np.testing.assert_array_equal(data["d"], frame(index), err_msg=f"frame {index}")
            got.append(index)
        assert got == list(range(10)) and follower.finished
        mine.refresh()
        assert mine.shape == (10,) and (mine[()] == 7).all()
        assert follower.key_datasets[0].id.id == mine.id.id  # one identifier, shared
    assert writer.join() == 0


def test_caller_holding_a_dataset_twice_gets_a_clear_error(tmp_path, spawn):
    """Two identifiers of the key held by the caller: HDF5 could not refresh it, so a
    FollowError naming the path says what to do (never stale frames)."""
    path = tmp_path / "scan.h5"
    writer = spawn("raw", path, "--count", 5, "--interval", 0.03)
    writer.wait_for("swmr")
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        first, second = f[KEY], f[KEY]
        with pytest.raises(FollowError, match=r"entry/keys/k1.*open 2 times.*Pass your h5py"):
            list(Follower(f, KEY, finished=FINISHED, timeout=2))
        with pytest.raises(FollowError, match="open 2 times"):
            list(Follower(None, first, timeout=2))
        assert first.id.valid and second.id.valid
    writer.kill()


# -- 2. a complete file in HDF5's default (earliest) format, read without SWMR -----------------
@pytest.mark.parametrize("libver, hold", [(None, "key"), (None, "data,key,finished"),
                                          ("latest", "key")])
def test_static_file_read_without_swmr(tmp_path, libver, hold):
    """Written (and closed) by another process, opened "r" (no SWMR), the key held: followed
    to the finished flag without refreshing anything, and closed without a crash."""
    path = tmp_path / "done.h5"
    extra = ["--libver", libver] if libver else []
    subprocess.run([sys.executable, str(WRITER), "static", str(path), "--count", "6", *extra],
                   check=True, capture_output=True, timeout=60)
    rc, lines, err = run_reader(path, "--mode", "r", "--hold", hold)
    end = assert_every_frame(lines, 6, rc, err)
    assert end["finished"] and not end["timed_out"] and end["complete"]
    assert "B-tree" not in err


def test_static_grid_file_held_key_passed_as_dataset(tmp_path):
    path = tmp_path / "grid.h5"
    subprocess.run([sys.executable, str(WRITER), "static", str(path), "--count", "12",
                    "--scan", "3,4"], check=True, capture_output=True, timeout=60)
    rc, lines, err = run_reader(path, "--mode", "r", "--datasets", "--hold", "key,data")
    end = assert_every_frame(lines, 12, rc, err)
    assert end["scan_rank"] == 2 and end["finished"]


# -- 3. grid keys created (1, 1) with maxshape (3, 4), resized by the writer ------------------
@pytest.mark.parametrize("grow, hold", [("row", ""), ("point", "data,key")])
def test_growing_grid(tmp_path, spawn, grow, hold):
    """The scan shape comes from maxshape (as swmr_tools reads it): flat index i is position
    unravel_index(i, (3, 4)) from the first frame on, whatever the extent is now."""
    path = tmp_path / "grow.h5"
    writer = spawn("raw", path, "--scan", "3,4", "--grow", grow, "--count", 12,
                   "--interval", 0.03)
    writer.wait_for("swmr")
    rc, lines, err = run_reader(path, "--hold", hold)
    end = assert_every_frame(lines, 12, rc, err)
    assert end["scan_rank"] == 2 and end["finished"] and end["complete"]
    assert writer.join() == 0


def test_growing_grid_in_process_positions(tmp_path, spawn):
    """FrameReader maps each index to its grid position while the extent grows."""
    path = tmp_path / "grow.h5"
    writer = spawn("raw", path, "--scan", "3,4", "--grow", "point", "--count", 12,
                   "--interval", 0.02)
    writer.wait_for("swmr")
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        follower = Follower(f, KEY, finished=FINISHED, timeout=3)
        assert follower.scan_shape == (3, 4) and scan_rank_of(f[KEY]) == 2
        reader = FrameReader(f[DATA], 2)
        for index in follower:
            values, selection = reader.read_frame(index, follower.ready)
            assert selection[:2] == tuple(np.unravel_index(index, (3, 4)))
            np.testing.assert_array_equal(values, frame(index), err_msg=f"frame {index}")
        assert follower.finished and follower.are_keys_complete()
        assert f[DATA].shape[:2] == (3, 4)
    assert writer.join() == 0


# -- 4. the finished flag ------------------------------------------------------------------------
def make_flag_file(path, flag) -> None:
    with h5py.File(path, "w") as f:
        f[KEY] = np.ones(3, "i1")
        f.create_dataset(FINISHED, data=np.asarray(flag, "i1"))


@pytest.mark.parametrize("flag, finished", [(1, True), ([1], True), ([[1]], True), (0, False),
                                            ([0], False), (np.zeros((0,)), False)])
def test_finished_flag_of_one_element(tmp_path, flag, finished):
    make_flag_file(tmp_path / "f.h5", flag)
    with Follower(tmp_path / "f.h5", KEY, finished=FINISHED, timeout=0.3) as follower:
        assert list(follower) == [0, 1, 2]
        assert follower.finished is finished and follower.timed_out is not finished
        assert follower.is_finished() is finished


@pytest.mark.parametrize("flag", [[0, 1], [1, 1, 1, 1], [[0, 0], [0, 0]]])
def test_finished_flag_of_several_elements_is_refused(tmp_path, flag):
    """Which element would count? h5forge refuses it up front (swmr_tools logs a warning,
    ignores the flag and runs into its timeout)."""
    make_flag_file(tmp_path / "f.h5", flag)
    with pytest.raises(FollowError, match=r"entry/finished: a finished flag must hold one "):
        Follower(tmp_path / "f.h5", KEY, finished=FINISHED, timeout=0.3)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        with pytest.raises(FollowError, match="one element"):
            Follower(f, KEY, finished=f[FINISHED], timeout=0.3)


# -- bad inputs ------------------------------------------------------------------------------
def test_bad_key_and_data_arguments(tmp_path):
    path = tmp_path / "f.h5"
    make_flag_file(path, 1)
    with h5py.File(path, "r") as f:
        with pytest.raises(FollowError, match="need a file"):
            Follower(None, KEY)
        with pytest.raises(FollowError, match="no such key"):
            Follower(f, "entry/nope")
        with pytest.raises(FollowError, match="a key must be a path"):
            Follower(f, [42])
        with pytest.raises(FollowError, match="no such finished flag dataset"):
            Follower(f, KEY, finished="entry/nope")
        with pytest.raises(FollowError, match="expected a path, an open h5py.File"):
            Follower(3.5, KEY)
        follower = Follower(f, KEY, finished=FINISHED, timeout=0.3)
        with pytest.raises(FollowError, match="no such data"):
            next(follow_frames(follower, {"x": "entry/nope"}))
        with pytest.raises(FollowError, match="expected a path or an h5py.Dataset"):
            next(follow_frames(follower, {"x": 7}))
    assert not f.id.valid


def test_borrowed_handle_dropped_by_its_owner_mid_scan(tmp_path, spawn):
    """Two followers borrow the caller's key handle (and the frames the caller's data
    handle); the caller drops both halfway, and the first follower goes away: following goes
    on through the paths, every frame right. In a subprocess: a use of a closed identifier must
    fail one test at most."""
    path = tmp_path / "scan.h5"
    writer = spawn("raw", path, "--count", 12, "--interval", 0.03, "--scan", "3,4")
    writer.wait_for("swmr")
    code = f"""
import gc, time, h5py, numpy as np
from h5forge.follow import Follower, follow_frames
from tests.follow.writer_proc import frame
for _ in range(500):
    try:
        f = h5py.File({str(path)!r}, "r", libver="latest", swmr=True)
        break
    except OSError:
        time.sleep(0.02)
key, data = f[{KEY!r}], f[{DATA!r}]                               # the caller's own
first = Follower(f, {KEY!r}, finished={FINISHED!r}, timeout=3)   # borrows the caller's key
second = Follower(f, {KEY!r}, finished={FINISHED!r}, timeout=3)  # ... and so does this one
got = []
for index, frames in follow_frames(second, {{"d": {DATA!r}}}):   # borrows the caller's data
    assert (frames["d"] == frame(index)).all(), index
    got.append(index)
    if index == 5:
        del key, data, first
        gc.collect()
assert got == list(range(12)) and second.finished, got
f.close()
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=str(WRITER.parents[2]))
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert writer.join() == 0
