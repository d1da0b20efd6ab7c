"""Writes ``versioned_hdf5_v1.h5``: a small history made by the real versioned-hdf5 package.

    python tests/data/make_versioned_hdf5_golden.py

The file is committed (it was made with versioned-hdf5 2.6.0), so ``h5forge versions import``
is tested on a real peer file even where versioned-hdf5 is not installed;
``tests/versions/test_import.py`` also writes a fresh one with :func:`write_peer` when it is.
The expected content of every version comes from :func:`reference`, which replays the same
steps on plain h5py groups: it needs neither versioned-hdf5 nor h5forge.

The history: every dataset kind versioned-hdf5 stores (float/int, fixed and variable-length
strings, a compound type, a fill value, a sparse and an empty dataset, gzip, lzf and Blosc
compression, nested groups with attributes), changes of values, shapes (grow, shrink), a
dataset deleted and created again, a removed group (with a dataset in it), removed members, a
branch (``b1``, not made current) and a child of it whose timestamp is older than its parent's
(``b2``), a version with no parent (``z0``), an empty commit (``v5``), and a version deleted
with ``delete_versions`` (``tmp``: its child ``v4`` then names ``v3`` as its parent).
"""

from __future__ import annotations

import datetime as dt
import pathlib
from typing import Any, Callable

import h5py
import numpy as np

GOLDEN = pathlib.Path(__file__).resolve().parent / "versioned_hdf5_v1.h5"
UTC = dt.timezone.utc


def _t(day: int, micro: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, day, 8, 30, 15, micro, tzinfo=UTC)


def _blosc() -> dict[str, Any]:
    import hdf5plugin

    return dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))


def v1(g: h5py.Group) -> None:
    g.attrs["title"] = "golden history"
    g.attrs["n"] = 3
    x = g.create_dataset("x", data=np.arange(20.0), chunks=(4,), maxshape=(None,),
                         compression="gzip", compression_opts=3)
    x.attrs["unit"] = "m"
    x.attrs["scale"] = 2.5
    g.create_dataset("s", data=np.array([b"a", b"bb", b"ccc"], dtype=object),
                     dtype=h5py.string_dtype("ascii"), chunks=(2,), maxshape=(None,))
    g.create_dataset("u", data=np.array(["é", "naïve"], dtype=object),
                     dtype=h5py.string_dtype("utf-8"), chunks=(2,))
    g.create_dataset("fs", data=np.array([b"ab", b"cd", b"ef"], dtype="S2"), chunks=(2,))
    g.create_dataset("c", data=np.array([(1, 2.5), (3, 4.5), (5, 6.5)],
                                        dtype=[("a", "<i4"), ("b", "<f8")]), chunks=(2,))
    sparse = g.create_dataset("sparse", shape=(100,), dtype="i4", fillvalue=7, chunks=(10,),
                              maxshape=(None,))
    sparse[55] = 3
    g.create_dataset("empty", shape=(0,), dtype="f8", chunks=(5,), maxshape=(None,))
    g.create_dataset("nan", data=np.array([[np.nan, -0.0], [1.0, np.inf]]), chunks=(1, 2),
                     compression="lzf")
    g.create_dataset("packed", data=np.arange(1000, dtype="i8") % 7, chunks=(100,),
                     **_blosc())
    y = g.create_group("grp/sub").create_dataset("y", data=np.ones((3, 4)), chunks=(2, 2))
    y.attrs["kind"] = np.array([1, 2, 3], dtype="i2")
    g["grp"].attrs["note"] = "hello"


def v2(g: h5py.Group) -> None:
    g["x"][3] = 100.0
    g["x"].resize((30,))
    g["x"].attrs["unit"] = "km"
    del g["fs"]
    g["sparse"][5] = 1
    g["grp/sub/y"][0, 0] = -1.0
    g.create_dataset("later", data=np.arange(6, dtype="u1").reshape(2, 3), chunks=(1, 3))


def b1(g: h5py.Group) -> None:
    g["x"][0] = -1.0
    g["grp"].attrs["note"] = "branch"
    g.attrs["n"] = 4


def b2(g: h5py.Group) -> None:
    g["empty"].resize((3,))
    g["empty"][:] = [1.0, 2.0, 3.0]


def v3(g: h5py.Group) -> None:
    g["s"].resize((5,))
    g["s"][4] = b"eeeee"
    g["x"].resize((10,))
    del g["c"]
    g.create_dataset("c", data=np.array([(9, 9.5)], dtype=[("a", "<i4"), ("b", "<f8")]),
                     chunks=(2,), maxshape=(None,))
    g["packed"][500:600] = 1


def tmp(g: h5py.Group) -> None:
    g["grp/sub/y"][...] = 2.0


def v4(g: h5py.Group) -> None:
    del g["grp"]
    g["sparse"][5] = 7  # back to the fill value
    g.attrs["title"] = "after the deletion"


def v5(g: h5py.Group) -> None:
    """An empty commit."""


def z0(g: h5py.Group) -> None:
    g.create_dataset("q", data=np.arange(3), chunks=(3,))


#: (name, prev_version, make_current, timestamp, step), in the order they are committed.
HISTORY: list[tuple[str, str | None, bool, dt.datetime, Callable[[h5py.Group], None]]] = [
    ("v1", "", True, _t(1, 123456), v1),
    ("v2", "v1", True, _t(2, 1), v2),
    ("b1", "v1", False, _t(3), b1),
    ("b2", "b1", False, _t(1, 999), b2),  # older than its parent: only prev order is right
    ("v3", "v2", True, _t(4), v3),
    ("tmp", "v3", True, _t(5), tmp),
    ("v4", "tmp", True, _t(6), v4),
    ("v5", "v4", True, _t(7), v5),
    ("z0", "", False, _t(8), z0),
]
DELETED = ["tmp"]
#: Every version left, with its previous version and timestamp, after ``delete_versions``.
EXPECTED_PREV = {"v1": "__first_version__", "v2": "v1", "b1": "v1", "b2": "b1", "v3": "v2",
                 "v4": "v3", "v5": "v4", "z0": "__first_version__"}
EXPECTED_TIMESTAMPS = {name: stamp for name, _, _, stamp, _ in HISTORY if name not in DELETED}
EXPECTED_CURRENT = "v5"


def write_peer(path: str | pathlib.Path) -> None:
    """Make the history with versioned-hdf5 (needs it installed)."""
    from versioned_hdf5 import VersionedHDF5File, delete_versions

    with h5py.File(path, "w") as f:
        vf = VersionedHDF5File(f)
        for name, prev, make_current, stamp, step in HISTORY:
            with vf.stage_version(name, prev_version=prev, make_current=make_current,
                                  timestamp=stamp) as g:
                step(g)
        delete_versions(f, DELETED)


def reference() -> h5py.File:
    """The expected content: an in-memory h5py file with one group per remaining version,
    made by replaying :data:`HISTORY` on plain h5py groups (each a copy of its parent)."""
    out = h5py.File(f"reference-{id(object())}.h5", "w", driver="core", backing_store=False)
    for name, prev, _, _, step in HISTORY:
        if prev:
            out.copy(out[prev], name)
            out[name].attrs.clear()  # versioned-hdf5 starts every version's root attributes
        else:                        # empty (those of its members are copied)
            out.create_group(name)
        step(out[name])
    for name in DELETED:
        del out[name]
    return out


if __name__ == "__main__":
    write_peer(GOLDEN)
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")
