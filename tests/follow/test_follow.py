"""``h5forge.follow``: following a file another process writes with HDF5 SWMR.

Every live test runs a real writer process (``writer_proc.py``, with h5forge's ``LiveWriter``
or with plain h5py) on a real file; frame ``i`` holds ``i + 1`` everywhere, so each frame read
is checked against what was written and a fill-value (0) frame is caught. Timeouts are short.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5forge.errors import FollowError, H5ForgeError, LiveWriterError
from h5forge.follow import Follower, FrameReader, LiveWriter, frames

from .writer_proc import FRAME_SHAPE, frame


def __getattr__(name: str):
    """``spawn``, the writer-process fixture (in conftest.py): tests/flow import it from here."""
    if name == "spawn":
        from .conftest import spawn

        return spawn
    raise AttributeError(name)

KEYS = "/entry/keys"
DATA = "/entry/data"
FINISHED = "/entry/finished"
POLL = 0.05
# Scheduling slack for a loaded 2-core machine (xdist): bounds stay far below the timeouts.
SLACK = 0.35


def follow_checked(follower: Follower, data: h5py.Dataset, scan_rank: int = 1,
                   on_frame=None) -> list[tuple[int, float]]:
    """Iterate ``follower``, reading and checking each frame with a FrameReader; return
    ``[(index, wall time it arrived)]``."""
    reader = FrameReader(data, scan_rank)
    got = []
    for index in follower:
        now = time.time()
        values, selection = reader.read_frame(index)
        np.testing.assert_array_equal(values, frame(index), err_msg=f"frame {index}")
        np.testing.assert_array_equal(data[selection], values)
        got.append((index, now))
        if on_frame is not None:
            on_frame(index)
    return got


def indices(got: list[tuple[int, float]]) -> list[int]:
    return [i for i, _ in got]


def static_file(path: Path, keys, *, data: bool = True, finished=None, maxshape=None,
                libver=None) -> Path:
    """A complete (not live) file: ``keys`` as given, frame ``i`` = ``i + 1``."""
    keys = np.asarray(keys)
    with h5py.File(path, "w", libver=libver) as f:
        f.create_dataset(KEYS, data=keys, maxshape=maxshape,
                         chunks=True if maxshape else None)
        if data:
            f[DATA] = np.stack([frame(i) for i in range(keys.size)])
        if finished is not None:
            f[FINISHED] = finished
    return path


# -- live files: the LiveWriter in another process --------------------------------------------
@pytest.mark.parametrize("interval, count", [(0.02, 25), (0.1, 6)])
def test_live_writer_followed_in_order(tmp_path, spawn, interval, count):
    path = tmp_path / "scan.h5"
    writer = spawn("live", path, "--count", count, "--interval", interval)
    writer.wait_for("swmr")
    alive_at_first: list[bool] = []

    def check_alive(index):
        if index == 0:
            alive_at_first.append(writer.alive())

    with Follower(path, KEYS, timeout=2, finished=FINISHED, poll_interval=POLL) as follower:
        got = follow_checked(follower, follower.file[DATA], on_frame=check_alive)
        ended = time.time()
        assert follower.finished and not follower.timed_out
    assert indices(got) == list(range(count))  # in order, each exactly once
    assert alive_at_first == [True]  # really followed live, not read afterwards
    assert writer.join() == 0, writer.stderr()
    # The finished flag ends it within two polls (the flag is printed after it is flushed).
    finished_at = next(t for w, _, t in writer.events if w == "finished")
    assert ended - finished_at < 2 * POLL + SLACK


def test_live_writer_fixed_n_frames(tmp_path, spawn):
    """Frames declared with n_frames (fixed extent from the start): each frame is read as
    written, never as the fill value of a chunk the reader looked up before it existed."""
    path = tmp_path / "scan.h5"
    writer = spawn("live", path, "--count", 10, "--interval", 0.02, "--fixed")
    writer.wait_for("swmr")
    got = []
    for index, data in frames(path, data={"img": DATA}, keys=KEYS, finished=FINISHED,
                              timeout=2):
        np.testing.assert_array_equal(data["img"], frame(index), err_msg=f"frame {index}")
        got.append(index)
    assert got == list(range(10))


def test_live_writer_finish_right_after_last_frame(tmp_path, spawn):
    """The finished flag set at once after the last frame: every frame is still yielded."""
    path = tmp_path / "scan.h5"
    writer = spawn("live", path, "--count", 8, "--interval", 0.0, "--first-delay", 0.3)
    writer.wait_for("swmr")
    with Follower(path, KEYS, timeout=2, finished=FINISHED) as follower:
        got = follow_checked(follower, follower.file[DATA])
        assert follower.finished and not follower.timed_out
    assert indices(got) == list(range(8))


def test_stalled_writer_times_out(tmp_path, spawn):
    path = tmp_path / "scan.h5"
    writer = spawn("live", path, "--count", 4, "--interval", 0.02, "--stall", 30)
    writer.wait_for("swmr")
    timeout = 0.5
    with Follower(path, KEYS, timeout=timeout, finished=FINISHED) as follower:
        got = follow_checked(follower, follower.file[DATA])
        ended = time.time()
        assert follower.timed_out and not follower.finished
    assert indices(got) == [0, 1, 2, 3]
    assert writer.alive()  # the writer is stalled, not gone
    assert timeout - 0.05 <= ended - got[-1][1] < timeout + SLACK


def test_killed_writer_yields_every_flushed_frame_then_times_out(tmp_path, spawn):
    path = tmp_path / "scan.h5"
    writer = spawn("live", path, "--count", 500, "--interval", 0.02)
    writer.wait_for("swmr")

    def kill_at_five(index):
        if index == 5:
            writer.proc.send_signal(signal.SIGKILL)

    with Follower(path, KEYS, timeout=0.5, finished=FINISHED) as follower:
        got = follow_checked(follower, follower.file[DATA], on_frame=kill_at_five)
        assert follower.timed_out and not follower.finished
    assert writer.join() == -signal.SIGKILL
    flushed = max(writer.times("frame"))  # the writer said so after its keys were flushed
    n = len(got)
    assert indices(got) == list(range(n))
    # Every frame the writer reported flushed arrived (at most one more: killed before saying).
    assert flushed + 1 <= n <= flushed + 2
    assert n >= 6


def test_reader_started_before_the_writer_switched_swmr_on(tmp_path, spawn):
    """The file exists, held open by a writer not yet in SWMR mode: HDF5's file locking
    refuses readers, and the Follower retries until SWMR is on."""
    path = tmp_path / "scan.h5"
    writer = spawn("live", path, "--count", 5, "--interval", 0.02, "--swmr-delay", 0.6)
    writer.wait_for("created")
    opened = time.time()
    with Follower(path, KEYS, timeout=3, finished=FINISHED) as follower:
        got = follow_checked(follower, follower.file[DATA])
        assert follower.finished
    swmr_at = next(t for w, _, t in writer.events if w == "swmr")
    assert opened < swmr_at  # the reader really started first
    assert indices(got) == list(range(5))
    assert got[0][1] >= swmr_at


def test_grid_scan_live_writer(tmp_path, spawn):
    """A (3, 4) grid: flat index i is scan position unravel_index(i, (3, 4)), C order."""
    path = tmp_path / "grid.h5"
    writer = spawn("live", path, "--scan", "3,4", "--count", 12, "--interval", 0.02)
    writer.wait_for("swmr")
    with Follower(path, KEYS, timeout=2, finished=FINISHED) as follower:
        data = follower.file[DATA]
        assert data.shape == (3, 4) + FRAME_SHAPE
        reader = FrameReader(data, 2)
        got = []
        for index in follower:
            values, selection = reader.read_frame(index)
            row, col = np.unravel_index(index, (3, 4))
            assert selection[:2] == (row, col)
            np.testing.assert_array_equal(values, frame(index), err_msg=f"frame {index}")
            got.append(index)
        assert follower.finished
        assert follower.are_keys_complete()
    assert got == list(range(12))


def test_frames_helper(tmp_path, spawn):
    path = tmp_path / "scan.h5"
    writer = spawn("live", path, "--count", 10, "--interval", 0.02)
    writer.wait_for("swmr")
    got = []
    for index, data in frames(path, data={"img": DATA}, keys=[KEYS], finished=FINISHED,
                              timeout=2):
        assert list(data) == ["img"]
        np.testing.assert_array_equal(data["img"], frame(index), err_msg=f"frame {index}")
        got.append(index)
    assert got == list(range(10))


# -- live files: a plain h5py writer (no h5forge) ---------------------------------------------
def test_raw_h5py_writer_empty_keys_and_scalar_finished(tmp_path, spawn):
    """A writer that knows nothing of h5forge: keys start EMPTY ((0,), maxshape (None,)) and
    the finished flag is a scalar (swmr_tools fails on both)."""
    path = tmp_path / "raw.h5"
    writer = spawn("raw", path, "--count", 10, "--interval", 0.02, "--first-delay", 0.3)
    writer.wait_for("swmr")
    with Follower(path, f"{KEYS}/k1", timeout=2, finished=FINISHED) as follower:
        key = follower.file[f"{KEYS}/k1"]
        assert key.shape == (0,) and key.maxshape == (None,)
        assert follower.file[FINISHED].shape == ()
        assert not follower.are_keys_complete()
        got = follow_checked(follower, follower.file[DATA])
        assert follower.finished and not follower.timed_out
        # Growing keys are known complete only by the finished flag, which is now set.
        assert follower.are_keys_complete()
    assert indices(got) == list(range(10))
    assert writer.join() == 0, writer.stderr()


@pytest.mark.parametrize("key_paths", [[f"{KEYS}/k1", f"{KEYS}/k2"], KEYS],
                         ids=["list", "group"])
def test_multiple_keys_with_a_gap(tmp_path, spawn, key_paths):
    """Frame 3's second key comes three frames late: iteration holds at 3 until it fills."""
    path = tmp_path / "gap.h5"
    writer = spawn("raw", path, "--keys", "k1,k2", "--count", 10, "--interval", 0.05,
                   "--gap", 3, "--gap-len", 3)
    writer.wait_for("swmr")
    with Follower(path, key_paths, timeout=2, finished=FINISHED) as follower:
        got = follow_checked(follower, follower.file[DATA])
        assert follower.finished
    assert indices(got) == list(range(10))
    # The late key is written after the writer reported frame 6: 3 (and so 4..6) came later.
    arrived = dict(got)
    assert arrived[3] > writer.times("frame")[6]
    assert 3 in writer.times("filled")


