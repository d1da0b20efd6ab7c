#!/usr/bin/env python
"""Benchmark ``h5forge.dump`` / ``h5forge.load`` side by side with its peers.

Peers: hickle (``hickle.dump`` / ``hickle.load``), h5io (``h5io.write_hdf5`` /
``h5io.read_hdf5``), pickle (to a file) and, where a hand-written layout is meaningful, raw h5py.

Cases, each printed as one table:

1. **records** - 10,000 small records, a list of dicts
   ``{"id": int, "x": float, "name": short str, "v": 4 float64 ndarray}``.
   Targets: h5forge dump+load at least 20x faster than hickle; h5forge file at most 3x pickle's.
   Raw h5py writes the same records by hand as one compound dataset and rebuilds the dicts.
2. **tree** - a nested config-like tree of ~2,000 heterogeneous nodes (dicts nested 3-4 levels
   deep holding ints, floats, strs, bools, None, short lists of numbers, small arrays, tuples).
   Target: h5forge dump+load at least 5x faster than hickle.  (Raw h5py has no generic layout
   for such a tree, so it is left out.)
3. **array** - one big float64 array (1 GiB by default, ``--big-mb`` to change it).
   Targets: h5forge write and read throughput each at least 0.9x raw h5py's
   (``f.create_dataset("a", data=arr)`` and ``f["a"][()]``).
4. **neo** - a ``neo.Block`` of 50 segments x 4 AnalogSignals of 100,000 float32 samples
   (1 channel, mV, 30 kHz; ``--neo-segments`` to change the count), the signals also gathered
   in a neo Group (shared, not copied).  Peers: neo's own NixIO (``neo.NixIO`` writing and
   reading a ``.nix`` file; needs ``nixio``) and pickle.  No target: the ratios are printed.
   NixIO annotates the block it writes (``nix_name``) in the untimed first pass, so every timed
   pass of every peer stores the same block.

Cases added for issue 17 (many small heterogeneous nodes), each with its goal printed:

5. **scale** - a mixed list and a mixed dict (int, float, short str, None, bool) of 1k, 10k,
   100k and 1M elements (``--scale-sizes``): h5forge and pickle time per element, and the growth
   of h5forge's time per element from one size to the next (~1x linear; ~10x quadratic).
6. **mixed** - the same list and dict at 100,000 elements (``--mixed``). Goal <= 20x pickle.
7. **dictrec** - a dict of 10,000 str keys -> small dicts with the same keys, two of whose values
   mix types (``--dict-records``). Goals <= 20x pickle's time, file <= 3x pickle's.
8. **dataframe** - a pandas DataFrame of 1M rows x 20 columns (``--df-rows``) next to Parquet
   (pyarrow) and pickle; h5forge both as is and with its default plan's compression. Goals
   dump+load <= 2x Parquet's, file (with the plan) <= 1.2x Parquet's.

9. **plan** - ``h5forge.get_default_configuration(obj)`` (the plan of every dataset ``dump``
   would write; no I/O) of a dict of n records each holding a short mixed list, of the dict of
   records of case 7 and of the records of case 1, at 1k, 10k and 100k (``--plan-sizes``): time
   per element and its growth (~1x linear). No peer; the goal is linear growth.

hickle and h5io (one HDF5 object per element) run only up to ``--hickle-max`` elements.
The tree case's goals are >= 20x faster than hickle and <= 10x pickle; the neo case's <= 1.5x
pickle.

What is measured: the wall time of one dump to a new file and one load of that file, the best of
``--repeat`` timed repetitions (dump and load each taken separately), with the garbage collector
paused during the timed call (as :mod:`timeit` does).  An untimed first pass checks every peer's
round trip and warms up imports, caches and the memory allocator.  Every pass runs all peers in
turn, rotating the order so no peer is always first or last; each peer deletes its file after
loading it, and all peers see the page cache the same way (writes end in the page cache, loads
read what was just written).  ``--cold`` makes loads read from disk instead (fsync +
``POSIX_FADV_DONTNEED`` before each load, for every peer).  Written files live in a temporary
directory (``--tmpdir``) that is removed at the end.

Each peer must load back what it dumped: in the first pass the result is compared with the input
(values; arrays by shape, dtype and contents, the big one on a sample), so a broken peer cannot
produce a bogus ratio.  A peer that fails, whose round trip differs, or that is not installed is
shown as ``n/a`` with the reason.  The ``round trip`` column also says whether Python types were
kept (e.g. hickle turns a list of ints into numpy scalars, h5io turns bools into ints).

Ratios: ``vs h5forge`` = peer total / h5forge total (> 1 means h5forge is faster);
``size/pickle`` = file size / pickle's file size.  Targets print PASS or MISS; the script never
fails because of them.

    python benchmarks/bench_store.py --quick     # smoke run: 1,000 records, 64 MiB array, 10 neo
                                                 # segments, 1 repeat
    python benchmarks/bench_store.py             # full run
    python benchmarks/bench_store.py --cases array --big-mb 256 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
from _common import (  # noqa: E402  (benchmarks/ is on sys.path)
    drop_cache,
    fmt_ratio,
    machine_line,
    print_table,
    ratio,
    timed,
)

MIB = 1024**2
CASES = ("records", "tree", "array", "neo", "scale", "mixed", "dictrec", "dataframe", "plan")


# ----------------------------------------------------------------------------- peers


def _import(name: str):
    """Return ``(module, None)`` or ``(None, reason)``."""
    try:
        return __import__(name), None
    except Exception as exc:  # ImportError, or a broken install
        return None, f"not importable ({type(exc).__name__}: {exc})"


def _import_h5forge():
    module, reason = _import("h5forge")
    if module is None:  # running from a checkout without `pip install -e .`
        src = Path(__file__).resolve().parents[1] / "src"
        if (src / "h5forge").is_dir():
            sys.path.insert(0, str(src))
            module, reason = _import("h5forge")
    if module is not None and not all(hasattr(module, f) for f in ("dump", "load")):
        where = getattr(module, "__file__", None) or list(module.__path__)
        return None, f"incomplete: h5forge at {where} has no dump/load"
    return module, reason


h5forge, H5FORGE_MISSING = _import_h5forge()
hickle, HICKLE_MISSING = _import("hickle")
h5io, H5IO_MISSING = _import("h5io")
neo, NEO_MISSING = _import("neo")
nixio, NIXIO_MISSING = _import("nixio")


@dataclass(frozen=True)
class Peer:
    name: str
    dump: Callable[[Any, str], object] | None  # (obj, path) -> anything
    load: Callable[[str], Any] | None  # path -> obj
    missing: str | None = None  # why this peer cannot run


def _pickle_dump(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def _pickle_load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def _peer(name, module, missing, dump, load) -> Peer:
    return Peer(name, dump, load) if module is not None else Peer(name, None, None, missing)


def generic_peers() -> list[Peer]:
    """The peers that take any object tree; h5forge first (the reference of every ratio)."""
    return [
        _peer("h5forge", h5forge, H5FORGE_MISSING,
              lambda obj, p: h5forge.dump(obj, p), lambda p: h5forge.load(p)),
        _peer("hickle", hickle, HICKLE_MISSING,
              lambda obj, p: hickle.dump(obj, p, mode="w"), lambda p: hickle.load(p)),
        _peer("h5io", h5io, H5IO_MISSING,
              lambda obj, p: h5io.write_hdf5(p, obj, title="bench", overwrite=True),
              lambda p: h5io.read_hdf5(p, title="bench")),
        Peer("pickle", _pickle_dump, _pickle_load),
    ]


# Raw h5py, hand-written per case.

RECORD_DTYPE = np.dtype([("id", "<i8"), ("x", "<f8"), ("name", h5py.string_dtype()),
                         ("v", "<f8", (4,))])


def _h5py_records_dump(records, path):
    rows = np.array([(r["id"], r["x"], r["name"], r["v"]) for r in records], dtype=RECORD_DTYPE)
    with h5py.File(path, "w") as f:
        f.create_dataset("records", data=rows)


def _h5py_records_load(path):
    with h5py.File(path, "r") as f:
        rows = f["records"][()]
    names = [n.decode() for n in rows["name"]]
    return [{"id": i, "x": x, "name": n, "v": v}
            for i, x, n, v in zip(rows["id"].tolist(), rows["x"].tolist(), names, rows["v"])]


def _h5py_array_dump(arr, path):
    with h5py.File(path, "w") as f:
        f.create_dataset("a", data=arr)


def _h5py_array_load(path):
    with h5py.File(path, "r") as f:
        return f["a"][()]


H5PY_RECORDS = Peer("h5py", _h5py_records_dump, _h5py_records_load)
H5PY_ARRAY = Peer("h5py", _h5py_array_dump, _h5py_array_load)
H5PY_NONE = Peer("h5py", None, None, "no generic layout for a nested tree in raw h5py")


# ----------------------------------------------------------------------------- timing and checks


class RoundTripError(Exception):
    """A peer loaded back something other than what it dumped."""


def first_difference(a, b, strict, where="obj"):
    """Describe the first place where ``b`` differs from ``a``, or return None.

    Not strict: values must be equal, containers may change type (tuple -> list, bool -> int,
    float -> numpy.float64).  Strict: types must be kept too.
    """
    if strict and type(a) is not type(b):
        return f"{where}: {type(a).__name__} -> {type(b).__name__}"
    if isinstance(a, np.ndarray):
        if not (isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype
                and np.array_equal(a, b)):
            return f"{where}: array differs"
        return None
    if isinstance(a, dict):
        if not isinstance(b, dict) or set(a) != set(b):
            return f"{where}: keys differ"
        items = ((f"{where}[{k!r}]", a[k], b[k]) for k in a)
    elif isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return f"{where}: length or kind differs"
        items = ((f"{where}[{i}]", x, y) for i, (x, y) in enumerate(zip(a, b)))
    elif isinstance(b, (dict, list, tuple)) or (isinstance(b, np.ndarray) and b.ndim) \
            or (a is None) != (b is None) or not a == b:
        return f"{where}: {a!r} != {b!r}"
    else:
        return None
    for sub, x, y in items:
        diff = first_difference(x, y, strict, sub)
        if diff:
            return diff
    return None


def check_tree(expected, got) -> str:
    """Raise RoundTripError if values differ; return a note on whether types were kept."""
    diff = first_difference(expected, got, strict=False)
    if diff:
        raise RoundTripError(diff)
    lost = first_difference(expected, got, strict=True)
    return "ok" if lost is None else f"ok, types lost ({lost})"


def check_array(expected, got) -> str:
    """Shape, dtype and ~1,000 sampled values of a big array."""
    if not isinstance(got, np.ndarray) or (got.shape, got.dtype) != (expected.shape,
                                                                     expected.dtype):
        raise RoundTripError(f"got {type(got).__name__} {getattr(got, 'shape', '')} "
                             f"{getattr(got, 'dtype', '')}")
    index = np.linspace(0, expected.size - 1, 1001).astype(np.intp)
    if not np.array_equal(expected.ravel()[index], got.ravel()[index]):
        raise RoundTripError("sampled values differ")
    return "ok"


@dataclass
class Result:
    dump_s: float = float("inf")
    load_s: float = float("inf")
    size: int = 0
    note: str = ""
    error: str | None = None

    @property
    def total_s(self):
        return self.dump_s + self.load_s


def run_peers(peers, obj, check, workdir, repeat, cold=False) -> dict[str, Result]:
    """Dump and load ``obj`` with every peer: one untimed pass that checks the round trip (and
    warms up imports, caches and the allocator), then ``repeat`` timed passes, rotating the order
    of the peers each pass.  Keeps the best dump and the best load time of each peer."""
    results = {p.name: Result(error=p.missing) for p in peers}
    for rep in range(-1, repeat):  # -1: the checking warm-up pass
        shift = max(rep, 0) % len(peers)
        for peer in peers[shift:] + peers[:shift]:
            result = results[peer.name]
            if result.error:
                continue
            path = os.path.join(workdir, f"{peer.name}.bin")
            try:
                dump_s, _ = timed(peer.dump, obj, path)
                size = os.path.getsize(path)
                if cold:
                    drop_cache(path)
                load_s, out = timed(peer.load, path)
                if rep < 0:
                    result.note = check(obj, out)
                del out
            except Exception as exc:  # a failing peer is reported, never fatal
                message = str(exc).splitlines()[0] if str(exc) else ""
                result.error = f"{type(exc).__name__}: {message}"[:200]
                continue
            finally:
                if os.path.exists(path):
                    os.remove(path)
            if rep >= 0:
                result.dump_s = min(result.dump_s, dump_s)
                result.load_s = min(result.load_s, load_s)
                result.size = size
    return results


# ----------------------------------------------------------------------------- reporting


def fmt_time(s):
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.3f} s"


def fmt_size(n):
    for unit, scale in (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def results_table(title, results, nbytes=None):
    """One row per peer; with ``nbytes`` (the array size) also write/read MiB/s."""
    ref = results.get("h5forge")
    ref_total = ref.total_s if ref and not ref.error else None
    pickle_res = results.get("pickle")
    pickle_size = pickle_res.size if pickle_res and not pickle_res.error else None
    headers = ["peer", "dump", "load", "total", "file size"]
    if nbytes:
        headers += ["write MiB/s", "read MiB/s"]
    headers += ["vs h5forge", "size/pickle", "round trip"]
    rows = []
    for name, r in results.items():
        if r.error:
            rows.append([name] + ["n/a"] * (len(headers) - 2) + [f"n/a: {r.error}"])
            continue
        row = [name, fmt_time(r.dump_s), fmt_time(r.load_s), fmt_time(r.total_s), fmt_size(r.size)]
        if nbytes:
            row += [f"{nbytes / MIB / r.dump_s:.0f}", f"{nbytes / MIB / r.load_s:.0f}"]
        row += [fmt_ratio(ratio(r.total_s, ref_total)), fmt_ratio(ratio(r.size, pickle_size)),
                r.note]
        rows.append(row)
    print_table(title, headers, rows)


def report_target(description, value, passes):
    """``value`` is a ratio or None (could not be measured); ``passes(value)`` -> bool."""
    status = "n/a " if value is None else ("PASS" if passes(value) else "MISS")
    shown = "not measured (see the table)" if value is None else fmt_ratio(value)
    print(f"  {status}  {description}: {shown}")


def _ok(results, name):
    r = results.get(name)
    return r if r is not None and not r.error else None


def speedup_over(results, peer):
    """peer total / h5forge total, or None when either is missing."""
    ref, other = _ok(results, "h5forge"), _ok(results, peer)
    return ratio(other.total_s, ref.total_s) if ref and other else None


# ----------------------------------------------------------------------------- cases

WORDS = ("alpha", "beta", "gain", "offset", "rate", "mode", "label", "unit", "scale", "limit",
         "seed", "path", "level", "window", "detector", "channel", "filter", "model", "run")


def make_records(n, seed=0):
    rng = np.random.default_rng(seed)
    xs, vs = rng.random(n), rng.random((n, 4))
    return [{"id": i, "x": float(xs[i]), "name": f"rec{i:05d}", "v": vs[i].copy()}
            for i in range(n)]


def count_nodes(obj, counter=None) -> Counter:
    """Count every object in the tree (containers and their members) by type name."""
    counter = Counter() if counter is None else counter
    counter[type(obj).__name__] += 1
    children = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) \
        else ()
    for child in children:
        count_nodes(child, counter)
    return counter


def make_tree(n_nodes, seed=0):
    """A config-like dict tree, 3-4 levels of dicts, with at least ``n_nodes`` nodes."""
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    leaves = (
        lambda: rng.randint(-1000, 10**6),
        lambda: rng.uniform(-1e3, 1e3),
        lambda: rng.choice(WORDS) + "-" + str(rng.randint(0, 99)),
        lambda: rng.random() < 0.5,
        lambda: None,
        lambda: [rng.randint(0, 100) for _ in range(rng.randint(2, 6))],
        lambda: [round(rng.uniform(0, 1), 3) for _ in range(rng.randint(2, 6))],
        lambda: nprng.random(rng.randint(3, 16)),
        lambda: nprng.integers(0, 255, size=(2, rng.randint(2, 5)), dtype=np.int32),
    )
    weights = (5, 5, 5, 3, 1, 2, 2, 2, 1)

    def leaf():
        if rng.random() < 0.03:  # a few tuples
            return (rng.choice(WORDS), rng.randint(0, 9), rng.uniform(0, 1))
        return rng.choices(leaves, weights)[0]()

    def branch(depth):
        node = {}
        for i in range(rng.randint(3, 8)):
            key = f"{rng.choice(WORDS)}_{i}"
            node[key] = branch(depth + 1) if depth < 4 and rng.random() < 0.35 else leaf()
        return node

    tree, count = {}, 1  # the nodes of tree so far (counted section by section: linear)
    while count < n_nodes:
        section = tree[f"section_{len(tree)}"] = branch(2)
        count += sum(count_nodes(section).values())
    return tree


def case_records(args, workdir):
    records = make_records(args.records)
    results = run_peers(generic_peers() + [H5PY_RECORDS], records, check_tree, workdir,
                        args.repeat or 3, args.cold)
    results_table(f"[1] records: {len(records):,} dicts {{id, x, name, v[4]}}", results)
    ref, pkl = _ok(results, "h5forge"), _ok(results, "pickle")
    print("targets:")
    report_target("h5forge dump+load >= 20x faster than hickle", speedup_over(results, "hickle"),
                  lambda r: r >= 20)
    report_target("h5forge file size <= 3x pickle's",
                  ratio(ref.size, pkl.size) if ref and pkl else None, lambda r: r <= 3)


def case_tree(args, workdir):
    tree = make_tree(args.tree_nodes)
    counts = count_nodes(tree)
    results = run_peers(generic_peers() + [H5PY_NONE], tree, check_tree, workdir,
                        args.repeat or 3, args.cold)
    results_table(f"[2] tree: nested config-like dict, {sum(counts.values()):,} nodes", results)
    print("nodes: " + ", ".join(f"{n} {t}" for t, n in counts.most_common()))
    print("targets:")
    report_target("h5forge dump+load >= 20x faster than hickle", speedup_over(results, "hickle"),
                  lambda r: r >= 20)
    report_pickle_target(results, 10)


def case_array(args, workdir):
    n = args.big_mb * MIB // 8
    arr = np.random.default_rng(0).random(n)
    results = run_peers(generic_peers() + [H5PY_ARRAY], arr, check_array, workdir,
                        args.repeat or 2, args.cold)
    results_table(f"[3] array: float64 {n:,} elements ({fmt_size(arr.nbytes)})", results,
                  nbytes=arr.nbytes)
    ref, raw = _ok(results, "h5forge"), _ok(results, "h5py")
    print("targets:")
    report_target("h5forge write throughput >= 0.9x raw h5py",
                  ratio(raw.dump_s, ref.dump_s) if ref and raw else None, lambda r: r >= 0.9)
    report_target("h5forge read throughput >= 0.9x raw h5py",
                  ratio(raw.load_s, ref.load_s) if ref and raw else None, lambda r: r >= 0.9)


def make_neo_block(n_segments, n_signals=4, n_samples=100_000, seed=0):
    """A Block of ``n_segments`` segments x ``n_signals`` 1-channel float32 AnalogSignals, the
    signals of each channel also gathered in one neo Group (the same objects)."""
    import quantities as pq

    rng = np.random.default_rng(seed)
    block = neo.Block(name="bench")
    groups = [neo.Group(name=f"channel {c}") for c in range(n_signals)]
    block.groups.extend(groups)
    for s in range(n_segments):
        segment = neo.Segment(name=f"trial {s}", index=s)
        block.segments.append(segment)
        for c in range(n_signals):
            data = rng.standard_normal((n_samples, 1), dtype=np.float32)
            signal = neo.AnalogSignal(data, units="mV", sampling_rate=30 * pq.kHz,
                                      t_start=s * 10 * pq.s, name=f"ch{c}")
            segment.analogsignals.append(signal)
            groups[c].analogsignals.append(signal)
    return block


def _nix_dump(block, path):
    with neo.NixIO(path, mode="ow") as io:
        io.write_block(block)


def _nix_load(path):
    with neo.NixIO(path, mode="ro") as io:
        return io.read_block()


def check_neo(expected, got) -> str:
    """Same segments and signals: samples, units, sampling rate and t_start."""
    if type(got) is not type(expected) or len(got.segments) != len(expected.segments):
        raise RoundTripError(f"got {type(got).__name__} with "
                             f"{len(getattr(got, 'segments', []))} segments")
    for i, (a, b) in enumerate(zip(expected.segments, got.segments)):
        if len(a.analogsignals) != len(b.analogsignals):
            raise RoundTripError(f"segments[{i}]: {len(b.analogsignals)} signals")
        for j, (x, y) in enumerate(zip(a.analogsignals, b.analogsignals)):
            if not (x.shape == y.shape and np.array_equal(x.magnitude, y.magnitude)
                    and x.units == y.units and x.sampling_rate == y.sampling_rate
                    and x.t_start == y.t_start):
                raise RoundTripError(f"segments[{i}].analogsignals[{j}] differs")
    note = "ok"
    if got.groups and got.groups[0].analogsignals[0] is not got.segments[0].analogsignals[0]:
        note = "ok, group signals are copies"
    if got.segments[0].analogsignals[0].dtype != np.float32:
        note += f", dtype {got.segments[0].analogsignals[0].dtype}"
    return note


def case_neo(args, workdir):
    if neo is None:
        print(f"\n[4] neo: skipped, neo is {NEO_MISSING}")
        return
    block = make_neo_block(args.neo_segments)
    n_signals = sum(len(s.analogsignals) for s in block.segments)
    nbytes = sum(sig.nbytes for s in block.segments for sig in s.analogsignals)
    # NixIO's write_block annotates every object it writes (nix_name): it gets its own equal
    # block, so the others store the Block as built (no annotations) in every pass.
    nix_block = make_neo_block(args.neo_segments) if nixio is not None else None
    peers = [
        _peer("h5forge", h5forge, H5FORGE_MISSING,
              lambda obj, p: h5forge.dump(obj, p), lambda p: h5forge.load(p)),
        _peer("neo NixIO", nixio, NIXIO_MISSING,
              lambda obj, p: _nix_dump(nix_block, p), _nix_load),
        Peer("pickle", _pickle_dump, _pickle_load),
    ]
    results = run_peers(peers, block, check_neo, workdir, args.repeat or 3, args.cold)
    results_table(f"[4] neo: Block of {len(block.segments)} segments, {n_signals} "
                  f"AnalogSignals x {block.segments[0].analogsignals[0].shape[0]:,} float32 "
                  f"samples ({fmt_size(nbytes)})", results, nbytes=nbytes)
    print("targets:")
    report_pickle_target(results, 1.5)
    print("ratios (peer total / h5forge total):")
    for name in ("neo NixIO", "pickle"):
        value = speedup_over(results, name)
        verdict = "h5forge faster" if value is not None and value > 1 else "h5forge slower"
        shown = "n/a" if value is None else f"{value:.2f}x ({verdict})"
        print(f"  {name} / h5forge, dump+load: {shown}")


def report_pickle_target(results, at_most):
    """The target "h5forge dump+load <= ``at_most`` x pickle's"."""
    ref, pkl = _ok(results, "h5forge"), _ok(results, "pickle")
    report_target(f"h5forge dump+load <= {at_most:g}x pickle's (h5forge / pickle)",
                  ratio(ref.total_s, pkl.total_s) if ref and pkl else None,
                  lambda r: r <= at_most)


def make_mixed_list(n, seed=0):
    """``n`` scalars cycling through int, float, short str and None (and a bool every 7th)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = i % 4
        value = i if k == 0 else rng.uniform(-1, 1) if k == 1 else f"w{i}" if k == 2 else None
        out.append(value if i % 7 else bool(i % 2))
    return out


