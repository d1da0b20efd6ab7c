"""Files move between h5flow and h5forge, checked against files written by the real h5flow.

``tests/data/h5flow/`` holds files h5flow 0.2.4 wrote (``make_h5flow_golden.py`` says how) and
what h5flow's own reading code returned on them (``expected.npz``). h5flow is not needed here:

- h5forge reads h5flow's files as h5flow does (item access, child -> parent references, the
  requires of h5flow's example);
- h5forge writes what h5flow writes: the same objects, attributes and values for the same data
  manager calls, and for h5flow's example run through ``h5forge flow``;
- h5forge appends to h5flow's files, and h5flow's own layout rules read the result.

``test_h5flow_interop.py`` runs the real h5flow against h5forge's files where it is installed.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import h5py
import numpy as np
import numpy.lib.recfunctions as rfn
import numpy.ma as ma
import pytest

from h5forge.cli.main import main as cli_main
from h5forge.errors import FlowError
from h5forge.flow import Stage, dereference, run
from h5forge.flow.compat import H5FlowDataManager
from h5forge.flow.data import DataManager

DATA = Path(__file__).resolve().parents[1] / "data" / "h5flow"
EXAMPLE = DATA / "example.h5"
REFS = DATA / "refs.h5"
#: h5flow's example config ('path:' added) and its classes ported to h5forge.flow.compat
PORT = Path(__file__).resolve().parents[2] / "examples" / "flow" / "h5flow" / "example_config.yaml"

#: the only differences from h5flow's files: 64-bit references and regions
WIDER = {np.dtype("<u4"): np.dtype("<i8"),
         np.dtype([("start", "<i4"), ("stop", "<i4")]): np.dtype([("start", "<i8"),
                                                                  ("stop", "<i8")])}


@pytest.fixture(scope="module")
def expected():
    with np.load(DATA / "expected.npz") as npz:
        return {key: npz[key] for key in npz.files}


def masked(expected, key):
    return ma.MaskedArray(expected[f"{key}.data"], mask=expected[f"{key}.mask"])


def assert_same_masked(got, want, what):
    """Same shape, same mask, same values where not masked (h5flow leaves zeros under the mask;
    so does h5forge, but that is not part of the contract)."""
    got_mask, want_mask = ma.getmaskarray(got), ma.getmaskarray(want)
    assert got.shape == want.shape, what
    assert np.array_equal(got_mask, want_mask), what
    if want_mask.dtype.names:  # structured rows: a mask per field, all alike
        want_mask = rfn.structured_to_unstructured(want_mask).any(axis=-1)
    keep = ~want_mask
    assert np.array_equal(np.asarray(got.data)[keep], np.asarray(want.data)[keep]), what


def tree(path: Path) -> dict:
    """Every object of a file: kind, attributes, dtype and values."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            attrs = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                out[name] = ("dataset", attrs, obj.dtype, obj[()])
            else:
                out[name] = ("group", attrs, None, None)
        f.visititems(visit)
    return out


def assert_same_file(ours: Path, theirs: Path, created_by_h5flow: bool = False) -> None:
    """h5forge's file holds exactly h5flow's objects, attributes and values; dtypes equal but
    for the 64-bit references and regions. A region may be narrower than h5flow's: h5flow
    widens the regions of rows a batch does not reference to start at 0 when they lie within
    the batch's range; h5forge's start at the row's first reference. Both are empty for the
    same rows and hold all of each row's references. ``created_by_h5flow``: ``ours`` was
    created by h5flow (h5forge appended), so its tables keep h5flow's dtypes."""
    mine, golden = tree(ours), tree(theirs)
    assert sorted(mine) == sorted(golden)
    for name, (kind, attrs, dtype, values) in golden.items():
        m_kind, m_attrs, m_dtype, m_values = mine[name]
        assert (m_kind, m_attrs) == (kind, attrs), name
        if kind == "dataset":
            assert m_dtype == (dtype if created_by_h5flow else WIDER.get(dtype, dtype)), name
            if name.endswith("/ref_region"):
                assert m_values.shape == values.shape, name
                empty = values["start"] == values["stop"]
                assert np.array_equal(m_values["start"] == m_values["stop"], empty), name
                assert np.all(m_values["start"] >= values["start"]), name
                assert np.all(m_values["stop"] <= values["stop"]), name
            elif dtype.names:
                assert m_values.shape == values.shape, name
                for field in dtype.names:
                    assert np.array_equal(m_values[field], values[field]), (name, field)
            else:
                assert np.array_equal(m_values, values), name


