"""dateutil time zones (what ``dateutil.parser`` and pandas' ``tz="dateutil/..."`` give), as
the text of a ``tz`` attribute: ``dateutil/<key>`` (a ``tzfile`` of the system's or dateutil's
zone database, pandas' own spelling), ``dateutil/UTC`` is that zone file, ``dateutil/:utc``
(``tzutc``), ``dateutil/:local`` (``tzlocal``) and ``dateutil/:offset`` (``tzoffset``; the offset
is in the ISO text of the value, its name in ``tz_name``).

dateutil is never imported to write (its objects exist, so it is loaded) and is imported to
read only when such a text is met. Without dateutil, the zone loads as the equivalent
``zoneinfo``/fixed-offset zone with a warning: the instants are kept, the tzinfo class is not.
"""

from __future__ import annotations

import datetime as dt
import sys
import warnings
import zoneinfo
from typing import Any

from h5forge.errors import CodecError, CorruptFileError
from h5forge.store.decoder import UnknownClassWarning

__all__ = ["PREFIX", "dateutil_tz_text", "dateutil_tz"]

PREFIX = "dateutil/"


def _module():
    return sys.modules.get("dateutil.tz")


def is_dateutil(tz: Any) -> bool:
    return (type(tz).__module__ or "").startswith("dateutil.tz")


def dateutil_tz_text(tz: Any, where: str, *, offsets: bool = True) -> tuple[str, dict]:
    """``(tz text, extra attributes)`` for a dateutil zone, or :class:`CodecError` for one that
    cannot be named (``tzstr``, ``tzrange``, ``tzical``, a zone file outside a zone database).
    ``offsets=False`` refuses ``tzoffset`` (where no ISO text carries the offset)."""
    tzmod = _module()
    kind = type(tz).__name__
    if kind == "tzutc":
        return PREFIX + ":utc", {}
    if kind == "tzlocal":
        return PREFIX + ":local", {}
    if kind == "tzoffset" and offsets:
        name = tz.tzname(None)
        return PREFIX + ":offset", ({"tz_name": name} if name is not None else {})
    if kind == "tzfile":
        filename = str(getattr(tz, "_filename", "") or "")
        key = filename.split("zoneinfo/")[-1] if "zoneinfo/" in filename else filename
        if key and not key.startswith("/") and tzmod is not None and tzmod.gettz(key) == tz:
            return PREFIX + key, {}
    raise CodecError(f"cannot store {where}: dateutil time zone {tz!r} cannot be named by a "
                     f"zone key; convert it with zoneinfo.ZoneInfo(name)")


def dateutil_tz(text: str, path: str, offset: dt.timedelta | None = None,
                name: str | None = None) -> dt.tzinfo:
    """The zone a ``dateutil/...`` text names (``offset``: a tzoffset's offset)."""
    key = text[len(PREFIX):]
    if not key or len(key) > 256 or ".." in key.split("/"):
        raise CorruptFileError(f"{path}: bad time zone {text!r}")
    try:
        import dateutil.tz as tzmod
    except ImportError as exc:
        warnings.warn(f"{path}: time zone {text!r} loaded as its zoneinfo/UTC-offset "
                      f"equivalent: dateutil cannot be imported ({exc})", UnknownClassWarning,
                      stacklevel=5)
        tzmod = None
    if key == ":utc":
        return tzmod.tzutc() if tzmod else dt.timezone.utc
    if key == ":local":
        if tzmod:
            return tzmod.tzlocal()
        return dt.datetime.now().astimezone().tzinfo
    if key == ":offset":
        if offset is None:
            raise CorruptFileError(f"{path}: a tzoffset zone without an offset")
        return tzmod.tzoffset(name, offset) if tzmod else dt.timezone(offset)
    if tzmod is None:
        try:
            return zoneinfo.ZoneInfo(key)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            raise CorruptFileError(f"{path}: unknown time zone {text!r}") from None
    zone = tzmod.gettz(key) if not key.startswith((":", "/", ".")) else None
    if zone is None:
        raise CorruptFileError(f"{path}: unknown time zone {text!r}")
    return zone
