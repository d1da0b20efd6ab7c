"""h5forge.flow.config (reading and checking pipeline YAML) and h5forge.flow.loading (classes)."""

from __future__ import annotations

import importlib.metadata
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest

from h5forge.errors import FlowConfigError
from h5forge.flow._schema import Shape, check, key
from h5forge.flow.config import (
    DEFAULT_GENERATOR,
    FlowConfig,
    GeneratorSpec,
    Require,
    ResourceSpec,
    StageSpec,
    load_config,
    load_configs,
    parse_config,
)
from h5forge.flow.loading import ENTRY_POINT_GROUP, load_class, load_spec_class


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def config_error(tmp_path: Path, text: str, *fragments: str, name: str = "pipeline.yaml") -> str:
    """Load ``text`` as a config; it must fail with a message naming the file and ``fragments``."""
    path = write(tmp_path, name, text)
    with pytest.raises(FlowConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture
def clean_modules(tmp_path):
    """Forget the modules a test imported from its tmp dir (which vanishes)."""
    before = set(sys.modules)
    yield
    root = tmp_path.resolve()
    for name in set(sys.modules) - before:
        file = getattr(sys.modules[name], "__file__", None)
        if file and Path(file).resolve().is_relative_to(root):
            del sys.modules[name]


FULL = """\
flow:
  source: events_gen
  stages: [hit_finder, clusterer]
  drop: [tmp/scratch, hits]
resources:
  - classname: Geometry
    path: my_pkg.geometry
    params: {file: geo.yaml}
  - {classname: RunData}
events_gen:
  classname: EventGenerator
  path: gens.py
  dset_name: charge/events
  params:
    chunk_size: 128
hit_finder:
  classname: HitFinder
  path: my_pkg.stages
  params: {threshold: 3.5, names: [a, b]}
  requires:
    - hits
    - {name: hit_idx, path: hits, index_only: true}
    - {name: ev_tracks, path: [hits, tracks]}
    - {name: plain}
clusterer:
  classname: Clusterer
  requires: [hits]
"""


# --------------------------------------------------------------------------------------------
# good configurations


def test_full_config(tmp_path):
    path = write(tmp_path, "pipeline.yaml", FULL)
    cfg = load_config(path)
    assert isinstance(cfg, FlowConfig)
    assert cfg.path == path
    assert cfg.source == "events_gen"
    assert not cfg.source_is_dataset
    assert cfg.source_spec == GeneratorSpec(
        name="events_gen", classname="EventGenerator", path="gens.py",
        dset_name="charge/events", params={"chunk_size": 128},
    )
    assert cfg.generator is cfg.source_spec
    assert cfg.dset_name == "charge/events"
    assert cfg.drop == ["tmp/scratch", "hits"]
    assert cfg.resources == [
        ResourceSpec(classname="Geometry", path="my_pkg.geometry", params={"file": "geo.yaml"}),
        ResourceSpec(classname="RunData"),
    ]
    assert [s.name for s in cfg.stages] == ["hit_finder", "clusterer"]
    hit_finder, clusterer = cfg.stages
    assert hit_finder == StageSpec(
        name="hit_finder", classname="HitFinder", path="my_pkg.stages",
        params={"threshold": 3.5, "names": ["a", "b"]},
        requires=[
            Require("hits", ("hits",), False),
            Require("hit_idx", ("hits",), True),
            Require("ev_tracks", ("hits", "tracks"), False),
            Require("plain", ("plain",), False),
        ],
    )
    assert clusterer.path is None and clusterer.params == {}
    assert clusterer.requires == [Require("hits", ("hits",))]
    # where / base_dir let later errors name the file and key, and resolve .py paths
    assert hit_finder.where == f"{path}: stages[0] 'hit_finder'"
    assert cfg.generator.where == f"{path}: source 'events_gen'"
    assert cfg.resources[0].where == f"{path}: resources[0] 'Geometry'"
    assert hit_finder.base_dir == tmp_path
    assert (hit_finder.kind, cfg.generator.kind, cfg.resources[0].kind) == (
        "stage", "generator", "resource")


def test_dataset_path_as_source(tmp_path):
    cfg = load_config(write(tmp_path, "c.yaml", """\
        flow:
          source: charge/raw_events
          stages: [s]
        s: {classname: S, path: m}
        """))
    assert cfg.source_is_dataset
    assert cfg.source_spec == "charge/raw_events"
    gen = cfg.generator
    assert gen.classname == DEFAULT_GENERATOR and gen.path is None
    assert gen.dset_name == "charge/raw_events" == cfg.dset_name
    assert gen.params == {}
    assert "flow.source 'charge/raw_events'" in gen.where


def test_minimal_and_empty_optional_keys(tmp_path):
    cfg = load_config(write(tmp_path, "c.yaml", """\
        flow:
          source: events
          stages:
          drop:
        resources:
        """))
    assert cfg.stages == [] and cfg.drop == [] and cfg.resources == []
    cfg = load_config(write(tmp_path, "d.yaml", """\
        flow: {source: events, stages: [s]}
        s:
          classname: S
          params:
          requires:
        """))
    assert cfg.stages[0].params == {} and cfg.stages[0].requires == []


def test_generator_without_dset_name(tmp_path):
    cfg = load_config(write(tmp_path, "c.yaml", """\
        flow: {source: gen}
        gen: {classname: G, path: g.py}
        """))
    assert cfg.generator.dset_name is None and cfg.dset_name is None


def test_underscore_keys_hold_anchors(tmp_path):
    cfg = load_config(write(tmp_path, "c.yaml", """\
        _common: &common
          classname: S
          path: my_pkg.stages
          params: {threshold: 1}
        flow: {source: events, stages: [a, b]}
        a:
          <<: *common
        b:
          <<: *common
          params: {threshold: 2}
        """))
    assert [(s.classname, s.params["threshold"]) for s in cfg.stages] == [("S", 1), ("S", 2)]


def test_same_require_in_two_stages(tmp_path):
    cfg = load_config(write(tmp_path, "c.yaml", """\
        flow: {source: events, stages: [a, b]}
        a: {classname: A, requires: [{name: h, path: [hits]}]}
        b: {classname: B, requires: [{name: h, path: hits, index_only: false}]}
        """))
    assert cfg.stages[0].requires == cfg.stages[1].requires


def test_several_configs(tmp_path):
    first = write(tmp_path, "one.yaml", """\
        flow: {source: gen, stages: [a]}
        gen: {classname: G, path: g.py, dset_name: events}
        a: {classname: A, path: a.py}
        """)
    second = write(tmp_path, "sub/two.yaml", """\
        flow: {source: events, stages: [b], drop: [a_out]}
        b: {classname: B, path: b.py, requires: [a_out]}
        """)
    one, two = load_configs([first, second])
    assert one.path == first and two.path == second
    assert one.dset_name == "events" and two.source_is_dataset
    assert two.stages[0].base_dir == tmp_path / "sub"
    assert [c.path for c in load_configs(str(first))] == [Path(str(first))]


def test_several_configs_all_checked_first(tmp_path):
    good = write(tmp_path, "good.yaml", "flow: {source: events}\n")
    bad = write(tmp_path, "bad.yaml", "flow: {sourc: events}\n")
    with pytest.raises(FlowConfigError, match=re.escape(f"{bad}: flow: unknown key 'sourc'")):
        load_configs([good, bad])
    with pytest.raises(FlowConfigError, match="no configuration file"):
        load_configs([])


def test_parse_config_from_mapping():
    cfg = parse_config({"flow": {"source": "events"}}, "inline")
    assert cfg.source == "events" and str(cfg.path) == "inline"
    with pytest.raises(FlowConfigError, match=r"^inline: missing 'flow'"):
        parse_config({}, "inline")


# --------------------------------------------------------------------------------------------
# errors: each names the file and the key


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(FlowConfigError, match=re.escape(f"{path}: configuration file not found")):
        load_config(path)


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("flow: [\n", ["not valid YAML", "line"]),
        ("flow: !!python/object:os.system {}\n", ["not valid YAML"]),
        ("flow: !include other.yaml\n", ["not valid YAML", "no !include"]),
        ("", ["empty"]),
        ("- a\n- b\n", ["top level must be a mapping", "list"]),
        ("1: x\nflow: {source: e}\n", ["top-level key 1 is not a string"]),
        ("stages: [a]\n", ["missing 'flow'"]),
        ("flow: events\n", ["flow: must be a mapping", "'events'"]),
        ("flow: {stages: [a]}\n", ["flow: missing 'source'"]),
        ("flow: {source: ''}\n", ["flow: 'source' must be a non-empty string"]),
        ("flow: {source: [a]}\n", ["flow: 'source' must be a non-empty string", "list"]),
        ("flow: {source: e, stage: [a]}\n",
         ["flow: unknown key 'stage'", "known: source, stages, drop", "did you mean 'stages'"]),
        ("flow: {source: e, stages: a}\n", ["flow: 'stages' must be a list of strings", "'a'"]),
        ("flow: {source: e, stages: [a, 2]}\n", ["flow: 'stages'[1] must be a non-empty string"]),
        ("flow: {source: e, drop: scratch}\n", ["flow: 'drop' must be a list of strings"]),
        ("flow: {source: e, drop: [a, {b: 1}]}\n", ["flow: 'drop'[1] must be a non-empty string"]),
        ("flow: {source: e, stages: [flow]}\n", ["flow: 'flow' is reserved"]),
        ("flow: {source: resources}\n", ["flow: 'resources' is reserved"]),
        ("flow: {source: /}\n", ["flow: 'source' '/' is not a dataset path"]),
        ("flow: {source: e, stages: [a, a]}\na: {classname: A}\n",
         ["flow: 'stages'[1] 'a' is listed twice"]),
        ("flow: {source: a, stages: [a]}\na: {classname: A}\n",
         ["flow: 'a' is both the source and 'stages'[0]"]),
    ],
)
def test_file_and_flow_errors(tmp_path, text, fragments):
    config_error(tmp_path, text, *fragments)