# -- h5forge reads h5flow's files as h5flow does -------------------------------------------------
def getitem_args(key: str) -> tuple:
    """The ``dm[...]`` arguments a key of expected.npz names: ``A>B>C/<rows>``, rows ``all``
    (none given), ``int_4``, ``rows_0_5_3`` (a list) or ``0_6`` (a slice)."""
    names, rows = key.split("/")
    kind, _, rest = rows.partition("_")
    sel: tuple = ()
    if kind == "int":
        sel = (int(rest),)
    elif kind == "rows":
        sel = ([int(r) for r in rest.split("_")],)
    elif kind != "all":
        sel = (slice(int(kind), int(rest)),)
    return (*names.split(">"), *sel)


def test_expected_npz_holds_h5flows_item_access_results(expected):
    keys = {k[len("refs/getitem/"):-len(".data")] for k in expected
            if k.startswith("refs/getitem/") and k.endswith(".data")}
    assert len(keys) == 8 and "C>B>A/0_30" in keys and "A>B/all" in keys
    assert getitem_args("A>B/rows_0_5_3") == ("A", "B", [0, 5, 3])
    assert str(expected["h5flow_version"]) == "0.2.4"


@pytest.mark.parametrize("key", ["A>B/all", "A>B/0_6", "A>B/rows_0_5_3", "A>B/int_4", "B>A/0_20",
                                 "A>B>C/0_6", "C>B>A/0_30", "D>A/0_2"])
def test_item_access_on_h5flows_file_gives_h5flows_results(expected, key):
    with h5py.File(REFS, "r") as f:
        got = DataManager(f)[getitem_args(key)]
    assert_same_masked(got, masked(expected, f"refs/getitem/{key}"), key)


@pytest.mark.parametrize("parent, child", [("A", "B"), ("B", "A"), ("B", "C"), ("C", "B")])
def test_child_to_parent_references_in_h5flows_file(expected, parent, child):
    """h5flow keeps one table under the parent; read from the child's side it falls back to
    that table with direction (1, 0). So does h5forge."""
    with h5py.File(REFS, "r") as f:
        dm = DataManager(f)
        ref, direction = dm.get_ref(parent, child)
        assert direction == tuple(expected[f"refs/get_ref/{parent}>{child}/direction"])
        got = dereference(slice(0, dm.rows(parent)), ref,
                          region=dm.get_ref_region(parent, child), ref_direction=direction,
                          indices_only=True)
    assert_same_masked(got, masked(expected, f"refs/dereference/{parent}>{child}/indices"),
                       (parent, child))


@pytest.mark.parametrize("key", ["input/index>stage0/example", "stage0/example>input/index",
                                 "stage1/example>input/index>stage0/example"])
@pytest.mark.parametrize("rows", ["0_50", "1000_1100", "2040_2048"])
def test_item_access_on_h5flows_example_output(expected, key, rows):
    start, stop = map(int, rows.split("_"))
    with h5py.File(EXAMPLE, "r") as f:
        got = DataManager(f)[(*key.split(">"), slice(start, stop))]
    assert_same_masked(got, masked(expected, f"example/getitem/{key}/{rows}"), (key, rows))


class Record(Stage):
    """Keeps what the engine put in the cache for each chunk."""

    seen: list = []

    def run(self, source_name, source_slice, cache):
        super().run(source_name, source_slice, cache)
        Record.seen.append((source_slice, dict(cache)))


