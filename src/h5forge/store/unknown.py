"""The placeholder for stored objects whose class cannot be found on load."""

from __future__ import annotations

from typing import Any

__all__ = ["UnknownObject"]


class UnknownObject:
    """A stored object whose class could not be resolved (module missing or untrusted, class
    renamed). It keeps everything the file held, so nothing is lost:

    * ``class_name`` -- the stored ``class`` attribute, e.g. ``"mylab.rig.Session"``;
    * ``state`` -- the loaded state: the ``instance_attributes`` of a user object, the members
      of any other group (a dict), or the data of a dataset;
    * ``attrs`` -- the node's other metadata attributes;
    * ``kind`` -- ``"object"``, ``"group"`` or ``"dataset"``: the layout it came from.

    Dumping an UnknownObject writes the same layout back, so a file can be loaded and saved
    again by a program that lacks the class. Resolve it with ``trusted_modules=[...]`` or
    ``h5forge.alias(class_name, NewClass)``.
    """

    __slots__ = ("class_name", "state", "attrs", "kind")

    def __init__(self, class_name: str, state: Any = None, attrs: dict[str, Any] | None = None,
                 kind: str = "object"):
        if kind not in ("object", "group", "dataset"):
            raise ValueError(f"kind must be 'object', 'group' or 'dataset', not {kind!r}")
        self.class_name = class_name
        self.state = state
        self.attrs = dict(attrs or {})
        self.kind = kind

    def __repr__(self) -> str:
        return f"UnknownObject({self.class_name!r}, kind={self.kind!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UnknownObject):
            return NotImplemented
        return (self.class_name, self.kind) == (other.class_name, other.kind) and \
            _equal(self.state, other.state)

    __hash__ = None  # mutable


def _equal(a: Any, b: Any) -> bool:
    try:
        result = a == b
        return bool(result.all()) if hasattr(result, "all") else bool(result)
    except (TypeError, ValueError):
        return a is b
