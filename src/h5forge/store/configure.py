"""Dataset I/O plans for object trees: which datasets ``dump`` writes, where, and how.

``get_default_configuration(obj)`` lists every dataset ``dump(obj, target, path)`` would write,
located as it will be in the target, with the default chunks and compression of
:mod:`h5forge.io`. ``dump(..., configuration=plan)`` writes with a plan: the datasets it names
as it says, the others with the defaults.
"""

from __future__ import annotations

from typing import Any, Iterator

import h5py
import numpy as np

from h5forge import _h5
from h5forge.errors import ConfigurationError
from h5forge.io import BackendConfiguration, DatasetConfiguration
from h5forge.io import get_default_configuration as _file_configuration
from h5forge.io.configuration import normalize_location
from h5forge.io.nwb import is_nwbfile
from h5forge.store.layout import Node, needs_box
from h5forge.store.writer import DatasetOptions

__all__ = ["get_default_configuration", "planned_datasets", "dataset_options"]


def get_default_configuration(x: Any, path: str = "/", *,
                              allow_pickle: bool = False,
                              pack_trees: bool = True) -> BackendConfiguration:
    """The default plan for ``x``: an object tree (every dataset ``dump(x, target, path,
    pack_trees=pack_trees)`` would write, located as it will be relative to the target), or a
    file path / open ``h5py.File``/``Group`` (the datasets already there). A ``str`` or
    ``os.PathLike`` is always taken as a file path."""
    if isinstance(x, h5py.Group) or _h5.is_path(x) or is_nwbfile(x):
        return _file_configuration(x)  # an in-memory pynwb.NWBFile: what pynwb will write
    from h5forge.store.api import plan

    return BackendConfiguration([DatasetConfiguration(location, *_dtype_shape(node))
                                 for location, node in planned_datasets(plan(
                                     x, allow_pickle=allow_pickle, pack_trees=pack_trees),
                                                                   path)])


def planned_datasets(root: Node, path: str = "/", *,
                     links: bool = False) -> Iterator[tuple[str, Node]]:
    """``(location, node)`` for every dataset node of a plan, located as ``dump`` writes them
    at ``path`` (a leaf or a packed tree dumped onto a group's root goes into its box as
    ``value``). A dataset shared by several places is listed at the first; ``links=True``
    also lists the others (the hard links ``dump`` writes), each with the dataset node they
    link to."""
    parts = _h5.split_path(path)
    if parts:
        yield from _walk(root, "/".join(parts), links)
    elif not needs_box(root):
        for name, member in root.members.items():
            yield from _walk(member, name, links)
    else:
        yield from _walk(root, "value", links)


def _walk(node: Node, location: str, links: bool) -> Iterator[tuple[str, Node]]:
    if links and node.kind == "link":
        node = node.data
        if node.kind == "dataset" and not isinstance(node.data, h5py.Empty):
            yield location, node
    elif node.kind == "dataset":
        if not isinstance(node.data, h5py.Empty):
            yield location, node
    elif node.kind == "group":
        for name, member in node.members.items():
            yield from _walk(member, f"{location}/{name}", links)


def _dtype_shape(node: Node) -> tuple[np.dtype, tuple[int, ...]]:
    data = node.data if hasattr(node.data, "dtype") else np.asarray(node.data)
    dtype = np.dtype(node.h5dtype) if node.h5dtype is not None else data.dtype
    return dtype, tuple(data.shape)


def dataset_options(configuration: Any, root: Node, path: str) -> DatasetOptions | None:
    """``(location, node) -> create_dataset keywords`` for writing ``root`` at ``path`` with
    ``configuration``: a :class:`BackendConfiguration` (or a mapping of locations to
    :class:`DatasetConfiguration` or to dicts of h5py ``create_dataset`` keywords). Datasets it
    does not name get the defaults. Raises :class:`ConfigurationError` before any write if it
    names a location the object does not have, or plans it for other data."""
    if configuration is None:
        return None
    table = getattr(configuration, "dataset_configurations", configuration)
    if not hasattr(table, "items"):
        raise ConfigurationError(f"configuration must be a BackendConfiguration or a mapping of "
                                 f"dataset locations, got {type(configuration).__name__}")
    planned = dict(planned_datasets(root, path, links=True))  # any hard-link name will do
    entries: dict[int, Any] = {}  # by node: a shared dataset is one node under several names
    for location, entry in table.items():
        key = normalize_location(location)
        node = planned.get(key)
        if node is None:
            raise ConfigurationError(
                f"{key}: the configuration names a dataset the object does not have; datasets "
                f"dump would write: {', '.join(list(planned)[:8]) or '(none)'}"
                f"{' ...' if len(planned) > 8 else ''}")
        if isinstance(entry, DatasetConfiguration):
            entry.check_data(*reversed(_dtype_shape(node)), where=key)
            entries[id(node)] = entry.h5py_kwargs()
        elif isinstance(entry, dict):
            entries[id(node)] = dict(entry)
        else:
            raise ConfigurationError(f"{key}: expected a DatasetConfiguration or a dict of "
                                     f"h5py create_dataset keywords, got {type(entry).__name__}")

    def options(location: str, node: Node) -> dict[str, Any]:
        kwargs = entries.get(id(node))
        if kwargs is None:
            return DatasetConfiguration(location, *_dtype_shape(node)).h5py_kwargs()
        return kwargs

    return options
