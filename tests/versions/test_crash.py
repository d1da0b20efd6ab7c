"""``kill -9`` in the middle of a commit leaves every earlier version intact and the file
openable.

A child process opens a VersionedFile holding a few versions (made here) and commits more in a
loop: chunk changes, new datasets, resizes, deletions, attributes, a commit that is not made
current and one on an older version (which rebuilds the plain mirror at the root).

* ``test_self_kill_sweep``: the child counts every write and truncate h5py makes through the
  journal (and every journal commit) and SIGKILLs itself at event ``k``: before each event of
  the whole run (open, all commits, close), and for a share of the events also after the
  original bytes were journaled, half-way through the file write, or half-way through the
  journal entry. One driver process imports h5forge once and forks a child per kill point;
  this process checks each file while the driver goes on.
* ``test_external_kill``: fresh child processes with bigger data, killed from outside after
  delays spread over the whole run (and a few seeded random ones).

After each kill the file must open (read-only and ``r+``), hold every version the child
reported committed (and at most the one in progress) with exactly the expected data, have a
consistent current version and root mirror, leave no journal, and take another commit. In the
sweep, the recovered file must also equal, byte for byte, the file the last complete
transaction left (commit times are fixed, so every run writes the same bytes).
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.versions import VersionedFile
from h5forge.versions.journal import journal_path
from h5forge.versions.views import VERSION_ATTRS, VersionGroup

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL") or not hasattr(os, "fork"),
                                reason="needs SIGKILL and fork")

SRC = str(Path(h5forge.__file__).resolve().parent.parent)

# The changes of version i, run in the child on a staged group and here on a plain h5py file
# (the model the versions are checked against). Deterministic in i and the state it is given.
WORKLOAD = r'''
import datetime

import numpy as np


def stamp(i):
    """A fixed commit time per step, so that every run writes the same bytes."""
    return datetime.datetime(2024, 6, 1, tzinfo=datetime.timezone.utc) + \
        datetime.timedelta(minutes=i)


def step(g, i, n0):
    rng = np.random.default_rng(1000 + i)
    if i == 0:
        g.create_dataset("big", data=np.arange(n0, dtype="f8"), chunks=(n0 // 12,),
                         maxshape=(None,))
        g.create_dataset("grid", data=rng.integers(0, 1000, (300, 200)).astype("i4"),
                         chunks=(100, 100), maxshape=(None, None))
        g.create_group("meta")
        g["meta/labels"] = np.array([b"a", b"bc", b"def"])
        g.attrs["title"] = "crash test"
        return
    kind = i % 6
    big = g["big"]
    n = big.shape[0]
    if kind == 0:  # a few chunks change
        for _ in range(3):
            a = int(rng.integers(0, n - 500))
            big[a:a + 500] = rng.random(500)
    elif kind == 1:  # a new dataset in a new or existing group
        d = g.create_dataset(f"extra/d{i}", data=rng.random(int(rng.integers(2000, 20000))),
                             chunks=(2000,))
        d.attrs["made_by"] = i
    elif kind == 2:  # resizes
        new = n + int(rng.integers(-n // 10, n // 8))
        big.resize((new,))
        big[new - 100:new] = i
        grid = g["grid"]
        grid.resize((grid.shape[0] + 25, grid.shape[1]))
        grid[-25:, :] = i
    elif kind == 3:  # a deletion and a group attribute
        extras = sorted(g["extra"].keys()) if "extra" in g else []
        if extras:
            del g["extra"][extras[0]]
        g.attrs["deleted"] = extras[0] if extras else ""
    elif kind == 4:  # attributes and a block of a 2-d dataset
        g.attrs["step"] = i
        g["grid"].attrs["note"] = f"step {i}"
        g["grid"][10:60, 40:140] = rng.integers(0, 9, (50, 100))
    else:  # a big commit: half of every chunk of "big" rewritten
        half = n // 2
        big[:half] = big[:half] + 1.0
'''

CHILD = r'''
import json
import os
import shutil
import signal
import sys
import traceback

sys.path.insert(0, SRC)
from h5forge.versions import VersionedFile  # noqa: E402
from h5forge.versions import journal as J  # noqa: E402

WORKLOAD


def commit_all(path, plan, n0, report, wait=False):
    report("ready")
    if wait:  # for the word to go (so the test can start the next child meanwhile)
        sys.stdin.readline()
    with VersionedFile(path, "r+") as vf:
        for item in plan:
            with vf.stage_version(item["name"], prev_version=item["prev"],
                                  make_current=item["current"], timestamp=stamp(item["i"])) as g:
                step(g, item["i"], n0)
            report("committed " + item["name"])
    report("closed")


def reporter(fd):
    return lambda line: os.write(fd, (line + "\n").encode())


STATE = {"n": 0, "k": -1, "where": None, "tear": False, "kinds": []}


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def hit():
    STATE["n"] += 1
    return STATE["n"] == STATE["k"]


class TearingOs:
    """journal.os: os, except that an armed write writes half its bytes and dies."""

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        if STATE["tear"]:
            os.write(fd, bytes(data)[:max(len(data) // 2, 1)])
            die()
        return os.write(fd, data)


def install(k, where):
    """Count events (JournalFile.write/.truncate/.commit); SIGKILL at event k."""
    STATE.update(n=0, k=k, where=where)
    write, truncate, commit = J.JournalFile.write, J.JournalFile.truncate, J.JournalFile.commit
    J.os = TearingOs()

    def counted_write(self, data):
        if not hit():
            STATE["kinds"].append("overwrite" if self._pos < self._base_size else "append")
            return write(self, data)
        view = memoryview(data).cast("B")
        if where == "before":
            die()
        if where in ("journaled", "torn_file"):
            self._save(self._pos, self._pos + len(view))
            if where == "torn_file":
                os.pwrite(self._fd, view[:max(len(view) // 2, 1)], self._pos)
            die()
        if where == "torn_journal":
            STATE["tear"] = True  # no journal entry needed: dies after the write
        result = write(self, data)
        die()
        return result

    def counted_truncate(self, size=None):
        if not hit():
            STATE["kinds"].append("truncate")
            return truncate(self, size)
        if where == "before":
            die()
        if where != "after":
            STATE["tear"] = where == "torn_journal"
            self._save(self.tell() if size is None else size, self._base_size)
            die()
        truncate(self, size)
        die()

    def counted_commit(self):
        if not hit():
            STATE["kinds"].append("commit")
            return commit(self)
        if where == "before":
            die()
        commit(self)
        die()

    J.JournalFile.write = counted_write
    J.JournalFile.truncate = counted_truncate
    J.JournalFile.commit = counted_commit


def main():
    mode, path, plan, n0 = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
    if mode == "run":  # commit the plan, report progress on stdout (killed from outside)
        commit_all(path, plan, n0, reporter(sys.stdout.fileno()), wait=True)
    elif mode == "count":  # commit the plan, report the events done when each step ended
        install(-1, None)
        marks = []
        commit_all(path, plan, n0, lambda line: marks.append([line, STATE["n"]]))
        print(json.dumps({"events": STATE["n"], "marks": marks, "kinds": STATE["kinds"]}),
              flush=True)
    else:  # sweep: one forked child per kill point, each on its own copy of the file
        points = json.loads(sys.argv[5])
        for index, (k, where) in enumerate(points):
            target = os.path.join(os.path.dirname(path), f"kill{index}.h5")
            shutil.copyfile(path, target)
            log = target + ".log"
            pid = os.fork()
            if pid == 0:
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
                try:
                    install(k, where)
                    commit_all(target, plan, n0, reporter(fd))
                    os._exit(0)
                except BaseException:
                    os.write(fd, traceback.format_exc().encode())
                    os._exit(3)
            _, status = os.waitpid(pid, 0)
            print(json.dumps({"index": index, "k": k, "where": where, "path": target,
                              "log": log,
                              "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                              "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}),
                  flush=True)


main()
'''

_NS: dict = {}
exec(compile(WORKLOAD, "<workload>", "exec"), _NS)
step, stamp = _NS["step"], _NS["stamp"]


# -- the model: expected contents, computed with plain h5py in memory ------------------------

def _attrs(obj) -> dict:
    out = {}
    for key, value in obj.attrs.items():
        value = value.tolist() if hasattr(value, "tolist") else value
        out[key] = value.decode() if isinstance(value, bytes) else value
    return out


def snapshot(group, skip: str | None = None) -> dict:
    """path -> attrs (groups) or (array, attrs) (datasets) of an h5py group, a version view."""
    out: dict = {}

    def walk(node, prefix: str) -> None:
        out[prefix or "/"] = _attrs(node)
        if not prefix and isinstance(node, VersionGroup):  # the version's record, not stored
            for key in VERSION_ATTRS:
                out["/"].pop(key, None)
        for key in node.keys():
            if key == skip and not prefix:
                continue
            child = node[key]
            path = f"{prefix}/{key}"
            if hasattr(child, "dtype"):
                out[path] = (np.asarray(child[()]), _attrs(child))
            else:
                walk(child, path)

    walk(group, "")
    return out


def assert_same(actual: dict, expected: dict, what: str) -> None:
    assert sorted(actual) == sorted(expected), f"{what}: members differ"
    for path, value in expected.items():
        got = actual[path]
        if isinstance(value, dict):
            assert got == value, f"{what}: attributes of group {path}"
        else:
            assert got[1] == value[1], f"{what}: attributes of {path}"
            assert got[0].dtype == value[0].dtype, f"{what}: dtype of {path}"
            assert got[0].shape == value[0].shape, f"{what}: shape of {path}"
            assert np.array_equal(got[0], value[0]), f"{what}: data of {path}"


class Model:
    """Expected state of every version of a plan (and the current version after each commit)."""

    def __init__(self, n0: int):
        self.n0 = n0
        self.images: dict[str, bytes] = {}
        self.snapshots: dict[str, dict] = {}
        self.current = "__first_version__"
        self.history: list[str] = []  # current version after 1, 2, 3, ... commits
        self.after: dict[str, dict] = {}  # version -> its state plus the step AFTER

    def apply(self, base: str | None, i: int) -> tuple[bytes, dict]:
        buffer = io.BytesIO(self.images[base] if base else b"")
        with h5py.File(buffer, "r+" if base else "w") as f:
            step(f, i, self.n0)
        image = buffer.getvalue()
        with h5py.File(io.BytesIO(image), "r") as f:
            return image, snapshot(f)

    def commit(self, item: dict) -> None:
        base = item["prev"] or (None if self.current == "__first_version__" else self.current)
        self.images[item["name"]], self.snapshots[item["name"]] = self.apply(base, item["i"])
        if item["current"]:
            self.current = item["name"]
        self.history.append(self.current)


def item(i: int, prev: str | None = None, current: bool = True) -> dict:
    return {"name": f"v{i}", "i": i, "prev": prev, "current": current}


# Made by the test; then the child commits CHILD_PLAN on top.
BASE_PLAN = [item(0), item(1), item(2)]
CHILD_PLAN = [item(3), item(4), item(5), item(6, current=False), item(7), item(8, prev="v6")]
EXTERNAL_PLAN = CHILD_PLAN + [item(9), item(10), item(11), item(12, prev="v9"), item(13),
                              item(14), item(15), item(16)]
AFTER = 99  # the step of the commit made after recovery


def make_base(path: str, n0: int, plan: list[dict]) -> Model:
    """Commit BASE_PLAN to a new file; the model knows BASE_PLAN and then ``plan``."""
    model = Model(n0)
    with VersionedFile(path, "w") as vf:
        for entry in BASE_PLAN:
            with vf.stage_version(entry["name"], prev_version=entry["prev"],
                                  make_current=entry["current"],
                                  timestamp=stamp(entry["i"])) as g:
                step(g, entry["i"], n0)
            model.commit(entry)
    for entry in plan:
        model.commit(entry)
    return model


def child_script(tmp_path: Path) -> str:
    script = tmp_path / "child.py"
    script.write_text(CHILD.replace("SRC)", f"{SRC!r})").replace("\nWORKLOAD\n", WORKLOAD))
    return str(script)


# -- checks after a kill -------------------------------------------------------------------------

def check_killed_file(path: str, printed: list[str], plan: list[dict], model: Model,
                      what: str, committed: bytes | None = None) -> str:
    """Check the file of a killed child; returns the name of the version it ends at.
    ``committed``: the file as the last complete transaction before the kill left it, which
    recovery must give back byte for byte."""
    names = [e["name"] for e in plan]
    base_names = [e["name"] for e in BASE_PLAN]
    assert printed == names[:len(printed)], what
    with VersionedFile(path, "r") as vf:  # read-only opening recovers an interrupted commit
        assert not os.path.exists(journal_path(path)), what
        versions = vf.versions
        done = len(versions) - len(base_names)
        # every version reported committed is there; at most the one in progress in addition
        assert done in (len(printed), len(printed) + 1), f"{what}: {versions}"
        assert versions == base_names + names[:done], f"{what}: {versions}"
        current = model.history[len(base_names) + done - 1]
        assert vf.current_version == current, what
        for name in versions:
            assert_same(snapshot(vf[name]), model.snapshots[name], f"{what}: version {name}")
    with h5py.File(path, "r") as f:  # the plain mirror is the current version
        assert_same(snapshot(f, skip="_h5forge_versions"), model.snapshots[current],
                    f"{what}: root mirror")
    if committed is not None:
        recovered = Path(path).read_bytes()
        assert len(recovered) == len(committed), \
            f"{what}: {len(recovered) - len(committed)} bytes more than the last commit left"
        assert recovered == committed, f"{what}: recovered bytes differ from the last commit's"

    with VersionedFile(path, "r+") as vf:  # and the file takes another commit
        assert not os.path.exists(journal_path(path)), what
        with vf.stage_version("after") as g:
            step(g, AFTER, model.n0)
    if current not in model.after:
        model.after[current] = model.apply(current, AFTER)[1]
    expected_after = model.after[current]
    assert not os.path.exists(journal_path(path)), what
    with VersionedFile(path, "r") as vf:
        assert vf.versions == versions + ["after"], what
        assert vf.current_version == "after", what
        assert_same(snapshot(vf["after"]), expected_after, f"{what}: version after")
    with h5py.File(path, "r") as f:
        assert_same(snapshot(f, skip="_h5forge_versions"), expected_after,
                    f"{what}: root mirror after another commit")
    return current


# -- the tests -----------------------------------------------------------------------------------

SWEEP_N0 = 60_000
# Where in event k the child dies: before it; after journaling the original bytes (before
# writing the file); half-way through writing the file; half-way through writing the journal
# entry (or header). "after" event k is "before" event k + 1.
POSITIONS = ("before", "journaled", "torn_file", "torn_journal")


def count_events(script: str, base: str, plan: list[dict], n0: int) -> tuple[str, dict]:
    """Run the plan on a copy of ``base`` counting events (h5py writes and truncates through
    the journal, journal commits): {"events": n, "marks": [[line, events so far]],
    "kinds": [append / overwrite / truncate / commit per event]}."""
    counting = base + ".counted.h5"
    Path(counting).write_bytes(Path(base).read_bytes())
    out = subprocess.run([sys.executable, script, "count", counting, json.dumps(plan),
                          str(n0)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return counting, json.loads(out.stdout)


def kill_at(script: str, base: str, plan: list[dict], n0: int,
            points: list[tuple[int, str]]) -> Iterator[dict]:
    """For each kill point, a forked child runs the plan on a fresh copy of ``base`` and
    SIGKILLs itself there; yields {"k", "where", "path", "log", "signal", "exit"} as each
    ends (the driver goes on with the next meanwhile)."""
    driver = subprocess.Popen([sys.executable, script, "sweep", base, json.dumps(plan),
                               str(n0), json.dumps(points)], stdout=subprocess.PIPE, text=True)
    try:
        for line in driver.stdout:
            yield json.loads(line)
    finally:
        driver.stdout.close()
        assert driver.wait(timeout=60) == 0


def test_self_kill_sweep(tmp_path):
    base = str(tmp_path / "base.h5")
    model = make_base(base, SWEEP_N0, CHILD_PLAN)
    script = child_script(tmp_path)
    counting, counted = count_events(script, base, CHILD_PLAN, SWEEP_N0)
    total = counted["events"]
    marks = dict(counted["marks"][1:])  # events done when each commit (and the close) ended
    assert total > 100 and marks["closed"] == total
    check_killed_file(counting, [e["name"] for e in CHILD_PLAN], CHILD_PLAN, model,
                      "complete run")

    kinds = counted["kinds"]
    assert len(kinds) == total and kinds[-1] == "commit"
    # First, killed right after each journal commit: the file each transaction leaves (what
    # recovery must give back byte for byte). Then every event of the run, before it happens;
    # every third write below the old end of the file (an overwrite, the journaled kind) or
    # truncation also at one of the other positions in turn; every eighth append half-written.
    commits = [k for k, kind in enumerate(kinds, 1) if kind == "commit"]
    points = [(k, "after") for k in commits]
    points += [(k, "before") for k in range(1, total + 1)]
    overwrites = appends = 0
    for k, kind in enumerate(kinds, 1):
        if kind in ("overwrite", "truncate"):
            if overwrites % 3 == 0:
                points.append((k, POSITIONS[1 + overwrites // 3 % 3]))
            overwrites += 1
        elif kind == "append":
            if appends % 8 == 0:
                points.append((k, "torn_file"))
            appends += 1
    points.append((total + 1, "before"))  # beyond the end: the run completes

    failures, ended_at, killed = [], {}, 0
    committed = {0: Path(base).read_bytes()}  # event number of a journal commit -> the file
    for result in kill_at(script, base, CHILD_PLAN, SWEEP_N0, points):
        k, where = result["k"], result["where"]
        what = f"kill at event {k}/{total} ({where})"
        log = Path(result["log"]).read_text()
        if where == "after":
            assert not os.path.exists(journal_path(result["path"])), what
            committed[k] = Path(result["path"]).read_bytes()
        last_commit = max(c for c in committed if c < k or (c == k and where == "after"))
        if k <= total:
            if result["signal"] != signal.SIGKILL:
                failures.append(f"{what}: child was not killed: {result} {log}")
                continue
            killed += 1
        else:
            assert result["exit"] == 0, log
        printed = [ln.split()[1] for ln in log.splitlines() if ln.startswith("committed ")]
        try:
            current = check_killed_file(result["path"], printed, CHILD_PLAN, model, what,
                                        committed[last_commit])
            ended_at[current] = ended_at.get(current, 0) + 1
        except AssertionError as error:
            failures.append(str(error))
        except Exception as error:  # e.g. the file no longer opens
            failures.append(f"{what}: {type(error).__name__}: {error}")
        for name in (result["path"], result["log"]):
            os.remove(name)
    assert not failures, f"{len(failures)} of {len(points)} kill points failed:\n" + \
        "\n".join(failures[:20])
    assert killed == len(points) - 1
    # kills landed in every commit: the file ended at every version of the plan
    assert set(ended_at) >= set(model.history[len(BASE_PLAN) - 1:])


EXTERNAL_N0 = 1_000_000
EXTERNAL_KILLS = 20


def test_external_kill(tmp_path):
    base = str(tmp_path / "base.h5")
    model = make_base(base, EXTERNAL_N0, EXTERNAL_PLAN)
    script = child_script(tmp_path)
    plan_json = json.dumps(EXTERNAL_PLAN)
    names = [e["name"] for e in EXTERNAL_PLAN]
    data = Path(base).read_bytes()

    def spawn(index: int) -> tuple[subprocess.Popen, str]:
        path = str(tmp_path / f"run{index}.h5")
        Path(path).write_bytes(data)
        child = subprocess.Popen([sys.executable, script, "run", path, plan_json,
                                  str(EXTERNAL_N0)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        return child, path

    def go(child: subprocess.Popen) -> None:
        assert child.stdout.readline() == "ready\n"  # imported, waiting
        child.stdin.write("go\n")
        child.stdin.close()

    # One complete run, timed from the word to go, to spread the kills over.
    child, path = spawn(-1)
    go(child)
    began = time.monotonic()
    lines = child.stdout.read().splitlines()
    duration = time.monotonic() - began
    child.stdout.close()
    assert child.wait(timeout=60) == 0
    assert lines == [f"committed {n}" for n in names] + ["closed"]
    check_killed_file(path, names, EXTERNAL_PLAN, model, "complete run")

    rng = random.Random(20240611)
    delays = [duration * f for f in np.linspace(0.0, 0.95, EXTERNAL_KILLS - 6)]
    delays += [rng.uniform(0.0, duration) for _ in range(6)]
    outcomes = []
    following = spawn(0)
    try:
        for index, delay in enumerate(delays):
            child, path = following
            go(child)
            time.sleep(delay)
            child.send_signal(signal.SIGKILL)
            if index + 1 < len(delays):  # starts (imports) while this one is checked
                following = spawn(index + 1)
            lines = child.stdout.read().splitlines()
            child.stdout.close()
            status = child.wait(timeout=60)
            printed = [ln.split()[1] for ln in lines if ln.startswith("committed ")]
            what = f"external kill after {delay:.3f}s of {duration:.3f}s (status {status})"
            current = check_killed_file(path, printed, EXTERNAL_PLAN, model, what)
            outcomes.append((len(printed), status, current))
            os.remove(path)
    finally:
        if following[0].poll() is None:  # a failure left the next child waiting
            following[0].kill()
            following[0].communicate()
    # the kills landed at many different points of the run
    assert len({n for n, _, _ in outcomes}) >= 4, outcomes
    assert sum(status == -signal.SIGKILL for _, status, _ in outcomes) >= EXTERNAL_KILLS // 2


def first_overwrite(counted: dict) -> int:
    """The event number of the run's first write below the old end of the file."""
    return counted["kinds"].index("overwrite") + 1