def test_raw_grid_scan_keys_shaped_rows_cols_1_1(tmp_path, spawn):
    """Keys shaped (3, 4, 1, 1), frames (3, 4, *frame): flattened in C order."""
    path = tmp_path / "grid.h5"
    writer = spawn("raw", path, "--scan", "3,4", "--count", 12, "--interval", 0.02,
                   "--gap", 5, "--gap-len", 2, "--keys", "k1,k2")
    writer.wait_for("swmr")
    with Follower(path, KEYS, timeout=2, finished=FINISHED) as follower:
        assert follower.file[f"{KEYS}/k1"].shape == (3, 4, 1, 1)
        got = follow_checked(follower, follower.file[DATA], scan_rank=2)
        assert follower.finished
        assert follower.are_keys_complete()
    assert indices(got) == list(range(12))
    assert dict(got)[5] > writer.times("frame")[7]  # its late key came after frame 7


def test_contiguous_fixed_keys_followed_or_refused_clearly(tmp_path, spawn):
    """Fixed-size keys a plain h5py writer made without chunks (contiguous): HDF5 cannot
    refresh those for a SWMR reader. Following must either work or fail with an h5forge
    error saying why, not h5py's "invalid dataset size, likely file corruption"."""
    path = tmp_path / "contiguous.h5"
    writer = spawn("raw", path, "--scan", "3,4", "--count", 12, "--interval", 0.02,
                   "--contiguous-keys")
    writer.wait_for("swmr")
    try:
        with Follower(path, KEYS, timeout=1, finished=FINISHED) as follower:
            got = follow_checked(follower, follower.file[DATA], scan_rank=2)
    except H5ForgeError as exc:
        assert "contiguous" in str(exc) or "chunk" in str(exc)
    else:
        assert indices(got) == list(range(12))


