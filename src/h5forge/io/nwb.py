"""Plans for NWB files: the workflow of NeuroConv's backend configuration, with h5forge's plans.

::

    plan = h5forge.io.get_default_configuration(nwbfile)   # every dataset pynwb will write
    print(plan)                                             # located as in the file
    plan["acquisition/ElectricalSeries/data"].compression_method = "zstd"
    h5forge.io.configure_nwbfile(nwbfile, plan)             # checks the whole plan, then wraps
    with pynwb.NWBHDF5IO("session.nwb", "w") as io:
        io.write(nwbfile)                                   # written as planned

Datasets are found the way pynwb writes them: the NWB file is built with pynwb's own build
manager (nothing is written), so a location is exactly the HDF5 path the dataset will have
(``acquisition/ElectricalSeries/data``, ``general/extracellular_ephys/electrodes/location``,
``intervals/trials/start_time``, ``processing/behavior/<table>/<column>``, ...). Every dataset
whose data is the user's array, list, ``h5py.Dataset``, array-like or hdmf data chunk iterator is
planned; scalars, empty arrays, references to other NWB objects, compound tables and data the
user already wrapped in an ``H5DataIO`` of their own are not (they are written as pynwb would).

pynwb and hdmf are imported only when an NWB file is planned (the ``nwb`` extra:
``pip install h5forge[nwb]``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from typing import Any

import numpy as np

from h5forge.errors import ConfigurationError, MissingDependencyError, TargetError
from h5forge.io.configuration import BackendConfiguration, DatasetConfiguration

__all__ = [
    "is_nwbfile",
    "NWBDataset",
    "find_nwb_datasets",
    "get_default_nwb_configuration",
    "configure_nwbfile",
    "plan_from_neuroconv",
]

#: Float datasets that hold times (monotonic, or nearly): shuffle before compressing.
_TIME_NAMES = ("timestamps",)
_TIME_SUFFIXES = ("_time", "_times")


def _require() -> None:
    try:
        import hdmf  # noqa: F401
        import pynwb  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"planning NWB files needs pynwb and hdmf ({exc}); install the nwb extra: "
            f"pip install 'h5forge[nwb]'") from None


def is_nwbfile(x: Any) -> bool:
    """Whether ``x`` is an in-memory ``pynwb.NWBFile`` (without importing pynwb: if it is not
    imported, ``x`` cannot be one)."""
    pynwb = sys.modules.get("pynwb")
    return pynwb is not None and isinstance(x, pynwb.NWBFile)


@dataclasses.dataclass
class NWBDataset:
    """One dataset pynwb will write: its ``location`` in the file, the NWB object holding it
    (``container``) and the field (``"data"`` for a table column or other ``Data`` object),
    the user's data (``source``; inside an h5forge wrapper, what it wraps) and its ``dtype``
    and ``shape`` as they will be written."""

    location: str
    container: Any
    field: str
    source: Any
    dtype: np.dtype
    shape: tuple[int, ...]
    is_data_object: bool  # an hdmf Data (its data is the dataset), not a field of a group


def _builder_path(builder: Any) -> str:
    """``root/acquisition/x/data`` -> ``acquisition/x/data``."""
    parts = builder.path.split("/")
    return "/".join(parts[1:])


def _string_dtype(text: str) -> np.dtype | None:
    import h5py

    if text in ("utf8", "utf", "text", "utf-8"):
        return h5py.string_dtype("utf-8")
    if text in ("ascii", "bytes"):
        return h5py.string_dtype("ascii")
    return None


def _compound_dtype(fields: list) -> np.dtype | None:
    """The numpy dtype of an NWB compound type (a list of hdmf DtypeSpecs), or ``None`` when a
    field is a reference or not a plain type."""
    out = []
    for field in fields:
        spec = getattr(field, "dtype", None)
        if not isinstance(spec, str):
            return None  # a reference (RefSpec) or a nested type
        dtype = _string_dtype(spec)
        if dtype is None:
            try:
                dtype = np.dtype({"float": "float32", "double": "float64", "int": "int32",
                                  "short": "int16", "long": "int64"}.get(spec, spec))
            except TypeError:
                return None
        out.append((field.name, dtype))
    return np.dtype(out)


def _dtype_and_shape(source: Any, builder_dtype: Any) -> tuple[np.dtype, tuple[Any, ...]]:
    """What the dataset will be: numpy dtype (variable-length strings as h5py's) and shape
    (``None`` on an axis an iterator does not know yet)."""
    import h5py
    from hdmf.data_utils import AbstractDataChunkIterator
    from hdmf.utils import get_data_shape

    if isinstance(source, AbstractDataChunkIterator):
        shape = tuple(source.maxshape)
        dtype = source.dtype
    elif hasattr(source, "shape") and hasattr(source, "dtype"):
        shape, dtype = tuple(source.shape), source.dtype
    else:
        shape, dtype = tuple(get_data_shape(source)), None
    if isinstance(builder_dtype, str) and _string_dtype(builder_dtype) is not None:
        return _string_dtype(builder_dtype), shape
    if isinstance(builder_dtype, (type, np.dtype)):  # the type pynwb will write
        try:
            dtype = np.dtype(builder_dtype)
        except TypeError:
            pass
    if dtype is None:
        dtype = np.asarray(source).dtype
    dtype = np.dtype(dtype)
    if dtype.kind == "U" or (dtype.kind == "O" and h5py.check_string_dtype(dtype) is None
                             and _all_text(source)):
        dtype = h5py.string_dtype("utf-8")
    return dtype, shape


def _all_text(source: Any) -> bool:
    try:
        return all(isinstance(v, str) for v in np.asarray(source, dtype=object).flat)
    except (TypeError, ValueError):
        return False


_PLAIN = (bool, int, float, complex, str, bytes, np.generic)


def _plain_values(value: Any) -> bool:
    """Numbers or text that h5py writes as they are (pynwb converts dates and other objects
    while building; a wrapper would bypass that)."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None and not isinstance(value, (list, tuple)):
        dtype = np.dtype(dtype)
        if dtype.kind in "biufcSU" or dtype.names is not None:
            return True
        return dtype.kind == "O" and isinstance(value, np.ndarray) and _all_text(value)
    first = value
    while isinstance(first, (list, tuple)):
        if not first:
            return True
        first = first[0]
    if isinstance(first, np.ndarray):  # rows given as arrays (e.g. image masks)
        return first.dtype.kind in "biufcSU"
    return isinstance(first, _PLAIN) and not isinstance(first, np.datetime64)


def _holds_containers(value: Any) -> bool:
    from hdmf.container import AbstractContainer

    if isinstance(value, AbstractContainer):
        return True
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, AbstractContainer) for v in value[:1000])
    return isinstance(value, np.ndarray) and value.dtype.kind == "O" and any(
        isinstance(v, AbstractContainer) for v in value.flat[:1000])


