"""Progress bars for long writes (tqdm), shown only when stderr is a terminal unless asked."""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["progress_bar"]


def progress_bar(total: int | None, description: str, enabled: bool | None = None) -> tqdm:
    """A byte-counting tqdm bar; ``enabled=None`` shows it only when stderr is a terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc=description, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not enabled, leave=False)
