"""Unit text shared by the units and neo codecs: checking a stored ``units`` attribute is a
plain unit expression before any library parses it, and the quantities package's unit text.
A helper module, not a codec: it registers nothing."""

from __future__ import annotations

import re
from typing import Any

from h5forge.errors import CodecError, CorruptFileError

__all__ = ["check_unit_text", "quantities_units", "quantities_text", "known_units",
           "clear_caches"]
#: Longest unit text read from a file (the longest real ones are a few dozen characters).
UNIT_TEXT_MAX = 1024


# -- unit text -----------------------------------------------------------------------------------
_TOKEN = re.compile(r"""\s*(?:
    (?P<pow>\*\*|\^)
  | (?P<op>[*/·])
  | (?P<open>\()
  | (?P<close>\))
  | (?P<num>[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)
  | (?P<name>[^\W\d]\w*|%)
  | (?P<minus>-)
)""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos, end = [], 0, len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"unexpected character {text[pos:].strip()[:1]!r}")
        out.append((match.lastgroup, match.group(match.lastgroup)))
        pos = match.end()
    return out


class _UnitParser:
    """Checks that a unit text is a product/quotient of unit names and numbers, each optionally
    raised to a plain numeric exponent. Nothing else (no calls, attributes, indexing, and no
    number raised to a power, so no ``10**10**10``) reaches a library's own parser."""

    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self, kind: str) -> str:
        if self.peek() != kind:
            found = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "the end"
            raise ValueError(f"expected {kind}, found {found!r}")
        self.pos += 1
        return self.tokens[self.pos - 1][1]

    def parse(self) -> None:
        self.expr(0)
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.pos][1]!r}")

    def expr(self, depth: int) -> None:
        if depth > 8:
            raise ValueError("too deeply nested")
        self.term(depth)
        while self.peek() == "op":
            self.take("op")
            self.term(depth)

    def term(self, depth: int) -> None:
        kind = self.peek()
        if kind == "name":
            name = self.take("name")
            if name.startswith("__"):
                raise ValueError(f"{name!r} is not a unit name")
        elif kind == "num":
            self.take("num")
            if self.peek() == "pow":
                raise ValueError("a number cannot be raised to a power")
            return
        else:
            self.take("open")
            self.expr(depth + 1)
            self.take("close")
        if self.peek() == "pow":
            self.take("pow")
            self.exponent()

    def exponent(self) -> None:
        parens = self.peek() == "open"
        if parens:
            self.take("open")
        if self.peek() == "minus":
            self.take("minus")
        self.take("num")
        if parens:
            if self.peek() == "op":  # a fraction: (1/3)
                if self.take("op") != "/":
                    raise ValueError("an exponent is a number or a fraction")
                self.take("num")
            self.take("close")


def check_unit_text(text: Any, path: str) -> str:
    """The ``units`` attribute of a stored quantity, checked to be a plain unit expression."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptFileError(f"{path}: 'units' attribute is not UTF-8 text") from None
    if not isinstance(text, str):
        raise CorruptFileError(f"{path}: 'units' attribute must be a string, found "
                               f"{type(text).__name__}")
    if not text.strip() or len(text) > UNIT_TEXT_MAX:
        raise CorruptFileError(f"{path}: 'units' attribute {text[:40]!r} is empty or too long")
    try:
        _UnitParser(text).parse()
    except ValueError as exc:
        raise CorruptFileError(f"{path}: 'units' attribute {text!r} is not a unit expression "
                               f"({exc})") from None
    return text


# -- quantities ----------------------------------------------------------------------------------
# quantities parses a unit text with Python's compiler (registry lookups cost tens of
# microseconds each, and comparing dimensionalities hashes their text): a Block of a few hundred
# signals parsed the same few texts thousands of times. Both directions are cached; only
# successful results are kept (a unit defined later is then found), and a file or a program
# with very many distinct units cannot grow a cache without end.
_CACHE_MAX = 4096
#: unit text -> dimensionality (load).
_UNITS: dict[str, Any] = {}
#: the units and powers of a dimensionality, by id -> (those units, their text) (dump). Holding
#: the unit objects keeps their ids from being reused while the entry lives.
_TEXTS: dict[tuple, tuple[tuple, str]] = {}


def clear_caches() -> None:
    """Forget every cached unit text (e.g. after redefining units in quantities' registry)."""
    _UNITS.clear()
    _TEXTS.clear()


def _remember(cache: dict, key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value


def known_units(text: Any) -> Any:
    """The dimensionality of a unit text already checked and parsed (by
    :func:`quantities_units`, after :func:`check_unit_text`), or None."""
    return _UNITS.get(text) if type(text) is str else None


def quantities_units(pq, text: str, path: str):
    """``(dimensionality, None)``, or ``(None, why)`` when quantities defines no such unit."""
    dimensionality = _UNITS.get(text)
    if dimensionality is not None:
        return dimensionality, None
    try:
        unit = pq.unit_registry[text]
    except LookupError:
        return None, f"quantities defines no unit {text!r}"
    except SyntaxError:
        raise CorruptFileError(f"{path}: 'units' attribute {text!r} is not a unit expression "
                               f"quantities reads") from None
    if not isinstance(unit, pq.Quantity) or unit.shape != () or unit.magnitude != 1:
        raise CorruptFileError(f"{path}: 'units' attribute {text!r} is not a unit")
    _remember(_UNITS, text, unit.dimensionality)
    return unit.dimensionality, None


def quantities_text(pq, dimensionality, where: str) -> str:
    """The unit text of a dimensionality: quantities' own (``mV/ms``) when it reads back as the
    same units, else the units' full names (``attosecond``; ``as`` is a Python keyword)."""
    units = tuple(dimensionality.items())
    key = tuple((id(unit), power) for unit, power in units)
    hit = _TEXTS.get(key)
    if hit is not None:
        return hit[1]
    text = _quantities_text(pq, dimensionality, where)
    _remember(_TEXTS, key, (units, text))
    return text


def _quantities_text(pq, dimensionality, where: str) -> str:
    text = dimensionality.string
    try:
        if pq.unit_registry[text].dimensionality == dimensionality:
            return text
    except (LookupError, SyntaxError):
        pass
    parts = [u.name if p == 1 else f"{u.name}**{p}" for u, p in dimensionality.items()]
    text = "*".join(parts) or "dimensionless"
    try:
        if pq.unit_registry[text].dimensionality == dimensionality:
            return text
    except (LookupError, SyntaxError):
        pass
    raise CodecError(f"cannot store {where}: its units {dimensionality.string!r} are not "
                     f"registered in quantities' unit registry, so they could not be read back")