def test_the_examples_requires_over_h5flows_output_resolve_as_in_h5flow(tmp_path, expected,
                                                                       monkeypatch):
    """example_stage1's requires (a child table, its indices, and the chain back to the
    source through the child -> parent fallback) over h5flow's own output, by h5forge's
    engine: what h5flow's H5FlowManager.load_requirement gives."""
    config = tmp_path / "requires.yaml"
    config.write_text(f"""
flow: {{source: loop, stages: [record]}}
loop: {{classname: LoopGenerator, dset_name: input/index, params: {{chunk_size: 1024}}}}
record:
  classname: Record
  path: {__name__}
  requires:
    - 'stage0/example'
    - {{name: 'stage0/example_idcs', path: 'stage0/example', index_only: true}}
    - {{name: 'input/index_once_referred', path: ['stage0/example', 'input/index']}}
""")
    monkeypatch.setattr(Record, "seen", [])
    run(config, tmp_path / "out.h5", input=EXAMPLE, progress=False)
    assert [sl for sl, _ in Record.seen] == [slice(0, 1024), slice(1024, 2048)]
    for sl, cache in Record.seen:
        tag = f"{sl.start}_{sl.stop}"
        for name in ("stage0/example", "stage0/example_idcs", "input/index_once_referred"):
            assert_same_masked(cache[name], masked(expected, f"example/require/{name}/{tag}"),
                               (name, tag))


