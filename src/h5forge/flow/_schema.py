"""One checker for the YAML sections of a flow configuration, driven by their dataclasses.

A section is a dataclass whose YAML keys are the fields declared with :func:`key`; its other
fields (a stage's ``name``, where it comes from) are filled by the caller. :func:`check` walks
a parsed YAML value against a type -- ``str``, ``bool``, ``int``, ``float``, ``Any``,
``X | None``, ``Literal[...]``, ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]``,
``Annotated[X, validator, ...]`` or such a dataclass -- and raises a
:class:`~h5forge.errors.FlowConfigError` whose message starts with the file and the key
(``pipeline.yaml: stages[0] 's': requires[1]: 'path'[0] must be a non-empty string, not int 3``)
and says what was expected and what to do. What is checked across sections (names a section
refers to, names used twice) stays with :func:`h5forge.flow.config.parse_config`.

Message shapes, each ``<where>: <what>``:

- a value of the wrong type: ``'key' must <expected>, not <type> <value>`` (``expected`` is
  derived from the type, or given by :func:`key`);
- a key the dataclass does not declare: ``unknown key 'x' (known: ...); did you mean ...?``;
- a required key absent or null: ``missing 'key' (<doc>)``;
- a key of a ``dict`` key that is not a string: ``key: key 1 is not a string (<doc>)``;
- an element of a list of sections is located as ``key[i]``, one of a list of scalars is named
  ``'key'[i]``, a value of a ``dict`` key ``key 'name'`` (``frames 'image'``).

A key written as ``null`` reads as absent when its type admits ``None`` or its default is an
empty collection; elsewhere (a ``bool`` default, a default taken from another key) ``null`` is
a wrong value, not a silent default.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, NamedTuple, Union

from h5forge.errors import FlowConfigError

__all__ = ["Shape", "Validator", "check", "key", "type_name"]

#: A check beyond the type, for :func:`key` or inside ``Annotated[...]``: called as
#: ``validator(value, where, ref)`` (``ref`` names the value, e.g. ``'path'[1]``), it returns the
#: value to keep or raises :class:`~h5forge.errors.FlowConfigError`.
Validator = Callable[[Any, str, str], Any]

_META = "h5forge.flow.key"


class Shape(NamedTuple):
    """How a section dataclass reads from YAML, as its class attribute ``yaml_shape``."""

    #: What a value that is not a mapping must be, after ``must`` (``be a mapping with ...``).
    expected: str
    #: ``(field, type, noun)``: a bare string is the mapping ``{field: string}``, the string
    #: checked against ``type`` and named ``noun`` in messages (a require: ``- hits``).
    scalar: tuple[str, Any, str] | None = None
    #: A key whose string value names the entry in its location (``resources[0] 'Geometry'``).
    title: str | None = None


@dataclasses.dataclass(frozen=True)
class _Key:
    """What :func:`key` was told about a field (stored in the field's metadata)."""

    doc: str | None
    expected: str | None = None
    check: Validator | None = None
    nonempty: str | bool = False
    one: bool = False
    default_from: str | None = None
    gt: float | None = None
    ge: float | None = None


_PLAIN = _Key(None)


def key(doc: str | None = None, *, default: Any = dataclasses.MISSING,
        default_factory: Any = dataclasses.MISSING, expected: str | None = None,
        check: Validator | None = None, nonempty: str | bool = False, one: bool = False,
        default_from: str | None = None, gt: float | None = None,
        ge: float | None = None) -> Any:
    """Declare a dataclass field as a YAML key (a :func:`dataclasses.field` with metadata).

    ``doc`` says what the key is; a required key that is absent is reported as
    ``missing 'key' (<doc>)`` (without ``doc``: as a wrong value, with ``expected``), and a
    ``dict`` key's own keys that are not strings as ``key 1 is not a string (<doc>)``.
    ``expected`` replaces the text derived from the type after ``must`` (``be a list``).
    ``check`` runs after the type check. ``nonempty`` refuses an empty list or mapping: with
    the text after the key (``is empty (name ...)``), or ``True`` to say ``expected``.
    ``one`` reads a single string as a one-element list. ``default_from`` names the key whose
    value an absent key takes. ``gt`` / ``ge`` bound a number (the message says ``expected``).
    """
    info = _Key(doc, expected, check, nonempty, one, default_from, gt, ge)
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={_META: info})


