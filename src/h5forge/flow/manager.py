"""Running flows: load and check every configuration, then loop the generator's chunks through
the stages, filling each chunk's cache with the stages' requires.

Everything that can be checked before data is touched is checked first: every config file,
every class (imported from the path the config names, never by scanning a directory). A stage
that raises stops the run with a :class:`FlowError` naming the stage and the chunk; the output
file is closed and valid (the tables hold the rows written so far).

Under ``mpiexec -n N`` (with mpi4py and parallel h5py; see :mod:`h5forge.flow.mpi`) every rank
runs the same flows on the same output file, opened with the ``mpio`` driver. Each step of the
loop starts with every rank's generator turn gathered: the loop ends when all are done, and a
failure on any rank stops every rank there or at its next collective data manager call.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

import h5py
import numpy as np

from h5forge._progress import progress_bar
from h5forge.errors import FlowConfigError, FlowError
from h5forge.flow import compat
from h5forge.flow.config import FlowConfig, Require, load_configs
from h5forge.flow.data import DataManager
from h5forge.flow.live import FollowGenerator
from h5forge.flow.loading import load_spec_class
from h5forge.flow.mpi import Ranks
from h5forge.flow.mpi import ranks as _ranks
from h5forge.flow.objects import Generator, LoopGenerator, Resource, Stage
from h5forge.flow.refs import dereference_chain

__all__ = ["run", "RunSummary", "BUILTINS", "drop_tables", "is_h5flow_class"]

#: Classes a config may name without a path (h5flow's two built-in modules among them).
BUILTINS: dict[str, type] = {"LoopGenerator": LoopGenerator,
                             "FollowGenerator": FollowGenerator,
                             "H5FlowDatasetLoopGenerator": compat.H5FlowDatasetLoopGenerator,
                             "H5FlowTestStage": compat.H5FlowTestStage}

#: h5flow's base class for each of h5forge's: a class derived from h5flow's own (h5flow
#: installed, the module unchanged) is run too, called with h5flow's keyword arguments.
_H5FLOW_BASES = {Generator: "H5FlowGenerator", Stage: "H5FlowStage", Resource: "H5FlowResource"}


@dataclass
class RunSummary:
    """What a run did: rows and chunks per config, seconds per stage."""

    rows: int = 0
    chunks: int = 0
    seconds: float = 0.0
    #: seconds in each stage's run() on this rank
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: how many ranks ran the flows, and why (MPI, or why not)
    ranks: int = 1
    mpi: str = ""

    def __str__(self) -> str:
        stages = ", ".join(f"{name} {sec:.2f} s" for name, sec in self.stage_seconds.items())
        on = f" on {self.ranks} ranks" if self.ranks > 1 else ""
        return (f"{self.rows} rows in {self.chunks} chunks{on}, {self.seconds:.2f} s"
                + (f" (stages: {stages})" if stages else ""))


def run(configs: str | os.PathLike | Iterable[str | os.PathLike], output: str | os.PathLike,
        input: str | os.PathLike | None = None, start: int | None = None,  # noqa: A002
        end: int | None = None, drop: Iterable[str] = (), compression: str | None = None,
        progress: bool | None = None, nompi: bool | None = None) -> RunSummary:
    """Run the flows of ``configs`` (one after another, each later one reading the previous
    output) into ``output``; ``input`` is where the first source tables are read from
    (default: the output itself). ``start``/``end`` bound the loop; ``drop`` adds paths to
    delete at the end; ``compression`` applies to every table created. Under ``mpiexec`` it
    runs on every rank (``nompi=True`` or ``H5FORGE_NOMPI=1``: on one rank; the summary's
    ``mpi`` says which and why)."""
    checked = load_configs(configs)
    classes = [_classes(cfg) for cfg in checked]  # fail on a bad class before any I/O
    output = os.fspath(output)
    # a live input (source: follow) is opened by its generator, which waits for the writer
    live = any(issubclass(cls["generator"], FollowGenerator) for cls in classes)
    if input is not None and not live and not os.path.exists(input):
        raise FlowConfigError(f"input file {os.fspath(input)} does not exist")
    ranks = _ranks(nompi)
    summary = RunSummary(ranks=ranks.size, mpi=ranks.reason)
    if not ranks.active:
        return summary
    began = time.perf_counter()
    dropped = [*drop, *(path for cfg in checked for path in cfg.drop)]
    # one scratch name for all ranks (they open it together)
    scratch_path = os.path.join(os.path.dirname(os.path.abspath(output)),
                                f".h5forge-scratch-{ranks.gather(uuid.uuid4().hex)[0]}.h5")
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(_open(output, "a", ranks))
        source_file = (stack.enter_context(h5py.File(input, "r"))
                       if input is not None and not live else None)
        scratch = None
        if dropped:  # dropped tables live in a scratch file, deleted at the end
            scratch = stack.enter_context(_open(scratch_path, "w", ranks))
            if ranks.rank == 0:
                stack.callback(_remove, scratch_path)
        for cfg, cls in zip(checked, classes):
            dm = DataManager(out, input=source_file, scratch=scratch, dropped=dropped,
                             compression=compression, ranks=ranks)
            try:
                _run_one(cfg, cls, dm, start, end, summary, progress,
                         None if input is None else os.fspath(input))
            finally:
                dm.close()
        drop_tables(out, dropped)  # tables of the output from before this run
    summary.seconds = time.perf_counter() - began
    return summary


def _open(path: str, mode: str, ranks: Ranks) -> h5py.File:
    """An output file: with the MPI-IO driver on several ranks (all open it together)."""
    if ranks.parallel:
        # No chunk cache: with parallel HDF5 (1.10 here) a compressed chunk a rank has read
        # and cached goes stale once a collective write rewrites it, and the next write that
        # touches it fails ("inflate() failed"). Reads then decompress the chunk each time.
        return h5py.File(path, mode, driver="mpio", comm=ranks.comm, rdcc_nbytes=0)
    return h5py.File(path, mode)


def _classes(cfg: FlowConfig) -> dict[str, Any]:
    return {
        "generator": _checked(cfg.generator, Generator),
        "stages": [_checked(spec, Stage) for spec in cfg.stages],
        "resources": [_checked(spec, Resource) for spec in cfg.resources],
    }


def is_h5flow_class(cls: type, base: type) -> bool:
    """Whether ``cls`` derives from h5flow's own counterpart of ``base`` (e.g. h5flow's
    ``H5FlowStage`` for :class:`Stage`): told by the class hierarchy, without importing
    h5flow."""
    wanted = _H5FLOW_BASES[base]
    return any(k.__name__ == wanted and k.__module__.split(".")[0] == "h5flow"
               for k in cls.__mro__)


def _checked(spec: Any, base: type) -> type:
    cls = load_spec_class(spec, BUILTINS)
    if not (issubclass(cls, base) or is_h5flow_class(cls, base)):
        raise FlowConfigError(
            f"{spec.where}: {spec.kind} class {spec.classname!r} ({cls.__module__}."
            f"{cls.__qualname__}) derives neither from {base.__module__}.{base.__qualname__} "
            f"nor from h5flow's {_H5FLOW_BASES[base]}")
    return cls


def _build(cls: type, spec: Any, base: type, **fixed: Any) -> Any:
    """An instance of ``cls`` with the config's params and what the framework passes: for a
    class derived from h5flow's base, exactly h5flow's keyword arguments (no ``name`` for
    generators and resources, no ``resources``: h5flow's are the global dict)."""
    if is_h5flow_class(cls, base):
        fixed.pop("resources", None)
        if base is not Stage:
            fixed.pop("name", None)
    try:
        return cls(**fixed, **spec.params)
    except TypeError as exc:
        raise FlowConfigError(f"{spec.where}: cannot create {cls.__name__} with params "
                              f"{sorted(spec.params)}: {exc}") from exc


def _global_resources() -> list[dict]:
    """The global resource dicts modules read (``from ... import resources``): this package's
    compat one, and h5flow's when a module has imported it."""
    found = [compat.resources]
    core = sys.modules.get("h5flow.core")
    theirs = getattr(core, "resources", None) if core is not None else None
    if isinstance(theirs, dict):
        found.append(theirs)
    return found


def _run_one(cfg: FlowConfig, classes: dict[str, Any], dm: DataManager, start: int | None,
             end: int | None, summary: RunSummary, progress: bool | None,
             input_path: str | None) -> None:
    resources: dict[str, Resource] = {}
    shared = _global_resources()
    for each in shared:  # h5flow's global: this config's resources only
        each.clear()
    for spec, cls in zip(cfg.resources, classes["resources"]):
        resources[spec.classname] = _build(cls, spec, Resource, name=spec.classname,
                                           classname=spec.classname, data_manager=dm,
                                           resources=resources, input_filename=input_path,
                                           start_position=start, end_position=end)
        for each in shared:
            each[spec.classname] = resources[spec.classname]
    gen_spec = cfg.generator
    source = gen_spec.dset_name or gen_spec.name
    generator = _build(classes["generator"], gen_spec, Generator, name=gen_spec.name,
                       classname=gen_spec.classname, data_manager=dm, resources=resources,
                       dset_name=source, input_filename=input_path,
                       start_position=start, end_position=end)
    stages = [_build(cls, spec, Stage, name=spec.name, classname=spec.classname,
                     data_manager=dm, resources=resources, requires=spec.requires)
              for spec, cls in zip(cfg.stages, classes["stages"])]
    for resource in resources.values():
        _call(resource, "init", source)
    _call(generator, "init")
    for stage in stages:
        _call(stage, "init", source)
    # rows to process, when known now (a generator that writes its own source says so later)
    total = (dm.get_dset(source).shape[0] if dm.dset_exists(source) else 0) or None
    ranks = dm.ranks
    show = progress if ranks.rank == 0 else False
    with progress_bar(total, f"flow {os.path.basename(str(cfg.path))}", show) as bar:
        bar.unit, bar.unit_scale = "row", False
        while True:
            chunk = _next_chunk(generator, ranks)
            turns = ranks.gather(chunk)  # every rank's chunk (EMPTY: done)
            if all(_done(turn) for turn in turns):
                break
            try:
                _run_chunk(dm, source, chunk, stages, summary)
            except Exception as exc:  # noqa: BLE001 - every rank stops with it
                ranks.fail(exc)
            rows = sum(_rows(turn) for turn in turns)
            summary.rows += rows
            summary.chunks += sum(not _done(turn) for turn in turns)
            bar.update(rows)
    for stage in stages:
        _call(stage, "finish", source)
    _call(generator, "finish")
    for resource in resources.values():
        _call(resource, "finish", source)


def _next_chunk(generator: Generator, ranks: Ranks) -> slice:
    """This rank's next chunk (``Generator.EMPTY`` once it is done); a failure goes to every
    rank."""
    try:
        chunk = generator.next()
    except Exception as exc:  # noqa: BLE001 - every rank stops with it
        ranks.fail(_named(generator, "next", exc, None))
    return Generator.EMPTY if chunk is None else chunk


def _done(chunk: Any) -> bool:
    """Whether a rank's turn says it has nothing (more): ``Generator.EMPTY``."""
    return isinstance(chunk, slice) and chunk == Generator.EMPTY


def _rows(chunk: Any) -> int:
    if _done(chunk):
        return 0
    return max(chunk.stop - chunk.start, 0) if isinstance(chunk, slice) else len(chunk)


def _run_chunk(dm: DataManager, source: str, chunk: Any, stages: list[Stage],
               summary: RunSummary) -> None:
    """Fill the cache of one chunk stage by stage and run each stage on it."""
    cache = {source: dm.get_dset(source)[chunk]} if dm.dset_exists(source) else {}
    for stage in stages:
        for require in stage.requires:
            if require.name not in cache:
                cache[require.name] = _load_require(dm, source, chunk, require, stage)
        began = time.perf_counter()
        _call(stage, "run", source, chunk, cache, chunk=chunk)
        summary.stage_seconds[stage.name] = summary.stage_seconds.get(
            stage.name, 0.0) + time.perf_counter() - began


def _call(obj: Any, method: str, *args: Any, chunk: Any = None) -> None:
    """Call a stage's, generator's or resource's method; its errors name it and the rows."""
    try:
        getattr(obj, method)(*args)
    except Exception as exc:
        named = _named(obj, method, exc, chunk)
        if named is exc:
            raise
        raise named from exc


def _named(obj: Any, method: str, exc: Exception, chunk: Any) -> Exception:
    """``exc`` as a FlowError naming the stage, generator or resource, the rows and the rank
    (flow errors already say where they come from: kept as they are)."""
    if isinstance(exc, (FlowError, FlowConfigError)):
        return exc
    cls = type(obj)
    kind = next((k for base, k in ((Stage, "stage"), (Generator, "generator"))
                 if isinstance(obj, base) or is_h5flow_class(cls, base)), "resource")
    where = (f" on rows {chunk.start}:{chunk.stop}"
             if isinstance(chunk, slice) and not _done(chunk) else "")
    size = getattr(obj, "size", 1)
    rank = f" (rank {getattr(obj, 'rank', 0)} of {size})" if size > 1 else ""
    name = getattr(obj, "name", None) or getattr(obj, "dset_name", None) or cls.__name__
    named = FlowError(f"{kind} {name!r} ({getattr(obj, 'classname', cls.__name__)}) failed "
                      f"in {method}(){where}{rank}: {type(exc).__name__}: {exc}")
    named.__cause__ = exc
    return named


def _load_require(dm: DataManager, source: str, chunk: slice, require: Require,
                  stage: Stage) -> Any:
    """The cache entry for one require: rows of a table aligned with the source, or what the
    source rows reference through a chain of reference tables."""
    path = list(require.path)
    if path[0] == source:
        path = path[1:]
    where = f"stage {stage.name!r} requires {require.name!r} ({'/'.join(require.path)})"
    if not path:
        raise FlowError(f"{where}: a require must name a table other than the source")
    chain = [source, *path]

    def aligned(table: str) -> None:
        if not dm.dset_exists(table):
            raise FlowError(f"{where}: no table {table!r} in the output or input")
        rows = dm.rows(table)  # aligned row by row with the source
        if chunk.stop > rows:
            raise FlowError(f"{where}: table {table!r} has {rows} rows, fewer than the "
                            f"source rows {chunk.start}:{chunk.stop} it is aligned with")

    if not dm.ref_exists(source, path[0]):
        if len(path) == 1:
            aligned(path[0])
            if require.index_only:
                return np.arange(chunk.start, chunk.stop)
            return dm.get_dset(path[0])[chunk]
        if dm.dset_exists(path[0]):
            # h5flow's rule: a chain whose first table has no references from the source
            # starts at that table, aligned row by row with the source
            aligned(path[0])
            chain = path
    refs, regions, directions = [], [], []
    for a, b in zip(chain[:-1], chain[1:]):
        if not dm.ref_exists(a, b):
            raise FlowError(f"{where}: no references between {a!r} and {b!r}")
        ref, direction = dm.get_ref(a, b)
        refs.append(ref)
        regions.append(dm.get_ref_region(a, b))
        directions.append(direction)
    data = None if require.index_only else dm.get_dset(chain[-1])
    return dereference_chain(chunk, refs, data=data, regions=regions,
                             ref_directions=directions, indices_only=require.index_only)


def drop_tables(out: h5py.File, paths: Iterable[str]) -> None:
    """Delete exactly these tables (not anything whose name merely contains them) and the
    reference groups other tables keep towards them."""
    for path in paths:
        name = path.strip("/")
        if name not in out:
            continue
        del out[name]
        for refs_path in _ref_groups(out):
            refs = out.get(refs_path)
            if not isinstance(refs, h5py.Group) or name not in refs:
                continue
            del refs[name]
            table = refs_path.rpartition("/")[0]
            if not len(refs):
                del out[refs_path]
            group = out[table] if table else None
            if group is not None and not len(group) and not len(group.attrs):
                del out[table]  # it only held references to the dropped table


def _ref_groups(out: h5py.File) -> list[str]:
    """Every ``<table>/ref`` group of a file, nested table names included."""
    found: list[str] = []
    out.visit(lambda p: found.append(p) if p.rsplit("/", 1)[-1] == "ref" else None)
    return found


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
