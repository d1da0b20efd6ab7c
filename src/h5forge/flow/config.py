"""Read and check a flow pipeline configuration (YAML), before any data is touched.

The vocabulary is h5flow's, so its configuration files read here unchanged, except that a class
the config names needs a ``path`` (h5flow's ``path`` is a dotted module; here it may also be a
``.py`` file). Without ``path`` h5flow finds a class by executing every module in the working
directory until one defines it, which h5forge never does; h5flow's own ``H5FlowTestStage`` and
``H5FlowDatasetLoopGenerator`` are built in (:mod:`h5forge.flow.compat`)::

    flow:
      source: events_gen           # a generator defined below, or a dataset path to loop over
      stages: [hit_finder, clusterer]
      drop: [tmp/scratch]          # datasets deleted from the output at the end
    resources:
      - {classname: Geometry, path: my_pkg.geometry, params: {file: geo.yaml}}
    events_gen:
      classname: EventGenerator
      path: gens.py                # a dotted import path or a .py file (relative to this file)
      dset_name: events
      params: {chunk_size: 128}
    hit_finder:
      classname: HitFinder
      path: my_pkg.stages
      params: {threshold: 3.5}
      requires:
        - hits                                      # the same as {name: hits, path: [hits]}
        - {name: hit_idx, path: hits, index_only: true}
        - {name: ev_tracks, path: [hits, tracks]}   # a chain: source -> hits -> tracks

Rules (each broken rule is a :class:`~h5forge.errors.FlowConfigError` whose message starts with
the file name and the key, e.g. ``pipeline.yaml: stages[1] 'clusterer': unknown key 'parms'``):

- The top level holds ``flow``, optionally ``resources``, and one mapping per generator or stage
  named by ``flow``.  Any other key is an error (h5flow ignores them, which hides typos in stage
  names); keys starting with ``_`` are ignored, for YAML anchors shared by several stages.
- A mapping key written twice in the same mapping is an error (YAML would keep the last silently).
- ``flow.source`` is required.  When it names a top-level key, that key defines a generator;
  otherwise it is a dataset path looped over by the built-in :data:`DEFAULT_GENERATOR`.
  ``source: follow`` with a top-level ``follow:`` mapping without ``classname`` follows a live
  file (keys, finished, frames, timeout, poll_interval, max_frames, file, dset_name; see
  :mod:`h5forge.flow.live`): ``keys`` and ``frames`` are required, ``file`` is relative to
  the configuration (default: the run's input).
- ``flow.stages`` (default: none) lists stage names, each defined at the top level, no repeats.
- ``flow.drop`` (default: none) is a list of dataset paths.
- A generator, stage or resource needs ``classname``; ``path`` says where the class lives (absent:
  an entry point in group ``h5forge.flow`` or a built-in, see :mod:`h5forge.flow.loading`).
- ``params`` (default: none) is a mapping with string keys, passed as keyword arguments.  A name
  the framework passes itself (:data:`GENERATOR_FIXED`, :data:`STAGE_FIXED`,
  :data:`RESOURCE_FIXED`) is an error there.
- ``requires`` entries are a dataset name, or a mapping with ``name`` (required), ``path`` (a
  dataset name, or a non-empty list of them = a chain of references; default: ``name``) and
  ``index_only`` (a boolean, default false).  Names are unique within a stage; the same name in two
  stages must mean the same thing (the cache holds one object per name); no require may be named
  like the loop dataset, which the cache already holds under that name.
- Several configurations run one after another (:func:`load_configs` checks them all first).

Where each rule lives: what one section may hold (its keys, their types and defaults, the
message for each) is declared on its dataclass below -- :class:`GeneratorSpec`,
:class:`StageSpec`, :class:`ResourceSpec`, :class:`Require`, and the private ``flow:`` and
``follow:`` sections -- with :func:`h5forge.flow._schema.key`, and checked by the one generic
:func:`h5forge.flow._schema.check`. :func:`parse_config` checks what sections say about each
other: the names ``flow`` lists, top-level keys nobody names, a resource class declared twice,
require names (unique in a stage, not the loop dataset, one meaning across stages). A new key
is a new field; a new rule across sections goes into :func:`parse_config`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Annotated, Any

import yaml

from h5forge.errors import FlowConfigError
from h5forge.flow._schema import Shape, check, key, type_name

__all__ = [
    "DEFAULT_GENERATOR",
    "GENERATOR_FIXED",
    "STAGE_FIXED",
    "RESOURCE_FIXED",
    "Require",
    "GeneratorSpec",
    "StageSpec",
    "ResourceSpec",
    "FlowConfig",
    "load_config",
    "load_configs",
    "parse_config",
]

#: Class name of the built-in generator used when ``flow.source`` is a dataset path.
DEFAULT_GENERATOR = "LoopGenerator"

#: Names ``params`` of a generator may not use: the keyword arguments the framework passes
#: itself (h5flow's, plus ``name`` and ``resources``). Anything else, ``path`` included (the
#: framework never passes it; h5flow's example resource takes ``params: {path: meta}``), is
#: the class's own.
GENERATOR_FIXED = frozenset(
    {"classname", "name", "dset_name", "data_manager", "resources", "input_filename",
     "start_position", "end_position"}
)
#: Names ``params`` of a stage may not use.
STAGE_FIXED = frozenset(
    {"classname", "name", "data_manager", "resources", "requires"}
)
#: Names ``params`` of a resource may not use (resources get the run's input file and row
#: range, as in h5flow).
RESOURCE_FIXED = frozenset(
    {"classname", "name", "data_manager", "resources", "input_filename",
     "start_position", "end_position"}
)

_TOP_KEYS = ("flow", "resources")
#: ``flow.source`` naming a live file: a ``follow:`` section (no ``classname``) describes it.
LIVE_SOURCE = "follow"
_REQUIRE_KEYS = ("name", "path", "index_only")


# --------------------------------------------------------------------------------------------
# what the YAML keys hold: the spec dataclasses, checked by h5forge.flow._schema.check


def _dataset_path(value: str, where: str, ref: str) -> str:
    """A dataset path names something below the root: ``/`` alone does not."""
    if value.strip("/") == "":
        raise FlowConfigError(f"{where}: {ref} {value!r} is not a dataset path")
    return value


#: A non-empty string naming a dataset (``charge/events``).
DatasetPath = Annotated[str, _dataset_path]


def _params(fixed: frozenset[str]) -> Any:
    """The ``params`` key of a class entry: keyword arguments, none named like ``fixed``."""

    def no_fixed_name(params: dict[str, Any], where: str, ref: str) -> dict[str, Any]:
        for name in params:
            if name in fixed:
                raise FlowConfigError(
                    f"{where}: params: {name!r} clashes with an argument the framework passes "
                    f"itself (reserved: {', '.join(sorted(fixed))}); rename it"
                )
        return params

    return key("params are keyword arguments", default_factory=dict,
               expected="be a mapping of keyword arguments", check=no_fixed_name)


_CLASSNAME = "the class to instantiate"
_CLASS_ENTRY = Shape("be a mapping with 'classname'")


@dataclass(frozen=True)
class Require:
    """Data a stage wants in its cache: ``path`` is the chain of datasets followed from the loop
    dataset by references (one name: directly referenced), ``index_only`` asks for the indices
    into the last one rather than its rows."""

    name: str = key("the key of the data in the cache")
    path: tuple[DatasetPath, ...] = key(
        expected="be a dataset name or a list of them (a chain of references)", one=True,
        nonempty="is an empty list (name at least one dataset)", default_from="name")
    index_only: bool = key(default=False)
    yaml_shape = Shape("be a dataset name or a mapping with 'name', 'path', 'index_only'",
                       scalar=("name", DatasetPath, "a require"))

    def __getitem__(self, key: str) -> Any:
        """h5flow's access: ``r['name']``, ``r['path']`` (a list), ``r['index_only']``."""
        if key not in _REQUIRE_KEYS:
            raise KeyError(f"a require has {', '.join(_REQUIRE_KEYS)}, not {key!r}")
        value = getattr(self, key)
        return list(value) if key == "path" else value

    def get(self, key: str, default: Any = None) -> Any:
        """``r.get('name')`` as on h5flow's dict."""
        return self[key] if key in _REQUIRE_KEYS else default

    def keys(self) -> tuple[str, ...]:
        return _REQUIRE_KEYS


