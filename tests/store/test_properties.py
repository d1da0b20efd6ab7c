"""Property tests: any nested tree of builtins and numpy arrays round-trips exactly."""

from __future__ import annotations

import string

import h5py
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import h5forge
from tests.store.equality import assert_same

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.complex_numbers()
    | st.text() | st.binary(max_size=20)
    | st.text(alphabet=string.printable + "/.\x00é漢", max_size=10)
)
dtypes = (hnp.boolean_dtypes() | hnp.integer_dtypes() | hnp.unsigned_integer_dtypes()
          | hnp.floating_dtypes() | hnp.complex_number_dtypes() | hnp.byte_string_dtypes()
          | hnp.unicode_string_dtypes() | hnp.datetime64_dtypes() | hnp.timedelta64_dtypes())
arrays = hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
numpy_scalars = arrays.filter(lambda a: a.size > 0).map(lambda a: a.ravel()[0])
hashables = st.recursive(scalars.filter(lambda x: x == x), lambda c: st.tuples(c, c)
                         | st.frozensets(c, max_size=3), max_leaves=4)
leaves = scalars | arrays | numpy_scalars
trees = st.recursive(
    leaves,
    lambda children: (st.lists(children, max_size=5) | st.tuples(children, children)
                      | st.dictionaries(st.text(max_size=8), children, max_size=5)
                      | st.dictionaries(hashables, children, max_size=4)
                      | st.sets(hashables, max_size=4)
                      | st.lists(st.fixed_dictionaries({"a": st.integers(-5, 5),
                                                        "b": st.text(max_size=3)}),
                                 min_size=2, max_size=4)),
    max_leaves=20,
)

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(obj=trees)
def test_any_tree_roundtrips(obj, tmp_path):
    path = tmp_path / "prop.h5"
    h5forge.dump(obj, path, overwrite=True)
    assert_same(obj, h5forge.load(path))


@SETTINGS
@given(obj=trees)
def test_any_tree_roundtrips_inside_a_group(obj, tmp_path):
    path = tmp_path / "group.h5"
    with h5py.File(path, "w") as f:
        f["unrelated"] = [1, 2, 3]
        h5forge.dump(obj, f, "mine/obj")
        assert_same(obj, h5forge.load(f, "mine/obj"))
        assert f["unrelated"][()].tolist() == [1, 2, 3]
