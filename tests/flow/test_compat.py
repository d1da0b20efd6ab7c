"""h5flow's names and call shapes on h5forge (h5forge.flow.compat and the engine): configs that
pass ``path`` as a param, base stage methods, resources, requires as mappings, the data
manager's item access, ``H5FlowDataManager``, the print helpers, and classes derived from
h5flow's own base classes."""

from __future__ import annotations

import logging
import sys
import textwrap
import types

import h5py
import numpy as np
import numpy.ma as ma
import pytest

from h5forge.errors import FlowConfigError, FlowError
from h5forge.flow import compat, run
from h5forge.flow.compat import H5FlowDataManager, print_attr, print_data, print_ref, resources
from h5forge.flow.config import Require, parse_config
from h5forge.flow.data import REGION_DTYPE, DataManager

STAGES = '''
import numpy as np
from h5forge.flow.compat import H5FlowResource, H5FlowStage, resources

SEEN = []


class Meta(H5FlowResource):
    def __init__(self, **params):
        super().__init__(**params)
        self.path = params.get("path", "meta")      # h5flow's example resource takes 'path'
        self.data = params.get("data", {})

    def init(self, source_name):
        super().init(source_name)
        self.data_manager.set_attrs(self.path, **self.data)
        SEEN.append(("resource", self.input_filename, self.start_position, self.end_position))


class Copy(H5FlowStage):
    def __init__(self, **params):
        super().__init__(**params)
        self.out = params["output_dset"]

    def init(self, source_name):
        super().init(source_name)
        dm = self.data_manager
        dm.create_dset(self.out, dm.get_dset(source_name).dtype)
        dm.create_ref(source_name, self.out)

    def run(self, source_name, source_slice, cache):
        super().run(source_name, source_slice, cache)   # h5flow's stages do this
        dm = self.data_manager
        rows = dm.reserve_data(self.out, len(cache[source_name]))
        dm.write_data(self.out, rows, cache[source_name] * resources["Meta"].data["scale"])
        parents = np.arange(source_slice.start, source_slice.stop)
        dm.write_ref(source_name, self.out, np.stack([parents, np.arange(rows.start, rows.stop)],
                                                     axis=1))
        SEEN.append(("copy", [r["name"] for r in self.requires],
                     {r["name"]: r["path"] for r in self.requires}))


class Look(H5FlowStage):
    def run(self, source_name, source_slice, cache):
        super().run(source_name, source_slice, cache)
        SEEN.append(("look", source_slice, {k: v for k, v in cache.items()}))

    def finish(self, source_name):
        super().finish(source_name)
'''


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "stages.py").write_text(STAGES)
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f.create_dataset("events/data", data=np.arange(10) * 1.5, chunks=(4,), maxshape=(None,))
    return tmp_path


def stages_module(tmp_path):
    from h5forge.flow.loading import load_class

    return sys.modules[load_class("Copy", str(tmp_path / "stages.py")).__module__]


CONFIG = """
flow:
  source: events
  stages: [copy, look, print]
resources:
  - classname: Meta
    path: stages.py
    params: {path: meta, data: {scale: 2, unit: mm}}
copy:
  classname: Copy
  path: stages.py
  params: {output_dset: copied}
look:
  classname: Look
  path: stages.py
  requires:
    - copied
    - {name: copied_idx, path: copied, index_only: true}
    - {name: back, path: [copied, events]}
print:
  classname: H5FlowTestStage
"""


def test_h5flow_style_flow_runs_with_path_params_resources_and_super_calls(setup, caplog):
    (setup / "flow.yaml").write_text(CONFIG)
    with caplog.at_level(logging.INFO, logger="h5forge.flow"):
        run(setup / "flow.yaml", setup / "out.h5", input=setup / "in.h5", start=2, end=9,
            progress=False)
    seen = stages_module(setup).SEEN
    assert seen[0] == ("resource", str(setup / "in.h5"), 2, 9)
    looks = [entry for entry in seen if entry[0] == "look"]
    assert [sl for _, sl, _ in looks] == [slice(2, 6), slice(6, 9)]  # the table's chunks
    for _, sl, cache in looks:
        rows = np.arange(sl.start, sl.stop)
        assert np.array_equal(cache["events"], rows * 1.5)
        assert np.array_equal(cache["copied"][:, 0], rows * 3.0)  # scaled by the resource
        assert np.array_equal(cache["copied_idx"][:, 0], rows - 2)
        assert np.array_equal(cache["back"][:, 0, 0], rows * 1.5)  # copied -> events: (1, 0)
    assert resources["Meta"].data == {"scale": 2, "unit": "mm"}  # h5flow's global, filled
    with h5py.File(setup / "out.h5", "r") as f:
        assert dict(f["meta"].attrs) == {"scale": 2, "unit": "mm"}
        assert f["copied/data"][:].tolist() == (np.arange(2, 9) * 3.0).tolist()
    assert any("H5FlowTestStage" in r.getMessage() or "print:" in r.getMessage()
               for r in caplog.records)  # the built-in test stage logged the cache


