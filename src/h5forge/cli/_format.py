"""Small text helpers shared by the subcommands (sizes, short reprs, type names)."""

from __future__ import annotations

from h5forge._text import format_bytes, short_repr, type_name

__all__ = ["human_size", "short_repr", "type_name"]


def human_size(nbytes: int) -> str:
    """``812 B``, ``1.5 KiB``, ``3.2 MiB``, ``1.0 GiB`` (binary units)."""
    return format_bytes(nbytes, binary=True)
