"""``h5forge.follow.compat`` against swmr_tools itself: the same writer file followed by both.

Each reader is ``peer_proc.py`` (swmr_tools' API, the module imported as ``st``) in its own
process, the two at once against one live writer process; the items they yield (index, scan
slices, maxshape, every frame's bytes) must be the same, and every frame must hold what the
writer wrote. Where swmr_tools is known to fail (a grid started (1, 1); empty keys; a scalar
finished flag; the dataset held twice) only compat is run and checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5forge.errors import FollowError
from h5forge.follow import compat

from .writer_proc import FRAME_SHAPE, frame

pytest.importorskip("swmr_tools")

PEER = Path(__file__).resolve().with_name("peer_proc.py")
KEY, DATA, FINISHED = "entry/keys/k1", "entry/data", "entry/finished"


def start_reader(impl: str, path: Path, *args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(PEER), impl, str(path), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> list[dict]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"{proc.args[2]} reader exit {proc.returncode}: {err}"
    return [json.loads(line) for line in out.splitlines()]


def both(path: Path, *args: object, ours: tuple[object, ...] = ()
         ) -> tuple[list[dict], list[dict]]:
    """Start both readers at once (the writer is running); their lines. ``ours``: extra
    arguments for the compat reader only."""
    readers = [start_reader("swmr_tools", path, *args),
               start_reader("compat", path, *args, *ours)]
    return result(readers[0]), result(readers[1])


def chunk_masks(path: Path) -> set[int]:
    """The filter masks of the frame chunks: 1 where blosc declined a chunk (too small to
    gain) and HDF5 stored it unfiltered."""
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        data = f[DATA]
        return {data.id.read_direct_chunk(tuple(int(p) for p in pos) + (0,) * 2)[0]
                for pos in np.ndindex(*data.shape[:-2])}


def check_frames(items: list[dict], count: int, frame_shape: tuple[int, ...]) -> None:
    frames = [item for item in items if "index" in item]
    assert [item["index"] for item in frames] == list(range(count))
    for item in frames:
        i = item["index"]
        assert (item["min"], item["max"]) == (i + 1, i + 1), item
        assert tuple(item["shape"]) == frame_shape, item


@pytest.mark.parametrize("scan, direct", [("3,4", False), ("2,5", True)])
def test_datasource_grid_same_as_swmr_tools(tmp_path, spawn, scan, direct):
    path = tmp_path / "scan.h5"
    rows, cols = (int(n) for n in scan.split(","))
    writer = spawn("raw", path, "--scan", scan, "--count", rows * cols, "--interval", 0.03,
                   "--finished-1", *(["--blosc"] if direct else []))
    writer.wait_for("swmr")
    # direct: swmr_tools' direct reads would blosc-decode chunks HDF5 stored unfiltered (filter
    # mask 1) and fail, so it reads through HDF5 while compat reads the chunks directly
    peer, ours = both(path, "--kind", "datasource", ours=("--direct",) if direct else ())
    assert ours == peer
    check_frames(ours, rows * cols, (1, 1) + FRAME_SHAPE)
    assert ours[0]["slices"] == [[0, 1], [0, 1]] and ours[0]["maxshape"] == [rows, cols]
    assert ours[-1] == {"end": True, "finished": True, "timed_out": False}
    assert writer.join() == 0
    if direct:
        assert chunk_masks(path) == {1}


@pytest.mark.parametrize("grow", ["point"])
def test_datasource_growing_grid_like_swmr_tools_mock_grid_scan(tmp_path, spawn, grow):
    """Keys created (1, 1) with maxshape (3, 4), resized by the writer (swmr_tools' own
    mock_grid_scan does this): the same items from both."""
    path = tmp_path / "scan.h5"
    writer = spawn("raw", path, "--scan", "3,4", "--grow", grow, "--count", 12,
                   "--interval", 0.03, "--finished-1")
    writer.wait_for("swmr")
    peer, ours = both(path, "--kind", "datasource")
    assert ours == peer
    check_frames(ours, 12, (1, 1) + FRAME_SHAPE)
    assert writer.join() == 0


def test_datasource_growing_stack_and_direct_chunks(tmp_path, spawn):
    path = tmp_path / "scan.h5"
    writer = spawn("raw", path, "--scan", "10", "--grow", "row", "--count", 10,
                   "--interval", 0.03, "--finished-1", "--blosc")
    writer.wait_for("swmr")
    peer, ours = both(path, "--kind", "datasource", ours=("--direct",))
    assert ours == peer
    check_frames(ours, 10, (1,) + FRAME_SHAPE)
    assert writer.join() == 0


@pytest.mark.parametrize("kind", ["keyfollower", "rowkeyfollower"])
def test_key_followers_same_as_swmr_tools(tmp_path, spawn, kind):
    path = tmp_path / "scan.h5"
    writer = spawn("raw", path, "--scan", "3,4", "--count", 12, "--interval", 0.03,
                   "--finished-1")
    writer.wait_for("swmr")
    peer, ours = both(path, "--kind", kind)
    assert ours == peer
    expected = list(range(12)) if kind == "keyfollower" else [3, 7, 11]
    assert [item["index"] for item in ours if "index" in item] == expected
    assert ours[-1] == {"end": True, "finished": True, "timed_out": False, "scan_rank": 2,
                        "maxshape": [3, 4], "complete": True}
    assert writer.join() == 0


def test_chunk_source_same_blocks_as_swmr_tools(tmp_path, spawn):
    """Whole blosc chunks of 10 frames, read directly: the same blocks (index and bytes)."""
    path = tmp_path / "chunks.h5"
    writer = spawn("chunks", path, "--count", 35, "--chunk", 10, "--interval", 0.05)
    writer.wait_for("swmr")
    peer, ours = both(path, "--kind", "chunksource", "--timeout", 1)
    assert ours == peer
    blocks = [item for item in ours if "index" in item]
    assert [b["index"] for b in blocks] == [0, 10, 20, 30]
    assert [b["shape"][0] for b in blocks] == [10, 10, 10, 5]
    assert (blocks[-1]["min"], blocks[-1]["max"]) == (31, 35)
    assert writer.join() == 0


def test_chunk_source_growing_waits_for_whole_chunks(tmp_path, spawn):
    """A growing dataset: every block compat yields holds only written frames."""
    path = tmp_path / "chunks.h5"
    writer = spawn("chunks", path, "--count", 30, "--chunk", 10, "--interval", 0.05,
                   "--growing")
    writer.wait_for("swmr")
    ours = result(start_reader("compat", path, "--kind", "chunksource", "--timeout", 1))
    blocks = [item for item in ours if "index" in item]
    assert [(b["index"], b["min"], b["max"]) for b in blocks] == [
        (0, 1, 10), (10, 11, 20), (20, 21, 30)]
    assert writer.join() == 0


def interleaved_file(path: Path, count: int) -> None:
    """Frames written in turn by two writers: frame i in part i % 2 at i // 2."""
    with h5py.File(path, "w", libver="latest") as f:
        for n in range(2):
            part = np.stack([frame(i) for i in range(n, count, 2)])
            f.create_dataset(f"entry/part{n}", data=part, chunks=(1,) + FRAME_SHAPE)
        f.create_dataset(KEY, data=np.ones(count, "i4"), maxshape=(count,), chunks=(count,))
        f.create_dataset(FINISHED, data=np.ones(1, "i1"))


