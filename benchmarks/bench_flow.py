#!/usr/bin/env python
"""Benchmark ``h5forge.flow`` (the serial engine and ``dereference``) side by side with h5flow.

The peer is h5flow (github.com/larpix/h5flow, also lbl-neutrino/h5flow).  It is not on PyPI:
give its source directory (the one holding the ``h5flow`` package) with ``--h5flow-path`` (or
the ``H5FLOW_PATH`` environment variable; several directories joined with ``:``, e.g. the
source plus a ``pip install --target`` directory holding ``pyyaml-include<2`` and ``mpi4py``).
h5flow runs in a subprocess of this script (``--child-h5flow``) with that path prepended to
``PYTHONPATH`` and ``H5FLOW_NOMPI=1`` (serial: a pip h5py has no ``mpio`` driver), so its global
state (resources, logging, sys.argv checks) stays out of this process.  Without h5flow the
tables show h5forge's figures beside h5flow's published ones: 0.76 ms per chunk with stages
that write no references, about 3 ms more per reference-writing stage, and ``dereference`` of
100 rows against 100,000 references in 1.3-1.6 ms with a region table.  The goal: h5forge at
most 1/5 of each.

Serial section (cases 1 and 2; case 3, ``mpi``, is described in ``_flow_mpi.py``: a CPU-bound
and an I/O-bound stage over 10 million rows on 1 and 2 MPI ranks):

1. **chunks** - a source table ``events`` of ``--rows`` rows (default 3,000; ``--quick`` 600)
   is looped over in chunks of ``--small-chunk`` rows (10) and of ``--rows / 3`` rows by: a
   flow of one stage that does nothing (``noop``), and flows of k = 1..4 stages each writing
   references (``refs k``): per chunk each such stage appends 2 child rows per source row to
   its own table (``reserve_data`` + ``write_data``) and writes the 2 references per source
   row (``write_ref``: the reference table and both region tables).  Each run is the tool's
   whole ``run`` call (config reading, class loading, init, loop, finish) on a fresh copy of
   a template file (the copy is not timed); the source table is in the output file, as h5flow
   reads it (h5forge also reads it from the output: ``input=None``).  Per chunk = (time with
   small chunks - time with 3 chunks) / (difference in chunks): the fixed costs cancel.  Per
   reference = the least-squares slope of the per-chunk time over k = 0 (noop) .. 4.  Best
   time of ``--repeat`` runs (3; ``--quick`` 1), the tools alternating (order swapped every
   repetition).  Checked after every run (untimed): each child table holds 2 rows per source
   row, the reference table holds exactly the expected (parent, child) pairs and every region
   is exactly its row's two references.
2. **dereference** - a file holding a parent table of 10,000 rows, a child table of 100,000
   rows (``q`` float32, ``t`` int64 = the child's row) and the 100,000 references (10 per
   parent, children contiguous per parent, as a flow appends them) with the parent's region
   table.  Timed: ``dereference(sel, ref, data, region=...)`` of 100 parent rows, ``sel`` a
   slice (rows 5,000-5,099) or 100 sorted random rows spread over the table, with and without
   the region table; ``--calls`` back-to-back calls each (300; ``--quick`` 50; the garbage
   collector paused for the series), median and best reported.  Both tools get the same open
   h5py datasets (64 KB chunks of whole rows, as a flow writes them).  Checked: every result
   against brute force (children ``10 p .. 10 p + 9`` of each parent ``p``, in order, the rest
   masked).

Targets print PASS or MISS against h5flow measured here (when it runs) and against h5flow's
published figures; the script never fails because of them.  A tool that fails or gives wrong
results shows ``n/a`` with the reason (the traceback goes to stderr).  Timed runs of case 1 use
``_common.timed`` (garbage collector paused).  Files live in a temporary directory
(``--tmpdir``) removed at the end.

    .venv/bin/python benchmarks/bench_flow.py --quick          # smoke run (~15 s)
    .venv/bin/python benchmarks/bench_flow.py                  # full run (~1-2 min with h5flow)
    H5FLOW_PATH=/tmp/h5flow-src .venv/bin/python benchmarks/bench_flow.py --cases dereference
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from pathlib import Path

import h5py
import numpy as np
from _common import (  # noqa: E402  (benchmarks/ is on sys.path)
    fmt_ratio,
    fmt_time,
    machine_line,
    package_version,
    print_table,
    ratio,
    reason,
    report_target,
    timed,
)
from _flow_mpi import case_mpi  # noqa: E402  (the MPI section)

CASES = ("chunks", "dereference", "mpi")
TOOLS = ("h5forge", "h5flow")
MAX_REFS = 4          # reference-writing stages in the largest flow
PER_ROW = 2           # child rows (and references) per source row, per stage
FEW_CHUNKS = 3        # the "large chunks" runs loop over the table in this many chunks
N_PARENTS, PER_PARENT, N_SELECTED = 10_000, 10, 100
GOAL = 5.0            # h5forge at most 1/5 of h5flow

#: h5flow's published figures (seconds).
PUBLISHED = {"chunk": 0.76e-3, "per_ref": 3e-3, "deref_region": (1.3e-3, 1.6e-3)}

# ----------------------------------------------------------------------------- tools


def _import_h5forge_flow():
    """``(module, None)`` or ``(None, reason)``."""
    try:
        try:
            import h5forge.flow as module
        except ModuleNotFoundError:  # a checkout without `pip install -e .`
            src = Path(__file__).resolve().parents[1] / "src"
            if "h5forge" in sys.modules or not (src / "h5forge").is_dir():
                raise
            sys.path.insert(0, str(src))
            import h5forge.flow as module
    except Exception as exc:
        traceback.print_exc()
        return None, f"not importable ({reason(exc)})"
    missing = [n for n in ("run", "dereference", "Stage") if not hasattr(module, n)]
    if missing:
        return None, f"incomplete: h5forge.flow has no {', '.join(missing)}"
    return module, None


STAGES = '''
import numpy as np
{import_line}


class Noop(Stage):
    def run(self, source_name, source_slice, cache):
        pass


class RefWriter(Stage):
    """Per chunk: ``per_row`` rows of table ``child`` per source row, and a reference from
    each source row to each of its child rows."""

    def __init__(self, child="child", per_row=2, **params):
        super().__init__(**params)
        self.child, self.per_row = child, per_row

    def init(self, source_name):
        self.data_manager.create_dset(self.child, np.dtype("f8"))
        self.data_manager.create_ref(source_name, self.child)

    def run(self, source_name, source_slice, cache):
        dm = self.data_manager
        n = (source_slice.stop - source_slice.start) * self.per_row
        sel = dm.reserve_data(self.child, int(n))
        children = np.arange(sel.start, sel.stop, dtype=np.int64)
        dm.write_data(self.child, sel, children.astype("f8"))
        parents = np.repeat(np.arange(source_slice.start, source_slice.stop, dtype=np.int64),
                            self.per_row)
        dm.write_ref(source_name, self.child, np.stack([parents, children], axis=1))
'''

IMPORT_LINES = {
    "h5forge": "from h5forge.flow import Stage",
    "h5flow": "from h5flow.core import H5FlowStage as Stage",
}
GENERATORS = {
    "h5forge": "{classname: LoopGenerator, dset_name: events, params: {chunk_size: %d}}",
    "h5flow": ("{classname: H5FlowDatasetLoopGenerator, path: h5flow.modules, "
               "dset_name: events, params: {chunk_size: %d}}"),
}


def flow_names():
    return ["noop"] + [f"refs {k}" for k in range(1, MAX_REFS + 1)]


def write_config(workdir, tool, flow, chunk_size):
    """The YAML config of ``flow`` (``noop`` or ``refs k``) for ``tool``; returns its path."""
    stages_file = os.path.join(workdir, f"stages_{tool}.py")
    if not os.path.exists(stages_file):
        with open(stages_file, "w") as f:
            f.write(STAGES.format(import_line=IMPORT_LINES[tool]))
    # h5flow's 'path' is a dotted module (h5flow_run puts workdir on sys.path); h5forge's
    # may be the .py file
    where = f"stages_{tool}" if tool == "h5flow" else stages_file
    if flow == "noop":
        names = ["noop"]
        defs = [f"noop: {{classname: Noop, path: {where}}}"]
    else:
        k = int(flow.split()[1])
        names = [f"w{i}" for i in range(1, k + 1)]
        defs = [f"w{i}: {{classname: RefWriter, path: {where}, "
                f"params: {{child: child{i}, per_row: {PER_ROW}}}}}" for i in range(1, k + 1)]
    text = "\n".join([f"flow: {{source: gen, stages: [{', '.join(names)}]}}",
                      "gen: " + GENERATORS[tool] % chunk_size, *defs]) + "\n"
    path = os.path.join(workdir, f"{tool}_{flow.replace(' ', '')}_{chunk_size}.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def make_template(path, rows):
    events = np.zeros(rows, [("eid", "i8"), ("energy", "f8")])
    events["eid"] = np.arange(rows)
    events["energy"] = np.arange(rows) * 0.5
    with h5py.File(path, "w") as f:
        f.create_dataset("events/data", data=events, maxshape=(None,), chunks=(1024,))


def check_output(path, flow, rows):
    """Raise unless the flow wrote exactly the expected tables, references and regions."""
    k = 0 if flow == "noop" else int(flow.split()[1])
    with h5py.File(path, "r") as f:
        if f["events/data"].shape != (rows,):
            raise CheckError(f"the source table has {f['events/data'].shape[0]} rows")
        for i in range(1, k + 1):
            child = f[f"child{i}/data"]
            if child.shape != (rows * PER_ROW,) or not np.array_equal(
                    child[:], np.arange(rows * PER_ROW, dtype="f8")):
                raise CheckError(f"child{i}: {child.shape[0]} rows, expected {rows * PER_ROW}")
            ref = np.asarray(f[f"events/ref/child{i}/ref"][:], dtype=np.int64)
            expected = np.stack([np.repeat(np.arange(rows), PER_ROW),
                                 np.arange(rows * PER_ROW)], axis=1)
            if ref.shape != expected.shape or not np.array_equal(
                    ref[np.lexsort((ref[:, 1], ref[:, 0]))], expected):
                raise CheckError(f"events/ref/child{i}/ref differs from the expected pairs")
            region = f[f"events/ref/child{i}/ref_region"][:]
            spans = region["stop"][:rows].astype(np.int64) - region["start"][:rows]
            firsts = ref[region["start"][:rows].astype(np.int64), 0]
            if len(region) < rows or (spans != PER_ROW).any() or not np.array_equal(
                    firsts, np.arange(rows)):
                raise CheckError(f"events/ref/child{i}/ref_region is not one exact span per "
                                 "row")


class CheckError(Exception):
    """A tool wrote or returned something other than what was expected."""


def h5forge_run(cfg, out):
    flow, _ = _import_h5forge_flow()
    flow.run(cfg, out, progress=False)


def h5flow_run(cfg, out):
    import h5flow
    if os.path.dirname(cfg) not in sys.path:  # where the dotted stages module lives
        sys.path.insert(0, os.path.dirname(cfg))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        h5flow.run([cfg], out, input_filename=out)  # it prints banners and a tqdm bar


RUNNERS = {"h5forge": h5forge_run, "h5flow": h5flow_run}


def chunk_series(tool, workdir, template, rows, small_chunk):
    """One repetition of case 1 for ``tool``: ``{flow: {"many": s, "few": s}}`` or
    ``{flow: {"error": reason}}``."""
    big_chunk = -(-rows // FEW_CHUNKS)
    results = {}
    for flow in flow_names():
        entry = results[flow] = {}
        for label, chunk_size in (("many", small_chunk), ("few", big_chunk)):
            out = os.path.join(workdir, f"out_{tool}.h5")
            try:
                shutil.copyfile(template, out)
                cfg = write_config(workdir, tool, flow, chunk_size)
                seconds, _ = timed(RUNNERS[tool], cfg, out)
                check_output(out, flow, rows)
                entry[label] = seconds
            except Exception as exc:
                print(f"\n[{tool}] {flow} ({label} chunks) failed:", file=sys.stderr)
                traceback.print_exception(exc, file=sys.stderr)
                results[flow] = {"error": f"{label} chunks: {reason(exc)}"}
                break
            finally:
                if os.path.exists(out):
                    os.remove(out)
    return results


# ----------------------------------------------------------------------------- dereference


def make_deref_file(path):
    n_refs = N_PARENTS * PER_PARENT
    children = np.zeros(n_refs, [("q", "f4"), ("t", "i8")])
    children["t"] = np.arange(n_refs)
    children["q"] = np.arange(n_refs) * 0.25
    ref = np.stack([np.repeat(np.arange(N_PARENTS), PER_PARENT), np.arange(n_refs)], axis=1)
    region = np.zeros(N_PARENTS, [("start", "<i8"), ("stop", "<i8")])
    region["start"] = np.arange(N_PARENTS) * PER_PARENT
    region["stop"] = region["start"] + PER_PARENT
    with h5py.File(path, "w") as f:  # 64 KB chunks of whole rows, as a flow writes them
        f.create_dataset("parents/data", data=np.arange(N_PARENTS), chunks=(8192,),
                         maxshape=(None,))
        f.create_dataset("children/data", data=children, chunks=(5461,), maxshape=(None,))
        f.create_dataset("parents/ref/children/ref", data=ref.astype(np.int64),
                         chunks=(4096, 2), maxshape=(None, 2))
        f.create_dataset("parents/ref/children/ref_region", data=region, chunks=(4096,),
                         maxshape=(None,))


def deref_selections(seed):
    rng = np.random.default_rng(seed)
    spread = np.sort(rng.choice(N_PARENTS, N_SELECTED, replace=False))
    return {"slice 5000:5100": slice(5000, 5000 + N_SELECTED), "100 random rows": spread}


def check_deref(result, sel):
    parents = np.arange(N_PARENTS)[sel]
    if result.shape[0] != len(parents):
        raise CheckError(f"{result.shape[0]} rows, expected {len(parents)}")
    t = np.ma.getdata(result["t"])
    mask = np.ma.getmaskarray(result["t"])
    width = result.shape[1]
    for i, p in enumerate(parents):
        keep = ~mask[i]
        if keep.sum() != PER_PARENT or not keep[:PER_PARENT].all():
            raise CheckError(f"row {p}: {keep.sum()} children, expected {PER_PARENT} first")
        if t[i][keep].tolist() != list(range(p * PER_PARENT, (p + 1) * PER_PARENT)):
            raise CheckError(f"row {p}: wrong children")
    return width


def timed_calls(fn, args, calls):
    """``([seconds per call], last result)``: ``calls`` back-to-back calls with the garbage
    collector paused for the whole series (collected once before it, not between calls, so
    the calls run as they would in a loop)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            result = fn(*args)
            times.append(time.perf_counter() - start)
        return times, result
    finally:
        if was_enabled:
            gc.enable()


