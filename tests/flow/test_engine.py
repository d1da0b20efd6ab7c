"""The serial flow engine end to end, on real HDF5 files: every kind of require checked against
brute force, several configs in one run, start/end, chunk_size, resources, call order,
generators named in the config, params clashing with fixed names, exact drop, compression,
the input left alone, and a failing stage leaving a valid output.

Stage classes live in a ``stages.py`` written to ``tmp_path``; configs name it with ``path:``.
The module keeps what the stages saw (``SEEN``) and the calls they got (``LOG``); a test reaches
it through :func:`h5forge.flow.loading.load_class`, which loads a file once per process.
"""

from __future__ import annotations

import hashlib
import os
import sys
import textwrap

import h5py
import numpy as np
import numpy.ma as ma
import pytest

from h5forge.errors import FlowConfigError, FlowError
from h5forge.flow import dereference, run
from h5forge.flow.loading import load_class

N_EVENTS = 23
INPUT_CHUNKS = 5

STAGES = '''
import numpy as np
from h5forge.flow import Generator, Resource, Stage

LOG = []    # (who, what, ...) in the order the engine called
SEEN = {}   # stage name -> [(source_slice, {cache key: value})]


def n_clusters(event):
    return (event * 5) % 4              # 0..3 clusters per event


def n_hits(cluster):
    return (cluster * 3) % 5            # 0..4 hits per cluster


class Builder(Stage):
    """events -> clusters (references written from the events side, shuffled, in two writes
    per chunk), hits -> clusters (written from the hits side), and ev_extra (one row per
    event, aligned with the source)."""

    def __init__(self, clusters="clusters", hits="hits", extra="ev_extra", **params):
        super().__init__(**params)
        self.clusters, self.hits, self.extra = clusters, hits, extra

    def init(self, source_name):
        dm = self.data_manager
        dm.create_dset(self.clusters, [("cid", "i8"), ("ev", "i8")])
        dm.create_dset(self.hits, [("hid", "i8"), ("cl", "i8")])
        dm.create_dset(self.extra, "f8")
        dm.create_ref(source_name, self.clusters)
        dm.create_ref(self.hits, self.clusters)   # read from the clusters side: (1, 0)
        LOG.append((self.name, "init", source_name))

    def run(self, source_name, source_slice, cache):
        dm = self.data_manager
        events = cache[source_name]["eid"]
        assert list(events) == list(range(source_slice.start, source_slice.stop))
        sel = dm.reserve_data(self.extra, source_slice)
        dm.write_data(self.extra, sel, events * 10.0)

        owners = np.repeat(events, [n_clusters(e) for e in events]).astype(np.int64)
        csel = dm.reserve_data(self.clusters, len(owners))
        cids = np.arange(csel.start, csel.stop, dtype=np.int64)
        clusters = np.zeros(len(cids), [("cid", "i8"), ("ev", "i8")])
        clusters["cid"], clusters["ev"] = cids, owners
        dm.write_data(self.clusters, csel, clusters)
        pairs = np.stack([owners, cids], axis=1)
        pairs = pairs[np.random.default_rng(source_slice.start).permutation(len(pairs))]
        half = len(pairs) // 2
        dm.write_ref(source_name, self.clusters, pairs[:half])
        dm.write_ref(source_name, self.clusters, pairs[half:])

        parents = np.repeat(cids, [n_hits(c) for c in cids]).astype(np.int64)
        hsel = dm.reserve_data(self.hits, len(parents))
        hids = np.arange(hsel.start, hsel.stop, dtype=np.int64)
        hits = np.zeros(len(hids), [("hid", "i8"), ("cl", "i8")])
        hits["hid"], hits["cl"] = hids, parents
        dm.write_data(self.hits, hsel, hits)
        dm.write_ref(self.hits, self.clusters, np.stack([hids, parents], axis=1)[::-1])
        LOG.append((self.name, "run", source_slice.start, source_slice.stop))

    def finish(self, source_name):
        LOG.append((self.name, "finish", source_name))


class Extra(Stage):
    """A table whose name starts like another's (hits_extra), referenced from clusters."""

    def init(self, source_name):
        self.data_manager.create_dset("hits_extra", "i8")
        self.data_manager.create_ref("clusters", "hits_extra")

    def run(self, source_name, source_slice, cache):
        n = source_slice.stop - source_slice.start
        sel = self.data_manager.reserve_data("hits_extra", n)
        self.data_manager.write_data("hits_extra", sel, np.arange(sel.start, sel.stop))
        clusters = self.data_manager.rows("clusters")
        if clusters:
            rows = np.arange(sel.start, sel.stop) % clusters
            self.data_manager.write_ref("clusters", "hits_extra",
                                        np.stack([rows, np.arange(sel.start, sel.stop)], 1))


class Recorder(Stage):
    """Keeps the cache entries it requires (and the source rows) for every chunk."""

    def run(self, source_name, source_slice, cache):
        keys = [source_name] + [r.name for r in self.requires]
        SEEN.setdefault(self.name, []).append((source_slice, {k: cache[k] for k in keys}))
        LOG.append((self.name, "run", source_slice.start, source_slice.stop))


class Tracer(Stage):
    def init(self, source_name):
        LOG.append((self.name, "init", source_name))

    def run(self, source_name, source_slice, cache):
        geometry = self.resources["Geometry"]
        LOG.append((self.name, "run", source_slice.start, geometry.scale))

    def finish(self, source_name):
        LOG.append((self.name, "finish", source_name))


class Geometry(Resource):
    def __init__(self, scale=1.0, **params):
        super().__init__(**params)
        self.scale = scale

    def init(self, *args):
        LOG.append(("Geometry", "init") + args)

    def finish(self, *args):
        LOG.append(("Geometry", "finish") + args)


class H5flowStyleResource(Resource):
    """h5flow's call shape: init(source_name) / finish(source_name)."""

    def init(self, source_name):
        LOG.append(("H5flowStyleResource", "init", source_name))

    def finish(self, source_name):
        LOG.append(("H5flowStyleResource", "finish", source_name))


class Strided(Generator):
    """Every other block of ``size`` rows."""

    def __init__(self, size=2, **params):
        super().__init__(**params)
        self.size = size

    def init(self):
        rows = self.data_manager.get_dset(self.dset_name).shape[0]
        self.blocks = [slice(s, min(s + self.size, rows))
                       for s in range(0, rows, 2 * self.size)]
        LOG.append(("gen", "init", self.name, self.dset_name, self.input_filename,
                    self.start_position, self.end_position, self.size))

    def next(self):
        return self.blocks.pop(0) if self.blocks else None

    def finish(self):
        LOG.append(("gen", "finish"))


class EmptyWhenDone(Generator):
    """h5flow's generator protocol: ``Generator.EMPTY`` (not None) once done."""

    def init(self):
        self.left = [slice(0, 4), slice(4, 9)]
        LOG.append(("gen", "ranks", self.rank, self.size, self.comm))

    def next(self):
        return self.left.pop(0) if self.left else Generator.EMPTY


class Boom(Stage):
    def __init__(self, fail_at=0, where="run", **params):
        super().__init__(**params)
        self.fail_at, self.where = fail_at, where

    def init(self, source_name):
        if self.where == "init":
            raise ValueError("cannot start")

    def run(self, source_name, source_slice, cache):
        if source_slice.start >= self.fail_at:
            raise RuntimeError("detector on fire")
'''


