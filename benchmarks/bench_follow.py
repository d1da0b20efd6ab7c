#!/usr/bin/env python
"""Benchmark ``h5forge.follow`` (``Follower``, ``FrameReader``, ``frames``, ``LiveWriter``) side
by side with swmr-tools.

The peer is swmr-tools (Diamond Light Source; ``KeyFollower``, ``DataSource`` and its
``FrameReader``).  swmr-tools 0.9.0 imports ``blosc`` unconditionally (``chunksource.py``) without
declaring it, so it needs ``pip install swmr-tools blosc``.  It also cannot read two file forms
h5forge accepts: an empty ``(0,)`` key dataset (``np.argmax`` of an empty array: ValueError) and a
scalar finished flag (``finished[0]`` on a scalar: "Illegal slicing argument for scalar
dataspace").  Every file swmr-tools reads here is therefore written with a key dataset that is
never empty (a growing key starts as ``[0]``) and a 1-element ``(1,)`` finished flag.  Three
cases, each printed as tables:

1. **poll** - a file holding a 1-D int8 key dataset of N ones (N = 1,000, 100,000, 1,000,000;
   ``maxshape (None,)``, chunks ``(4096,)`` as LiveWriter makes them) and ``finished = [0]``.
   Each follower first consumes the N ready frames, then one idle poll (one that finds nothing
   new) is timed, ``--polls`` times back to back (median and mean reported).  An idle poll is
   what one turn of each tool's wait loop does, without its sleep: h5forge ``Follower.poll()``
   (refresh the keys, read past what was yielded) + ``Follower._is_finished()``; swmr-tools
   ``KeyFollower._is_next()`` (refresh and read every key) + ``KeyFollower.is_finished()``
   (timeout check, refresh + read of the finished flag).  Cross-check: each tool's real wait
   loop is run for ``--loop-wait`` seconds with its sleep removed (each tool's module's
   ``time.sleep`` made a no-op for the run: swmr-tools has no poll-interval option, and
   ``time.sleep(0)`` alone costs ~50-100 us of timer slack on Linux) and the polls counted;
   elapsed / polls is the loop's cost per poll.  Target: h5forge <= 1 ms per poll with
   1,000,000 keys done.
2. **latency** - a writer subprocess writes ``--latency-frames`` 64x64 uint16 frames, one every
   ``--period`` seconds (20 ms; on an absolute schedule), and records ``time.time()`` right after
   each frame's key is flushed; the reader (this process) records ``time.time()`` when its
   follower yields each index.  Latency = reader time - writer time (the same system clock; two
   processes).  Writers: h5forge ``LiveWriter`` (``append`` = data + key + flush; timestamp after
   ``append`` returns) and a raw h5py SWMR writer in the form swmr-tools needs (growing data from
   0 frames, growing 1-D int8 key starting as ``[0]``, ``(1,)`` finished; per frame: resize +
   write + flush the data, then resize + set + flush the key, then the timestamp).  Readers:
   h5forge ``Follower`` on the LiveWriter file, swmr-tools ``KeyFollower`` on the h5py file, and
   (same writer as swmr-tools, so only the reader differs) h5forge ``Follower`` on the h5py file.
   Both followers poll every ``p`` s for each ``p`` in ``--poll-intervals``: h5forge
   ``poll_interval=p``; swmr-tools sleeps ``timeout / 20`` between polls, so its ``timeout`` is
   ``20 p`` (and h5forge's timeout is the same).  The reader is ready before the writer's first
   frame.  Reported: median, p95 and max latency.  Target: h5forge (LiveWriter) median <= 2 p.
3. **static** - a complete file of ``--frames`` (100,000; ``--quick`` 10,000) 16x16 uint16
   frames (chunks one frame, ``(1, 16, 16)``), a 1-D int8 key of ones and ``finished = [1]``.
   Every frame is read, the file opened inside the timed region, by: h5forge ``frames(...)``;
   h5forge ``Follower`` + ``FrameReader``; swmr-tools ``DataSource``; swmr-tools ``KeyFollower``
   + its ``FrameReader``; and a plain h5py loop ``ds[i]`` (reference).  Followers get
   ``timeout = --static-timeout`` (0.2 s) and poll every timeout / 20 (swmr-tools' fixed ratio;
   h5forge ``poll_interval`` set to match): swmr-tools stops only after sleeping twice more once
   the last frame is out (it checks the finished flag after a sleep, then stops after the next
   sleep), h5forge right after one more poll; that wait is shown ("end wait") and is inside the
   total.  Best of ``--repeat`` (3; ``--quick`` 1), the readers' order rotated every repetition.
   Reported: total time, frames per second, ratio.

Checks: every follower must yield 0, 1, 2, ... each once, stop by the finished flag (not a
timeout) where one is set, and (static) return frames whose first element is the frame index
mod 65536 (the sum is compared).  A reader that fails shows ``n/a`` with the reason (traceback to
stderr), so a broken tool cannot produce a bogus ratio.  Targets print PASS or MISS; the script
never fails because of them.  Timed calls run with the garbage collector paused
(``_common.timed``).  Files live in a temporary directory (``--tmpdir``) removed at the end; the
page cache is warm (files just written).

    .venv/bin/python benchmarks/bench_follow.py --quick    # smoke run (~30 s)
    .venv/bin/python benchmarks/bench_follow.py            # full run (~2-3 min)
    .venv/bin/python benchmarks/bench_follow.py --cases latency --poll-intervals 0.05 0.01 0.002
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import types
from contextlib import contextmanager

import h5py
import numpy as np
from _common import (  # noqa: E402  (benchmarks/ is on sys.path)
    fmt_ratio,
    fmt_time,
    import_from_checkout,
    machine_line,
    package_version,
    print_table,
    ratio,
    reason,
    report_target,
    timed,
)

CASES = ("poll", "latency", "static", "direct")
POLL_KEYS = (1_000, 100_000, 1_000_000)
LATENCY_FRAME = (64, 64)
STATIC_FRAME = (16, 16)
KEY_CHUNK = 4096  # the key chunks LiveWriter uses for a growing key
SWMR_SLEEP_DIVISOR = 20  # swmr-tools' KeyFollower sleeps timeout / 20 between polls

# ----------------------------------------------------------------------------- tools


def _import_h5forge_follow():
    """``(namespace of the names found, {name: reason missing}, traceback text or None)``."""
    names = ("Follower", "FrameReader", "frames", "LiveWriter")

    try:
        module = import_from_checkout("h5forge.follow")
    except Exception as exc:  # ImportError, or a broken module
        why = f"h5forge.follow not importable ({reason(exc)})"
        return types.SimpleNamespace(), {n: why for n in names}, traceback.format_exc()
    found, missing = types.SimpleNamespace(module=module), {}
    for name in names:
        if hasattr(module, name):
            setattr(found, name, getattr(module, name))
        else:
            missing[name] = f"h5forge.follow has no {name}"
    return found, missing, None


def _import_swmr_tools():
    try:
        import swmr_tools
        from swmr_tools import keyfollower
        from swmr_tools.datasource import FrameReader
    except Exception as exc:
        hint = "pip install swmr-tools blosc"
        return None, f"swmr-tools not importable ({reason(exc)}; {hint})"
    return types.SimpleNamespace(module=swmr_tools, KeyFollower=swmr_tools.KeyFollower,
                                 DataSource=swmr_tools.DataSource, FrameReader=FrameReader,
                                 keyfollower=keyfollower), None


H5F, H5F_MISSING, H5F_TRACEBACK = _import_h5forge_follow()
SWMR, SWMR_MISSING = _import_swmr_tools()


def need_h5forge(*names):
    """The first reason one of ``names`` is missing from h5forge.follow, or None."""
    for name in names:
        if name in H5F_MISSING:
            return H5F_MISSING[name]
    return None


class CheckError(Exception):
    """A follower yielded something other than what was written."""


# ----------------------------------------------------------------------------- formatting


def fmt_rate(r):
    return "n/a" if r is None else f"{r:,.0f}"


def percentile(values, q):
    return float(np.percentile(values, q)) if len(values) else None


def report_failure(what, exc):
    print(f"\n[{what}] failed:", file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)
    return reason(exc)


def open_swmr(path):
    return h5py.File(path, "r", libver="latest", swmr=True)


def check_order(indices, n, who):
    if len(indices) != n or any(i != k for k, i in enumerate(indices)):
        bad = next((k for k, i in enumerate(indices) if i != k), len(indices))
        raise CheckError(f"{who}: yielded {len(indices)} indices, expected 0..{n - 1} in order "
                         f"(first difference at position {bad})")


# ----------------------------------------------------------------------------- case 1: poll


def write_key_file(path, n):
    """``n`` done keys (1-D int8 ones, growable) and ``finished = [0]`` (1 element: swmr-tools
    cannot read a scalar flag)."""
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("keys", data=np.ones(n, "i1"), maxshape=(None,),
                         chunks=(KEY_CHUNK,))
        f.create_dataset("finished", data=np.zeros(1, "i1"), maxshape=(1,))


def per_call(fn, n):
    """Times of ``n`` back-to-back calls of ``fn``, the garbage collector paused (as timeit
    does) after one untimed warm-up call."""
    def run():
        fn()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return times
    return timed(run)[1]


class _NoSleepTime:
    """The ``time`` module with ``sleep`` a no-op."""

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(_seconds):
        return None


@contextmanager
def no_sleep(module):
    """Run ``module``'s wait loop with its ``time.sleep`` a no-op (swmr-tools has no
    poll-interval option; h5forge's ``poll_interval=0`` would still call ``time.sleep(0)``, which
    costs ~50-100 us of timer slack on Linux). Raises if ``module`` has no ``time`` to patch."""
    saved = getattr(module, "time", None)
    if saved is not time:
        raise RuntimeError(f"{module.__name__} does not use the time module as `time`; "
                           f"cannot remove its sleep")
    module.time = _NoSleepTime()
    try:
        yield
    finally:
        module.time = saved


def poll_h5forge(path, n, args):
    out = {}
    with open_swmr(path) as f:
        follower = H5F.Follower(f, "/keys", timeout=3600, finished="/finished",
                                poll_interval=0.05)
        it = iter(follower)
        seen = list(itertools.islice(it, n))
        check_order(seen, n, "h5forge Follower")
        ready = follower.poll()
        if ready != n:
            raise CheckError(f"poll() says {ready} frames are ready, expected {n}")
        if hasattr(follower, "_is_finished"):
            def step():
                follower.poll()
                follower._is_finished()
            out["step"] = per_call(step, args.polls)
        out["poll"] = per_call(follower.poll, args.polls)
        it.close()

        # cross-check: the real wait loop with its sleep removed, polls counted
        follower = H5F.Follower(f, "/keys", timeout=args.loop_wait, finished="/finished",
                                poll_interval=0)
        counter = [0]
        inner = follower.poll

        def counting_poll():
            counter[0] += 1
            return inner()

        follower.poll = counting_poll
        with no_sleep(sys.modules[type(follower).__module__]):
            it = iter(follower)
            seen = list(itertools.islice(it, n))
            check_order(seen, n, "h5forge Follower (loop)")
            counter[0] = 0
            start = time.perf_counter()
            rest = list(it)
            elapsed = time.perf_counter() - start
        if rest or not follower.timed_out:
            raise CheckError(f"loop: yielded {rest[:3]} more / timed_out={follower.timed_out}")
        out["loop"] = (elapsed, counter[0])
    return out


def poll_swmr_tools(path, n, args):
    out = {}
    with open_swmr(path) as f:
        kf = SWMR.KeyFollower([f["keys"]], timeout=3600, finished_dataset=f["finished"])
        kf.check_datasets()
        seen = [next(kf) for _ in range(n)]
        check_order(seen, n, "swmr-tools KeyFollower")
        if kf._is_next() or kf.get_current_max() != n - 1:
            raise CheckError(f"_is_next() found something new; current max "
                             f"{kf.get_current_max()}, expected {n - 1}")

        def step():
            kf._is_next()
            kf.is_finished()

        out["step"] = per_call(step, args.polls)
        out["poll"] = per_call(kf._is_next, args.polls)

        # cross-check: its real wait loop with its sleep removed, polls counted
        kf = SWMR.KeyFollower([f["keys"]], timeout=args.loop_wait,
                              finished_dataset=f["finished"])
        kf.check_datasets()
        counter = [0]
        inner = kf._is_next

        def counting_is_next():
            counter[0] += 1
            return inner()

        kf._is_next = counting_is_next
        with no_sleep(SWMR.keyfollower):
            seen = [next(kf) for _ in range(n)]
            check_order(seen, n, "swmr-tools KeyFollower (loop)")
            counter[0] = 0
            start = time.perf_counter()
            rest = list(kf)
            elapsed = time.perf_counter() - start
        if rest or not kf.timed_out:
            raise CheckError(f"loop: yielded {rest[:3]} more / timed_out={kf.timed_out}")
        out["loop"] = (elapsed, counter[0])
    return out


def case_poll(args, workdir):
    tools = [("h5forge", poll_h5forge, need_h5forge("Follower")),
             ("swmr-tools", poll_swmr_tools, SWMR_MISSING)]
    results = {}
    for n in POLL_KEYS:
        path = os.path.join(workdir, f"poll_{n}.h5")
        write_key_file(path, n)
        for name, fn, missing in tools:
            if missing:
                results[name, n] = {"error": missing}
                continue
            try:
                results[name, n] = fn(path, n, args)
            except Exception as exc:
                results[name, n] = {"error": report_failure(f"poll {name} {n:,} keys", exc)}
        os.remove(path)

    def stat(r, key, how):
        values = r.get(key)
        if not values:
            return None
        return statistics.median(values) if how == "median" else statistics.fmean(values)

    def loop_cost(r):
        if "loop" not in r or not r["loop"][1]:
            return None
        return r["loop"][0] / r["loop"][1]

    headers = ["tool", "keys done", "idle poll step (median)", "(mean)", "vs h5forge",
               "keys only (median)", "loop: polls in wait", "loop: per poll", "vs h5forge",
               "note"]
    rows = []
    for n in POLL_KEYS:
        ref = results.get(("h5forge", n), {})
        for name, _fn, _missing in tools:
            r = results[name, n]
            if "error" in r:
                rows.append([name, f"{n:,}"] + ["n/a"] * (len(headers) - 3) + [r["error"]])
                continue
            step = stat(r, "step", "median")
            rows.append([name, f"{n:,}", fmt_time(step), fmt_time(stat(r, "step", "mean")),
                         fmt_ratio(ratio(step, stat(ref, "step", "median"))),
                         fmt_time(stat(r, "poll", "median")),
                         f"{r['loop'][1]:,} in {r['loop'][0]:.2f} s",
                         fmt_time(loop_cost(r)), fmt_ratio(ratio(loop_cost(r), loop_cost(ref))),
                         "ok"])
    print_table(f"[1] idle poll (nothing new) with N keys done: 1-D int8 keys, finished = [0]; "
                f"{args.polls} timed polls each.\n    Step = h5forge Follower.poll() + "
                f"_is_finished(); swmr-tools KeyFollower._is_next() + is_finished(). Keys only "
                f"= poll() / _is_next().\n    Loop = the tool's own wait loop for "
                f"{args.loop_wait:g} s with its sleep removed, polls counted. 'vs h5forge' = "
                f"time / h5forge's (> 1: h5forge is faster)", headers, rows, left=(0,))
    print("targets:")
    n = POLL_KEYS[-1]
    ours = stat(results.get(("h5forge", n), {}), "step", "median")
    peer = stat(results.get(("swmr-tools", n), {}), "step", "median")
    report_target(f"h5forge idle poll with {n:,} keys done <= 1 ms",
                  f"{fmt_time(ours)} median (swmr-tools: {fmt_time(peer)}; "
                  f"{fmt_ratio(ratio(peer, ours))} h5forge's)" if ours else "not measured",
                  None if ours is None else ours <= 1e-3)
    loop = loop_cost(results.get(("h5forge", n), {}))
    print(f"  info  h5forge per poll measured through its wait loop: {fmt_time(loop)} "
          f"(swmr-tools: {fmt_time(loop_cost(results.get(('swmr-tools', n), {})))})")


# ----------------------------------------------------------------------------- case 2: latency


def child_writer(args):
    """One writer of case 2 (a subprocess): prints READY once readers may open the file, waits
    for a line on stdin, writes the frames, prints the key-flush times as JSON."""
    n, period = args.latency_frames, args.period
    frame = np.arange(np.prod(LATENCY_FRAME), dtype="u2").reshape(LATENCY_FRAME)
    times = []

    def go():
        print("READY", flush=True)
        if sys.stdin.readline().strip() != "GO":
            raise RuntimeError("no GO from the reader")
        return time.perf_counter()

    def wait(start, k):
        delay = start + k * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)

    if args.child_writer == "h5forge":
        with H5F.LiveWriter(args.path) as w:
            w.create_frames("data", frame_shape=LATENCY_FRAME, dtype="u2")
            w.create_key("keys")
            w.create_finished("finished")
            w.start()
            start = go()
            for k in range(n):
                wait(start, k)
                w.append(data=frame)
                times.append(time.time())
            w.finish()
    else:  # raw h5py, in the form swmr-tools can read
        with h5py.File(args.path, "w", libver="latest") as f:
            data = f.create_dataset("data", shape=(0,) + LATENCY_FRAME, dtype="u2",
                                    maxshape=(None,) + LATENCY_FRAME,
                                    chunks=(1,) + LATENCY_FRAME)
            keys = f.create_dataset("keys", shape=(1,), dtype="i1", maxshape=(None,),
                                    chunks=(KEY_CHUNK,))  # starts [0]: swmr-tools fails on (0,)
            finished = f.create_dataset("finished", shape=(1,), dtype="i1", maxshape=(1,))
            f.swmr_mode = True
            start = go()
            for k in range(n):
                wait(start, k)
                data.resize(k + 1, axis=0)
                data[k] = frame
                data.flush()
                if keys.shape[0] < k + 1:
                    keys.resize(k + 1, axis=0)
                keys[k] = 1
                keys.flush()
                times.append(time.time())
            finished[0] = 1
            finished.flush()
    print(json.dumps({"times": times}), flush=True)


def follow_h5forge(path, interval, timeout):
    """``(follower, iterator of indices)``."""
    follower = H5F.Follower(path, "/keys", timeout=timeout, finished="/finished",
                            poll_interval=interval)
    return follower, iter(follower), lambda: (follower.finished, follower.timed_out), \
        follower.close


def follow_swmr_tools(path, interval, timeout):
    f = open_swmr(path)
    try:
        kf = SWMR.KeyFollower([f["keys"]], timeout=timeout, finished_dataset=f["finished"])
        kf.check_datasets()
    except BaseException:
        f.close()
        raise
    return kf, kf, lambda: (kf.finished_set, kf.timed_out), f.close


LATENCY_RUNS = (
    # (label, writer, reader, needs from h5forge, needs swmr-tools)
    ("h5forge Follower <- LiveWriter", "h5forge", follow_h5forge, ("Follower", "LiveWriter"),
     False),
    ("swmr-tools KeyFollower <- h5py writer", "h5py", follow_swmr_tools, (), True),
    ("h5forge Follower <- h5py writer", "h5py", follow_h5forge, ("Follower",), False),
)


def latency_run(args, workdir, writer, reader, interval):
    path = os.path.join(workdir, f"latency_{writer}.h5")
    if os.path.exists(path):
        os.remove(path)
    n = args.latency_frames
    timeout = SWMR_SLEEP_DIVISOR * interval
    command = [sys.executable, os.path.abspath(__file__), "--child-writer", writer,
               "--path", path, "--latency-frames", str(n), "--period", str(args.period)]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    close = None
    try:
        line = proc.stdout.readline()
        if line.strip() != "READY":
            proc.wait(timeout=30)
            raise RuntimeError(f"writer subprocess did not start (exit {proc.returncode}; "
                               f"its traceback is on stderr)")
        _obj, it, state, close = reader(path, interval, timeout)
        proc.stdin.write("GO\n")
        proc.stdin.flush()
        indices, seen_at = [], []
        for index in it:
            seen_at.append(time.time())
            indices.append(index)
        finished, timed_out = state()
        out, _ = proc.communicate(timeout=60)
        if proc.returncode:
            raise RuntimeError(f"writer subprocess exited with {proc.returncode}")
        written = json.loads(out.strip().splitlines()[-1])["times"]
    finally:
        if close is not None:
            close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    check_order(indices, n, "follower")
    if not finished or timed_out:
        raise CheckError(f"follower ended with finished={finished}, timed_out={timed_out}")
    latency = np.asarray(seen_at) - np.asarray(written)
    period = np.diff(written)
    return {"latency": latency, "period": float(np.median(period)) if len(period) else None,
            "timeout": timeout}


def case_latency(args, workdir):
    headers = ["reader <- writer", "poll interval", "frames", "writer period (median)",
               "latency median", "p95", "max", "min", "median / interval", "vs h5forge",
               "note"]
    rows, summary = [], {}
    for interval in args.poll_intervals:
        results = {}
        for label, writer, reader, needs, needs_swmr in LATENCY_RUNS:
            missing = need_h5forge(*needs) or (SWMR_MISSING if needs_swmr else None)
            if missing:
                results[label] = {"error": missing}
                continue
            try:
                results[label] = latency_run(args, workdir, writer, reader, interval)
            except Exception as exc:
                results[label] = {"error": report_failure(f"latency {label} @{interval:g}", exc)}
        ref = results[LATENCY_RUNS[0][0]]
        ref_median = float(np.median(ref["latency"])) if "latency" in ref else None
        for label, *_ in LATENCY_RUNS:
            r = results[label]
            if "error" in r:
                rows.append([label, f"{interval * 1e3:g} ms"] + ["n/a"] * (len(headers) - 3)
                            + [r["error"]])
                continue
            lat = r["latency"]
            med = float(np.median(lat))
            summary[label, interval] = med
            rows.append([label, f"{interval * 1e3:g} ms", f"{len(lat):,}", fmt_time(r["period"]),
                         fmt_time(med), fmt_time(percentile(lat, 95)), fmt_time(float(lat.max())),
                         fmt_time(float(lat.min())) if lat.min() >= 0
                         else f"-{fmt_time(float(-lat.min()))}",
                         fmt_ratio(med / interval), fmt_ratio(ratio(med, ref_median)),
                         f"ok (timeout {r['timeout']:g} s)"])
    print_table(f"[2] latency from the writer's key flush to the reader's yield: "
                f"{args.latency_frames} frames of {LATENCY_FRAME[0]}x{LATENCY_FRAME[1]} uint16, "
                f"one every {args.period * 1e3:g} ms;\n    both followers poll every 'poll "
                f"interval' (swmr-tools: timeout = {SWMR_SLEEP_DIVISOR} x interval). "
                f"'vs h5forge' = median / h5forge's (LiveWriter) median at that interval",
                headers, rows, left=(0,))
    print("targets:")
    label = LATENCY_RUNS[0][0]
    for interval in args.poll_intervals:
        med = summary.get((label, interval))
        peer = summary.get((LATENCY_RUNS[1][0], interval))
        report_target(f"h5forge median latency <= 2 poll intervals = {fmt_time(2 * interval)} "
                      f"(interval {fmt_time(interval)})",
                      f"{fmt_time(med)} (swmr-tools: {fmt_time(peer)})" if med is not None
                      else "not measured", None if med is None else med <= 2 * interval)


# ----------------------------------------------------------------------------- case 3: static


def write_static_file(path, n):
    """``n`` 16x16 uint16 frames (chunks one frame; frame i starts with i % 65536), a 1-D
    int8 key of ones, ``finished = [1]``; returns the expected checksum."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 65536, size=(n,) + STATIC_FRAME, dtype="u2")
    data[:, 0, 0] = np.arange(n) % 65536
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("data", data=data, maxshape=(None,) + STATIC_FRAME,
                         chunks=(1,) + STATIC_FRAME)
        f.create_dataset("keys", data=np.ones(n, "i1"), maxshape=(None,),
                         chunks=(KEY_CHUNK,))
        f.create_dataset("finished", data=np.ones(1, "i1"), maxshape=(1,))
    return int(data[:, 0, 0].astype(np.int64).sum())