@dataclass
class _Located:
    """Where a spec comes from, for errors raised later (loading, instantiating)."""

    #: Message prefix naming the file and key.
    where: str = field(default="", compare=False, repr=False, kw_only=True)
    #: Directory a relative ``.py`` ``path`` is resolved against (the config file's).
    base_dir: Path = field(default=Path("."), compare=False, repr=False, kw_only=True)


@dataclass
class GeneratorSpec(_Located):
    """A generator: ``name`` is its top-level key (or the dataset path for the default one)."""

    name: str
    classname: str = key(_CLASSNAME)
    path: str | None = key(default=None)
    dset_name: DatasetPath | None = key(default=None)
    params: dict[str, Any] = _params(GENERATOR_FIXED)
    kind = "generator"
    yaml_shape = _CLASS_ENTRY


@dataclass
class StageSpec(_Located):
    """A stage, in the order ``flow.stages`` lists it."""

    name: str
    classname: str = key(_CLASSNAME)
    path: str | None = key(default=None)
    params: dict[str, Any] = _params(STAGE_FIXED)
    requires: list[Require] = key(default_factory=list)
    kind = "stage"
    yaml_shape = _CLASS_ENTRY


@dataclass
class ResourceSpec(_Located):
    """A resource (one instance per class, reached by its class name)."""

    classname: str = key(_CLASSNAME)
    path: str | None = key(default=None)
    params: dict[str, Any] = _params(RESOURCE_FIXED)
    kind = "resource"
    yaml_shape = Shape("be a mapping with 'classname'", title="classname")