# -- helpers --------------------------------------------------------------------------------
def n_clusters(event):
    return (event * 5) % 4


def n_hits(cluster):
    return (cluster * 3) % 5


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "stages.py").write_text(STAGES)
    events = np.zeros(N_EVENTS, [("eid", "i8"), ("energy", "f8")])
    events["eid"] = np.arange(N_EVENTS)
    events["energy"] = np.arange(N_EVENTS) * 1.5
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f.create_dataset("events/data", data=events, chunks=(INPUT_CHUNKS,), maxshape=(None,))
        f.create_dataset("short/data", data=np.arange(7.0))  # fewer rows than events
        f.create_dataset("big/data", data=np.random.default_rng(0).random(1_000_000))
    return tmp_path


def config(tmp_path, text, name="flow.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def stages_module(tmp_path):
    """The module the configs' ``path: stages.py`` loaded (once per file per process)."""
    return sys.modules[load_class("Recorder", str(tmp_path / "stages.py")).__module__]


def present(a):
    """True where a masked array holds a value (any field of a structured one)."""
    mask = ma.getmaskarray(a)
    if mask.dtype.names:
        mask = np.any([mask[name] for name in mask.dtype.names], axis=0)
    return ~mask


def brute(path, clusters="clusters", hits="hits"):
    """Per event, its clusters; per cluster, its hits (ascending), straight from the
    reference tables; and the tables."""
    with h5py.File(path, "r") as f:
        ec = f[f"events/ref/{clusters}/ref"][:]
        hc = f[f"{hits}/ref/{clusters}/ref"][:]  # column 0: hit, column 1: cluster
        cdata, hdata = f[f"{clusters}/data"][:], f[f"{hits}/data"][:]
    ev_cl = {e: np.sort(ec[ec[:, 0] == e, 1]) for e in range(N_EVENTS)}
    cl_hits = {c: np.sort(hc[hc[:, 1] == c, 0]) for c in range(len(cdata))}
    # the builder's own definition agrees with the file
    for e, cl in ev_cl.items():
        assert len(cl) == n_clusters(e) and (cdata["ev"][cl] == e).all()
    for c, hs in cl_hits.items():
        assert len(hs) == n_hits(c) and (hdata["cl"][hs] == c).all()
    return ev_cl, cl_hits, cdata, hdata


def check_clusters(value, rows, ev_cl, cdata, index_only=False):
    assert value.shape[0] == len(rows)
    assert value.shape[1] == max(1, max(len(ev_cl[e]) for e in rows))
    keep = present(value)
    for i, e in enumerate(rows):
        expected = ev_cl[e]
        assert keep[i].tolist() == [True] * len(expected) + [False] * (value.shape[1]
                                                                       - len(expected))
        got = np.asarray(value.data[i][keep[i]])
        if index_only:
            assert got.dtype.kind in "iu" and got.tolist() == expected.tolist()
        else:
            assert got.tolist() == cdata[expected].tolist()


def check_hits(value, rows, ev_cl, cl_hits, hdata, index_only=False):
    widest = max([len(cl_hits[c]) for e in rows for c in ev_cl[e]], default=0)
    assert value.shape == (len(rows), max(1, max(len(ev_cl[e]) for e in rows)), max(1, widest))
    keep = present(value)
    for i, e in enumerate(rows):
        for j in range(value.shape[1]):
            if j >= len(ev_cl[e]):
                assert not keep[i, j].any()
                continue
            expected = cl_hits[ev_cl[e][j]]
            assert keep[i, j].tolist() == [True] * len(expected) + [False] * (value.shape[2]
                                                                              - len(expected))
            got = np.asarray(value.data[i, j][keep[i, j]])
            if index_only:
                assert got.tolist() == expected.tolist()
            else:
                assert got.tolist() == hdata[expected].tolist()


def same_masked(a, b):
    keep = present(a)
    return (a.shape == b.shape and np.array_equal(keep, present(b))
            and a.data[keep].tolist() == b.data[keep].tolist())


BUILD = """
    flow: {source: events, stages: [build]}
    build: {classname: Builder, path: stages.py}
"""

READ_REQUIRES = """\
  requires:
    - ev_extra                                             # a plain table, row by row
    - {name: ev_clusters, path: clusters}                  # referenced rows
    - {name: ev_cluster_idx, path: clusters, index_only: true}
    - {name: ev_hits, path: [clusters, hits]}              # a chain of two
    - {name: ev_hits_src, path: [events, clusters, hits]}  # the chain named from the source
    - {name: ev_hit_idx, path: [clusters, hits], index_only: true}
"""


def check_reader(tmp_path, out, slices, same_config=False):
    ev_cl, cl_hits, cdata, hdata = brute(out)
    seen = stages_module(tmp_path).SEEN["rec"]
    assert [s for s, _ in seen] == slices
    with h5py.File(out, "r") as f:
        extra = f["ev_extra/data"][:]
    for sl, cache in seen:
        rows = list(range(sl.start, sl.stop))
        assert cache["events"]["eid"].tolist() == rows
        assert isinstance(cache["ev_extra"], np.ndarray)
        assert cache["ev_extra"].tolist() == [10.0 * e for e in rows] == extra[sl].tolist()
        check_clusters(cache["ev_clusters"], rows, ev_cl, cdata)
        check_clusters(cache["ev_cluster_idx"], rows, ev_cl, cdata, index_only=True)
        check_hits(cache["ev_hits"], rows, ev_cl, cl_hits, hdata)
        check_hits(cache["ev_hit_idx"], rows, ev_cl, cl_hits, hdata, index_only=True)
        assert same_masked(cache["ev_hits_src"], cache["ev_hits"])


# -- requires -------------------------------------------------------------------------------
def test_requires_of_every_kind_after_a_previous_config(setup):
    """Two configs in one run: the second loops over the source and requires the tables and
    references the first wrote."""
    build = config(setup, BUILD, "build.yaml")
    read = config(setup, textwrap.dedent("""
        flow: {source: events, stages: [rec]}
        rec:
          classname: Recorder
          path: stages.py
    """) + READ_REQUIRES, "read.yaml")
    summary = run([build, read], setup / "out.h5", input=setup / "in.h5", progress=False)
    slices = [slice(s, min(s + INPUT_CHUNKS, N_EVENTS)) for s in range(0, N_EVENTS, INPUT_CHUNKS)]
    check_reader(setup, setup / "out.h5", slices)
    assert (summary.rows, summary.chunks) == (2 * N_EVENTS, 2 * len(slices))


def test_requires_of_tables_written_earlier_in_the_same_chunk(setup):
    """Builder and reader in one config: the requires read tables that are still growing
    (their datasets longer than the rows in use) and must see exactly this chunk's rows."""
    cfg = config(setup, textwrap.dedent("""
        flow: {source: gen, stages: [build, rec]}
        gen: {classname: LoopGenerator, dset_name: events, params: {chunk_size: 4}}
        build: {classname: Builder, path: stages.py}
        rec:
          classname: Recorder
          path: stages.py
    """) + READ_REQUIRES)
    run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False)
    check_reader(setup, setup / "out.h5",
                 [slice(s, min(s + 4, N_EVENTS)) for s in range(0, N_EVENTS, 4)])