def type_name(value: Any) -> str:
    """The YAML-ish name of a value's type for messages (``null`` for ``None``)."""
    return "null" if value is None else type(value).__name__


def check(value: Any, tp: Any, where: str, name: str | None = None, *, noun: str = "",
          expected: str | None = None, context: Mapping[str, Any] | None = None) -> Any:
    """Check ``value`` (parsed YAML) against the type ``tp``; return it converted.

    ``where`` starts every message (the file and the enclosing key, ``pipeline.yaml: flow``);
    ``name`` is the value's key inside it (``source``), or ``noun`` names the value when it has
    no key (``a stage``). ``expected`` replaces the text derived from the type. Dataclass
    fields that are not YAML keys take their values from ``context`` by name; one named
    ``where`` gets the entry's location.
    """
    ref = f"'{name}'" if name is not None else noun
    info = _Key(None, expected) if expected is not None else _PLAIN
    return _value(value, tp, where, name, ref, info, context or {})


# --------------------------------------------------------------------------------------------


def _fail(where: str, ref: str, text: str) -> typing.NoReturn:
    raise FlowConfigError(f"{where}: {ref} {text}" if ref else f"{where}: {text}")


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return _describe(args[0])
    if origin in (Union, types.UnionType):
        return _describe(next(a for a in args if a is not type(None)))
    if origin is Literal:
        return "be one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple):
        return "be a list of strings" if _describe(args[0]) == _describe(str) else "be a list"
    if origin is dict:
        return "be a mapping"
    if dataclasses.is_dataclass(tp):
        return tp.yaml_shape.expected
    return {str: "be a non-empty string", bool: "be true or false", int: "be an integer",
            float: "be a number"}.get(tp, f"be {getattr(tp, '__name__', tp)}")


@functools.cache
def _fields(cls: type) -> tuple[tuple[dataclasses.Field, Any, _Key | None], ...]:
    """A section's fields with their resolved types and :func:`key` data (None: not a key)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple((f, hints[f.name], f.metadata.get(_META)) for f in dataclasses.fields(cls))


@functools.cache
def _keys(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f, _, info in _fields(cls) if info is not None)


def _nullable(f: dataclasses.Field, tp: Any) -> bool:
    """Whether ``null`` reads as the default: an empty collection, or a type admitting None."""
    if f.default_factory is not dataclasses.MISSING:
        return True
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


@functools.cache
def _form(tp: Any) -> tuple[Any, tuple]:
    """``tp``'s origin (``list``, ``Union``, ...; a dataclass stands for itself) and args."""
    origin = typing.get_origin(tp)
    if origin is types.UnionType:
        origin = Union
    if origin is None and dataclasses.is_dataclass(tp):
        origin = dataclasses.dataclass
    return origin, typing.get_args(tp)


