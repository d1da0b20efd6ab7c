"""A live flow: follow a scan another process is still writing (HDF5 SWMR) and run a stage on
each batch of completed frames. The example lives in ``examples/flow_live/``; this runs it
(``make run`` runs the top-level examples).

Run with ``python examples/flow_live.py [OUT_DIR]``.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).resolve().parent / "flow_live" / "run_example.py"),
                   run_name="__main__")
