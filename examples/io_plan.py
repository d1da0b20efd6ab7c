"""Plan how datasets are chunked and compressed, look at the plan, change it, write with it.

The NeuroConv-style workflow for any object tree or HDF5 file:

1. ``h5forge.get_default_configuration(obj)`` lists every dataset ``dump`` would write;
2. ``print(plan)`` shows shapes, sizes, buffers, chunks and compression;
3. change a few entries (validated on assignment), or all at once with
   ``apply_global_compression``;
4. ``h5forge.dump(obj, path, configuration=plan)``.

Then: a source larger than memory written buffer by buffer (``h5forge.io.write_dataset``), a
plan saved as YAML and a file repacked with it (``h5forge.io.repack``; on the command line
``h5forge config FILE -o plan.yaml`` and ``h5forge repack SRC DST --config plan.yaml``).

Run with ``python examples/io_plan.py [OUT_DIR]``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

import h5forge
from h5forge.errors import ConfigurationError
from h5forge.io import DatasetConfiguration, repack, write_dataset


def make_session(rng: np.random.Generator) -> dict:
    return {
        "recording": rng.integers(-2000, 2000, (300_000, 64), dtype=np.int16),  # 38 MB
        "lfp": rng.standard_normal((20_000, 64)).astype(np.float32),
        "spike_times": np.sort(rng.uniform(0, 10, 5_000)),
        "subject": {"id": "M12", "weight_g": 23.5},
    }


class Ramp:
    """An array-like source that is never in memory as a whole: rows are generated on request,
    like a reader of a raw acquisition file would return them."""

    shape, dtype = (2_000_000, 32), np.dtype(np.int16)

    def __getitem__(self, index: tuple[slice, ...]) -> np.ndarray:
        rows, cols = index
        grid = np.add.outer(np.arange(rows.start, rows.stop), np.arange(cols.start, cols.stop))
        return (grid % 1000).astype(self.dtype)


def main(out_dir: Path) -> None:
    session = make_session(np.random.default_rng(0))

    # 1-2. The default plan: ~10 MB chunks with whole rows, gzip level 4.
    plan = h5forge.get_default_configuration(session)
    print(plan["recording"], end="\n\n")

    # 3. Edit: 1-second chunks of all channels for the raw data, zstd + byte shuffle there.
    plan["recording"].update(chunk_shape=(30_000, 64), buffer_shape=(300_000, 64))
    plan["recording"].compression_method = "zstd"
    plan["recording"].filter = ["shuffle"]
    try:
        plan["lfp"].chunk_shape = (0, 64)
    except ConfigurationError as exc:  # every assignment is checked, naming the dataset
        print(f"refused: {exc}\n")

    # 4. Write with the plan and look at the file with h5py.
    path = out_dir / "session.h5"
    h5forge.dump(session, path, configuration=plan, overwrite=True)
    written = h5forge.io.get_current_configuration(path)  # read back from the file
    with h5py.File(path, "r") as f:
        for name in ("recording", "lfp", "spike_times"):
            entry = written[name]
            print(f"{name:12} chunks={entry.chunk_shape} {entry.compression_method} "
                  f"{entry.compression_options} filter={list(entry.filter)} "
                  f"stored={f[name].id.get_storage_size() / 1e6:.1f} MB")
    loaded = h5forge.load(path)
    assert np.array_equal(loaded["recording"], session["recording"])

    # A 128 MB source written 16 MB at a time: only one buffer is ever in memory.
    source = Ramp()
    config = DatasetConfiguration("ramp", source.dtype, source.shape,
                                  chunk_shape=(50_000, 32), buffer_shape=(250_000, 32),
                                  compression_method="blosc2", compression_options={"clevel": 5})
    with h5py.File(out_dir / "ramp.h5", "w") as f:
        dset = write_dataset(f, "ramp", source, config, progress=False)
        print(f"\nramp: {dset.shape} written in buffers of {config.buffer_shape}, "
              f"{dset.id.get_storage_size() / 1e6:.1f} MB on disk")

    # Save the file's current plan as YAML with stronger compression, repack with it.
    plan_file = out_dir / "plan.yaml"
    file_plan = h5forge.io.get_current_configuration(path)
    file_plan.apply_global_compression("zstd", {"clevel": 9})
    file_plan.to_yaml(plan_file)
    repack(path, out_dir / "session-zstd.h5", plan_file, progress=False, overwrite=True)
    again = h5forge.load(out_dir / "session-zstd.h5")
    assert again["subject"] == session["subject"]
    print(f"repacked with {plan_file.name}: "
          f"{(out_dir / 'session-zstd.h5').stat().st_size / 1e6:.1f} MB "
          f"(was {path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
