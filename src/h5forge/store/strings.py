"""Text as stored nodes: a str as a 0-d UTF-8 dataset, or as UTF-8 bytes (with lone surrogates)
when HDF5 cannot hold it as a string (see docs/FORMAT.md)."""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from h5forge.errors import CorruptFileError
from h5forge.store.decoder import Stored
from h5forge.store.encoder import is_plain_text
from h5forge.store.layout import Node, dataset_node

__all__ = ["str_dataset", "read_str"]

_STR = h5py.string_dtype()


def read_str(stored: Stored) -> str:
    """A str stored as a 0-d UTF-8 dataset, or as uint8 bytes with an ``encoding`` attribute."""
    ds = stored.dataset()
    encoding = stored.attrs.get("encoding")
    if encoding is not None:
        return stored.read_bytes().decode("utf-8", "surrogatepass")
    if h5py.check_string_dtype(ds.dtype) is None or ds.shape != ():
        raise CorruptFileError(f"{stored.path}: class {stored.class_name!r} needs a scalar "
                               f"string dataset, found {ds.dtype} {ds.shape}")
    value = ds[()]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def str_dataset(class_name: str, text: str, **attrs: Any) -> Node:
    if is_plain_text(text):
        return dataset_node(class_name, np.array(text, dtype=object), h5dtype=_STR, **attrs)
    raw = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    return dataset_node(class_name, raw, encoding="utf-8-surrogatepass", **attrs)