def test_second_config_loops_over_a_table_the_first_wrote(setup):
    build = config(setup, BUILD, "build.yaml")
    read = config(setup, """
        flow: {source: clusters, stages: [rec]}
        rec:
          classname: Recorder
          path: stages.py
          requires:
            - {name: cl_hits, path: hits}          # hits -> clusters, read the other way
            - {name: cl_events, path: events}      # clusters -> events (events in the input)
    """, "read.yaml")
    run([build, read], setup / "out.h5", input=setup / "in.h5", progress=False)
    ev_cl, cl_hits, cdata, hdata = brute(setup / "out.h5")
    seen = stages_module(setup).SEEN["rec"]
    assert seen and seen[0][0].start == 0 and seen[-1][0].stop == len(cdata)
    for sl, cache in seen:
        assert cache["clusters"].tolist() == cdata[sl].tolist()
        for i, c in enumerate(range(sl.start, sl.stop)):
            keep = present(cache["cl_hits"][i])
            assert cache["cl_hits"].data[i][keep].tolist() == hdata[cl_hits[c]].tolist()
            keep = present(cache["cl_events"][i])
            assert cache["cl_events"].data[i][keep]["eid"].tolist() == [cdata["ev"][c]]


def test_index_only_on_a_plain_table_gives_the_row_indices(setup):
    """h5flow gives ``np.r_[source_slice]`` for an index_only require of a table without
    references: the indices into it, not its rows."""
    cfg = config(setup, """
        flow: {source: events, stages: [build, rec]}
        build: {classname: Builder, path: stages.py}
        rec:
          classname: Recorder
          path: stages.py
          requires: [{name: extra_idx, path: ev_extra, index_only: true}]
    """)
    run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False)
    for sl, cache in stages_module(setup).SEEN["rec"]:
        assert np.asarray(cache["extra_idx"]).tolist() == list(range(sl.start, sl.stop))