@dataclass
class _FlowSection:
    """The ``flow:`` mapping, before the names it holds are resolved."""

    source: str = key("a generator name or a dataset path to loop over")
    stages: list[str] = key(default_factory=list)
    drop: list[str] = key(default_factory=list)
    yaml_shape = Shape("be a mapping with 'source', 'stages', 'drop'")


def _no_index_frame(frames: dict[str, str], where: str, ref: str) -> dict[str, str]:
    if "index" in frames:
        raise FlowConfigError(f"{where}: frames: 'index' is the frame number's column; name "
                              f"the dataset otherwise")
    return frames


@dataclass(kw_only=True)
class _FollowSection:
    """A ``follow:`` section (``source: follow``): the built-in FollowGenerator's params, in
    the order of :data:`h5forge.flow.live.FOLLOW_KEYS`."""

    file: str | None = key(default=None)
    keys: list[str] = key("the key datasets of the live file", one=True,
                          nonempty="is empty (name the key datasets)")
    finished: DatasetPath | None = key(default=None)
    frames: dict[str, DatasetPath] = key(
        expected="map names to the live file's frame datasets, e.g. {image: entry/data}",
        nonempty=True, check=_no_index_frame)
    timeout: float | None = key(default=None, expected="be a positive number of seconds",
                                gt=0)
    poll_interval: float | None = key(default=None, ge=0,
                                      expected="be 0 or a positive number of seconds")
    max_frames: int | None = key(default=None, expected="be a positive integer", ge=1)
    dset_name: DatasetPath = key(default="frames")
    yaml_shape = Shape("be a mapping")


@dataclass
class FlowConfig:
    """One checked configuration file.

    ``source`` is ``flow.source`` as written; ``source_spec`` is the :class:`GeneratorSpec` it
    names, or the same string when it is a dataset path (then :attr:`generator` is the default
    loop generator over it).
    """

    path: Path
    source: str
    source_spec: GeneratorSpec | str
    stages: list[StageSpec] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    resources: list[ResourceSpec] = field(default_factory=list)

    @property
    def source_is_dataset(self) -> bool:
        """True when ``flow.source`` is a dataset path, not a generator name."""
        return isinstance(self.source_spec, str)

    @property
    def generator(self) -> GeneratorSpec:
        """The generator to run: the one named, or :data:`DEFAULT_GENERATOR` over the dataset."""
        if isinstance(self.source_spec, GeneratorSpec):
            return self.source_spec
        return GeneratorSpec(
            name=self.source_spec, classname=DEFAULT_GENERATOR, path=None,
            dset_name=self.source_spec, params={},
            where=f"{self.path}: flow.source {self.source_spec!r}", base_dir=self.path.parent,
        )

    @property
    def dset_name(self) -> str | None:
        """The loop dataset, when the configuration says it (a generator may leave it open)."""
        return self.generator.dset_name