def _build(nwbfile: Any) -> Any:
    """Build ``nwbfile`` with a fresh pynwb build manager (what ``NWBHDF5IO.write`` does before
    writing): the builders carry every dataset's HDF5 path and the data pynwb will write."""
    import pynwb

    manager = pynwb.get_manager()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NWBHDF5IO.write gives the same warnings again
        manager.build(nwbfile)
    return manager


def find_nwb_datasets(nwbfile: Any) -> tuple[dict[str, NWBDataset], dict[str, str]]:
    """Every dataset of ``nwbfile`` a plan can shape, by location, and the datasets pynwb will
    write that no plan can shape, by location, each with the reason."""
    _require()
    from hdmf.build import DatasetBuilder, GroupBuilder
    from hdmf.container import AbstractContainer, Data
    from hdmf.data_utils import AbstractDataChunkIterator, DataIO

    from h5forge.io._nwb_wrap import PlannedDataIO

    if not is_nwbfile(nwbfile):
        raise TargetError(f"expected an in-memory pynwb.NWBFile, got {type(nwbfile).__name__}")
    manager = _build(nwbfile)
    found: dict[str, NWBDataset] = {}
    skipped: dict[str, str] = {}

    def consider(location: str, container: Any, field: str, value: Any, builder: Any,
                 is_data_object: bool) -> None:
        if location in found or location in skipped:
            return
        if isinstance(value, AbstractContainer):  # e.g. timestamps=<another TimeSeries>
            skipped[location] = (f"a link to the data of {value.name!r}, written once, there; "
                                 f"plan it at that location")
            return
        if isinstance(value, PlannedDataIO):
            value = value.source
        elif isinstance(value, DataIO):
            skipped[location] = (f"already wrapped in a {type(value).__name__} by you (its own "
                                 f"settings are kept); unwrap it to plan it")
            return
        compound = _compound_dtype(builder.dtype) if isinstance(builder.dtype, list) else None
        if value is None or builder.data is None and compound is None \
                or type(builder.dtype).__name__ == "RefSpec" \
                or isinstance(builder.dtype, list) and compound is None \
                or _holds_containers(value):
            skipped[location] = "holds references to NWB objects, which pynwb writes itself"
            return
        if isinstance(value, (str, bytes)) or np.ndim(value) == 0 and not isinstance(
                value, AbstractDataChunkIterator):
            return  # a scalar: nothing to plan, not worth listing
        if not _plain_values(value):
            skipped[location] = ("pynwb converts its values (dates, objects) while writing; "
                                 "written as pynwb makes it")
            return
        try:
            if compound is not None:  # a table of records (e.g. a pixel_mask): one per row
                dtype, shape = compound, (len(value),)
            else:
                dtype, shape = _dtype_and_shape(value, builder.dtype)
        except (TypeError, ValueError) as exc:
            skipped[location] = f"its shape or type cannot be told before writing ({exc})"
            return
        if any(n is None for n in shape):
            skipped[location] = (f"an iterator of unknown length (maxshape {shape}); give it a "
                                 f"maxshape to plan it")
            return
        if not shape or not all(shape):
            return  # empty: written as it is
        found[location] = NWBDataset(location, container, field, value, dtype,
                                     tuple(int(n) for n in shape), is_data_object)

    for container in nwbfile.all_children():
        builder = manager.get_builder(container)
        if builder is None:
            continue
        if isinstance(container, Data) and isinstance(builder, DatasetBuilder):
            consider(_builder_path(builder), container, "data", container.data, builder, True)
            continue
        if not isinstance(builder, GroupBuilder):
            continue
        mapper = manager.type_map.get_map(container)
        for spec in mapper.spec.datasets:
            if spec.data_type_def is not None or spec.data_type_inc is not None:
                continue  # a typed dataset (a table column...) is a Data object of its own
            dataset = builder.datasets.get(spec.name)
            field = mapper.get_attribute(spec)
            if dataset is None or field not in container.fields:
                continue
            if isinstance(spec.dtype, str) and any(
                    t in spec.dtype for t in ("text", "utf", "ascii", "bytes", "isodatetime")):
                # pynwb converts these values and rebuilds any wrapper from its keywords
                skipped[_builder_path(dataset)] = ("text pynwb converts while writing; "
                                                   "written as pynwb makes it")
                continue
            consider(_builder_path(dataset), container, field, container.fields[field],
                     dataset, False)
    return dict(sorted(found.items())), dict(sorted(skipped.items()))


