"""Run the example flow (``pipeline.yaml``): a simulated detector writes events and their hits,
a stage finds each event's t0, a clusterer groups hits into clusters, and a summary stage
follows ``events -> clusters -> hits`` to write one summary row per event. The intermediate
``event_t0`` table is dropped. Then it prints what the output holds and checks it.

Run with ``python examples/flow/run_example.py [OUT]``: OUT is the HDF5 file to write (replaced
if it exists; a directory: ``OUT/detector.h5``); without it, a temporary directory is used and
removed at the end. The same flow from the command line, on one rank or on two MPI ranks
(the same output), and the checks alone::

    h5forge flow -c examples/flow/pipeline.yaml -o detector.h5
    mpiexec -n 2 python -m h5forge flow -c examples/flow/pipeline.yaml -o detector.h5
    python examples/flow/run_example.py --check detector.h5
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

from h5forge.flow import dereference, run
from h5forge.store.inspect import tree_lines

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "pipeline.yaml"


def _expect(ok: bool, what: str) -> str:
    if not ok:
        raise RuntimeError(f"invariant broken: {what}")
    return f"ok  {what}"


def _refs(f: h5py.File, parent: str, child: str) -> dict:
    """What :func:`dereference` needs to go from ``parent`` rows to ``child`` rows."""
    ref = f[f"{parent}/ref/{child}/ref"]
    direction = (0, 1) if ref.attrs.get("parent", parent) == parent else (1, 0)
    return {"ref": ref, "region": f[f"{parent}/ref/{child}/ref_region"],
            "ref_direction": direction}


def check(path: str | Path) -> list[str]:
    """Check the output's invariants; returns one line per check (raises on the first broken
    one)."""
    lines = []
    with h5py.File(path, "r") as f:
        events, hits = f["events/data"][:], f["hits/data"][:]
        clusters, summary = f["clusters/data"][:], f["event_summary/data"][:]
        everything = slice(0, len(events))
        lines.append(_expect(len(summary) == len(events),
                             f"event_summary has one row per event ({len(events)})"))
        lines.append(_expect("event_t0" not in f, "the intermediate event_t0 was dropped"))

        to_hits = f["clusters/ref/hits/ref"][:]
        lines.append(_expect(np.array_equal(np.sort(to_hits[:, 1]), np.arange(len(hits))),
                             f"each of the {len(hits)} hits is in exactly one cluster"))

        ev_hits = dereference(everything, data=f["hits/data"], **_refs(f, "events", "hits"))
        ev_clusters = dereference(everything, data=f["clusters/data"],
                                  **_refs(f, "events", "clusters"))
        q_hits = ev_hits["q"].astype(np.float64).sum(axis=1).filled(0.0)
        q_clusters = ev_clusters["q_sum"].sum(axis=1).filled(0.0)
        lines.append(_expect(np.allclose(q_hits, q_clusters, rtol=1e-6, atol=1e-6),
                             "per event, the clusters' charge is the hits' charge"))
        lines.append(_expect(np.allclose(summary["q_total"], q_hits, rtol=1e-6, atol=1e-6),
                             "event_summary.q_total agrees (events -> clusters -> hits)"))
        lines.append(_expect(np.array_equal(summary["n_hits"], events["n_hits"])
                             and np.array_equal(ev_hits["q"].count(axis=1), events["n_hits"]),
                             "hit counts agree: events.n_hits, events -> hits, the summary"))
        lines.append(_expect(int(clusters["n_hits"].sum()) == len(hits)
                             and int(summary["n_clusters"].sum()) == len(clusters),
                             "cluster counts agree: clusters.n_hits, event_summary.n_clusters"))
        empty = events["n_hits"] == 0
        lines.append(_expect(bool(np.all(summary["n_clusters"][empty] == 0)
                                  & np.all(np.isnan(summary["t0"][empty]))),
                             f"the {int(empty.sum())} events without hits have no clusters"))
    return lines


def main(out: str | Path | None = None) -> Path | None:
    """Run the flow into ``out`` (see the module docstring) and check it; returns the output
    file, or None when it was written to a temporary directory (gone on return)."""
    if out is None:
        with tempfile.TemporaryDirectory() as tmp:
            _run_and_report(Path(tmp) / "detector.h5", kept=False)
        return None
    out = Path(out)
    if out.is_dir():
        out = out / "detector.h5"
    out.unlink(missing_ok=True)  # the flow appends to an existing file: start afresh
    _run_and_report(out, kept=True)
    return out


def _run_and_report(out: Path, kept: bool) -> None:
    summary = run(CONFIG, out, progress=False)
    print(f"flow {CONFIG.name}: {summary}")
    print(f"\n{out}{'' if kept else ' (temporary; pass a path to keep it)'}:")
    for line in tree_lines(out, "/", depth=2):
        print(f"  {line}")
    with h5py.File(out, "r") as f:
        rows = f["event_summary/data"][:5]
    print("\nfirst events of event_summary:")
    print("  " + "  ".join(f"{name:>13}" for name in rows.dtype.names))
    for row in rows:
        print("  " + "  ".join(f"{value:13.6g}" for value in row.tolist()))
    print()
    for line in check(out):
        print(line)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":  # an output made elsewhere (MPI run)
        for line in check(sys.argv[2]):
            print(line)
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else None)
