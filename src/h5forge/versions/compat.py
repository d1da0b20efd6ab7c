"""versioned-hdf5's public names over :mod:`h5forge.versions`: switch by changing the import.

::

    # from versioned_hdf5 import VersionedHDF5File, delete_versions, modify_metadata
    from h5forge.versions.compat import VersionedHDF5File, delete_versions, modify_metadata

    with h5py.File("data.h5", "a") as f:
        vf = VersionedHDF5File(f)
        with vf.stage_version("r1") as g:
            g["values"] = np.arange(10)
        vf["r1"]["values"][:]; vf[-1]; vf[datetime(..., tzinfo=timezone.utc)]
        delete_versions(f, ["r0"])

Same names, signatures and behaviours as versioned-hdf5 2.x's public API (``api.py`` and
``replay.py``): :class:`VersionedHDF5File` (``f``, ``closed``, ``current_version``,
``versions``, ``stage_version``, ``get_version_by_name``, ``get_version_by_timestamp``,
``get_diff``, ``del vf[name]``, ``close``), :func:`delete_versions` / ``delete_version``,
:func:`modify_metadata`, :func:`recreate_dataset` and :data:`TIMESTAMP_FMT`. Errors are the
built-in types versioned-hdf5 raises (``ValueError``, ``KeyError``, ``IndexError``,
``TypeError``), as h5forge errors that derive from them.

The file layout is h5forge's, not versioned-hdf5's (a plain copy of the current version at the
root, history under ``/_h5forge_versions``): code that reads ``f["_version_data"]`` directly
does not carry over. Convert existing versioned-hdf5 files with
``h5forge versions import``. Differences are listed in the README.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import h5py
import numpy as np

from h5forge.errors import MissingDependencyError, TargetError, VersionError
from h5forge.versions.chunks import chunk_box, read_map
from h5forge.versions.file import FIRST_VERSION, TIMESTAMP_FORMAT, VersionedFile
from h5forge.versions.rewrite import NewDataset, modified, rewrite_dataset
from h5forge.versions.staging import _user_attrs
from h5forge.versions.views import VersionDataset, VersionGroup

__all__ = ["VersionedHDF5File", "delete_versions", "delete_version", "modify_metadata",
           "recreate_dataset", "TIMESTAMP_FMT", "DeleteByNameError"]

#: The format of the ``timestamp`` attribute of every version (UTC), as versioned-hdf5's.
TIMESTAMP_FMT = TIMESTAMP_FORMAT

_UNSET: Any = object()


class DeleteByNameError(VersionError, NotImplementedError):
    """``del vf[key]`` with a key that is not a version name (versioned-hdf5 raises
    NotImplementedError there)."""


class VersionedHDF5File:
    """versioned-hdf5's ``VersionedHDF5File(f)`` over an open ``h5py.File`` or group.

    ``f`` stays the caller's: :meth:`close` ends this object, not the file. Several objects
    over one file share one state, as they do in versioned-hdf5.
    """

    def __init__(self, f: h5py.File | h5py.Group):
        if not isinstance(f, h5py.Group):
            raise TargetError(f"VersionedHDF5File takes an open h5py.File or h5py.Group, not "
                              f"{type(f).__name__}")
        self.f = f
        self._vf = VersionedFile(f)

    @property
    def versioned_file(self) -> VersionedFile:
        """The h5forge object underneath (all of h5forge's API: diff, export, ...)."""
        return self._vf

    @property
    def closed(self) -> bool:
        return self._vf.closed

    def close(self) -> None:
        """End this object (the h5py file stays open); ``f`` is gone, as in versioned-hdf5."""
        self._vf.close()
        self.__dict__.pop("f", None)

    def __repr__(self) -> str:
        if self.closed:
            return "<Closed VersionedHDF5File>"
        return f'<VersionedHDF5File object "{self.f.file.filename}" (mode {self.f.file.mode})>'

    @property
    def current_version(self) -> str:
        return self._vf.current_version

    @current_version.setter
    def current_version(self, name: str) -> None:
        self._vf.current_version = name

    @property
    def versions(self) -> list[str]:
        """The version names (h5forge: in commit order)."""
        return self._vf.versions

    def __iter__(self) -> Iterator[str]:
        return iter(self._vf.versions)

    def __getitem__(self, item: Any) -> VersionGroup:
        return self._vf[item]

    def __delitem__(self, name: str) -> None:
        if not isinstance(name, str):
            raise DeleteByNameError(f"del vf[{name!r}]: delete a version by its name (a str); "
                                    f"for an index or a time, del vf[vf[key].version]")
        if name not in self._vf:
            raise KeyError(name)
        self._vf.delete_versions([name])

    def get_version_by_name(self, version: str) -> VersionGroup:
        if version.startswith("/"):
            raise VersionError(f"version names cannot start with '/': {version!r}")
        return self._vf[version]

    def get_version_by_timestamp(self, timestamp: Any, exact: bool = False) -> VersionGroup:
        return self._vf.get_version_by_timestamp(timestamp, exact=exact)

    def stage_version(self, version_name: str, prev_version: str | None = None,
                      make_current: bool = True, timestamp: Any = None):
        """A context manager yielding the group to build version ``version_name`` in
        (``prev_version``: None for the current version, ``""`` for none)."""
        return self._vf.stage_version(version_name, prev_version=prev_version,
                                      make_current=make_current, timestamp=timestamp)

    def get_diff(self, name: str, version1: str, version2: str) -> dict[Any, tuple]:
        """``{chunk region: (data in version1 or None, data in version2 or None)}`` for every
        chunk of dataset ``name`` that differs; regions are ``ndindex.Tuple`` of slices."""
        try:
            import ndindex
        except ImportError:
            raise MissingDependencyError("get_diff returns ndindex.Tuple keys, as "
                                         "versioned-hdf5 does: pip install ndindex") from None
        d1, d2 = self._vf[version1][name], self._vf[version2][name]
        if not isinstance(d1, VersionDataset) or not isinstance(d2, VersionDataset):
            raise VersionError(f"{name} is a group, not a dataset")
        r1, r2 = _chunk_regions(d1), _chunk_regions(d2)
        diff: dict[Any, tuple] = {}
        for bounds, slot in r2.items():
            region = tuple(slice(a, b, 1) for a, b in bounds)
            if bounds not in r1:
                diff[ndindex.Tuple(*region)] = (None, d2[region])
            elif r1[bounds] != slot:
                diff[ndindex.Tuple(*region)] = (d1[region], d2[region])
        for bounds in r1:
            if bounds not in r2:
                region = tuple(slice(a, b, 1) for a, b in bounds)
                diff[ndindex.Tuple(*region)] = (d1[region], None)
        return diff


def _chunk_regions(dataset: VersionDataset) -> dict[tuple, tuple[str, int]]:
    """``{((start, stop) per axis) of one chunk: (pool, slot)}``: equal content, equal slot."""
    meta = dataset.meta
    slots = read_map(dataset._node, dataset._tree.state.map_cache)
    if not meta.shape:
        return {(): (meta.pool, int(slots[()]))}
    return {tuple((b.start, min(b.stop, n)) for b, n in zip(chunk_box(index, meta.chunks),
                                                            meta.shape)):
            (meta.pool, int(slots[index])) for index in np.ndindex(*slots.shape)}


def _versioned(f: VersionedHDF5File | VersionedFile | h5py.Group) -> tuple[VersionedFile, bool]:
    """The VersionedFile behind ``f``, and whether it was made here (then it is closed)."""
    if isinstance(f, VersionedHDF5File):
        return f._vf, False
    if isinstance(f, VersionedFile):
        return f, False
    if isinstance(f, h5py.Group):
        return VersionedFile(f), True
    raise TargetError(f"expected a VersionedHDF5File or an open h5py.File, not "
                      f"{type(f).__name__}")


def delete_versions(f: VersionedHDF5File | h5py.File, versions_to_delete: str | Iterable[str]
                    ) -> None:
    """Delete versions and the chunks only they use (versioned-hdf5's function)."""
    vf, made = _versioned(f)
    try:
        names = [versions_to_delete] if isinstance(versions_to_delete, str) else \
            list(versions_to_delete)
        if FIRST_VERSION in names:
            raise VersionError("Cannot delete first version")
        for name in names:
            if name not in vf:
                raise VersionError(f"Version {name!r} does not exist")
        vf.delete_versions(names)
    finally:
        if made:
            vf.close()


#: versioned-hdf5's older name.
delete_version = delete_versions


def modify_metadata(f: VersionedHDF5File | h5py.File, dataset_name: str, *, chunks: Any = None,
                    dtype: Any = None, fillvalue: Any = None, compression: Any = _UNSET,
                    compression_opts: Any = _UNSET, scaleoffset: Any = _UNSET,
                    shuffle: Any = _UNSET, fletcher32: Any = _UNSET) -> None:
    """Change a dataset's chunks, dtype, fill value or filters in every version holding it
    (versioned-hdf5's function). Values equal to the old fill value take the new one; an
    omitted filter keeps its setting, ``compression=None`` removes compression."""
    filters = {k: v for k, v in (("compression", compression),
                                 ("compression_opts", compression_opts),
                                 ("scaleoffset", scaleoffset), ("shuffle", shuffle),
                                 ("fletcher32", fletcher32)) if v is not _UNSET}
    vf, made = _versioned(f)
    try:
        rewrite_dataset(vf, dataset_name, lambda view, version: modified(
            view, chunks=chunks, dtype=dtype, fillvalue=fillvalue, filters=filters))
    finally:
        if made:
            vf.close()


def recreate_dataset(f: VersionedHDF5File | h5py.File, name: str, newf: Any = None,
                     callback: Callable[[Any, str], Any] | None = None) -> None:
    """Rewrite dataset ``name`` in every version through ``callback(dataset, version_name)``
    (versioned-hdf5's function): return the dataset to keep (the one given, an array, or a
    dataset of a stage), or None to delete it from that version.

    h5forge rewrites in place: ``newf`` (versioned-hdf5's temporary group) must be None or the
    same file as ``f``."""
    vf, made = _versioned(f)
    try:
        if newf is not None and not (isinstance(newf, h5py.Group) and
                                     newf.file == vf.file):
            raise VersionError("recreate_dataset rewrites the dataset in place in h5forge; "
                               "pass newf=None")

        def rewrite(view: VersionDataset, version: str) -> NewDataset | None:
            result = view if callback is None else callback(view, version)
            if result is None:
                return None
            if isinstance(result, VersionDataset):
                meta, attrs = result.meta.copy(), dict(result.attrs)
            elif hasattr(result, "meta") and hasattr(result, "attrs"):  # a staged dataset
                meta, attrs = result.meta.copy(), dict(result.attrs)
            else:
                data = np.asarray(result)
                meta = view.meta.copy()
                meta.dtype, meta.shape = data.dtype, data.shape
                meta.maxshape = (None,) * data.ndim
                if data.ndim != len(view.meta.chunks):
                    raise VersionError(f"{name}: the callback changed the rank; give a "
                                       f"dataset with chunks for it")
                attrs = _user_attrs(view._node)
            meta.depth = 0
            return NewDataset(meta, result[()], attrs)

        rewrite_dataset(vf, name, rewrite, per_version=callback is not None)
    finally:
        if made:
            vf.close()