def make_mixed_dict(n, seed=0):
    """``n`` string keys -> the values of :func:`make_mixed_list`."""
    return {f"key{i}": v for i, v in enumerate(make_mixed_list(n, seed))}


def _generic_peers_up_to(n, hickle_max):
    """The generic peers; hickle and h5io (one HDF5 object per element) only up to
    ``hickle_max`` elements: beyond, one run takes minutes."""
    peers = generic_peers()
    if n <= hickle_max:
        return peers
    why = f"skipped above {hickle_max:,} elements (--hickle-max): one HDF5 object per element"
    return [p if p.name in ("h5forge", "pickle") else Peer(p.name, None, None, why)
            for p in peers]


def case_scale(args, workdir):
    """Dump+load time per element of a mixed list, a mixed dict and a config-like tree (n
    nodes), 1k to 1M elements: the growth from one size to the next should be ~1x (linear),
    never ~10x (quadratic)."""
    print(f"\n[5] scale: mixed list / dict of n scalars (int, float, str, None, bool) and a "
          f"config-like tree of n nodes, dump+load time per element, best of "
          f"{args.repeat or 3}")
    headers = ["case", "n", "h5forge", "per element", "growth", "pickle", "per element",
               "h5forge/pickle"]
    rows, growths = [], []
    for kind, make in (("list", make_mixed_list), ("dict", make_mixed_dict),
                       ("tree", make_tree)):
        previous = None
        for n in args.scale_sizes:
            peers = [p for p in generic_peers() if p.name in ("h5forge", "pickle")]
            results = run_peers(peers, make(n), check_tree, workdir, args.repeat or 3)
            ref, pkl = _ok(results, "h5forge"), _ok(results, "pickle")
            if ref is None or pkl is None:
                rows.append([kind, f"{n:,}"] + ["n/a"] * 6)
                continue
            per = ref.total_s / n
            growth = per / previous if previous else None
            if growth is not None:
                growths.append(growth)
            previous = per
            rows.append([kind, f"{n:,}", fmt_time(ref.total_s), f"{per * 1e6:.2f} us",
                         "" if growth is None else f"{growth:.2f}x", fmt_time(pkl.total_s),
                         f"{pkl.total_s / n * 1e6:.3f} us", fmt_ratio(ref.total_s / pkl.total_s)])
    print_table("", headers, rows, left=(0,))
    print("targets:")
    report_target("no super-linear growth: time per element at 10x the size <= 2x (worst step)",
                  max(growths) if growths else None, lambda r: r <= 2)


