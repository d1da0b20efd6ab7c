"""Which codec encodes a Python type, which decodes a stored ``class`` name, and how a stored
class name is turned back into a class without importing anything the caller did not allow.

Modelled on a cattrs ``Converter``: a :class:`Registry` holds one small codec per type family,
looked up per type (exact types first, then predicates such as "any Enum", then fallbacks),
a later registration winning over an earlier one. The built-in codecs are registered from one
ordered list (:data:`h5forge.store.codecs.BUILTIN_CODECS`); third-party packages add theirs
through the ``h5forge.codecs`` entry-point group (as zarr does). Both are loaded on the first
lookup, so importing h5forge registers nothing by side effect.

:data:`default_registry` is the one ``h5forge.register_codec``/``alias``/``register_class``
change and ``dump``/``load`` use unless given ``registry=``. While a ``dump``/``load`` runs,
:func:`active` is the registry it was given, so a codec's lookups (``class_name_of``,
``codec_for_name``...) follow the caller's registry without passing it around.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import re
import sys
import warnings
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from h5forge.errors import CodecError, UnsafeContentError

if TYPE_CHECKING:  # pragma: no cover
    from h5forge.store.decoder import Decoder, Stored
    from h5forge.store.encoder import Encoder
    from h5forge.store.layout import Node

__all__ = [
    "Codec",
    "Registry",
    "ENTRY_POINT_GROUP",
    "default_registry",
    "active",
    "using",
    "register_codec",
    "register_class",
    "alias",
    "class_name_of",
    "codec_for_type",
    "codec_for_name",
    "resolve_class",
    "class_options",
]

#: The entry-point group a package names its codecs in (``pyproject.toml``:
#: ``[project.entry-points."h5forge.codecs"]`` ``mytype = "mypkg.h5:MyTypeCodec"``).
ENTRY_POINT_GROUP = "h5forge.codecs"


class Codec:
    """How one family of types is written and read back.

    Subclasses set ``types`` (exact types they encode; subclasses of them are matched when
    :meth:`matches` says so) and ``names`` (the ``class`` attribute values they decode), and
    implement :meth:`encode` (object -> planned node, see :mod:`h5forge.store.nodes`) and
    :meth:`decode` (stored node -> object).
    """

    types: tuple[type, ...] = ()
    names: tuple[str, ...] = ()
    #: Whether decoded objects may be shared (hard links) -- False for immutable atoms.
    tracks_identity: bool = True
    #: A catch-all (e.g. "any Python class"): asked only after every specific codec.
    fallback: bool = False

    @property
    def name(self) -> str:
        """The stored ``class`` name a codec of one name writes (``names[0]``): the name is
        written once, in ``names``, and ``encode`` uses ``self.name``."""
        return self.names[0]

    def matches(self, tp: type) -> bool:
        """Whether this codec encodes ``tp`` although it is not one of ``types`` exactly."""
        return False

    def encode(self, obj: Any, enc: "Encoder", where: str) -> "Node":
        raise NotImplementedError(f"{type(self).__name__} cannot encode")

    def decode(self, stored: "Stored", dec: "Decoder") -> Any:
        raise NotImplementedError(f"{type(self).__name__} cannot decode")


class Registry:
    """An ordered set of codecs, plus the class names and aliases user classes are stored by.

    ``Registry(codecs)`` registers ``codecs`` in order. ``builtins=True`` puts h5forge's
    built-in codecs first, and ``entry_points=True`` after them the codecs installed packages
    name in the ``h5forge.codecs`` entry-point group; both are loaded on the first lookup, so
    the order is always built-ins, then entry points, then what was registered (whenever it
    was). Lookups are derived from the ordered codec list, so :meth:`unregister` brings back
    whatever an unregistered codec had overridden.
    """

    def __init__(self, codecs: Iterable[Codec | type[Codec]] = (), *, builtins: bool = False,
                 entry_points: bool = False):
        self._codecs: list[Codec] = []
        self._by_type: dict[type, Codec] = {}
        self._by_name: dict[str, Codec] = {}
        self._predicates: list[Codec] = []
        self._type_cache: dict[type, Codec | None] = {}
        self._aliases: dict[str, type] = {}
        self._class_options: dict[type, dict[str, Any]] = {}
        self._pending_builtins = builtins
        self._pending_entry_points = entry_points
        for codec in codecs:
            self.register(codec)

    # -- codecs --------------------------------------------------------------------------------
    def register(self, codec: Codec | type[Codec]) -> Codec:
        """Register a codec (instance or class) for its ``types`` and ``names``; returns the
        instance. A later registration for the same type or name wins, so a user codec can
        override a built-in one."""
        codec = _instance(codec)
        self._codecs.append(codec)
        self._index(codec)
        self._type_cache.clear()
        return codec

    def unregister(self, codec: Codec | type[Codec]) -> None:
        """Remove a codec (the instance :meth:`register` returned, or every instance of a codec
        class); the codecs it had overridden are asked again. Raises :class:`CodecError` when
        it is not registered here."""
        self._load_pending()
        if isinstance(codec, type):
            keep = [c for c in self._codecs if type(c) is not codec]
        else:
            keep = [c for c in self._codecs if c is not codec]
        if len(keep) == len(self._codecs):
            raise CodecError(f"{codec!r} is not registered in this registry")
        self._reindex(keep)

    def _reindex(self, codecs: list[Codec]) -> None:
        self._codecs = []
        self._by_type.clear()
        self._by_name.clear()
        self._predicates.clear()
        self._type_cache.clear()
        for c in codecs:
            self._codecs.append(c)
            self._index(c)

    def _index(self, codec: Codec) -> None:
        for tp in codec.types:
            self._by_type[tp] = codec
        for name in codec.names:
            self._by_name[name] = codec
        if type(codec).matches is not Codec.matches:
            self._predicates.insert(0, codec)

    @property
    def codecs(self) -> tuple[Codec, ...]:
        """The registered codecs, in registration order."""
        self._load_pending()
        return tuple(self._codecs)

    def copy(self) -> "Registry":
        """An independent registry with the same codecs, class options and aliases: changes to
        either do not reach the other (the codec instances themselves are shared)."""
        self._load_pending()
        new = Registry(self._codecs)
        new._aliases = dict(self._aliases)
        new._class_options = {cls: dict(opts) for cls, opts in self._class_options.items()}
        return new

    def _load_pending(self) -> None:
        """Put the built-in and entry-point codecs, if asked for and not loaded yet, before
        the ones registered so far."""
        if not (self._pending_builtins or self._pending_entry_points):
            return
        base: list[Codec] = []
        if self._pending_builtins:
            self._pending_builtins = False
            from h5forge.store.codecs import BUILTIN_CODECS

            base.extend(codec() for codec in BUILTIN_CODECS)
        if self._pending_entry_points:
            self._pending_entry_points = False
            from importlib.metadata import entry_points

            for point in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    base.append(_instance(point.load()))
                except Exception as exc:  # noqa: BLE001 - a broken plugin must not break h5forge
                    warnings.warn(f"h5forge: codec entry point {point.name!r} ({point.value}) "
                                  f"could not be registered ({type(exc).__name__}: {exc}); the "
                                  f"types it stores fail until it is fixed or uninstalled",
                                  RuntimeWarning, stacklevel=4)
        self._reindex(base + self._codecs)

    # -- lookups -------------------------------------------------------------------------------
    def codec_for_type(self, tp: type) -> Codec | None:
        """The codec that encodes ``tp``: exact match, then predicate codecs (latest first),
        then fallback codecs."""
        try:
            return self._type_cache[tp]
        except KeyError:
            pass
        self._load_pending()
        codec = self._by_type.get(tp)
        if codec is None:
            for fallback in (False, True):
                codec = next((c for c in self._predicates
                              if c.fallback is fallback and c.matches(tp)), None)
                if codec is not None:
                    break
        self._type_cache[tp] = codec
        return codec

    def codec_for_name(self, name: str) -> Codec | None:
        """The codec that decodes nodes whose ``class`` is ``name``."""
        if self._pending_builtins or self._pending_entry_points:
            self._load_pending()
        return self._by_name.get(name)

    # -- user classes --------------------------------------------------------------------------
    def register_class(self, cls: type, *, class_attributes: bool = False,
                       name: str | None = None) -> type:
        """Declare how instances of a user class are stored.

        ``class_attributes=True`` also stores the class's own data attributes (in
        ``class_attributes``) for reference; ``name`` fixes the stored class name (useful to
        keep files stable when a module is renamed). Usable as a decorator."""
        self._class_options[cls] = {"class_attributes": class_attributes, "name": name}
        if name is not None:
            self._aliases[name] = cls
        return cls

    def class_options(self, cls: type) -> dict[str, Any]:
        return self._class_options.get(cls, {})

    def alias(self, old_name: str, new_class: type) -> None:
        """Load nodes stored with ``class`` = ``old_name`` as instances of ``new_class`` (a class
        that moved or was renamed)."""
        if not isinstance(new_class, type):
            raise CodecError(f"alias() needs a class for {old_name!r}, got {new_class!r}")
        self._aliases[old_name] = new_class

    def class_name_of(self, tp: type) -> str:
        """The stored ``class`` name of a type: plain for builtins, ``module.QualName``
        otherwise (or the name given to :meth:`register_class`)."""
        opts = self._class_options.get(tp)
        if opts and opts.get("name"):
            return opts["name"]
        module = tp.__module__
        if module == "builtins":
            return tp.__qualname__
        return f"{module}.{tp.__qualname__}"

    def resolve_class(self, name: str, trusted_modules: Iterable[str] = ()) -> type:
        """The class a stored ``class`` name refers to: an alias, else see
        :func:`resolve_class`."""
        if name in self._aliases:
            return self._aliases[name]
        return _resolve(name, trusted_modules)


def _instance(codec: Any) -> Codec:
    if isinstance(codec, type) and issubclass(codec, Codec):
        codec = codec()
    if not isinstance(codec, Codec):
        raise CodecError(f"register_codec expects a Codec subclass or instance, got {codec!r}")
    return codec


#: The registry ``h5forge.register_codec`` changes and ``dump``/``load`` use by default: the
#: built-in codecs, then the entry points' (both loaded on first use), then registered ones.
default_registry = Registry(builtins=True, entry_points=True)
_active: contextvars.ContextVar[Registry] = contextvars.ContextVar("h5forge_registry")


def active() -> Registry:
    """The registry of the ``dump``/``load`` running now (:data:`default_registry` outside)."""
    return _active.get(default_registry)


@contextlib.contextmanager
def using(registry: Registry | None) -> Iterator[Registry]:
    """Make ``registry`` the :func:`active` one inside the block (None keeps the active one:
    the default, or the registry of the ``dump``/``load`` this call is part of)."""
    if registry is None:
        yield active()
        return
    if not isinstance(registry, Registry):
        raise CodecError(f"registry= expects an h5forge.store.Registry, got "
                         f"{type(registry).__name__}")
    token = _active.set(registry)
    try:
        yield registry
    finally:
        _active.reset(token)


# -- the default registry's editing API, and the active registry's lookups ----------------------
def register_codec(codec: Codec | type[Codec]) -> Codec:
    """Register a codec on the default registry (see :meth:`Registry.register`)."""
    return default_registry.register(codec)


def register_class(cls: type, *, class_attributes: bool = False, name: str | None = None) -> type:
    """Declare how a user class is stored, on the default registry (see
    :meth:`Registry.register_class`). Usable as a decorator."""
    return default_registry.register_class(cls, class_attributes=class_attributes, name=name)


def alias(old_name: str, new_class: type) -> None:
    """Load ``old_name`` nodes as ``new_class``, on the default registry (see
    :meth:`Registry.alias`)."""
    default_registry.alias(old_name, new_class)


def class_options(cls: type) -> dict[str, Any]:
    return active().class_options(cls)


def class_name_of(tp: type) -> str:
    """The stored ``class`` name of a type (see :meth:`Registry.class_name_of`)."""
    return active().class_name_of(tp)


def codec_for_type(tp: type) -> Codec | None:
    """The codec that encodes ``tp`` in the active registry."""
    return active().codec_for_type(tp)


def codec_for_name(name: str) -> Codec | None:
    """The codec that decodes ``class`` = ``name`` in the active registry."""
    return active().codec_for_name(name)


def resolve_class(name: str, trusted_modules: Iterable[str] = ()) -> type:
    """The class a stored ``class`` name refers to (the active registry's aliases first).

    Only modules already imported, or listed (or under a package listed) in ``trusted_modules``,
    are used; nothing is imported otherwise. Raises ``LookupError`` when the class cannot be
    found, :class:`UnsafeContentError` when the name is not a plain dotted identifier path or
    points into a module that acts on the system.
    """
    return active().resolve_class(name, trusted_modules)


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


def _resolve(name: str, trusted_modules: Iterable[str] = ()) -> type:
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