@pytest.mark.parametrize("requires, table", [
    ("[{name: x, path: nope}]", "nope"),
    ("[{name: x, path: [clusters, nope]}]", "nope"),
    ("[{name: x, path: [events, nope, hits]}]", "nope"),
    ("[{name: x, path: [ev_extra, hits]}]", "ev_extra"),  # a table, but no references
])
def test_unresolvable_require_raises_naming_stage_and_path(setup, requires, table):
    cfg = config(setup, f"""
        flow: {{source: events, stages: [build, rec]}}
        build: {{classname: Builder, path: stages.py}}
        rec: {{classname: Recorder, path: stages.py, requires: {requires}}}
    """)
    with pytest.raises(FlowError) as info:
        run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False)
    message = str(info.value)
    assert "'rec'" in message and "'x'" in message and table in message
    assert "rec" not in stages_module(setup).SEEN  # the stage never ran (never saw None)
    with h5py.File(setup / "out.h5", "r") as f:  # closed and valid
        # exactly the rows written: no capacity beyond them, on this exit path too
        assert f["clusters/data"].shape[0] == len(f["events/ref/clusters/ref"][:]) > 0


def test_plain_require_shorter_than_the_source_is_an_error(setup):
    """A plain require is aligned row by row with the source: a table that does not cover the
    chunk must not hand the stage fewer (or zero) rows silently."""
    cfg = config(setup, """
        flow: {source: events, stages: [rec]}
        rec: {classname: Recorder, path: stages.py, requires: [short]}
    """)
    with pytest.raises(FlowError, match=r"'rec'.*'short'"):
        run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False)
    for sl, cache in stages_module(setup).SEEN.get("rec", []):
        assert len(cache["short"]) == sl.stop - sl.start