class Consumer:
    """What every reader does with a frame: count it, add its first element, and note when the
    last one came (to measure the wait after it)."""

    def __init__(self):
        self.count, self.total, self.last_index, self.order_ok, self.last_at = 0, 0, -1, True, None

    def __call__(self, index, frame):
        if index != self.last_index + 1:
            self.order_ok = False
        self.last_index = index
        self.count += 1
        self.total += int(frame.flat[0])
        self.last_at = time.perf_counter()


def read_h5forge_frames(path, timeout, interval, eat):
    for index, d in H5F.frames(path, data={"img": "/data"}, keys="/keys", finished="/finished",
                               timeout=timeout, poll_interval=interval):
        eat(index, d["img"])
    return "ok"


def read_h5forge_follower(path, timeout, interval, eat):
    with H5F.Follower(path, "/keys", timeout=timeout, finished="/finished",
                      poll_interval=interval) as follower:
        reader = H5F.FrameReader(follower.file["data"], 1)
        for index in follower:  # ready=: one refresh serves every frame the poll found done
            eat(index, reader.read_frame(index, follower.ready)[0])
        if not follower.finished or follower.timed_out:
            raise CheckError(f"ended with finished={follower.finished}, "
                             f"timed_out={follower.timed_out}")
    return "ok"


