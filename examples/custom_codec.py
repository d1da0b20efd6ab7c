"""Teach h5forge a type it does not know: a codec for the standard library's ``array.array``.

A codec is one small class: which types it encodes, which stored ``class`` names it decodes,
how to plan the node, and how to rebuild the object. Everything a codec needs comes from the
public kit :mod:`h5forge.store.nodes`. ``python examples/custom_codec.py``
"""

from __future__ import annotations

import array
import tempfile
from pathlib import Path

import numpy as np

import h5forge
from h5forge.store.nodes import dataset_node


class ArrayArrayCodec(h5forge.Codec):
    types = (array.array,)  # what it encodes
    names = ("array.array",)  # the stored class name: written here once, self.name in encode

    def encode(self, obj, enc, where):
        # a plain numeric dataset (readable with h5py) plus the typecode as an attribute
        return dataset_node(self.name, np.frombuffer(obj, dtype=obj.typecode),
                            typecode=obj.typecode)

    def decode(self, stored, dec):
        data = stored.dataset()[()]
        return array.array(str(stored.attr("typecode")), data.tobytes())


h5forge.register_codec(ArrayArrayCodec)

if __name__ == "__main__":
    samples = array.array("h", [1, -2, 3])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "codec.h5"
        h5forge.dump({"samples": samples}, path)
        loaded = h5forge.load(path)["samples"]
    assert loaded == samples and loaded.typecode == "h"
    print("round trip through a custom codec:", loaded)
