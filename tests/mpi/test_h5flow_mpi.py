"""h5flow's example on 2 MPI ranks: through h5forge and through the real h5flow, the same file.

Runs only where ``H5FLOW_PATH`` names h5flow's source checkout (plus a directory with
``pyyaml-include<2``), as for ``tests/flow/test_h5flow_interop.py``::

    H5FLOW_PATH=/tmp/h5flow-src:/tmp/h5flow-deps mpiexec -n 2 $(cat .make-mpi-python) \\
        -m pytest -q -p no:cacheprovider tests/mpi/test_h5flow_mpi.py

h5flow runs in this process (it imports mpi4py and writes through parallel HDF5 itself), from
its source directory: it finds ``H5FlowTestStage`` by executing the modules there.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5forge.flow import run

SOURCE = next((Path(p) for p in os.environ.get("H5FLOW_PATH", "").split(os.pathsep)
               if p and (Path(p) / "examples" / "example_config.yaml").is_file()), None)
pytestmark = pytest.mark.skipif(SOURCE is None, reason="h5flow's source not on H5FLOW_PATH")


def contents(path: Path) -> dict:
    """Every object of a file: attributes and values (widths aside: h5forge's references and
    regions are 64-bit)."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            attrs = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in obj.attrs.items()}
            value = None
            if isinstance(obj, h5py.Dataset):
                raw = obj[()]
                value = ({n: raw[n].astype(np.int64).tolist() for n in raw.dtype.names}
                         if raw.dtype.names else raw.astype(np.int64).tolist())
            out[name] = (attrs, value)
        f.visititems(visit)
    return out


def test_h5flows_example_on_two_ranks_as_h5flow_writes_it(comm, shared_dir, monkeypatch):
    for entry in reversed(os.environ["H5FLOW_PATH"].split(os.pathsep)):
        monkeypatch.syspath_prepend(entry)
    config = shared_dir / "example_config.yaml"
    if comm.rank == 0:
        text = (SOURCE / "examples" / "example_config.yaml").read_text()
        for line in ("  - classname: ExampleResource\n", "  classname: ExampleGenerator\n",
                     "  classname: ExampleStage\n"):
            indent = " " * (len(line) - len(line.lstrip(" -")))
            text = text.replace(line, f"{line}{indent}path: examples.modules.examples\n")
        config.write_text(text)
    comm.Barrier()
    monkeypatch.chdir(SOURCE)
    import h5flow

    assert h5flow.H5FLOW_MPI  # h5flow itself on both ranks
    h5flow.run([str(config)], str(shared_dir / "h5flow.h5"), end_position=2)
    comm.Barrier()
    summary = run(config, shared_dir / "h5forge.h5", end=2, progress=False)
    comm.Barrier()
    assert summary.ranks == 2 and summary.rows == 2 * 2 * 1024  # each rank its own 2 chunks
    theirs, ours = contents(shared_dir / "h5flow.h5"), contents(shared_dir / "h5forge.h5")
    assert sorted(ours) == sorted(theirs)
    for name in theirs:
        assert ours[name] == theirs[name], name
    with h5py.File(shared_dir / "h5forge.h5", "r") as f:
        assert "stage0/example/ref/input/index/ref" not in f
        assert len(f["input/index/data"]) == 4096
