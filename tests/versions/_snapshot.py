"""Whole-history snapshots for the import and compaction tests: everything a user can read of
every version (data as stored bytes, dtypes, shapes, chunks, compression, fill values and
attributes), so two files can be compared version by version."""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

#: What a version's root reports about the version itself, not stored user attributes
#: (h5forge's and versioned-hdf5's bookkeeping).
VERSION_ATTRS = frozenset({"prev_version", "timestamp", "committed"})
#: versioned-hdf5's bookkeeping attributes on the datasets of a version.
PEER_DATASET_ATTRS = frozenset({"chunks", "raw_data"})


def value(data: Any) -> Any:
    """A comparable form of an array or attribute value: (dtype, shape, items or bytes)."""
    arr = np.asarray(data)
    if arr.dtype.kind == "O":
        items = [v.decode() if isinstance(v, bytes) else v for v in arr.ravel().tolist()]
        return ("object", arr.shape, items)
    if arr.dtype.kind == "U":  # a str attribute
        return ("str", arr.shape, arr.tolist())
    return (arr.dtype.str, arr.dtype.names, arr.shape, np.ascontiguousarray(arr).tobytes())


def attrs(obj: Any, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {k: value(obj.attrs[k]) for k in obj.attrs if k not in skip}


def tree(view: Any, *, peer: bool = False, storage: bool = True) -> dict[str, Any]:
    """``{path: (...)}`` of one version read through an API (h5forge's version view,
    versioned-hdf5's version group, or a plain h5py group). ``storage``: include the chunk
    shape (versioned-hdf5's virtual datasets have none: ``peer=True`` leaves it out)."""
    out: dict[str, Any] = {"/": ("group", attrs(view, VERSION_ATTRS))}

    def walk(group: Any, prefix: str) -> None:
        for key in group:
            obj = group[key]
            where = f"{prefix}/{key}"
            if hasattr(obj, "dtype"):
                data = obj[()]
                fill = obj.fillvalue
                layout = tuple(obj.chunks or ()) if storage and not peer else ()
                out[where] = ("dataset", str(obj.dtype), h5py.check_string_dtype(obj.dtype),
                              obj.shape, value(data), value(fill), layout,
                              attrs(obj, PEER_DATASET_ATTRS if peer else frozenset()))
            else:
                out[where] = ("group", attrs(obj))
                walk(obj, where)

    walk(view, "")
    return out


def history(vf: Any, *, storage: bool = True) -> dict[str, Any]:
    """Every version of an h5forge ``VersionedFile``: its record and its tree."""
    out: dict[str, Any] = {"__current__": vf.current_version, "__order__": list(vf.versions)}
    for name in vf.versions:
        info = vf.version_info(name)
        out[name] = (info["prev_version"], info["timestamp"], tree(vf[name], storage=storage))
    return out
