"""The real h5flow and h5forge on each other's files (runs only where h5flow is there).

h5flow is not on PyPI: point ``H5FLOW_PATH`` at its source checkout (plus a directory holding
``pyyaml-include<2``, joined with ``:``), as for ``benchmarks/bench_flow.py``::

    H5FLOW_PATH=/tmp/h5flow-src:/tmp/h5flow-deps \\
        .venv/bin/python -m pytest tests/flow/test_h5flow_interop.py

Every h5flow step runs in a subprocess (``H5FLOW_NOMPI=1``) with that path; so does h5forge when
it runs h5flow's own example modules (they import ``h5flow.core``). Checked:

- h5flow's example (its config with ``path:`` added, its modules unchanged) through
  ``h5forge flow`` gives h5flow's file;
- each tool appends a second run of the example to the other's output, and the four
  combinations (h5flow then h5flow, h5forge then h5flow, h5flow then h5forge, h5forge twice)
  give the same file;
- h5flow's own reading code (``H5FlowDataManager.__getitem__``, its ``get_ref`` fallback and
  ``dereference_chain``) reads h5forge's output as h5forge does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5forge.flow.data import DataManager
from tests.flow.test_h5flow_files import assert_same_file, assert_same_masked

H5FLOW_PATH = os.environ.get("H5FLOW_PATH", "")


def _h5flow_source() -> Path | None:
    for entry in filter(None, H5FLOW_PATH.split(os.pathsep)):
        if (Path(entry) / "h5flow" / "__init__.py").is_file() and (
                Path(entry) / "examples" / "example_config.yaml").is_file():
            return Path(entry)
    return None


SOURCE = _h5flow_source()
pytestmark = pytest.mark.skipif(SOURCE is None, reason="h5flow's source not on H5FLOW_PATH")


def _env() -> dict:
    env = dict(os.environ, H5FLOW_NOMPI="1", H5FORGE_NOMPI="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [H5FLOW_PATH, env.get("PYTHONPATH")]))
    return env


def _call(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """h5flow's example config, 'path:' added to its own classes (a dotted module h5flow's
    get_class imports too; H5FlowTestStage is left as it is: both tools have it built in)."""
    text = (SOURCE / "examples" / "example_config.yaml").read_text()
    for line in ("  - classname: ExampleResource\n", "  classname: ExampleGenerator\n",
                 "  classname: ExampleStage\n"):
        assert line in text
        indent = line[:len(line) - len(line.lstrip(" -"))].replace("-", " ")
        text = text.replace(line, f"{line}{indent}path: examples.modules.examples\n")
    path = tmp_path_factory.mktemp("h5flow-config") / "example_config.yaml"
    path.write_text(text)
    return path


def h5flow_run(config: Path, out: Path) -> None:
    _call([sys.executable, "-c", "import sys, h5flow; h5flow.run([sys.argv[1]], sys.argv[2], "
           "end_position=2, compression='gzip')", str(config), str(out)], cwd=SOURCE)


def h5forge_run(config: Path, out: Path) -> None:
    _call([sys.executable, "-m", "h5forge", "flow", "-c", str(config), "-o", str(out), "-e", "2",
           "-z", "gzip", "--no-progress"], cwd=SOURCE)


RUNS = {"h5flow": h5flow_run, "h5forge": h5forge_run}


@pytest.fixture(scope="module")
def files(config, tmp_path_factory) -> dict:
    """The example run once and twice (appending) by every combination of the tools."""
    tmp = tmp_path_factory.mktemp("interop")
    out = {}
    for first in RUNS:
        once = tmp / f"{first}.h5"
        RUNS[first](config, once)
        out[first] = once
        for second in RUNS:
            twice = tmp / f"{first}-{second}.h5"
            twice.write_bytes(once.read_bytes())
            RUNS[second](config, twice)
            out[first, second] = twice
    return out


def test_h5flows_example_through_h5forge_gives_h5flows_file(files):
    assert_same_file(files["h5forge"], files["h5flow"])


@pytest.mark.parametrize("pair", [("h5forge", "h5flow"), ("h5flow", "h5forge"),
                                  ("h5forge", "h5forge")])
def test_each_tool_appends_to_the_others_output(files, pair):
    """A second run appends 2,048 rows and their references; whoever wrote the first, the
    file is h5flow's own twice-run file (64-bit tables where h5forge created them)."""
    with h5py.File(files[pair], "r") as f:
        assert len(f["input/index/data"]) == 4096
        assert "stage0/example/ref/input/index/ref" not in f
    assert_same_file(files[pair], files["h5flow", "h5flow"],
                     created_by_h5flow=pair[0] == "h5flow")


H5FLOW_READ = """
import sys
import numpy as np
from h5flow.data import H5FlowDataManager

dm = H5FlowDataManager(sys.argv[1], mode='r', mpi=False)
n = len(dm.get_dset('input/index'))
out = {}
for key in sys.argv[3:]:
    for start, stop in ((0, 50), (n - 60, n), (n // 2 - 30, n // 2 + 30)):
        got = dm[tuple(key.split('>')) + (slice(start, stop),)]
        out[f'{key}/{start}.data'] = np.asarray(got.data)
        out[f'{key}/{start}.mask'] = np.ma.getmaskarray(got)
np.savez(sys.argv[2], **out)
"""
KEYS = ["input/index>stage0/example", "stage0/example>input/index",
        "stage1/example>input/index>stage0/example"]


@pytest.mark.parametrize("which", ["h5forge", ("h5forge", "h5forge"), ("h5flow", "h5forge")])
def test_h5flows_reading_code_reads_h5forges_output_as_h5forge_does(files, which, tmp_path):
    path = files[which]
    _call([sys.executable, "-c", H5FLOW_READ, str(path), str(tmp_path / "theirs.npz"), *KEYS],
          cwd=tmp_path)
    with np.load(tmp_path / "theirs.npz") as npz:
        theirs = {k: npz[k] for k in npz.files}
    with h5py.File(path, "r") as f:
        dm = DataManager(f)
        n = dm.rows("input/index")
        for key in KEYS:
            for start, stop in ((0, 50), (n - 60, n), (n // 2 - 30, n // 2 + 30)):
                want = np.ma.MaskedArray(theirs[f"{key}/{start}.data"],
                                         mask=theirs[f"{key}/{start}.mask"])
                got = dm[(*key.split(">"), slice(start, stop))]
                assert_same_masked(got, want, (which, key, start))