def _value(value: Any, tp: Any, where: str, name: str | None, ref: str, info: _Key,
           context: Mapping[str, Any]) -> Any:
    origin, args = _form(tp)

    def wrong() -> typing.NoReturn:
        _fail(where, ref, f"must {info.expected or _describe(tp)}, not {type_name(value)} "
                          f"{value!r}")

    def collection(kind: type) -> None:
        """A list or a mapping: of that kind, and not empty when the key says so."""
        if not isinstance(value, kind):
            wrong()
        if not value and info.nonempty:
            if info.nonempty is True:
                wrong()
            _fail(where, ref, info.nonempty)

    if origin is Annotated:
        value = _value(value, args[0], where, name, ref, info, context)
        for extra in args[1:]:
            if callable(extra):
                value = extra(value, where, ref)
        return value
    if origin is Union:
        others = [a for a in args if a is not type(None)]
        if len(others) != 1 or len(others) == len(args):
            raise TypeError(f"only X | None unions are supported, not {tp}")
        return None if value is None else _value(value, others[0], where, name, ref, info,
                                                  context)
    if origin is Literal:
        if not any(value == a and type(value) is type(a) for a in args):
            wrong()
    elif origin in (list, tuple):
        if info.one and isinstance(value, str):  # a single value, named as the key itself
            value = [_value(value, args[0], where, None, ref, _PLAIN, context)]
        else:
            collection(list)
            value = _items(value, args[0], where, name, ref, context)
        if origin is tuple:
            value = tuple(value)
    elif origin is dict:
        collection(Mapping)
        out = {}
        label = name if name is not None else ref
        for k, v in value.items():
            if not isinstance(k, str) or not k:
                problem = "is empty" if k == "" else "is not a string"
                doc = f" ({info.doc})" if info.doc else ""
                raise FlowConfigError(f"{where}: {label}: key {k!r} {problem}{doc}")
            out[k] = _value(v, args[1], where, None, f"{label} {k!r}", _PLAIN, context)
        value = out
    elif origin is dataclasses.dataclass:
        value = _section(value, tp, where, ref, context)
    elif tp is Any:
        pass
    elif tp is str:
        if not isinstance(value, str) or not value.strip():
            wrong()
    elif tp is bool:
        if not isinstance(value, bool):
            wrong()
    elif tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float) if tp is float else int):
            wrong()
        if (info.gt is not None and value <= info.gt) or (info.ge is not None and value < info.ge):
            wrong()
        value = tp(value)
    else:
        raise TypeError(f"unsupported type in a configuration section: {tp!r}")
    if info.check is not None:
        value = info.check(value, where, ref)
    return value


def _items(value: list, tp: Any, where: str, name: str | None, ref: str,
           context: Mapping[str, Any]) -> list:
    if _form(tp)[0] is dataclasses.dataclass:  # a list of sections: each located as key[i]
        at = f"{where}: {name}" if name is not None else where
        return [_value(v, tp, f"{at}[{i}]", None, "", _PLAIN, context)
                for i, v in enumerate(value)]
    return [_value(v, tp, where, None, f"{ref}[{i}]", _PLAIN, context)
            for i, v in enumerate(value)]


def _section(value: Any, cls: type, where: str, ref: str, context: Mapping[str, Any]) -> Any:
    shape: Shape = cls.yaml_shape
    if shape.scalar is not None and isinstance(value, str):
        field, tp, noun = shape.scalar
        value = {field: _value(value, tp, where, None, noun, _PLAIN, context)}
    if not isinstance(value, Mapping):
        _fail(where, ref, f"must {shape.expected}, not {type_name(value)} {value!r}")
    if shape.title is not None and isinstance(value.get(shape.title), str):
        where = f"{where} {value[shape.title]!r}"
    known = _keys(cls)
    for k in value:
        if k not in known:
            close = difflib.get_close_matches(k, known, n=1) if isinstance(k, str) else []
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise FlowConfigError(f"{where}: unknown key {k!r} (known: {', '.join(known)}){hint}")
    kwargs: dict[str, Any] = {}
    for f, tp, info in _fields(cls):
        if info is None:
            if f.name == "where":
                kwargs["where"] = where
            elif f.name in context:
                kwargs[f.name] = context[f.name]
            continue
        raw = value.get(f.name)
        if raw is None:
            required = (f.default is dataclasses.MISSING and info.default_from is None
                        and f.default_factory is dataclasses.MISSING)
            if required and info.doc is not None:
                raise FlowConfigError(f"{where}: missing '{f.name}' ({info.doc})")
            if not required and f.name not in value:
                if info.default_from not in kwargs:
                    continue  # the dataclass default
                raw = kwargs[info.default_from]
            elif not required and _nullable(f, tp):
                continue
        kwargs[f.name] = _value(raw, tp, where, f.name, f"'{f.name}'", info, context)
    return cls(**kwargs)
