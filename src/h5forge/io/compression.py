"""Compression methods and pre-compression filters, by name, turned into h5py keywords.

``AVAILABLE_COMPRESSION_METHODS`` maps a lower-case name to a :class:`CompressionMethod`: HDF5's
own ``gzip``, ``lzf`` and ``szip`` (when this HDF5 has it) and every filter hdf5plugin ships and
this HDF5 can load (``zstd``, ``blosc``, ``blosc2``, ``lz4``, ``bitshuffle``, ``bzip2``, ...).
Options are keyword arguments: ``{"level": 4}`` for gzip, the hdf5plugin class's constructor
arguments for a plugin (``{"clevel": 3}`` for zstd). Names are matched without regard to case.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Mapping

import h5py
import hdf5plugin
import numpy as np

from h5forge.errors import ConfigurationError

__all__ = [
    "CompressionMethod",
    "AVAILABLE_COMPRESSION_METHODS",
    "AVAILABLE_FILTERS",
    "DEFAULT_COMPRESSION_METHOD",
    "DEFAULT_COMPRESSION_OPTIONS",
    "get_compression_method",
    "normalize_compression",
    "normalize_filters",
    "check_dtype",
    "h5py_filter_kwargs",
    "read_filters",
]

DEFAULT_COMPRESSION_METHOD = "gzip"
DEFAULT_COMPRESSION_OPTIONS: dict[str, Any] = {"level": 4}


@dataclasses.dataclass(frozen=True)
class CompressionMethod:
    """One compression method: its name, HDF5 filter id, option names and defaults, whether it
    loses precision, and how to build the h5py ``create_dataset`` keywords for it."""

    name: str
    filter_id: int
    options: Mapping[str, Any]  # option name -> default value
    lossy: bool = False
    plugin: type | None = None  # the hdf5plugin class, for plugin filters
    level_option: str | None = None  # the option that sets the compression level, if any

    def h5py_kwargs(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """``compression=...``/``compression_opts=...`` for ``create_dataset``. Raises
        ``TypeError``/``ValueError`` for options the method does not accept."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)}; {self.name} takes "
                             f"{_describe_options(self.options)}")
        if self.plugin is not None:
            return dict(self.plugin(**options))
        if self.name == "gzip":
            level = options.get("level", 4)
            if isinstance(level, bool) or not isinstance(level, (int, np.integer)) \
                    or not 0 <= level <= 9:
                raise ValueError(f"gzip level must be an integer 0..9, got {level!r}")
            return {"compression": "gzip", "compression_opts": int(level)}
        if self.name == "szip":
            coding = options.get("coding", "nn")
            pixels = options.get("pixels_per_block", 8)
            if coding not in ("nn", "ec"):
                raise ValueError(f"szip coding must be 'nn' or 'ec', got {coding!r}")
            if not isinstance(pixels, (int, np.integer)) or pixels % 2 or not 2 <= pixels <= 32:
                raise ValueError(f"szip pixels_per_block must be an even integer 2..32, got "
                                 f"{pixels!r}")
            return {"compression": "szip", "compression_opts": (coding, int(pixels))}
        return {"compression": self.name}  # lzf


def _describe_options(options: Mapping[str, Any]) -> str:
    if not options:
        return "no options"
    return ", ".join(f"{name} (default {default!r})" for name, default in options.items())


_LOSSY_PLUGINS = {"sz", "sz3", "zfp", "sperr"}
_LEVEL_OPTIONS = {"zstd": "clevel", "blosc": "clevel", "blosc2": "clevel",
                  "bitshuffle": "clevel", "bzip2": "blocksize"}


