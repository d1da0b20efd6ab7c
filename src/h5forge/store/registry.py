"""Which codec encodes a Python type, which decodes a stored ``class`` name, and how a stored
class name is turned back into a class without importing anything the caller did not allow.

Modelled on cattrs: one small codec per type family, registered per type (exact types first, then
predicates such as "any Enum"), later registrations winning over earlier ones.
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import TYPE_CHECKING, Any, Iterable

from h5forge.errors import UnsafeContentError

if TYPE_CHECKING:  # pragma: no cover
    from h5forge.store.decoder import Decoder, Stored
    from h5forge.store.encoder import Encoder
    from h5forge.store.layout import Node

__all__ = [
    "Codec",
    "register_codec",
    "register_class",
    "alias",
    "class_name_of",
    "codec_for_type",
    "codec_for_name",
    "resolve_class",
    "class_options",
]


class Codec:
    """How one family of types is written and read back.

    Subclasses set ``types`` (exact types they encode; subclasses of them are matched when
    :meth:`matches` says so) and ``names`` (the ``class`` attribute values they decode), and
    implement :meth:`encode` (object -> planned node, see :mod:`h5forge.store.layout`) and
    :meth:`decode` (stored node -> object).
    """

    types: tuple[type, ...] = ()
    names: tuple[str, ...] = ()
    #: Whether decoded objects may be shared (hard links) -- False for immutable atoms.
    tracks_identity: bool = True
    #: A catch-all (e.g. "any Python class"): asked only after every specific codec.
    fallback: bool = False

    def matches(self, tp: type) -> bool:
        """Whether this codec encodes ``tp`` although it is not one of ``types`` exactly."""
        return False

    def encode(self, obj: Any, enc: "Encoder", where: str) -> "Node":
        raise NotImplementedError(f"{type(self).__name__} cannot encode")

    def decode(self, stored: "Stored", dec: "Decoder") -> Any:
        raise NotImplementedError(f"{type(self).__name__} cannot decode")


_by_type: dict[type, Codec] = {}
_by_name: dict[str, Codec] = {}
_predicates: list[Codec] = []
_type_cache: dict[type, Codec | None] = {}
_aliases: dict[str, type] = {}
_class_options: dict[type, dict[str, Any]] = {}


def register_codec(codec: Codec | type[Codec]) -> Codec:
    """Register a codec (instance or class) for its ``types`` and ``names``; returns the instance.

    A later registration for the same type or name replaces the earlier one, so a user codec can
    override a built-in one.
    """
    if isinstance(codec, type):
        codec = codec()
    if not isinstance(codec, Codec):
        raise TypeError(f"register_codec expects a Codec subclass or instance, got {codec!r}")
    for tp in codec.types:
        _by_type[tp] = codec
    for name in codec.names:
        _by_name[name] = codec
    if type(codec).matches is not Codec.matches:
        _predicates.insert(0, codec)
    _type_cache.clear()
    return codec


def register_class(cls: type, *, class_attributes: bool = False, name: str | None = None) -> type:
    """Declare how instances of a user class are stored.

    ``class_attributes=True`` also stores the class's own data attributes (in
    ``class_attributes``) for reference; ``name`` fixes the stored class name (useful to keep
    files stable when a module is renamed). Usable as a decorator.
    """
    _class_options[cls] = {"class_attributes": class_attributes, "name": name}
    if name is not None:
        _aliases[name] = cls
    return cls


def class_options(cls: type) -> dict[str, Any]:
    return _class_options.get(cls, {})


def alias(old_name: str, new_class: type) -> None:
    """Load nodes stored with ``class`` = ``old_name`` as instances of ``new_class`` (a class that
    moved or was renamed)."""
    if not isinstance(new_class, type):
        raise TypeError(f"alias() needs a class for {old_name!r}, got {new_class!r}")
    _aliases[old_name] = new_class


def class_name_of(tp: type) -> str:
    """The stored ``class`` name of a type: plain for builtins, ``module.QualName`` otherwise."""
    opts = _class_options.get(tp)
    if opts and opts.get("name"):
        return opts["name"]
    module = tp.__module__
    if module == "builtins":
        return tp.__qualname__
    return f"{module}.{tp.__qualname__}"


def codec_for_type(tp: type) -> Codec | None:
    """The codec that encodes ``tp``: exact match, then predicate codecs (latest first)."""
    try:
        return _type_cache[tp]
    except KeyError:
        pass
    codec = _by_type.get(tp)
    if codec is None:
        for fallback in (False, True):
            codec = next((c for c in _predicates if c.fallback is fallback and c.matches(tp)),
                         None)
            if codec is not None:
                break
    _type_cache[tp] = codec
    return codec


def codec_for_name(name: str) -> Codec | None:
    return _by_name.get(name)


_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
#: Modules whose classes are never rebuilt from a file unless trusted by name: their objects can
#: act on the system (processes, files, sockets, the interpreter itself).
_NEVER_IMPLICIT = frozenset(
    {"builtins", "os", "posix", "nt", "sys", "subprocess", "shutil", "socket", "ctypes",
     "importlib", "pickle", "marshal", "code", "codeop", "pty", "runpy", "multiprocessing",
     "threading", "signal", "io", "tempfile", "webbrowser", "types", "gc", "inspect"}
)  # fmt: skip


def _trusted(module: str, trusted_modules: Iterable[str]) -> bool:
    return any(module == t or module.startswith(t + ".") for t in trusted_modules)


def resolve_class(name: str, trusted_modules: Iterable[str] = ()) -> type:
    """The class a stored ``class`` name refers to.

    Only modules already imported, or listed (or under a package listed) in ``trusted_modules``,
    are used; nothing is imported otherwise. Raises ``LookupError`` when the class cannot be
    found, :class:`UnsafeContentError` when the name is not a plain dotted identifier path or
    points into a module that acts on the system.
    """
    if name in _aliases:
        return _aliases[name]
    if not isinstance(name, str) or not _IDENTIFIER_PATH.match(name):
        raise UnsafeContentError(f"class name {name!r} is not a dotted Python name")
    trusted_modules = tuple(trusted_modules)
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        trusted = _trusted(module_name, trusted_modules)
        module = sys.modules.get(module_name)
        if module is None:
            if not trusted:
                continue
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
        if not trusted and module_name.split(".")[0] in _NEVER_IMPLICIT:
            raise UnsafeContentError(
                f"class {name!r} lives in {module_name!r}, which h5forge never uses implicitly; "
                f"pass trusted_modules=[{module_name!r}] if you trust this file"
            )
        obj: Any = module
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            continue
        if not isinstance(obj, type):
            raise UnsafeContentError(f"{name!r} names a {type(obj).__name__}, not a class")
        return obj
    raise LookupError(name)

