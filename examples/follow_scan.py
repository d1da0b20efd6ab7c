"""Follow a scan while another process writes it (HDF5 SWMR): the writer appends a frame every
30 ms with h5forge.follow.LiveWriter; this process reads each frame as soon as it is complete.

Run with ``python examples/follow_scan.py [OUT_DIR]``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from h5forge.follow import frames

WRITER = """
import sys, time
import numpy as np
from h5forge.follow import LiveWriter

with LiveWriter(sys.argv[1]) as w:
    w.create_key("entry/keys")
    w.create_frames("entry/image", frame_shape=(64, 64), dtype="u2")
    w.create_finished("entry/finished")
    w.attrs["sample"] = "Si wafer"
    w.start()                                  # readers may open the file from here on
    for i in range(20):
        w.append(image=np.full((64, 64), i, dtype="u2"))  # frame flushed, then its key
        time.sleep(0.03)
    w.finish()
"""


def main(out_dir: Path) -> None:
    path = out_dir / "scan.h5"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
    started = time.monotonic()
    seen = []
    # Started at once: the reader waits (retrying) until the writer has switched SWMR on.
    for index, data in frames(path, data={"image": "entry/image"}, keys=["entry/keys"],
                              finished="entry/finished", timeout=5):
        assert np.all(data["image"] == index)  # a complete frame, never fill value
        seen.append(index)
        if index % 5 == 0:
            print(f"frame {index:2d} at {time.monotonic() - started:.2f} s, "
                  f"writer {'running' if writer.poll() is None else 'done'}")
    writer.wait()
    print(f"{len(seen)} frames, in order: {seen == list(range(20))}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
