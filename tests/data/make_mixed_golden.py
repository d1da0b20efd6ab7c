"""Writes ``mixed_v2.h5``: the layouts format 2 added -- runs of builtin scalars of several
types packed as one table with a type column (a list, a tuple, a set, the values of a dict
with many keys, an object array, an all-None list) and records with such a column -- plus a
mixed list grown in place by ``append`` (a row written in place, then a rewrite for a type
the table had no column for).

    python tests/data/make_mixed_golden.py

Run once per format version. The file is committed; ``tests/store/test_mixed.py`` loads it
and compares it with :func:`expected`, so the steps and data here must never change.
"""

from __future__ import annotations

import pathlib

import numpy as np

GOLDEN = pathlib.Path(__file__).resolve().parent / "mixed_v2.h5"


def expected() -> dict:
    """What ``mixed_v2.h5`` loads as."""
    return {
        "values": [1, 2.5, None, "two", True, 1 + 2j, -(2**63), "é ✓"],
        "pair": (0, "zero"),
        "tags": {1, "one", None},
        "nones": [None, None, None],
        "scores": {f"s{i}": (i if i % 3 == 0 else (i / 2 if i % 3 == 1 else f"n{i}"))
                   for i in range(600)},
        "objects": np.array([1, "a", None], dtype=object),
        "trials": [{"n": i, "note": None if i % 2 else f"t{i}", "v": i if i % 3 else i * 0.5}
                   for i in range(5)],
        "grown": [1, "a", 2.0, "b", None],
    }


def write(path: pathlib.Path) -> None:
    import h5forge

    obj = expected()
    obj["grown"] = [1, "a"]
    h5forge.dump(obj, path)
    h5forge.append(2.0, path, "grown")  # no float column yet: the list is rewritten
    h5forge.append("b", path, "grown")  # a row written in place
    h5forge.append(None, path, "grown")


if __name__ == "__main__":
    GOLDEN.unlink(missing_ok=True)
    write(GOLDEN)
    print(f"wrote {GOLDEN}")
