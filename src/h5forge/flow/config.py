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
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import yaml

from h5forge.errors import FlowConfigError

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
_FLOW_KEYS = ("source", "stages", "drop")
_GENERATOR_KEYS = ("classname", "path", "dset_name", "params")
_STAGE_KEYS = ("classname", "path", "params", "requires")
_RESOURCE_KEYS = ("classname", "path", "params")
_REQUIRE_KEYS = ("name", "path", "index_only")


@dataclass(frozen=True)
class Require:
    """Data a stage wants in its cache: ``path`` is the chain of datasets followed from the loop
    dataset by references (one name: directly referenced), ``index_only`` asks for the indices
    into the last one rather than its rows."""

    name: str
    path: tuple[str, ...]
    index_only: bool = False

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
    classname: str
    path: str | None = None
    dset_name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    kind = "generator"


@dataclass
class StageSpec(_Located):
    """A stage, in the order ``flow.stages`` lists it."""

    name: str
    classname: str
    path: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    requires: list[Require] = field(default_factory=list)
    kind = "stage"


@dataclass
class ResourceSpec(_Located):
    """A resource (one instance per class, reached by its class name)."""

    classname: str
    path: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    kind = "resource"


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
# checking


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_keys(mapping: Mapping, known: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in known:
            hint = ""
            if isinstance(key, str):
                close = difflib.get_close_matches(key, known, n=1)
                if close:
                    hint = f"; did you mean {close[0]!r}?"
            raise FlowConfigError(
                f"{where}: unknown key {key!r} (known: {', '.join(known)}){hint}"
            )


def _string(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FlowConfigError(
            f"{where}: {what} must be a non-empty string, not {_type_name(value)} {value!r}"
        )
    return value


def _optional_string(mapping: Mapping, key: str, where: str) -> str | None:
    value = mapping.get(key)
    if value is None:
        return None
    return _string(value, where, f"'{key}'")


def _classname(mapping: Mapping, where: str) -> str:
    if mapping.get("classname") is None:
        raise FlowConfigError(f"{where}: missing 'classname' (the class to instantiate)")
    return _string(mapping["classname"], where, "'classname'")


def _class_mapping(raw: Any, what: str, keys: tuple[str, ...], where: str) -> str:
    """Check that a generator's or stage's entry is a mapping of known keys with a
    ``classname``; return the class name."""
    if not isinstance(raw, Mapping):
        raise FlowConfigError(
            f"{where}: {what} must be a mapping with 'classname', not {_type_name(raw)} {raw!r}"
        )
    _check_keys(raw, keys, where)
    return _classname(raw, where)


def _params(mapping: Mapping, fixed: frozenset[str], where: str) -> dict[str, Any]:
    params = mapping.get("params")
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise FlowConfigError(
            f"{where}: 'params' must be a mapping of keyword arguments, not "
            f"{_type_name(params)} {params!r}"
        )
    for key in params:
        if not isinstance(key, str) or not key:
            raise FlowConfigError(
                f"{where}: params: key {key!r} is not a string (params are keyword arguments)"
            )
        if key in fixed:
            raise FlowConfigError(
                f"{where}: params: {key!r} clashes with an argument the framework passes itself "
                f"(reserved: {', '.join(sorted(fixed))}); rename it"
            )
    return dict(params)


def _dataset_name(value: Any, where: str, what: str) -> str:
    name = _string(value, where, what)
    if name.strip("/") == "":
        raise FlowConfigError(f"{where}: {what} {value!r} is not a dataset path")
    return name


def _require(entry: Any, where: str) -> Require:
    if isinstance(entry, str):
        name = _dataset_name(entry, where, "a require")
        return Require(name=name, path=(name,), index_only=False)
    if not isinstance(entry, Mapping):
        raise FlowConfigError(
            f"{where}: must be a dataset name or a mapping with 'name', 'path', 'index_only', "
            f"not {_type_name(entry)} {entry!r}"
        )
    _check_keys(entry, _REQUIRE_KEYS, where)
    if entry.get("name") is None:
        raise FlowConfigError(f"{where}: missing 'name' (the key of the data in the cache)")
    name = _string(entry["name"], where, "'name'")
    raw_path = entry.get("path", name)
    if isinstance(raw_path, str):
        path: tuple[str, ...] = (_dataset_name(raw_path, where, "'path'"),)
    elif isinstance(raw_path, list):
        if not raw_path:
            raise FlowConfigError(f"{where}: 'path' is an empty list (name at least one dataset)")
        path = tuple(
            _dataset_name(p, where, f"'path'[{i}]") for i, p in enumerate(raw_path)
        )
    else:
        raise FlowConfigError(
            f"{where}: 'path' must be a dataset name or a list of them (a chain of references), "
            f"not {_type_name(raw_path)} {raw_path!r}"
        )
    index_only = entry.get("index_only", False)
    if not isinstance(index_only, bool):
        raise FlowConfigError(
            f"{where}: 'index_only' must be true or false, not {_type_name(index_only)} "
            f"{index_only!r}"
        )
    return Require(name=name, path=path, index_only=index_only)


def _requires(mapping: Mapping, where: str) -> list[Require]:
    raw = mapping.get("requires")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise FlowConfigError(
            f"{where}: 'requires' must be a list, not {_type_name(raw)} {raw!r}"
        )
    out: list[Require] = []
    names: set[str] = set()
    for i, entry in enumerate(raw):
        req = _require(entry, f"{where}: requires[{i}]")
        if req.name in names:
            raise FlowConfigError(
                f"{where}: requires[{i}]: name {req.name!r} is required twice "
                "(give each a distinct 'name')"
            )
        names.add(req.name)
        out.append(req)
    return out


def _string_list(value: Any, where: str, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FlowConfigError(
            f"{where}: {what} must be a list of strings, not {_type_name(value)} {value!r}"
        )
    return [_string(v, where, f"{what}[{i}]") for i, v in enumerate(value)]


def _resources(raw: Any, label: str, base_dir: Path) -> list[ResourceSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise FlowConfigError(
            f"{label}: resources: must be a list of mappings (each with 'classname'), not "
            f"{_type_name(raw)} {raw!r}"
        )
    out: list[ResourceSpec] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(raw):
        where = f"{label}: resources[{i}]"
        if not isinstance(entry, Mapping):
            raise FlowConfigError(
                f"{where}: must be a mapping with 'classname', not {_type_name(entry)} {entry!r}"
            )
        if isinstance(entry.get("classname"), str):
            where = f"{where} {entry['classname']!r}"
        _check_keys(entry, _RESOURCE_KEYS, where)
        classname = _classname(entry, where)
        if classname in seen:
            raise FlowConfigError(
                f"{where}: resource class {classname!r} is declared twice (also resources"
                f"[{seen[classname]}]); there is one instance per class"
            )
        seen[classname] = i
        out.append(ResourceSpec(
            classname=classname, path=_optional_string(entry, "path", where),
            params=_params(entry, RESOURCE_FIXED, where), where=where, base_dir=base_dir,
        ))
    return out


def _follow_section(raw: Mapping, where: str, base_dir: Path) -> GeneratorSpec:
    """``source: follow``: the live-file section becomes the built-in FollowGenerator."""
    from h5forge.flow.live import FOLLOW_KEYS

    _check_keys(raw, FOLLOW_KEYS, where)
    params: dict[str, Any] = {}
    if raw.get("keys") is None:
        raise FlowConfigError(f"{where}: missing 'keys' (the key datasets of the live file)")
    params["keys"] = _string_list(raw["keys"], where, "'keys'") if not isinstance(
        raw["keys"], str) else [raw["keys"]]
    if not params["keys"]:
        raise FlowConfigError(f"{where}: 'keys' is empty (name the key datasets)")
    frames = raw.get("frames")
    if not isinstance(frames, Mapping) or not frames:
        raise FlowConfigError(f"{where}: 'frames' must map names to the live file's frame "
                              f"datasets, e.g. {{image: entry/data}}, not {frames!r}")
    params["frames"] = {_string(k, where, "a 'frames' name"): _dataset_name(v, where,
                                                                            f"frames {k!r}")
                        for k, v in frames.items()}
    if "index" in params["frames"]:
        raise FlowConfigError(f"{where}: frames: 'index' is the frame number's column; name "
                              f"the dataset otherwise")
    if raw.get("file") is not None:
        file = Path(_string(raw["file"], where, "'file'"))
        params["file"] = str(file if file.is_absolute() else base_dir / file)
    if raw.get("finished") is not None:
        params["finished"] = _dataset_name(raw["finished"], where, "'finished'")
    for key, low in (("timeout", 0.0), ("poll_interval", -1e-12)):
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= low:
            raise FlowConfigError(f"{where}: {key!r} must be a positive number of seconds, "
                                  f"not {value!r}")
        params[key] = float(value)
    if raw.get("max_frames") is not None:
        value = raw["max_frames"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise FlowConfigError(f"{where}: 'max_frames' must be a positive integer, not "
                                  f"{value!r}")
        params["max_frames"] = value
    dset_name = _dataset_name(raw.get("dset_name", "frames"), where, "'dset_name'")
    return GeneratorSpec(name=LIVE_SOURCE, classname="FollowGenerator", dset_name=dset_name,
                         params=params, where=where, base_dir=base_dir)


def parse_config(data: Any, path: str | PathLike[str] = "<config>") -> FlowConfig:
    """Check an already-parsed configuration (the mapping ``yaml.safe_load`` gives).

    ``path`` names it in messages; its directory is where relative ``.py`` paths are resolved.
    """
    cfg_path = Path(path)
    label = str(path)
    base_dir = cfg_path.parent
    if data is None:
        raise FlowConfigError(f"{label}: the configuration is empty (it needs a 'flow' mapping)")
    if not isinstance(data, Mapping):
        raise FlowConfigError(
            f"{label}: the top level must be a mapping with a 'flow' key, not {_type_name(data)}"
        )
    for key in data:
        if not isinstance(key, str):
            raise FlowConfigError(f"{label}: top-level key {key!r} is not a string")

    # -- flow
    if "flow" not in data:
        raise FlowConfigError(
            f"{label}: missing 'flow' (a mapping with 'source' and usually 'stages')"
        )
    flow = data["flow"]
    if not isinstance(flow, Mapping):
        raise FlowConfigError(
            f"{label}: flow: must be a mapping with 'source', 'stages', 'drop', not "
            f"{_type_name(flow)} {flow!r}"
        )
    _check_keys(flow, _FLOW_KEYS, f"{label}: flow")
    if flow.get("source") is None:
        raise FlowConfigError(
            f"{label}: flow: missing 'source' (a generator name or a dataset path to loop over)"
        )
    source = _string(flow["source"], f"{label}: flow", "'source'")
    stage_names = _string_list(flow.get("stages"), f"{label}: flow", "'stages'")
    drop = _string_list(flow.get("drop"), f"{label}: flow", "'drop'")

    # -- names flow refers to
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

    # -- stages named but not defined (before unknown keys: the likelier mistake to report)
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

    # -- unknown top-level keys
    for key in data:
        if key in _TOP_KEYS or key in referenced or key.startswith("_"):
            continue
        hint = ""
        close = difflib.get_close_matches(key, sorted(referenced), n=1)
        if close:
            hint = f"; did you mean {close[0]!r}?"
        raise FlowConfigError(
            f"{label}: top-level key {key!r} is neither 'flow', 'resources' nor a generator or "
            f"stage named in flow (source: {source!r}, stages: {stage_names}){hint}; "
            "start it with '_' if it only holds YAML anchors"
        )

    # -- resources
    resources = _resources(data.get("resources"), label, base_dir)

    # -- source
    source_spec: GeneratorSpec | str
    if source == LIVE_SOURCE and isinstance(data.get(source), Mapping) \
            and "classname" not in data[source]:
        source_spec = _follow_section(data[source], f"{label}: {source}", base_dir)
        loop_dset = source_spec.dset_name
    elif source in data:
        where = f"{label}: source {source!r}"
        gen = data[source]
        classname = _class_mapping(gen, "a generator", _GENERATOR_KEYS, where)
        dset_name = gen.get("dset_name")
        if dset_name is not None:
            dset_name = _dataset_name(dset_name, where, "'dset_name'")
        source_spec = GeneratorSpec(
            name=source, classname=classname, path=_optional_string(gen, "path", where),
            dset_name=dset_name, params=_params(gen, GENERATOR_FIXED, where),
            where=where, base_dir=base_dir,
        )
        loop_dset = dset_name
    else:
        source_spec = _dataset_name(source, f"{label}: flow", "'source'")
        loop_dset = source

    # -- stages
    stages: list[StageSpec] = []
    first_use: dict[str, tuple[Require, str]] = {}
    for i, name in enumerate(stage_names):
        where = f"{label}: stages[{i}] {name!r}"
        raw = data[name]
        classname = _class_mapping(raw, "a stage", _STAGE_KEYS, where)
        requires = _requires(raw, where)
        for j, req in enumerate(requires):
            if loop_dset is not None and req.name == loop_dset:
                raise FlowConfigError(
                    f"{where}: requires[{j}]: name {req.name!r} is the loop dataset, which the "
                    "cache already holds under that name; give the require another 'name'"
                )
            if req.name in first_use and first_use[req.name][0] != req:
                other, other_where = first_use[req.name]
                raise FlowConfigError(
                    f"{where}: requires[{j}]: {req.name!r} means {req.path} "
                    f"(index_only={req.index_only}) here but {other.path} "
                    f"(index_only={other.index_only}) in {other_where}; the cache holds one "
                    "object per name, so rename one"
                )
            first_use.setdefault(req.name, (req, f"stages[{i}] {name!r}"))
        stages.append(StageSpec(
            name=name, classname=classname, path=_optional_string(raw, "path", where),
            params=_params(raw, STAGE_FIXED, where), requires=requires,
            where=where, base_dir=base_dir,
        ))

    return FlowConfig(
        path=cfg_path, source=source, source_spec=source_spec, stages=stages, drop=drop,
        resources=resources,
    )


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
