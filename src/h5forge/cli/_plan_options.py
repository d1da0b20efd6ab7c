"""Command-line options shared by ``config`` and ``repack``: which plan, which compression."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from h5forge.errors import ConfigurationError
from h5forge.io import BackendConfiguration, get_compression_method

__all__ = ["add_plan_arguments", "apply_compression_arguments"]


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """``--compression METHOD``, ``--level N`` and ``--option KEY=VALUE`` (repeatable)."""
    group = parser.add_argument_group("compression (applied to every chunked dataset)")
    group.add_argument("--compression", "-z", metavar="METHOD",
                       help="gzip, lzf, szip, zstd, blosc, blosc2, lz4, bitshuffle, bzip2, ... "
                            "(h5forge.io.AVAILABLE_COMPRESSION_METHODS)")
    group.add_argument("--level", type=int, metavar="N",
                       help="the compression level (gzip level, zstd/blosc clevel, ...)")
    group.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="another option of the method, e.g. --option cname=zstd")


def apply_compression_arguments(plan: BackendConfiguration, args: argparse.Namespace) -> None:
    """Apply ``--compression/--level/--option`` to ``plan`` (nothing if none was given)."""
    if args.compression is None:
        if args.level is not None or args.option:
            raise ConfigurationError("--level and --option need --compression METHOD")
        return
    method = get_compression_method(args.compression)
    options: dict[str, Any] = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--option expects KEY=VALUE, got {item!r}")
        options[key.strip()] = yaml.safe_load(value)
    if args.level is not None:
        if method.level_option is None:
            raise ConfigurationError(f"{method.name} has no compression level; its options: "
                                     f"{', '.join(method.options) or 'none'} (use --option)")
        options[method.level_option] = args.level
    kept = plan.apply_global_compression(method.name, options)
    if kept:
        print(f"h5forge: note: {method.name} cannot compress {len(kept)} dataset(s) of "
              f"variable-length or unsuitable data; they keep their compression: "
              f"{', '.join(kept[:5])}{' ...' if len(kept) > 5 else ''}", file=sys.stderr)