def test_duplicate_yaml_key(tmp_path):
    config_error(tmp_path, """\
        flow: {source: e, stages: [a]}
        a: {classname: A}
        a: {classname: B}
        """, "key 'a' appears twice", "lines 2 and 3")


def test_unknown_top_level_key(tmp_path):
    message = config_error(tmp_path, """\
        flow: {source: e, stages: [clusterer]}
        clusterer: {classname: C}
        clusterr: {classname: C}
        """, "top-level key 'clusterr'", "neither 'flow', 'resources'",
        "did you mean 'clusterer'")
    assert "'_'" in message  # says how to keep anchor-only keys


def test_undefined_stage(tmp_path):
    config_error(tmp_path, """\
        flow: {source: e, stages: [a, clusterer]}
        a: {classname: A}
        """, "stages[1] 'clusterer': named in flow.stages but not defined")
    config_error(tmp_path, """\
        flow: {source: e, stages: [clusterer]}
        clusterr: {classname: C}
        """, "stages[0] 'clusterer': named in flow.stages but not defined",
        "top-level key 'clusterr' is close")


def test_unknown_stage_key(tmp_path):
    message = config_error(tmp_path, """\
        flow: {source: e, stages: [a, clusterer]}
        a: {classname: A}
        clusterer: {classname: C, parms: {x: 1}}
        """)
    assert message.endswith(
        "pipeline.yaml: stages[1] 'clusterer': unknown key 'parms' "
        "(known: classname, path, params, requires); did you mean 'params'?"
    ), message


