"""h5forge: keep scientific data in plain HDF5 -- Python object trees, I/O plans, versions,
live files and pipelines in one package.

The store is the part every other part builds on::

    import h5forge
    h5forge.dump({"subject": "M12", "trace": samples}, "session.h5")
    record = h5forge.load("session.h5")
"""

from importlib.metadata import PackageNotFoundError, version

from h5forge import io
from h5forge.errors import H5ForgeError
from h5forge.store import (
    Codec,
    LazyArray,
    Registry,
    UnknownClassWarning,
    UnknownObject,
    alias,
    append,
    delete,
    dump,
    load,
    register_class,
    register_codec,
)
from h5forge.store.configure import get_default_configuration
from h5forge.versions import VersionedFile

try:
    __version__ = version("h5forge")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "dump",
    "load",
    "append",
    "delete",
    "get_default_configuration",
    "io",
    "VersionedFile",
    "register_codec",
    "register_class",
    "alias",
    "Codec",
    "Registry",
    "UnknownObject",
    "UnknownClassWarning",
    "LazyArray",
    "H5ForgeError",
]