def case_mixed(args, workdir):
    n = args.mixed
    for title, obj in ((f"[6a] mixed list: {n:,} scalars (int, float, str, None, bool)",
                        make_mixed_list(n)),
                       (f"[6b] mixed dict: {n:,} str keys -> scalars (int, float, str, None, "
                        f"bool)", make_mixed_dict(n))):
        results = run_peers(_generic_peers_up_to(n, args.hickle_max), obj, check_tree, workdir,
                            args.repeat or 3, args.cold)
        results_table(title, results)
        print("targets:")
        report_pickle_target(results, 20)


def make_dict_of_records(n, seed=0):
    """``n`` str keys -> small dicts with the same keys: an int, a float, a short str, and a
    note that is a str or None and a score that is an int or a float (columns of mixed type)."""
    rng = random.Random(seed)
    return {f"subject-{i:05d}": {"id": i, "weight": rng.uniform(10, 40), "site": rng.choice(WORDS),
                                 "note": None if i % 3 else f"n{i}",
                                 "score": i % 10 if i % 2 else rng.uniform(0, 10)}
            for i in range(n)}


def case_dictrec(args, workdir):
    obj = make_dict_of_records(args.dict_records)
    results = run_peers(_generic_peers_up_to(len(obj), args.hickle_max), obj, check_tree,
                        workdir, args.repeat or 3, args.cold)
    results_table(f"[7] dict of records: {len(obj):,} str -> {{id, weight, site, note: str|None, "
                  f"score: int|float}}", results)
    ref, pkl = _ok(results, "h5forge"), _ok(results, "pickle")
    print("targets:")
    report_pickle_target(results, 20)
    report_target("h5forge file size <= 3x pickle's",
                  ratio(ref.size, pkl.size) if ref and pkl else None, lambda r: r <= 3)


