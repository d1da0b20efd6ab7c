"""Writes ``tree_v3.h5``: format 3's packed trees -- a config-like nest of every value a tree
holds (None, bool, int, float, complex, short and long str, small arrays of several dtypes and
ranks, dicts, lists, tuples, empty ones), packed at the file root (boxed) and under a group
beside a big array, then changed in place (a member set, an item appended, one deleted), which
rewrites the tree.

    python tests/data/make_tree_golden.py

Run once per format version. The file is committed; ``tests/store/test_tree.py`` loads it and
compares it with :func:`expected`, so the steps and data here must never change.
"""

from __future__ import annotations

import pathlib

import numpy as np

GOLDEN = pathlib.Path(__file__).resolve().parent / "tree_v3.h5"


def config() -> dict:
    return {
        "name": "rig-3",
        "enabled": True,
        "seed": -(2**63),
        "gain": 0.25,
        "impedance": 1 - 2j,
        "notes": "é ✓ " * 40,  # longer than a fixed-length str: variable-length
        "empty": {"dict": {}, "list": [], "tuple": (), "str": ""},
        "filters": [{"kind": "bandpass", "band_hz": (300.0, 6000.0), "order": 4},
                    {"kind": "notch", "f_hz": 50.0, "q": None}],
        "geometry": {"shape": np.arange(6, dtype=np.int16).reshape(2, 3),
                     "origin": np.zeros(3, dtype=np.float32),
                     "mask": np.array([True, False]), "scalar": np.array(2.5),
                     "none": np.zeros((0, 2), dtype=np.uint8)},
        "channels": [("CA1", 0, 1.0), ("CA3", 1, 0.5)],
    }


def expected() -> dict:
    """What ``tree_v3.h5`` loads as."""
    cfg = config()
    cfg["gain"] = 0.5
    cfg["filters"].append({"kind": "highpass", "f_hz": 1.0})
    del cfg["channels"]
    return {"config": cfg, "data": {"trace": np.arange(200, dtype=np.float64),
                                    "meta": meta()}}


def meta() -> dict:
    """A nest beside a big array (packed on its own: the big array keeps its dataset)."""
    return {"units": "mV", "rate_hz": 30_000.0, "runs": [[1, 2], [3], {"skip": None}, ()]}


def write(path: pathlib.Path) -> None:
    import h5forge

    h5forge.dump({"config": config(), "data": {"trace": np.arange(200, dtype=np.float64),
                                               "meta": meta()}}, path)
    h5forge.dump(0.5, path, "config/gain", overwrite=True)
    h5forge.append({"kind": "highpass", "f_hz": 1.0}, path, "config/filters")
    h5forge.delete(path, "config/channels")


if __name__ == "__main__":
    GOLDEN.unlink(missing_ok=True)
    write(GOLDEN)
    print(f"wrote {GOLDEN}")
