"""Writes ``updated_v1.h5``: a tree grown by in-place updates (format 1): members added to a
dict (listed last in ``keys``), an inline member replaced by a dataset, a packed table of
records made extendable by ``append``, a list renumbered by ``delete``, a list that started
empty written packed.

    python tests/data/make_updated_golden.py

Run once per format version. The file is committed; ``tests/store/test_update.py`` loads it
and compares it with :func:`expected`, so the steps and data here must never change.
"""

from __future__ import annotations

import pathlib

import numpy as np

GOLDEN = pathlib.Path(__file__).resolve().parent / "updated_v1.h5"


def expected() -> dict:
    """What ``updated_v1.h5`` loads as."""
    return {
        "name": "run 7",
        "trials": {"t1": np.arange(5.0), "t3": np.arange(3, dtype=np.int16)},
        "n": np.arange(4),
        "events": [{"t": float(i), "ch": i % 3} for i in range(12)],
        "notes": ["b", "c"],
        "grown": [{"k": 0, "v": 0.5}, {"k": 1, "v": 1.5}],
        "comment": "added last",
    }


def write(path: pathlib.Path) -> None:
    import h5forge

    h5forge.dump({"name": "run 7", "trials": {"t1": np.arange(5.0), "t2": np.ones(2)}, "n": 3,
                  "events": [{"t": float(i), "ch": i % 3} for i in range(10)],
                  "notes": ["a", "b", "c", {"x": 1}], "grown": []}, path)
    h5forge.dump(np.arange(3, dtype=np.int16), path, "trials/t3")
    h5forge.delete(path, "trials/t2")
    h5forge.dump(np.arange(4), path, "n", overwrite=True)
    h5forge.append({"t": 10.0, "ch": 1}, path, "events")
    h5forge.append({"t": 11.0, "ch": 2}, path, "events")
    h5forge.delete(path, "notes/3")
    h5forge.delete(path, "notes/0")
    h5forge.append({"k": 0, "v": 0.5}, path, "grown")
    h5forge.append({"k": 1, "v": 1.5}, path, "grown")
    h5forge.dump("added last", path, "comment")


if __name__ == "__main__":
    GOLDEN.unlink(missing_ok=True)
    write(GOLDEN)
    print(f"wrote {GOLDEN}")