# -- h5forge writes what h5flow writes ---------------------------------------------------------
def h5flow_calls(dm) -> None:
    """The data manager calls make_h5flow_golden.py made through h5flow to write refs.h5."""
    b_dtype = np.dtype([("q", "f4"), ("t", "i8")])
    for name, dtype in (("A", int), ("B", b_dtype), ("C", int), ("D", int)):
        dm.create_dset(name, dtype)
    dm.create_ref("A", "B")
    dm.create_ref("C", "B")
    dm.create_ref("D", "A")
    dm.write_data("A", dm.reserve_data("A", 6), 10 * np.arange(6))
    rows = np.zeros(20, b_dtype)
    rows["q"], rows["t"] = np.arange(20) / 4, np.arange(20)
    dm.write_data("B", dm.reserve_data("B", 20), rows)
    dm.write_data("C", dm.reserve_data("C", 30), 100 + np.arange(30))
    dm.reserve_data("D", 2)
    dm.write_ref("A", "B", np.array([[a, 3 * a + k] for a in range(3) for k in range(3)]))
    dm.write_ref("A", "B", np.array([[3, 9], [3, 10], [4, 12], [5, 15], [0, 18], [0, 19]]))
    dm.write_ref("C", "B", np.unique(np.array(
        [[c, c % 20] for c in range(30)] + [[c, c // 2] for c in range(30)]), axis=0))
    dm.write_ref("B", "A", np.array([[5, 4], [6, 4], [16, 1]]))


def test_the_same_calls_write_h5flows_file(tmp_path):
    with H5FlowDataManager(tmp_path / "refs.h5") as dm:
        h5flow_calls(dm)
    assert_same_file(tmp_path / "refs.h5", REFS)


def test_h5flows_example_through_h5forge_flow_gives_h5flows_file(tmp_path, capsys):
    """h5flow's example config (only 'path:' added) with its classes imported from
    h5forge.flow.compat, through the command line: the same objects, attributes, tables,
    references and regions as h5flow's own run (the dropped table left out by both)."""
    out = tmp_path / "example.h5"
    assert cli_main(["flow", "-c", str(PORT), "-o", str(out), "-e", "2", "-z", "gzip",
                     "--no-progress"]) == 0
    assert "2048 rows in 2 chunks" in capsys.readouterr().out
    assert_same_file(out, EXAMPLE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["example.h5"]  # no scratch left


def test_the_example_script_shows_it(tmp_path, capsys):
    script = PORT.with_name("run_example.py")
    spec = importlib.util.spec_from_file_location("h5flow_example_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(tmp_path / "example.h5")
    printed = capsys.readouterr().out
    assert "input/index/ref/stage0/example/ref" in printed
    assert "copies 0..2 -> source rows: [[0, None, None], [0, 1, None], [0, 1, 2]]" in printed
    assert printed.rstrip().endswith("ok  the references read the same from both sides")
    assert_same_file(out, EXAMPLE)  # values and layout; compression aside


# -- h5forge appends to h5flow's files ----------------------------------------------------------
def h5flow_get_ref(f, parent, child):
    """h5flow's H5FlowDataManager.get_ref rule, by path: the parent's table, else the child's
    read the other way round."""
    path = f"{parent}/ref/{child}/ref"
    if path in f:
        return f[path], (0, 1)
    return f[f"{child}/ref/{parent}/ref"], (1, 0)


def brute_force(pairs, parent_rows, column):
    """Children of each parent row (ascending), from all (parent, child) pairs."""
    other = 1 - column
    return [np.sort(pairs[pairs[:, column] == p, other]) for p in range(parent_rows)]


def test_h5forge_appends_to_h5flows_file_and_h5flows_rules_read_it(tmp_path):
    path = tmp_path / "refs.h5"
    shutil.copyfile(REFS, path)
    with h5py.File(path, "r") as f:
        before = f["A/ref/B/ref"][:]
    new_b = np.zeros(4, [("q", "f4"), ("t", "i8")])
    new_b["t"] = np.arange(20, 24)
    with H5FlowDataManager(path) as dm:
        dm.create_ref("A", "B")  # h5flow refuses it from B's side; kept here, nothing new
        dm.create_ref("B", "A")
        dm.write_data("B", dm.reserve_data("B", 4), new_b)
        assert dm.get_ref_region("B", "A").shape == (24,)  # the regions grow with the table
        dm.write_ref("A", "B", np.array([[1, 20], [5, 21]]))
        dm.write_ref("B", "A", np.array([[22, 2], [23, 2], [0, 5]]))
    with h5py.File(path, "r") as f:
        assert "B/ref/A/ref" not in f
        ref = f["A/ref/B/ref"]
        assert ref.dtype == np.uint32 and f["A/ref/B/ref_region"].dtype["start"] == np.int32
        pairs = ref[:]
        assert np.array_equal(pairs[:len(before)], before)  # h5flow's rows untouched
        assert pairs[len(before):].tolist() == [[1, 20], [5, 21], [2, 22], [2, 23], [5, 0]]
        assert len(f["B/data"]) == len(f["B/ref/A/ref_region"]) == 24
        for parent, child, rows in (("A", "B", 6), ("B", "A", 24)):
            table, direction = h5flow_get_ref(f, parent, child)
            region = f[f"{parent}/ref/{child}/ref_region"]
            got = dereference(slice(0, rows), table, region=region, ref_direction=direction,
                              indices_only=True, as_masked=False)
            want = brute_force(pairs, rows, direction[0])
            assert [g.tolist() for g in got] == [w.tolist() for w in want], (parent, child)
            for row, (start, stop) in enumerate(region[:].tolist()):  # every reference in
                mine = np.flatnonzero(pairs[:, direction[0]] == row)
                if mine.size:
                    assert start <= mine[0] and stop > mine[-1], (parent, row)
                else:
                    assert start == stop, (parent, row)


def test_references_that_do_not_fit_h5flows_32_bit_tables_are_refused(tmp_path):
    path = tmp_path / "refs.h5"
    shutil.copyfile(REFS, path)
    with H5FlowDataManager(path) as dm:
        with pytest.raises(FlowError, match=r"row 8589934592 does not fit .*/A/ref/B/ref"):
            dm.write_ref("A", "B", np.array([[0, 2**33]]))
        assert len(dm.get_ref("A", "B")[0]) == 18  # nothing written
