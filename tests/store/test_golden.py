"""The format is a contract: committed golden files keep loading, and a dumped file is
understandable with plain h5py (names, dtypes, attributes)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.store import FORMAT_VERSION
from tests.store.equality import assert_same
from tests.store.golden_objects import DATA, GOLDEN


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_files_keep_loading(name):
    assert_same(GOLDEN[name](), h5forge.load(DATA / name))


def walk(path):
    """Every object and attribute in the file, read with h5py alone."""
    listing = {}

    def visit(name, obj):
        kind = "group" if isinstance(obj, h5py.Group) else f"dataset {obj.dtype} {obj.shape}"
        listing[name] = (kind, {k: obj.attrs[k] for k in obj.attrs})

    with h5py.File(path, "r") as f:
        listing["/"] = ("group", {k: f.attrs[k] for k in f.attrs})
        f.visititems(visit)
    return listing


def test_plain_h5py_listing(tmp_path):
    path = tmp_path / "plain.h5"
    record = {
        "subject": "M12",
        "weight_g": 23.5,
        "trials": [{"n": i, "ok": i % 2 == 0, "lick_s": np.array([0.1, 0.2]) * i}
                   for i in range(3)],
        "lfp": np.zeros((2, 5), np.float32),
        "when": np.array(["2024-05-01"], "datetime64[D]"),
        "labels": np.array(["CA1", "DG"]),
        "counts": list(range(100)),
    }
    h5forge.dump(record, path)
    listing = walk(path)
    assert set(listing) == {"/", "trials", "lfp", "when", "labels", "counts"}
    root_kind, root_attrs = listing["/"]
    assert root_attrs["class"] == "dict" and root_attrs["h5forge_format"] == FORMAT_VERSION
    assert list(root_attrs["keys"]) == ["subject", "weight_g", "trials", "lfp", "when",
                                        "labels", "counts"]
    assert root_attrs["subject"] == "M12" and root_attrs["weight_g"] == 23.5  # inline scalars

    kind, attrs = listing["trials"]  # a list of records: one compound table
    assert kind.startswith("dataset") and kind.endswith("(3,)")
    assert attrs["class"] == "list" and attrs["element_class"] == "dict"
    assert list(attrs["field_classes"]) == ["int", "bool", "numpy.ndarray"]
    with h5py.File(path, "r") as f:
        table = f["trials"][()]
        assert table.dtype.names == ("n", "ok", "lick_s")
        assert table["n"].tolist() == [0, 1, 2] and table["lick_s"].shape == (3, 2)
        assert f["lfp"].dtype == np.float32 and f["lfp"].shape == (2, 5)
        assert f["when"].dtype == np.int64 and f["when"].attrs["dtype"] == "datetime64[D]"
        assert h5py.check_string_dtype(f["labels"].dtype).encoding == "utf-8"
        assert f["labels"].asstr()[()].tolist() == ["CA1", "DG"]
        assert f["counts"].dtype == np.int64 and f["counts"].attrs["element_class"] == "int"
        for name in ("lfp", "when", "labels", "counts"):  # every node names its Python type
            assert isinstance(f[name].attrs["class"], str)
        # strings are UTF-8 HDF5 strings, readable by any HDF5 tool
        tid = h5py.h5a.open(f.id, b"subject").get_type()
        assert tid.get_class() == h5py.h5t.STRING and tid.get_cset() == h5py.h5t.CSET_UTF8
