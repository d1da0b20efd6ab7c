"""Strict equality for round-trip tests: same type at every level, nan == nan, numpy dtypes,
shapes, memory order and masks equal, shared structure compared by position."""

from __future__ import annotations

import collections
import decimal
import enum
import math
import pathlib

import numpy as np


def assert_same(a, b, where="obj", _seen=None):
    _seen = {} if _seen is None else _seen
    assert type(a) is type(b), f"{where}: type {type(a)} != {type(b)}"
    key = id(a)
    if key in _seen:  # a cycle or shared node already compared
        assert _seen[key][1] is b, f"{where}: sharing differs"
        return
    if isinstance(a, (list, dict, set, np.ndarray, collections.deque)) or hasattr(a, "__dict__"):
        _seen[key] = (a, b)  # keeping a alive: a temporary's id must not be reused
    if isinstance(a, pathlib.PurePath):
        assert a == b, f"{where}: {a!r} != {b!r}"
        return
    if isinstance(a, enum.Enum):
        assert a is b, f"{where}: {a!r} is not {b!r}"
        return
    if isinstance(a, decimal.Decimal):
        assert str(a) == str(b), f"{where}: {a!r} != {b!r}"
        return
    if isinstance(a, np.ma.MaskedArray):
        assert_same(a.data, b.data, where + ".data", _seen)
        assert np.array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b)), where + ".mask"
        assert (a.mask is np.ma.nomask) == (b.mask is np.ma.nomask), where + ".nomask"
        assert_same(a.fill_value, b.fill_value, where + ".fill_value", _seen)
        return
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
        assert a.flags.f_contiguous == b.flags.f_contiguous or a.ndim < 2, f"{where}: order"
        if a.dtype.kind == "O":
            for i, (x, y) in enumerate(zip(a.ravel(), b.ravel())):
                assert_same(x, y, f"{where}.flat[{i}]", _seen)
        elif a.dtype.kind in "fc":
            assert np.array_equal(a, b, equal_nan=True), where
        elif a.dtype.kind in "VmM":
            assert a.tobytes() == b.tobytes(), where
        else:
            assert np.array_equal(a, b), where
        return
    if isinstance(a, np.generic):
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        if a.dtype.kind in "fc":
            assert np.array_equal(a, b, equal_nan=True), where
        elif a.dtype.kind == "V":
            assert a.tobytes() == b.tobytes(), where
        else:
            assert a == b or (np.isnat(a) and np.isnat(b)) if a.dtype.kind in "mM" else a == b, \
                where
        return
    if isinstance(a, float):
        assert (math.isnan(a) and math.isnan(b)) or a == b, f"{where}: {a!r} != {b!r}"
        return
    if isinstance(a, complex):
        assert_same(a.real, b.real, where + ".real")
        assert_same(a.imag, b.imag, where + ".imag")
        return
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), f"{where}: keys {list(a)} != {list(b)}"
        for (ka, va), (kb, vb) in zip(a.items(), b.items()):
            assert_same(ka, kb, f"{where}.key({ka!r})", _seen)
            assert_same(va, vb, f"{where}[{ka!r}]", _seen)
        if isinstance(a, collections.defaultdict):
            assert a.default_factory is b.default_factory, where + ".default_factory"
        _compare_dict_attrs(a, b, where, _seen)
        return
    if isinstance(a, (list, tuple, collections.deque)):
        assert len(a) == len(b), f"{where}: len {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]", _seen)
        if isinstance(a, collections.deque):
            assert a.maxlen == b.maxlen, where + ".maxlen"
        _compare_dict_attrs(a, b, where, _seen)
        return
    if isinstance(a, (set, frozenset)):
        assert a == b, f"{where}: {a!r} != {b!r}"
        return
    if hasattr(a, "__dict__") or hasattr(type(a), "__slots__"):
        state_a = _state(a)
        state_b = _state(b)
        assert_same(state_a, state_b, where + ".__state__", _seen)
        return
    assert a == b, f"{where}: {a!r} != {b!r}"
    if hasattr(a, "tzinfo"):
        assert a.tzinfo == b.tzinfo and a.fold == b.fold, f"{where}: tzinfo/fold"


def _compare_dict_attrs(a, b, where, seen):
    if hasattr(a, "__dict__"):
        assert_same(dict(vars(a)), dict(vars(b)), where + ".__dict__", seen)


def _state(obj):
    state = dict(getattr(obj, "__dict__", {}))
    for klass in type(obj).__mro__:
        for name in getattr(klass, "__slots__", ()):
            if hasattr(obj, name):
                state[name] = getattr(obj, name)
    return state