def test_frames_helper_grid_raw(tmp_path, spawn):
    path = tmp_path / "grid.h5"
    writer = spawn("raw", path, "--scan", "3,4", "--count", 12, "--interval", 0.02)
    writer.wait_for("swmr")
    got = []
    for index, data in frames(path, data={"img": DATA}, keys=KEYS, finished=FINISHED,
                              timeout=2):
        np.testing.assert_array_equal(data["img"], frame(index), err_msg=f"frame {index}")
        got.append(index)
    assert got == list(range(12))


# -- opening failures -------------------------------------------------------------------------
def _expect_follow_error(path: Path, timeout: float) -> FollowError:
    started = time.monotonic()
    with pytest.raises(FollowError) as info:
        with Follower(path, KEYS, timeout=timeout) as follower:
            list(follower)
    elapsed = time.monotonic() - started
    assert timeout - 0.05 <= elapsed < timeout + 2
    assert isinstance(info.value, H5ForgeError)
    assert "lock" in str(info.value).lower()  # says why a live file cannot be opened
    assert str(path) in str(info.value)
    return info.value


def test_missing_file_raises_follow_error_after_timeout(tmp_path):
    _expect_follow_error(tmp_path / "never-written.h5", 0.5)


def test_writer_never_starting_swmr_raises_follow_error(tmp_path, spawn):
    path = tmp_path / "locked.h5"
    writer = spawn("raw", path, "--never-swmr", 30)
    writer.wait_for("created")
    _expect_follow_error(path, 0.5)
    assert writer.alive()


