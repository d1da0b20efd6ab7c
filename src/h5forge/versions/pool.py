"""Content-addressed chunk pools: each distinct chunk is stored once.

A pool holds the chunks of every dataset (in every version) with the same dtype, chunk shape
and compression. ``data`` is an HDF5 dataset of ``slots`` chunks stacked along axis 0 (slot
``i`` is rows ``i*c0 .. (i+1)*c0``, exactly one HDF5 chunk, compressed as the dataset asks).
``hashes`` holds a 16-byte BLAKE2b digest per slot, so a new chunk equal to a stored one is
found without reading any chunk. ``free`` lists slots that no version uses any more
(``delete_versions``); they are filled again before the pool grows.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import h5py
import numpy as np

from h5forge._text import dtype_from_text, dtype_to_text

__all__ = ["ChunkPool", "chunk_digest", "pool_key"]

_DIGEST = 16


def pool_key(dtype: np.dtype, chunks: tuple[int, ...], compression: Any,
             compression_opts: Any, filters: dict | None = None) -> str:
    """The name of the pool for this dtype, chunk shape, compression and other filters
    (shuffle, fletcher32, scaleoffset: ``filters``, only those set)."""
    parts = [dtype_to_text(dtype), list(chunks), compression,
             compression_opts if not isinstance(compression_opts, tuple)
             else list(compression_opts)]
    if filters:
        parts.append(filters)
    text = json.dumps(parts, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def chunk_digest(chunk: np.ndarray) -> bytes:
    """The content address of a chunk (its bytes; variable-length items length-prefixed)."""
    h = hashlib.blake2b(digest_size=_DIGEST)
    if chunk.dtype.hasobject:
        for item in chunk.ravel():
            raw = item.encode("utf-8") if isinstance(item, str) else bytes(item)
            h.update(len(raw).to_bytes(8, "little"))
            h.update(raw)
    else:
        h.update(np.ascontiguousarray(chunk).tobytes())
    return h.digest()


class ChunkPool:
    """One pool group: ``data``, ``hashes``, ``free``; an in-memory digest index per session."""

    def __init__(self, group: h5py.Group):
        self.group = group
        meta = json.loads(group.attrs["pool"])
        self.dtype = dtype_from_text(meta["dtype"])
        self.chunks = tuple(meta["chunks"])
        self.data = group["data"]
        self.hashes = group["hashes"]
        self._index: dict[bytes, int] | None = None
        self._free: list[int] | None = None

    @classmethod
    def create(cls, parent: h5py.Group, name: str, dtype: np.dtype, chunks: tuple[int, ...],
               compression: Any, compression_opts: Any,
               filters: dict | None = None) -> ChunkPool:
        group = parent.create_group(name)
        group.attrs["pool"] = json.dumps({"dtype": dtype_to_text(dtype), "chunks": list(chunks),
                                          "compression": compression})
        storage = chunks if chunks else (1,)
        kwargs = {}
        if compression is not None:
            kwargs = {"compression": compression, "compression_opts": compression_opts}
        if chunks:  # (a 0-d dataset's pool is one element per slot: no filters to apply)
            kwargs.update(filters or {})
        group.create_dataset("data", shape=(0,) + storage[1:], maxshape=(None,) + storage[1:],
                             dtype=dtype, chunks=storage, **kwargs)
        group.create_dataset("hashes", shape=(0, _DIGEST), maxshape=(None, _DIGEST),
                             dtype=np.uint8, chunks=(4096, _DIGEST))
        group.create_dataset("free", shape=(0,), maxshape=(None,), dtype=np.int64,
                             chunks=(1024,))
        return cls(group)

    @property
    def slots(self) -> int:
        return self.hashes.shape[0]

    def _rows(self, slot: int) -> slice:
        c0 = self.chunks[0] if self.chunks else 1
        return slice(slot * c0, (slot + 1) * c0)

    def _load_index(self) -> dict[bytes, int]:
        if self._index is None:
            raw = self.hashes[()]
            free = set(self.group["free"][()].tolist())
            self._free = sorted(free, reverse=True)
            self._index = {bytes(row): i for i, row in enumerate(raw) if i not in free}
        return self._index

    def read(self, slot: int) -> np.ndarray:
        """The chunk in ``slot`` (full chunk shape)."""
        data = self.data[self._rows(slot)]
        return data.reshape(self.chunks) if not self.chunks else data

    def store(self, chunk: np.ndarray) -> int:
        """The slot of ``chunk``: an equal stored chunk's, else a new (or freed) slot."""
        digest = chunk_digest(chunk)
        index = self._load_index()
        slot = index.get(digest)
        if slot is not None:
            return slot
        block = chunk.reshape((1,)) if not self.chunks else chunk
        if self._free:
            slot = self._free.pop()
            self.group["free"].resize((len(self._free),))
            if self._free:
                self.group["free"][:] = sorted(self._free, reverse=True)
        else:
            slot = self.slots
            self.hashes.resize((slot + 1, _DIGEST))
            self.data.resize((self._rows(slot).stop,) + self.data.shape[1:])
        self.data[self._rows(slot)] = block
        self.hashes[slot] = np.frombuffer(digest, dtype=np.uint8)
        index[digest] = slot
        return slot

    def store_many(self, chunks: list[np.ndarray]) -> list[int]:
        """The slots of ``chunks`` (as :meth:`store`), new ones appended in one write."""
        index = self._load_index()
        slots: list[int] = []
        fresh: list[tuple[bytes, np.ndarray]] = []
        pending: dict[bytes, int] = {}
        for chunk in chunks:
            digest = chunk_digest(chunk)
            slot = index.get(digest)
            if slot is None:
                slot = pending.get(digest)
            if slot is None:
                if self._free:
                    slot = self.store(chunk)
                else:
                    slot = -(len(fresh) + 1)  # placeholder: appended below
                    pending[digest] = slot
                    fresh.append((digest, chunk))
            slots.append(slot)
        if fresh:
            first = self.slots
            self.hashes.resize((first + len(fresh), _DIGEST))
            self.data.resize((self._rows(first + len(fresh) - 1).stop,) + self.data.shape[1:])
            block = np.stack([c.reshape((1,)) if not self.chunks else c for _, c in fresh])
            self.data[self._rows(first).start:self._rows(first + len(fresh) - 1).stop] = \
                block.reshape((-1,) + self.data.shape[1:])
            self.hashes[first:first + len(fresh)] = np.frombuffer(
                b"".join(d for d, _ in fresh), dtype=np.uint8).reshape(-1, _DIGEST)
            for i, (digest, _) in enumerate(fresh):
                index[digest] = first + i
            slots = [first - s - 1 if s < 0 else s for s in slots]
        return slots

    def release(self, slots: set[int]) -> None:
        """Mark ``slots`` unused by any version: their space is reused by later chunks."""
        index = self._load_index()
        for digest, slot in list(index.items()):
            if slot in slots:
                del index[digest]
        self._free = sorted(set(self._free or []) | set(slots), reverse=True)
        free = self.group["free"]
        free.resize((len(self._free),))
        if self._free:
            free[:] = self._free
