"""The object store: any Python object tree to plain HDF5 and back.

``dump``/``load`` are re-exported by :mod:`h5forge`; the file layout is documented in
``docs/FORMAT.md``. Codecs (one small class per type family) live in :mod:`h5forge.store.codecs`;
third-party types plug in with :func:`register_codec` (on :data:`default_registry`), through
the ``h5forge.codecs`` entry-point group, or on a :class:`Registry` passed as ``registry=``.
"""

from h5forge.store import inspect, nodes
from h5forge.store.api import append, delete, dump, load, plan
from h5forge.store.codecs import builtin_registry
from h5forge.store.configure import get_default_configuration
from h5forge.store.decoder import Stored, UnknownClassWarning
from h5forge.store.encoder import Encoder
from h5forge.store.layout import FORMAT_VERSION, Node
from h5forge.store.lazy import LazyArray
from h5forge.store.members import MemberMismatchWarning
from h5forge.store.registry import (
    Codec,
    Registry,
    alias,
    default_registry,
    register_class,
    register_codec,
)
from h5forge.store.unknown import UnknownObject

__all__ = [
    "dump",
    "load",
    "append",
    "delete",
    "MemberMismatchWarning",
    "inspect",
    "nodes",
    "plan",
    "get_default_configuration",
    "Codec",
    "Registry",
    "default_registry",
    "builtin_registry",
    "register_codec",
    "register_class",
    "alias",
    "UnknownObject",
    "UnknownClassWarning",
    "LazyArray",
    "Stored",
    "Encoder",
    "Node",
    "FORMAT_VERSION",
]
