"""``h5forge versions {log,diff,export,import,gc}``: the history of a versioned file, what
changed between two versions, any version as a plain HDF5 file, a versioned-hdf5 file brought
in with its history, and the space of deleted versions given back."""

from __future__ import annotations

import argparse
import contextlib
from typing import Iterator

import h5py

from h5forge.versions import VersionedFile

__all__ = ["add_parser", "run_log", "run_diff", "run_export", "run_import", "run_gc",
           "format_regions"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``versions`` and its subcommands."""
    parser = subparsers.add_parser(
        "versions", help="history, differences and exports of a versioned file",
        description="Read a file written with h5forge.VersionedFile.")
    sub = parser.add_subparsers(title="commands", dest="versions_command", metavar="COMMAND")
    sub.required = True
    log = sub.add_parser("log", help="one line per version: name, timestamp, prev, changes",
                         description="List the versions of FILE, oldest first; the current "
                                     "one is marked with '*'.")
    log.add_argument("file", metavar="FILE")
    _group_option(log)
    log.set_defaults(func=run_log)
    diff = sub.add_parser("diff", help="what changed between two versions",
                          description="Datasets and groups added, removed and changed from V1 "
                                      "to V2, with the changed chunk regions.")
    diff.add_argument("file", metavar="FILE")
    diff.add_argument("v1", metavar="V1")
    diff.add_argument("v2", metavar="V2")
    _group_option(diff)
    diff.set_defaults(func=run_diff)
    export = sub.add_parser("export", help="write one version as a plain HDF5 file",
                            description="Write VERSION of FILE to OUT as a plain HDF5 file that "
                                        "any HDF5 tool reads.")
    export.add_argument("file", metavar="FILE")
    export.add_argument("version", metavar="VERSION")
    export.add_argument("out", metavar="OUT.h5")
    export.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    _group_option(export)
    export.set_defaults(func=run_export)
    imp = sub.add_parser("import", help="convert a versioned-hdf5 file, with its history",
                         description="Write every committed version of the versioned-hdf5 file "
                                     "VH5FILE (names, timestamps, branches, the current version, "
                                     "groups, datasets, attributes) into the new h5forge "
                                     "versioned file OUT. Needs versioned-hdf5 (pip install "
                                     "\"h5forge[versioned-hdf5]\").")
    imp.add_argument("source", metavar="VH5FILE")
    imp.add_argument("out", metavar="OUT.h5")
    imp.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    imp.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    imp.set_defaults(func=run_import)
    gc = sub.add_parser("gc", help="give back the disk space of deleted versions",
                        description="Rewrite FILE keeping only the chunks its versions use "
                                    "(delete_versions frees them for reuse, but the file keeps "
                                    "its size; `h5forge repack` copies them as they are). "
                                    "Written aside and renamed over FILE when complete; with "
                                    "-o, FILE is left as it is.")
    gc.add_argument("file", metavar="FILE")
    gc.add_argument("-o", "--out", metavar="OUT.h5", help="write the compact copy here instead")
    gc.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    gc.add_argument("--no-verify", action="store_true",
                    help="skip comparing every copied chunk with the original")
    gc.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    gc.set_defaults(func=run_gc)


def _group_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-g", "--group", metavar="PATH", default="/",
                        help="the group holding the versioned tree (default: the file's root), "
                             "for trees made with VersionedFile(f[PATH])")


@contextlib.contextmanager
def _open(args: argparse.Namespace) -> Iterator[VersionedFile]:
    """The versioned tree of FILE (at --group), read-only."""
    from h5forge.errors import NodeNotFoundError

    if args.group.strip("/") == "":
        with VersionedFile(args.file, "r") as vf:
            yield vf
        return
    with h5py.File(args.file, "r") as f:
        group = f.get(args.group)
        if not isinstance(group, h5py.Group):
            raise NodeNotFoundError(f"{args.file}:{args.group}: no such group; give the group "
                                    f"that holds the versions with --group")
        with VersionedFile(group) as vf:
            yield vf


def run_log(args: argparse.Namespace) -> int:
    with _open(args) as vf:
        rows = [("", "name", "timestamp (UTC)", "prev", "datasets changed")]
        current = vf.current_version
        for name in vf.versions:
            info = vf.version_info(name)
            changed = info["changed"]
            text = ", ".join(changed[:4]) + (f" (+{len(changed) - 4})" if len(changed) > 4
                                             else "")
            rows.append(("*" if name == current else "", name,
                         info["timestamp"].strftime("%Y-%m-%d %H:%M:%S"),
                         info["prev_version"], text or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4])
    return 0


def format_regions(regions: list[tuple[slice, ...]], limit: int = 6) -> str:
    """``[0:10, 0:100], [10:20, 0:100] (+3 more)``."""
    texts = ["[" + ", ".join(f"{s.start}:{s.stop}" for s in region) + "]" if region else "[()]"
             for region in regions[:limit]]
    more = f" (+{len(regions) - limit} more)" if len(regions) > limit else ""
    return ", ".join(texts) + more if texts else "attributes only"


def run_diff(args: argparse.Namespace) -> int:
    with _open(args) as vf:
        diff = vf.diff(args.v1, args.v2)
    lines = [f"+ {p}" for p in diff["added"]] + [f"- {p}" for p in diff["removed"]]
    lines += [f"+ {p}/ (group)" for p in diff["groups_added"]]
    lines += [f"- {p}/ (group)" for p in diff["groups_removed"]]
    lines += [f"~ {p}: {format_regions(regions)}" for p, regions in diff["changed"].items()]
    print("\n".join(lines) if lines else f"no differences between {args.v1} and {args.v2}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    import os

    from h5forge.errors import NodeExistsError

    if os.path.exists(args.out) and not args.overwrite:
        raise NodeExistsError(f"{args.out} exists; pass --overwrite to replace it")
    with _open(args) as vf:
        vf.export(args.version, args.out)
    print(f"wrote version {args.version} of {args.file} to {args.out}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from h5forge.versions import import_versioned_hdf5

    summary = import_versioned_hdf5(args.source, args.out, overwrite=args.overwrite,
                                    progress=False if args.no_progress else None)
    print(f"imported {len(summary.versions)} versions (current: {summary.current_version}) "
          f"from {args.source} into {args.out}")
    for note in summary.notes:
        print(f"note: {note}")
    return 0


def run_gc(args: argparse.Namespace) -> int:
    from h5forge.cli._format import human_size
    from h5forge.versions import compact

    summary = compact(args.file, args.out, overwrite=args.overwrite,
                      verify=not args.no_verify, progress=False if args.no_progress else None)
    print(f"{summary.out}: {human_size(summary.bytes_before)} -> "
          f"{human_size(summary.bytes_after)} ({human_size(max(summary.freed, 0))} freed; "
          f"{summary.slots_after} of {summary.slots_before} chunk slots in use)")
    return 0
