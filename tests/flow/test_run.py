"""The serial engine end to end: a YAML config, stages from a .py file, requires, drop."""

from __future__ import annotations

import textwrap

import h5py
import numpy as np
import pytest

from h5forge.errors import FlowConfigError, FlowError
from h5forge.flow import run

STAGES = '''
import numpy as np
from h5forge.flow import Stage


class Hits(Stage):
    """Two hits per event, referenced from the event."""

    def init(self, source_name):
        self.data_manager.create_dset("hits", [("q", "f8")])
        self.data_manager.create_ref(source_name, "hits")

    def run(self, source_name, source_slice, cache):
        events = cache[source_name]
        n = len(events)
        sel = self.data_manager.reserve_data("hits", 2 * n)
        q = np.repeat(events["energy"], 2) / 2
        self.data_manager.write_data("hits", sel, np.array(list(zip(q)), [("q", "f8")]))
        parents = np.repeat(np.arange(source_slice.start, source_slice.stop), 2)
        children = np.arange(sel.start, sel.stop)
        self.data_manager.write_ref(source_name, "hits", np.stack([parents, children], 1))


class Sum(Stage):
    def __init__(self, **params):
        super().__init__(**params)
        self.scale = params.get("scale", 1.0)

    def init(self, source_name):
        self.data_manager.create_dset("sums", "f8")

    def run(self, source_name, source_slice, cache):
        total = cache["ev_hits"]["q"].sum(axis=1).filled(0) * self.scale
        sel = self.data_manager.reserve_data("sums", source_slice)
        self.data_manager.write_data("sums", sel, total)


class Boom(Stage):
    def run(self, source_name, source_slice, cache):
        raise RuntimeError("detector on fire")
'''


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "my_stages.py").write_text(STAGES)
    with h5py.File(tmp_path / "in.h5", "w") as f:
        data = np.zeros(10, [("energy", "f8")])
        data["energy"] = np.arange(10)
        f.create_dataset("events/data", data=data, chunks=(4,))
    return tmp_path


def config(tmp_path, text, name="flow.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_pipeline_with_references_and_a_require_chain(setup):
    cfg = config(setup, """
        flow:
          source: events
          stages: [hits, sum]
          drop: [hits]
        hits: {classname: Hits, path: my_stages.py}
        sum:
          classname: Sum
          path: my_stages.py
          params: {scale: 2.0}
          requires: [{name: ev_hits, path: hits}]
    """)
    summary = run([cfg], setup / "out.h5", input=setup / "in.h5", progress=False)
    assert (summary.rows, summary.chunks) == (10, 3)  # chunk_size auto: the table's chunks
    with h5py.File(setup / "out.h5", "r") as f:
        assert np.allclose(f["sums/data"][:], 2 * np.arange(10))
        assert "hits" not in f and "events" not in f  # dropped; the input is not copied


def test_a_failing_stage_names_itself_and_the_rows(setup):
    cfg = config(setup, """
        flow: {source: events, stages: [boom]}
        boom: {classname: Boom, path: my_stages.py}
    """)
    with pytest.raises(FlowError, match=r"stage 'boom' \(Boom\) failed in run\(\) on rows 0:4: "
                                        r"RuntimeError: detector on fire"):
        run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False)
    with h5py.File(setup / "out.h5", "r"):  # left closed and valid
        pass


def test_unresolvable_require_is_an_error_not_none(setup):
    cfg = config(setup, """
        flow: {source: events, stages: [sum]}
        sum: {classname: Sum, path: my_stages.py, requires: [{name: ev_hits, path: hits}]}
    """)
    with pytest.raises(FlowError, match="stage 'sum' requires 'ev_hits' .*no table 'hits'"):
        run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False)


def test_config_errors_come_before_any_data(setup):
    cfg = config(setup, """
        flow: {source: events, stages: [nope]}
    """)
    with pytest.raises(FlowConfigError, match="nope"):
        run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False)
    assert not (setup / "out.h5").exists()
