"""Random updates, appends and deletes on a stored tree agree with the same changes made to a
model dict, after every step (issue 14)."""

from __future__ import annotations

import copy
import os
import tempfile
import warnings

import h5py
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import h5forge

from .equality import assert_same

NAMES = st.text(alphabet="abkxyz_é", min_size=1, max_size=3)
SCALARS = st.one_of(st.integers(-2**40, 2**40), st.floats(allow_nan=False), st.booleans(),
                    st.none(), st.text(max_size=8), st.complex_numbers(allow_nan=False,
                                                                       max_magnitude=1e6))


def _values():
    leaf = st.one_of(
        SCALARS,
        st.lists(st.integers(-5, 5), max_size=5),                   # inline lists
        st.lists(st.integers(0, 9), min_size=65, max_size=70),      # packed datasets
        st.builds(lambda n: np.arange(n, dtype=np.float32), st.integers(0, 4)),
        st.lists(st.fixed_dictionaries({"k": st.integers(0, 3), "v": st.floats(0, 1)}),
                 min_size=2, max_size=4),                           # packed records
        st.tuples(st.integers(0, 3), st.text(max_size=2)),
        st.text(min_size=300, max_size=301),                        # a string dataset
    )
    return st.recursive(leaf, lambda inner: st.one_of(
        st.dictionaries(NAMES, inner, max_size=3), st.lists(inner, max_size=3)), max_leaves=5)


VALUES = _values()

class Sample:
    """A user object: its attributes are updated under ``instance_attributes``."""

    def __init__(self, name: str):
        self.name = name
        self.readings = [1.0, 2.0]


INITIAL = {
    "meta": {"subject": "M1", "gain": 2.5},
    "xs": [1, 2, 3],
    "packed": list(range(70)),
    "records": [{"k": i, "v": float(i)} for i in range(5)],
    "mixed": [{"a": 1}, "b", None],
    "byint": {1: "one", 2: [2]},
    "frames": [np.zeros(3), np.ones(3)],
    "empty": [],
    "sample": Sample("s1"),
}


#: Plain data only: stored as one packed tree (boxed at the root), which updates rewrite whole.
INITIAL_TREE = {
    "meta": {"subject": "M1", "gain": 2.5},
    "xs": [1, 2, 3],
    "nested": {"a": [[1], {"b": None}], "c": {}},
    "pairs": [(1, "a"), (2, "b")],
    "frames": [np.zeros(3), np.ones(3)],
    "empty": [],
}


def _containers(obj, path=()):
    """(path, container) for every dict and list reachable in the model."""
    out = []
    if type(obj) is Sample:  # its attribute dict, as the store addresses it
        return _containers(vars(obj), (*path, "instance_attributes"))
    if type(obj) in (dict, list):
        out.append((path, obj))
        items = obj.items() if type(obj) is dict else enumerate(obj)
        for key, value in items:
            if type(obj) is dict and type(key) is not str:
                continue  # addressed through values/<position> only, not descended
            out.extend(_containers(value, (*path, str(key))))
    return out


def _step(data, file, model):
    """Draw one change, make it to the file and to the model."""
    path, box = data.draw(st.sampled_from(_containers(model)))
    value = data.draw(VALUES)
    text = "/".join(path)
    if type(box) is dict:
        str_keys = [k for k in box if type(k) is str]
        other = [k for k in box if type(k) is not str]
        ops = ["add"] + (["replace", "delete"] if str_keys else []) + (["by-position"]
                                                                       if other else [])
        op = data.draw(st.sampled_from(ops))
        if op == "add":
            key = data.draw(NAMES.filter(lambda k: k not in box))
            h5forge.dump(value, file, f"{text}/{key}")
            box[key] = copy.deepcopy(value)
        elif op == "replace":
            key = data.draw(st.sampled_from(str_keys))
            h5forge.dump(value, file, f"{text}/{key}", overwrite=True)
            box[key] = copy.deepcopy(value)
        elif op == "delete":
            key = data.draw(st.sampled_from(str_keys))
            h5forge.delete(file, f"{text}/{key}")
            del box[key]
        else:
            position = data.draw(st.integers(0, len(box) - 1))
            key = list(box)[position]
            h5forge.dump(value, file, f"{text}/values/{position}", overwrite=True)
            box[key] = copy.deepcopy(value)
        return op
    ops = ["append", "append-by-index"] + (["replace", "delete"] if box else [])
    op = data.draw(st.sampled_from(ops))
    if op == "append":
        h5forge.append(value, file, text)
        box.append(copy.deepcopy(value))
    elif op == "append-by-index":
        h5forge.dump(value, file, f"{text}/{len(box)}")
        box.append(copy.deepcopy(value))
    else:
        i = data.draw(st.integers(0, len(box) - 1))
        if op == "replace":
            h5forge.dump(value, file, f"{text}/{i}", overwrite=True)
            box[i] = copy.deepcopy(value)
        else:
            h5forge.delete(file, f"{text}/{i}")
            del box[i]
    return op


#: H5FORGE_UPDATE_EXAMPLES=600 for a longer hunt (600 pass in about a minute).
EXAMPLES = int(os.environ.get("H5FORGE_UPDATE_EXAMPLES", "40"))


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data(), st.sampled_from(["nodes", "tree"]))
def test_random_updates_match_a_model(data, layout):
    with tempfile.TemporaryDirectory() as tmp:
        file = os.path.join(tmp, "model.h5")
        model = copy.deepcopy(INITIAL if layout == "nodes" else INITIAL_TREE)
        h5forge.dump(model, file)
        if layout == "tree":
            with h5py.File(file, "r") as f:
                assert f["value"].attrs["layout"] == "tree"
        for step in range(data.draw(st.integers(1, 8), label="steps")):
            op = _step(data, file, model)
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # an update never leaves a mismatch
                loaded = h5forge.load(file)
            assert_same(loaded, model, f"after step {step} ({op})")