def _default_entry(dataset: NWBDataset) -> DatasetConfiguration:
    from hdmf.data_utils import GenericDataChunkIterator

    entry = DatasetConfiguration(dataset.location, dataset.dtype, dataset.shape)
    source = dataset.source
    if isinstance(source, GenericDataChunkIterator):  # keep the shapes its maker chose
        try:
            entry.update(chunk_shape=tuple(source.chunk_shape),
                         buffer_shape=tuple(source.buffer_shape))
        except ConfigurationError:
            pass  # shapes h5forge would refuse: the defaults
    name = dataset.location.rsplit("/", 1)[-1]
    is_time = name in _TIME_NAMES or name.endswith(_TIME_SUFFIXES)
    if is_time and dataset.dtype.kind == "f" and entry.chunk_shape is not None:
        entry.filter = ("shuffle",)  # times change slowly: shuffled bytes compress far better
    return entry


def get_default_nwb_configuration(nwbfile: Any) -> BackendConfiguration:
    """The default plan for every dataset of the in-memory ``pynwb.NWBFile`` a plan can shape
    (see :func:`find_nwb_datasets`), located as the datasets will be in the written file:
    h5forge's defaults (about 10 MB chunks keeping trailing axes whole, 500 MB buffers, gzip
    level 4), plus the shuffle filter for float times (``timestamps``, ``*_time(s)``); a
    source that is an hdmf ``GenericDataChunkIterator`` keeps its own chunk and buffer shapes.
    Also reached through :func:`h5forge.io.get_default_configuration`."""
    found, _skipped = find_nwb_datasets(nwbfile)
    return BackendConfiguration([_default_entry(d) for d in found.values()])


