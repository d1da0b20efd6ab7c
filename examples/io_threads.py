"""Compression on every core: chunks compressed in a thread pool, files any HDF5 reader reads.

``h5forge.io.write_dataset`` and ``h5forge.io.repack`` encode whole chunks in ``threads``
threads (default: every core) and store them with ``write_direct_chunk``; the bytes are those
HDF5's own filters write. This example

1. writes a 2-D int16 "recording" with gzip-4 + shuffle in threads, and the same data through
   h5py's filter pipeline, and shows that the stored chunks are byte for byte the same;
2. repacks the file to zstd, printing how each dataset was written (a bitshuffle dataset goes
   through HDF5's one-core pipeline, and the report says why);
3. reads everything back with plain h5py.

Run with ``python examples/io_threads.py [OUT_DIR]``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from h5forge.io import (
    DatasetConfiguration,
    get_default_configuration,
    repack,
    write_dataset,
)


def main(out_dir: Path) -> None:
    rng = np.random.default_rng(0)
    recording = (rng.normal(0, 20, (60_000, 64)) + 100).astype("int16")  # 7.7 MB
    plan = DatasetConfiguration("recording", recording.dtype, recording.shape,
                                chunk_shape=(10_000, 64), buffer_shape=(30_000, 64),
                                compression_method="gzip", compression_options={"level": 4},
                                filter=["shuffle"])
    path = out_dir / "threads.h5"
    with h5py.File(path, "w") as f:
        write_dataset(f, "recording", recording, plan, threads=2, progress=False)
        f.create_dataset("by_h5py", data=recording, **plan.h5py_kwargs())
        f.create_dataset("bits", data=recording[:, :8], chunks=(10_000, 8),
                         **hdf5plugin.Bitshuffle())
    with h5py.File(path, "r") as f:
        same = all(f["recording"].id.read_direct_chunk((row, 0))
                   == f["by_h5py"].id.read_direct_chunk((row, 0))
                   for row in range(0, 60_000, 10_000))
        print(f"1. gzip-4 + shuffle chunks written in threads == h5py's own: {same}")
        assert same and np.array_equal(f["recording"][()], recording)

    plan = get_default_configuration(str(path))
    plan.apply_global_compression("zstd", {"clevel": 3})
    plan["bits"].update(compression_method="bitshuffle", compression_options=None)
    print("2. repack to zstd on 2 threads:")
    for report in repack(path, out_dir / "threads_zstd.h5", plan, threads=2, progress=False,
                         overwrite=True):
        print(f"   {report}")

    with h5py.File(out_dir / "threads_zstd.h5", "r") as f:
        assert np.array_equal(f["recording"][()], recording)
        assert np.array_equal(f["bits"][()], recording[:, :8])
        print(f"3. plain h5py reads the repacked file: recording {f['recording'].shape}, "
              f"{f['recording'].id.get_storage_size() / recording.nbytes:.0%} of raw size")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