def test_a_second_config_gets_only_its_own_resources(setup):
    (setup / "a.yaml").write_text(CONFIG)
    (setup / "b.yaml").write_text("flow: {source: copied, stages: [look]}\n"
                                  "look: {classname: Look, path: stages.py}\n")
    run([setup / "a.yaml", setup / "b.yaml"], setup / "out.h5", input=setup / "in.h5",
        progress=False)
    assert resources == {}


def test_requires_read_as_h5flows_dicts():
    req = Require(name="hits_idx", path=("clusters", "hits"), index_only=True)
    assert (req["name"], req["path"], req["index_only"]) == ("hits_idx", ["clusters", "hits"],
                                                             True)
    assert req.get("nope", 3) == 3 and list(req.keys()) == ["name", "path", "index_only"]
    with pytest.raises(KeyError, match="not 'nope'"):
        req["nope"]


def test_config_accepts_path_as_a_param_but_not_what_the_framework_passes():
    cfg = parse_config({"flow": {"source": "e"},
                        "resources": [{"classname": "R", "params": {"path": "meta"}}]})
    assert cfg.resources[0].params == {"path": "meta"}
    with pytest.raises(FlowConfigError, match="'input_filename' clashes"):
        parse_config({"flow": {"source": "e"},
                      "resources": [{"classname": "R", "params": {"input_filename": "x"}}]})


@pytest.fixture
def dm(tmp_path):
    with H5FlowDataManager(tmp_path / "dm.h5") as manager:
        manager.create_dset("a", "i8")
        manager.create_dset("b", [("x", "f4")])
        manager.write_data("a", manager.reserve_data("a", 4), np.arange(4) * 10)
        rows = np.zeros(5, [("x", "f4")])
        rows["x"] = np.arange(5)
        manager.write_data("b", manager.reserve_data("b", 5), rows)
        manager.create_ref("a", "b")
        manager.write_ref("a", "b", [[0, 0], [0, 1], [2, 4], [3, 2]])
        yield manager


def test_item_access_as_in_h5flow(dm):
    assert isinstance(dm["a/data"], h5py.Dataset) and dm["a/data"].shape == (4,)
    assert isinstance(dm["a"], h5py.Group) and dm["a"].name == "/a"
    assert dm["a", :2].tolist() == [0, 10]
    assert dm["a", 3].tolist() == [30]  # an int: one row, as a 1-row array
    assert dm["a", [3, 0]].tolist() == [30, 0]
    everything = dm["a", "b"]  # all rows of a, no selection
    assert everything.shape == (4, 2)
    assert everything["x"].tolist() == [[0, 1], [None, None], [4, None], [2, None]]
    assert dm["b", "a", :].tolist() == [[0], [0], [30], [None], [20]]
    assert dm["a", "b", 2]["x"].tolist() == [[4]]
    assert isinstance(dm["a", "b", :], ma.MaskedArray)
    with pytest.raises(FlowError, match="nothing at /nope"):
        dm["nope"]
    with pytest.raises(FlowError, match="name the tables first"):
        dm[3, 4]


def test_h5flow_data_manager_names(dm, tmp_path):
    assert dm.exists("a/ref/b/ref") and not dm.exists("b/ref/a/ref")
    assert dm.ref_region_exists("b", "a") and not dm.ref_region_exists("a", "c")
    dm.set_attrs("a", unit="cm")
    assert dm.attr_exists("a", "unit") and not dm.attr_exists("a", "nope")
    assert not dm.attr_exists("nope", "unit")
    assert repr(dm).startswith("H5FlowDataManager(filepath=")
    dm.close_file()
    assert not dm.file
    assert dm.fh["a/data"].shape == (4,)  # reopened
    assert dm["a", "b", 0]["x"].tolist() == [[0, 1]]
    with pytest.raises(FlowError, match=r"mpi=True\) is not supported"):
        H5FlowDataManager(tmp_path / "x.h5", mpi=True)


def test_h5flow_data_manager_drop_list(tmp_path):
    with H5FlowDataManager(tmp_path / "out.h5", drop_list=["tmp"]) as dm:
        dm.create_dset("keep", "i4")
        dm.create_dset("tmp", "i4")
        dm.write_data("tmp", dm.reserve_data("tmp", 3), [1, 2, 3])
        dm.write_data("keep", dm.reserve_data("keep", 3), [4, 5, 6])
        dm.create_ref("keep", "tmp")
        dm.write_ref("keep", "tmp", [[0, 1]])
        assert dm["keep", "tmp", 0].tolist() == [[2]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]  # scratch removed
    with h5py.File(tmp_path / "out.h5", "r") as f:
        names = []
        f.visit(names.append)
        assert "keep/data" in names and not [n for n in names if "tmp" in n]