# -- the loop -------------------------------------------------------------------------------
def test_start_and_end_bound_the_loop_of_every_config(setup):
    build = config(setup, BUILD, "build.yaml")
    read = config(setup, """
        flow: {source: gen, stages: [rec]}
        gen: {classname: LoopGenerator, dset_name: events, params: {chunk_size: 4}}
        rec: {classname: Recorder, path: stages.py}
    """, "read.yaml")
    summary = run([build, read], setup / "out.h5", input=setup / "in.h5", start=5, end=17,
                  progress=False)
    module = stages_module(setup)
    assert [s for s, _ in module.SEEN["rec"]] == [slice(5, 9), slice(9, 13), slice(13, 17)]
    built = [entry[2:] for entry in module.LOG if entry[:2] == ("build", "run")]
    assert built == [(5, 10), (10, 15), (15, 17)]  # chunk_size auto: the input's chunks
    with h5py.File(setup / "out.h5", "r") as f:
        assert f["ev_extra/data"][5:17].tolist() == [10.0 * e for e in range(5, 17)]
        assert sorted(set(f["clusters/data"]["ev"])) == [e for e in range(5, 17)
                                                         if n_clusters(e)]
    assert summary.rows == 2 * 12


def test_end_past_the_table_stops_at_its_end_and_start_past_it_is_an_error(setup):
    cfg = config(setup, """
        flow: {source: events, stages: [rec]}
        rec: {classname: Recorder, path: stages.py}
    """)
    run(cfg, setup / "out.h5", input=setup / "in.h5", start=20, end=1000, progress=False)
    assert [s for s, _ in stages_module(setup).SEEN["rec"]] == [slice(20, 23)]
    with pytest.raises(FlowConfigError, match="start position 30"):
        run(cfg, setup / "out2.h5", input=setup / "in.h5", start=30, progress=False)


@pytest.mark.parametrize("chunk_size, expected", [
    ("auto", [(s, min(s + INPUT_CHUNKS, N_EVENTS)) for s in range(0, N_EVENTS, INPUT_CHUNKS)]),
    (7, [(0, 7), (7, 14), (14, 21), (21, 23)]),
    (100, [(0, 23)]),
])
def test_chunk_size_param(setup, chunk_size, expected):
    cfg = config(setup, f"""
        flow: {{source: gen, stages: [rec]}}
        gen: {{classname: LoopGenerator, dset_name: events, params: {{chunk_size: {chunk_size}}}}}
        rec: {{classname: Recorder, path: stages.py}}
    """)
    summary = run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False)
    assert [(s.start, s.stop) for s, _ in stages_module(setup).SEEN["rec"]] == expected
    assert (summary.rows, summary.chunks) == (N_EVENTS, len(expected))


@pytest.mark.parametrize("bad", [0, -3, "'big'", 2.5])
def test_bad_chunk_size_is_a_config_error(setup, bad):
    cfg = config(setup, f"""
        flow: {{source: gen, stages: [rec]}}
        gen: {{classname: LoopGenerator, dset_name: events, params: {{chunk_size: {bad}}}}}
        rec: {{classname: Recorder, path: stages.py}}
    """)
    with pytest.raises(FlowConfigError, match="chunk_size"):
        run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False)