# -- complete (static) files ------------------------------------------------------------------
@pytest.mark.parametrize("libver", [None, "latest"])
def test_static_complete_file(tmp_path, libver):
    path = static_file(tmp_path / "done.h5", np.ones(6, "i1"), finished=1, libver=libver)
    started = time.monotonic()
    with Follower(path, KEYS, timeout=2, finished=FINISHED) as follower:
        with h5py.File(path, "r") as f:
            got = follow_checked(follower, f[DATA])
        assert follower.finished and not follower.timed_out
        assert follower.are_keys_complete()
        assert time.monotonic() - started < 1  # the finished flag, not the timeout, ended it
        follower.reset()
        assert not follower.finished
        assert list(follower) == list(range(6))  # reset: from frame 0 again
        assert follower.finished
    assert indices(got) == list(range(6))


def test_static_file_without_finished_flag_times_out(tmp_path):
    path = static_file(tmp_path / "done.h5", [1, 1, 1, 0, 1])
    with Follower(path, KEYS, timeout=0.3) as follower:
        assert list(follower) == [0, 1, 2]  # the gap at 3 holds the rest
        assert follower.timed_out and not follower.finished
        assert not follower.are_keys_complete()


def test_keys_shaped_rows_cols_1_1_flatten_in_c_order(tmp_path):
    keys = np.zeros((2, 3, 1, 1), "i1")
    keys[0, :] = 1
    keys[1, 0] = 1  # C order: 0, 1, 2, 3 done (Fortran order would stop at 3)
    path = static_file(tmp_path / "grid.h5", keys, data=False)
    with Follower(path, KEYS, timeout=0.3) as follower:
        assert list(follower) == [0, 1, 2, 3]
        assert not follower.are_keys_complete()
    keys[:] = 1
    path = static_file(tmp_path / "grid-done.h5", keys, data=False)
    with Follower(path, KEYS, timeout=0.3) as follower:
        assert list(follower) == list(range(6))
        assert follower.are_keys_complete()


def test_are_keys_complete_with_unlimited_maxshape(tmp_path):
    """Growing keys, even all non-zero, are complete only once the writer says it finished
    (swmr_tools computes prod(maxshape) and fails on None)."""
    path = static_file(tmp_path / "grow.h5", np.ones(5, "i1"), maxshape=(None,))
    with Follower(path, KEYS, timeout=0.3) as follower:
        assert follower.are_keys_complete() is False
        assert list(follower) == list(range(5))
        assert follower.are_keys_complete() is False  # no finished flag: could still grow
    path = static_file(tmp_path / "grow-running.h5", np.ones(5, "i1"), maxshape=(None,),
                       finished=0)
    with Follower(path, KEYS, timeout=0.3, finished=FINISHED) as follower:
        assert follower.are_keys_complete() is False
    path = static_file(tmp_path / "grow-done.h5", np.ones(5, "i1"), maxshape=(None,),
                       finished=1)
    with Follower(path, KEYS, timeout=0.3, finished=FINISHED) as follower:
        assert follower.are_keys_complete() is True
    path = static_file(tmp_path / "grow-gap.h5", [1, 0, 1], maxshape=(None,), finished=1)
    with Follower(path, KEYS, timeout=0.3, finished=FINISHED) as follower:
        assert follower.are_keys_complete() is False
    path = static_file(tmp_path / "fixed.h5", np.ones(5, "i1"))
    with Follower(path, KEYS, timeout=0.3) as follower:
        assert follower.are_keys_complete() is True
    path = static_file(tmp_path / "part.h5", [1, 1, 0, 1, 1])
    with Follower(path, KEYS, timeout=0.3) as follower:
        assert follower.are_keys_complete() is False


