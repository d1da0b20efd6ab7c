"""Dataset I/O plans: chunking, buffering and compression per dataset, buffered writes, repack.

The workflow::

    cfg = h5forge.get_default_configuration(obj_or_file)   # every dataset, with defaults
    print(cfg)                                             # read the plan
    cfg["recording/data"].chunk_shape = (30000, 128)       # validated on assignment
    cfg.apply_global_compression("zstd", {"clevel": 3})
    h5forge.dump(obj, "out.h5", configuration=cfg)         # or repack(src, dst, cfg)

For an in-memory ``pynwb.NWBFile`` (the ``nwb`` extra): ``get_default_configuration(nwbfile)``,
edit, ``configure_nwbfile(nwbfile, plan)``, then ``NWBHDF5IO.write`` (see :mod:`h5forge.io.nwb`).

``io`` depends only on the core (``errors``, ``_h5``); the store uses it, never the reverse.
"""

from h5forge.io.compression import (
    AVAILABLE_COMPRESSION_METHODS,
    AVAILABLE_FILTERS,
    CompressionMethod,
    get_compression_method,
)
from h5forge.io.configuration import BackendConfiguration, DatasetConfiguration
from h5forge.io.discover import get_current_configuration, get_default_configuration
from h5forge.io.estimate import (
    DEFAULT_BUFFER_GB,
    DEFAULT_CHUNK_MB,
    estimate_default_buffer_shape,
    estimate_default_chunk_shape,
)
from h5forge.io.nwb import configure_nwbfile
from h5forge.io.parallel import WriteReport
from h5forge.io.plan_file import dump_plan, load_plan
from h5forge.io.repack import repack
from h5forge.io.write import write_dataset

__all__ = [
    "DatasetConfiguration",
    "BackendConfiguration",
    "get_default_configuration",
    "get_current_configuration",
    "estimate_default_chunk_shape",
    "estimate_default_buffer_shape",
    "DEFAULT_CHUNK_MB",
    "DEFAULT_BUFFER_GB",
    "AVAILABLE_COMPRESSION_METHODS",
    "AVAILABLE_FILTERS",
    "CompressionMethod",
    "get_compression_method",
    "write_dataset",
    "repack",
    "WriteReport",
    "dump_plan",
    "load_plan",
    "configure_nwbfile",
]