def test_generator_named_with_classname_path_and_params(setup):
    cfg = config(setup, """
        flow: {source: strided, stages: [rec]}
        strided:
          classname: Strided
          path: stages.py
          dset_name: events
          params: {size: 3}
        rec: {classname: Recorder, path: stages.py}
    """)
    run(cfg, setup / "out.h5", input=setup / "in.h5", start=2, end=20, progress=False)
    module = stages_module(setup)
    assert [(s.start, s.stop) for s, _ in module.SEEN["rec"]] == [(0, 3), (6, 9), (12, 15),
                                                                   (18, 21)]
    for sl, cache in module.SEEN["rec"]:  # the cache follows the generator's slices
        assert cache["events"]["eid"].tolist() == list(range(sl.start, sl.stop))
    gen = [entry for entry in module.LOG if entry[0] == "gen"]
    assert gen[0][:4] == ("gen", "init", "strided", "events")
    assert os.path.samefile(gen[0][4], setup / "in.h5")  # input_filename
    assert gen[0][5:] == (2, 20, 3)                       # start, end, params
    assert gen[-1] == ("gen", "finish")


def test_a_generator_returning_empty_ends_the_run_on_one_rank(setup):
    cfg = config(setup, """
        flow: {source: gen, stages: [rec]}
        gen: {classname: EmptyWhenDone, path: stages.py, dset_name: events}
        rec: {classname: Recorder, path: stages.py}
    """)
    summary = run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False)
    module = stages_module(setup)
    assert [(s.start, s.stop) for s, _ in module.SEEN["rec"]] == [(0, 4), (4, 9)]
    assert (summary.rows, summary.chunks, summary.ranks) == (9, 2, 1)
    assert ("gen", "ranks", 0, 1, None) in module.LOG  # self.rank, self.size, self.comm


def test_stage_and_resource_call_order(setup):
    cfg = config(setup, """
        flow: {source: gen, stages: [first, second]}
        resources:
          - {classname: Geometry, path: stages.py, params: {scale: 2.5}}
        gen: {classname: LoopGenerator, dset_name: events, params: {chunk_size: 10}}
        first: {classname: Tracer, path: stages.py}
        second: {classname: Tracer, path: stages.py}
    """)
    run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False)
    log = stages_module(setup).LOG
    runs = [(who, start, scale) for who, what, start, scale in
            (e for e in log if e[1] == "run")]
    assert runs == [(who, start, 2.5) for start in (0, 10, 20) for who in ("first", "second")]
    calls = [e[:2] for e in log]
    assert calls.count(("Geometry", "init")) == 1 and calls.count(("Geometry", "finish")) == 1
    assert calls[:3] == [("Geometry", "init"), ("first", "init"), ("second", "init")]
    assert calls[-3:] == [("first", "finish"), ("second", "finish"), ("Geometry", "finish")]
    assert [e for e in log if e[1] in ("init", "finish") and e[0] != "Geometry"] == [
        ("first", "init", "events"), ("second", "init", "events"),
        ("first", "finish", "events"), ("second", "finish", "events")]


def test_resource_with_h5flows_call_shape(setup):
    """h5flow calls ``resource.init(source_name)`` and ``resource.finish(source_name)``; a
    resource written that way must run unchanged."""
    cfg = config(setup, """
        flow: {source: events, stages: [rec]}
        resources: [{classname: H5flowStyleResource, path: stages.py}]
        rec: {classname: Recorder, path: stages.py}
    """)
    run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False)
    log = [e for e in stages_module(setup).LOG if e[0] == "H5flowStyleResource"]
    assert log == [("H5flowStyleResource", "init", "events"),
                   ("H5flowStyleResource", "finish", "events")]


@pytest.mark.parametrize("snippet", [
    """
    flow: {source: events, stages: [rec]}
    rec: {classname: Recorder, path: stages.py, params: {requires: [a]}}
    """,
    """
    flow: {source: events, stages: [rec]}
    rec: {classname: Recorder, path: stages.py, params: {data_manager: 1}}
    """,
    """
    flow: {source: events, stages: [rec]}
    rec: {classname: Recorder, path: stages.py, params: {name: other}}
    """,
    """
    flow: {source: gen, stages: [rec]}
    gen: {classname: LoopGenerator, dset_name: events, params: {start_position: 3}}
    rec: {classname: Recorder, path: stages.py}
    """,
    """
    flow: {source: gen, stages: [rec]}
    gen: {classname: LoopGenerator, dset_name: events, params: {dset_name: short}}
    rec: {classname: Recorder, path: stages.py}
    """,
    """
    flow: {source: events, stages: [rec]}
    resources: [{classname: Geometry, path: stages.py, params: {resources: {}}}]
    rec: {classname: Recorder, path: stages.py}
    """,
])
def test_params_clashing_with_fixed_names_fail_before_any_file(setup, snippet):
    good = config(setup, BUILD, "good.yaml")
    bad = config(setup, snippet, "bad.yaml")
    with pytest.raises(FlowConfigError, match="clashes"):
        run([good, bad], setup / "out.h5", input=setup / "in.h5", progress=False)
    assert sorted(p.name for p in setup.iterdir() if p.suffix == ".h5") == ["in.h5"]