# --------------------------------------------------------------------------------------------
# YAML reading


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, refusing a key written twice in one mapping."""

    def construct_mapping(self, node, deep=False):  # the PyYAML hook
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                    key_node, yaml.ScalarNode
                ):
                    continue
                ident = (key_node.tag, key_node.value)
                line = key_node.start_mark.line + 1
                if ident in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None,
                        f"key {key_node.value!r} appears twice in one mapping "
                        f"(lines {seen[ident]} and {line}); YAML would keep only the last",
                        key_node.start_mark,
                    )
                seen[ident] = line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, label: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FlowConfigError(f"{label}: configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowConfigError(f"{label}: cannot read the configuration file: {exc}") from exc
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: safe_load's rules
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        detail = f"{context}: {problem}" if context and problem != str(exc) else problem
        if "could not determine a constructor" in detail:
            detail += " (configurations are read with yaml.safe_load: no !include or Python tags)"
        raise FlowConfigError(f"{label}: not valid YAML{where}: {detail}") from exc



# --------------------------------------------------------------------------------------------
# checking: the sections by their dataclasses, then what refers to what


def parse_config(data: Any, path: str | PathLike[str] = "<config>") -> FlowConfig:
    """Check an already-parsed configuration (the mapping ``yaml.safe_load`` gives).

    ``path`` names it in messages; its directory is where relative ``.py`` paths are resolved.
    Each section is checked against its dataclass (:func:`h5forge.flow._schema.check`); what
    is checked here is what one part of the file says about another.
    """
    cfg_path = Path(path)
    label = str(path)
    context = {"base_dir": cfg_path.parent}
    if data is None:
        raise FlowConfigError(f"{label}: the configuration is empty (it needs a 'flow' mapping)")
    if not isinstance(data, Mapping):
        raise FlowConfigError(
            f"{label}: the top level must be a mapping with a 'flow' key, not {type_name(data)}"
        )
    for name in data:
        if not isinstance(name, str):
            raise FlowConfigError(f"{label}: top-level key {name!r} is not a string")
    if "flow" not in data:
        raise FlowConfigError(
            f"{label}: missing 'flow' (a mapping with 'source' and usually 'stages')"
        )
    flow: _FlowSection = check(data["flow"], _FlowSection, f"{label}: flow")
    source, stage_names = flow.source, flow.stages
    _check_flow_names(data, source, stage_names, label)

    resources: list[ResourceSpec] = []
    if data.get("resources") is not None:
        resources = check(data["resources"], list[ResourceSpec], f"{label}: resources",
                          expected="be a list of mappings (each with 'classname')",
                          context=context)
        _check_one_per_class(resources)

    source_spec: GeneratorSpec | str
    if source == LIVE_SOURCE and isinstance(data.get(source), Mapping) \
            and "classname" not in data[source]:
        source_spec = _follow_generator(data[source], f"{label}: {source}", context)
        loop_dset = source_spec.dset_name
    elif source in data:
        source_spec = check(data[source], GeneratorSpec, f"{label}: source {source!r}",
                            noun="a generator", context={**context, "name": source})
        loop_dset = source_spec.dset_name
    else:
        source_spec = check(source, DatasetPath, f"{label}: flow", "source")
        loop_dset = source

    stages = [
        check(data[name], StageSpec, f"{label}: stages[{i}] {name!r}", noun="a stage",
              context={**context, "name": name})
        for i, name in enumerate(stage_names)
    ]
    _check_requires(stages, loop_dset)
    return FlowConfig(
        path=cfg_path, source=source, source_spec=source_spec, stages=stages, drop=flow.drop,
        resources=resources,
    )


def _check_flow_names(data: Mapping, source: str, stage_names: list[str], label: str) -> None:
    """The names ``flow`` lists: not reserved, no repeats, each defined; and every other
    top-level key is one of them (or starts with ``_``)."""
    for name in [source, *stage_names]:
        if name in _TOP_KEYS:
            raise FlowConfigError(
                f"{label}: flow: {name!r} is reserved and cannot name a generator or stage"
            )
    seen_stage: dict[str, int] = {}
    for i, name in enumerate(stage_names):
        if name in seen_stage:
            raise FlowConfigError(
                f"{label}: flow: 'stages'[{i}] {name!r} is listed twice (also 'stages'"
                f"[{seen_stage[name]}]); define a second stage under another name"
            )
        seen_stage[name] = i
        if name == source:
            raise FlowConfigError(
                f"{label}: flow: {name!r} is both the source and 'stages'[{i}]"
            )

    # stages named but not defined (before unknown keys: the likelier mistake to report)
    referenced = {source, *stage_names}
    unused = sorted(k for k in data if k not in _TOP_KEYS and k not in referenced)
    for i, name in enumerate(stage_names):
        if name not in data:
            close = difflib.get_close_matches(name, unused, n=1)
            hint = f"; top-level key {close[0]!r} is close: a typo?" if close else ""
            raise FlowConfigError(
                f"{label}: stages[{i}] {name!r}: named in flow.stages but not defined (add a "
                f"top-level {name!r} mapping with 'classname'){hint}"
            )

    for top in data:
        if top in _TOP_KEYS or top in referenced or top.startswith("_"):
            continue
        hint = ""
        close = difflib.get_close_matches(top, sorted(referenced), n=1)
        if close:
            hint = f"; did you mean {close[0]!r}?"
        raise FlowConfigError(
            f"{label}: top-level key {top!r} is neither 'flow', 'resources' nor a generator or "
            f"stage named in flow (source: {source!r}, stages: {stage_names}){hint}; "
            "start it with '_' if it only holds YAML anchors"
        )


def _check_one_per_class(resources: list[ResourceSpec]) -> None:
    seen: dict[str, int] = {}
    for i, spec in enumerate(resources):
        if spec.classname in seen:
            raise FlowConfigError(
                f"{spec.where}: resource class {spec.classname!r} is declared twice (also "
                f"resources[{seen[spec.classname]}]); there is one instance per class"
            )
        seen[spec.classname] = i


def _check_requires(stages: list[StageSpec], loop_dset: str | None) -> None:
    """A require name is used once per stage, is not the loop dataset (the cache holds it
    already) and means the same in every stage (the cache holds one object per name)."""
    first_use: dict[str, tuple[Require, str]] = {}
    for i, stage in enumerate(stages):
        names: set[str] = set()
        for j, req in enumerate(stage.requires):
            if req.name in names:
                raise FlowConfigError(
                    f"{stage.where}: requires[{j}]: name {req.name!r} is required twice "
                    "(give each a distinct 'name')"
                )
            names.add(req.name)
            if loop_dset is not None and req.name == loop_dset:
                raise FlowConfigError(
                    f"{stage.where}: requires[{j}]: name {req.name!r} is the loop dataset, "
                    "which the cache already holds under that name; give the require another "
                    "'name'"
                )
            if req.name in first_use and first_use[req.name][0] != req:
                other, other_where = first_use[req.name]
                raise FlowConfigError(
                    f"{stage.where}: requires[{j}]: {req.name!r} means {req.path} "
                    f"(index_only={req.index_only}) here but {other.path} "
                    f"(index_only={other.index_only}) in {other_where}; the cache holds one "
                    "object per name, so rename one"
                )
            first_use.setdefault(req.name, (req, f"stages[{i}] {stage.name!r}"))


def _follow_generator(raw: Mapping, where: str, context: Mapping[str, Any]) -> GeneratorSpec:
    """``source: follow``: the live-file section becomes the built-in FollowGenerator."""
    section: _FollowSection = check(raw, _FollowSection, where)
    params: dict[str, Any] = {"keys": section.keys, "frames": section.frames}
    if section.file is not None:
        file = Path(section.file)
        params["file"] = str(file if file.is_absolute() else context["base_dir"] / file)
    for name in ("finished", "timeout", "poll_interval", "max_frames"):
        if getattr(section, name) is not None:
            params[name] = getattr(section, name)
    return GeneratorSpec(name=LIVE_SOURCE, classname="FollowGenerator",
                         dset_name=section.dset_name, params=params, where=where,
                         base_dir=context["base_dir"])


def load_config(path: str | PathLike[str]) -> FlowConfig:
    """Read and check one YAML configuration file (``yaml.safe_load`` rules: no Python tags).

    Nothing is imported and no data file is opened: classes are found later, by
    :func:`h5forge.flow.loading.load_class`.
    """
    return parse_config(_read_yaml(Path(path), str(path)), path)


def load_configs(paths: str | PathLike[str] | Iterable[str | PathLike[str]]) -> list[FlowConfig]:
    """Read and check several configuration files (run in this order, each reading the previous
    one's output); the first error is raised before any of them runs."""
    if isinstance(paths, (str, PathLike)):
        paths = [paths]
    configs = [load_config(p) for p in paths]
    if not configs:
        raise FlowConfigError("no configuration file given")
    return configs
