"""HDF5 nodes -> Python objects, rebuilding shared references and cycles.

The decoder reads a node's attributes once, finds the codec its ``class`` names in its registry
(a registered name, an alias, or a class found under the import rules of
:func:`~h5forge.store.registry.resolve_class`), and hands it a :class:`Stored` view. Anything
that cannot be resolved becomes an :class:`~h5forge.store.unknown.UnknownObject` with a warning;
a node that breaks its own layout raises :class:`CorruptFileError` naming the HDF5 path.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Iterable

import h5py
import numpy as np

from h5forge.errors import (
    CorruptFileError,
    FormatVersionError,
    H5ForgeError,
    ResourceLimitError,
    UnsafeContentError,
)
from h5forge.store import registry as _registry
from h5forge.store.attributes import read_attrs
from h5forge.store.layout import READABLE_FORMATS, RESERVED_ATTRIBUTES
from h5forge.store.members import is_leftover, warn_mismatch

__all__ = ["Decoder", "Stored", "UnknownClassWarning", "inline_value", "open_child"]


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no limit we can know
        return 1 << 62


#: Physical memory; no single dataset larger than this is read whole.
MEMORY_BYTES = _memory_bytes()


class UnknownClassWarning(UserWarning):
    """A stored class could not be found; the node was loaded as an ``UnknownObject``."""


class Stored:
    """A stored node as a codec sees it: the h5py object, its attributes (read once), its path
    and, for nodes whose ``class`` is a resolved user type, that type as ``cls``."""

    __slots__ = ("h5", "attrs", "path", "cls", "_children")

    def __init__(self, h5obj, attrs: dict[str, Any], path: str, cls: type | None = None):
        self.h5, self.attrs, self.path, self.cls = h5obj, attrs, path, cls
        self._children: list[str] | None = None

    @property
    def class_name(self) -> str | None:
        return self.attrs.get("class")

    @property
    def is_group(self) -> bool:
        return isinstance(self.h5, h5py.Group)

    def children(self) -> list[str]:
        """Names of the child links (hard links only; a soft or external link is an error)."""
        if self._children is None:
            if not self.is_group:
                self._children = []
            else:
                names = _hard_link_names(self.h5, self.path)
                leftovers = [n for n in names if is_leftover(n)]
                if leftovers:  # written aside by an interrupted dump/update: never a member
                    warn_mismatch(self.path, f"ignored leftovers of an interrupted write: "
                                             f"{leftovers[:3]}", stacklevel=4)
                    names = [n for n in names if not is_leftover(n)]
                self._children = names
        return self._children

    def member_names(self) -> list[str]:
        """Children plus inline attribute members, children first."""
        names = list(self.children())
        inline = [k for k in self.attrs if k not in RESERVED_ATTRIBUTES]
        if inline and names:
            both = set(names).intersection(inline)
            if both:  # e.g. an update interrupted between its two steps: the attribute wins
                warn_mismatch(self.path, f"members both an attribute and a child (the "
                                         f"attribute is loaded): {sorted(both)[:5]}", stacklevel=4)
                names = [n for n in names if n not in both]
        names.extend(inline)
        return names

    def dataset(self) -> h5py.Dataset:
        """The node's dataset, once checked to fit in memory (a crafted file can declare any
        shape; reading it must fail clearly, not exhaust the machine)."""
        if self.is_group:
            raise CorruptFileError(f"{self.path}: class {self.class_name!r} needs a dataset, "
                                   f"found a group")
        ds = self.h5
        nbytes = (ds.size or 0) * ds.dtype.itemsize
        if nbytes > MEMORY_BYTES:
            raise ResourceLimitError(
                f"{self.path}: dataset of shape {ds.shape} needs {nbytes / 2**30:.1f} GiB, more "
                f"than this machine's memory; load it with lazy=True or read slices with h5py"
            )
        return ds

    def read(self, kinds: str | None = None, shape: tuple[int, ...] | None = None):
        """The whole dataset, after checking its dtype kind (numpy kind letters, e.g. ``"iu"``)
        and shape, so a node of the wrong kind fails clearly instead of being converted."""
        ds = self.dataset()
        if kinds is not None and ds.dtype.kind not in kinds:
            raise CorruptFileError(f"{self.path}: class {self.class_name!r} needs numpy kind "
                                   f"{kinds!r} data, found {ds.dtype}")
        if shape is not None and ds.shape != shape:
            raise CorruptFileError(f"{self.path}: class {self.class_name!r} needs shape "
                                   f"{shape}, found {ds.shape}")
        return ds[()]

    def read_bytes(self) -> bytes:
        """A 1-D uint8 dataset as bytes (bytes, bytearray, encoded text, pickles)."""
        ds = self.dataset()
        if ds.dtype != np.uint8 or ds.ndim != 1:
            raise CorruptFileError(f"{self.path}: class {self.class_name!r} needs 1-D uint8 "
                                   f"data, found {ds.dtype} {ds.shape}")
        return ds[()].tobytes()

    def group(self) -> h5py.Group:
        if not self.is_group:
            raise CorruptFileError(f"{self.path}: class {self.class_name!r} needs a group, "
                                   f"found a dataset")
        return self.h5

    def child_path(self, name: str) -> str:
        return f"{self.path.rstrip('/')}/{name}"

    def attr(self, name: str, default: Any = ...) -> Any:
        try:
            return self.attrs[name]
        except KeyError:
            if default is ...:
                raise CorruptFileError(f"{self.path}: attribute {name!r} is missing "
                                       f"(class {self.class_name!r})") from None
            return default


def _hard_link_names(group: h5py.Group, path: str) -> list[str]:
    raw: list[tuple[bytes, int]] = []
    group.id.links.iterate(lambda name, info: raw.append((name, info.type)), info=True)
    try:
        names = [name.decode("utf-8") for name, kind in raw if kind == h5py.h5l.TYPE_HARD]
    except UnicodeDecodeError:
        raise CorruptFileError(f"{path}: a member name is not UTF-8; h5forge never writes such "
                               f"names, so this group was not written by it") from None
    bad = [name.decode("utf-8", "replace") for name, kind in raw if kind != h5py.h5l.TYPE_HARD]
    if bad:
        raise UnsafeContentError(
            f"{path}: links {bad[:5]} are soft or external links, which h5forge never follows; "
            f"remove them or read the group with h5py"
        )
    return names


def open_child(stored: Stored, name: str) -> h5py.Group | h5py.Dataset:
    """Open child ``name`` of a group node (low-level: h5py's ``group[name]`` costs several
    times more and the decoder opens every node)."""
    try:
        oid = h5py.h5o.open(stored.group().id, name.encode("utf-8"))
    except KeyError:
        raise CorruptFileError(f"{stored.child_path(name)}: member is missing") from None
    if isinstance(oid, h5py.h5g.GroupID):
        return h5py.Group(oid)
    if isinstance(oid, h5py.h5d.DatasetID):
        return h5py.Dataset(oid)
    raise CorruptFileError(f"{stored.child_path(name)}: a named datatype is not a stored object")


def inline_value(value: Any) -> Any:
    """The Python value of an inline attribute (see docs/FORMAT.md, "Inline members")."""
    tp = type(value)
    if tp is str:
        return value
    if tp is np.float64:
        return float(value)
    if tp is np.int64:
        return int(value)
    if tp is np.bool_:
        return bool(value)
    if tp is np.complex128:
        return complex(value)
    if tp is h5py.Empty:
        return None
    if tp is np.ndarray and value.ndim == 1 and value.dtype.kind in "ifbcO":
        return value.tolist()  # an inline list (docs/FORMAT.md)
    return value  # a foreign attribute: keep h5py's value


class Decoder:
    """Loads one tree; shared HDF5 objects (hard links) become shared Python objects."""

    def __init__(self, *, lazy: bool = False, trusted_modules: Iterable[str] = (),
                 allow_pickle: bool = False, registry: _registry.Registry | None = None):
        if isinstance(trusted_modules, str):
            trusted_modules = (trusted_modules,)
        self.lazy = lazy
        self.trusted_modules = tuple(trusted_modules)
        self.allow_pickle = allow_pickle
        #: The codecs this load uses (the active registry unless given).
        self.registry = registry if registry is not None else _registry.active()
        self._memo: dict[Any, Any] = {}
        self._active: dict[Any, int] = {}
        self._warned: set[str] = set()

    def warn_once(self, key: str, message: str, stacklevel: int = 2) -> None:
        """Warn (:class:`UnknownClassWarning`) once per load for ``key``: e.g. one warning
        that a library is missing, not one per node that needs it."""
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, UnknownClassWarning, stacklevel=stacklevel + 1)

    def decode(self, h5obj, path: str) -> Any:
        """The object stored at ``h5obj`` (``path`` is its HDF5 path, for messages)."""
        key = h5obj.id
        if key in self._memo:
            return self._memo[key]
        depth = self._active.get(key, 0)
        if depth >= 2:
            raise CorruptFileError(f"{path}: a loop of hard links that no container can hold "
                                   f"(a link to an ancestor through immutable nodes only)")
        self._active[key] = depth + 1
        try:
            stored = Stored(h5obj, read_attrs(h5obj), path)
            codec = self._codec(stored)
            try:
                obj = codec.decode(stored, self)
            except (H5ForgeError, RecursionError):
                raise
            except (TypeError, ValueError, LookupError, AttributeError, ArithmeticError,
                    UnicodeError, OSError, np.ma.MAError) as exc:
                raise CorruptFileError(
                    f"{path}: cannot rebuild class {stored.class_name!r} from this node "
                    f"({type(exc).__name__}: {exc}); the file is damaged or was not written "
                    f"by h5forge"
                ) from exc
        finally:
            self._active[key] = depth
        # Every node is memoized, immutable ones too: a crafted file linking one node from
        # many places must not be decoded once per path. An immutable container re-entered
        # through a cycle was memoized by the inner decode; every reference then sees that
        # object (as with pickle).
        return self._memo.setdefault(key, obj)

    def register(self, stored: Stored, obj: Any) -> None:
        """Memoize a container before its members are decoded, so cycles resolve to it."""
        self._memo[stored.h5.id] = obj

    def member(self, stored: Stored, name: str) -> Any:
        """Decode member ``name`` of a group node (child node or inline attribute)."""
        if name in stored.attrs and name not in RESERVED_ATTRIBUTES:
            return inline_value(stored.attrs[name])
        return self.child(stored, name)

    def child(self, stored: Stored, name: str) -> Any:
        """Decode child node ``name`` (never an attribute)."""
        return self.decode(open_child(stored, name), stored.child_path(name))

    def members(self, stored: Stored) -> dict[str, Any]:
        """All members by name (children, then inline attributes)."""
        return {name: self.member(stored, name) for name in stored.member_names()}

    # -- codec lookup --------------------------------------------------------------------------
    def _codec(self, stored: Stored) -> _registry.Codec:
        fmt = stored.attrs.get("h5forge_format")
        if fmt is not None:
            check_format(fmt, stored.path)
        name = stored.class_name
        if stored.attrs.get("box") is not None and stored.is_group:
            return self.registry.codec_for_name("h5forge.box")
        if name is None:
            warnings.warn(f"{stored.path}: node has no 'class' attribute; loading it as plain "
                          f"{'dict' if stored.is_group else 'numpy data'}", UnknownClassWarning,
                          stacklevel=4)
            return self.registry.codec_for_name("h5forge.foreign")
        if not isinstance(name, str):
            raise CorruptFileError(f"{stored.path}: 'class' attribute is {type(name).__name__}, "
                                   f"not a string")
        codec = self.registry.codec_for_name(name)
        if codec is not None:
            if name == "pickle" and not self.allow_pickle:
                raise UnsafeContentError(
                    f"{stored.path}: holds a pickled object; unpickling runs code from the file. "
                    f"Pass allow_pickle=True to load() only if you trust this file"
                )
            return codec
        try:
            cls = self.registry.resolve_class(name, self.trusted_modules)
        except LookupError:
            return self._unknown(stored, f"class {name!r} cannot be found (module not imported "
                                         f"or not in trusted_modules, or the class moved)")
        except UnsafeContentError as exc:
            return self._unknown(stored, str(exc))
        codec = self.registry.codec_for_type(cls)
        if codec is None:
            return self._unknown(stored, f"class {name!r} has no codec")
        stored.cls = cls
        return codec

    def _unknown(self, stored: Stored, why: str) -> _registry.Codec:
        warnings.warn(
            f"{stored.path}: {why}; loaded as h5forge.UnknownObject. To rebuild it, import its "
            f"module first, pass trusted_modules=[...] to load(), or map the name with "
            f"h5forge.alias({stored.class_name!r}, NewClass)",
            UnknownClassWarning, stacklevel=5,
        )
        return self.registry.codec_for_name("h5forge.unknown")


def check_format(fmt: Any, path: str) -> None:
    text = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    major = text.split(".")[0]
    if major not in READABLE_FORMATS:
        raise FormatVersionError(
            f"{path}: written in h5forge format {text!r}; this h5forge reads formats "
            f"{', '.join(map(repr, READABLE_FORMATS))}. Upgrade h5forge to load it"
        )