def read_swmr_datasource(path, timeout, interval, eat, module=None):
    """swmr-tools' DataSource loop (``module``: an implementation of its API; swmr-tools)."""
    with open_swmr(path) as f:
        source = (module or SWMR).DataSource([f["keys"]], {"img": f["data"]}, timeout=timeout,
                                             finished_dataset=f["finished"])
        for out in source:
            eat(out.index, out["img"])
        if not source.is_scan_finished() or source.has_timed_out():
            raise CheckError(f"ended with finished={source.is_scan_finished()}, "
                             f"timed_out={source.has_timed_out()}")
    return "ok"


def read_swmr_keyfollower(path, timeout, interval, eat):
    with open_swmr(path) as f:
        kf = SWMR.KeyFollower([f["keys"]], timeout=timeout, finished_dataset=f["finished"])
        kf.check_datasets()
        reader = SWMR.FrameReader(f["data"], kf.scan_rank)
        for index in kf:
            eat(index, reader.read_frame(index)[0])
        if not kf.finished_set or kf.timed_out:
            raise CheckError(f"ended with finished={kf.finished_set}, timed_out={kf.timed_out}")
    return "ok"


def read_compat_datasource(path, timeout, interval, eat):
    """swmr-tools' DataSource code, run on h5forge.follow.compat."""
    return read_swmr_datasource(path, timeout, interval, eat,
                                import_from_checkout("h5forge.follow.compat"))