def test_kill_before_the_first_overwrite_restores_the_committed_bytes(tmp_path):
    """A commit's first writes are new chunks appended past the end of the file; killed before
    anything below the old end is overwritten, no journal exists yet. Recovery must still give
    back the last commit's file, byte for byte (not the file plus the appended chunks)."""
    base = str(tmp_path / "base.h5")
    make_base(base, SWEEP_N0, [])
    script = child_script(tmp_path)
    plan = [item(4)]  # new chunks of "grid" first
    _, counted = count_events(script, base, plan, SWEEP_N0)
    k = first_overwrite(counted)
    assert k > 1  # the commit starts by appending (this is what is tested)
    original = Path(base).read_bytes()
    for result in kill_at(script, base, plan, SWEEP_N0, [(1, "torn_file"), (k, "before")]):
        assert result["signal"] == signal.SIGKILL
        VersionedFile(result["path"], "r").close()  # recovers
        assert not os.path.exists(journal_path(result["path"]))
        recovered = Path(result["path"]).read_bytes()
        assert len(recovered) == len(original), \
            f"{len(recovered) - len(original)} bytes of the killed commit left at the end"
        assert recovered == original


def test_stale_journal_of_a_removed_file_is_not_applied_to_a_new_one(tmp_path):
    """A commit was killed (its journal is left), then the data file was removed but not the
    journal, and a new file made at the same path; killed again before that new file's first
    overwrite, the old journal must not be "recovered" into the new file."""
    base = str(tmp_path / "base.h5")
    make_base(base, SWEEP_N0, CHILD_PLAN)
    script = child_script(tmp_path)
    _, counted = count_events(script, base, CHILD_PLAN, SWEEP_N0)
    # killed just before the first commit ends: the journal holds the superblock's old bytes
    [result] = kill_at(script, base, CHILD_PLAN, SWEEP_N0,
                       [(counted["kinds"].index("commit") + 1, "before")])
    path = result["path"]
    assert result["signal"] == signal.SIGKILL
    journal, offsets, at = Path(journal_path(path)).read_bytes(), [], 16
    while at < len(journal):  # entries: offset, length (uint64), crc32, then the bytes
        offsets.append(int.from_bytes(journal[at:at + 8], "little"))
        at += 20 + int.from_bytes(journal[at + 8:at + 16], "little")
    assert min(offsets) < 512, offsets  # something a new file has too
    os.remove(path)
    killed = subprocess.run([sys.executable, "-c", f"""
import os, signal, sys
sys.path.insert(0, {SRC!r})
from h5forge.versions import VersionedFile
vf = VersionedFile({path!r}, "a")  # a new file, its versions group committed
os.kill(os.getpid(), signal.SIGKILL)
"""], timeout=60)
    assert killed.returncode == -signal.SIGKILL
    with VersionedFile(path, "r") as vf:
        assert vf.versions == []
        assert vf.current_version == "__first_version__"
    assert not os.path.exists(journal_path(path))
    with VersionedFile(path, "r+") as vf:
        with vf.stage_version("new") as g:
            g["x"] = np.arange(10)
    with VersionedFile(path, "r") as vf:
        assert vf.versions == ["new"]
        np.testing.assert_array_equal(vf["new"]["x"][()], np.arange(10))