def test_print_helpers(dm, capsys):
    dm.set_attrs("a", unit="cm", n=2)
    print_ref(dm.fh)
    print_data(dm.fh)
    print_attr(dm.fh)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("a/ref/b/ref ") and "shape (4, 2)" in lines[0]
    assert lines[1].startswith("a/data") and "shape (4,)" in lines[1]
    assert lines[2].startswith("b/data") and "shape (5,)" in lines[2]
    assert lines[3:] == ["a", "\tn:    2", "\tunit: cm"]


H5FLOW_LIKE = '''
class H5FlowStage:                      # h5flow's call shapes, in a module named like h5flow's
    def __init__(self, name, classname, data_manager, requires=None, **params):
        self.name, self.classname, self.data_manager = name, classname, data_manager
        self.requires = requires if requires is not None else []
        self.params = params

    def init(self, source_name):
        pass

    def run(self, source_name, source_slice, cache):
        pass

    def finish(self, source_name):
        pass


class H5FlowResource:
    def __init__(self, classname, data_manager, input_filename=None, start_position=None,
                 end_position=None, **params):
        self.classname, self.data_manager, self.params = classname, data_manager, params

    def init(self, source_name):
        pass

    def finish(self, source_name):
        pass
'''
USER = '''
from h5flow.core import H5FlowStage, H5FlowResource, resources

SEEN = []


class Geo(H5FlowResource):
    pass


class Mine(H5FlowStage):
    def run(self, source_name, source_slice, cache):
        super().run(source_name, source_slice, cache)
        SEEN.append((self.params, sorted(resources), len(cache[source_name])))
'''


def test_classes_derived_from_h5flows_own_bases_run_with_h5flows_arguments(setup, monkeypatch):
    """With h5flow installed, a module written for it runs unchanged: its classes derive from
    h5flow's bases (here a stand-in module named like h5flow's), get h5flow's keyword
    arguments only, and h5flow's global resources are filled."""
    core = types.ModuleType("h5flow.core")
    exec(textwrap.dedent(H5FLOW_LIKE), core.__dict__)
    for cls in (core.H5FlowStage, core.H5FlowResource):
        cls.__module__ = "h5flow.core.h5_flow_stage"
    core.resources = {}
    monkeypatch.setitem(sys.modules, "h5flow", types.ModuleType("h5flow"))
    monkeypatch.setitem(sys.modules, "h5flow.core", core)
    (setup / "theirs.py").write_text(USER)
    (setup / "flow.yaml").write_text(
        "flow: {source: events, stages: [mine]}\n"
        "resources: [{classname: Geo, path: theirs.py}]\n"
        "mine: {classname: Mine, path: theirs.py, params: {k: 1}}\n")
    run(setup / "flow.yaml", setup / "out.h5", input=setup / "in.h5", progress=False)
    from h5forge.flow.loading import load_class

    seen = sys.modules[load_class("Mine", str(setup / "theirs.py")).__module__].SEEN
    assert seen == [({"k": 1}, ["Geo"], 4), ({"k": 1}, ["Geo"], 4), ({"k": 1}, ["Geo"], 2)]
    assert isinstance(core.resources["Geo"], core.H5FlowResource)
    assert compat.resources["Geo"] is core.resources["Geo"]


def test_a_class_of_neither_base_is_refused(setup):
    (setup / "other.py").write_text("class Stray:\n    pass\n")
    (setup / "flow.yaml").write_text(
        "flow: {source: events, stages: [s]}\ns: {classname: Stray, path: other.py}\n")
    with pytest.raises(FlowConfigError, match="derives neither from h5forge.flow.objects.Stage "
                                              "nor from h5flow's H5FlowStage"):
        run(setup / "flow.yaml", setup / "out.h5", input=setup / "in.h5", progress=False)


def test_data_manager_reads_old_h5forge_files_with_a_child_side_link(tmp_path):
    """Files h5forge wrote before it took h5flow's layout: one table linked from both sides,
    its owner in attribute 'parent'."""
    with h5py.File(tmp_path / "old.h5", "w") as f:
        f["a/data"] = np.arange(3)
        f["b/data"] = np.arange(4)
        ref = f.create_dataset("a/ref/b/ref", data=[[0, 1], [2, 3]])
        ref.attrs["parent"], ref.attrs["child"] = "a", "b"
        f["b/ref/a/ref"] = ref
        f["a/ref/b/ref_region"] = np.array([(0, 1), (0, 0), (1, 2)], REGION_DTYPE)
        f["b/ref/a/ref_region"] = np.array([(0, 0), (0, 1), (0, 0), (1, 2)], REGION_DTYPE)
        dm = DataManager(f)
        assert dm.get_ref("b", "a")[1] == (1, 0) and dm.get_ref("a", "b")[1] == (0, 1)
        assert dm["b", "a", :].tolist() == [[None], [0], [None], [2]]