def test_interleaved_datasets_same_as_swmr_tools(tmp_path):
    path = tmp_path / "inter.h5"
    interleaved_file(path, 9)
    peer, ours = both(path, "--kind", "interleaved", "--timeout", 1)
    assert ours == peer
    check_frames(ours, 9, (1,) + FRAME_SHAPE)
    assert ours[4]["slices"] == [[4, 5]]


# -- compat where swmr_tools fails ------------------------------------------------------------
def test_compat_empty_keys_and_scalar_finished(tmp_path, spawn):
    """Keys that start empty and a scalar finished flag (a plain h5py writer's choice):
    swmr_tools fails on both, compat follows to the end."""
    path = tmp_path / "raw.h5"
    writer = spawn("raw", path, "--count", 8, "--interval", 0.03, "--first-delay", 0.2)
    writer.wait_for("swmr")
    ours = result(start_reader("compat", path, "--kind", "datasource"))
    check_frames(ours, 8, (1,) + FRAME_SHAPE)
    assert ours[-1] == {"end": True, "finished": True, "timed_out": False}
    assert writer.join() == 0


def test_compat_static_earliest_format_file(tmp_path):
    """A finished file in HDF5's default format, opened "r", the key held by the caller."""
    path = tmp_path / "done.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(DATA, data=np.stack([frame(i) for i in range(6)]),
                         chunks=(1,) + FRAME_SHAPE)
        f.create_dataset(KEY, data=np.ones(6, "i4"), chunks=(3,))
        f.create_dataset(FINISHED, data=np.ones(1, "i1"))
    code = f"""
import h5py, numpy as np
from h5forge.follow import compat
with h5py.File({str(path)!r}, "r") as f:
    key = f[{KEY!r}]
    source = compat.DataSource([key], {{"d": f[{DATA!r}]}}, timeout=1,
                               finished_dataset=f[{FINISHED!r}])
    got = [(item.index, int(item["d"].min()), int(item["d"].max())) for item in source]
    assert got == [(i, i + 1, i + 1) for i in range(6)], got
    assert source.is_scan_finished() and not source.has_timed_out()
    key[()]
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_compat_finished_flag_of_several_elements_is_ignored_like_swmr_tools(tmp_path):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f[KEY] = np.ones(3, "i4")
        f[FINISHED] = np.ones(4, "i1")
    with h5py.File(path, "r") as f:
        follower = compat.KeyFollower([f[KEY]], timeout=0.2, finished_dataset=f[FINISHED])
        assert list(follower) == [0, 1, 2]
        assert follower.timed_out and not follower.finished_set


def test_compat_bad_inputs(tmp_path):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f["k1"] = np.ones((2, 3), "i4")
        f["k2"] = np.ones(6, "i4")
        f.create_dataset("flat", data=np.zeros((10, 4)), chunks=(5, 2))
        f.create_dataset("grow", data=np.ones((2, 3)), maxshape=(2, None))
    with h5py.File(path, "r") as f:
        with pytest.raises(FollowError, match="same rank"):
            compat.KeyFollower([f["k1"], f["k2"]]).check_datasets()
        with pytest.raises(FollowError, match="no data to follow"):
            compat.DataSource([f["k2"]], None)
        with pytest.raises(FollowError, match="not compatible"):
            compat.ChunkSource({"d": f["flat"]})
        with pytest.raises(FollowError, match="row_size must be given"):
            compat.RowKeyFollower([f["grow"]]).check_datasets()
        with pytest.raises(FollowError, match="scan_rank 3 does not fit"):
            compat.FrameReader(f["k1"], 3)


# -- chunk_utils: a stream of chunks into a grid ------------------------------------------------
@pytest.mark.parametrize("shape, n", [([5, 15], 32), ([20, 4], 6), ([35, 29], 7), ([4, 5, 3], 10),
                                      ([3, 3, 3], 2), ([2, 3, 7, 10], 7), ([13, 13], 10)])
@pytest.mark.parametrize("snake", [False, True])
def test_chunk_writes_fill_the_grid_like_swmr_tools(shape, n, snake):
    """Chunks of n points (scan order, raster or snake) written into the grid: the same grid
    as swmr_tools' chunk_utils gives, every point once, each write on a multiple of n."""
    from swmr_tools import chunk_utils

    total = int(np.prod(shape))
    ours, peer = np.full(shape + [2], -1), np.full(shape + [2], -1)
    last = None
    for start in range(0, total, n):
        data = np.stack([np.arange(start, start + n)] * 2, axis=1)  # points of shape (2,)
        writes = compat.get_slice_structure(start, n, shape, snake)
        for w in writes:
            target = w.current.output if w.type == "current" else w.intermediate.slice
            assert target.start % n == 0 and target.step in (None, 1)
        compat.write_data(writes, data, last, ours)
        chunk_utils.write_data(chunk_utils.get_slice_structure(start, n, shape, snake),
                               data, last, peer)
        last = data
    expected = np.empty(shape, int)
    for i in range(total):
        where = compat.get_position_snake(i, shape, len(shape)) if snake else \
            np.unravel_index(i, shape)
        expected[tuple(where)] = i
    np.testing.assert_array_equal(ours[..., 0], expected)
    np.testing.assert_array_equal(ours, peer)


def test_chunk_source_into_an_h5py_grid(tmp_path):
    """ChunkSource blocks of a finished stack, written into a snake grid dataset chunked like
    the writes."""
    path = tmp_path / "stack.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("data", data=np.arange(35, dtype="i4"), chunks=(7,))
    with h5py.File(path, "r") as f, h5py.File(tmp_path / "grid.h5", "w") as out:
        grid = out.create_dataset("grid", shape=(5, 7), dtype="i4", chunks=(1, 7))
        last = None
        for block in compat.ChunkSource({"d": f["data"]}, timeout=0.5):
            writes = compat.get_slice_structure(block.index, 7, (5, 7), True)
            compat.write_data(writes, block["d"], last, grid)
            last = block["d"]
        for i in range(35):
            assert grid[compat.get_position_snake(i, (5, 7), 2)] == i
