"""Which members a stored container holds, in which order: one rule for ``load`` and ``tree``.

A container's metadata (the ``keys`` attribute of a mapping, the names ``0..n-1`` of a
sequence) can disagree with its members when a file was changed by plain h5py, or when an
update was interrupted. ``load`` then loads what is there, in the order given here, with a
:class:`MemberMismatchWarning` naming the difference; ``h5forge tree`` shows the same members
in the same order. Leftovers of an interrupted write (names starting with ``TMP_PREFIX``)
are never members.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable

import numpy as np

__all__ = [
    "TMP_PREFIX",
    "MemberMismatchWarning",
    "is_leftover",
    "keys_list",
    "mapping_order",
    "sequence_order",
    "describe_difference",
    "warn_mismatch",
]

#: Names of nodes written aside by ``dump``/updates before they are swapped in.
TMP_PREFIX = ".h5forge-tmp-"


class MemberMismatchWarning(UserWarning):
    """A stored container's members differ from its metadata (changed outside h5forge, or an
    interrupted update); what is there was loaded."""


def is_leftover(name: str) -> bool:
    """Whether ``name`` is a node written aside by an interrupted write (never a member)."""
    return name.startswith(TMP_PREFIX)


def keys_list(keys: Any) -> list[str]:
    """The ``keys`` attribute of a mapping as a list of str (h5py gives an array)."""
    if keys is None:
        return []
    if isinstance(keys, (str, bytes)):
        keys = [keys]
    out = []
    for k in np.atleast_1d(np.asarray(keys, dtype=object)).tolist():
        out.append(k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else str(k))
    return out


def mapping_order(listed: Iterable[str], present: Iterable[str]) -> tuple[list[str], list[str],
                                                                          list[str]]:
    """(order, unlisted, missing): the members of a mapping in load order -- those ``keys``
    lists that are present, in its order, then present ones it does not list, by name."""
    present_list = [p for p in present if not is_leftover(p)]
    there = set(present_list)
    order = [k for k in dict.fromkeys(listed) if k in there]
    taken = set(order)
    unlisted = sorted(p for p in dict.fromkeys(present_list) if p not in taken)
    missing = [k for k in dict.fromkeys(listed) if k not in there]
    return order + unlisted, unlisted, missing


def _index(name: str) -> int | None:
    if name.isascii() and name.isdigit() and (name == "0" or not name.startswith("0")):
        return int(name)
    return None


def sequence_order(present: Iterable[str]) -> tuple[list[str], list[str]]:
    """(order, odd): the members of a sequence in load order -- indices by number, then names
    that are not indices, by name. ``odd`` lists the names that break ``0..n-1`` (beyond a
    gap, or not an index); empty for a consistent sequence."""
    numbered, other = [], []
    for name in dict.fromkeys(present):
        if is_leftover(name):
            continue
        i = _index(name)
        if i is None:
            other.append(name)
        else:
            numbered.append((i, name))
    numbered.sort()
    other.sort()
    order = [name for _, name in numbered] + other
    odd = [name for pos, (i, name) in enumerate(numbered) if i != pos] + other
    return order, odd


def describe_difference(unlisted: list[str], missing: list[str]) -> str:
    parts = []
    if unlisted:
        parts.append(f"not listed in 'keys': {unlisted[:5]}{' ...' if len(unlisted) > 5 else ''}")
    if missing:
        parts.append(f"listed but missing: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return "; ".join(parts)


def warn_mismatch(path: str, what: str, stacklevel: int = 3) -> None:
    """Warn that the container at ``path`` differs from its metadata (``what``)."""
    warnings.warn(f"{path}: members differ from the container's metadata ({what}); changed "
                  f"outside h5forge or by an interrupted update. Loaded what is there",
                  MemberMismatchWarning, stacklevel=stacklevel)