def test_key_group_means_every_dataset_inside(tmp_path):
    path = tmp_path / "group.h5"
    with h5py.File(path, "w") as f:
        f[f"{KEYS}/a"] = np.array([1, 1, 1, 1, 0], "i1")
        f[f"{KEYS}/b"] = np.array([1, 1, 0, 1, 1], "i1")
        f[f"{KEYS}/c"] = np.array([1, 1, 1], "i1")
    with Follower(path, KEYS, timeout=0.3) as follower:
        assert list(follower) == [0, 1]
    with Follower(path, [f"{KEYS}/a", f"{KEYS}/c"], timeout=0.3) as follower:
        assert list(follower) == [0, 1, 2]


def test_follower_on_an_open_file_leaves_it_open(tmp_path):
    path = static_file(tmp_path / "done.h5", np.ones(3, "i1"), finished=np.array([1], "i1"))
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        with Follower(f, KEYS, timeout=1, finished=FINISHED) as follower:
            assert list(follower) == [0, 1, 2]
            assert follower.finished  # a 1-element finished flag works too
        assert f.id.valid
    with Follower(path, KEYS, timeout=0.3) as follower:
        opened = follower.file
        assert list(follower) == [0, 1, 2]
    assert not opened.id.valid  # a file the follower opened is closed with it
    with h5py.File(path, "a"):  # ... so it can be written again
        pass


def test_frame_reader_refreshes_and_returns_selection(tmp_path):
    """read_frame past what the dataset showed refreshes it: never a fill-value frame."""
    path = tmp_path / "live.h5"
    w = h5py.File(path, "w", libver="latest")
    ds = w.create_dataset("d", shape=(0,) + FRAME_SHAPE, maxshape=(None,) + FRAME_SHAPE,
                          dtype="u2", chunks=(1,) + FRAME_SHAPE)
    w.swmr_mode = True
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as r:
            reader = FrameReader(r["d"], 1)
            for i in range(4):
                ds.resize(i + 1, axis=0)
                ds[i] = frame(i)
                ds.flush()
                values, selection = reader.read_frame(i)
                np.testing.assert_array_equal(values, frame(i))
                assert selection[0] == i
                np.testing.assert_array_equal(r["d"][selection], frame(i))
    finally:
        w.close()


def test_frame_reader_grid_fixed_dataset_never_fill_value(tmp_path, spawn):
    """A fixed-size grid dataset's extent never changes, yet frames written (by another
    process) after the reader first looked must be read, not the fill value: FrameReader
    alone, with keys checked by hand rather than by a Follower."""
    path = tmp_path / "grid.h5"
    writer = spawn("raw", path, "--scan", "3,4", "--count", 12, "--interval", 0.02)
    writer.wait_for("swmr")
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        key = f[f"{KEYS}/k1"]
        reader = FrameReader(f[DATA], 2)
        deadline = time.monotonic() + 10
        for i in range(12):
            while True:
                key.refresh()
                if key[np.unravel_index(i, (3, 4))].item():
                    break
                assert time.monotonic() < deadline, f"key {i} never set"
                time.sleep(0.005)
            values, selection = reader.read_frame(i)
            assert selection[:2] == tuple(np.unravel_index(i, (3, 4)))
            np.testing.assert_array_equal(values, frame(i), err_msg=f"frame {i}")


# -- the LiveWriter's rules -------------------------------------------------------------------
def test_live_writer_refuses_declarations_after_start(tmp_path):
    with LiveWriter(tmp_path / "w.h5") as w:
        w.create_key("keys")
        w.create_frames("data", frame_shape=(2, 2), dtype="u2")
        w.create_finished("finished")
        w.attrs["sample"] = "Si"
        w.start()
        with pytest.raises(LiveWriterError):
            w.create_frames("more", frame_shape=(2, 2), dtype="u2")
        with pytest.raises(LiveWriterError):
            w.create_key("keys2")
        with pytest.raises(LiveWriterError):
            w.create_finished("finished2")
        with pytest.raises(LiveWriterError):
            w.attrs["late"] = 1
        assert isinstance(LiveWriterError("x"), H5ForgeError)
        w.append(data=np.ones((2, 2)))
        w.finish()
    with h5py.File(tmp_path / "w.h5", "r") as f:
        assert f.attrs["sample"] == "Si"
        assert "late" not in f.attrs and "more" not in f and "keys2" not in f
        assert f["keys"][()].tolist() == [1] and f["finished"][()] == 1


