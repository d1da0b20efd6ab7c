"""h5forge.store.inspect: the rows of a stored tree, in the order ``load`` gives the members."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.errors import NodeNotFoundError
from h5forge.store import MemberMismatchWarning, inspect


def test_rows_name_types_shapes_and_sizes(tmp_path):
    path = tmp_path / "t.h5"
    h5forge.dump({"trace": np.arange(6, dtype="<i4").reshape(2, 3), "gain": 2.5,
                  "tags": ["a", "b"]}, path)
    rows = inspect.tree(path)
    assert all(isinstance(r, inspect.Row) for r in rows)
    top, *members = rows
    assert (top.depth, top.name, top.type, top.nbytes) == (0, "/", "dict", None)
    by_name = {r.name: r for r in members}
    trace = by_name["trace"]
    assert trace.type == "numpy.ndarray" and trace.detail == "(2, 3) int32" and trace.nbytes == 24
    assert by_name["gain"].type == "float" and by_name["gain"].detail == "= 2.5"
    assert by_name["gain"].nbytes is None
    lines = inspect.tree_lines(path)
    assert lines == inspect.format_rows(rows) and "24 B" in lines[[r.name for r in rows]
                                                                 .index("trace")]
    with pytest.raises(NodeNotFoundError, match="nope"):
        inspect.tree(path, "nope")


def test_member_order_agrees_with_load_when_metadata_differs(tmp_path):
    path = tmp_path / "m.h5"
    h5forge.dump({"rec": {"z": np.arange(3), "a": np.arange(2), "m": 5},
                  "xs": [np.arange(2), np.arange(3), np.arange(4)]}, path, pack_trees=False)
    with h5py.File(path, "r+") as f:  # changed outside h5forge
        f["rec"].attrs["keys"] = ["m", "z", "gone"]  # 'a' unlisted, 'gone' missing
        f["rec"].create_dataset("extra", data=np.arange(1)).attrs["class"] = "numpy.ndarray"
        f["xs"].move("1", "7")  # not numbered 0..n-1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemberMismatchWarning)
        loaded = h5forge.load(path)
    rows = inspect.tree(path)
    rec, xs = (_children(rows, name) for name in ("rec", "xs"))
    assert [r.name for r in rec] == list(loaded["rec"]) == ["m", "z", "a", "extra"]
    assert [r.detail for r in xs] == [f"({len(a)},) int64" for a in loaded["xs"]]
    notes = {r.name: r.detail for r in rows if r.depth == 1}
    assert "not listed in 'keys': ['a', 'extra']" in notes["rec"]
    assert "listed but missing: ['gone']" in notes["rec"]
    assert "not numbered" in notes["xs"]


def _children(rows, name):
    """The rows one level below the depth-1 row ``name``."""
    start = next(i for i, r in enumerate(rows) if r.depth == 1 and r.name == name)
    out = []
    for row in rows[start + 1:]:
        if row.depth <= 1:
            break
        if row.depth == 2:
            out.append(row)
    return out


def test_examples_and_store_never_import_the_cli():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for file in [*root.glob("examples/**/*.py"), *root.glob("src/h5forge/store/**/*.py")]:
        tree = ast.parse(file.read_text())
        names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [n for n in names if n.startswith("h5forge.cli")], file
