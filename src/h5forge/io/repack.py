"""Rewrite a whole HDF5 file with a new plan: new chunks, compression and filters, everything
else as it was (groups, attributes, hard/soft/external links, fill values, resizable shapes,
dimension scales and object references; so the store's objects load exactly as before)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import h5py
import numpy as np

from h5forge import _h5
from h5forge._progress import progress_bar
from h5forge.errors import ConfigurationError, H5ForgeError, NodeExistsError
from h5forge.io.configuration import BackendConfiguration, DatasetConfiguration
from h5forge.io.discover import iter_datasets
from h5forge.io.parallel import ChunkPool, WriteReport
from h5forge.io.write import copy_buffered

__all__ = ["repack"]

# Dimension-scale bookkeeping attributes: HDF5 rewrites them when scales are attached again.
_SCALE_ATTRIBUTES = frozenset({"DIMENSION_LIST", "REFERENCE_LIST"})


def repack(src: _h5.PathLike | h5py.Group, dst: _h5.PathLike | h5py.Group,
           configuration: BackendConfiguration | str | os.PathLike | None = None, *,
           progress: bool | None = None, overwrite: bool = False,
           threads: int | None = None) -> list[WriteReport]:
    """Copy everything in ``src`` to ``dst``, writing each dataset as ``configuration`` says.

    ``configuration`` is a :class:`BackendConfiguration`, the path of a YAML plan, or ``None``
    (the default plan of every dataset); datasets it does not name get the defaults, and a
    location it names that ``src`` lacks (or of another shape or dtype) raises before anything
    is written. ``dst`` is a file path (written aside and renamed into place when complete, so
    it may even be ``src``; an existing file needs ``overwrite=True``) or an empty open group.

    ``threads`` (``None``: ``os.cpu_count()``) decompress the source's chunks and compress the
    new ones (:mod:`h5forge.io.parallel`). Returns one :class:`~h5forge.io.parallel.WriteReport`
    per dataset copied: how many chunks went through the threads, and which datasets went
    through HDF5's one-core filter pipeline and why.
    """
    pool = ChunkPool(threads)  # a bad thread count raises before anything is written
    try:
        return _repack(src, dst, configuration, progress, overwrite, pool)
    finally:
        pool.close()


def _repack(src: Any, dst: Any, configuration: Any, progress: bool | None, overwrite: bool,
            pool: ChunkPool) -> list[WriteReport]:
    if _h5.is_path(dst):
        target = os.fspath(dst)
        if os.path.exists(target) and not overwrite:
            raise NodeExistsError(f"{target} exists; pass overwrite=True to replace it")
        tmp = os.path.join(os.path.dirname(os.path.abspath(target)),
                           f".h5forge-repack-{uuid.uuid4().hex}-{os.path.basename(target)}")
        try:
            with _h5.open_group(src, "r") as source:
                with h5py.File(tmp, "w", track_order=_tracks_order(source)) as out:
                    reports = _repack_into(source, out, configuration, progress, pool)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return reports
    if not isinstance(dst, h5py.Group):
        raise _h5.TargetError(f"repack destination must be a file path or an open h5py "
                              f"File/Group, got {type(dst).__name__}")
    out = _h5.ensure_open(dst)
    if len(out) or len(out.attrs):
        raise NodeExistsError(f"{_h5.describe(out)} is not empty; repack writes into an empty "
                              f"group or a new file")
    with _h5.open_group(src, "r") as source:
        return _repack_into(source, out, configuration, progress, pool)


def _tracks_order(group: h5py.Group) -> bool:
    """Whether ``group`` keeps its links in creation order (a File's id is the file's, so the
    group is opened as ``.`` to read its own creation properties)."""
    gid = h5py.h5g.open(group.id, b".")
    return bool(gid.get_create_plist().get_link_creation_order())


def _address(obj: h5py.HLObject) -> tuple[int, int]:
    info = h5py.h5o.get_info(obj.id)
    return info.fileno, info.addr


def _resolve_plan(source: h5py.Group, configuration: Any
                  ) -> dict[tuple[int, int], DatasetConfiguration]:
    """Every dataset's configuration, by object address (a dataset reached by several hard
    links has one): the plan's entry (checked against the data) or the default. Raises before
    any write when the plan names a dataset ``source`` lacks."""
    if configuration is not None and not isinstance(configuration, BackendConfiguration):
        if not _h5.is_path(configuration):
            raise ConfigurationError(f"configuration must be a BackendConfiguration or the "
                                     f"path of a YAML plan, got {type(configuration).__name__}")
        configuration = BackendConfiguration.from_yaml(configuration)
    datasets = dict(iter_datasets(source))
    plan: dict[tuple[int, int], DatasetConfiguration] = {}
    if configuration is not None:
        for location, entry in configuration.items():
            dset = source.get(location)  # any hard-link name of a dataset will do
            if not isinstance(dset, h5py.Dataset) or dset.shape is None:
                raise ConfigurationError(
                    f"{_h5.describe(source, location)}: the plan names a dataset the file does "
                    f"not have; datasets there: {', '.join(list(datasets)[:5])}"
                    f"{' ...' if len(datasets) > 5 else ''}")
            entry.check_data(dset.shape, dset.dtype, _h5.describe(source, location))
            plan[_address(dset)] = entry
    for location, dset in datasets.items():
        key = _address(dset)
        if key not in plan:
            plan[key] = DatasetConfiguration(location, dset.dtype, dset.shape)
    return plan


def _repack_into(source: h5py.Group, out: h5py.Group, configuration: Any,
                 progress: bool | None, pool: ChunkPool) -> list[WriteReport]:
    plan = _resolve_plan(source, configuration)
    _check_references(source)
    total = sum(entry.full_size for entry in plan.values())  # each dataset once
    copier = _Copier(source, out, plan, pool)
    with progress_bar(total, f"repacking {os.path.basename(source.file.filename)}",
                      progress) as bar:
        copier.bar = bar
        copier.copied[_address(source)] = ""  # links back to the root stay links
        copier.copy_group(source, out, "")
        copier.finish()
    return copier.reports


def _check_references(source: h5py.Group) -> None:
    """Refuse region references (in datasets or attributes) before anything is written: they
    name a selection in a file, and carrying one over would leave it pointing at the source."""
    def check(where: str, dtype: np.dtype) -> None:
        if _has_refs(dtype, h5py.RegionReference):
            raise H5ForgeError(f"{where} holds region references, which repack cannot carry "
                               f"over; convert them to indices first")

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            check(_h5.describe(source, name), obj.dtype)
        for attr in obj.attrs:
            check(f"{_h5.describe(source, name)} attribute {attr!r}",
                  obj.attrs.get_id(attr).dtype)

    visit("", source)
    source.visititems(visit)


class _Copier:
    """One walk over the source: groups and links in place, datasets per plan, then object
    references and dimension scales once every target exists."""

    def __init__(self, source: h5py.Group, out: h5py.Group,
                 plan: dict[tuple[int, int], DatasetConfiguration], pool: ChunkPool):
        self.source, self.out, self.plan, self.pool = source, out, plan, pool
        self.reports: list[WriteReport] = []
        self.copied: dict[tuple[int, int], str] = {}  # object address -> location in out
        self.references: list[tuple[str, str | None]] = []  # (location, attribute or None)
        self.scaled: list[str] = []  # datasets with dimension scales attached
        self.bar = None

    def copy_group(self, group: h5py.Group, target: h5py.Group, location: str) -> None:
        self.copy_attrs(group, target, location)
        for name in group:
            link = group.get(name, getlink=True)
            child = f"{location}/{name}" if location else name
            if isinstance(link, h5py.SoftLink):
                target[name] = h5py.SoftLink(link.path)
                continue
            if isinstance(link, h5py.ExternalLink):
                target[name] = h5py.ExternalLink(link.filename, link.path)
                continue
            obj = group[name]
            key = _address(obj)
            if key in self.copied:  # another hard link to an object already copied
                location_there = self.copied[key]
                target[name] = self.out[location_there] if location_there else self.out
                continue
            self.copied[key] = child
            if isinstance(obj, h5py.Group):
                sub = target.create_group(name, track_order=_tracks_order(obj))
                self.copy_group(obj, sub, child)
            elif isinstance(obj, h5py.Dataset):
                self.copy_dataset(obj, target, name, child, key)
            else:  # a named datatype
                group.copy(obj, target, name)

    def copy_dataset(self, dset: h5py.Dataset, target: h5py.Group, name: str,
                     location: str, key: tuple[int, int]) -> None:
        if dset.shape is None:  # an empty dataspace (h5py.Empty)
            new = target.create_dataset(name, data=h5py.Empty(dset.dtype))
        else:
            entry = self.plan[key]
            kwargs = entry.h5py_kwargs()
            if dset.maxshape != dset.shape:
                kwargs["maxshape"] = dset.maxshape
                if kwargs["chunks"] is None:  # resizable datasets must stay chunked
                    kwargs["chunks"] = dset.chunks
            if dset.id.get_create_plist().fill_value_defined() == \
                    h5py.h5d.FILL_VALUE_USER_DEFINED:
                kwargs["fillvalue"] = dset.fillvalue
            plist = dset.id.get_create_plist()
            kwargs["track_order"] = bool(plist.get_attr_creation_order())
            new = target.create_dataset(name, shape=dset.shape, dtype=self.datatype(dset),
                                        **kwargs)
            if _has_refs(dset.dtype):
                self.references.append((location, None))
            else:
                report = copy_buffered(dset, new, entry, self.bar, self.pool)
                report.location = location
                self.reports.append(report)
        self.copy_attrs(dset, new, location)
        if any(len(dim) for dim in dset.dims) and "DIMENSION_LIST" in dset.attrs:
            self.scaled.append(location)

    def datatype(self, dset: h5py.Dataset) -> np.dtype | h5py.Datatype:
        """The dataset's type: its named datatype's copy when the dataset uses one that is
        already copied (named types are copied where the walk meets them), else a plain type."""
        tid = dset.id.get_type()
        if tid.committed():
            location = self.copied.get(_address(h5py.Datatype(tid)))
            if location:
                return self.out[location]
        return dset.dtype

    def copy_attrs(self, obj: h5py.HLObject, target: h5py.HLObject, location: str) -> None:
        for name in obj.attrs:
            if name in _SCALE_ATTRIBUTES:
                continue
            attr = obj.attrs.get_id(name)
            if _has_refs(attr.dtype):
                self.references.append((location, name))
                continue
            value = obj.attrs[name]
            if attr.shape is None:
                target.attrs.create(name, h5py.Empty(attr.dtype))
            else:
                target.attrs.create(name, value, shape=attr.shape, dtype=attr.dtype)

    def finish(self) -> None:
        for location, attribute in self.references:
            src = self.source[location] if location else self.source
            dst = self.out[location] if location else self.out
            if attribute is None:
                dst[...] = self.remap(src[...])
            else:
                attr = src.attrs.get_id(attribute)
                dst.attrs.create(attribute, self.remap(src.attrs[attribute]),
                                 shape=attr.shape, dtype=attr.dtype)
        for location in self.scaled:
            src, dst = self.source[location], self.out[location]
            for axis, dim in enumerate(src.dims):
                for scale in dim.values():
                    dst.dims[axis].attach_scale(self._target(scale))

    def _target(self, obj: h5py.HLObject) -> h5py.HLObject:
        """The copy in ``out`` of the source object ``obj``."""
        key = _address(obj)
        if key == _address(self.source):
            return self.out
        location = self.copied.get(key)
        if location is None:
            raise H5ForgeError(f"{_h5.describe(self.source)}: a reference points at {obj.name}, "
                               f"outside what is being repacked; repack the whole file")
        return self.out[location]

    def remap(self, value: Any) -> Any:
        """Object references into the source -> references to the same objects in ``out``."""
        if isinstance(value, h5py.Reference):
            return self._target(self.source.file[value]).ref if value else value
        if isinstance(value, np.ndarray):
            if value.dtype.names:
                out = value.copy()
                for field in value.dtype.names:
                    out[field] = self.remap(value[field])
                return out
            if value.dtype.kind == "O":
                flat = np.empty(value.size, dtype=object)
                flat[:] = [self.remap(v) for v in value.ravel()]
                return flat.reshape(value.shape)
        return value


def _has_refs(dtype: np.dtype, kind: type = h5py.Reference) -> bool:
    """Whether ``dtype`` holds references of ``kind`` (in compound fields and variable-length
    sequences too). Checked through h5py's metadata: numpy alone sees only ``object``."""
    if dtype.names:
        return any(_has_refs(dtype.fields[n][0], kind) for n in dtype.names)
    if h5py.check_ref_dtype(dtype) is kind:
        return True
    base = h5py.check_vlen_dtype(dtype)
    return isinstance(base, np.dtype) and _has_refs(base, kind)
