"""h5flow's own example flow run by h5forge: its config (``path:`` added) and its classes with
their imports pointed at ``h5forge.flow.compat``. The output is the file h5flow itself writes
(``tests/flow/test_h5flow_files.py`` compares it with one h5flow wrote), so h5flow reads it
and appends to it.

    python examples/flow/h5flow/run_example.py [OUT]

It runs 2 generator turns (2,048 source rows), prints the tables and reference tables with
h5flow's ``print_data`` / ``print_ref``, then reads the references from both sides: from the
source (``/input/index/ref/stage0/example/ref``, direction (0, 1)) and from the copy, where
h5flow's layout has no table of its own (the source's, read with direction (1, 0)).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

from h5forge.flow import run
from h5forge.flow.compat import H5FlowDataManager, print_data, print_ref

CONFIG = Path(__file__).resolve().with_name("example_config.yaml")


def main(out: str | Path | None = None) -> Path | None:
    if out is None:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "h5flow_example.h5")
        return None
    out = Path(out)
    summary = run(CONFIG, out, end=2, progress=False)
    print(f"{out.name}: {summary}")
    with h5py.File(out, "r") as f:
        print_data(f)
        print_ref(f)
        assert "example_stage2" not in f  # dropped at the end, as in h5flow
        assert "stage0/example/ref/input/index/ref" not in f  # h5flow's layout: no child table
    with H5FlowDataManager(out, mode="r") as dm:
        down = dm["input/index", "stage0/example", 0:3]  # each source row -> up to 10 copies
        up = dm["stage0/example", "input/index", 0:3]  # each copy -> the source rows
        print("source rows 0..2 -> copies:", down.tolist())
        print("copies 0..2 -> source rows:", up.tolist())
        assert down[0].compressed().tolist() == list(range(10))
        assert up[2].compressed().tolist() == [0, 1, 2]
        assert np.array_equal(dm["stage1/example", 0:5], np.arange(5))
    print("ok  the references read the same from both sides")
    return out


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
