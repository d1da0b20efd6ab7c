"""A YAML flow (h5flow's model): simulated detector events -> hits -> clusters -> per-event
summaries, with references between the tables. The example lives in ``examples/flow/``; this
runs it (``make run`` runs the top-level examples only).

Run with ``python examples/flow_pipeline.py [OUT]`` (the same as
``python examples/flow/run_example.py [OUT]``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "flow" / "run_example.py"


def _load():
    spec = importlib.util.spec_from_file_location("flow_run_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    _load().main(sys.argv[1] if len(sys.argv) > 1 else None)
