"""Follower.batches: the frames each poll finds complete, in ranges (what a live flow uses)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5forge.errors import FollowError
from h5forge.follow import Follower


def finished_scan(path, n: int, gap: int | None = None) -> None:
    with h5py.File(path, "w", libver="latest") as f:
        keys = np.ones(n, "i4")
        if gap is not None:
            keys[gap] = 0
        f.create_dataset("keys", data=keys, maxshape=(None,), chunks=(16,))
        f.create_dataset("finished", data=1, dtype="i1")


@pytest.mark.parametrize("max_frames, expected", [
    (None, [range(0, 10)]),
    (4, [range(0, 4), range(4, 8), range(8, 10)]),
    (1, [range(i, i + 1) for i in range(10)]),
])
def test_batches_of_a_finished_scan(tmp_path, max_frames, expected):
    finished_scan(tmp_path / "s.h5", 10)
    with Follower(tmp_path / "s.h5", "keys", finished="finished", timeout=2,
                  poll_interval=0.01) as follower:
        assert list(follower.batches(max_frames)) == expected
        assert follower.finished and not follower.timed_out


def test_a_gap_holds_the_rest_back_until_the_timeout(tmp_path):
    finished_scan(tmp_path / "s.h5", 10, gap=6)
    with Follower(tmp_path / "s.h5", "keys", timeout=0.3, poll_interval=0.01) as follower:
        assert list(follower.batches()) == [range(0, 6)]
        assert follower.timed_out and not follower.finished


def test_max_frames_must_be_positive(tmp_path):
    finished_scan(tmp_path / "s.h5", 3)
    with Follower(tmp_path / "s.h5", "keys", finished="finished", timeout=1) as follower:
        with pytest.raises(FollowError, match="max_frames must be at least 1"):
            next(follower.batches(0))