# -- drop -----------------------------------------------------------------------------------
DROP_BUILD = """
    flow: {source: events, stages: [build, extra]%s}
    build: {classname: Builder, path: stages.py}
    extra: {classname: Extra, path: stages.py}
"""


def check_dropped(out):
    with h5py.File(out, "r") as f:
        names = set()
        f.visit(names.add)
        assert "hits" not in f
        assert not any(n == "hits" or n.startswith("hits/") for n in names)
        assert "clusters/ref/hits" not in f  # the reference group towards it
        assert not any("/ref/hits/" in n + "/" for n in names)
        assert f["hits_extra/data"].shape[0] > 0  # not merely a name starting with "hits"
        # h5flow's layout: the table under the parent only, a region on both sides
        assert "clusters/ref/hits_extra/ref" in f and "hits_extra/ref/clusters/ref" not in f
        assert "hits_extra/ref/clusters/ref_region" in f
        assert "events/ref/clusters/ref" in f and "clusters/ref/events/ref_region" in f
        ec = f["events/ref/clusters/ref"][:]
        got = dereference(slice(0, N_EVENTS), f["events/ref/clusters/ref"],
                          f["clusters/data"], region=f["events/ref/clusters/ref_region"])
        for e in range(N_EVENTS):
            keep = present(got[e])
            assert got.data[e][keep]["cid"].tolist() == sorted(ec[ec[:, 0] == e, 1])
    assert not [p for p in out.parent.iterdir() if "scratch" in p.name]


@pytest.mark.parametrize("how", ["config", "argument"])
def test_drop_removes_exactly_the_table_and_references_to_it(setup, how):
    cfg = config(setup, DROP_BUILD % (", drop: [hits]" if how == "config" else ""))
    run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False,
        drop=["/hits"] if how == "argument" else ())
    check_dropped(setup / "out.h5")


def test_a_later_config_still_reads_a_table_dropped_at_the_end(setup):
    build = config(setup, """
        flow: {source: events, stages: [build], drop: [hits]}
        build: {classname: Builder, path: stages.py}
    """, "build.yaml")
    read = config(setup, """
        flow: {source: events, stages: [rec]}
        rec:
          classname: Recorder
          path: stages.py
          requires: [{name: ev_hits, path: [clusters, hits]}, {name: ev_cl, path: clusters}]
    """, "read.yaml")
    run([build, read], setup / "out.h5", input=setup / "in.h5", progress=False)
    seen = stages_module(setup).SEEN["rec"]
    assert sum(sl.stop - sl.start for sl, _ in seen) == N_EVENTS
    for sl, cache in seen:
        hits, clusters = cache["ev_hits"], cache["ev_cl"]
        keep_h, keep_c = present(hits), present(clusters)
        for i, e in enumerate(range(sl.start, sl.stop)):
            cids = clusters.data[i][keep_c[i]]["cid"].tolist()
            assert len(cids) == n_clusters(e)
            for j, c in enumerate(cids):
                got = hits.data[i, j][keep_h[i, j]]
                assert len(got) == n_hits(c) and set(got["cl"].tolist()) <= {c}
    with h5py.File(setup / "out.h5", "r") as f:
        assert "hits" not in f and "clusters/ref/hits" not in f and "clusters/data" in f
    assert not [p for p in setup.iterdir() if "scratch" in p.name]


def test_drop_of_a_table_written_by_an_earlier_run(setup):
    run(config(setup, DROP_BUILD % ""), setup / "out.h5", input=setup / "in.h5",
        progress=False)
    with h5py.File(setup / "out.h5", "r") as f:
        assert "hits/data" in f and "hits/ref/clusters/ref" in f
        assert "clusters/ref/hits/ref_region" in f
    noop = config(setup, """
        flow: {source: events, stages: [rec]}
        rec: {classname: Recorder, path: stages.py}
    """, "noop.yaml")
    run(noop, setup / "out.h5", input=setup / "in.h5", drop=["hits"], progress=False)
    check_dropped(setup / "out.h5")