def read_plain(path, timeout, interval, eat):
    with open_swmr(path) as f:
        ds = f["data"]
        for index in range(ds.shape[0]):
            eat(index, ds[index])
    return "ok"


def run_reader(fn, path, timeout, interval, eat):
    """Run one reader; returns when it stopped (``perf_counter``)."""
    fn(path, timeout, interval, eat)
    return time.perf_counter()


STATIC_READERS = (
    ("h5forge frames()", read_h5forge_frames, ("frames",), False),
    ("h5forge Follower + FrameReader", read_h5forge_follower, ("Follower", "FrameReader"),
     False),
    ("swmr-tools DataSource", read_swmr_datasource, (), True),
    ("h5forge.follow.compat DataSource", read_compat_datasource, ("Follower",), False),
    ("swmr-tools KeyFollower + FrameReader", read_swmr_keyfollower, (), True),
    ("plain h5py loop ds[i] (reference)", read_plain, (), False),
)


def case_static(args, workdir):
    n = args.frames
    path = os.path.join(workdir, "static.h5")
    seconds, expected = timed(write_static_file, path, n)
    timeout = args.static_timeout
    interval = timeout / SWMR_SLEEP_DIVISOR
    readers = []
    for label, fn, needs, needs_swmr in STATIC_READERS:
        missing = need_h5forge(*needs) or (SWMR_MISSING if needs_swmr else None)
        readers.append({"label": label, "fn": fn, "error": missing, "best": None, "tail": None})
    for rep in range(args.repeat):
        shift = rep % len(readers)
        for r in readers[shift:] + readers[:shift]:
            if r["error"]:
                continue
            eat = Consumer()
            try:
                elapsed, end = timed(run_reader, r["fn"], path, timeout, interval, eat)
                if eat.count != n or not eat.order_ok or eat.total != expected:
                    raise CheckError(f"{eat.count:,} frames (expected {n:,}), in order: "
                                     f"{eat.order_ok}, checksum {eat.total} (expected "
                                     f"{expected})")
            except Exception as exc:
                r["error"] = report_failure(f"static {r['label']}", exc)
                continue
            if r["best"] is None or elapsed < r["best"]:
                r["best"], r["tail"] = elapsed, end - eat.last_at
    ref = readers[0]["best"]
    headers = ["reader", "total (open..stop)", "end wait", "frames/s", "vs h5forge frames()",
               "frames/s without end wait", "note"]
    rows = []
    for r in readers:
        if r["error"]:
            rows.append([r["label"]] + ["n/a"] * (len(headers) - 2) + [r["error"]])
            continue
        best, tail = r["best"], r["tail"]
        rows.append([r["label"], fmt_time(best), fmt_time(tail), fmt_rate(n / best),
                     fmt_ratio(ratio(ref, best)), fmt_rate(n / (best - tail)), "ok"])
    print_table(f"[3] static complete file: {n:,} frames of {STATIC_FRAME[0]}x{STATIC_FRAME[1]} "
                f"uint16 (chunks one frame), 1-D int8 key of ones, finished = [1] "
                f"(written in {seconds:.1f} s);\n    every frame read, file opened inside the "
                f"timed region; followers: timeout {timeout:g} s, poll every {interval * 1e3:g} "
                f"ms; best of {args.repeat}, warm page cache.\n    'vs h5forge frames()' = "
                f"frames/s / h5forge frames()'s (< 1: slower than h5forge)", headers, rows)
    print("targets / ratios:")
    by_label = {r["label"]: r for r in readers}
    for ours, peer in (("h5forge frames()", "swmr-tools DataSource"),
                       ("h5forge.follow.compat DataSource", "swmr-tools DataSource"),
                       ("h5forge Follower + FrameReader", "swmr-tools KeyFollower + FrameReader"),
                       ("h5forge frames()", "plain h5py loop ds[i] (reference)")):
        a, b = by_label[ours], by_label[peer]
        if a["best"] and b["best"]:
            shown = (f"{fmt_ratio(ratio(b['best'], a['best']))} (without the end wait: "
                     f"{fmt_ratio(ratio(b['best'] - b['tail'], a['best'] - a['tail']))})")
        else:
            shown = "n/a"
        print(f"  info  {ours} frames/s / {peer}'s: {shown}")
    os.remove(path)