@pytest.mark.parametrize("dtype", [h5py.string_dtype(), h5py.vlen_dtype("i4"), object])
def test_live_writer_refuses_variable_length_frames(tmp_path, dtype):
    with LiveWriter(tmp_path / "w.h5") as w:
        with pytest.raises(H5ForgeError):
            w.create_frames("names", frame_shape=(), dtype=dtype)


def test_live_writer_chunks_false(tmp_path):
    with LiveWriter(tmp_path / "w.h5") as w:
        with pytest.raises(H5ForgeError):
            w.create_frames("grow", frame_shape=(2,), dtype="f4", chunks=False)
        fixed = w.create_frames("fixed", frame_shape=(2,), dtype="f4", n_frames=3,
                                chunks=False)
        assert fixed.shape == (3, 2)


@pytest.mark.parametrize("started", [False, True])
def test_live_writer_closes_cleanly_on_exception(tmp_path, started):
    path = tmp_path / "w.h5"
    with pytest.raises(RuntimeError, match="detector died"):
        with LiveWriter(path) as w:
            w.create_key("keys")
            w.create_frames("data", frame_shape=(2, 3), dtype="i4")
            w.create_finished("finished")
            if started:
                w.start()
                for i in range(3):
                    w.append(data=np.full((2, 3), i + 1))
            raise RuntimeError("detector died")
    with h5py.File(path, "r") as f:  # opens normally: not left marked open for writing
        n = 3 if started else 0
        assert f["data"].shape == (n, 2, 3)
        assert f["keys"][()].tolist() == [1] * n
        assert f["finished"][()] == 0
        if started:
            np.testing.assert_array_equal(f["data"][2], np.full((2, 3), 3))
    with h5py.File(path, "a"):
        pass


def test_live_writer_append_explicit_index_and_block(tmp_path):
    path = tmp_path / "w.h5"
    with LiveWriter(path) as w:
        w.create_key("keys")
        w.create_frames("data", frame_shape=(2,), dtype="i4")
        w.start()
        assert w.append(data=np.stack([frame(i, (2,), "i4") for i in range(3)])) == 3
        w.append(4, data=frame(4, (2,), "i4"))  # leaves a gap at 3
        with Follower(path, "keys", timeout=0.3) as follower:
            assert list(follower) == [0, 1, 2]
        w.append(3, data=frame(3, (2,), "i4"))
        with Follower(path, "keys", timeout=0.3) as follower:
            reader = FrameReader(follower.file["data"], 1)
            got = [(i, reader.read_frame(i)[0].tolist()) for i in follower]
        assert got == [(i, [i + 1, i + 1]) for i in range(5)]


# -- the command line -------------------------------------------------------------------------
cli_missing = pytest.mark.skipif(importlib.util.find_spec("h5forge.cli.follow") is None,
                                 reason="no h5forge follow command")


@cli_missing
def test_cli_follow_live(tmp_path, spawn, capsys):
    from h5forge.cli.main import main

    path = tmp_path / "scan.h5"
    writer = spawn("live", path, "--count", 6, "--interval", 0.02)
    writer.wait_for("swmr")
    code = main(["follow", str(path), "--keys", KEYS, "--data", DATA, "--finished", FINISHED,
                 "--timeout", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 7, out
    for i, line in enumerate(lines[:6]):
        assert line.split()[:2] == ["frame", str(i)], line
        assert f"mean={i + 1}" in line, line
    assert lines[-1].startswith("6 frame") and "finished" in lines[-1]


@cli_missing
def test_cli_follow_static_times_out(tmp_path, capsys):
    from h5forge.cli.main import main

    path = static_file(tmp_path / "done.h5", [1, 1, 0])
    code = main(["follow", str(path), "--keys", KEYS, "--timeout", "0.3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert [ln.split()[:2] for ln in lines[:2]] == [["frame", "0"], ["frame", "1"]]
    assert len(lines) == 3 and "timed out" in lines[-1]


@cli_missing
def test_cli_follow_missing_file(tmp_path, capsys):
    from h5forge.cli.main import main

    code = main(["follow", str(tmp_path / "nope.h5"), "--keys", KEYS, "--timeout", "0.3"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("h5forge: error:") and "lock" in err.lower()


def test_no_stray_environment():
    """The file-locking tests assume HDF5's locking is on."""
    assert os.environ.get("HDF5_USE_FILE_LOCKING", "TRUE").upper() not in ("FALSE", "0")
