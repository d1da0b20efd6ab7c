"""The example flow (examples/flow/) end to end: its script, its tables, references and regions,
the dropped table, and dereferencing checked against brute force."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from h5forge.cli.main import main as cli_main
from h5forge.flow import DataManager, dereference, dereference_chain, run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flow"
CONFIG = EXAMPLE / "pipeline.yaml"
TABLES = ("events", "hits", "clusters", "event_summary")
REF_PAIRS = (("events", "hits"), ("events", "clusters"), ("clusters", "hits"))


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(tmp_path: Path, name: str = "pipeline.yaml", **params) -> Path:
    """The example's config with other generator params, written to tmp_path (class paths made
    absolute)."""
    data = yaml.safe_load(CONFIG.read_text())
    for key, value in data.items():
        if isinstance(value, dict) and "path" in value and not key.startswith("_"):
            value["path"] = str(EXAMPLE / value["path"])
    data["detector"]["params"].update(params)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _read(path: Path) -> dict:
    """Every table and reference table of a flow output, in memory."""
    out: dict = {}
    with h5py.File(path, "r") as f:
        for name in TABLES:
            out[name] = f[f"{name}/data"][:]
        for a, b in REF_PAIRS:
            out[a, b] = f[f"{a}/ref/{b}/ref"][:]
            out[a, b, "region"] = f[f"{a}/ref/{b}/ref_region"][:]
            out[b, a, "region"] = f[f"{b}/ref/{a}/ref_region"][:]
    return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal arrays (structured or not), NaN equal to NaN; floats to 1e-12 (a sum over an
    event's hits may add in another order when the chunk is padded to another width)."""
    if a.dtype.names is None:
        if a.dtype.kind == "f":
            return a.shape == b.shape and np.allclose(a, b, rtol=1e-12, atol=0, equal_nan=True)
        return np.array_equal(a, b)
    return a.dtype == b.dtype and all(_same(a[name], b[name]) for name in a.dtype.names)


_CHILDREN: dict = {}


def _children(refs: np.ndarray, parent: int) -> np.ndarray:
    """Brute force: the child rows of ``parent``, ascending (one pass over ``refs``, by hand,
    then remembered)."""
    key = (id(refs), len(refs))
    if key not in _CHILDREN:
        lists: dict[int, list[int]] = {}
        for a, b in refs.tolist():
            lists.setdefault(a, []).append(b)
        _CHILDREN[key] = (refs, {a: np.array(sorted(b), np.int64) for a, b in lists.items()})
    return _CHILDREN[key][1].get(int(parent), np.zeros(0, np.int64))


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    """The example's own script, run once into a kept file."""
    tmp = tmp_path_factory.mktemp("example")
    script = _load(EXAMPLE / "run_example.py", "flow_example_under_test")
    path = script.main(tmp / "detector.h5")
    assert path == tmp / "detector.h5"
    assert sorted(p.name for p in tmp.iterdir()) == ["detector.h5"]  # no scratch file left
    return path


@pytest.fixture(scope="module")
def tables(output) -> dict:
    return _read(output)


def test_the_script_prints_the_tree_and_its_checks(capsys):
    script = _load(EXAMPLE / "run_example.py", "flow_example_printing")
    assert script.main() is None  # a temporary directory, removed at the end
    printed = capsys.readouterr().out
    assert "flow pipeline.yaml: 2000 rows in 8 chunks" in printed
    for name in TABLES:
        assert f"    {name} " in printed  # the tree, two levels deep
    assert "event_t0" not in printed.split("first events")[0]
    checks = [line for line in printed.splitlines() if line.startswith("ok  ")]
    assert len(checks) == 8


def test_make_run_runs_it_through_the_top_level_wrapper(tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLE.parent / "flow_pipeline.py"),
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{tmp_path / 'detector.h5'}:" in done.stdout
    assert done.stdout.count("\nok  ") == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["detector.h5"]


