"""Run the live flow (``pipeline.yaml``) on a scan while ``writer.py`` writes it, in another
process: frames are processed in batches as they are completed, and the run ends when the
writer sets its finished flag. Then it checks every frame's spot against where the writer put
it.

Run with ``python examples/flow_live/run_example.py [OUT_DIR]``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from h5forge.flow import run

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from writer import frame, spot_position  # noqa: E402

N_FRAMES = 40


def main(out_dir: Path) -> None:
    scan, out = out_dir / "scan.h5", out_dir / "spots.h5"
    writer = subprocess.Popen([sys.executable, str(HERE / "writer.py"), str(scan),
                               str(N_FRAMES), "0.02"])
    began = time.monotonic()
    try:
        summary = run(HERE / "pipeline.yaml", out, input=scan, progress=False)
    finally:
        writer.wait(timeout=30)
    print(f"{summary.rows} frames in {summary.chunks} batches, "
          f"{time.monotonic() - began:.2f} s (the writer took about {N_FRAMES * 0.02:.1f} s)")
    with h5py.File(out, "r") as f:
        spots = f["spots/data"][()]
        frames = f["frames/data"]
        assert frames["index"].tolist() == list(range(N_FRAMES)), "every frame once, in order"
        for s in spots:
            image, i0 = frame(int(s["index"]))
            row, col = spot_position(int(s["index"]))
            assert abs(s["row"] - row) < 0.05 and abs(s["col"] - col) < 0.05
            assert np.isclose(s["intensity"], image.sum() / i0)
    assert summary.chunks > 1, "frames should come in several batches while the writer runs"
    print(f"{out}: {len(spots)} spots, each where the writer put it")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
