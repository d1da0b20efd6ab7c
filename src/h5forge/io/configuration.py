"""The plan for writing datasets: :class:`DatasetConfiguration` per dataset, and
:class:`BackendConfiguration` for all datasets of a file or object tree.

The workflow NeuroConv users know: get the default plan, print it, change a few datasets,
write with it. Every assignment is validated at once (with the dataset's location in the
message), so a plan that exists is a plan that can be written.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from h5forge._text import dtype_from_text, dtype_to_text, format_bytes
from h5forge.errors import ConfigurationError
from h5forge.io.compression import (
    DEFAULT_COMPRESSION_METHOD,
    DEFAULT_COMPRESSION_OPTIONS,
    check_dtype,
    h5py_filter_kwargs,
    normalize_compression,
    normalize_filters,
)
from h5forge.io.estimate import (
    estimate_default_buffer_shape,
    estimate_default_chunk_shape,
    storage_itemsize,
)

__all__ = ["DatasetConfiguration", "BackendConfiguration", "normalize_location"]

#: Set at construction, fixed by the data: assigning raises.
_FROZEN = ("location", "dtype", "full_shape")
#: Free to change, each assignment validated.
_FIELDS = ("chunk_shape", "buffer_shape", "compression_method", "compression_options", "filter")
#: HDF5 refuses chunks of 4 GiB and more.
_MAX_CHUNK_BYTES = 2**32 - 1


class _Default:
    def __repr__(self) -> str:
        return "<default>"


_DEFAULT: Any = _Default()


def normalize_location(location: Any) -> str:
    """``'/a/b/'`` -> ``'a/b'``: locations are HDF5 paths relative to the write target."""
    if not isinstance(location, str):
        raise ConfigurationError(f"a dataset location must be a string, got {location!r}")
    parts = [p for p in location.split("/") if p]
    if not parts:
        raise ConfigurationError(f"a dataset location must name a dataset, got {location!r}")
    return "/".join(parts)


def _shape(value: Any, what: str, where: str) -> tuple[int, ...]:
    try:
        items = tuple(value)
    except TypeError:
        raise ConfigurationError(f"{where}: {what} must be a tuple of integers, got "
                                 f"{value!r}") from None
    out = []
    for n in items:
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
            raise ConfigurationError(f"{where}: {what} must be a tuple of integers, got "
                                     f"{value!r}")
        out.append(int(n))
    return tuple(out)


class DatasetConfiguration:
    """How one dataset is written: chunks, write buffer, compression and filters.

    ``location`` (the dataset's HDF5 path relative to the write target), ``dtype`` and
    ``full_shape`` describe the data and are frozen. ``chunk_shape`` (``None``: contiguous),
    ``buffer_shape`` (the block a buffered write holds in memory), ``compression_method``
    (a name from ``AVAILABLE_COMPRESSION_METHODS`` or ``None``), ``compression_options`` and
    ``filter`` (``()``, ``("shuffle",)`` or ``("bitshuffle",)``) can be assigned; each
    assignment is validated and refused with :class:`ConfigurationError` if it breaks a rule:

    * sizes positive, ranks equal to ``full_shape``'s;
    * ``chunk_shape <= buffer_shape <= full_shape`` on every axis, and the buffer a whole number
      of chunks on every axis except where it spans the full extent;
    * a contiguous dataset (``chunk_shape=None``) has no compression and no filter.

    Assigning ``compression_method`` alone resets ``compression_options`` to that method's
    defaults. To change fields that depend on each other at once, use :meth:`update`. Fields
    left out at construction get the defaults (see :mod:`h5forge.io.estimate`): about 10 MB
    chunks, 500 MB buffers and gzip level 4; 0-d and empty datasets are contiguous.
    """

    def __init__(self, location: str, dtype: Any, full_shape: Iterable[int], *,
                 chunk_shape: Any = _DEFAULT, buffer_shape: Any = _DEFAULT,
                 compression_method: Any = _DEFAULT, compression_options: Any = _DEFAULT,
                 filter: Any = ()) -> None:  # noqa: A002 - NeuroConv users know this name
        where = normalize_location(location)
        try:
            dtype = np.dtype(dtype)
        except TypeError as exc:
            raise ConfigurationError(f"{where}: not a dtype: {dtype!r} ({exc})") from None
        shape = _shape(full_shape, "full_shape", where)
        if any(n < 0 for n in shape):
            raise ConfigurationError(f"{where}: full_shape {shape} has a negative size")
        object.__setattr__(self, "location", where)
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "full_shape", shape)
        chunkable = bool(shape) and all(shape)
        if chunk_shape is _DEFAULT:
            chunk_shape = estimate_default_chunk_shape(shape, dtype) if chunkable else None
        if buffer_shape is _DEFAULT:
            buffer_shape = self._default_buffer(chunk_shape)
        if compression_method is _DEFAULT:
            compression_method = DEFAULT_COMPRESSION_METHOD if chunk_shape is not None else None
            if compression_options is _DEFAULT and compression_method is not None:
                compression_options = dict(DEFAULT_COMPRESSION_OPTIONS)
        if compression_options is _DEFAULT:
            compression_options = None
        self._commit(dict(chunk_shape=chunk_shape, buffer_shape=buffer_shape,
                          compression_method=compression_method,
                          compression_options=compression_options, filter=filter))

    # ---- the data, and derived sizes ---------------------------------------------------------
    location: str
    dtype: np.dtype
    full_shape: tuple[int, ...]
    chunk_shape: tuple[int, ...] | None
    buffer_shape: tuple[int, ...]
    compression_method: str | None
    compression_options: dict[str, Any] | None
    filter: tuple[str, ...]

    @property
    def itemsize(self) -> int:
        """Bytes per element in a chunk (variable-length elements count 16, their reference)."""
        return storage_itemsize(self.dtype)

    @property
    def full_size(self) -> int:
        """Bytes of the whole dataset, uncompressed."""
        return self.itemsize * math.prod(self.full_shape)

    @property
    def buffer_size(self) -> int:
        """Bytes a buffered write holds in memory at once."""
        return self.itemsize * math.prod(self.buffer_shape)

    @property
    def chunk_size(self) -> int | None:
        """Bytes of one chunk, uncompressed (``None`` when contiguous)."""
        if self.chunk_shape is None:
            return None
        return self.itemsize * math.prod(self.chunk_shape)

    # ---- changing the plan -------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FROZEN:
            raise ConfigurationError(f"{self.location}: {name} is fixed by the data and cannot "
                                     f"be assigned; plan again for other data")
        if name not in _FIELDS:
            raise AttributeError(f"DatasetConfiguration has no field {name!r}; fields: "
                                 f"{', '.join(_FIELDS)}")
        self.update(**{name: value})

    def update(self, **changes: Any) -> DatasetConfiguration:
        """Assign several fields at once, validated together (e.g. a new chunk shape and a
        buffer that fits it). Nothing changes if the result is invalid. Returns ``self``."""
        unknown = sorted(set(changes) - set(_FIELDS))
        if unknown:
            frozen = [n for n in unknown if n in _FROZEN]
            if frozen:
                raise ConfigurationError(f"{self.location}: {', '.join(frozen)} is fixed by the "
                                         f"data and cannot be assigned")
            raise ConfigurationError(f"{self.location}: unknown field(s) {', '.join(unknown)}; "
                                     f"fields: {', '.join(_FIELDS)}")
        values = {name: getattr(self, name) for name in _FIELDS}
        if "compression_method" in changes and "compression_options" not in changes:
            values["compression_options"] = None
        values.update(changes)
        self._commit(values)
        return self

    def _default_buffer(self, chunk_shape: Any) -> tuple[int, ...]:
        shape = self.full_shape
        if not (shape and all(shape)):
            return shape
        step = chunk_shape if chunk_shape is not None else (1,) * len(shape)
        try:
            return estimate_default_buffer_shape(shape, step, self.dtype)
        except ConfigurationError:
            return shape  # a malformed chunk shape: _commit says what is wrong with it

    def _commit(self, values: dict[str, Any]) -> None:
        checked = self._validated(values)
        for name in _FIELDS:
            object.__setattr__(self, name, checked[name])

    def _validated(self, values: dict[str, Any]) -> dict[str, Any]:
        where, full, rank = self.location, self.full_shape, len(self.full_shape)
        chunk = values["chunk_shape"]
        if chunk is not None:
            chunk = _shape(chunk, "chunk_shape", where)
            if len(chunk) != rank:
                raise ConfigurationError(f"{where}: chunk_shape {chunk} has rank {len(chunk)} but "
                                         f"full_shape {full} has rank {rank}")
            if not rank or not all(full):
                raise ConfigurationError(f"{where}: a dataset of shape {full} cannot be chunked; "
                                         f"set chunk_shape=None (contiguous)")
            for axis, (c, n) in enumerate(zip(chunk, full)):
                if c <= 0:
                    raise ConfigurationError(f"{where}: chunk_shape {chunk} has size {c} on axis "
                                             f"{axis}; sizes must be positive")
                if c > n:
                    raise ConfigurationError(f"{where}: chunk_shape {chunk} exceeds full_shape "
                                             f"{full} on axis {axis}")
            if storage_itemsize(self.dtype) * math.prod(chunk) > _MAX_CHUNK_BYTES:
                raise ConfigurationError(f"{where}: chunk_shape {chunk} makes chunks of 4 GiB or "
                                         f"more, which HDF5 refuses; use smaller chunks")
        buffer = values["buffer_shape"]
        buffer = full if buffer is None else _shape(buffer, "buffer_shape", where)
        if len(buffer) != rank:
            raise ConfigurationError(f"{where}: buffer_shape {buffer} has rank {len(buffer)} but "
                                     f"full_shape {full} has rank {rank}")
        for axis, (b, n) in enumerate(zip(buffer, full)):
            if b <= 0 and not b == n == 0:
                raise ConfigurationError(f"{where}: buffer_shape {buffer} has size {b} on axis "
                                         f"{axis}; sizes must be positive")
            if b > n:
                raise ConfigurationError(f"{where}: buffer_shape {buffer} exceeds full_shape "
                                         f"{full} on axis {axis}")
            if chunk is not None:
                c = chunk[axis]
                if b < c:
                    raise ConfigurationError(f"{where}: buffer_shape {buffer} is smaller than "
                                             f"chunk_shape {chunk} on axis {axis}; use "
                                             f"update(chunk_shape=..., buffer_shape=...) to "
                                             f"change both")
                if b % c and b != n:
                    raise ConfigurationError(
                        f"{where}: buffer_shape {buffer} is not a whole number of chunks "
                        f"{chunk} on axis {axis} (and does not span the full extent {n}); "
                        f"use a multiple of {c} or {n}")
        method, options = normalize_compression(values["compression_method"],
                                                values["compression_options"], where)
        filters = normalize_filters(values["filter"], where)
        check_dtype(method, filters, self.dtype, where)
        if chunk is None and (method is not None or filters):
            raise ConfigurationError(f"{where}: a contiguous dataset (chunk_shape=None) cannot "
                                     f"be compressed or filtered; use update(chunk_shape=None, "
                                     f"compression_method=None, filter=()) or give a chunk "
                                     f"shape")
        return dict(chunk_shape=chunk, buffer_shape=buffer, compression_method=method,
                    compression_options=options, filter=filters)

    # ---- using the plan ----------------------------------------------------------------------
    def h5py_kwargs(self) -> dict[str, Any]:
        """``create_dataset`` keywords: ``chunks`` plus the compression and filter keywords."""
        kwargs: dict[str, Any] = {"chunks": self.chunk_shape}
        kwargs.update(h5py_filter_kwargs(self.compression_method, self.compression_options,
                                         self.filter))
        return kwargs

    def check_data(self, shape: Iterable[int], dtype: Any, where: str = "") -> None:
        """Raise :class:`ConfigurationError` unless data of ``shape``/``dtype`` is what this plan
        was made for."""
        shape = tuple(shape)
        if shape != self.full_shape or not _same_dtype(dtype, self.dtype):
            raise ConfigurationError(
                f"{where or self.location}: the plan is for {self.full_shape} "
                f"{_dtype_name(self.dtype)} but the data is {shape} {_dtype_name(dtype)}; make the "
                f"plan again with get_default_configuration")

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, strings and numbers (what a YAML plan file holds)."""
        return {
            "dtype": dtype_to_text(self.dtype),
            "full_shape": list(self.full_shape),
            "chunk_shape": None if self.chunk_shape is None else list(self.chunk_shape),
            "buffer_shape": list(self.buffer_shape),
            "compression_method": self.compression_method,
            "compression_options": None if self.compression_options is None
            else dict(self.compression_options),
            "filter": list(self.filter),
        }

    @classmethod
    def from_dict(cls, location: str, fields: Mapping[str, Any]) -> DatasetConfiguration:
        """The inverse of :meth:`to_dict`; fields left out get the defaults."""
        where = normalize_location(location)
        if not isinstance(fields, Mapping):
            raise ConfigurationError(f"{where}: a dataset plan must be a mapping of fields, got "
                                     f"{type(fields).__name__}")
        known = {"dtype", "full_shape", *_FIELDS}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ConfigurationError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}; "
                                     f"fields: {', '.join(sorted(known))}")
        for needed in ("dtype", "full_shape"):
            if needed not in fields:
                raise ConfigurationError(f"{where}: the plan lacks {needed!r}")
        try:
            dtype = dtype_from_text(fields["dtype"])
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"{where}: bad dtype {fields['dtype']!r} ({exc})") from None
        rest = {name: fields[name] for name in _FIELDS if name in fields}
        if "compression_method" in rest and "compression_options" not in rest:
            rest["compression_options"] = None
        return cls(where, dtype, fields["full_shape"], **rest)

    # ---- reading it --------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetConfiguration):
            return NotImplemented
        return self.location == other.location and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  (mutable)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return (f"DatasetConfiguration({self.location!r}, {_dtype_name(self.dtype)!r}, "
                f"{self.full_shape}, {fields})")

    def __str__(self) -> str:
        rows = [
            ("dtype", _dtype_name(self.dtype)),
            ("full shape", str(self.full_shape)),
            ("full size", format_bytes(self.full_size, binary=False)),
            ("buffer shape", str(self.buffer_shape)),
            ("expected RAM", format_bytes(self.buffer_size, binary=False)),
        ]
        if self.chunk_shape is None:
            rows.append(("chunk shape", "None (contiguous)"))
        else:
            rows += [("chunk shape", str(self.chunk_shape)),
                     ("disk space per chunk",
                      f"{format_bytes(self.chunk_size, binary=False)} before compression")]
        rows.append(("compression", _compression_text(self.compression_method,
                                                      self.compression_options)))
        if self.filter:
            rows.append(("filter", ", ".join(self.filter)))
        width = max(len(label) for label, _ in rows)
        lines = [self.location, "-" * len(self.location)]
        lines += [f"  {label:<{width}} : {value}" for label, value in rows]
        return "\n".join(lines)