def deref_series(tool, path, calls, seed):
    """Case 2 for ``tool``: ``{case: {"times": [...]} or {"error": ...}}``."""
    if tool == "h5forge":
        dereference = _import_h5forge_flow()[0].dereference
    else:
        from h5flow.data.lib import dereference
    results = {}
    with h5py.File(path, "r") as f:
        ref, data = f["parents/ref/children/ref"], f["children/data"]
        region = f["parents/ref/children/ref_region"]
        for name, sel in deref_selections(seed).items():
            for with_region in (True, False):
                key = f"{name}|{'region' if with_region else 'no region'}"
                try:
                    times, got = timed_calls(dereference, (sel, ref, data,
                                                           region if with_region else None),
                                             calls)
                    check_deref(got, sel)
                    results[key] = {"times": times}
                except Exception as exc:
                    print(f"\n[{tool}] dereference {key} failed:", file=sys.stderr)
                    traceback.print_exception(exc, file=sys.stderr)
                    results[key] = {"error": reason(exc)}
    return results


# ----------------------------------------------------------------------------- h5flow child


def h5flow_env(path):
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (path, env.get("PYTHONPATH")) if p)
    env.setdefault("H5FLOW_NOMPI", "1")
    return env


def probe_h5flow(args):
    """None if h5flow can be imported in the child's environment, else the reason."""
    code = "import h5flow, h5flow.data.lib, h5flow.core; print(h5flow.__file__)"
    try:
        done = subprocess.run([sys.executable, "-c", code], env=h5flow_env(args.h5flow_path),
                              capture_output=True, text=True, timeout=120)
    except Exception as exc:
        return f"cannot start the h5flow process ({reason(exc)})"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"not importable ({last[:160]}); give its source with --h5flow-path"
    args.h5flow_file = done.stdout.strip()
    return None


