"""dump/load behaviour: targets, paths, overwrite, sub-trees, lazy loading, configuration."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.errors import NodeExistsError, NodeNotFoundError, TargetError
from h5forge.store import FORMAT_VERSION, LazyArray


@pytest.fixture
def foreign(tmp_path):
    """A file another library wrote: a dataset, a group with attributes."""
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = np.arange(10)
        f.create_group("meta").attrs["owner"] = "other tool"
    return path


def snapshot(path):
    with h5py.File(path, "r") as f:
        return {"raw": f["raw"][()].tolist(), "owner": f["meta"].attrs["owner"],
                "members": sorted(f)}


def test_top_level_names():
    for name in ("dump", "load", "H5ForgeError", "UnknownObject", "register_codec", "alias"):
        assert name in h5forge.__all__ and hasattr(h5forge, name)


def test_dump_into_a_group_of_a_foreign_file(foreign):
    with h5py.File(foreign, "r+") as f:
        h5forge.dump({"a": [1, 2]}, f["meta"], "analysis")
        h5forge.dump(3.5, f, "deep/er/value")
        assert f.id.valid  # given objects stay open
    assert snapshot(foreign)["raw"] == list(range(10))
    with h5py.File(foreign, "r") as f:
        assert f["meta"].attrs["owner"] == "other tool"
        assert h5forge.load(f["meta"], "analysis") == {"a": [1, 2]}
    assert h5forge.load(foreign, "deep/er/value") == 3.5


def test_existing_node_is_not_overwritten(foreign):
    h5forge.dump({"x": 1}, foreign, "mine")
    with pytest.raises(NodeExistsError, match="mine"):
        h5forge.dump({"x": 2}, foreign, "mine")
    assert h5forge.load(foreign, "mine") == {"x": 1}
    with pytest.raises(NodeExistsError):
        h5forge.dump({"x": 2}, foreign)  # the root holds data
    with pytest.raises(NodeExistsError):
        h5forge.dump({"x": 2}, foreign, "raw/below")  # raw is a dataset
    assert snapshot(foreign)["raw"] == list(range(10))


def test_overwrite_node_in_place_keeps_the_rest(foreign):
    h5forge.dump({"x": 1}, foreign, "mine")
    h5forge.dump([1, 2, 3], foreign, "mine", overwrite=True)
    assert h5forge.load(foreign, "mine") == [1, 2, 3]
    assert snapshot(foreign)["members"] == ["meta", "mine", "raw"]


def test_overwrite_whole_file_replaces_atomically(tmp_path):
    path = tmp_path / "whole.h5"
    h5forge.dump({"old": 1}, path)
    inode_before = os.stat(path).st_ino
    h5forge.dump({"new": 2}, path, overwrite=True)
    assert h5forge.load(path) == {"new": 2}
    assert os.stat(path).st_ino != inode_before  # a new file was renamed over the old one
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".h5forge-tmp")]


def test_failed_overwrite_leaves_old_content(tmp_path):
    path = tmp_path / "keep.h5"
    h5forge.dump({"old": 1}, path)
    with pytest.raises(h5forge.H5ForgeError):
        h5forge.dump({"new": lambda: 0}, path, overwrite=True)
    assert h5forge.load(path) == {"old": 1}


def test_write_error_midway_leaves_old_node(tmp_path, monkeypatch):
    path = tmp_path / "mid.h5"
    h5forge.dump({"old": 1}, path, "node")
    from h5forge.store import writer

    real = writer.write_attr
    calls = {"n": 0}

    def failing(h5obj, name, value):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError("disk full")
        real(h5obj, name, value)

    monkeypatch.setattr(writer, "write_attr", failing)
    with pytest.raises(OSError):
        h5forge.dump({"a": 1, "b": 2, "c": 3, "d": 4}, path, "node", overwrite=True)
    monkeypatch.undo()
    assert h5forge.load(path, "node") == {"old": 1}
    with h5py.File(path, "r") as f:
        assert list(f) == ["node"]  # the half-written copy was removed


def test_leaf_at_root_is_boxed(tmp_path):
    path = tmp_path / "leaf.h5"
    h5forge.dump(np.arange(3), path)
    with h5py.File(path, "r") as f:
        assert f.attrs["class"] == "numpy.ndarray" and f.attrs["box"] == 1
        assert f["value"][()].tolist() == [0, 1, 2]
        assert f.attrs["h5forge_format"] == FORMAT_VERSION
        assert "h5forge_format" not in f["value"].attrs
    assert h5forge.load(path).tolist() == [0, 1, 2]


def test_load_subtree(tmp_path):
    path = tmp_path / "tree.h5"
    h5forge.dump({"a": {"b": {"c": [1, 2]}, "other": np.ones(3)}}, path)
    assert h5forge.load(path, "a/b") == {"c": [1, 2]}
    assert h5forge.load(path, "/a/b/c") == [1, 2]
    with pytest.raises(NodeNotFoundError, match="a/nope"):
        h5forge.load(path, "a/nope")


def test_lazy_arrays_read_slices(tmp_path):
    path = tmp_path / "lazy.h5"
    big = np.arange(400_000, dtype=np.float64)  # 3.2 MB
    h5forge.dump({"big": big, "small": np.arange(3), "n": 1}, path)
    out = h5forge.load(path, lazy=True)
    assert isinstance(out["big"], LazyArray) and isinstance(out["small"], np.ndarray)
    assert out["big"].shape == big.shape and out["big"].dtype == big.dtype
    assert out["big"][10:13].tolist() == [10.0, 11.0, 12.0]
    assert np.array_equal(np.asarray(out["big"]), big)
    with h5py.File(path, "r") as f:
        lazy = h5forge.load(f, lazy=True)["big"]
        assert lazy[-1] == big[-1]


def test_given_file_stays_open_and_paths_close(tmp_path):
    path = tmp_path / "open.h5"
    with h5py.File(path, "w") as f:
        h5forge.dump({"a": 1}, f)
        assert h5forge.load(f) == {"a": 1} and f.id.valid
    h5forge.load(path)
    with h5py.File(path, "w") as f:  # would fail if load had left the file open
        f["x"] = 1


def test_bad_targets(tmp_path):
    with pytest.raises(TargetError):
        h5forge.dump(1, 42)
    with pytest.raises(TargetError):
        h5forge.load(3.5)
    closed = h5py.File(tmp_path / "c.h5", "w")
    closed.close()
    with pytest.raises(TargetError):
        h5forge.dump(1, closed)


def test_configuration_applies_chunks_and_compression(tmp_path):
    path = tmp_path / "conf.h5"
    data = {"trace": np.zeros((1000, 8)), "other": np.ones(5)}
    h5forge.dump(data, path, configuration={"trace": {"chunks": (100, 8),
                                                      "compression": "gzip"}})
    with h5py.File(path, "r") as f:
        assert f["trace"].chunks == (100, 8) and f["trace"].compression == "gzip"
        # a dataset the configuration does not name gets the default plan
        assert f["other"].chunks == (5,) and f["other"].compression == "gzip"
    assert np.array_equal(h5forge.load(path)["trace"], data["trace"])


def test_plan_lists_datasets_before_writing():
    # a big array keeps the tree unpacked (small nests of plain data are packed trees)
    node = h5forge.store.plan({"a": np.zeros(2000), "b": {"c": [1.0] * 100, "d": [1.0, 2.0]}})
    assert node.kind == "group" and node.members["a"].kind == "dataset"
    assert node.members["b"].members["c"].attrs["element_class"] == "float"
    assert node.members["b"].members["d"].kind == "inline"  # short lists are attributes