def _as_plan(plan: Any) -> BackendConfiguration | None:
    if plan is None or isinstance(plan, BackendConfiguration):
        return plan
    if isinstance(plan, (str, os.PathLike)):
        return BackendConfiguration.from_yaml(plan)
    raise ConfigurationError(f"configure_nwbfile takes a BackendConfiguration, the path of a "
                             f"YAML plan or None, got {type(plan).__name__}")


def _list(names: Any, limit: int = 6) -> str:
    names = list(names)
    text = ", ".join(names[:limit]) if names else "(none)"
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _needs_iterator(source: Any) -> bool:
    """Sources read one buffer at a time: anything not already whole in memory."""
    from hdmf.data_utils import AbstractDataChunkIterator, GenericDataChunkIterator

    if isinstance(source, GenericDataChunkIterator):
        return True
    if isinstance(source, AbstractDataChunkIterator):
        return False  # it makes its own blocks; hdmf writes them as they come
    if isinstance(source, np.memmap):
        return True
    return not isinstance(source, (np.ndarray, list, tuple))


def configure_nwbfile(nwbfile: Any, plan: BackendConfiguration | str | os.PathLike | None = None,
                      *, progress: bool | None = None) -> BackendConfiguration:
    """Wrap every planned dataset of the in-memory ``nwbfile`` so ``NWBHDF5IO.write`` writes it
    as ``plan`` says: chunks, compression (gzip, lzf, szip and every hdf5plugin filter) and the
    shuffle or bitshuffle filter.

    ``plan`` is a :class:`BackendConfiguration` (usually from
    :func:`h5forge.io.get_default_configuration` of this file, then edited), the path of a YAML
    plan, or ``None`` (the defaults). Datasets the plan does not name get the defaults.
    The whole plan is checked before anything is wrapped: a location this file does not have,
    one no plan can shape (see :func:`find_nwb_datasets`), or data of another shape or dtype
    raises :class:`ConfigurationError` naming the location, and the file is left as it was.

    Data in memory (arrays, lists) is written as it is. Any other source pynwb accepts (an
    ``h5py.Dataset``, an ``np.memmap``, an hdmf ``GenericDataChunkIterator``) is read one
    ``buffer_shape`` block at a time through hdmf's iterator protocol, so memory stays bounded
    by the plan's buffer however large the source. Another hdmf data chunk iterator (e.g. a
    ``DataChunkIterator`` over a generator) is written in the blocks it makes itself.
    ``progress``: a tqdm bar per iterated dataset (``None``: only when stderr is a terminal).

    Calling it again with another plan replaces the wrappers. Returns the plan applied to
    every dataset (copies of the given entries, and the defaults): changing ``plan`` after
    this call changes nothing; configure again to apply a change."""
    _require()
    from h5forge.io._nwb_wrap import PlannedChunkIterator, PlannedDataIO

    plan = _as_plan(plan)
    found, skipped = find_nwb_datasets(nwbfile)
    entries: dict[str, DatasetConfiguration] = {}
    for location, entry in (plan.items() if plan is not None else ()):
        if location not in found:
            if location in skipped:
                raise ConfigurationError(f"{location}: this dataset cannot be planned: "
                                         f"{skipped[location]}; leave it out of the plan")
            raise ConfigurationError(
                f"{location}: the plan names a dataset this NWB file does not have (a plan made "
                f"for another file?); datasets here: {_list(found)}; make the plan with "
                f"h5forge.io.get_default_configuration(nwbfile)")
        dataset = found[location]
        try:
            entry.check_data(dataset.shape, dataset.dtype, location)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{exc} (a plan made for another file?)") from None
        if dataset.dtype.names is not None and (entry.chunk_shape is None
                                                or "bitshuffle" in entry.filter):
            raise ConfigurationError(
                f"{location}: pynwb writes a compound dataset through hdmf's H5DataIO "
                f"keywords, which cannot say contiguous or bitshuffle; keep it chunked and use "
                f"shuffle or no filter")
        # A copy: changing the caller's plan after this call cannot change what was checked.
        entries[location] = DatasetConfiguration.from_dict(location, entry.to_dict())
    for location, dataset in found.items():
        if location not in entries:
            entries[location] = _default_entry(dataset)
    # Everything that can fail is done before the first assignment: a failure leaves the
    # file untouched.
    wrappers = {}
    for location, dataset in found.items():
        entry = entries[location]
        data = dataset.source
        try:
            if _needs_iterator(data):
                data = PlannedChunkIterator(dataset.source, entry, progress)
            wrappers[location] = PlannedDataIO(data, entry, dataset.source)
        except (AssertionError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"{location}: hdmf refuses this plan ({exc})") from exc
    for location, dataset in found.items():
        wrapped = wrappers[location]
        if dataset.is_data_object:
            dataset.container.transform(lambda _old, new=wrapped: new)
        else:
            dataset.container.fields[dataset.field] = wrapped
    return BackendConfiguration(entries)


