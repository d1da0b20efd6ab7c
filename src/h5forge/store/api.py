"""``dump`` and ``load``: the store's public entry points."""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from typing import Any, Iterable, Iterator

import h5py

from h5forge import _h5
from h5forge.errors import (
    CodecError,
    CorruptFileError,
    NodeExistsError,
    NodeNotFoundError,
    UnsafeContentError,
    UpdateError,
)
from h5forge.store import (
    codecs,  # noqa: F401  (imported up front: registries load BUILTIN_CODECS from it)
    update,
)
from h5forge.store import registry as _registry
from h5forge.store.attributes import attr_or_none
from h5forge.store.configure import dataset_options
from h5forge.store.decoder import Decoder, inline_value
from h5forge.store.encoder import Encoder
from h5forge.store.layout import (
    FORMAT_VERSION,
    RESERVED_ATTRIBUTES,
    Node,
    group_node,
    needs_box,
)
from h5forge.store.members import TMP_PREFIX
from h5forge.store.tree import is_tree, member_at
from h5forge.store.writer import DatasetOptions, many_attributes, write_members, write_node

__all__ = ["dump", "load", "plan", "append", "delete"]

_TMP_PREFIX = TMP_PREFIX


def _in_registry(func):
    """Run ``func`` with its ``registry=`` argument as the active registry (None keeps the
    active one: the default), so every encoder, decoder and codec lookup of the call uses it."""

    @functools.wraps(func)
    def call(*args, **kwargs):
        with _registry.using(kwargs.get("registry")):
            return func(*args, **kwargs)

    return call


@_in_registry
def plan(obj: Any, *, allow_pickle: bool = False,
         registry: _registry.Registry | None = None, pack_trees: bool = True) -> Node:
    """The node tree ``dump`` would write for ``obj`` (no I/O). Raises :class:`CodecError`
    naming the place in the object tree of anything that cannot be stored."""
    enc = Encoder(allow_pickle=allow_pickle, pack_trees=pack_trees)
    try:
        root = enc.node(obj, "obj", inline=False)
    except RecursionError:
        raise CodecError("cannot store obj: nested too deeply for Python's recursion limit "
                         "(sys.setrecursionlimit)") from None
    root.attrs["h5forge_format"] = FORMAT_VERSION
    return root


