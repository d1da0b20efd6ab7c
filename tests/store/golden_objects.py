"""The objects stored in the golden files under tests/data (format version 1).

``python -m tests.store.golden_objects`` writes the files; it is run once per format version.
The files are committed and must keep loading to exactly these objects forever.
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import fractions
import pathlib
import uuid
import zoneinfo

import numpy as np

from tests.store import sample_types as st

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"


def experiment_record() -> dict:
    """A realistic record: metadata, trials as records, arrays, units-free signals."""
    rng = np.random.default_rng(7)
    return {
        "subject": {"id": "M12", "species": "Mus musculus", "weight_g": 23.5, "sex": None},
        "session_start": dt.datetime(2024, 5, 1, 9, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
        "duration": dt.timedelta(minutes=42, seconds=7),
        "trials": [{"number": i, "onset_s": 1.5 * i, "outcome": "hit" if i % 3 else "miss",
                    "licks": rng.integers(0, 5, size=3)} for i in range(12)],
        "lfp": rng.standard_normal((4, 500)).astype(np.float32),
        "channels": np.array(["CA1-a", "CA1-b", "CA3-a", "DG"]),
        "events": np.array(["2024-05-01T09:31", "2024-05-01T09:32"], "datetime64[s]"),
        "gains": (1.0, 2.0, 0.5),
        "tags": {"pilot", "awake"},
        "config": collections.OrderedDict([("filter", "bandpass"), ("band_hz", [1.0, 300.0])]),
        "notes": "Animal calm.\nElectrode 3 drifted.",
    }


def all_types() -> dict:
    shared = [1, 2]
    loop: list = ["loop"]
    loop.append(loop)
    return {
        "scalars": [None, True, 7, 2**100, -2.5, float("nan"), 1 - 1j, "", "ü/x", b"\x00b",
                    bytearray(b"ab"), ..., range(1, 9, 2), slice(None, 3)],
        "collections": [(), (1, "a"), st.Point(1, 2), collections.deque([1], maxlen=3),
                        {1: "a", (2, 3): "b"}, collections.defaultdict(list, {"k": [1]}),
                        frozenset({"x"}), set()],
        "stdlib": [dt.date(2020, 1, 2), dt.time(3, 4, 5), decimal.Decimal("1.10"),
                   fractions.Fraction(2, 3), uuid.UUID(int=5), pathlib.PurePosixPath("/a/b"),
                   st.Color.GREEN, st.Perm.R | st.Perm.X],
        "numpy": [np.arange(6, dtype=">i2").reshape(2, 3), np.asfortranarray(np.eye(3)),
                  np.float16(0.5), np.array(["a", "bc"]), np.zeros(2, [("x", "f4", (2,))]),
                  np.ma.MaskedArray([1, 2], mask=[False, True]),
                  np.array([1, "two"], dtype=object), np.timedelta64(3, "ms")],
        "objects": [st.Trial(1, "t", np.ones(2), ["x"]), st.Slotted(1, "p"), st.WithState(4)],
        "shared": {"a": shared, "b": shared},
        "loop": loop,
    }


GOLDEN = {"experiment_v1.h5": experiment_record, "all_types_v1.h5": all_types}


if __name__ == "__main__":  # pragma: no cover - run by hand once per format version
    import h5forge

    for name, make in GOLDEN.items():
        h5forge.dump(make(), DATA / name, overwrite=True)
        print("wrote", DATA / name)