def _neuroconv_compression(config: Any, where: str) -> tuple[Any, Any, tuple[str, ...]]:
    """(method, options, filters) from a NeuroConv HDF5 dataset configuration: ``compressors``
    and ``compressor_options`` (NeuroConv 0.10), or ``compression_method`` and
    ``compression_options`` (earlier)."""
    from h5forge.io.compression import AVAILABLE_COMPRESSION_METHODS, _plugin_options

    compressors = getattr(config, "compressors", None)
    if compressors is not None or hasattr(config, "compressor_options"):
        compressors = list(compressors or [])
        options = list(getattr(config, "compressor_options", None) or [None] * len(compressors))
    else:
        method = getattr(config, "compression_method", None)
        compressors = [] if method is None else [method]
        options = [getattr(config, "compression_options", None)]
    method, method_options, filters = None, None, []
    for compressor, opts in zip(compressors, options):
        if compressor in ("shuffle", "fletcher32"):
            if compressor == "fletcher32":
                raise ConfigurationError(f"{where}: h5forge plans have no fletcher32 checksum; "
                                         f"take it out of NeuroConv's compressors first")
            filters.append("shuffle")
            continue
        if isinstance(compressor, str):
            method = compressor
            opts = dict(opts or {})
            if method == "gzip" and opts:  # NeuroConv passes the one value by position
                opts = {"level": next(iter(opts.values()))}
            elif method == "szip" and opts:
                coding, pixels = next(iter(opts.values()))
                opts = {"coding": coding, "pixels_per_block": pixels}
            method_options = opts or None
            continue
        filter_id = getattr(compressor, "filter_id", None)  # an hdf5plugin filter object
        by_id = {m.filter_id: m for m in AVAILABLE_COMPRESSION_METHODS.values()}
        if filter_id not in by_id:
            raise ConfigurationError(f"{where}: NeuroConv's compressor {compressor!r} is not a "
                                     f"filter h5forge knows on this machine")
        found = by_id[filter_id]
        method = found.name
        method_options = _plugin_options(found, tuple(compressor.filter_options)) or None
    return method, method_options, tuple(filters)