@_in_registry
def dump(obj: Any, target: _h5.PathLike | h5py.Group, path: str = "/", *,
         overwrite: bool = False, configuration: Any = None, allow_pickle: bool = False,
         registry: _registry.Registry | None = None, pack_trees: bool = True) -> None:
    """Store ``obj`` (any supported object tree) at ``path`` in ``target``.

    ``target`` is a file path (created if missing), an open ``h5py.File``/``h5py.Group``, or a
    group of a ``VersionedFile`` stage;
    ``path`` is relative to it ('/' means the target itself). Other data in the target is never
    touched. An existing node at ``path`` raises :class:`NodeExistsError` unless
    ``overwrite=True``; then the new content is written aside and swapped in only when
    complete (a whole file: a temporary file renamed over the old one).

    A ``path`` inside a stored container updates it in place (:mod:`h5forge.store.update`):
    ``"trials/t2"`` adds (or with ``overwrite=True`` replaces) a member of a stored dict,
    keeping its ``keys`` in order; ``"xs/3"`` replaces item 3 of a stored list, or appends
    when the list has 3 items; ``"run/instance_attributes/x"`` an object's attribute. What
    the layout cannot express (a member of a set, a column of a DataFrame, ...) raises
    :class:`UpdateError` before anything is written. ``allow_pickle=True``
    pickles objects no codec can store (``load`` then needs ``allow_pickle=True`` too).
    ``pack_trees=False`` writes every dict, list and small array as its own group, dataset or
    attribute even where a packed tree would do (see docs/FORMAT.md, "Packed trees": a nest of
    small plain data is otherwise a few tables, many times faster to write and read).
    ``registry`` (an :class:`h5forge.store.Registry`) replaces the default codecs.

    ``configuration`` (see :func:`h5forge.get_default_configuration`) is a
    :class:`h5forge.io.BackendConfiguration` keyed by dataset location relative to ``target``
    (as ``get_default_configuration(obj, path)`` lists them). With one, every dataset is
    chunked and compressed: as the plan says where it names the dataset, with the defaults
    elsewhere. Without one, datasets are written contiguous and uncompressed (fastest).
    """
    root = plan(obj, allow_pickle=allow_pickle, pack_trees=pack_trees)  # fails before any I/O
    options = dataset_options(configuration, root, path)  # checked before any I/O too
    parts = _h5.split_path(path)
    if isinstance(target, h5py.Group):
        base = _h5.ensure_open(target)
        if not _updated(base, parts, obj, overwrite, allow_pickle, configuration, pack_trees):
            _dump_into(base, parts, root, overwrite, options)
        return
    if isinstance(target, _h5.ImportTarget):  # e.g. a stage of a VersionedFile
        _refuse_stage_update(target, parts)
        with _h5.memory_file() as scratch:
            _dump_into(scratch, parts, root, False, options)
            target.__h5forge_import__(scratch, "/".join(parts), overwrite)
        return
    if not _h5.is_path(target):
        raise _h5.TargetError(f"dump target must be a file path or an open h5py.File/Group, "
                              f"got {type(target).__name__}")
    filename = os.fspath(target)
    if not os.path.exists(filename):
        _write_new_file(filename, parts, root, options)
        return
    with _h5.open_group(filename, "r+") as f:
        if _updated(f, parts, obj, overwrite, allow_pickle, configuration, pack_trees):
            return
        if parts or not _occupied(f):
            _dump_into(f, parts, root, overwrite, options)
            return
    if not overwrite:
        raise NodeExistsError(f"{filename}:/ already holds data; pass overwrite=True to replace "
                              f"the whole file, or give a path inside it")
    _write_new_file(filename, parts, root, options)


def _updated(base: h5py.Group, parts: list[str], obj: Any, overwrite: bool, allow_pickle: bool,
             configuration: Any, pack_trees: bool = True) -> bool:
    """Whether ``path`` lies inside a stored container, which was then updated in place (the
    container's metadata kept consistent: see :mod:`h5forge.store.update`)."""
    if not parts:
        return False
    upd = update.plan_set(base, parts, obj, overwrite=overwrite, allow_pickle=allow_pickle,
                          pack_trees=pack_trees,
                          configuration=configuration)
    if upd is None:
        return False
    upd.apply()
    return True


def _refuse_stage_update(stage: Any, parts: list[str]) -> None:
    """A VersionedFile stage takes whole nodes only: writing inside a stored container there
    would leave its metadata stale, so it is refused before anything is written."""
    for i in range(len(parts)):
        node = stage.get("/".join(parts[:i])) if i else stage
        if node is None:
            return
        if getattr(node, "attrs", {}).get("class") is not None:
            raise UpdateError(f"{'/'.join(parts)}: lies inside a stored "
                              f"{node.attrs.get('class')} of a VersionedFile stage, which takes "
                              f"whole nodes only; load it, change it and dump it with "
                              f"overwrite=True")


@_in_registry
def append(value: Any, target: _h5.PathLike | h5py.Group, path: str = "/", *,
           allow_pickle: bool = False, registry: _registry.Registry | None = None) -> None:
    """Append ``value`` to the list, tuple or deque stored at ``path`` in ``target``.

    A list packed into one dataset gets the value as a new row in place when the value fits
    the table and the dataset is extendable (it is made extendable by the first append, which
    rewrites it aside); otherwise the list is rewritten with the value, unpacked if need be.
    Raises :class:`UpdateError` (nothing written) when ``path`` is not a stored sequence.
    """
    parts = _h5.split_path(path)
    with _open_for_update(target, "append") as base:
        update.plan_append(base, parts, value, allow_pickle=allow_pickle).apply()