def test_drop_of_a_nested_table_written_by_an_earlier_run(setup):
    """Flow tables often have nested names (charge/hits): the reference groups other nested
    tables keep towards a dropped one go too."""
    cfg = config(setup, """
        flow: {source: events, stages: [build]}
        build:
          classname: Builder
          path: stages.py
          params: {clusters: charge/clusters, hits: charge/hits, extra: charge/hits_extra}
    """)
    run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False)
    with h5py.File(setup / "out.h5", "r") as f:
        assert "charge/clusters/ref/charge/hits/ref_region" in f
    noop = config(setup, """
        flow: {source: events, stages: [rec]}
        rec: {classname: Recorder, path: stages.py}
    """, "noop.yaml")
    run(noop, setup / "out.h5", input=setup / "in.h5", drop=["charge/hits"], progress=False)
    with h5py.File(setup / "out.h5", "r") as f:
        names = set()
        f.visit(names.add)
        assert "charge/hits" not in f and "charge/hits_extra/data" in f
        assert not any("/ref/charge/hits/" in n + "/" for n in names), sorted(names)
        assert "events/ref/charge/clusters/ref" in f


# -- files ----------------------------------------------------------------------------------
def test_compression_applies_to_every_table_created(setup):
    cfg = config(setup, DROP_BUILD % "")
    run(cfg, setup / "out.h5", input=setup / "in.h5", compression="gzip", progress=False)
    datasets = []
    with h5py.File(setup / "out.h5", "r") as f:
        f.visititems(lambda n, o: datasets.append(o) if isinstance(o, h5py.Dataset) else None)
        assert len(datasets) >= 12  # tables, references and both regions of each
        for dset in datasets:
            assert dset.compression == "gzip", dset.name
        assert f["ev_extra/data"][:].tolist() == [10.0 * e for e in range(N_EVENTS)]
    brute(setup / "out.h5")


def test_input_is_neither_modified_nor_copied(setup):
    before = hashlib.sha256((setup / "in.h5").read_bytes()).hexdigest()
    mtime = os.stat(setup / "in.h5").st_mtime_ns
    cfg = config(setup, DROP_BUILD % "")
    run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False)
    assert hashlib.sha256((setup / "in.h5").read_bytes()).hexdigest() == before
    assert os.stat(setup / "in.h5").st_mtime_ns == mtime
    with h5py.File(setup / "out.h5", "r") as f:
        assert "events/data" not in f and "big" not in f and "short" not in f
    assert os.path.getsize(setup / "out.h5") < os.path.getsize(setup / "in.h5") / 4


@pytest.mark.parametrize("where, message", [
    ("run", r"stage 'boom' \(Boom\) failed in run\(\) on rows 10:15: RuntimeError: "
            r"detector on fire"),
    ("init", r"stage 'boom' \(Boom\) failed in init\(\): ValueError: cannot start"),
])
def test_stage_exception_leaves_a_valid_output(setup, where, message):
    cfg = config(setup, f"""
        flow: {{source: events, stages: [build, boom], drop: [ev_extra]}}
        build: {{classname: Builder, path: stages.py}}
        boom: {{classname: Boom, path: stages.py, params: {{fail_at: 10, where: {where}}}}}
    """)
    with pytest.raises(FlowError, match=message):
        run(cfg, setup / "out.h5", input=setup / "in.h5", progress=False)
    done = 15 if where == "run" else 0  # the builder ran on rows 10:15 before boom failed
    with h5py.File(setup / "out.h5", "r") as f:
        clusters = f["clusters/data"]
        expected = sum(n_clusters(e) for e in range(done))
        assert clusters.shape[0] == expected and "h5forge_rows" not in clusters.attrs
        assert clusters["ev"].tolist() == sorted(clusters["ev"].tolist())
        ref = f["events/ref/clusters/ref"]
        assert ref.shape == (expected, 2)
        if done:
            got = dereference(slice(0, done), ref, clusters,
                              region=f["events/ref/clusters/ref_region"])
            for e in range(done):
                keep = present(got[e])
                assert set(got.data[e][keep]["ev"].tolist()) <= {e}
                assert keep.sum() == n_clusters(e)
    assert not [p for p in setup.iterdir() if "scratch" in p.name]