@pytest.mark.parametrize(
    "stage, fragments",
    [
        ("{path: m}", ["stages[0] 's': missing 'classname'"]),
        ("{classname: null}", ["stages[0] 's': missing 'classname'"]),
        ("", ["stages[0] 's': a stage must be a mapping", "null"]),
        ("[S]", ["stages[0] 's': a stage must be a mapping", "list"]),
        ("{classname: [S]}", ["stages[0] 's': 'classname' must be a non-empty string"]),
        ("{classname: S, path: 3}", ["stages[0] 's': 'path' must be a non-empty string"]),
        ("{classname: S, params: [1, 2]}", ["stages[0] 's': 'params' must be a mapping"]),
        ("{classname: S, params: 5}", ["stages[0] 's': 'params' must be a mapping"]),
        ("{classname: S, params: {1: a}}", ["stages[0] 's': params: key 1 is not a string"]),
        ("{classname: S, params: {name: x}}", ["stages[0] 's': params: 'name' clashes"]),
        ("{classname: S, params: {classname: x}}", ["params: 'classname' clashes"]),
        ("{classname: S, params: {data_manager: x}}", ["params: 'data_manager' clashes"]),
        ("{classname: S, params: {requires: x}}", ["params: 'requires' clashes"]),
        ("{classname: S, params: {resources: x}}", ["params: 'resources' clashes"]),
        ("{classname: S, requires: hits}", ["stages[0] 's': 'requires' must be a list"]),
        ("{classname: S, requires: [3]}",
         ["stages[0] 's': requires[0]: must be a dataset name or a mapping"]),
        ("{classname: S, requires: [[a, b]]}", ["requires[0]: must be a dataset name"]),
        ("{classname: S, requires: [{path: hits}]}", ["requires[0]: missing 'name'"]),
        ("{classname: S, requires: [{name: h, paht: hits}]}",
         ["requires[0]: unknown key 'paht'", "known: name, path, index_only"]),
        ("{classname: S, requires: [{name: h, path: []}]}", ["requires[0]: 'path' is an empty"]),
        ("{classname: S, requires: [{name: h, path: {a: 1}}]}",
         ["requires[0]: 'path' must be a dataset name or a list"]),
        ("{classname: S, requires: [{name: h, path: [a, 1]}]}",
         ["requires[0]: 'path'[1] must be a non-empty string"]),
        ("{classname: S, requires: [{name: h, index_only: maybe}]}",
         ["requires[0]: 'index_only' must be true or false", "'maybe'"]),
        ("{classname: S, requires: [hits, {name: hits, path: [a, hits]}]}",
         ["stages[0] 's': requires[1]: name 'hits' is required twice"]),
        ("{classname: S, requires: [events]}",
         ["requires[0]: name 'events' is the loop dataset"]),
    ],
)
def test_stage_errors(tmp_path, stage, fragments):
    config_error(tmp_path, f"flow: {{source: events, stages: [s]}}\ns: {stage}\n", *fragments)