@_in_registry
def delete(target: _h5.PathLike | h5py.Group, path: str, *,
           registry: _registry.Registry | None = None) -> None:
    """Remove the member at ``path`` of a stored tree, keeping its container consistent: a
    dict's ``keys``, a list's ``0..n-1`` numbering (later items move down), a packed list's
    rows. Raises :class:`NodeNotFoundError` when there is no such member and
    :class:`UpdateError` (nothing written) when the container cannot lose a member (a set, a
    DataFrame, ...)."""
    parts = _h5.split_path(path)
    with _open_for_update(target, "delete") as base:
        update.plan_delete(base, parts).apply()


@contextlib.contextmanager
def _open_for_update(target: Any, what: str) -> Iterator[h5py.Group]:
    if isinstance(target, h5py.Group):
        yield _h5.ensure_open(target)
        return
    if isinstance(target, _h5.ImportTarget):
        raise UpdateError(f"{what} is not supported on a VersionedFile stage (it takes whole "
                          f"nodes only); load the container, change it and dump it with "
                          f"overwrite=True")
    if not _h5.is_path(target):
        raise _h5.TargetError(f"{what} target must be a file path or an open h5py.File/Group, "
                              f"got {type(target).__name__}")
    if not os.path.exists(os.fspath(target)):
        raise NodeNotFoundError(f"{os.fspath(target)}: no such file")
    with _h5.open_group(target, "r+") as group:
        yield group