def _plugin_methods() -> dict[str, CompressionMethod]:
    methods = {}
    for cls in hdf5plugin.get_filters():
        if not h5py.h5z.filter_avail(cls.filter_id):
            continue
        params = inspect.signature(cls.__init__).parameters
        options = {name: p.default for name, p in params.items()
                   if name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        name = cls.__name__.lower()
        methods[name] = CompressionMethod(name, cls.filter_id, options,
                                          lossy=name in _LOSSY_PLUGINS, plugin=cls,
                                          level_option=_LEVEL_OPTIONS.get(name))
    return methods


def _builtin_methods() -> dict[str, CompressionMethod]:
    methods = {
        "gzip": CompressionMethod("gzip", h5py.h5z.FILTER_DEFLATE, {"level": 4},
                                  level_option="level"),
        "lzf": CompressionMethod("lzf", h5py.h5z.FILTER_LZF, {}),
    }
    if h5py.h5z.filter_avail(h5py.h5z.FILTER_SZIP):
        methods["szip"] = CompressionMethod(
            "szip", h5py.h5z.FILTER_SZIP, {"coding": "nn", "pixels_per_block": 8})
    return methods


#: Every compression method this installation can write, by lower-case name.
AVAILABLE_COMPRESSION_METHODS: dict[str, CompressionMethod] = {
    **_builtin_methods(), **_plugin_methods()}

_ALIASES = {"deflate": "gzip", "bshuf": "bitshuffle"}

#: Filters applied before compression: byte shuffle (HDF5's own) and bit shuffle (hdf5plugin).
AVAILABLE_FILTERS = ("shuffle", "bitshuffle")


def get_compression_method(name: str, where: str = "") -> CompressionMethod:
    """The :class:`CompressionMethod` called ``name`` (any case); an unknown name raises
    :class:`ConfigurationError` listing the available ones."""
    key = str(name).lower() if isinstance(name, str) else None
    key = _ALIASES.get(key, key)
    if key not in AVAILABLE_COMPRESSION_METHODS:
        prefix = f"{where}: " if where else ""
        raise ConfigurationError(
            f"{prefix}unknown compression method {name!r}; available: "
            f"{', '.join(AVAILABLE_COMPRESSION_METHODS)}")
    return AVAILABLE_COMPRESSION_METHODS[key]


def normalize_compression(method: str | None, options: Mapping[str, Any] | None,
                          where: str) -> tuple[str | None, dict[str, Any] | None]:
    """Check ``method``/``options`` and return them in canonical form (lower-case name, full
    options dict with defaults for gzip/szip). Raises :class:`ConfigurationError` naming
    ``where``."""
    if method is None:
        if options:
            raise ConfigurationError(f"{where}: compression_options {dict(options)!r} given "
                                     f"without a compression_method")
        return None, None
    if options is not None and not isinstance(options, Mapping):
        raise ConfigurationError(f"{where}: compression_options must be a mapping of option "
                                 f"names to values, got {type(options).__name__}")
    found = get_compression_method(method, where)
    try:
        found.h5py_kwargs(options)
    except (TypeError, ValueError, KeyError) as exc:  # hdf5plugin raises KeyError for names
        raise ConfigurationError(f"{where}: bad options for {found.name}: {exc}") from None
    defaults = {k: v for k, v in found.options.items() if v is not None}
    given = {k: v.item() if isinstance(v, np.generic) else v for k, v in (options or {}).items()}
    return found.name, {**defaults, **given}


#: Byte-stream compressors: the only ones that take variable-length data (HDF5 stores its heap
#: references in the chunk). Blosc on such data crashes the process, so it is refused.
_VLEN_SAFE = frozenset({"gzip", "lzf", "zstd", "lz4", "bzip2"})
#: Methods that model numbers and need particular element types.
_DTYPE_RULES = {
    "sz": ("float32 or float64", lambda dt: dt.kind == "f" and dt.itemsize in (4, 8)),
    "sz3": ("float32 or float64", lambda dt: dt.kind == "f" and dt.itemsize in (4, 8)),
    "sperr": ("float32 or float64", lambda dt: dt.kind == "f" and dt.itemsize in (4, 8)),
    "zfp": ("float32/64 or int32/64", lambda dt: dt.kind in "fi" and dt.itemsize in (4, 8)),
    "fcidecomp": ("8- or 16-bit integers", lambda dt: dt.kind in "iu" and dt.itemsize <= 2),
    "htj2k": ("integers of up to 16 bits", lambda dt: dt.kind in "iu" and dt.itemsize <= 2),
    "szip": ("integers or floats", lambda dt: dt.kind in "iuf"),
}


def check_dtype(method: str | None, filters: tuple[str, ...], dtype: np.dtype,
                where: str) -> None:
    """Refuse a compression method or filter that cannot take ``dtype`` (HDF5 would skip an
    optional filter silently, or the plugin would crash), naming ``where``."""
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        if method is not None and method not in _VLEN_SAFE:
            raise ConfigurationError(f"{where}: {method} cannot compress variable-length data "
                                     f"(strings, objects); use one of "
                                     f"{', '.join(sorted(_VLEN_SAFE))}")
        if "bitshuffle" in filters:
            raise ConfigurationError(f"{where}: bitshuffle cannot filter variable-length data")
        return
    rule = _DTYPE_RULES.get(method or "")
    if rule is not None and not rule[1](dtype):
        raise ConfigurationError(f"{where}: {method} compresses {rule[0]} only, not {dtype}; "
                                 f"choose another method for this dataset")


def normalize_filters(filters: Any, where: str) -> tuple[str, ...]:
    """``None``/``"shuffle"``/``["shuffle"]`` -> a tuple of known filter names."""
    if filters is None:
        return ()
    if isinstance(filters, str):
        filters = (filters,)
    elif not isinstance(filters, (list, tuple)):
        raise ConfigurationError(f"{where}: filter must be a filter name or a list of them "
                                 f"({', '.join(AVAILABLE_FILTERS)}), got {filters!r}")
    names = []
    for item in filters:
        name = str(item).lower()
        if name not in AVAILABLE_FILTERS:
            raise ConfigurationError(f"{where}: unknown filter {item!r}; available: "
                                     f"{', '.join(AVAILABLE_FILTERS)}")
        if name in names:
            raise ConfigurationError(f"{where}: filter {name!r} given twice")
        names.append(name)
    if len(names) > 1:
        raise ConfigurationError(f"{where}: choose one of shuffle and bitshuffle, not both")
    return tuple(names)


def h5py_filter_kwargs(method: str | None, options: Mapping[str, Any] | None,
                       filters: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``create_dataset`` keywords for a (normalized) compression and filter choice.
    Bitshuffle as a filter goes into a dataset creation property list ahead of the
    compression filter, which h5py appends after it."""
    kwargs: dict[str, Any] = {}
    if "shuffle" in filters:
        kwargs["shuffle"] = True
    if "bitshuffle" in filters:
        shuffle = hdf5plugin.Bitshuffle(cname="none")
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_filter(shuffle.filter_id, h5py.h5z.FLAG_MANDATORY, shuffle.filter_options)
        kwargs["dcpl"] = dcpl
    if method is not None:
        kwargs.update(get_compression_method(method).h5py_kwargs(options))
    return kwargs


def read_filters(dataset: h5py.Dataset) -> tuple[str | None, dict[str, Any] | None,
                                                 tuple[str, ...]]:
    """The compression method, options and filters an existing dataset was written with.
    A filter h5forge has no name for raises :class:`ConfigurationError` naming its id."""
    plist = dataset.id.get_create_plist()
    method, options, filters = None, None, []
    by_id = {m.filter_id: m for m in AVAILABLE_COMPRESSION_METHODS.values()}
    for i in range(plist.get_nfilters()):
        filter_id, _flags, values, _name = plist.get_filter(i)
        values = tuple(int(v) for v in values)
        if filter_id == h5py.h5z.FILTER_SHUFFLE:
            filters.append("shuffle")
        elif filter_id in (h5py.h5z.FILTER_FLETCHER32, h5py.h5z.FILTER_SCALEOFFSET):
            continue
        elif filter_id == hdf5plugin.BSHUF_ID and values[4:5] in ((), (0,)):
            filters.append("bitshuffle")  # values: version x2, item size, block, compressor
        elif filter_id == h5py.h5z.FILTER_DEFLATE:
            method, options = "gzip", {"level": values[0] if values else 4}
        elif filter_id == h5py.h5z.FILTER_SZIP:
            coding = "ec" if values and values[0] & h5py.h5z.SZIP_EC_OPTION_MASK else "nn"
            method = "szip"
            options = {"coding": coding, "pixels_per_block": values[1] if len(values) > 1 else 8}
        elif filter_id in by_id:
            found = by_id[filter_id]
            method, options = found.name, _plugin_options(found, values)
        else:
            raise ConfigurationError(
                f"{dataset.file.filename}:{dataset.name} uses HDF5 filter id {filter_id}, "
                f"which h5forge has no name for (is its plugin installed?)")
    return method, options, tuple(filters)


def _plugin_options(method: CompressionMethod, values: tuple[int, ...]) -> dict[str, Any]:
    if method.plugin is None:
        return {}
    try:
        instance = hdf5plugin.from_filter_options(method.filter_id, values)
    except Exception:  # noqa: BLE001 - options hdf5plugin cannot decode: report the defaults
        return {}
    options = {}
    for name, default in method.options.items():
        value = getattr(instance, name, None)
        if value is not None and value != default:
            options[name] = value.item() if isinstance(value, np.generic) else value
    return options
