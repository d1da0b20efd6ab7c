"""Small text helpers shared by the subcommands (sizes, short reprs, type names)."""

from __future__ import annotations

from typing import Any

import numpy as np

from h5forge._text import format_bytes

__all__ = ["human_size", "short_repr", "type_name"]

def human_size(nbytes: int) -> str:
    """``812 B``, ``1.5 KiB``, ``3.2 MiB``, ``1.0 GiB`` (binary units)."""
    return format_bytes(nbytes, binary=True)


def short_repr(value: Any, width: int = 40) -> str:
    """``repr(value)`` cut to ``width`` characters (``...`` marks the cut; a cut string keeps
    its closing quote so it still reads as a string)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    if len(text) <= width:
        return text
    if isinstance(value, str):
        return text[: width - 4] + "..." + text[0]
    return text[: width - 3] + "..."


def type_name(value: Any) -> str:
    """The Python type of ``value`` as the store names it: ``int``, ``None``, ``numpy.int32``."""
    if value is None:
        return "None"
    tp = type(value)
    module = tp.__module__
    if module == "builtins":
        return tp.__qualname__
    if module.startswith("numpy"):
        module = "numpy"
    return f"{module}.{tp.__qualname__}"
