"""Module-level user types for the store tests (classes defined in functions cannot be found
again on load)."""

from __future__ import annotations

import dataclasses
import enum
from collections import namedtuple

import attrs

Point = namedtuple("Point", ["x", "y"])


class Color(enum.Enum):
    RED = "red"
    GREEN = (0, 255, 0)


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


@dataclasses.dataclass
class Trial:
    number: int
    label: str
    samples: object = None
    tags: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: int
    b: tuple


@attrs.define
class AttrsRun:
    name: str
    gain: float = 1.0


@attrs.frozen
class AttrsFrozen:
    x: int


class Plain:
    """A plain class whose __init__ must not be called on load."""

    init_calls = 0

    def __init__(self, value):
        Plain.init_calls += 1
        self.value = value
        self.children = []


class Slotted:
    __slots__ = ("a", "__private", "unset")

    def __init__(self, a, private):
        self.a = a
        self.__private = private

    def private(self):
        return self.__private


class WithState:
    def __init__(self, n):
        self.n = n
        self.cache = {"derived": n * 2}

    def __getstate__(self):
        return {"n": self.n}

    def __setstate__(self, state):
        self.n = state["n"]
        self.cache = {"derived": self.n * 2}


class Versioned:
    __h5forge_version__ = 2

    def __init__(self, full_name):
        self.full_name = full_name

    @classmethod
    def __h5forge_migrate__(cls, state, version):
        if version is None or version < 2:
            state = {"full_name": f"{state.pop('first')} {state.pop('last')}"}
        return state


class MyList(list):
    pass


class MyDict(dict):
    pass