def test_the_output_holds_the_tables_and_not_the_dropped_one(output, tables):
    with h5py.File(output, "r") as f:
        assert sorted(f) == sorted(TABLES)
        assert "event_t0" not in f
        for name in TABLES:
            refs = f[name].get("ref")
            assert refs is None or "event_t0" not in refs
    events, hits = tables["events"], tables["hits"]
    assert len(events) == 2000
    assert np.array_equal(events["id"], np.arange(2000))
    assert int(events["n_hits"].sum()) == len(hits) > 0
    assert (events["n_hits"] == 0).any()  # some triggers record nothing
    assert len(tables["event_summary"]) == len(events)
    assert set(tables["clusters"].dtype.names) >= {"n_hits", "q_sum", "x_mean"}
    assert set(hits.dtype.names) == {"x", "y", "z", "q", "t"}


def test_references_are_shared_and_regions_cover_every_rows_references(output, tables):
    rows = {name: len(tables[name]) for name in TABLES}
    with h5py.File(output, "r") as f:
        for a, b in REF_PAIRS:  # h5flow's layout: the table under the parent, linked by name
            assert f"{b}/ref/{a}/ref" not in f
            attrs = dict(f[f"{a}/ref/{b}/ref"].attrs)
            assert attrs == {"dset0": f"/{a}/data", "dset1": f"/{b}/data",
                             "ref_region0": f"/{a}/ref/{b}/ref_region",
                             "ref_region1": f"/{b}/ref/{a}/ref_region"}
    for a, b in REF_PAIRS:
        refs = tables[a, b]
        assert refs.shape[1] == 2 and len(refs)
        assert refs[:, 0].max() < rows[a] and refs[:, 1].max() < rows[b]
        for side, owner, column in ((a, b, 0), (b, a, 1)):
            region = tables[side, owner, "region"]
            assert len(region) == rows[side]  # one region per row, with or without refs
            positions = [[] for _ in range(rows[side])]
            for pos, row in enumerate(refs[:, column]):
                positions[row].append(pos)
            for row, where in enumerate(positions):
                start, stop = int(region["start"][row]), int(region["stop"][row])
                if where:
                    assert start == where[0] and stop > where[-1], (side, owner, row)
                else:
                    assert start == stop, (side, owner, row)


def test_every_hit_is_in_one_cluster_of_its_own_event(tables):
    ev_hits, ev_cl, cl_hits = (tables["events", "hits"], tables["events", "clusters"],
                               tables["clusters", "hits"])
    assert np.array_equal(np.sort(cl_hits[:, 1]), np.arange(len(tables["hits"])))
    event_of_hit = np.empty(len(tables["hits"]), np.int64)
    event_of_hit[ev_hits[:, 1]] = ev_hits[:, 0]
    event_of_cluster = np.empty(len(tables["clusters"]), np.int64)
    event_of_cluster[ev_cl[:, 1]] = ev_cl[:, 0]
    assert np.array_equal(event_of_cluster[cl_hits[:, 0]], event_of_hit[cl_hits[:, 1]])


def test_clusters_and_summary_agree_with_brute_force(tables):
    hits, clusters, summary = tables["hits"], tables["clusters"], tables["event_summary"]
    q = hits["q"].astype(np.float64)
    for event in range(0, len(tables["events"]), 37):
        my_clusters = _children(tables["events", "clusters"], event)
        my_hits = _children(tables["events", "hits"], event)
        assert summary["n_clusters"][event] == len(my_clusters)
        assert summary["n_hits"][event] == len(my_hits)
        assert summary["q_total"][event] == pytest.approx(q[my_hits].sum())
        bins = np.floor(hits["x"][my_hits] / 5.0)
        assert sorted(clusters["x_bin"][my_clusters]) == sorted(set(bins.astype(int)))
        for c in my_clusters:
            members = _children(tables["clusters", "hits"], c)
            assert clusters["n_hits"][c] == len(members)
            assert clusters["q_sum"][c] == pytest.approx(q[members].sum())
            assert clusters["x_mean"][c] == pytest.approx(
                np.average(hits["x"][members], weights=q[members]))
            assert set(np.floor(hits["x"][members] / 5.0)) == {clusters["x_bin"][c]}
        if len(my_hits):
            assert summary["t0"][event] == hits["t"][my_hits].min()
            assert summary["q_max_cluster"][event] == pytest.approx(
                clusters["q_sum"][my_clusters].max())
        else:
            assert np.isnan(summary["t0"][event]) and np.isnan(summary["x_centroid"][event])