# ----------------------------------------------------------------------------- case 4: direct


DIRECT_FRAME = (256, 256)


def write_direct_file(path, n):
    """``n`` blosc-compressed (lz4, shuffle) 256x256 uint16 frames of small noise, chunks one
    frame: each chunk really compressed (filter mask 0), so swmr-tools' direct read works."""
    import hdf5plugin

    rng = np.random.default_rng(1)
    with h5py.File(path, "w", libver="latest") as f:
        ds = f.create_dataset("data", shape=(n,) + DIRECT_FRAME, dtype="u2",
                              chunks=(1,) + DIRECT_FRAME,
                              **hdf5plugin.Blosc(cname="lz4", clevel=5,
                                                 shuffle=hdf5plugin.Blosc.SHUFFLE))
        for start in range(0, n, 100):
            block = rng.integers(0, 64, size=(min(100, n - start),) + DIRECT_FRAME, dtype="u2")
            block[:, 0, 0] = np.arange(start, start + len(block)) % 65536
            ds[start:start + len(block)] = block
        assert ds.id.read_direct_chunk((0, 0, 0))[0] == 0, "chunk stored unfiltered"
    return sum(i % 65536 for i in range(n))


def direct_readers():
    compat = import_from_checkout("h5forge.follow.compat")

    n_all = 1 << 40  # "every frame is ready", as a follower's poll would say

    def _per_reader(reader, **ready):
        return lambda i: reader.read_frame(i, **ready)[0]

    return (  # h5forge readers are told every frame is ready (else each new index refreshes)
        ("h5forge FrameReader (direct=None: direct here)", lambda ds: _per_reader(
            H5F.FrameReader(ds, 1), ready=n_all), False),
        ("h5forge FrameReader direct=False (HDF5 filters)", lambda ds: _per_reader(
            H5F.FrameReader(ds, 1, direct=False), ready=n_all), False),
        ("compat FrameReader use_direct_chunk=True", lambda ds: _per_reader(
            compat.FrameReader(ds, 1, use_direct_chunk=True), ready=n_all), False),
        ("swmr-tools FrameReader use_direct_chunk=True", lambda ds: _per_reader(
            SWMR.FrameReader(ds, 1, use_direct_chunk=True)), True),
        ("swmr-tools FrameReader (HDF5 filters)", lambda ds: _per_reader(
            SWMR.FrameReader(ds, 1)), True),
        ("plain h5py ds[i] (reference)", lambda ds: ds.__getitem__, False),
    )


