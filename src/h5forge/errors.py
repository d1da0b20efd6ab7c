"""The errors h5forge raises on purpose.

Every error derives from :class:`H5ForgeError`, so ``except h5forge.H5ForgeError`` catches
everything the package raises deliberately.  Messages name the HDF5 path (or the path inside the
Python object tree) and say what to do about it.
"""

from __future__ import annotations

__all__ = [
    "H5ForgeError",
    "CodecError",
    "TargetError",
    "UnsafeContentError",
    "CorruptFileError",
    "FormatVersionError",
    "NodeExistsError",
    "NodeNotFoundError",
    "UpdateError",
    "ResourceLimitError",
    "MissingDependencyError",
    "ConfigurationError",
    "VersionError",
    "VersionClosedError",
    "FlowConfigError",
    "FlowError",
    "FollowError",
    "FollowTimeout",
    "LiveWriterError",
    "ShapeMismatchError",
    "UnknownVersionError",
]


class H5ForgeError(Exception):
    """Base of every error h5forge raises on purpose."""


class CodecError(H5ForgeError, TypeError):
    """An object cannot be encoded (or a stored node cannot be decoded) by any codec."""


class TargetError(H5ForgeError, TypeError):
    """A target or source is neither a path nor an open h5py group (or is closed)."""


class UnsafeContentError(H5ForgeError):
    """A file asks for something unsafe (unpickling, importing an untrusted module)."""


class CorruptFileError(H5ForgeError, ValueError):
    """A stored node does not have the layout its ``class`` attribute promises."""


class FormatVersionError(H5ForgeError):
    """A file was written by a newer, incompatible h5forge format."""


class NodeExistsError(H5ForgeError, FileExistsError):
    """Writing would replace an existing HDF5 node and ``overwrite`` was not given."""


class NodeNotFoundError(H5ForgeError, KeyError):
    """The requested HDF5 path does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UpdateError(H5ForgeError, ValueError):
    """An in-place update (``dump`` into a stored tree, ``append``, ``delete``) cannot be
    expressed in the stored layout (a member of a set, a column of a DataFrame, ...). Raised
    before anything is written."""


class ResourceLimitError(H5ForgeError, MemoryError):
    """Reading a node would need more memory than the machine has (e.g. a crafted shape)."""


class MissingDependencyError(H5ForgeError, ImportError):
    """An optional library is needed; the message names the pip extra that installs it."""


class ConfigurationError(H5ForgeError, ValueError):
    """A dataset I/O configuration (chunks, buffers, compression) is invalid."""


class VersionError(H5ForgeError, ValueError):
    """A versioned-file operation is invalid (unknown version, write to a committed one...).

    A ``ValueError`` too, as versioned-hdf5 raises these."""


class VersionClosedError(VersionError):
    """A stage whose ``with`` block has ended, or a closed ``VersionedFile``, was used."""


class FlowConfigError(H5ForgeError, ValueError):
    """A flow pipeline configuration is invalid."""


class FlowError(H5ForgeError, ValueError):
    """A flow failed while running (a stage raised, a require could not be resolved, bad
    references...)."""


class FollowError(H5ForgeError):
    """Following a live file failed (it cannot be opened for SWMR reading, bad key paths...)."""


class FollowTimeout(FollowError, TimeoutError):
    """A followed live file could not be opened, or produced nothing new, within the timeout."""


class LiveWriterError(H5ForgeError):
    """A live (SWMR) writer was asked for something SWMR does not allow."""


class ShapeMismatchError(H5ForgeError, ValueError):
    """Data does not have the shape or dtype it was declared (or planned) to have."""


class UnknownVersionError(VersionError, KeyError):
    """A versioned file has no version of that name (or at that time)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