def _neuroconv_location(dataset: NWBDataset) -> str:
    """NeuroConv's ``location_in_file`` of a dataset: the names of its object and the objects
    above it, the top one prefixed by the NWBFile field holding it (``acquisition``...)."""
    pynwb = sys.modules["pynwb"]
    location, obj = dataset.field, dataset.container
    while True:
        parent = obj.parent
        if parent is None or isinstance(parent, pynwb.NWBFile):
            if parent is not None:
                for name, value in parent.fields.items():
                    if isinstance(value, dict) and obj.name in value:
                        return f"{name}/{obj.name}/{location}"
            return f"{obj.name}/{location}"
        location, obj = f"{obj.name}/{location}", parent


def plan_from_neuroconv(nwbfile: Any, backend_configuration: Any) -> BackendConfiguration:
    """An h5forge plan from NeuroConv's ``backend_configuration`` for the same ``nwbfile``
    (what ``neuroconv.tools.nwb_helpers.get_default_backend_configuration(nwbfile,
    backend="hdf5")`` gives, edited or not): the same chunks, buffers, compression and shuffle
    for each dataset, located by its HDF5 path (NeuroConv's ``location_in_file`` of a table
    column, e.g. ``electrodes/location/data``, is not one) and matched through the object id
    and dataset name NeuroConv records (for a configuration made from another file of the same
    structure, by NeuroConv's location, as NeuroConv remaps). Links to another object's data
    are skipped, as NeuroConv does. Datasets NeuroConv left out get h5forge's defaults when
    the plan is applied. An entry that matches nothing here raises
    :class:`ConfigurationError` (a configuration made for another file)."""
    from hdmf.container import AbstractContainer

    found, skipped = find_nwb_datasets(nwbfile)
    by_field = {(id(d.container), d.field): d for d in found.values()}
    by_neuroconv_location = {_neuroconv_location(d): d for d in found.values()}
    objects = {child.object_id: child for child in nwbfile.all_children()}
    configurations = getattr(backend_configuration, "dataset_configurations", None)
    if not isinstance(configurations, dict):
        raise ConfigurationError(f"expected a NeuroConv backend configuration (with "
                                 f"dataset_configurations), got "
                                 f"{type(backend_configuration).__name__}")
    entries = []
    for nc_location, config in configurations.items():
        container = objects.get(getattr(config, "object_id", None))
        if container is None:  # made for an equivalent file: match by NeuroConv's location
            dataset = by_neuroconv_location.get(nc_location)
            if dataset is None:
                raise ConfigurationError(
                    f"{nc_location}: NeuroConv's configuration names object "
                    f"{getattr(config, 'object_id', None)}, which this NWB file does not have, "
                    f"and no dataset here has that NeuroConv location (a configuration made "
                    f"for another file?)")
        elif isinstance(container.fields.get(config.dataset_name), AbstractContainer):
            continue  # a link to another object's data: NeuroConv skips it too
        else:
            dataset = by_field.get((id(container), config.dataset_name))
        if dataset is None:
            raise ConfigurationError(f"{nc_location}: not a dataset h5forge can plan in this "
                                     f"file; {_list(skipped.values(), 3)}")
        where = f"{dataset.location} (NeuroConv's {nc_location})"
        full_shape = tuple(getattr(config, "full_shape", dataset.shape))
        if full_shape != dataset.shape:
            raise ConfigurationError(f"{where}: NeuroConv's configuration is for shape "
                                     f"{full_shape} but the data is {dataset.shape} (a "
                                     f"configuration made for another file?)")
        method, options, filters = _neuroconv_compression(config, where)
        chunks = None if config.chunk_shape is None else tuple(config.chunk_shape)
        entries.append(DatasetConfiguration(
            dataset.location, dataset.dtype, dataset.shape, chunk_shape=chunks,
            buffer_shape=tuple(config.buffer_shape), compression_method=method,
            compression_options=options, filter=filters))
    return BackendConfiguration(entries)
