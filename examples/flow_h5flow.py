"""h5flow's own example flow through h5forge (its config with ``path:`` added, its classes
imported from ``h5forge.flow.compat``): the output is the file h5flow writes. The example lives
in ``examples/flow/h5flow/``; this runs it (``make run`` runs the top-level examples only).

Run with ``python examples/flow_h5flow.py [OUT]``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "flow" / "h5flow" / "run_example.py"


def _load():
    spec = importlib.util.spec_from_file_location("flow_h5flow_run_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    _load().main(sys.argv[1] if len(sys.argv) > 1 else None)
