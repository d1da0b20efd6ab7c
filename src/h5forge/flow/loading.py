"""Find the class a flow configuration names, importing only what it names.

h5flow finds a class by executing every module in the working directory (and in
``./h5flow_modules``) until one defines it.  h5forge never does that: a class comes from

1. ``path`` as a dotted import path (``my_pkg.stages``): :func:`importlib.import_module`;
2. ``path`` as a ``.py`` file (``stages.py``, ``../lib/gens.py``; relative to the configuration
   file's directory): loaded under a private module name, once per file per process;
3. no ``path``: a built-in of that name (e.g. the default ``LoopGenerator``), else the entry point
   of that name in group ``h5forge.flow`` (``[project.entry-points."h5forge.flow"]`` in the
   providing package's ``pyproject.toml``).

Anything else is a :class:`~h5forge.errors.FlowConfigError` naming the file, the key and what was
tried.  Errors raised while importing the named module are wrapped the same way (chained, so the
traceback still shows them).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from h5forge.errors import FlowConfigError

__all__ = ["ENTRY_POINT_GROUP", "load_class", "load_spec_class"]

#: Entry-point group searched for a class whose configuration gives no ``path``.
ENTRY_POINT_GROUP = "h5forge.flow"

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_FILE_MODULE_PREFIX = "_h5forge_flow_file_"


def _looks_like_file(path: str) -> bool:
    return path.endswith(".py") or "/" in path or "\\" in path


def _classes_in(module: ModuleType) -> list[str]:
    return sorted(
        name for name, value in vars(module).items()
        if inspect.isclass(value) and getattr(value, "__module__", None) == module.__name__
    )


def _pick(module: ModuleType, classname: str, source: str, kind: str, where: str) -> type:
    value = getattr(module, classname, None) if classname.isidentifier() else None
    if value is None:
        defined = _classes_in(module)
        listed = f" (classes defined there: {', '.join(defined)})" if defined else ""
        raise FlowConfigError(
            f"{where}: {kind} class {classname!r} not found in {source}{listed}"
        )
    if not inspect.isclass(value):
        raise FlowConfigError(
            f"{where}: {classname!r} in {source} is a {type(value).__name__}, not a class"
        )
    return value


def _import_dotted(path: str, kind: str, where: str) -> ModuleType:
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (path == missing or path.startswith(missing + ".")):
            raise FlowConfigError(
                f"{where}: {kind} 'path': no module named {path!r} (tried importlib.import_module"
                f"({path!r}) with sys.path; a .py file path must end in '.py')"
            ) from exc
        raise FlowConfigError(
            f"{where}: {kind} 'path': importing module {path!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    except Exception as exc:  # the user's module raised while importing: say where
        raise FlowConfigError(
            f"{where}: {kind} 'path': importing module {path!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _import_file(path: str, base_dir: Path, kind: str, where: str) -> tuple[ModuleType, str]:
    file = Path(path).expanduser()
    if not file.is_absolute():
        file = Path(base_dir) / file
    file = file.resolve()
    shown = f"file {str(file)!r}"
    if file.suffix != ".py":
        raise FlowConfigError(
            f"{where}: {kind} 'path' {path!r} looks like a file path but does not end in '.py' "
            "(use a .py file, or a dotted module path such as my_pkg.stages)"
        )
    if not file.is_file():
        raise FlowConfigError(
            f"{where}: {kind} 'path': {shown} does not exist (relative paths are resolved "
            f"against the configuration file's directory, {str(Path(base_dir).resolve())!r})"
        )
    digest = hashlib.sha1(str(file).encode("utf-8")).hexdigest()[:12]
    stem = re.sub(r"\W", "_", file.stem)
    name = f"{_FILE_MODULE_PREFIX}{stem}_{digest}"
    module = sys.modules.get(name)
    if module is not None:
        return module, shown
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise FlowConfigError(f"{where}: {kind} 'path': cannot load {shown} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before executing, as import does (dataclasses need it)
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if not isinstance(exc, Exception):
            raise
        raise FlowConfigError(
            f"{where}: {kind} 'path': executing {shown} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module, shown


def _from_entry_point(classname: str, kind: str, where: str, tried: str) -> type:
    found = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=classname))
    distinct = {ep.value: ep for ep in found}
    if not distinct:
        raise FlowConfigError(
            f"{where}: {kind} class {classname!r}: no 'path' given, {tried}, and no entry point "
            f"{classname!r} in group {ENTRY_POINT_GROUP!r}; give 'path' (a dotted module path "
            "or a .py file) — modules in the working directory are not searched"
        )
    if len(distinct) > 1:
        raise FlowConfigError(
            f"{where}: {kind} class {classname!r}: several entry points {classname!r} in group "
            f"{ENTRY_POINT_GROUP!r} ({', '.join(sorted(distinct))}); give 'path' to choose"
        )
    (ep,) = distinct.values()
    try:
        value = ep.load()
    except Exception as exc:
        raise FlowConfigError(
            f"{where}: {kind} class {classname!r}: loading entry point {ep.value!r} (group "
            f"{ENTRY_POINT_GROUP!r}) failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not inspect.isclass(value):
        raise FlowConfigError(
            f"{where}: {kind} class {classname!r}: entry point {ep.value!r} is a "
            f"{type(value).__name__}, not a class"
        )
    return value


def load_class(
    classname: str,
    path: str | None,
    kind: str = "class",
    where: str = "<config>",
    builtins: Mapping[str, type] | None = None,
    *,
    base_dir: str | Path = ".",
    base: type | None = None,
) -> type:
    """The class ``classname`` from ``path`` (a module or a ``.py`` file), a built-in, or an
    entry point.

    :param kind: ``"generator"``, ``"stage"``, ``"resource"``: said in messages.
    :param where: message prefix naming the file and key (``"pipeline.yaml: stages[0] 'hits'"``;
        the specs of :mod:`h5forge.flow.config` carry theirs as ``.where``).
    :param builtins: classes available without ``path`` (checked before entry points, so an
        installed plugin cannot replace a built-in).
    :param base_dir: directory a relative ``.py`` path is resolved against (the config's).
    :param base: if given, the class must derive from it.
    """
    builtins = builtins or {}
    if path is not None and (not isinstance(path, str) or not path.strip()):
        raise FlowConfigError(f"{where}: {kind} 'path' must be a non-empty string, not {path!r}")
    if path is None:
        if classname in builtins:
            cls = builtins[classname]
        else:
            known = ", ".join(sorted(builtins))
            tried = f"not a built-in ({known})" if known else "no built-ins"
            cls = _from_entry_point(classname, kind, where, tried)
    elif _looks_like_file(path):
        module, shown = _import_file(path, Path(base_dir), kind, where)
        cls = _pick(module, classname, shown, kind, where)
    elif _DOTTED.match(path):
        module = _import_dotted(path, kind, where)
        cls = _pick(module, classname, f"module {path!r}", kind, where)
    else:
        raise FlowConfigError(
            f"{where}: {kind} 'path' {path!r} is neither a dotted module path (my_pkg.stages) "
            "nor a .py file path"
        )
    if base is not None and not issubclass(cls, base):
        raise FlowConfigError(
            f"{where}: {kind} class {classname!r} ({cls.__module__}.{cls.__qualname__}) does not "
            f"derive from {base.__module__}.{base.__qualname__}"
        )
    return cls


def load_spec_class(
    spec: Any, builtins: Mapping[str, type] | None = None, *, base: type | None = None
) -> type:
    """:func:`load_class` for a ``GeneratorSpec``, ``StageSpec`` or ``ResourceSpec``."""
    return load_class(
        spec.classname, spec.path, spec.kind, spec.where or "<config>", builtins,
        base_dir=spec.base_dir, base=base,
    )
