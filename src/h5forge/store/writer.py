"""Plan of nodes -> HDF5 groups, datasets, attributes and hard links."""

from __future__ import annotations

from typing import Any, Callable

import h5py
import numpy as np

from h5forge.errors import ConfigurationError
from h5forge.store.attributes import write_attr
from h5forge.store.layout import Node

__all__ = ["write_node", "write_members", "many_attributes", "DatasetOptions"]

#: Called with (location, node) for each dataset; returns extra create_dataset keywords.
DatasetOptions = Callable[[str, Node], dict[str, Any]]


def write_members(group: h5py.Group, node: Node, location: str, options: DatasetOptions | None):
    """Write ``node``'s attributes and members into the existing ``group``."""
    for name, value in node.attrs.items():
        write_attr(group, name, value)
    for name, member in node.members.items():
        write_node(group, name, member, f"{location}/{name}" if location else name, options)


def write_node(parent: h5py.Group, name: str, node: Node, location: str,
               options: DatasetOptions | None = None) -> None:
    """Create ``node`` as ``parent[name]``; ``location`` is its path relative to the dump target."""
    kind = node.kind
    if kind == "inline":
        write_attr(parent, name, node.data)
    elif kind == "link":
        target = node.data  # links always point at a group/dataset node, never a link
        h5py.h5o.link(target.written, parent.id, name.encode("utf-8"))
    elif kind == "group":
        group = _create_group(parent, name, node)
        node.written = group.id
        write_members(group, node, location, options)
    elif kind == "dataset":
        data = node.data
        empty = isinstance(data, h5py.Empty)  # None and friends: no data to chunk or compress
        kwargs = options(location, node) if options is not None and not empty else {}
        if empty:
            dset = parent.create_dataset(name, data=data)
        elif not kwargs and node.h5dtype is None and _plain_numeric(data):
            dset = _create_plain_dataset(parent, name, data)
        elif kwargs:
            try:
                dset = parent.create_dataset(name, data=data, dtype=node.h5dtype, **kwargs)
            except (ValueError, TypeError, OSError) as exc:
                raise ConfigurationError(f"{location}: HDF5 cannot write this dataset with "
                                         f"{_describe(kwargs)}: {exc}") from exc
        else:
            dset = parent.create_dataset(name, data=data, dtype=node.h5dtype)
        node.written = dset.id
        for attr_name, value in node.attrs.items():
            write_attr(dset, attr_name, value)
    else:  # pragma: no cover - plans are built by the encoder only
        raise AssertionError(f"unknown node kind {kind!r}")


#: A group planned with more attributes than this is created with dense attribute storage
#: (compact storage is smaller for a few: a config tree of small dicts is 7% smaller).
COMPACT_ATTRIBUTES_MAX = 32
_DENSE_GCPL = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
_DENSE_GCPL.set_attr_creation_order(h5py.h5p.CRT_ORDER_TRACKED)


def _create_group(parent: h5py.Group, name: str, node: Node) -> h5py.Group:
    """``parent.create_group(name)``; a group that will hold many attributes (a dict's inline
    members) gets its attributes in dense storage. In the compact storage of an oldest-format
    object header every new attribute costs a scan of the ones before it, so 16,000 of them
    took seconds (quadratic); tracking their creation order makes HDF5 switch to dense storage
    (a B-tree) past 8 attributes whatever the file's library version bounds."""
    if not many_attributes(node):
        return parent.create_group(name)
    encoded, lcpl = parent._e(name, lcpl=True)  # h5py's: a UTF-8 name is flagged as UTF-8
    return h5py.Group(h5py.h5g.create(parent.id, encoded, lcpl=lcpl, gcpl=_DENSE_GCPL))


def many_attributes(node: Node) -> bool:
    """Whether group ``node`` will hold more attributes (metadata and inline members) than
    fit compact storage well (see :func:`_create_group`)."""
    count = len(node.attrs)
    if count <= COMPACT_ATTRIBUTES_MAX and node.members:
        count += sum(1 for m in node.members.values() if m.kind == "inline")
    return count > COMPACT_ATTRIBUTES_MAX


#: What h5py's create_dataset(name, data=...) sets for a contiguous dataset without options.
_PLAIN_DCPL = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
_PLAIN_DCPL.set_obj_track_times(False)
_FILE_TYPES: dict[np.dtype, h5py.h5t.TypeID] = {}
_SCALAR_SPACE = h5py.h5s.create(h5py.h5s.SCALAR)


def _plain_numeric(data: Any) -> bool:
    """A numpy array of numbers or bools in native byte order (no fields, no subarray)."""
    if type(data) is not np.ndarray:
        return False
    dtype = data.dtype
    return dtype.kind in "biufc" and dtype.names is None and dtype.subdtype is None and \
        (dtype.isnative or dtype.itemsize == 1)


def _create_plain_dataset(parent: h5py.Group, name: str, data: np.ndarray) -> h5py.Dataset:
    """``parent.create_dataset(name, data=data)`` through the low-level API: the same
    dataset (contiguous, times not tracked, h5py's type for the dtype), made without h5py's
    per-call option handling, which costs more than HDF5's own work for a small dataset
    (a packed tree's tables, neo's signals)."""
    dtype = data.dtype
    tid = _FILE_TYPES.get(dtype)
    if tid is None:
        tid = _FILE_TYPES[dtype] = h5py.h5t.py_create(dtype, logical=True)
    space = _SCALAR_SPACE if data.ndim == 0 else h5py.h5s.create_simple(data.shape)
    encoded, lcpl = parent._e(name, lcpl=True)  # h5py's: a UTF-8 name is flagged as UTF-8
    dsid = h5py.h5d.create(parent.id, encoded, tid, space, dcpl=_PLAIN_DCPL, lcpl=lcpl)
    if data.size:
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(data))
    return h5py.Dataset(dsid)


def _describe(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k != "dcpl") or "no options"