def test_same_require_name_meaning_two_things(tmp_path):
    config_error(tmp_path, """\
        flow: {source: events, stages: [a, b]}
        a: {classname: A, requires: [hits]}
        b: {classname: B, requires: [{name: hits, path: [tracks, hits]}]}
        """, "stages[1] 'b': requires[0]: 'hits' means ('tracks', 'hits')",
        "in stages[0] 'a'")


@pytest.mark.parametrize(
    "gen, fragments",
    [
        ("{path: g.py}", ["source 'gen': missing 'classname'"]),
        ("{classname: G, dset: e}",
         ["source 'gen': unknown key 'dset'", "did you mean 'dset_name'"]),
        ("{classname: G, requires: [a]}", ["source 'gen': unknown key 'requires'"]),
        ("{classname: G, dset_name: 3}", ["source 'gen': 'dset_name' must be a non-empty string"]),
        ("{classname: G, params: {dset_name: e}}", ["source 'gen': params: 'dset_name' clashes"]),
        ("{classname: G, params: {start_position: 0}}", ["params: 'start_position' clashes"]),
        ("{classname: G, params: {input_filename: f}}", ["params: 'input_filename' clashes"]),
        ("gen.py", ["source 'gen': a generator must be a mapping"]),
    ],
)
def test_generator_errors(tmp_path, gen, fragments):
    config_error(tmp_path, f"flow: {{source: gen}}\ngen: {gen}\n", *fragments)


@pytest.mark.parametrize(
    "resources, fragments",
    [
        ("Geometry", ["resources: must be a list of mappings"]),
        ("[Geometry]", ["resources[0]: must be a mapping"]),
        ("[{path: m}]", ["resources[0]: missing 'classname'"]),
        ("[{classname: R, parms: {}}]", ["resources[0] 'R': unknown key 'parms'"]),
        ("[{classname: R, params: {data_manager: 1}}]", ["resources[0] 'R': params: 'data_m"]),
        ("[{classname: R}, {classname: R}]", ["resources[1] 'R': resource class 'R' is declared"]),
    ],
)
def test_resource_errors(tmp_path, resources, fragments):
    config_error(tmp_path, f"flow: {{source: e}}\nresources: {resources}\n", *fragments)


# --------------------------------------------------------------------------------------------
# finding classes


STAGE_MODULE = """\
class HitFinder:
    def __init__(self, **kw):
        self.kw = kw

def helper():
    pass

NOT_A_CLASS = 3
"""


