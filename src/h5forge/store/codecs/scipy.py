"""scipy.sparse matrices and arrays, in the layout of ``scipy.sparse.save_npz``.

A sparse matrix is a group (``class`` = ``scipy.sparse.csr_matrix``, ``scipy.sparse.coo_array``,
...) with the attributes ``format`` and ``shape`` and the datasets scipy itself saves:
``data``, ``indices``, ``indptr`` (csr, csc, bsr), ``data``, ``row``, ``col`` (coo, and lil and
dok, which are stored through their coo form) or ``data``, ``offsets`` (dia). h5py reads them
as they are. scipy is imported only when a sparse object is met; without it, the group loads as
an :class:`~h5forge.UnknownObject` holding those arrays, with a warning.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from h5forge.errors import CodecError, CorruptFileError
from h5forge.store import registry
from h5forge.store.nodes import (
    LazyArray,
    array_node,
    decode_object,
    eager,
    group_node,
    inline_value,
)

__all__ = ["SparseCodec", "PARTS"]

#: Datasets of each format (scipy's save_npz names).
PARTS = {"csr": ("data", "indices", "indptr"), "csc": ("data", "indices", "indptr"),
         "bsr": ("data", "indices", "indptr"), "coo": ("data", "row", "col"),
         "dia": ("data", "offsets"), "lil": ("data", "row", "col"),
         "dok": ("data", "row", "col")}
_NAMES = tuple(f"scipy.sparse.{fmt}_{kind}" for fmt in PARTS for kind in ("matrix", "array"))


def _public(tp: type) -> str | None:
    sp = sys.modules.get("scipy.sparse")
    name = f"{tp.__name__}"
    if sp is not None and getattr(sp, name, None) is tp and f"scipy.sparse.{name}" in _NAMES:
        return f"scipy.sparse.{name}"
    return None


class SparseCodec(registry.Codec):
    """scipy.sparse ``*_matrix`` and ``*_array`` of every format (2-D)."""

    names = _NAMES

    def matches(self, tp):
        sp = sys.modules.get("scipy.sparse")
        return sp is not None and issubclass(tp, (sp.spmatrix, sp.sparray))

    def encode(self, obj, enc, where):
        name = _public(type(obj))
        if name is None:
            raise CodecError(f"cannot store {where}: {registry.class_name_of(type(obj))} is not "
                             f"one of scipy.sparse's own classes; register a codec for it")
        fmt = obj.format
        if fmt not in PARTS or obj.ndim != 2:
            raise CodecError(f"cannot store {where}: sparse format {fmt!r} with {obj.ndim} "
                             f"dimensions is not supported (2-D {sorted(PARTS)} are)")
        source = obj.tocoo() if fmt in ("lil", "dok") else obj
        if fmt in ("coo", "lil", "dok"):
            parts = {"data": source.data, "row": source.row, "col": source.col}
        else:
            parts = {part: getattr(source, part) for part in PARTS[fmt]}
        node = group_node(name, format=fmt, shape=[int(n) for n in obj.shape])
        for part, values in parts.items():
            node.add(part, array_node(np.asarray(values), "numpy.ndarray", enc,
                                      f"{where}.{part}", self))
        return node

    def decode(self, stored, dec):
        if stored.is_group and "instance_attributes" in stored.children():
            return decode_object(stored, dec)  # written before this codec
        try:
            import scipy.sparse as sp
        except ImportError as exc:
            dec.warn_once("scipy", f"{stored.path}: scipy cannot be imported ({exc}); sparse "
                          f"matrices load as h5forge.UnknownObject with their arrays",
                          stacklevel=5)
            return registry.codec_for_name("h5forge.unknown").decode(stored, dec)
        cls = stored.cls or getattr(sp, stored.class_name.rsplit(".", 1)[1])
        fmt = inline_value(stored.attr("format"))
        shape = inline_value(stored.attr("shape"))
        if fmt not in PARTS or not isinstance(shape, list) or len(shape) != 2 or \
                not all(type(n) is int and n >= 0 for n in shape):
            raise CorruptFileError(f"{stored.path}: bad sparse format {fmt!r} or shape "
                                   f"{shape!r}")
        parts = {}
        with eager(dec):
            for part in PARTS[fmt]:
                value = dec.child(stored, part)
                parts[part] = value.load() if isinstance(value, LazyArray) else value
        if not all(isinstance(v, np.ndarray) for v in parts.values()):
            raise CorruptFileError(f"{stored.path}: sparse parts must be arrays")
        shape = tuple(shape)
        if fmt in ("csr", "csc", "bsr"):
            return cls((parts["data"], parts["indices"], parts["indptr"]), shape=shape)
        if fmt == "dia":
            return cls((parts["data"], parts["offsets"]), shape=shape)
        coo_args: Any = ((parts["data"], (parts["row"], parts["col"])),)
        if fmt == "coo":
            return cls(*coo_args, shape=shape)
        coo = (sp.coo_array if issubclass(cls, sp.sparray) else sp.coo_matrix)(
            *coo_args, shape=shape)
        return cls(coo)

