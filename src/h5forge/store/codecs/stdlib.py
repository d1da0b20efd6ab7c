"""Codecs for standard-library value types: dates and times, Decimal, Fraction, UUID, paths.

Values are stored in their standard string forms (ISO 8601, ``str(Decimal)``, ...) so a reader
with h5py alone sees ``"2024-05-01T12:00:00+02:00"``, not a number of unknown epoch.
"""

from __future__ import annotations

import datetime as dt
import decimal
import fractions
import pathlib
import uuid
import zoneinfo

import numpy as np

from h5forge.errors import CodecError, CorruptFileError, ResourceLimitError
from h5forge.store import registry
from h5forge.store.codecs import _timezones as timezones
from h5forge.store.nodes import (
    dataset_node,
    group_node,
    read_str,
    str_dataset,
)

#: Larger Fraction terms are refused on load: normalizing them (gcd) is quadratic.
FRACTION_MAX_BITS = 1 << 20

_PATHS = {
    "pathlib.Path": pathlib.Path,
    "pathlib.PosixPath": pathlib.PosixPath,
    "pathlib.WindowsPath": pathlib.WindowsPath,
    "pathlib.PurePath": pathlib.PurePath,
    "pathlib.PurePosixPath": pathlib.PurePosixPath,
    "pathlib.PureWindowsPath": pathlib.PureWindowsPath,
}


def _tz_attrs(value: dt.datetime | dt.time, where: str) -> dict:
    tz = value.tzinfo
    attrs = {"fold": 1} if value.fold else {}
    if tz is None or type(tz) is dt.timezone:
        return attrs
    if isinstance(tz, zoneinfo.ZoneInfo) and tz.key is not None:
        return {**attrs, "tz": tz.key}
    if timezones.is_dateutil(tz):
        text, extra = timezones.dateutil_tz_text(tz, where)
        return {**attrs, "tz": text, **extra}
    raise CodecError(f"cannot store {where}: time zone {tz!r} ({type(tz).__module__}."
                     f"{type(tz).__qualname__}) is not a fixed offset or a zoneinfo zone; "
                     f"convert it with zoneinfo.ZoneInfo(name)")


class DateTimeCodec(registry.Codec):
    """datetime, date, time (ISO 8601 strings, zoneinfo key in ``tz``), timedelta."""

    types = (dt.datetime, dt.date, dt.time, dt.timedelta)
    names = ("datetime.datetime", "datetime.date", "datetime.time", "datetime.timedelta")
    tracks_identity = False

    def encode(self, obj, enc, where):
        name = registry.class_name_of(type(obj))
        if type(obj) is dt.timedelta:
            return dataset_node(name, np.array([obj.days, obj.seconds, obj.microseconds], "i8"))
        attrs = _tz_attrs(obj, where) if type(obj) is not dt.date else {}
        return str_dataset(name, obj.isoformat(), **attrs)

    def decode(self, stored, dec):
        name = stored.class_name
        if name == "datetime.timedelta":
            days, seconds, micro = (int(v) for v in stored.read("iu", shape=(3,)))
            return dt.timedelta(days=days, seconds=seconds, microseconds=micro)
        cls = self.types[self.names.index(name)]
        value = cls.fromisoformat(read_str(stored))
        if cls is dt.date:
            return value
        key = stored.attrs.get("tz")
        if key is not None and str(key).startswith(timezones.PREFIX):
            offset = value.utcoffset() if value.tzinfo is not None else None
            value = value.replace(tzinfo=timezones.dateutil_tz(
                str(key), stored.path, offset, stored.attrs.get("tz_name")))
        elif key is not None:
            value = value.replace(tzinfo=zoneinfo.ZoneInfo(str(key)))
        if stored.attrs.get("fold"):
            value = value.replace(fold=1)
        return value


class TextValueCodec(registry.Codec):
    """Decimal, UUID and pathlib paths: their string form."""

    types = (decimal.Decimal, uuid.UUID, *set(_PATHS.values()))
    names = ("decimal.Decimal", "uuid.UUID", *_PATHS)
    tracks_identity = False

    def encode(self, obj, enc, where):
        tp = type(obj)
        name = registry.class_name_of(tp)
        if isinstance(obj, pathlib.PurePath):
            name = next(n for n, cls in _PATHS.items() if cls is tp)
        return str_dataset(name, str(obj))

    def decode(self, stored, dec):
        name = stored.class_name
        text = read_str(stored)
        if name == "decimal.Decimal":
            return decimal.Decimal(text)
        if name == "uuid.UUID":
            return uuid.UUID(text)
        cls = _PATHS[name]
        try:
            return cls(text)
        except NotImplementedError:  # a WindowsPath on POSIX or the reverse
            return (pathlib.PureWindowsPath if name == "pathlib.WindowsPath"
                    else pathlib.PurePosixPath)(text)


class FractionCodec(registry.Codec):
    """Fraction: numerator and denominator members (ints of any size)."""

    types = (fractions.Fraction,)
    names = ("fractions.Fraction",)
    tracks_identity = False

    def encode(self, obj, enc, where):
        node = group_node(self.name)
        node.add("numerator", enc.node(obj.numerator, f"{where}.numerator"))
        node.add("denominator", enc.node(obj.denominator, f"{where}.denominator"))
        return node

    def decode(self, stored, dec):
        numerator = dec.member(stored, "numerator")
        denominator = dec.member(stored, "denominator")
        if type(numerator) is not int or type(denominator) is not int:
            raise CorruptFileError(f"{stored.path}: Fraction terms must be ints")
        if max(numerator.bit_length(), denominator.bit_length()) > FRACTION_MAX_BITS:
            raise ResourceLimitError(
                f"{stored.path}: Fraction terms of more than {FRACTION_MAX_BITS} bits; "
                f"normalizing them would take minutes. Read numerator/denominator with h5py")
        return fractions.Fraction(numerator, denominator)