def make_dataframe(n_rows, seed=0):
    """``n_rows`` x 20 columns: 8 float64, 4 int64, 2 float32, 2 bool, 2 str (a few hundred
    distinct words), 1 datetime64[ns], 1 category."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols = {}
    for i in range(8):
        cols[f"f{i}"] = rng.standard_normal(n_rows)
    for i in range(4):
        cols[f"i{i}"] = rng.integers(0, 10**6, n_rows)
    for i in range(2):
        cols[f"g{i}"] = rng.random(n_rows, dtype=np.float32)
        cols[f"b{i}"] = rng.random(n_rows) < 0.5
    words = np.array([f"{w}-{k}" for w in WORDS for k in range(20)], dtype=object)
    for i in range(2):
        cols[f"s{i}"] = words[rng.integers(0, len(words), n_rows)]
    cols["t"] = pd.date_range("2024-01-01", periods=n_rows, freq="s")
    cols["c"] = pd.Categorical.from_codes(rng.integers(0, 5, n_rows), list("abcde"))
    return pd.DataFrame(cols)


def _parquet_dump(df, path):
    df.to_parquet(path, engine="pyarrow")


def _parquet_load(path):
    import pandas as pd

    return pd.read_parquet(path, engine="pyarrow")


def check_frame(expected, got) -> str:
    import pandas as pd

    try:
        pd.testing.assert_frame_equal(expected, got, check_exact=True)
    except AssertionError as exc:
        raise RoundTripError(str(exc).splitlines()[0]) from None
    return "ok"


def case_dataframe(args, workdir):
    try:
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as exc:
        print(f"\n[8] dataframe: skipped ({exc}; pip install 'h5forge[bench]')")
        return
    df = make_dataframe(args.df_rows)

    def dump_planned(obj, path):
        h5forge.dump(obj, path, configuration=h5forge.get_default_configuration(obj))

    peers = [
        _peer("h5forge", h5forge, H5FORGE_MISSING,
              lambda obj, p: h5forge.dump(obj, p), lambda p: h5forge.load(p)),
        _peer("h5forge (plan)", h5forge, H5FORGE_MISSING, dump_planned, lambda p: h5forge.load(p)),
        Peer("parquet", _parquet_dump, _parquet_load),
        Peer("pickle", _pickle_dump, _pickle_load),
    ]
    results = run_peers(peers, df, check_frame, workdir, args.repeat or 3, args.cold)
    results_table(f"[8] dataframe: {len(df):,} rows x {df.shape[1]} columns "
                  f"({fmt_size(int(df.memory_usage(deep=True).sum()))} in memory)", results)
    ref, plan, pq_ = (_ok(results, n) for n in ("h5forge", "h5forge (plan)", "parquet"))
    print("targets:")
    report_target("h5forge dump+load <= 2x Parquet's (h5forge / parquet)",
                  ratio(ref.total_s, pq_.total_s) if ref and pq_ else None, lambda r: r <= 2)
    report_target("h5forge file with the default plan's compression <= 1.2x Parquet's",
                  ratio(plan.size, pq_.size) if plan and pq_ else None, lambda r: r <= 1.2)


def make_records_with_lists(n):
    """``n`` str keys -> small dicts holding a short mixed list (one small dataset each)."""
    return {f"r{i:06d}": {"id": i, "x": i / 7, "tags": [i, "a", None, 2.5]} for i in range(n)}


def case_plan(args, workdir):
    """Planning time per element (get_default_configuration of an object tree: encoding and
    the io plan of every dataset, no I/O) at growing sizes: ~1x growth is linear."""
    print(f"\n[9] plan: h5forge.get_default_configuration(obj), time per element, best of "
          f"{args.repeat or 3}")
    shapes = (("dict of records holding a short mixed list", make_records_with_lists),
              ("dict of records (case 7)", make_dict_of_records),
              ("list of records (case 1)", make_records))
    headers = ["case", "n", "datasets", "plan", "per element", "growth"]
    rows, growths = [], []
    for title, make in shapes:
        previous = None
        for n in args.plan_sizes:
            obj = make(n)
            best, plan = min((timed(h5forge.get_default_configuration, obj)
                              for _ in range(args.repeat or 3)), key=lambda r: r[0])
            per = best / n
            growth = per / previous if previous else None
            if growth is not None:
                growths.append(growth)
            previous = per
            rows.append([title, f"{n:,}", f"{len(plan.dataset_configurations):,}",
                         fmt_time(best), f"{per * 1e6:.2f} us",
                         "" if growth is None else f"{growth:.2f}x"])
    print_table("", headers, rows, left=(0,))
    print("targets:")
    report_target("planning is linear: time per element at 10x the size <= 2x (worst step)",
                  max(growths) if growths else None, lambda r: r <= 2)


CASE_FUNCTIONS = {"records": case_records, "tree": case_tree, "array": case_array,
                  "neo": case_neo, "scale": case_scale, "mixed": case_mixed,
                  "dictrec": case_dictrec, "dataframe": case_dataframe, "plan": case_plan}


# ----------------------------------------------------------------------------- main


FULL = {"records": 10_000, "tree_nodes": 2_000, "big_mb": 1024, "neo_segments": 50,
        "repeat": None, "mixed": 100_000, "dict_records": 10_000, "df_rows": 1_000_000,
        "scale_sizes": [1_000, 10_000, 100_000, 1_000_000],
        "plan_sizes": [1_000, 10_000, 100_000]}
QUICK = {"records": 1_000, "tree_nodes": 2_000, "big_mb": 64, "neo_segments": 10, "repeat": 1,
         "mixed": 10_000, "dict_records": 1_000, "df_rows": 100_000,
         "scale_sizes": [1_000, 10_000, 100_000], "plan_sizes": [1_000, 10_000]}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1,000 records, 64 MiB array, 10 neo segments, "
                             "1 repetition (options given explicitly still win)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES),
                        help="which cases to run (default: all)")
    parser.add_argument("--records", type=int, help="records in case 1 (default 10,000)")
    parser.add_argument("--tree-nodes", type=int, help="nodes in case 2, about (default 2,000)")
    parser.add_argument("--big-mb", type=int, help="array size in MiB in case 3 (default 1024)")
    parser.add_argument("--neo-segments", type=int,
                        help="segments of the neo Block in case 4 (default 50)")
    parser.add_argument("--mixed", type=int, help="elements in case 6 (default 100,000)")
    parser.add_argument("--dict-records", type=int, help="keys in case 7 (default 10,000)")
    parser.add_argument("--df-rows", type=int, help="DataFrame rows in case 8 (default 1M)")
    parser.add_argument("--scale-sizes", type=int, nargs="+",
                        help="sizes of case 5 (default 1,000 10,000 100,000 1,000,000)")
    parser.add_argument("--plan-sizes", type=int, nargs="+",
                        help="sizes of case 9 (default 1,000 10,000 100,000)")
    parser.add_argument("--hickle-max", type=int, default=20_000,
                        help="largest element count hickle and h5io run (default 20,000)")
    parser.add_argument("--repeat", type=int,
                        help="timed repetitions, best taken (default 3, and 2 for the big array)")
    parser.add_argument("--cold", action="store_true",
                        help="evict each file from the page cache before loading it")
    parser.add_argument("--tmpdir", default=None, help="where to write the files")
    args = parser.parse_args(argv)
    for name, default in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def print_environment():
    def version(module, missing):
        return getattr(module, "__version__", "?") if module is not None else missing
    print(machine_line())
    where = f" ({Path(h5forge.__file__).parent})" if h5forge is not None else ""
    print(f"h5forge {version(h5forge, H5FORGE_MISSING)}{where}, "
          f"hickle {version(hickle, HICKLE_MISSING)}, h5io {version(h5io, H5IO_MISSING)}, "
          f"neo {version(neo, NEO_MISSING)}, nixio {version(nixio, NIXIO_MISSING)}")


def main(argv=None):
    args = parse_args(argv)
    print_environment()
    with tempfile.TemporaryDirectory(prefix="bench_store_", dir=args.tmpdir) as workdir:
        for case in args.cases:
            CASE_FUNCTIONS[case](args, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
