"""``h5forge tree`` and the ``h5forge`` command itself (entry points, errors, exit codes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.cli._format import human_size, short_repr
from h5forge.cli.main import build_parser, main


class Point:
    """A user class at module level, so the store can name it."""

    def __init__(self, x: int, y: float):
        self.x = x
        self.y = y


POINT_CLASS = f"{Point.__module__}.{Point.__qualname__}"


# -- helpers ------------------------------------------------------------------------------------
def tree(capsys, *args: str) -> list[str]:
    """Run ``h5forge tree ARGS`` in process; return the printed lines (exit code must be 0)."""
    code = main(["tree", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    return out.splitlines()


def line(lines: list[str], name: str, depth: int) -> list[str]:
    """The whitespace-split cells of the only line showing ``name`` at ``depth``."""
    prefix = "  " * depth + name + " "
    found = [ln for ln in lines if ln.startswith(prefix) or ln == prefix.rstrip()]
    assert len(found) == 1, (name, depth, lines)
    return found[0].split()


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    shared = {"x": 1}
    loop: list = [1, "a"]
    loop.append(loop)
    obj = {
        "meta": {"subject": "M12", "ok": True, "missing": None, "count": 3, "ratio": 0.5,
                 "z": 1 + 2j, "long": "y" * 200},
        "records": [{"a": i, "b": float(i), "name": f"r{i}", "v": np.arange(3.0)}
                    for i in range(10000)],
        "image": np.zeros((4, 5), dtype=np.float32),
        "ints": list(range(100)),  # longer than an inline list: a packed dataset
        "first": shared,
        "second": shared,
        "loop": loop,
        "point": Point(1, 2.5),
        "nested": {"a": {"b": {"c": [1.0, 2.0]}}},
    }
    path = tmp_path / "sample.h5"
    h5forge.dump(obj, path)
    return path


# -- the tree -----------------------------------------------------------------------------------
def test_root_and_member_order(capsys, sample):
    lines = tree(capsys, str(sample))
    assert lines[0].split() == ["/", "dict", "9", "members"]
    top = [ln.split()[0] for ln in lines if ln.startswith("  ") and not ln.startswith("    ")]
    assert top == ["meta", "records", "image", "ints", "first", "second", "loop", "point",
                   "nested"]  # insertion order (the `keys` attribute), not HDF5's name order


def test_inline_members_show_type_and_value(capsys, sample):
    lines = tree(capsys, str(sample))
    assert line(lines, "meta", 1) == ["meta", "dict", "7", "members"]
    assert line(lines, "subject", 2) == ["subject", "str", "=", "'M12'"]
    assert line(lines, "ok", 2) == ["ok", "bool", "=", "True"]
    assert line(lines, "missing", 2) == ["missing", "None"]
    assert line(lines, "count", 2) == ["count", "int", "=", "3"]
    assert line(lines, "ratio", 2) == ["ratio", "float", "=", "0.5"]
    assert line(lines, "z", 2) == ["z", "complex", "=", "(1+2j)"]
    name, kind, eq, value = line(lines, "long", 2)
    assert (name, kind, eq) == ("long", "str", "=")
    assert value.startswith("'yyy") and value.endswith("...'") and len(value) <= 40


def test_datasets_show_shape_dtype_and_size(capsys, sample):
    lines = tree(capsys, str(sample))
    assert line(lines, "image", 1) == ["image", "numpy.ndarray", "(4,", "5)", "float32", "80",
                                       "B"]
    assert line(lines, "ints", 1) == ["ints", "list[int]", "x100", "800", "B"]
    cells = line(lines, "records", 1)
    assert cells[:4] == ["records", "list[dict]", "x10000", "(4"]
    assert cells[4] == "fields)"
    assert cells[-1] == "KiB"  # 10000 rows of 8 + 8 + 16 + 24 bytes = 546.9 KiB
    with h5py.File(sample) as f:
        expected = human_size(f["records"].id.get_storage_size())
    assert " ".join(cells[-2:]) == expected


def test_user_class_is_named_not_imported(capsys, sample):
    lines = tree(capsys, str(sample))
    assert line(lines, "point", 1) == ["point", POINT_CLASS, "1", "member"]
    assert line(lines, "instance_attributes", 2) == ["instance_attributes", "dict", "2",
                                                      "members"]
    assert line(lines, "x", 3) == ["x", "int", "()", "int64", "8", "B"]
    assert line(lines, "y", 3) == ["y", "float", "()", "float64", "8", "B"]


def test_shared_reference_and_cycle_print_links(capsys, sample):
    lines = tree(capsys, str(sample))
    assert line(lines, "first", 1) == ["first", "dict", "1", "member"]
    assert line(lines, "x", 2) == ["x", "int", "=", "1"]  # shown once, under /first
    assert line(lines, "second", 1) == ["second", "->", "/first"]
    assert line(lines, "loop", 1) == ["loop", "list", "3", "members"]
    i = next(i for i, ln in enumerate(lines) if ln.split()[0] == "loop")
    assert [ln.split() for ln in lines[i + 1:i + 4]] == [
        ["0", "int", "=", "1"], ["1", "str", "=", "'a'"], ["2", "->", "/loop"]]


def test_self_reference_at_root(capsys, tmp_path):
    d: dict = {"a": 1}
    d["me"] = d
    h5forge.dump(d, tmp_path / "self.h5")
    lines = tree(capsys, str(tmp_path / "self.h5"))
    assert [ln.split() for ln in lines] == [["/", "dict", "2", "members"],
                                            ["a", "int", "=", "1"],
                                            ["me", "->", "/"]]


def test_box_shows_the_boxed_class(capsys, tmp_path):
    h5forge.dump(np.arange(3), tmp_path / "box.h5")
    lines = tree(capsys, str(tmp_path / "box.h5"))
    assert [ln.split() for ln in lines] == [["/", "box[numpy.ndarray]"],
                                            ["value", "numpy.ndarray", "(3,)", "int64", "24",
                                             "B"]]


def test_depth_limits_levels(capsys, sample):
    lines = tree(capsys, str(sample), "--depth", "1")
    assert len(lines) == 10  # the root and its 9 members
    assert not any(ln.startswith("    ") for ln in lines)
    assert line(lines, "nested", 1) == ["nested", "dict", "1", "member"]
    assert [ln.split() for ln in tree(capsys, str(sample), "--depth", "0")] == [
        ["/", "dict", "9", "members"]]
    deep = tree(capsys, str(sample), "--depth", "3")
    assert line(deep, "b", 3)[:2] == ["b", "dict"]
    assert not any(ln.startswith("        ") for ln in deep)


def test_path_shows_a_subtree(capsys, sample):
    lines = tree(capsys, str(sample), "/nested/a")
    assert [ln.split() for ln in lines] == [["/nested/a", "dict", "1", "member"],
                                            ["b", "dict", "1", "member"],
                                            ["c", "list", "=", "[1.0,", "2.0]"]]
    assert tree(capsys, str(sample), "meta/subject")[0].split() == [
        "/meta/subject", "str", "=", "'M12'"]  # an inline member on its own


def test_attrs_option_prints_metadata(capsys, sample):
    lines = tree(capsys, str(sample), "/meta", "--attrs")
    assert lines[1].split() == ["@class", "=", "'dict'"]
    assert lines[2].split()[:3] == ["@keys", "=", "['subject',"]
    assert line(lines, "subject", 1) == ["subject", "str", "=", "'M12'"]
    lines = tree(capsys, str(sample), "/records", "--attrs")
    assert [ln.split()[0] for ln in lines[1:]] == ["@class", "@element_class", "@field_classes"]


def test_foreign_file(capsys, tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros((2, 2), "i2")
        g = f.create_group("grp")
        g.attrs["units"] = "mV"
        f["soft"] = h5py.SoftLink("/data")
        f["ext"] = h5py.ExternalLink("elsewhere.h5", "/x")
    lines = tree(capsys, str(path))
    assert [ln.split() for ln in lines] == [
        ["/", "<group>", "4", "members"],
        ["data", "<dataset>", "(2,", "2)", "int16", "8", "B"],
        ["ext", "<external", "link>", "->", "elsewhere.h5:/x", "(not", "followed)"],
        ["grp", "<group>", "1", "member"],
        ["units", "str", "=", "'mV'"],
        ["soft", "<soft", "link>", "->", "/data", "(not", "followed)"],
    ]


# -- errors and exit codes ----------------------------------------------------------------------
def test_missing_file(capsys, tmp_path):
    missing = tmp_path / "nope.h5"
    assert main(["tree", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("h5forge: error: ") and str(missing) in err
    assert "Traceback" not in err


def test_missing_path(capsys, sample):
    assert main(["tree", str(sample), "/meta/nope"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "h5forge: error: sample.h5:/meta/nope: no such node\n"


def test_not_an_hdf5_file(capsys, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert main(["tree", str(text)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("h5forge: error: ") and "notes.txt" in err


@pytest.mark.parametrize("bad", ["-1", "two"])
def test_bad_depth_is_a_usage_error(capsys, sample, bad):
    assert main(["tree", str(sample), "--depth", bad]) == 2
    assert "--depth" in capsys.readouterr().err


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "usage: h5forge" in capsys.readouterr().err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"h5forge {h5forge.__version__}\n"


def test_tree_is_registered():
    parser = build_parser()
    args = parser.parse_args(["tree", "f.h5"])
    assert callable(args.func) and args.path == "/" and args.depth is None


# -- the command as a process -------------------------------------------------------------------
def test_python_m_h5forge_never_imports_classes_named_in_the_file(tmp_path):
    marker = tmp_path / "imported"
    (tmp_path / "trap_module.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Thing:\n    pass\n")
    path = tmp_path / "trap.h5"
    with h5py.File(path, "w") as f:
        f.attrs["class"] = "trap_module.Thing"
        f.attrs["h5forge_format"] = "1"
        state = f.create_group("instance_attributes")
        state.attrs["class"] = "dict"
        state.attrs["n"] = np.int64(1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = subprocess.run([sys.executable, "-m", "h5forge", "tree", str(path)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [ln.split() for ln in result.stdout.splitlines()] == [
        ["/", "trap_module.Thing", "1", "member"],
        ["instance_attributes", "dict", "1", "member"],
        ["n", "int", "=", "1"],
    ]
    assert not marker.exists()


def test_console_script_version():
    script = Path(sys.executable).parent / ("h5forge.exe" if os.name == "nt" else "h5forge")
    if not script.exists():
        pytest.skip(f"console script not installed at {script} (pip install -e . creates it)")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"h5forge {h5forge.__version__}\n"


# -- formatting helpers -------------------------------------------------------------------------
@pytest.mark.parametrize("nbytes, text", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (5 * 1024**2, "5.0 MiB"), (3 * 1024**3, "3.0 GiB"),
])
def test_human_size(nbytes, text):
    assert human_size(nbytes) == text


def test_short_repr_keeps_short_values_and_cuts_long_ones():
    assert short_repr("abc") == "'abc'"
    cut = short_repr("z" * 100, 20)
    assert len(cut) == 20 and cut.endswith("...'")
    assert short_repr(list(range(100)), 20).endswith("...")


# -- tree and load agree (issue 14) -------------------------------------------------------------
def children(lines: list[str], depth: int, start: int = 0) -> list[str]:
    """Names of the rows at ``depth`` below the row at index ``start`` (until the next row
    at a smaller depth)."""
    out = []
    for ln in lines[start + 1:]:
        indent = (len(ln) - len(ln.lstrip(" "))) // 2
        if indent < depth:
            break
        if indent == depth:
            out.append(ln.split()[0])
    return out


def row_index(lines: list[str], name: str, depth: int) -> int:
    prefix = "  " * depth + name + " "
    return next(i for i, ln in enumerate(lines) if ln.startswith(prefix))


def test_tree_shows_updates_as_load_sees_them(capsys, tmp_path):
    path = tmp_path / "grow.h5"
    h5forge.dump({"name": "run", "trials": {"t1": np.arange(5)}, "xs": [1, 2, 3]}, path)
    h5forge.dump(np.arange(7), path, "trials/t2")
    h5forge.dump("note", path, "comment")
    h5forge.append(4, path, "xs")
    h5forge.delete(path, "trials/t1")
    lines = tree(capsys, str(path))
    assert children(lines, 1) == list(h5forge.load(path)) == ["name", "trials", "xs", "comment"]
    assert children(lines, 2, row_index(lines, "trials", 1)) == ["t2"]
    assert line(lines, "xs", 1)[:2] == ["xs", "list"]
    assert line(lines, "xs", 1)[2:] == ["=", "[1,", "2,", "3,", "4]"]


def test_tree_names_what_plain_h5py_changed(capsys, tmp_path):
    path = tmp_path / "changed.h5"
    h5forge.dump({"trials": {"b": 1, "a": np.arange(3)}, "items": ["x", np.zeros(2), "z"]}, path,
                 pack_trees=False)
    with h5py.File(path, "r+") as f:
        f["trials/extra"] = np.arange(2)
        del f["trials/a"]
        del f["items/1"]
        f.create_group(".h5forge-tmp-0123")
    lines = tree(capsys, str(path))
    with pytest.warns(UserWarning):
        out = h5forge.load(path)
    assert children(lines, 2, row_index(lines, "trials", 1)) == list(out["trials"])
    assert children(lines, 2, row_index(lines, "items", 1)) == ["0", "2"]
    assert out["items"] == ["x", "z"]
    assert "not listed in 'keys': ['extra']" in lines[row_index(lines, "trials", 1)]
    assert "listed but missing: ['a']" in lines[row_index(lines, "trials", 1)]
    assert "not numbered 0..1: ['2']" in lines[row_index(lines, "items", 1)]
    assert "1 leftover of an interrupted write" in lines[0]
    assert ".h5forge-tmp-0123" not in "\n".join(lines)


def test_tree_notes_a_dict_whose_key_and_value_lists_differ(capsys, tmp_path):
    path = tmp_path / "items.h5"
    h5forge.dump({"d": {1: "a", 2: "b", 3: "c"}}, path)
    with h5py.File(path, "r+") as f:  # a plain h5py edit: one value fewer than keys
        values = f["d/values"][()]
        attrs = dict(f["d/values"].attrs)
        del f["d/values"]
        f.create_dataset("d/values", data=values[:2], dtype=h5py.string_dtype())
        f["d/values"].attrs.update(attrs)
    lines = tree(capsys, str(path))
    assert "3 keys but 2 values; the first 2 pairs are loaded" in lines[row_index(lines, "d", 1)]
    with pytest.warns(UserWarning, match="3 keys but 2 values"):
        assert h5forge.load(path)["d"] == {1: "a", 2: "b"}