def _write_new_file(filename: str, parts: list[str], root: Node, options) -> None:
    """Write into a temporary file beside ``filename`` and rename it over ``filename`` once
    complete, so an existing file stays intact until then."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(filename)),
                       f"{_TMP_PREFIX}{uuid.uuid4().hex}-{os.path.basename(filename)}")
    try:
        # a root holding many inline members keeps them in dense storage (see writer)
        dense = not parts and root.kind == "group" and many_attributes(root)
        with h5py.File(tmp, "w", track_order=True if dense else None) as f:
            _dump_into(f, parts, root, False, options)
        os.replace(tmp, filename)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _occupied(group: h5py.Group) -> bool:
    return len(group) > 0 or len(group.attrs) > 0


def _dump_into(base: h5py.Group, parts: list[str], root: Node, overwrite: bool,
               options: DatasetOptions | None) -> None:
    where = _h5.describe(base, "/".join(parts))
    if not parts:
        _dump_onto_group(base, root, overwrite, options, where)
        return
    parent = base
    for i, part in enumerate(parts[:-1]):
        child = parent.get(part)
        if child is None:
            child = parent.create_group(part)
        elif not isinstance(child, h5py.Group):
            raise NodeExistsError(f"{_h5.describe(base, '/'.join(parts[:i + 1]))} is a dataset, "
                                  f"so {where} cannot be created under it")
        parent = child
    name = parts[-1]
    location = "/".join(parts)
    if name not in parent:
        _write_or_remove(parent, name, root, location, options)
        return
    if not overwrite:
        raise NodeExistsError(f"{where} already exists; pass overwrite=True to replace it")
    tmp, old = (f"{_TMP_PREFIX}{uuid.uuid4().hex}" for _ in range(2))
    _write_or_remove(parent, tmp, root, location, options)
    parent.move(name, old)  # the old node is freed only once the new one is in place
    parent.move(tmp, name)
    del parent[old]


def _write_or_remove(parent, name, root, location, options):
    try:
        write_node(parent, name, root, location, options)
    except BaseException:
        if name in parent:
            del parent[name]
        raise


def _dump_onto_group(group: h5py.Group, root: Node, overwrite: bool, options, where: str):
    """Write ``root`` as ``group`` itself (a leaf or a packed tree goes into a box: see
    docs/FORMAT.md)."""
    if needs_box(root):
        box = group_node(root.attrs["class"], box=1, h5forge_format=root.attrs.pop(
            "h5forge_format", FORMAT_VERSION))
        box.add("value", root)
        root = box
    if _occupied(group):
        if not overwrite:
            raise NodeExistsError(f"{where} already holds data; pass overwrite=True to replace "
                                  f"it, or give a path inside it")
        _clear(group)
    root.written = group.id
    try:
        write_members(group, root, "", options)
    except BaseException:
        _clear(group)
        raise


def _clear(group: h5py.Group) -> None:
    for name in list(group):
        del group[name]
    for name in list(group.attrs):
        del group.attrs[name]


@_in_registry
def load(source: _h5.PathLike | h5py.Group, path: str = "/", *, lazy: bool = False,
         trusted_modules: Iterable[str] = (), allow_pickle: bool = False,
         registry: _registry.Registry | None = None) -> Any:
    """Load the object tree stored at ``path`` in ``source`` (a file path or an open h5py
    group); ``path`` may point into a tree to load only that sub-tree.

    ``lazy=True`` returns arrays of 1 MiB and more as :class:`LazyArray` (read on access; the
    file stays open while they live). Classes are rebuilt only from modules already imported or
    listed in ``trusted_modules``; others load as :class:`UnknownObject` with a warning.
    Pickled nodes raise :class:`UnsafeContentError` unless ``allow_pickle=True``.
    ``registry`` (an :class:`h5forge.store.Registry`) replaces the default codecs and aliases.
    """
    decoder = Decoder(lazy=lazy, trusted_modules=trusted_modules, allow_pickle=allow_pickle)
    if lazy and _h5.is_path(source):  # the lazy arrays keep the file open
        return _load_from(_h5.open_file(source, "r"), path, decoder)
    with _h5.open_group(source, "r") as group:
        return _load_from(group, path, decoder)


def _load_from(group: h5py.Group, path: str, decoder: Decoder) -> Any:
    """Load the node at ``path``: an HDF5 path, except that a box is looked into (``a`` in a
    boxed tree is ``value/a``) and a packed tree is loaded and indexed (``cfg/gains/0``)."""
    parts = _h5.split_path(path)
    node, i = group, 0
    while i < len(parts):
        part = parts[i]
        if isinstance(node, h5py.Group) and attr_or_none(node, "box") is not None and \
                part != "value" and "value" in node:
            node = node["value"]
            continue
        if _is_tree_group(node):
            return _inside_tree(decoder.decode(node, _h5.describe(group, "/".join(parts[:i]))),
                                group, parts, i)
        where = _h5.describe(group, "/".join(parts[:i + 1]))
        link = node.get(part, getlink=True) if isinstance(node, h5py.Group) else None
        if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
            raise UnsafeContentError(f"{where} is a {type(link).__name__}; h5forge never "
                                     f"follows links it did not write. Load its target path "
                                     f"instead")
        if link is None:
            if i == len(parts) - 1 and isinstance(node, h5py.Group):
                return _load_inline(node, part, where)
            raise NodeNotFoundError(f"{_h5.describe(group, path)}: no such node ({where} is "
                                    f"missing)")
        node = node[part]
        i += 1
    if isinstance(node, h5py.Datatype):
        raise CorruptFileError(f"{_h5.describe(group, path)} is a named datatype, not a stored "
                               f"object")
    try:
        return decoder.decode(node, _h5.describe(group, "/".join(parts)))
    except RecursionError:
        raise CorruptFileError(f"{_h5.describe(group, path)}: nested too deeply to load (or a "
                               f"link loop)") from None


def _is_tree_group(node: Any) -> bool:
    """Whether ``node`` is the group of a packed tree."""
    return isinstance(node, h5py.Group) and is_tree({"layout": attr_or_none(node, "layout")})


def _inside_tree(obj: Any, group: h5py.Group, parts: list[str], i: int) -> Any:
    """The member at ``parts[i:]`` of ``obj``, a packed tree loaded whole."""
    try:
        return member_at(obj, parts[i:])
    except KeyError as missing:
        j = i + missing.args[0]
        raise NodeNotFoundError(f"{_h5.describe(group, '/'.join(parts))}: no such node (the "
                                f"packed tree at {_h5.describe(group, '/'.join(parts[:i]))} "
                                f"has no {'/'.join(parts[i:j + 1])})") from None


def _load_inline(container: h5py.Group, name: str, where: str) -> Any:
    """An inline member (an attribute of its container, see docs/FORMAT.md)."""
    if name in RESERVED_ATTRIBUTES or name not in container.attrs:
        raise NodeNotFoundError(f"{where}: no such node")
    return inline_value(container.attrs[name])
