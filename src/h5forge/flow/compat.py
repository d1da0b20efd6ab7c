"""h5flow's public names over :mod:`h5forge.flow`, for modules and scripts written for h5flow.

A module written for h5flow runs on h5forge in one of two ways:

* with h5flow installed, unchanged: the engine accepts classes derived from h5flow's own
  ``H5FlowStage`` / ``H5FlowGenerator`` / ``H5FlowResource``, calls them with h5flow's keyword
  arguments and fills h5flow's global ``h5flow.core.resources`` (see :mod:`h5forge.flow.manager`);
* without h5flow, by changing its imports to this module::

      from h5flow.core import H5FlowStage, resources        # before
      from h5forge.flow.compat import H5FlowStage, resources  # after

The names: ``H5FlowStage``, ``H5FlowGenerator``, ``H5FlowResource`` (h5forge's ``Stage``,
``Generator``, ``Resource``), ``resources`` (the running flow's resources by class name, refilled
at the start of each config, as h5flow's global), the built-in ``H5FlowTestStage`` and
``H5FlowDatasetLoopGenerator`` (configs may name them without ``path``),
``H5FlowDataManager`` (a data manager that opens its file by path), ``dereference``,
``dereference_chain``, ``ref_region_dtype`` and ``print_ref`` / ``print_data`` /
``print_attr``.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any, Callable

import h5py

from h5forge.errors import FlowError
from h5forge.flow.data import REGION_DTYPE, DataManager
from h5forge.flow.objects import Generator, LoopGenerator, Resource, Stage
from h5forge.flow.refs import dereference, dereference_chain

__all__ = ["H5FlowStage", "H5FlowGenerator", "H5FlowResource", "H5FlowTestStage",
           "H5FlowDatasetLoopGenerator", "H5FlowDataManager", "resources", "dereference",
           "dereference_chain", "ref_region_dtype", "print_ref", "print_data", "print_attr"]

H5FlowStage = Stage
H5FlowGenerator = Generator
H5FlowResource = Resource
#: h5flow's default generator: loops over a table in chunks. h5flow copies the input file to
#: the output first; h5forge reads the input in place (read-only) and writes only new tables.
H5FlowDatasetLoopGenerator = LoopGenerator
#: h5flow's name of the region dtype (h5forge writes 64-bit fields; h5flow 32-bit).
ref_region_dtype = REGION_DTYPE

#: The running flow's resources by class name (h5flow's global ``h5flow.core.resources``):
#: emptied and refilled by the engine at the start of each config.
resources: dict[str, Resource] = {}

_log = logging.getLogger("h5forge.flow")


class H5FlowTestStage(Stage):
    """h5flow's test stage: does nothing but log its params, and on each chunk the source, the
    slice and what the cache holds (at INFO level: ``h5forge flow -v`` or logging)."""

    def __init__(self, **params: Any):
        super().__init__(**params)
        for key, value in self.params.items():
            _log.info("%s: param %s: %r", self.name, key, value)

    def run(self, source_name: str, source_slice: slice, cache: dict[str, Any]) -> None:
        _log.info("%s: %s rows %s", self.name, source_name, source_slice)
        for key, value in cache.items():
            dtype = getattr(value, "dtype", None)
            shape = getattr(value, "shape", None)
            _log.info("%s:   %s %s %s", self.name, key, dtype if dtype is not None else
                      type(value).__name__, shape if shape is not None else "")


class H5FlowDataManager(DataManager):
    """h5flow's ``H5FlowDataManager(filepath, mode='a', mpi=False, drop_list=None,
    compression=None)``: a data manager that opens ``filepath`` itself (``fh``), reopens it
    after :meth:`close_file`, and at :meth:`finish` (or the end of a ``with`` block) deletes
    the tables of ``drop_list`` and closes. Dropped tables are written to a scratch file beside
    the output, removed at the end. On MPI ranks use :func:`h5forge.flow.run` under
    ``mpiexec`` instead (``mpi=True`` is refused)."""

    def __init__(self, filepath: str | os.PathLike, mode: str = "a", mpi: bool = False,
                 drop_list: Any = None, compression: str | None = None):
        if mpi:
            raise FlowError(f"{os.fspath(filepath)}: H5FlowDataManager(mpi=True) is not "
                            "supported; run the flow with h5forge.flow.run under mpiexec")
        self.filepath = os.fspath(filepath)
        self.mode = mode
        self.drop_list = [str(d) for d in (drop_list or ())]
        self._scratch_path = None
        scratch = None
        if self.drop_list:
            self._scratch_path = os.path.join(os.path.dirname(os.path.abspath(self.filepath)),
                                              f".h5forge-scratch-{uuid.uuid4().hex}.h5")
            scratch = h5py.File(self._scratch_path, "w")
        super().__init__(h5py.File(self.filepath, mode), scratch=scratch,
                         dropped=self.drop_list, compression=compression)

    def __repr__(self) -> str:
        return (f"H5FlowDataManager(filepath={self.filepath}, mode={self.mode}, mpi=False, "
                f"drop_list={self.drop_list})")

    @property
    def fh(self) -> h5py.File:
        """The open output file (reopened in ``mode`` after :meth:`close_file`)."""
        if not self.file:
            self.file = h5py.File(self.filepath, self.mode)
            for cache in (self._objects, self._rows, self._regions, self._refs):
                cache.clear()
        return self.file

    def close_file(self) -> None:
        """Close the output (and scratch) file; :attr:`fh` opens it again."""
        if self.file:
            if self.file.mode != "r":
                self.close()
            self.file.close()
        if self.scratch is not None and self.scratch:
            self.scratch.close()

    def finish(self) -> None:
        """Delete the tables of ``drop_list`` (and the references to them), close the files
        and remove the scratch file."""
        from h5forge.flow.manager import drop_tables

        if self.file and self.file.mode != "r":
            self.close()
            drop_tables(self.file, self.drop_list)
        self.close_file()
        if self._scratch_path is not None and os.path.exists(self._scratch_path):
            os.remove(self._scratch_path)

    def __enter__(self) -> H5FlowDataManager:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish()


def _print_matching(group: h5py.Group, keep: Callable[[str, Any], bool]) -> None:
    found: list[tuple[str, Any]] = []
    group.visititems(lambda name, obj: found.append((name, obj)) if keep(name, obj) else None)
    if not found:
        return
    width = max(len(name) for name, _ in found)
    for name, obj in found:
        print(f"{name.ljust(width)} {obj}")


def print_ref(group: h5py.Group) -> None:
    """Print every reference table (``.../ref``) under ``group``, one line each (h5flow's
    ``print_ref``). ``h5forge tree FILE`` shows the same with the regions."""
    _print_matching(group, lambda n, o: n.endswith("/ref") and isinstance(o, h5py.Dataset))


def print_data(group: h5py.Group) -> None:
    """Print every table (``.../data``) under ``group``, one line each (h5flow's
    ``print_data``)."""
    _print_matching(group, lambda n, o: n.endswith("/data") and isinstance(o, h5py.Dataset))


def print_attr(group: h5py.Group) -> None:
    """Print the attributes of every object under ``group`` but the reference and region
    tables (h5flow's ``print_attr``): the object's path, then one ``key: value`` line each.
    ``h5forge tree FILE --attrs`` shows them in the tree."""
    found: list[tuple[str, Any]] = []
    group.visititems(lambda n, o: found.append((n, o.attrs)) if len(o.attrs) and not (
        n.endswith("/ref") or n.endswith("/ref_region")) else None)
    if not found:
        return
    width = max(len(key) for _, attrs in found for key in attrs)
    for name, attrs in found:
        print(name)
        for key, value in attrs.items():
            print(f"\t{key}:{' ' * (width - len(key))} {value}")
