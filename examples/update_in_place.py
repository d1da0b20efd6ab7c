"""Grow a stored lab record in place: add trials, append events, replace and delete members,
without rewriting the file -- and see that a change made with plain h5py still loads.

Run with ``python examples/update_in_place.py [OUT.h5]``.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import warnings
from pathlib import Path

import h5py
import numpy as np

import h5forge
from h5forge.errors import UpdateError
from h5forge.store import MemberMismatchWarning
from h5forge.store.inspect import tree_lines


@dataclasses.dataclass
class Subject:
    name: str
    weight_g: float


def main(path: Path) -> None:
    rng = np.random.default_rng(1)
    h5forge.dump({"subject": Subject("M12", 24.5), "trials": {}, "events": [],
                  "notes": ["session start"]}, path)

    # Day one: trials arrive one by one; each write touches only its own member.
    for i in range(3):
        h5forge.dump(rng.random(1000), path, f"trials/t{i}")
    for t in range(100):  # events: one packed dataset, appended to in place
        h5forge.append({"t": float(t), "channel": t % 4}, path, "events")
    h5forge.append("lick sensor replaced", path, "notes")

    # Corrections: replace a member, fix one field of one packed record, drop a bad trial.
    h5forge.dump(25.0, path, "subject/instance_attributes/weight_g", overwrite=True)
    h5forge.dump(3, path, "events/10/channel", overwrite=True)
    h5forge.delete(path, "trials/t1")

    record = h5forge.load(path)
    assert record["subject"] == Subject("M12", 25.0)
    assert list(record["trials"]) == ["t0", "t2"]
    assert len(record["events"]) == 100 and record["events"][10]["channel"] == 3
    assert record["notes"] == ["session start", "lick sensor replaced"]
    with h5py.File(path, "r") as f:  # still one table of records, now extendable
        print("events:", f["events"].dtype.names, f["events"].shape, f["events"].maxshape)

    # What a layout cannot express is refused before anything is written.
    try:
        h5forge.dump(1.0, path, "trials/t0/0", overwrite=True)  # inside a numpy array
    except UpdateError as exc:
        print("refused:", exc)

    # A colleague adds a dataset with plain h5py: the record still loads, with a warning.
    with h5py.File(path, "r+") as f:
        f["trials/manual"] = np.zeros(3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = h5forge.load(path)
    assert list(record["trials"]) == ["t0", "t2", "manual"]
    print("warned:", next(str(w.message) for w in caught
                          if issubclass(w.category, MemberMismatchWarning)))
    print("\n".join(tree_lines(path, depth=1)))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "record.h5")