def test_load_class_dotted_path(tmp_path, monkeypatch, clean_modules):
    write(tmp_path / "lib", "flowpkg_t1/__init__.py", "")
    write(tmp_path / "lib", "flowpkg_t1/stages.py", STAGE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    cfg_path = write(tmp_path, "c.yaml", """\
        flow: {source: events, stages: [hits]}
        hits: {classname: HitFinder, path: flowpkg_t1.stages, params: {threshold: 2}}
        """)
    spec = load_config(cfg_path).stages[0]
    cls = load_spec_class(spec)
    assert cls.__name__ == "HitFinder" and cls.__module__ == "flowpkg_t1.stages"
    assert load_class("HitFinder", "flowpkg_t1.stages", "stage", "x") is cls
    obj = cls(name=spec.name, **spec.params)
    assert obj.kw == {"name": "hits", "threshold": 2}

    where = f"{cfg_path}: stages[0] 'hits'"
    with pytest.raises(FlowConfigError) as info:
        load_class("HitFindr", "flowpkg_t1.stages", "stage", where)
    assert str(info.value).startswith(where)
    assert "'HitFindr' not found in module 'flowpkg_t1.stages'" in str(info.value)
    assert "classes defined there: HitFinder" in str(info.value)
    with pytest.raises(FlowConfigError, match="'NOT_A_CLASS' in module .* is a int, not a class"):
        load_class("NOT_A_CLASS", "flowpkg_t1.stages", "stage", where)
    with pytest.raises(FlowConfigError, match="'helper' in module .* not a class"):
        load_class("helper", "flowpkg_t1.stages", "stage", where)
    with pytest.raises(FlowConfigError) as info:
        load_class("HitFinder", "flowpkg_t1.nope", "stage", where)
    assert str(info.value).startswith(f"{where}: stage 'path': no module named 'flowpkg_t1.nope'")
    with pytest.raises(FlowConfigError, match="neither a dotted module path"):
        load_class("HitFinder", "flowpkg t1", "stage", where)


def test_load_class_import_failure_is_wrapped(tmp_path, monkeypatch, clean_modules):
    write(tmp_path, "flowmod_broken_t.py", "import flowmod_missing_dependency_t\n")
    write(tmp_path, "flowmod_raises_t.py", "raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(FlowConfigError, match=r"^W: stage 'path': importing module "
                       r"'flowmod_broken_t' failed: ModuleNotFoundError") as info:
        load_class("S", "flowmod_broken_t", "stage", "W")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    with pytest.raises(FlowConfigError, match="failed: RuntimeError: boom"):
        load_class("S", "flowmod_raises_t", "stage", "W")


def test_load_class_from_file_relative_to_config(tmp_path, monkeypatch, clean_modules):
    conf_dir = tmp_path / "conf"
    write(tmp_path, "modules/my_stages.py", STAGE_MODULE + """
from dataclasses import dataclass

@dataclass
class Gen:
    dset_name: str = "events"
""")
    cfg_path = write(conf_dir, "c.yaml", """\
        flow: {source: gen, stages: [hits]}
        gen: {classname: Gen, path: ../modules/my_stages.py}
        hits: {classname: HitFinder, path: ../modules/my_stages.py}
        """)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative to the config's directory, not the cwd
    cfg = load_config(cfg_path)
    gen_cls = load_spec_class(cfg.generator)
    stage_cls = load_spec_class(cfg.stages[0])
    assert gen_cls().dset_name == "events"  # dataclasses need the module in sys.modules
    assert stage_cls.__name__ == "HitFinder"
    module_file = Path(sys.modules[stage_cls.__module__].__file__)
    assert module_file == (tmp_path / "modules/my_stages.py").resolve()
    assert gen_cls.__module__ == stage_cls.__module__  # the file is executed once
    absolute = load_class("HitFinder", str(tmp_path / "modules/my_stages.py"), base_dir="/")
    assert absolute is stage_cls
    # a file path and a module named like the file are different things
    assert "my_stages" not in sys.modules

    with pytest.raises(FlowConfigError) as info:
        load_class("HitFinder", "missing.py", "stage", cfg.stages[0].where, base_dir=conf_dir)
    message = str(info.value)
    assert message.startswith(f"{cfg_path}: stages[0] 'hits': stage 'path': file ")
    assert str(conf_dir / "missing.py") in message and "does not exist" in message
    with pytest.raises(FlowConfigError, match="does not end in '.py'"):
        load_class("HitFinder", "../modules/my_stages.txt", "stage", "W", base_dir=conf_dir)


def test_load_class_file_that_raises(tmp_path, clean_modules):
    write(tmp_path, "bad.py", "raise ValueError('nope')\n")
    with pytest.raises(FlowConfigError, match="executing file .*bad.py.* failed: ValueError: nope"):
        load_class("S", "bad.py", "stage", "W", base_dir=tmp_path)
    assert not [m for m in sys.modules if m.startswith("_h5forge_flow_file_bad_")]


def test_load_class_builtin_and_base(tmp_path):
    class LoopGenerator:
        pass

    class Base:
        pass

    builtins = {"LoopGenerator": LoopGenerator}
    cfg = load_config(write(tmp_path, "c.yaml", "flow: {source: events}\n"))
    assert load_spec_class(cfg.generator, builtins) is LoopGenerator
    assert load_class("LoopGenerator", None, "generator", "W", builtins) is LoopGenerator
    with pytest.raises(FlowConfigError, match="does not derive from .*Base"):
        load_class("LoopGenerator", None, "generator", "W", builtins, base=Base)
    with pytest.raises(FlowConfigError) as info:
        load_spec_class(cfg.generator, {})
    assert str(info.value).startswith(f"{cfg.path}: flow.source 'events': generator class")


def make_distribution(root: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    dist = root / f"{name}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for module, text in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(text))


def test_load_class_from_entry_point(tmp_path, monkeypatch, clean_modules):
    make_distribution(tmp_path / "site", "fake_flow_plugin", """\
        [h5forge.flow]
        PluginStage = fake_flow_plugin_mod:PluginStage
        NotAClass = fake_flow_plugin_mod:VALUE
        """, {"fake_flow_plugin_mod": "class PluginStage:\n    pass\nVALUE = 1\n"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert importlib.metadata.distribution("fake_flow_plugin").version == "0.1"
    names = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert {"PluginStage", "NotAClass"} <= names
    assert "fake_flow_plugin_mod" not in sys.modules  # metadata alone imports nothing

    cfg = load_config(write(tmp_path, "c.yaml", """\
        flow: {source: events, stages: [p]}
        p: {classname: PluginStage}
        """))
    cls = load_spec_class(cfg.stages[0], {"LoopGenerator": object})
    assert cls.__name__ == "PluginStage" and cls.__module__ == "fake_flow_plugin_mod"
    with pytest.raises(FlowConfigError, match="entry point 'fake_flow_plugin_mod:VALUE' is a int"):
        load_class("NotAClass", None, "stage", "W")


def test_entry_point_ambiguous_and_missing(tmp_path, monkeypatch, clean_modules):
    for n in (1, 2):
        make_distribution(tmp_path / f"site{n}", f"fake_flow_dup{n}", f"""\
            [h5forge.flow]
            DupStage = fake_flow_dup_mod{n}:DupStage
            """, {f"fake_flow_dup_mod{n}": "class DupStage:\n    pass\n"})
        monkeypatch.syspath_prepend(str(tmp_path / f"site{n}"))
    with pytest.raises(FlowConfigError, match="several entry points 'DupStage'"):
        load_class("DupStage", None, "stage", "W")
    assert not {"fake_flow_dup_mod1", "fake_flow_dup_mod2"} & set(sys.modules)
    with pytest.raises(FlowConfigError) as info:
        load_class("NoSuchStage_xyz", None, "stage", "cfg.yaml: stages[0] 'x'",
                   {"LoopGenerator": object})
    message = str(info.value)
    assert message.startswith("cfg.yaml: stages[0] 'x': stage class 'NoSuchStage_xyz'")
    for fragment in ("no 'path' given", "not a built-in (LoopGenerator)",
                     f"no entry point 'NoSuchStage_xyz' in group '{ENTRY_POINT_GROUP}'"):
        assert fragment in message


def test_working_directory_modules_are_not_executed(tmp_path, monkeypatch, clean_modules):
    """h5flow executes every module in the working directory to find a class; h5forge must not."""
    cwd = tmp_path / "cwd"
    marker = tmp_path / "marker"
    trap = f"open({str(marker)!r}, 'w').write('executed')\nclass CwdStage:\n    pass\n"
    for name in ("cwd_trap_mod.py", "h5flow_modules/cwd_trap_sub.py", "setup.py"):
        write(cwd, name, trap)
    write(tmp_path / "lib", "flow_ok_mod_t.py", "class OkStage:\n    pass\n")
    cfg_path = write(cwd, "pipeline.yaml", """\
        flow: {source: events, stages: [ok, local]}
        ok: {classname: OkStage, path: flow_ok_mod_t}
        local: {classname: CwdStage}
        """)
    monkeypatch.chdir(cwd)
    monkeypatch.syspath_prepend(str(cwd))  # as with `python -m`: the cwd is importable
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))

    cfg = load_config("pipeline.yaml")
    assert cfg.path == Path("pipeline.yaml")
    ok = load_spec_class(cfg.stages[0])
    assert ok.__name__ == "OkStage"
    with pytest.raises(FlowConfigError, match="modules in the working directory are not searched"):
        load_spec_class(cfg.stages[1], {"LoopGenerator": object})
    assert not marker.exists()
    assert "cwd_trap_mod" not in sys.modules
    assert cfg_path.exists()


# --------------------------------------------------------------------------------------------
# the generic checker the sections are declared for (h5forge.flow._schema)


def _positive_even(value: int, where: str, ref: str) -> int:
    if value % 2:
        raise FlowConfigError(f"{where}: {ref} {value} is odd")
    return value


@dataclass
class _Item:
    label: str = key("what the item is called")
    weight: float | None = key(default=None, expected="be a weight in kg", gt=0)
    where: str = ""
    origin: str = "?"
    yaml_shape = Shape("be a mapping with 'label'", scalar=("label", str, "an item"),
                       title="label")


@dataclass(kw_only=True)
class _Section:
    name: str = key("the section's name")
    mode: Literal["fast", "slow"] = key(default="fast")
    count: int = key(default=1, ge=1, expected="be a positive integer")
    even: Annotated[int, _positive_even] | None = key(default=None)
    strict: bool = key(default=False)
    tags: list[str] = key(default_factory=list, one=True)
    chain: tuple[str, ...] = key(default_from="name", one=True,
                                 nonempty="is an empty list (name one)")
    extra: dict[str, Any] = key("extras are keyword arguments", default_factory=dict)
    items: list[_Item] = key(default_factory=list)
    needed: dict[str, str] = key(expected="map names to things", nonempty=True)
    yaml_shape = Shape("be a mapping with 'name' and 'needed'")


def schema_error(value: Any, tp: Any = _Section, **kwargs: Any) -> str:
    with pytest.raises(FlowConfigError) as info:
        check(value, tp, "f.yaml: sec", **kwargs)
    return str(info.value)


def test_schema_reads_a_section_with_its_defaults():
    sec = check({"name": "a", "needed": {"x": "y"}, "items": ["i", {"label": "j", "weight": 2}]},
                _Section, "f.yaml: sec", context={"origin": "here"})
    assert sec == _Section(name="a", needed={"x": "y"}, chain=("a",),
                           items=[_Item("i", where="f.yaml: sec: items[0] 'i'", origin="here"),
                                  _Item("j", 2.0, where="f.yaml: sec: items[1] 'j'",
                                        origin="here")])
    assert isinstance(sec.items[1].weight, float)
    sec = check({"name": "a", "needed": {"x": "y"}, "tags": "t", "chain": ["p", "q"],
                 "mode": "slow", "count": 3, "even": 4, "strict": True, "extra": {"k": [1]},
                 "items": None}, _Section, "f.yaml: sec")
    assert (sec.tags, sec.chain, sec.mode, sec.count, sec.even, sec.strict, sec.extra,
            sec.items) == (["t"], ("p", "q"), "slow", 3, 4, True, {"k": [1]}, [])


@pytest.mark.parametrize("value, message", [
    ([1], "f.yaml: sec: must be a mapping with 'name' and 'needed', not list [1]"),
    ({"name": "a", "needed": {"x": "y"}, "nme": 1},
     "f.yaml: sec: unknown key 'nme' (known: name, mode, count, even, strict, tags, chain, "
     "extra, items, needed); did you mean 'name'?"),
    ({"needed": {"x": "y"}}, "f.yaml: sec: missing 'name' (the section's name)"),
    ({"name": None, "needed": {"x": "y"}}, "f.yaml: sec: missing 'name' (the section's name)"),
    ({"name": "a"}, "f.yaml: sec: 'needed' must map names to things, not null None"),
    ({"name": "a", "needed": {}}, "f.yaml: sec: 'needed' must map names to things, not dict {}"),
    ({"name": " ", "needed": {"x": "y"}},
     "f.yaml: sec: 'name' must be a non-empty string, not str ' '"),
    ({"name": "a", "needed": {"x": "y"}, "mode": "quick"},
     "f.yaml: sec: 'mode' must be one of 'fast', 'slow', not str 'quick'"),
    ({"name": "a", "needed": {"x": "y"}, "count": 0},
     "f.yaml: sec: 'count' must be a positive integer, not int 0"),
    ({"name": "a", "needed": {"x": "y"}, "count": True},
     "f.yaml: sec: 'count' must be a positive integer, not bool True"),
    ({"name": "a", "needed": {"x": "y"}, "count": None},  # null is no default for a number
     "f.yaml: sec: 'count' must be a positive integer, not null None"),
    ({"name": "a", "needed": {"x": "y"}, "even": 3}, "f.yaml: sec: 'even' 3 is odd"),
    ({"name": "a", "needed": {"x": "y"}, "strict": None},
     "f.yaml: sec: 'strict' must be true or false, not null None"),
    ({"name": "a", "needed": {"x": "y"}, "tags": ["t", 3]},
     "f.yaml: sec: 'tags'[1] must be a non-empty string, not int 3"),
    ({"name": "a", "needed": {"x": "y"}, "tags": {"t": 1}},
     "f.yaml: sec: 'tags' must be a list of strings, not dict {'t': 1}"),
    ({"name": "a", "needed": {"x": "y"}, "chain": []},
     "f.yaml: sec: 'chain' is an empty list (name one)"),
    ({"name": "a", "needed": {"x": "y"}, "chain": None},
     "f.yaml: sec: 'chain' must be a list of strings, not null None"),
    ({"name": "a", "needed": {"x": "y"}, "extra": {1: 2}},
     "f.yaml: sec: extra: key 1 is not a string (extras are keyword arguments)"),
    ({"name": "a", "needed": {"x": "y"}, "extra": {"": 2}},
     "f.yaml: sec: extra: key '' is empty (extras are keyword arguments)"),
    ({"name": "a", "needed": {"x": 3}}, "f.yaml: sec: needed 'x' must be a non-empty string, "
                                        "not int 3"),
    ({"name": "a", "needed": {"x": "y"}, "items": [""]},
     "f.yaml: sec: items[0]: an item must be a non-empty string, not str ''"),
    ({"name": "a", "needed": {"x": "y"}, "items": [3]},
     "f.yaml: sec: items[0]: must be a mapping with 'label', not int 3"),
    ({"name": "a", "needed": {"x": "y"}, "items": [{"weight": 1}]},
     "f.yaml: sec: items[0]: missing 'label' (what the item is called)"),
    ({"name": "a", "needed": {"x": "y"}, "items": ["i", {"label": "j", "weight": -1}]},
     "f.yaml: sec: items[1] 'j': 'weight' must be a weight in kg, not int -1"),
    ({"name": "a", "needed": {"x": "y"}, "items": ["i", {"label": "j", "wieght": 1}]},
     "f.yaml: sec: items[1] 'j': unknown key 'wieght' (known: label, weight); "
     "did you mean 'weight'?"),
])
def test_schema_messages(value, message):
    assert schema_error(value) == message


def test_schema_top_level_values():
    assert schema_error(3, list[_Item], expected="be a list of items") == (
        "f.yaml: sec: must be a list of items, not int 3")
    assert schema_error(None, _Section, noun="a section") == (
        "f.yaml: sec: a section must be a mapping with 'name' and 'needed', not null None")
    even = Annotated[int, _positive_even]  # the validator runs after the type check
    assert schema_error(3, even, name="x") == "f.yaml: sec: 'x' 3 is odd"
    assert schema_error("4", even, name="x") == "f.yaml: sec: 'x' must be an integer, not str '4'"
    assert check(4, even, "f.yaml") == 4
    assert check(["a"], list[_Item], "f.yaml: items")[0].where == "f.yaml: items[0] 'a'"
    assert check(None, str | None, "f.yaml") is None
    with pytest.raises(TypeError, match="only X | None"):
        check(1, int | str, "f.yaml")
    with pytest.raises(TypeError, match="unsupported type"):
        check(1, complex, "f.yaml")


def test_schema_sections_of_the_config():
    """Every YAML key of a flow config is a field declared with key(); the follow section has
    exactly the keys the live generator takes."""
    from dataclasses import fields

    from h5forge.flow import config
    from h5forge.flow.live import FOLLOW_KEYS

    def yaml_keys(cls):
        return tuple(f.name for f in fields(cls) if "h5forge.flow.key" in f.metadata)

    assert yaml_keys(config._FollowSection) == FOLLOW_KEYS
    assert yaml_keys(config._FlowSection) == ("source", "stages", "drop")
    assert yaml_keys(GeneratorSpec) == ("classname", "path", "dset_name", "params")
    assert yaml_keys(StageSpec) == ("classname", "path", "params", "requires")
    assert yaml_keys(ResourceSpec) == ("classname", "path", "params")
    assert yaml_keys(Require) == tuple(Require("a", ("a",)).keys())


def test_follow_keys_given_as_one_name(tmp_path):
    cfg = parse_config({"flow": {"source": "follow"},
                        "follow": {"keys": "entry/k", "frames": {"a": "d"}, "timeout": 2}},
                       tmp_path / "live.yaml")
    assert cfg.generator.params == {"keys": ["entry/k"], "frames": {"a": "d"}, "timeout": 2.0}
    with pytest.raises(FlowConfigError, match=r"follow: 'keys' must be a non-empty string"):
        parse_config({"flow": {"source": "follow"},
                      "follow": {"keys": "", "frames": {"a": "d"}}}, tmp_path / "live.yaml")