def _same_dtype(a: Any, b: Any) -> bool:
    """Equal as a plan sees them: byte order does not matter (HDF5 converts on write)."""
    a, b = np.dtype(a), np.dtype(b)
    text_a, text_b = dtype_to_text(a), dtype_to_text(b)
    if text_a == text_b or {text_a, text_b} <= {"object", "vlen-str", "vlen-bytes"} and \
            "object" in (text_a, text_b):  # Python objects are written as the vlen type
        return True
    if a.hasobject or b.hasobject or a.names or b.names:
        return False
    return a.newbyteorder("<") == b.newbyteorder("<")


def _dtype_name(dtype: Any) -> str:
    text = dtype_to_text(dtype)
    if isinstance(text, str):
        return text if text.startswith("vlen") or text == "object" else str(np.dtype(dtype))
    return str(np.dtype(dtype))


def _compression_text(method: str | None, options: Mapping[str, Any] | None) -> str:
    if method is None:
        return "none"
    if not options:
        return method
    return f"{method} ({', '.join(f'{k}={v!r}' for k, v in options.items())})"


class BackendConfiguration:
    """The plan for every dataset of a write: ``dataset_configurations`` maps each location to
    its :class:`DatasetConfiguration`. ``config["a/b"]`` gets one; iterating gives locations.
    ``str()`` prints the whole plan; :meth:`to_yaml`/:meth:`from_yaml` keep it in a text file."""

    def __init__(self, dataset_configurations: Mapping[str, DatasetConfiguration]
                 | Iterable[DatasetConfiguration] = ()) -> None:
        if isinstance(dataset_configurations, Mapping):
            items = list(dataset_configurations.items())
        else:
            items = [(None, entry) for entry in dataset_configurations]
        table: dict[str, DatasetConfiguration] = {}
        for key, entry in items:
            if not isinstance(entry, DatasetConfiguration):
                raise ConfigurationError(f"a BackendConfiguration holds DatasetConfiguration "
                                         f"objects, got {type(entry).__name__}")
            if key is not None and normalize_location(key) != entry.location:
                raise ConfigurationError(f"{key}: keyed under a location other than its own "
                                         f"({entry.location})")
            if entry.location in table:
                raise ConfigurationError(f"{entry.location}: planned twice")
            table[entry.location] = entry
        self.dataset_configurations = table

    def __getitem__(self, location: str) -> DatasetConfiguration:
        key = normalize_location(location)
        try:
            return self.dataset_configurations[key]
        except KeyError:
            raise ConfigurationError(f"{key}: no dataset of that location in the plan; planned: "
                                     f"{_some(self.dataset_configurations)}") from None

    def get(self, location: str, default: Any = None) -> DatasetConfiguration | Any:
        return self.dataset_configurations.get(normalize_location(location), default)

    def __contains__(self, location: object) -> bool:
        try:
            return normalize_location(location) in self.dataset_configurations
        except ConfigurationError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.dataset_configurations)

    def __len__(self) -> int:
        return len(self.dataset_configurations)

    def items(self):
        return self.dataset_configurations.items()

    def values(self):
        return self.dataset_configurations.values()

    def apply_global_compression(self, method: str | None,
                                 options: Mapping[str, Any] | None = None) -> list[str]:
        """Use ``method``/``options`` for every chunked dataset whose data it can take, and
        return the locations of those it cannot (they keep their compression; e.g. blosc on
        variable-length strings). Contiguous datasets cannot be compressed and are left alone.
        Bad options raise before anything changes."""
        method, options = normalize_compression(method, options, "apply_global_compression")
        kept = []
        for entry in self.values():
            if entry.chunk_shape is None:
                continue
            try:
                check_dtype(method, entry.filter, entry.dtype, entry.location)
            except ConfigurationError:
                kept.append(entry.location)
                continue
            entry.update(compression_method=method, compression_options=options)
        return kept

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BackendConfiguration):
            return NotImplemented
        return self.dataset_configurations == other.dataset_configurations

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BackendConfiguration({len(self)} datasets: {_some(self.dataset_configurations)})"

    def __str__(self) -> str:
        total = sum(entry.full_size for entry in self.values())
        head = (f"HDF5 dataset configuration: {len(self)} dataset(s), "
                f"{format_bytes(total, binary=False)} in all")
        return "\n\n".join([head, *(str(entry) for entry in self.values())])

    def to_dict(self) -> dict[str, Any]:
        return {location: entry.to_dict() for location, entry in self.items()}

    @classmethod
    def from_dict(cls, plan: Mapping[str, Any]) -> BackendConfiguration:
        if not isinstance(plan, Mapping):
            raise ConfigurationError(f"a plan must map dataset locations to fields, got "
                                     f"{type(plan).__name__}")
        return cls([DatasetConfiguration.from_dict(loc, fields) for loc, fields in plan.items()])

    def to_yaml(self, path: Any = None) -> str:
        """The plan as YAML text (written to ``path`` too when given)."""
        from h5forge.io.plan_file import dump_plan

        return dump_plan(self, path)

    @classmethod
    def from_yaml(cls, source: Any) -> BackendConfiguration:
        """A plan from a YAML file path (or an open text stream)."""
        from h5forge.io.plan_file import load_plan

        return load_plan(source)


def _some(table: Mapping[str, Any], limit: int = 5) -> str:
    names = list(table)
    if not names:
        return "(none)"
    text = ", ".join(names[:limit])
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")
