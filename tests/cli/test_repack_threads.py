"""``h5forge repack --threads N -v``: chunks compressed in threads, and what went where."""

from __future__ import annotations

import h5py
import hdf5plugin
import numpy as np

from h5forge.cli.main import main

DATA = np.cumsum(np.arange(6000, dtype="i4") % 7).reshape(600, 10)


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def make_source(path):
    with h5py.File(path, "w") as f:
        f.create_dataset("sig", data=DATA, chunks=(100, 10), compression="gzip")
        f.create_dataset("bits", data=DATA, chunks=(100, 10), **hdf5plugin.Bitshuffle())


def test_repack_threads_verbose_says_how_each_dataset_was_written(capsys, tmp_path):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    make_source(src)
    code, out, err = run(capsys, "repack", src, dst, "-z", "zstd", "--threads", "2", "-v",
                         "--no-progress")
    assert code == 0
    assert "sig: 1 chunks encoded (zstd) on 2 thread(s)" in out
    assert "bits: 1 chunks encoded (zstd) on 2 thread(s)" in out  # recompressed with zstd
    with h5py.File(dst, "r") as f:
        assert np.array_equal(f["sig"][()], DATA) and np.array_equal(f["bits"][()], DATA)


def test_repack_verbose_names_the_fallback(capsys, tmp_path):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    make_source(src)
    code, out, err = run(capsys, "repack", src, dst, "-z", "bitshuffle", "-v", "--no-progress")
    assert code == 0
    assert "HDF5's filter pipeline, one core (HDF5 filter 32008 has no thread-safe encoder" in out
    assert "filters through HDF5's pipeline on one core" in err
    with h5py.File(dst, "r") as f:
        assert np.array_equal(f["sig"][()], DATA)


def test_repack_bad_thread_count(capsys, tmp_path):
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    make_source(src)
    code, out, err = run(capsys, "repack", src, dst, "--threads", "0")
    assert code != 0 and "threads must be a positive integer" in err
    assert not dst.exists()
