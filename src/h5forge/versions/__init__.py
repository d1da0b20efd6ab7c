"""Versions of an HDF5 file: stage, commit, read any version; chunks stored once.

The API is versioned-hdf5's (switch by changing the import)::

    from h5forge.versions import VersionedFile
    with VersionedFile("data.h5", "a") as vf:
        with vf.stage_version("v1") as g:
            g.create_dataset("temperature", data=readings, chunks=(1000,))
        with vf.stage_version("v2") as g:
            g["temperature"][3] = 21.5
        old = vf["v1"]["temperature"][:]

On-disk layout
--------------
Everything h5forge keeps for versions is under ``/_h5forge_versions`` (attributes ``format``,
``current_version``, ``head_version``); the rest of the file is a **plain copy of the current
version** (the "head"), so h5py alone reads the current data at full speed.

* ``pools/<key>``: content-addressed chunk pools, one per dtype + chunk shape + compression.
  ``data`` stacks distinct chunks along axis 0 (one HDF5 chunk per slot), ``hashes`` holds a
  16-byte BLAKE2b digest per slot, ``free`` lists slots no version uses (reused first). A chunk
  equal to a stored one is stored once; a chunk entirely of fill value is not stored.
* ``versions/<name>``: one group per version (in commit order), attributes ``prev_version``,
  ``timestamp`` (UTC, ``%Y-%m-%d %H:%M:%S.%f%z``) and ``changed`` (JSON list of dataset paths).
  Its child ``root`` is the version's tree: groups as groups (with their attributes), and each
  dataset as a *node group* with attributes ``h5forge_dataset`` (JSON: dtype, shape, chunks,
  maxshape, compression, pool, depth), ``h5forge_fillvalue`` and the dataset's own attributes,
  holding either ``map`` (the pool slot of every chunk, ``-1`` for fill) or ``delta`` (rows of
  ``(flat chunk index, slot)`` that changed) plus ``base``, a hard link to the node it changes.
  A subtree a commit does not touch is a hard link to the previous version's, so a commit
  writes only the changed chunks, one small delta and the groups on the path to them: its cost
  grows with what changed, not with the size of the data or the number of versions.
* Crash safety: writes go through an undo journal (``<file>.h5forge-journal``, see
  :mod:`h5forge.versions.journal`); a commit ends by deleting it. Opening a file whose commit
  was interrupted (even by ``kill -9``) restores the state of the last complete commit.
* Any version reads back through :class:`VersionedFile` (``vf["v1"]["temperature"][...]``), and
  ``export`` (or ``h5forge versions export``) writes it as a plain HDF5 file.
* A versioned tree can live in a group (``VersionedFile(f["calibration"])``): then the mirror
  and ``_h5forge_versions`` are inside that group and the rest of the file is left alone.
* Handles over one open file share one state (:mod:`h5forge.versions.state`); a stage's
  objects refuse use once its block has ended; the mirror is never rewritten over members or
  attributes that plain h5py wrote into it. ``h5forge.versions.compat`` carries
  versioned-hdf5's public names.
* :func:`import_versioned_hdf5` (``h5forge versions import``) converts a versioned-hdf5 file
  with its whole history; :func:`compact` (``h5forge versions gc``) gives back the space of
  deleted versions (``delete_versions`` only frees pool slots for reuse).
"""

from h5forge.versions.compact import CompactSummary, compact
from h5forge.versions.file import FIRST_VERSION, TIMESTAMP_FORMAT, VersionedFile
from h5forge.versions.importer import ImportSummary, import_versioned_hdf5
from h5forge.versions.staging import StagedDataset, StagedGroup

__all__ = ["VersionedFile", "FIRST_VERSION", "TIMESTAMP_FORMAT", "StagedGroup", "StagedDataset",
           "import_versioned_hdf5", "ImportSummary", "compact", "CompactSummary"]