def in_h5flow_child(args, case, **extra):
    """Run one repetition of ``case`` for h5flow in a subprocess; its JSON result."""
    command = [sys.executable, os.path.abspath(__file__), "--child-h5flow", case,
               "--child-spec", json.dumps(extra)]
    done = subprocess.run(command, env=h5flow_env(args.h5flow_path), stdout=subprocess.PIPE,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"h5flow child process exited with {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_main(case, spec):
    if case == "chunks":
        result = chunk_series("h5flow", spec["workdir"], spec["template"], spec["rows"],
                              spec["small_chunk"])
    else:
        result = deref_series("h5flow", spec["path"], spec["calls"], spec["seed"])
    print(json.dumps(result))


# ----------------------------------------------------------------------------- reporting


def fmt_speedup(speedup):
    """``peer / ours`` as "N.NNx faster" or "N.NNx slower"."""
    if speedup is None:
        return "n/a"
    return (f"{fmt_ratio(speedup)} faster" if speedup >= 1
            else f"{fmt_ratio(1 / speedup)} slower")


def goal_lines(what, ours, peer, published):
    """PASS/MISS of ``ours`` <= peer / GOAL, against h5flow measured here and published."""
    speedup = ratio(peer, ours)
    report_target(f"{what} <= 1/{GOAL:g} of h5flow's measured here",
                  f"{fmt_time(ours)} vs {fmt_time(peer)}: "
                  + (fmt_speedup(speedup) if speedup else "h5flow not measured"),
                  None if speedup is None else speedup >= GOAL)
    speedup = ratio(published, ours)
    report_target(f"{what} <= 1/{GOAL:g} of h5flow's published {fmt_time(published)} "
                  f"(<= {fmt_time(published / GOAL)})",
                  f"{fmt_time(ours)}: " + fmt_speedup(speedup),
                  None if speedup is None else speedup >= GOAL)


# ----------------------------------------------------------------------------- cases


def merge_best(best, result):
    """Keep the smallest time per flow and label; the first error wins."""
    for flow, entry in result.items():
        kept = best.setdefault(flow, {})
        if "error" in kept:
            continue
        if "error" in entry:
            best[flow] = {"error": entry["error"]}
            continue
        for label, seconds in entry.items():
            kept[label] = min(kept.get(label, np.inf), seconds)


def per_chunk(entry, rows, small_chunk):
    if not entry or "error" in entry or "many" not in entry or "few" not in entry:
        return None
    many = -(-rows // small_chunk)
    return (entry["many"] - entry["few"]) / (many - FEW_CHUNKS)


def slope(values):
    """Least-squares slope of ``values`` (per-chunk times for k = 0..MAX_REFS)."""
    if any(v is None for v in values):
        return None
    k = np.arange(len(values), dtype=float)
    return float(np.polyfit(k, np.asarray(values), 1)[0])


def case_chunks(args, workdir, tools):
    rows, small = args.rows, args.small_chunk
    template = os.path.join(workdir, "template.h5")
    make_template(template, rows)
    best = {tool: {} for tool in tools}
    missing = {}
    for rep in range(args.repeat):
        order = tools if rep % 2 == 0 else tools[::-1]
        for tool in order:
            if tool in missing:
                continue
            try:
                if tool == "h5flow":
                    result = in_h5flow_child(args, "chunks", workdir=workdir, template=template,
                                             rows=rows, small_chunk=small)
                else:
                    result = chunk_series(tool, workdir, template, rows, small)
                merge_best(best[tool], result)
            except Exception as exc:
                traceback.print_exception(exc, file=sys.stderr)
                missing[tool] = reason(exc)
    many = -(-rows // small)
    figures = {}
    for tool in tools:
        figures[tool] = {flow: per_chunk(best[tool].get(flow), rows, small)
                         for flow in flow_names()}
    headers = ["tool", "flow", f"{many} chunks of {small}", f"{FEW_CHUNKS} chunks",
               "per chunk", "h5flow / h5forge", "check"]
    table = []
    for tool in tools:
        for flow in flow_names():
            entry = best[tool].get(flow) or {}
            error = missing.get(tool) or entry.get("error")
            if error:
                table.append([tool, flow, "n/a", "n/a", "n/a", "n/a", f"n/a: {error}"])
                continue
            ours = figures.get("h5forge", {}).get(flow)
            peer = figures.get("h5flow", {}).get(flow)
            table.append([tool, flow, fmt_time(entry.get("many")), fmt_time(entry.get("few")),
                          fmt_time(figures[tool][flow]),
                          fmt_ratio(ratio(peer, ours)) if tool == "h5flow" else "",
                          f"ok ({args.repeat} runs, best)"])
    print_table(f"[1] chunks: {rows:,} source rows; a flow of one no-op stage, and of k stages "
                f"each appending {PER_ROW} child rows + {PER_ROW} references per source row; "
                f"per chunk = (time of {many} chunks - time of {FEW_CHUNKS}) / {many - FEW_CHUNKS}",
                headers, table)
    summary = []
    per_ref = {tool: slope([figures[tool][f] for f in flow_names()]) for tool in tools}
    for tool in tools:
        summary.append([tool, fmt_time(figures[tool]["noop"]), fmt_time(per_ref[tool]),
                        fmt_time(figures[tool][f"refs {MAX_REFS}"]), "measured here"])
    summary.append(["h5flow (published)", fmt_time(PUBLISHED["chunk"]),
                    f"~{fmt_time(PUBLISHED['per_ref'])}", "", "the issue's figures"])
    ours = figures.get("h5forge", {})
    peer = figures.get("h5flow", {})
    summary.append(["ratio h5flow / h5forge", fmt_ratio(ratio(peer.get("noop"), ours.get("noop"))),
                    fmt_ratio(ratio(per_ref.get("h5flow"), per_ref.get("h5forge"))),
                    fmt_ratio(ratio(peer.get(f"refs {MAX_REFS}"), ours.get(f"refs {MAX_REFS}"))),
                    "measured here"])
    summary.append(["ratio published / h5forge",
                    fmt_ratio(ratio(PUBLISHED["chunk"], ours.get("noop"))),
                    fmt_ratio(ratio(PUBLISHED["per_ref"], per_ref.get("h5forge"))), "", ""])
    print_table("per-chunk overhead (summary)", ["", "per chunk, no refs",
                                                  "per reference-writing stage",
                                                  f"per chunk, {MAX_REFS} refs", "note"], summary)
    if "h5flow" in missing:
        print(f"  h5flow: n/a ({missing['h5flow']})")
    print("targets:")
    goal_lines("h5forge per chunk without refs", ours.get("noop"), peer.get("noop"),
               PUBLISHED["chunk"])
    goal_lines("h5forge cost per reference-writing stage", per_ref.get("h5forge"),
               per_ref.get("h5flow"), PUBLISHED["per_ref"])


def case_dereference(args, workdir, tools):
    path = os.path.join(workdir, "deref.h5")
    make_deref_file(path)
    results = {}
    order = tools
    for tool in order:
        try:
            if tool == "h5flow":
                results[tool] = in_h5flow_child(args, "dereference", path=path,
                                                calls=args.calls, seed=args.seed)
            else:
                results[tool] = deref_series(tool, path, args.calls, args.seed)
        except Exception as exc:
            traceback.print_exception(exc, file=sys.stderr)
            results[tool] = {"error": reason(exc)}
    keys = [f"{name}|{r}" for name in deref_selections(args.seed) for r in ("region",
                                                                           "no region")]

    def stat(tool, key, fn):
        entry = results.get(tool, {}).get(key)
        if not entry or "times" not in entry:
            return None
        return fn(entry["times"])

    headers = ["tool", "selection", "region", "median", "best", "h5flow / h5forge (median)",
               "check"]
    table = []
    for tool in tools:
        for key in keys:
            name, region = key.split("|")
            error = results.get(tool, {}).get("error") or (results.get(tool, {}).get(key)
                                                            or {}).get("error")
            if error:
                table.append([tool, name, region, "n/a", "n/a", "n/a", f"n/a: {error}"])
                continue
            med = stat(tool, key, statistics.median)
            peer = stat("h5flow", key, statistics.median)
            ours = stat("h5forge", key, statistics.median)
            table.append([tool, name, region, fmt_time(med), fmt_time(stat(tool, key, min)),
                          fmt_ratio(ratio(peer, ours)) if tool == "h5flow" else "",
                          f"ok ({args.calls} calls)"])
    if "h5flow" not in tools:
        for key in keys:
            name, region = key.split("|")
            if region == "region":
                lo, hi = PUBLISHED["deref_region"]
                table.append(["h5flow (published)", "100 rows", region,
                              f"{fmt_time(lo)}-{fmt_time(hi)}", "", "", "the issue's figure"])
                break
    print_table(f"[2] dereference: {N_SELECTED} of {N_PARENTS:,} parent rows, "
                f"{N_PARENTS * PER_PARENT:,} references ({PER_PARENT} per parent), child rows "
                f"(q f4, t i8), h5py datasets of one open file", headers, table)
    print("targets:")
    for name in deref_selections(args.seed):
        key = f"{name}|region"
        ours = stat("h5forge", key, statistics.median)
        peer = stat("h5flow", key, statistics.median)
        goal_lines(f"h5forge dereference ({name}, region), median", ours, peer,
                   PUBLISHED["deref_region"][0])
    for name in deref_selections(args.seed):
        key = f"{name}|no region"
        ours = stat("h5forge", key, statistics.median)
        peer = stat("h5flow", key, statistics.median)
        speedup = ratio(peer, ours)
        report_target(f"h5forge dereference ({name}, no region) <= 1/{GOAL:g} of h5flow's "
                      "measured here",
                      f"{fmt_time(ours)} vs {fmt_time(peer)}: "
                      + (fmt_speedup(speedup) if speedup else "h5flow not measured"),
                      None if speedup is None else speedup >= GOAL)


CASE_FUNCTIONS = {"chunks": case_chunks, "dereference": case_dereference, "mpi": case_mpi}

# ----------------------------------------------------------------------------- main

FULL = {"rows": 3000, "repeat": 3, "calls": 300, "mpi_rows": 10_000_000}
QUICK = {"rows": 600, "repeat": 1, "calls": 50, "mpi_rows": 1_000_000}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 600 rows, 1 repetition, 50 dereference calls "
                             "(options given explicitly still win)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES),
                        help="which cases to run (default: all)")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS),
                        help="which tools to run (default: both)")
    parser.add_argument("--rows", type=int, help="case 1 source rows (default 3,000)")
    parser.add_argument("--small-chunk", type=int, default=10,
                        help="case 1 rows per chunk of the many-chunks runs (default 10)")
    parser.add_argument("--repeat", type=int, help="case 1 runs per flow, best taken (3)")
    parser.add_argument("--calls", type=int, help="case 2 calls per selection (300)")
    parser.add_argument("--mpi-rows", type=int,
                        help="case 3 (mpi) source rows (default 10,000,000)")
    parser.add_argument("--h5flow-path", default=os.environ.get("H5FLOW_PATH"),
                        help="directory (or dirs joined by ':') holding the h5flow package "
                             "and its dependencies; default $H5FLOW_PATH")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--tmpdir", default=None, help="where to write the files")
    parser.add_argument("--child-h5flow", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--child-spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name, default in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.rows < 2 * FEW_CHUNKS or args.small_chunk < 1 or args.repeat < 1 or args.calls < 1:
        parser.error("--rows >= 6, --small-chunk >= 1, --repeat >= 1, --calls >= 1")
    if -(-args.rows // args.small_chunk) <= FEW_CHUNKS:
        parser.error("--rows / --small-chunk must give more than 3 chunks")
    return args


def print_environment(args, h5flow_missing):
    ours = package_version("h5forge")
    print(machine_line())
    peer = (f"n/a ({h5flow_missing})" if h5flow_missing
            else f"{getattr(args, 'h5flow_file', '?')} (serial, H5FLOW_NOMPI=1)")
    print(f"h5forge.flow: {ours}; h5flow: {peer}")


def main(argv=None):
    args = parse_args(argv)
    if args.child_h5flow:
        child_main(args.child_h5flow, json.loads(args.child_spec))
        return 0
    flow, missing = _import_h5forge_flow()
    if flow is None:
        print(f"h5forge.flow: {missing}")
        return 1
    tools = [t for t in TOOLS if t in args.tools]
    h5flow_missing = probe_h5flow(args) if "h5flow" in tools else "not asked for (--tools)"
    if h5flow_missing and "h5flow" in tools:
        tools.remove("h5flow")
    print_environment(args, h5flow_missing)
    if h5flow_missing:
        print(textwrap.fill("h5flow is not run: its published figures are shown instead, and "
                            "ratios use them.", 100))
    with tempfile.TemporaryDirectory(prefix="bench_flow_", dir=args.tmpdir) as workdir:
        for case in args.cases:
            CASE_FUNCTIONS[case](args, workdir, tools)
    return 0


if __name__ == "__main__":
    sys.exit(main())