@pytest.mark.parametrize("sel", [slice(0, 2000), slice(1500, 1525),
                                 np.array([7, 3, 3, 1999, 0]), "mask"])
def test_dereference_chain_agrees_with_brute_force(output, tables, sel):
    if isinstance(sel, str):
        sel = tables["events"]["n_hits"] % 3 == 1
    rows = np.arange(2000)[sel]
    with h5py.File(output, "r") as f:
        dm = DataManager(f)
        via_dm = dm["events", "clusters", "hits", sel]
        ec, cd = dm.get_ref("events", "clusters")
        ch, hd = dm.get_ref("clusters", "hits")
        explicit = dereference_chain(
            sel, [ec, ch], regions=[dm.get_ref_region("events", "clusters"),
                                    dm.get_ref_region("clusters", "hits")],
            ref_directions=[cd, hd], indices_only=True)
        one_hop = dereference(sel, ch, region=dm.get_ref_region("clusters", "hits"),
                              ref_direction=hd, indices_only=True)  # sel as cluster rows
        back = dereference(sel, f["events/ref/hits/ref"], region=f["hits/ref/events/ref_region"],
                           ref_direction=(1, 0), indices_only=True)  # sel as hit rows
    assert via_dm.shape[0] == explicit.shape[0] == len(rows)
    for i, event in enumerate(rows):
        clusters = _children(tables["events", "clusters"], event)
        for j in range(explicit.shape[1]):
            got = explicit[i, j].compressed()
            if j < len(clusters):
                want = _children(tables["clusters", "hits"], clusters[j])
                assert np.array_equal(got, want)
                present = ~np.ma.getmaskarray(explicit[i, j])  # structured: no compressed()
                assert np.array_equal(via_dm[i, j].data[present], tables["hits"][want])
            else:
                assert got.size == 0
        assert np.array_equal(one_hop[i].compressed(),
                              _children(tables["clusters", "hits"], event))
        owner = tables["events", "hits"]
        assert np.array_equal(back[i].compressed(), np.sort(owner[owner[:, 1] == event, 0]))


def test_tables_do_not_depend_on_chunk_size(tmp_path, tables):
    out = tmp_path / "small_chunks.h5"
    summary = run(_config(tmp_path, chunk_size=64), out, progress=False)
    assert (summary.rows, summary.chunks) == (2000, 32)
    again = _read(out)
    for key, value in tables.items():
        assert _same(again[key], value), key


def test_a_row_range_simulates_exactly_those_events(tmp_path, tables):
    out = tmp_path / "range.h5"
    summary = run(_config(tmp_path), out, start=100, end=300, progress=False)
    assert summary.rows == 200
    part = _read(out)
    assert np.array_equal(part["events"]["id"], np.arange(100, 300))
    first = int(tables["events"]["n_hits"][:100].sum())
    assert np.array_equal(part["hits"], tables["hits"][first:first + len(part["hits"])])
    assert _same(part["event_summary"], tables["event_summary"][100:300])


def test_the_command_line_runs_the_example(tmp_path, capsys, tables):
    out = tmp_path / "cli.h5"
    assert cli_main(["flow", "-c", str(CONFIG), "-o", str(out), "--no-progress"]) == 0
    assert "2000 rows in 8 chunks" in capsys.readouterr().out
    again = _read(out)
    assert _same(again["event_summary"], tables["event_summary"])
    with h5py.File(out, "r") as f:
        assert "event_t0" not in f