def read_all(read, n):
    """``read(i)`` for every frame; the sum of their first elements."""
    return sum(int(read(i).flat[0]) for i in range(n))


def case_direct(args, workdir):
    n = max(args.frames // 50, 50)
    path = os.path.join(workdir, "direct.h5")
    seconds, expected = timed(write_direct_file, path, n)
    rows, best = [], {}
    for label, make, needs_swmr in direct_readers():
        if needs_swmr and SWMR_MISSING:
            rows.append([label, "n/a", "n/a", "n/a", SWMR_MISSING])
            continue
        times = []
        try:
            for _ in range(args.repeat):
                with open_swmr(path) as f:
                    elapsed, total = timed(read_all, make(f["data"]), n)
                if total != expected:
                    raise CheckError(f"checksum {total} (expected {expected})")
                times.append(elapsed)
        except Exception as exc:
            rows.append([label, "n/a", "n/a", "n/a", report_failure(f"direct {label}", exc)])
            continue
        best[label] = min(times)
        rows.append([label, fmt_time(best[label] / n), fmt_rate(n / best[label]), None, "ok"])
    ref = best.get("swmr-tools FrameReader use_direct_chunk=True")
    for row in rows:
        if row[3] is None:
            row[3] = fmt_ratio(ratio(ref, best[row[0]])) if ref else "n/a"
    print_table(f"[4] direct chunk reads: {n:,} blosc (lz4, shuffle) frames of "
                f"{DIRECT_FRAME[0]}x{DIRECT_FRAME[1]} uint16, chunks one frame (written in "
                f"{seconds:.1f} s); every frame read once per run, best of {args.repeat}.\n"
                f"    'vs swmr-tools direct' = its time per frame / this reader's (> 1: faster "
                f"than swmr-tools' direct reads)",
                ["reader", "per frame", "frames/s", "vs swmr-tools direct", "note"], rows)
    os.remove(path)


# ----------------------------------------------------------------------------- main


FULL = {"polls": 200, "loop_wait": 1.0, "latency_frames": 250, "poll_intervals": [0.05, 0.01],
        "frames": 100_000, "repeat": 3}
QUICK = {"polls": 30, "loop_wait": 0.3, "latency_frames": 50, "poll_intervals": [0.05],
         "frames": 10_000, "repeat": 1}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 30 polls, 0.3 s loops, 50 latency frames at one poll "
                             "interval (50 ms), 10,000 static frames read once (options given "
                             "explicitly still win)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES),
                        help="which cases to run (default: all)")
    parser.add_argument("--polls", type=int, help="case 1: timed idle polls (default 200)")
    parser.add_argument("--loop-wait", type=float,
                        help="case 1: seconds each wait loop runs (default 1)")
    parser.add_argument("--latency-frames", type=int,
                        help="case 2: frames the writer writes (default 250)")
    parser.add_argument("--period", type=float, default=0.02,
                        help="case 2: seconds between frames (default 0.02)")
    parser.add_argument("--poll-intervals", type=float, nargs="+",
                        help="case 2: poll intervals in seconds (default 0.05 0.01)")
    parser.add_argument("--frames", type=int, help="case 3: frames in the file (default 100,000)")
    parser.add_argument("--static-timeout", type=float, default=0.2,
                        help="case 3: follower timeout; both poll every timeout / 20 "
                             "(default 0.2)")
    parser.add_argument("--repeat", type=int, help="case 3: reads per reader, best taken "
                                                   "(default 3)")
    parser.add_argument("--tmpdir", default=None, help="where to write the files")
    # internal: a case-2 writer, run in a subprocess
    parser.add_argument("--child-writer", choices=("h5forge", "h5py"), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name, default in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.polls < 1 or args.latency_frames < 2 or args.frames < 1 or args.repeat < 1:
        parser.error("--polls >= 1, --latency-frames >= 2, --frames >= 1, --repeat >= 1")
    if min(args.poll_intervals) <= 0 or args.period <= 0 or args.loop_wait <= 0:
        parser.error("--poll-intervals, --period and --loop-wait must be positive")
    return args


def print_environment():
    print(machine_line(cpus=True))
    if hasattr(H5F, "module"):
        where = H5F.module.__file__ or list(H5F.module.__path__)[0]
        ours = f"{package_version('h5forge')} ({where})"
        if H5F_MISSING:
            ours += f"; missing: {', '.join(sorted(H5F_MISSING))}"
    else:
        ours = next(iter(H5F_MISSING.values()))
    print(f"h5forge.follow: {ours}")
    print(f"swmr-tools: {package_version('swmr-tools') if SWMR is not None else SWMR_MISSING} "
          f"(blosc {package_version('blosc')})")
    if H5F_TRACEBACK:
        print(H5F_TRACEBACK, file=sys.stderr)


def main(argv=None):
    args = parse_args(argv)
    if args.child_writer:
        child_writer(args)
        return 0
    print_environment()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_follow_", dir=args.tmpdir) as workdir:
        for case in args.cases:
            {"poll": case_poll, "latency": case_latency, "static": case_static,
             "direct": case_direct}[case](args, workdir)
    print(f"\ntotal time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
