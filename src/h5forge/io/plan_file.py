"""Plans as YAML text files, so a plan can be edited in a text editor and applied later.

The file maps each dataset location to its fields::

    h5forge_plan: 1
    datasets:
      recording/data:
        dtype: <i2
        full_shape: [10000000, 128]
        chunk_shape: [39062, 128]
        buffer_shape: [1953100, 128]
        compression_method: zstd
        compression_options: {clevel: 3}
        filter: [shuffle]

Fields left out take the defaults; ``dtype`` and ``full_shape`` are required (they are checked
against the data when the plan is applied).
"""

from __future__ import annotations

import io
import os
from typing import IO, TYPE_CHECKING, Any

import yaml

from h5forge.errors import ConfigurationError

if TYPE_CHECKING:
    from h5forge.io.configuration import BackendConfiguration

__all__ = ["dump_plan", "load_plan", "PLAN_FORMAT"]

PLAN_FORMAT = 1


def dump_plan(plan: BackendConfiguration, path: str | os.PathLike | None = None) -> str:
    """``plan`` as YAML text; also written to ``path`` when given."""
    text = yaml.safe_dump({"h5forge_plan": PLAN_FORMAT, "datasets": plan.to_dict()},
                          sort_keys=False, default_flow_style=None)
    if path is not None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    return text


def load_plan(source: str | os.PathLike | IO[str]) -> BackendConfiguration:
    """Read a plan written by :func:`dump_plan` (a file path, or an open text stream)."""
    from h5forge.io.configuration import BackendConfiguration

    stream = isinstance(source, io.IOBase)
    name = str(getattr(source, "name", "<stream>")) if stream else os.fspath(source)
    try:
        if stream:
            content = yaml.safe_load(source)
        else:
            with open(source, encoding="utf-8") as handle:
                content = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{name}: not a valid YAML plan ({exc})") from None
    if not isinstance(content, dict) or "datasets" not in content:
        raise ConfigurationError(f"{name}: a plan file needs a 'datasets' mapping (see "
                                 f"BackendConfiguration.to_yaml)")
    version = content.get("h5forge_plan", PLAN_FORMAT)
    if version != PLAN_FORMAT:
        raise ConfigurationError(f"{name}: plan format {version!r} is not supported (this "
                                 f"h5forge reads format {PLAN_FORMAT})")
    extra = sorted(set(content) - {"h5forge_plan", "datasets"})
    if extra:
        raise ConfigurationError(f"{name}: unknown key(s) {', '.join(map(str, extra))}")
    datasets: Any = content["datasets"] or {}
    try:
        return BackendConfiguration.from_dict(datasets)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{name}: {exc}") from None
