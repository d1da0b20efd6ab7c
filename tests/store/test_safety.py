"""Safety of ``load`` on crafted files, and of ``dump`` on objects it cannot store.

The contract (docs/FORMAT.md, "Safety on load"): no unpickling unless ``allow_pickle=True``, no
``eval``, and a module named in a file is imported only if it is already imported or listed in
``trusted_modules``. A crafted file (pickle payloads, code in attributes, absurd shapes, link
loops, missing attributes, wrong dtypes) gives an ``H5ForgeError`` subclass naming the HDF5 path,
or a warning -- never code execution and never a hang. Unknown classes load as
``UnknownObject`` (class name + full state) with a warning saying how to resolve them, and the
rest of the tree loads normally. ``dump`` refuses objects it cannot store with a ``CodecError``
naming their place in the object tree before anything is written.

Files are crafted with plain h5py, following docs/FORMAT.md. Canaries (a marker file, spies on
``os.system``, ``eval``, ``exec``, ``pickle.loads``, ``subprocess.Popen``, module imports) show
that nothing in a file gets executed. Cases that could hang run ``load`` in a child process with
a timeout, so a regression fails instead of blocking the test run.
"""

from __future__ import annotations

import array as array_module
import builtins
import collections
import contextlib
import functools
import importlib
import json
import operator
import os
import pickle
import random
import re
import socket
import subprocess
import sys
import threading
import uuid
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import h5forge
from h5forge import H5ForgeError, UnknownClassWarning, UnknownObject
from h5forge.errors import (
    CodecError,
    CorruptFileError,
    FormatVersionError,
    NodeNotFoundError,
    ResourceLimitError,
    TargetError,
    UnsafeContentError,
)
from h5forge.store import LazyArray
from h5forge.store.members import MemberMismatchWarning

STR = h5py.string_dtype()
FILE = "crafted.h5"
#: The place of the crafted node in every crafted file, as messages spell it (file:/path).
VICTIM = f"{FILE}:/victim"
#: Seconds a child process may take to load a crafted file before it counts as a hang. A
#: correct loader needs well under a second; interpreter start-up takes one or two.
HANG_TIMEOUT = 10
#: Bytes no machine can allocate: beyond a 47-bit user address space, so numpy fails at once
#: even with memory overcommit, instead of the test eating the machine's memory.
IMPOSSIBLE_BYTES = 2**49


# -- helpers --------------------------------------------------------------------------------------
def crafted(tmp_path: Path, build, *, name: str = FILE) -> Path:
    """A file whose root is a valid h5forge dict holding two healthy siblings (``sibling`` = a
    packed list [1, 2, 3], ``ok`` = 7 inline) plus whatever ``build(f)`` adds; the root ``keys``
    attribute lists every link, so the root itself is consistent."""
    path = tmp_path / name
    with h5py.File(path, "w") as f:
        sibling = f.create_dataset("sibling", data=np.array([1, 2, 3], dtype="i8"))
        sibling.attrs["class"] = "list"
        sibling.attrs["element_class"] = "int"
        build(f)
        keys = sorted(f) + ["ok"]
        f.attrs["ok"] = np.int64(7)
        f.attrs["class"] = "dict"
        f.attrs["h5forge_format"] = "1"
        f.attrs.create("keys", np.array(keys, dtype=object), dtype=STR)
    return path


def assert_siblings(out) -> None:
    assert out["sibling"] == [1, 2, 3]
    assert out["ok"] == 7


def dataset(parent, name, data, class_name=None, h5dtype=None, **attrs):
    """A dataset of ``data`` (stored as ``h5dtype``) with ``class`` and other attributes."""
    ds = parent.create_dataset(name, data=data, dtype=h5dtype)
    if class_name is not None:
        ds.attrs["class"] = class_name
    for key, value in attrs.items():
        ds.attrs[key] = value
    return ds


def group(parent, name, class_name=None, **attrs):
    grp = parent.create_group(name)
    if class_name is not None:
        grp.attrs["class"] = class_name
    for key, value in attrs.items():
        grp.attrs[key] = value
    return grp


def huge(parent, name, class_name, h5dtype="f8", nbytes=IMPOSSIBLE_BYTES, **attrs):
    """A chunked dataset whose shape claims ``nbytes`` bytes; nothing is written (fill value)."""
    h5dtype = np.dtype(h5dtype)
    n = nbytes // max(h5dtype.itemsize, 1)
    ds = parent.create_dataset(name, shape=(n,), dtype=h5dtype, chunks=(1024,))
    if class_name is not None:
        ds.attrs["class"] = class_name
    for key, value in attrs.items():
        ds.attrs[key] = value
    return ds


def load_fails(path, exc_type, where=VICTIM, *args, **kwargs):
    """``load`` raises ``exc_type`` (an H5ForgeError) with a message naming ``where``."""
    with pytest.raises(exc_type) as info:
        h5forge.load(path, *args, **kwargs)
    err = info.value
    assert isinstance(err, H5ForgeError)
    assert where in str(err), f"message does not name {where!r}: {err}"
    return err


def load_recording(path, *args, **kwargs):
    """(result, warnings raised) of ``load``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = h5forge.load(path, *args, **kwargs)
    return out, caught


def unknown_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, UnknownClassWarning)]


_RUNNER = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import h5forge
try:
    h5forge.load(sys.argv[1])
except h5forge.H5ForgeError as exc:
    result = {"outcome": "error", "type": type(exc).__name__, "message": str(exc)[:300]}
except BaseException as exc:
    result = {"outcome": "crash", "type": type(exc).__name__, "message": str(exc)[:300]}
else:
    result = {"outcome": "ok"}
print(json.dumps(result))
"""


def load_bounded(path: Path, timeout: float = HANG_TIMEOUT) -> dict:
    """Load ``path`` in a child process; fail the test when it takes longer than ``timeout``
    (the child is killed) or ends with anything but a result or an H5ForgeError."""
    try:
        proc = subprocess.run([sys.executable, "-c", _RUNNER, str(path)], capture_output=True,
                              text=True, timeout=timeout, cwd=path.parent)
    except subprocess.TimeoutExpired:
        pytest.fail(f"load({path.name}) did not finish within {timeout} s: a crafted file of "
                    f"{path.stat().st_size} bytes hangs the loader")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["outcome"] in ("ok", "error"), result
    return result


# -- canaries -------------------------------------------------------------------------------------
def _touch(path):
    """What a pickle payload does when it runs: create a marker file."""
    Path(path).write_text("payload ran")
    return "payload ran"


class _Payload:
    """Unpickling this calls ``_touch(marker)``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


_REAL_SYSTEM = os.system  # pickled by reference (posix.system), whatever the spies replace


class _SystemPayload:
    """Unpickling this runs a shell command, as a real attack would."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (_REAL_SYSTEM, (f"touch {self.marker}",))


class _Opaque(Exception):
    """No codec stores exceptions, but pickle does: ``dump(..., allow_pickle=True)`` pickles it."""

    def __eq__(self, other):
        return type(other) is type(self) and other.args == self.args

    __hash__ = Exception.__hash__


class _Run:
    """A user object whose attribute cannot be stored."""

    def __init__(self, callback):
        self.callback = callback


class RenamedSession:
    """Where a class stored under an old name lives now (see h5forge.alias)."""

    def __init__(self, subject=None):
        self.subject = subject


@pytest.fixture
def spies(monkeypatch):
    """Replace what a crafted file would like to run with recorders; ``spies`` lists the calls.

    ``importlib.import_module`` still works (it is only recorded)."""
    calls: list[tuple[str, tuple]] = []

    def spy(name):
        def record(*args, **kwargs):
            calls.append((name, args))
            raise AssertionError(f"{name} was called with {args!r}")

        return record

    def source_spy(name, real):
        """eval/exec of source text is what a file could ask for; the import system itself
        execs compiled module code, which must keep working."""

        def record(source, *args, **kwargs):
            if isinstance(source, (str, bytes)):
                calls.append((name, (source,)))
                raise AssertionError(f"{name} was called on {source!r}")
            return real(source, *args, **kwargs)

        return record

    real_import = importlib.import_module

    def import_module(name, *args, **kwargs):
        calls.append(("import_module", (name,)))
        return real_import(name, *args, **kwargs)

    class SpyPopen(subprocess.Popen):
        def __new__(cls, *args, **kwargs):
            calls.append(("subprocess.Popen", args))
            raise AssertionError("subprocess.Popen was instantiated")

    monkeypatch.setattr(os, "system", spy("os.system"))
    monkeypatch.setattr(builtins, "eval", source_spy("eval", builtins.eval))
    monkeypatch.setattr(builtins, "exec", source_spy("exec", builtins.exec))
    monkeypatch.setattr(pickle, "loads", spy("pickle.loads"))
    monkeypatch.setattr(subprocess, "Popen", SpyPopen)
    monkeypatch.setattr(importlib, "import_module", import_module)
    return calls


def dangerous(calls) -> list:
    """The spied calls that mean code from a file ran (imports are judged separately)."""
    return [c for c in calls if c[0] != "import_module"]


# == 1. pickle ====================================================================================
def _pickle_node(parent, name, obj):
    return dataset(parent, name, np.frombuffer(pickle.dumps(obj), dtype=np.uint8), "pickle")


def test_pickle_payload_is_refused_without_allow_pickle(tmp_path, spies):
    marker = tmp_path / "PWNED"
    path = crafted(tmp_path, lambda f: _pickle_node(f, "victim", _SystemPayload(marker)))
    err = load_fails(path, UnsafeContentError)
    assert "allow_pickle" in str(err)
    assert not marker.exists()
    assert not dangerous(spies)


def test_pickle_payload_deep_in_a_tree_is_refused(tmp_path, spies):
    marker = tmp_path / "PWNED"

    def build(f):
        outer = group(f, "victim", "list")
        inner = group(outer, "0", "dict", keys=np.array(["p"], dtype=object).astype(STR))
        _pickle_node(inner, "p", _SystemPayload(marker))

    path = crafted(tmp_path, build)
    load_fails(path, UnsafeContentError, f"{VICTIM}/0/p")
    assert not marker.exists()
    assert not dangerous(spies)


def test_pickle_on_a_sub_path_and_an_open_file_is_refused(tmp_path, spies):
    marker = tmp_path / "PWNED"
    path = crafted(tmp_path, lambda f: _pickle_node(f, "victim", _SystemPayload(marker)))
    load_fails(path, UnsafeContentError, VICTIM, "victim")
    with h5py.File(path, "r") as f:
        load_fails(f, UnsafeContentError, VICTIM)
        load_fails(f, UnsafeContentError, VICTIM, "/victim")
    assert not marker.exists()
    assert not dangerous(spies)


def test_pickle_payload_runs_only_with_allow_pickle(tmp_path):
    """allow_pickle=True really unpickles: the flag is the only gate, so it must be opt-in."""
    marker = tmp_path / "ran"
    path = crafted(tmp_path, lambda f: _pickle_node(f, "victim", _Payload(marker)))
    with pytest.raises(UnsafeContentError):
        h5forge.load(path)
    assert not marker.exists()
    out = h5forge.load(path, allow_pickle=True)
    assert out["victim"] == "payload ran"
    assert marker.exists()
    assert_siblings(out)


def test_dump_pickles_only_with_allow_pickle(tmp_path):
    obj = {"x": _Opaque("state", 3), "n": [1, 2]}
    path = tmp_path / "pickled.h5"
    with pytest.raises(CodecError, match=re.escape("obj['x']")):
        h5forge.dump(obj, path)
    assert not path.exists()
    h5forge.dump(obj, path, allow_pickle=True)
    with h5py.File(path, "r") as f:
        assert f["x"].attrs["class"] == "pickle"
        assert isinstance(f["x"], h5py.Dataset)
    load_fails(path, UnsafeContentError, "pickled.h5:/x")
    out = h5forge.load(path, allow_pickle=True)
    assert out == obj
    assert type(out["x"]) is _Opaque


def test_allow_pickle_does_not_store_the_unpicklable(tmp_path):
    path = tmp_path / "out.h5"
    with pytest.raises(CodecError, match=re.escape("obj['runs'][1]")):
        h5forge.dump({"runs": [0, lambda: 1]}, path, allow_pickle=True)
    assert not path.exists()


# == 2. code in class attributes ==================================================================
CODE_CLASS_NAMES = [
    "__import__('os').system('touch {marker}')",
    "eval(\"__import__('os').system('touch {marker}')\")",
    "os.system",
    "posix.system",
    "subprocess.Popen",
    "subprocess.run",
    "builtins.eval",
    "builtins.exec",
    "builtins.__import__",
    "builtins.object",
    "builtins.type",
    "importlib.import_module",
    "pickle.loads",
    "shutil.rmtree",
    "sys.exit",
    "os.PathLike",
    "posixpath.join",
    "types.FunctionType",
    "h5forge.store.api.dump",
    "a..b",
    ".os.system",
    "os.system.",
    "1os.system",
    "os.system\x7f",
    "os.sys\u0442em",
    "",
    " ",
    "lambda: 0",
]


def _class_attr_cases():
    for name in CODE_CLASS_NAMES:
        yield pytest.param(name, id=repr(name)[:40])
    yield pytest.param(5, id="int")
    yield pytest.param(np.float64(1.5), id="float")
    yield pytest.param(b"os.system", id="bytes")
    yield pytest.param(np.bytes_(b"subprocess.Popen"), id="fixed-bytes")
    yield pytest.param(np.array(["os", "system"], dtype=object).astype(STR), id="str-array")
    yield pytest.param(h5py.Empty("f4"), id="empty")


@pytest.mark.parametrize("kind", ["group", "object", "dataset"])
@pytest.mark.parametrize("class_value", list(_class_attr_cases()))
def test_code_in_class_attribute_never_runs(class_value, kind, tmp_path, spies):
    marker = tmp_path / "PWNED"
    if isinstance(class_value, str):
        class_value = class_value.format(marker=marker)

    def build(f):
        if kind == "dataset":
            node = dataset(f, "victim", np.arange(3))
        else:
            node = group(f, "victim")
            node.attrs["x"] = np.int64(1)
            if kind == "object":
                state = group(node, "instance_attributes", "dict",
                              keys=np.array(["a"], dtype=object).astype(STR))
                dataset(state, "a", np.array([1, 2], dtype="i8"), "list", element_class="int")
        if isinstance(class_value, str):
            node.attrs.create("class", class_value, dtype=STR)
        else:
            node.attrs["class"] = class_value

    path = crafted(tmp_path, build)
    try:
        out, caught = load_recording(path)
    except H5ForgeError as err:
        assert VICTIM in str(err), err
    else:
        victim = out["victim"]
        assert isinstance(victim, UnknownObject), victim
        assert unknown_warnings(caught), "an unresolved class must warn"
        if isinstance(class_value, str):
            assert victim.class_name == class_value
        if kind == "dataset":
            assert np.array_equal(victim.state, np.arange(3))
        elif kind == "object":
            assert victim.state == {"a": [1, 2]}
        assert_siblings(out)
    assert not marker.exists()
    assert not dangerous(spies)


def test_class_attribute_that_is_an_int_is_a_corrupt_file(tmp_path):
    path = crafted(tmp_path, lambda f: dataset(f, "victim", np.arange(3), np.int64(5)))
    load_fails(path, CorruptFileError)


def test_non_utf8_class_attribute(tmp_path, spies):
    def build(f):
        node = group(f, "victim")
        tid = h5py.h5t.C_S1.copy()
        tid.set_size(h5py.h5t.VARIABLE)
        tid.set_cset(h5py.h5t.CSET_UTF8)
        aid = h5py.h5a.create(node.id, b"class", tid, h5py.h5s.create(h5py.h5s.SCALAR))
        aid.write(np.array(b"os.\xffsystem", dtype=h5py.string_dtype("utf-8")))

    path = crafted(tmp_path, build)
    try:
        out, caught = load_recording(path)
    except H5ForgeError as err:
        assert VICTIM in str(err)
    else:
        assert isinstance(out["victim"], UnknownObject)
        assert unknown_warnings(caught)
        assert_siblings(out)
    assert not dangerous(spies)


def test_class_in_a_module_never_imported_is_not_imported(tmp_path, monkeypatch, spies):
    """A module on sys.path whose import has a side effect: naming it in a file does nothing
    unless the caller trusts it."""
    name = f"h5forge_canary_{uuid.uuid4().hex[:12]}"
    moddir = tmp_path / "modules"
    moddir.mkdir()
    marker = tmp_path / "imported"
    (moddir / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        f"class Thing:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(moddir))

    def build(f):
        node = group(f, "victim", f"{name}.Thing")
        group(node, "instance_attributes", "dict", keys=np.array([], dtype=object).astype(STR))

    path = crafted(tmp_path, build)
    with pytest.warns(UnknownClassWarning, match="trusted_modules"):
        out = h5forge.load(path)
    assert isinstance(out["victim"], UnknownObject)
    assert out["victim"].class_name == f"{name}.Thing"
    assert not marker.exists()
    assert name not in sys.modules
    assert not [c for c in spies if c[0] == "import_module" and name in c[1][0]]
    assert_siblings(out)

    # trusting it is what allows the import
    out = h5forge.load(path, trusted_modules=[name])
    assert marker.exists()
    assert type(out["victim"]).__module__ == name
    assert type(out["victim"]).__name__ == "Thing"
    sys.modules.pop(name, None)


@pytest.mark.parametrize("module", ["os", "subprocess", "builtins", "sys", "pickle"])
def test_system_modules_are_refused_unless_trusted(module, tmp_path, spies):
    class_name = {"os": "os.PathLike", "subprocess": "subprocess.Popen",
                  "builtins": "builtins.object", "sys": "sys.flags",
                  "pickle": "pickle.Unpickler"}[module]

    def build(f):
        node = group(f, "victim", class_name)
        group(node, "instance_attributes", "dict", keys=np.array([], dtype=object).astype(STR))

    path = crafted(tmp_path, build)
    with pytest.warns(UnknownClassWarning) as record:
        out = h5forge.load(path)
    assert isinstance(out["victim"], UnknownObject)
    message = " ".join(str(w.message) for w in record)
    assert "/victim" in message and f"trusted_modules=[{module!r}]" in message
    assert not dangerous(spies)


def test_trusting_a_module_never_calls_its_functions(tmp_path, spies):
    """Even a trusted module only supplies classes: a function named in a file is not called."""

    def build(f):
        node = group(f, "victim", "os.system")
        group(node, "instance_attributes", "dict", keys=np.array([], dtype=object).astype(STR))
        dataset(f, "other", np.array("touch x", dtype=object), "builtins.eval", h5dtype=STR)

    path = crafted(tmp_path, build)
    out, caught = load_recording(path, trusted_modules=["os", "builtins"])
    assert isinstance(out["victim"], UnknownObject)
    assert isinstance(out["other"], UnknownObject)
    assert len(unknown_warnings(caught)) == 2
    assert not dangerous(spies)


@pytest.mark.parametrize("factory", ["os.system", "subprocess.Popen", "builtins.eval",
                                     "h5forge.store.api.dump", "nonexistent_mod_zz.Factory"])
def test_defaultdict_factory_from_a_file_is_not_trusted(factory, tmp_path, spies):
    def build(f):
        group(f, "victim", "collections.defaultdict", default_factory=factory,
              keys=np.array(["a"], dtype=object).astype(STR), a=np.int64(1))

    path = crafted(tmp_path, build)
    out, caught = load_recording(path)
    victim = out["victim"]
    assert type(victim) is collections.defaultdict
    assert victim.default_factory is None
    assert dict(victim) == {"a": 1}
    assert any(factory in str(w.message) for w in caught)
    assert not dangerous(spies)


# == 3. unknown classes ===========================================================================
_LAB_MODULE = '''
import collections
import enum
from pathlib import Path

Path(__file__).with_suffix(".imported").write_text("imported")


class Session:
    def __init__(self, subject, trace, meta):
        self.subject = subject
        self.trace = trace
        self.meta = meta


class Inner:
    def __init__(self, v):
        self.v = v


class Color(enum.Enum):
    RED = 1
    BLUE = 2


Point = collections.namedtuple("Point", "x y")
'''


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A user module (unique name) written to disk, imported, with a ``forget()`` that removes
    it from sys.modules as a fresh interpreter would not have it."""
    name = f"h5forge_lab_{uuid.uuid4().hex[:12]}"
    moddir = tmp_path / "modules"
    moddir.mkdir()
    (moddir / f"{name}.py").write_text(_LAB_MODULE)
    monkeypatch.syspath_prepend(str(moddir))
    module = importlib.import_module(name)
    imported = moddir / f"{name}.imported"

    def forget():
        monkeypatch.delitem(sys.modules, name, raising=False)
        imported.unlink(missing_ok=True)

    module.forget = forget
    module.imported = imported
    yield module
    sys.modules.pop(name, None)


def _lab_tree(lab):
    session = lab.Session("M12", np.arange(5.0), {"rig": 2, "inner": lab.Inner([1, 2])})
    return {"session": session, "siblings": [1, "two", 3.0], "count": 7,
            "trace": np.linspace(0, 1, 4), "label": "x" * 300}


def _assert_lab_siblings(out):
    assert out["siblings"] == [1, "two", 3.0]
    assert out["count"] == 7
    assert np.array_equal(out["trace"], np.linspace(0, 1, 4))
    assert out["label"] == "x" * 300


def test_unknown_class_loads_as_unknown_object_with_full_state(lab, tmp_path):
    path = tmp_path / "lab.h5"
    h5forge.dump(_lab_tree(lab), path)
    lab.forget()
    with pytest.warns(UnknownClassWarning) as record:
        out = h5forge.load(path)
    session = out["session"]
    assert isinstance(session, UnknownObject)
    assert session.class_name == f"{lab.__name__}.Session"
    assert session.kind == "object"
    state = session.state
    assert set(state) == {"subject", "trace", "meta"}
    assert state["subject"] == "M12"
    assert np.array_equal(state["trace"], np.arange(5.0)) and state["trace"].dtype == np.float64
    assert state["meta"]["rig"] == 2
    inner = state["meta"]["inner"]
    assert isinstance(inner, UnknownObject)
    assert inner.class_name == f"{lab.__name__}.Inner"
    assert inner.state == {"v": [1, 2]}
    _assert_lab_siblings(out)
    assert not lab.imported.exists()  # loading did not import the module

    messages = [str(w.message) for w in record if issubclass(w.category, UnknownClassWarning)]
    first = next(m for m in messages if "Session" in m)
    assert "lab.h5:/session" in first
    assert "trusted_modules" in first and "alias" in first
    assert f"{lab.__name__}.Session" in first
    assert any(f"{lab.__name__}.Inner" in m for m in messages)


def test_trusted_modules_rebuilds_the_real_class(lab, tmp_path):
    path = tmp_path / "lab.h5"
    h5forge.dump(_lab_tree(lab), path)
    lab.forget()
    out, caught = load_recording(path, trusted_modules=[lab.__name__])
    assert not unknown_warnings(caught)
    assert lab.imported.exists()  # imported because it was trusted
    session = out["session"]
    assert type(session).__module__ == lab.__name__ and type(session).__name__ == "Session"
    assert session.subject == "M12"
    assert np.array_equal(session.trace, np.arange(5.0))
    assert type(session.meta["inner"]).__name__ == "Inner"
    assert session.meta["inner"].v == [1, 2]
    _assert_lab_siblings(out)


def test_trusted_modules_as_a_plain_string(lab, tmp_path):
    path = tmp_path / "lab.h5"
    h5forge.dump(_lab_tree(lab), path)
    lab.forget()
    out, caught = load_recording(path, trusted_modules=lab.__name__)
    assert not unknown_warnings(caught)
    assert type(out["session"]).__name__ == "Session"


def test_module_gone_even_when_trusted(tmp_path):
    def build(f):
        node = group(f, "victim", "h5forge_no_such_module_zz.Model")
        state = group(node, "instance_attributes", "dict",
                      keys=np.array(["a"], dtype=object).astype(STR))
        dataset(state, "a", np.array([1, 2], dtype="i8"), "list", element_class="int")

    path = crafted(tmp_path, build)
    with pytest.warns(UnknownClassWarning, match="trusted_modules"):
        out = h5forge.load(path, trusted_modules=["h5forge_no_such_module_zz"])
    assert out["victim"].class_name == "h5forge_no_such_module_zz.Model"
    assert out["victim"].state == {"a": [1, 2]}
    assert_siblings(out)


def test_class_renamed_in_an_imported_module(tmp_path):
    name = f"{__name__}.NoSuchClass{uuid.uuid4().hex[:8]}"

    def build(f):
        node = group(f, "victim", name)
        state = group(node, "instance_attributes", "dict",
                      keys=np.array(["a"], dtype=object).astype(STR))
        dataset(state, "a", np.array([1.5], dtype="f8"), "list", element_class="float")

    path = crafted(tmp_path, build)
    with pytest.warns(UnknownClassWarning, match="alias"):
        out = h5forge.load(path)
    assert out["victim"].class_name == name
    assert out["victim"].state == {"a": [1.5]}
    assert_siblings(out)


def test_alias_maps_an_old_class_name(tmp_path):
    old = f"old{uuid.uuid4().hex[:8]}.name.Session"
    path = tmp_path / "old.h5"
    h5forge.dump({"s": RenamedSession("M7"), "n": [1, 2]}, path)
    with h5py.File(path, "r+") as f:
        f["s"].attrs["class"] = old  # as if written before the class moved
    with pytest.warns(UnknownClassWarning, match=re.escape(f"h5forge.alias({old!r}")):
        before = h5forge.load(path)
    assert isinstance(before["s"], UnknownObject) and before["s"].state == {"subject": "M7"}
    h5forge.alias(old, RenamedSession)
    out, caught = load_recording(path)
    assert not unknown_warnings(caught)
    assert type(out["s"]) is RenamedSession
    assert out["s"].subject == "M7"
    assert out["n"] == [1, 2]


def test_alias_needs_a_class():
    with pytest.raises(TypeError):
        h5forge.alias("old.name.thing", lambda: 1)


def test_unknown_object_redumps_and_loads_back_as_the_real_class(lab, tmp_path):
    original = _lab_tree(lab)
    first, second = tmp_path / "first.h5", tmp_path / "second.h5"
    h5forge.dump(original, first)
    lab.forget()
    with pytest.warns(UnknownClassWarning):
        loaded = h5forge.load(first)
    h5forge.dump(loaded, second)  # a program without the class saves the file again
    out, caught = load_recording(second, trusted_modules=[lab.__name__])
    assert not unknown_warnings(caught)
    session = out["session"]
    assert type(session).__name__ == "Session" and type(session).__module__ == lab.__name__
    assert session.subject == "M12"
    assert np.array_equal(session.trace, np.arange(5.0))
    assert session.meta["rig"] == 2 and session.meta["inner"].v == [1, 2]
    _assert_lab_siblings(out)


def test_unknown_namedtuple_redumps(lab, tmp_path):
    first, second = tmp_path / "first.h5", tmp_path / "second.h5"
    h5forge.dump({"p": lab.Point(1, [2, 3]), "n": 1}, first)
    lab.forget()
    with pytest.warns(UnknownClassWarning):
        loaded = h5forge.load(first)
    assert isinstance(loaded["p"], UnknownObject) and loaded["p"].kind == "group"
    assert loaded["p"].state == {"x": 1, "y": [2, 3]}
    h5forge.dump(loaded, second)
    out = h5forge.load(second, trusted_modules=[lab.__name__])
    assert type(out["p"]).__name__ == "Point" and tuple(out["p"]) == (1, [2, 3])


def test_unknown_enum_member_loads_as_unknown_object(lab, tmp_path):
    path = tmp_path / "enum.h5"
    h5forge.dump({"c": lab.Color.BLUE, "n": 1}, path)
    lab.forget()
    with pytest.warns(UnknownClassWarning):
        out = h5forge.load(path)
    assert isinstance(out["c"], UnknownObject)
    assert out["c"].class_name == f"{lab.__name__}.Color"
    assert out["c"].state == "BLUE"
    assert out["n"] == 1


def test_unknown_enum_member_redumps(lab, tmp_path):
    first, second = tmp_path / "first.h5", tmp_path / "second.h5"
    h5forge.dump({"c": lab.Color.BLUE, "many": [lab.Color.RED, lab.Color.BLUE]}, first)
    lab.forget()
    with pytest.warns(UnknownClassWarning):
        loaded = h5forge.load(first)
    h5forge.dump(loaded, second)
    out = h5forge.load(second, trusted_modules=[lab.__name__])
    assert out["c"].name == "BLUE"
    assert [c.name for c in out["many"]] == ["RED", "BLUE"]


# == 4. absurd shapes =============================================================================
@pytest.mark.parametrize("n", [2**40, IMPOSSIBLE_BYTES // 8], ids=["2**40", "2**46"])
def test_huge_array_is_a_resource_limit_error(n, tmp_path):
    def build(f):
        ds = f.create_dataset("victim", shape=(n,), dtype="f8", chunks=(1024,), fillvalue=1.0)
        ds.attrs["class"] = "numpy.ndarray"

    path = crafted(tmp_path, build)
    err = load_fails(path, ResourceLimitError)
    assert isinstance(err, MemoryError)


HUGE_CASES = {
    "ndarray-F": lambda f: huge(f, "victim", "numpy.ndarray", order="F"),
    "ndarray-datetime": lambda f: huge(f, "victim", "numpy.ndarray", "i8",
                                       dtype="datetime64[ns]"),
    "ndarray-unicode": lambda f: huge(f, "victim", "numpy.ndarray", STR, dtype="<U5"),
    "numpy-scalar": lambda f: huge(f, "victim", "numpy.float64"),
    "no-class": lambda f: huge(f, "victim", None),
    "unknown-class": lambda f: huge(f, "victim", "h5forge_no_such_mod.Thing"),
    "in-unknown-group": lambda f: huge(group(f, "victim", "h5forge_no_such_mod.Thing"), "x",
                                       "numpy.ndarray"),
    "masked-data": lambda f: (huge(group(f, "victim", "numpy.ma.MaskedArray"), "data",
                                   "numpy.ndarray"),
                              dataset(f["victim"], "fill_value", 1.0, "float")),
}


@pytest.mark.parametrize("case", list(HUGE_CASES))
def test_huge_dataset_under_any_class_is_a_resource_limit_error(case, tmp_path):
    path = crafted(tmp_path, HUGE_CASES[case])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownClassWarning)
        load_fails(path, ResourceLimitError)


HUGE_OTHER_CODECS = {
    "packed-list": lambda f: huge(f, "victim", "list", element_class="float"),
    "packed-tuple-int": lambda f: huge(f, "victim", "tuple", "i8", element_class="int"),
    "packed-records": lambda f: huge(f, "victim", "list", np.dtype([("a", "f8")]),
                                     element_class="dict", field_classes=["float"]),
    "bytes": lambda f: huge(f, "victim", "bytes", "u1"),
    "bytearray": lambda f: huge(f, "victim", "bytearray", "u1"),
    "str-utf8-bytes": lambda f: huge(f, "victim", "str", "u1", encoding="utf-8-surrogatepass"),
    "int": lambda f: huge(f, "victim", "int", "i8"),
    "timedelta": lambda f: huge(f, "victim", "datetime.timedelta", "i8"),
}


@pytest.mark.parametrize("case", list(HUGE_OTHER_CODECS))
def test_huge_dataset_behind_other_codecs_is_a_resource_limit_error(case, tmp_path):
    path = crafted(tmp_path, HUGE_OTHER_CODECS[case])
    load_fails(path, ResourceLimitError)


def test_huge_array_loads_lazily(tmp_path):
    def build(f):
        ds = f.create_dataset("victim", shape=(2**40,), dtype="f8", chunks=(1024,), fillvalue=1.0)
        ds.attrs["class"] = "numpy.ndarray"

    path = crafted(tmp_path, build)
    out = h5forge.load(path, lazy=True)
    try:
        assert isinstance(out["victim"], LazyArray)
        assert out["victim"].shape == (2**40,)
        assert np.array_equal(out["victim"][:3], [1.0, 1.0, 1.0])
        assert_siblings(out)
    finally:
        out["victim"].dataset.file.close()


@pytest.mark.parametrize("shape", [[10**12], [10**15], [10**5, 10**5, 10**5]],
                         ids=["1e12", "1e15", "3d"])
def test_object_array_with_an_absurd_shape_attribute(shape, tmp_path):
    def build(f):
        node = group(f, "victim", "numpy.ndarray", dtype="object", shape=np.array(shape, "i8"))
        node.attrs["0"] = np.int64(1)

    path = crafted(tmp_path, build)
    load_fails(path, CorruptFileError)  # checked against the member count before allocating


def test_object_array_shape_that_does_not_match_its_members(tmp_path):
    def build(f):
        node = group(f, "victim", "numpy.ndarray", dtype="object", shape=np.array([5], "i8"))
        node.attrs["0"] = np.int64(1)

    load_fails(crafted(tmp_path, build), CorruptFileError)


@pytest.mark.parametrize("shape", [[-1], "abc"], ids=["negative", "text"])
def test_object_array_with_a_nonsense_shape_attribute(shape, tmp_path):
    def build(f):
        node = group(f, "victim", "numpy.ndarray", dtype="object")
        node.attrs["shape"] = shape
        node.attrs["0"] = np.int64(1)

    load_fails(crafted(tmp_path, build), CorruptFileError)


def test_huge_range_is_not_materialized(tmp_path):
    def build(f):
        group(f, "victim", "range", start=np.int64(0), stop=np.int64(2**62), step=np.int64(1))

    out = h5forge.load(crafted(tmp_path, build))
    assert out["victim"] == range(0, 2**62)


# == 5. links =====================================================================================
SELF_LOOPS = {
    "tuple": lambda g: g.__setitem__("0", g),
    "frozenset": lambda g: g.__setitem__("0", g),
    "range": lambda g: (g.__setitem__("start", g), g.attrs.__setitem__("stop", 1),
                        g.attrs.__setitem__("step", 1)),
    "slice": lambda g: (g.__setitem__("start", g), g.attrs.__setitem__("stop", 1),
                        g.attrs.__setitem__("step", 1)),
    "fractions.Fraction": lambda g: (g.__setitem__("numerator", g),
                                     g.attrs.__setitem__("denominator", 1)),
    "h5forge-box": lambda g: (g.attrs.__setitem__("box", 1), g.__setitem__("value", g)),
}


@pytest.mark.parametrize("class_name", list(SELF_LOOPS))
def test_hard_link_loop_through_immutables_is_a_corrupt_file(class_name, tmp_path):
    def build(f):
        node = group(f, "victim", "int" if class_name == "h5forge-box" else class_name)
        SELF_LOOPS[class_name](node)

    load_fails(crafted(tmp_path, build), CorruptFileError)


def test_mutual_tuple_loop_is_a_corrupt_file(tmp_path):
    def build(f):
        a = group(f, "victim", "tuple")
        b = group(a, "0", "tuple")
        b["0"] = a

    load_fails(crafted(tmp_path, build), CorruptFileError)


def test_deep_nesting_is_a_corrupt_file_not_a_recursion_error(tmp_path):
    def build(f):
        node = group(f, "victim", "tuple")
        for _ in range(3000):
            node = group(node, "0", "tuple")

    load_fails(crafted(tmp_path, build), CorruptFileError, FILE)


@pytest.mark.parametrize("make_link", ["soft", "dangling-soft", "external", "external-self"])
@pytest.mark.parametrize("container", ["dict", "list", "object", "unknown", "no-class", "root"])
def test_soft_and_external_links_are_never_followed(make_link, container, tmp_path, spies):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        _pickle_node(f, "payload", _SystemPayload(tmp_path / "PWNED"))
        f.attrs["class"] = "pickle"
    link = {"soft": lambda: h5py.SoftLink("/sibling"),
            "dangling-soft": lambda: h5py.SoftLink("/nowhere"),
            "external": lambda: h5py.ExternalLink(str(other), "/payload"),
            "external-self": lambda: h5py.ExternalLink(FILE, "/")}[make_link]

    def build(f):
        if container == "root":
            f["victim"] = link()
            return
        if container == "object":
            outer = group(f, "victim", f"{__name__}.RenamedSession")
            node = group(outer, "instance_attributes", "dict",
                         keys=np.array(["0"], dtype=object).astype(STR))
        else:
            class_name = {"dict": "dict", "list": "list", "unknown": "h5forge_no_mod.X",
                          "no-class": None}[container]
            node = group(f, "victim", class_name)
            if container == "dict":
                node.attrs.create("keys", np.array(["0"], dtype=object), dtype=STR)
        node["0"] = link()

    path = crafted(tmp_path, build)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownClassWarning)
        err = load_fails(path, UnsafeContentError, FILE)
    assert "'0'" in str(err) or "'victim'" in str(err)
    assert not (tmp_path / "PWNED").exists()
    assert not dangerous(spies)


def test_hand_made_list_containing_itself(tmp_path):
    def build(f):
        node = group(f, "victim", "list")
        node["0"] = node
        node.attrs["1"] = np.int64(5)

    out = h5forge.load(crafted(tmp_path, build))
    victim = out["victim"]
    assert type(victim) is list and len(victim) == 2
    assert victim[0] is victim and victim[1] == 5
    assert_siblings(out)


def test_root_dict_containing_itself(tmp_path):
    out = h5forge.load(crafted(tmp_path, lambda f: f.__setitem__("victim", f)))
    assert out["victim"] is out
    assert_siblings(out)


def test_dumped_cycles_load_as_cycles(tmp_path):
    a = [1, "x"]
    a.append(a)
    d = {"k": a}
    d["self"] = d
    path = tmp_path / "cycle.h5"
    h5forge.dump({"a": a, "b": a, "d": d}, path)
    out = h5forge.load(path)
    assert out["a"] is out["b"]
    assert out["a"][2] is out["a"]
    assert out["d"]["self"] is out["d"] and out["d"]["k"] is out["a"]


def _laughs(tmp_path, class_name, names, depth):
    """A chain of ``depth`` nodes, each linking every member to the same next node: tiny on
    disk, 2**depth or 3**depth paths for a loader that does not remember decoded nodes."""

    def build(f):
        node = group(f, "victim", class_name)
        for _ in range(depth):
            child = group(node, names[0], class_name)
            for name in names[1:]:
                node[name] = child
            if class_name == "dict":
                node.attrs.create("keys", np.array(names, dtype=object), dtype=STR)
            node = child
        for name in names:
            node.attrs[name] = np.int64(1)
        if class_name == "dict":
            node.attrs.create("keys", np.array(names, dtype=object), dtype=STR)

    return crafted(tmp_path, build)


@pytest.mark.parametrize("class_name,names", [
    ("tuple", ["0", "1", "2"]),
    ("list", ["0", "1", "2"]),
    ("dict", ["a", "b", "c"]),
])
def test_shared_link_dag_of_containers_loads_in_linear_time(class_name, names, tmp_path):
    path = _laughs(tmp_path, class_name, names, depth=40)
    assert load_bounded(path)["outcome"] == "ok"
    out = h5forge.load(path)
    node = out["victim"]
    for _ in range(3):  # sharing is rebuilt: every member is the same object
        first = node[names[0]] if class_name == "dict" else node[0]
        rest = [node[n] for n in names[1:]] if class_name == "dict" else list(node[1:])
        assert all(r is first for r in rest)
        node = first


@pytest.mark.parametrize("class_name,names", [
    ("slice", ["start", "stop", "step"]),
    ("fractions.Fraction", ["numerator", "denominator"]),
])
def test_shared_link_dag_of_immutables_does_not_hang(class_name, names, tmp_path):
    path = _laughs(tmp_path, class_name, names, depth=30)
    load_bounded(path)


def test_fraction_with_huge_terms_does_not_hang(tmp_path):
    rng = random.Random(1)
    bits = 2**24

    def build(f):
        node = group(f, "victim", "fractions.Fraction")
        for name in ("numerator", "denominator"):
            value = rng.getrandbits(bits) | 1 | (1 << (bits - 1))
            dataset(node, name, np.array(hex(value), dtype=object), "int", h5dtype=STR)

    load_bounded(crafted(tmp_path, build))


def test_non_utf8_link_name(tmp_path):
    def build(f):
        node = group(f, "victim", "dict")
        sub = group(node, "x", "dict", keys=np.array([], dtype=object).astype(STR))
        del sub
        node.id.links.create_hard(b"\xff\xfe", node.id, b"x")

    load_fails(crafted(tmp_path, build), CorruptFileError)


def test_named_datatype_member_is_a_corrupt_file(tmp_path):
    def build(f):
        node = group(f, "victim", "list")
        f["victim_type"] = np.dtype("f8")
        node["0"] = f["victim_type"]

    load_fails(crafted(tmp_path, build), CorruptFileError)


# == 6. missing attributes ========================================================================
def test_nodes_without_class_load_as_plain_data_with_a_warning(tmp_path):
    def build(f):
        node = group(f, "victim")
        node.attrs["x"] = np.int64(1)
        node.create_dataset("y", data=[1.5, 2.5])

    path = crafted(tmp_path, build)
    with pytest.warns(UnknownClassWarning) as record:
        out = h5forge.load(path)
    victim = out["victim"]
    assert type(victim) is dict and set(victim) == {"x", "y"}
    assert victim["x"] == 1
    assert np.array_equal(victim["y"], [1.5, 2.5])
    messages = " ".join(str(w.message) for w in record)
    assert "/victim" in messages and "/victim/y" in messages
    assert_siblings(out)


def test_top_level_dataset_without_class_loads_as_data(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(4)
    with pytest.warns(UnknownClassWarning, match="/data"):
        assert np.array_equal(h5forge.load(path, "data"), np.arange(4))


@pytest.mark.parametrize("class_name", ["list", "tuple", "set", "collections.deque"])
def test_packed_sequence_without_element_class(class_name, tmp_path):
    path = crafted(tmp_path, lambda f: dataset(f, "victim", np.arange(3), class_name))
    err = load_fails(path, CorruptFileError)
    assert "element_class" in str(err)


@pytest.mark.parametrize("element_class", ["os.system", "dict", "", "numpy"])
def test_packed_sequence_with_a_bad_element_class(element_class, tmp_path, spies):
    path = crafted(tmp_path, lambda f: dataset(f, "victim", np.arange(3), "list",
                                                element_class=element_class))
    load_fails(path, CorruptFileError)
    assert not dangerous(spies)


def test_packed_records_without_field_classes(tmp_path):
    data = np.zeros(3, dtype=[("a", "f8")])
    path = crafted(tmp_path, lambda f: dataset(f, "victim", data, "list", element_class="dict"))
    err = load_fails(path, CorruptFileError)
    assert "field_classes" in str(err)


def test_packed_records_with_wrong_field_classes(tmp_path):
    data = np.zeros(3, dtype=[("a", "f8")])
    path = crafted(tmp_path, lambda f: dataset(f, "victim", data, "list", element_class="dict",
                                                field_classes=["float", "int"]))
    load_fails(path, CorruptFileError)


def test_packed_sequence_that_is_not_1d(tmp_path):
    path = crafted(tmp_path, lambda f: dataset(f, "victim", np.zeros((2, 2), "i8"), "list",
                                                element_class="int"))
    load_fails(path, CorruptFileError)


@pytest.mark.parametrize("keys", [["a", "b"], ["a"], ["a", "a", "c"], 5],
                         ids=["extra-key", "missing-key", "duplicate", "not-a-list"])
def test_dict_keys_attribute_that_does_not_match_its_members(keys, tmp_path):
    def build(f):
        node = group(f, "victim", "dict")
        node.attrs["a"] = np.int64(1)
        node.attrs["c"] = np.int64(2)
        if isinstance(keys, list):
            node.attrs.create("keys", np.array(keys, dtype=object), dtype=STR)
        else:
            node.attrs["keys"] = keys

    # changed outside h5forge: what is there loads, with a warning naming the difference
    with pytest.warns(MemberMismatchWarning, match=VICTIM) if keys != ["a", "a", "c"] else \
            warnings.catch_warnings():
        out = h5forge.load(crafted(tmp_path, build))
    assert out["victim"] == {"a": 1, "c": 2}


def test_items_layout_dict_without_its_lists(tmp_path):
    path = crafted(tmp_path, lambda f: group(f, "victim", "dict", layout="items"))
    load_fails(path, CorruptFileError)


def test_items_layout_dict_with_lists_of_different_length(tmp_path):
    def build(f):
        node = group(f, "victim", "dict", layout="items")
        dataset(node, "keys", np.array([1, 2], "i8"), "list", element_class="int")
        dataset(node, "values", np.array([1], "i8"), "list", element_class="int")

    with pytest.warns(MemberMismatchWarning, match="2 keys but 1 values"):
        assert h5forge.load(crafted(tmp_path, build))["victim"] == {1: 1}


def test_items_layout_dict_with_unhashable_keys(tmp_path):
    def build(f):
        node = group(f, "victim", "dict", layout="items")
        keys = group(node, "keys", "list")
        group(keys, "0", "list")
        dataset(node, "values", np.array([1], "i8"), "list", element_class="int")

    load_fails(crafted(tmp_path, build), CorruptFileError)


@pytest.mark.parametrize("names", [["a", "b"], ["0", "2"], ["0", "00"], ["-0"], ["1"]])
def test_sequence_group_with_wrongly_named_members(names, tmp_path):
    def build(f):
        node = group(f, "victim", "list")
        for i, name in enumerate(names):
            node.attrs[name] = np.int64(i)

    with pytest.warns(MemberMismatchWarning, match=f"{VICTIM}.*not numbered"):
        assert h5forge.load(crafted(tmp_path, build))["victim"] == list(range(len(names)))


def test_sequence_member_both_inline_and_child(tmp_path):
    def build(f):
        node = group(f, "victim", "list")
        node.attrs["0"] = np.int64(1)
        dataset(node, "0", np.int64(2), "int")

    with pytest.warns(MemberMismatchWarning, match="both an attribute and a child"):
        assert h5forge.load(crafted(tmp_path, build))["victim"] == [1]


def test_user_object_without_instance_attributes(tmp_path):
    path = crafted(tmp_path, lambda f: group(f, "victim", f"{__name__}.RenamedSession"))
    load_fails(path, CorruptFileError, f"{VICTIM}/instance_attributes")


def test_user_object_whose_state_is_not_a_dict(tmp_path):
    def build(f):
        node = group(f, "victim", f"{__name__}.RenamedSession")
        dataset(node, "instance_attributes", np.array([1, 2], "i8"), "list", element_class="int")

    load_fails(crafted(tmp_path, build), CorruptFileError)


@pytest.mark.parametrize("missing", ["data", "fill_value"])
def test_masked_array_missing_a_member(missing, tmp_path):
    def build(f):
        node = group(f, "victim", "numpy.ma.MaskedArray")
        if missing != "data":
            dataset(node, "data", np.arange(3), "numpy.ndarray")
        if missing != "fill_value":
            dataset(node, "fill_value", np.int64(0), "numpy.int64")

    load_fails(crafted(tmp_path, build), CorruptFileError, f"{VICTIM}/{missing}")


def test_object_array_without_shape(tmp_path):
    def build(f):
        node = group(f, "victim", "numpy.ndarray", dtype="object")
        node.attrs["0"] = np.int64(1)

    err = load_fails(crafted(tmp_path, build), CorruptFileError)
    assert "shape" in str(err)


@pytest.mark.parametrize("class_name,present", [
    ("fractions.Fraction", {"numerator": 1}),
    ("range", {"start": 0}),
    ("slice", {"stop": 1, "step": 1}),
])
def test_structured_value_missing_a_member(class_name, present, tmp_path):
    def build(f):
        node = group(f, "victim", class_name)
        for key, value in present.items():
            node.attrs[key] = np.int64(value)

    load_fails(crafted(tmp_path, build), CorruptFileError)


def test_box_without_value(tmp_path):
    path = tmp_path / "box.h5"
    with h5py.File(path, "w") as f:
        f.attrs["class"] = "int"
        f.attrs["box"] = np.int64(1)
        f.attrs["h5forge_format"] = "1"
    load_fails(path, CorruptFileError, "box.h5:/value")


# == 7. wrong dtypes ==============================================================================
def _text(value):
    return np.array(value, dtype=object)


WRONG_DTYPES = {
    "int-float-text": lambda f: dataset(f, "victim", _text("1.5"), "int", h5dtype=STR),
    "int-garbage-text": lambda f: dataset(f, "victim", _text("zz"), "int", h5dtype=STR),
    "int-array": lambda f: dataset(f, "victim", np.arange(3), "int"),
    "float-text": lambda f: dataset(f, "victim", _text("abc"), "float", h5dtype=STR),
    "complex-text": lambda f: dataset(f, "victim", _text("zz"), "complex", h5dtype=STR),
    "bool-array": lambda f: dataset(f, "victim", np.arange(2), "bool"),
    "bytes-text": lambda f: dataset(f, "victim", _text("abc"), "bytes", h5dtype=STR),
    "str-bad-utf8": lambda f: dataset(f, "victim", np.frombuffer(b"\xff\xfe", np.uint8), "str",
                                      encoding="utf-8-surrogatepass"),
    "str-list-bad-utf8": lambda f: dataset(f, "victim", [b"ok", b"\xff\xfe"], "list",
                                           h5dtype=h5py.string_dtype("utf-8"),
                                           element_class="str"),
    "datetime-garbage": lambda f: dataset(f, "victim", _text("not a date"),
                                          "datetime.datetime", h5dtype=STR),
    "datetime-int": lambda f: dataset(f, "victim", np.int64(5), "datetime.datetime"),
    "datetime-bad-zone": lambda f: dataset(f, "victim", _text("2024-01-01T00:00:00"),
                                           "datetime.datetime", h5dtype=STR, tz="No/Such_Zone"),
    "datetime-zone-path-traversal": lambda f: dataset(
        f, "victim", _text("2024-01-01T00:00:00"), "datetime.datetime", h5dtype=STR,
        tz="../../../../../etc/passwd"),
    "datetime-zone-absolute-path": lambda f: dataset(
        f, "victim", _text("2024-01-01T00:00:00"), "datetime.datetime", h5dtype=STR,
        tz="/etc/passwd"),
    "date-out-of-range": lambda f: dataset(f, "victim", _text("2024-13-45"), "datetime.date",
                                           h5dtype=STR),
    "time-garbage": lambda f: dataset(f, "victim", _text("25:99"), "datetime.time", h5dtype=STR),
    "timedelta-short": lambda f: dataset(f, "victim", np.array([1], "i8"), "datetime.timedelta"),
    "timedelta-overflow": lambda f: dataset(f, "victim", np.array([10**12, 0, 0], "i8"),
                                            "datetime.timedelta"),
    "uuid-int": lambda f: dataset(f, "victim", np.int64(5), "uuid.UUID"),
    "uuid-garbage": lambda f: dataset(f, "victim", _text("xyz"), "uuid.UUID", h5dtype=STR),
    "ndarray-datetime64[zz]": lambda f: dataset(f, "victim", np.arange(2), "numpy.ndarray",
                                                dtype="datetime64[zz]"),
    "ndarray-dtype-garbage": lambda f: dataset(f, "victim", np.arange(2), "numpy.ndarray",
                                               dtype="this is not a dtype"),
    "ndarray-dtype-int": lambda f: dataset(f, "victim", np.arange(2), "numpy.ndarray", dtype=5),
    "ndarray-dtype-object-on-dataset": lambda f: dataset(f, "victim", np.arange(2),
                                                         "numpy.ndarray", dtype="object"),
    "ndarray-dtype-float": lambda f: dataset(f, "victim", np.arange(2), "numpy.ndarray",
                                             dtype="f8"),
    "ndarray-unicode-on-ints": lambda f: dataset(f, "victim", np.arange(2), "numpy.ndarray",
                                                 dtype="<U5"),
    "numpy-float32-text": lambda f: dataset(f, "victim", _text("abc"), "numpy.float32",
                                            h5dtype=STR),
    "numpy-datetime64-no-dtype": lambda f: dataset(f, "victim", np.int64(5), "numpy.datetime64"),
    "fraction-text": lambda f: group(f, "victim", "fractions.Fraction", numerator="1",
                                     denominator="x"),
    "fraction-float": lambda f: group(f, "victim", "fractions.Fraction", numerator=1.5,
                                      denominator=np.int64(2)),
    "range-text-stop": lambda f: group(f, "victim", "range", start=np.int64(0), stop="10",
                                       step=np.int64(1)),
    "range-step-zero": lambda f: group(f, "victim", "range", start=np.int64(0),
                                       stop=np.int64(10), step=np.int64(0)),
    "deque-maxlen-text": lambda f: group(f, "victim", "collections.deque", maxlen="abc"),
    "deque-maxlen-negative": lambda f: group(f, "victim", "collections.deque",
                                             maxlen=np.int64(-5)),
    "deque-maxlen-huge": lambda f: group(f, "victim", "collections.deque", maxlen="9" * 30),
    "enum-unknown-member": lambda f: dataset(f, "victim", _text("NOPE"), "re.RegexFlag",
                                             h5dtype=STR),
    "abstract-class": lambda f: group(group(f, "victim", "collections.abc.Callable"),
                                      "instance_attributes", "dict"),
    "int-on-group": lambda f: group(f, "victim", "int"),
    "str-on-group": lambda f: group(f, "victim", "str"),
    "datetime-on-group": lambda f: group(f, "victim", "datetime.datetime"),
    "complex-on-group": lambda f: group(f, "victim", "complex", r=1.0),
    "box-on-dataset": lambda f: dataset(f, "victim", np.arange(2), "h5forge.box"),
}


@pytest.mark.parametrize("case", list(WRONG_DTYPES))
def test_wrong_dtype_or_layout_is_a_corrupt_file(case, tmp_path, spies):
    load_fails(crafted(tmp_path, WRONG_DTYPES[case]), CorruptFileError)
    assert not dangerous(spies)


def _masked_mask_mismatch(f):
    node = group(f, "victim", "numpy.ma.MaskedArray")
    dataset(node, "data", np.arange(3), "numpy.ndarray")
    dataset(node, "mask", np.array([True, False]), "numpy.ndarray")
    dataset(node, "fill_value", np.int64(0), "numpy.int64")


#: Rebuilding raises something other than the errors Decoder.decode used to wrap
#: (ArithmeticError, numpy.ma.MaskError, SystemError from numpy): still a CorruptFileError.
ESCAPING = {
    "fraction-denominator-zero": lambda f: group(f, "victim", "fractions.Fraction",
                                                 numerator=np.int64(1), denominator=np.int64(0)),
    "decimal-garbage": lambda f: dataset(f, "victim", _text("xyz"), "decimal.Decimal",
                                         h5dtype=STR),
    "unicode-code-point-out-of-range": lambda f: dataset(
        f, "victim", np.array([[0xFFFFFFFF]], np.uint32), "numpy.ndarray", dtype="<U1",
        encoding="utf-32"),
    "masked-array-mask-shape": _masked_mask_mismatch,
}


@pytest.mark.parametrize("case", list(ESCAPING))
def test_errors_of_rebuilding_are_wrapped(case, tmp_path):
    load_fails(crafted(tmp_path, ESCAPING[case]), CorruptFileError)


#: Data of the wrong kind that a cast would silently turn into a wrong value.
SILENT = {
    # the bytes of 'abc' would become timedelta(days=97, seconds=98, microseconds=99)
    "timedelta-from-text": lambda f: dataset(f, "victim", _text("abc"), "datetime.timedelta",
                                             h5dtype=STR),
    # a cast to uint8 would give b'\x01,' (1.5 -> 1, 300.0 -> 44)
    "bytes-from-floats": lambda f: dataset(f, "victim", np.array([1.5, 300.0]), "bytes"),
    # 1000 would wrap to 232
    "bytearray-from-ints": lambda f: dataset(f, "victim", np.array([1, 1000], "i8"),
                                             "bytearray"),
    # the dataset's own attributes would become the members, its data dropped
    "dict-on-a-dataset": lambda f: dataset(f, "victim", np.arange(3), "dict",
                                           extra=np.int64(1)),
}


@pytest.mark.parametrize("case", list(SILENT))
def test_wrong_dtype_is_not_silently_converted(case, tmp_path):
    load_fails(crafted(tmp_path, SILENT[case]), CorruptFileError)


# == 8. format version ============================================================================
@pytest.mark.parametrize("version", ["99", "4", "99.0", b"99", np.int64(99), "0", ""])
def test_newer_format_version_is_refused(version, tmp_path):
    path = tmp_path / "future.h5"
    h5forge.dump({"a": 1, "b": [1, 2]}, path)
    with h5py.File(path, "r+") as f:
        f.attrs["h5forge_format"] = version
    err = load_fails(path, FormatVersionError, "future.h5:/")
    assert "1" in str(err)


def test_minor_format_version_is_accepted(tmp_path):
    path = tmp_path / "minor.h5"
    h5forge.dump({"a": 1}, path)
    with h5py.File(path, "r+") as f:
        f.attrs["h5forge_format"] = "1.7"
    assert h5forge.load(path) == {"a": 1}


def test_format_version_on_an_inner_node_and_a_box(tmp_path):
    path = tmp_path / "inner.h5"
    h5forge.dump({"a": 1, "b": [1, "x", [3]]}, path)
    with h5py.File(path, "r+") as f:
        f["b"].attrs["h5forge_format"] = "99"
    load_fails(path, FormatVersionError, "inner.h5:/b")
    load_fails(path, FormatVersionError, "inner.h5:/b", "b")
    box = tmp_path / "box.h5"
    h5forge.dump(5, box)
    with h5py.File(box, "r+") as f:
        f.attrs["h5forge_format"] = "99"
    load_fails(box, FormatVersionError, "box.h5:/")


# == 9. encode errors before anything is written ==================================================
@contextlib.contextmanager
def _unstorable(kind):
    """An object no codec can store, closed afterwards."""
    if kind == "lambda":
        yield lambda: 1
    elif kind == "open-file":
        with open(os.devnull, "rb") as handle:
            yield handle
    elif kind == "socket":
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:  # pragma: no cover - sandbox without sockets
            pytest.skip(f"cannot create a socket here: {exc}")
        with sock:
            yield sock
    elif kind == "generator":
        yield (i for i in range(3))
    elif kind == "module":
        yield os
    elif kind == "h5py-file":
        with h5py.File(os.devnull + ".h5", "w", driver="core", backing_store=False) as f:
            yield f
    elif kind in ("lock", "rlock"):
        yield threading.Lock() if kind == "lock" else threading.RLock()
    else:  # pragma: no cover
        raise AssertionError(kind)


UNSTORABLE = ["lambda", "open-file", "socket", "generator", "module", "h5py-file", "lock",
              "rlock"]


@pytest.mark.parametrize("kind", UNSTORABLE)
def test_unstorable_object_raises_codec_error_naming_its_place(kind, tmp_path):
    path = tmp_path / "new.h5"
    with _unstorable(kind) as bad:
        with pytest.raises(CodecError) as info:
            h5forge.dump({"runs": [0, 1, 2, {"callback": bad}]}, path)
    assert "obj['runs'][3]['callback']" in str(info.value), info.value
    assert isinstance(info.value, TypeError)  # CodecError is also a TypeError
    assert not path.exists()
    assert os.listdir(tmp_path) == []  # no temporary file left behind either


@pytest.mark.parametrize("kind", UNSTORABLE)
def test_unstorable_attribute_of_a_user_object(kind, tmp_path):
    path = tmp_path / "new.h5"
    with _unstorable(kind) as bad:
        with pytest.raises(CodecError) as info:
            h5forge.dump({"runs": [0, 1, 2, _Run(bad)]}, path)
    assert "obj['runs'][3].callback" in str(info.value), info.value
    assert not path.exists()


@pytest.mark.parametrize("kind", UNSTORABLE)
def test_failed_dump_leaves_an_existing_file_unchanged(kind, tmp_path):
    path = tmp_path / "existing.h5"
    h5forge.dump({"keep": [1, 2, 3], "name": "kept"}, path)
    before = path.read_bytes()
    with _unstorable(kind) as bad:
        obj = {"runs": [0, 1, 2, {"callback": bad}]}
        with pytest.raises(CodecError):
            h5forge.dump(obj, path, overwrite=True)
        with pytest.raises(CodecError):
            h5forge.dump(obj, path, "sub")
        with pytest.raises(CodecError):
            h5forge.dump(obj, path, "keep", overwrite=True)
        with h5py.File(path, "r+") as f:
            with pytest.raises(CodecError):
                h5forge.dump(obj, f, "sub")
            assert "sub" not in f and f.id.valid
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["existing.h5"]
    assert h5forge.load(path) == {"keep": [1, 2, 3], "name": "kept"}


def test_unstorable_deep_inside_shared_and_nested_structures(tmp_path):
    path = tmp_path / "new.h5"
    shared = {"cb": (i for i in range(2))}
    with pytest.raises(CodecError) as info:
        h5forge.dump({"a": [shared], "b": (1, {"x": [None, shared]})}, path)
    assert "obj['a'][0]['cb']" in str(info.value)
    assert not path.exists()


@pytest.mark.parametrize("make,same", [
    (lambda: re.compile("ab+", re.I), lambda a, b: a == b),
    (lambda: array_module.array("i", [1, 2, 3]), lambda a, b: a == b),
    (lambda: functools.partial(int, "5"),
     lambda a, b: (a.func, a.args, a.keywords) == (b.func, b.args, b.keywords)),
    (lambda: operator.itemgetter(1), lambda a, b: repr(a) == repr(b)),
    (lambda: threading.Event(), lambda a, b: a.is_set() == b.is_set()),
], ids=["re.Pattern", "array.array", "functools.partial", "operator.itemgetter",
        "threading.Event"])
def test_objects_with_c_level_state_round_trip_or_are_refused(make, same, tmp_path):
    """Dump must not write an object whose state it cannot see: it either stores it so that it
    loads back equal, or refuses it with a CodecError before writing anything."""
    obj = make()
    path = tmp_path / "c.h5"
    try:
        h5forge.dump({"value": obj}, path)
    except CodecError as exc:
        assert "obj['value']" in str(exc)
        assert not path.exists()
        return
    out = h5forge.load(path, trusted_modules=[type(obj).__module__])["value"]
    assert type(out) is type(obj) and same(out, obj)


# == 10. targets and paths ========================================================================
def test_missing_path_inside_a_file(tmp_path):
    path = tmp_path / "data.h5"
    h5forge.dump({"a": 1, "b": {"c": [1, 2]}}, path)
    err = load_fails(path, NodeNotFoundError, "data.h5:/nope", "nope")
    assert isinstance(err, KeyError)
    load_fails(path, NodeNotFoundError, "data.h5:/b/nope/deeper", "b/nope/deeper")
    load_fails(path, NodeNotFoundError, "data.h5:/keys", "keys")  # format metadata is no member
    with h5py.File(path, "r") as f:
        load_fails(f["b"], NodeNotFoundError, "data.h5:/b/zz", "zz")


def test_missing_file(tmp_path):
    load_fails(tmp_path / "absent.h5", NodeNotFoundError, "absent.h5")
    assert not (tmp_path / "absent.h5").exists()


@pytest.mark.parametrize("content", [b"", b"hello, not HDF5", b"\x89HDF\r\n\x1a\n" + b"\0" * 40,
                                     pickle.dumps({"a": 1})],
                         ids=["empty", "text", "truncated-signature", "pickle-file"])
def test_non_hdf5_file(content, tmp_path, spies):
    path = tmp_path / "fake.h5"
    path.write_bytes(content)
    with pytest.raises(H5ForgeError) as info:
        h5forge.load(path)
    assert "fake.h5" in str(info.value)
    assert not dangerous(spies)


@pytest.mark.parametrize("target", [5, None, 1.5, b"bytes-path", ["a.h5"]],
                         ids=["int", "None", "float", "bytes", "list"])
def test_target_of_the_wrong_type(target, tmp_path):
    with pytest.raises(TargetError):
        h5forge.load(target)
    with pytest.raises(TargetError):
        h5forge.dump({"a": 1}, target)
    assert os.listdir(tmp_path) == []


def test_closed_h5py_target(tmp_path):
    path = tmp_path / "data.h5"
    h5forge.dump({"a": 1}, path)
    f = h5py.File(path, "r")
    f.close()
    with pytest.raises(TargetError):
        h5forge.load(f)
    with pytest.raises(TargetError):
        h5forge.dump({"b": 2}, f, "b")


def test_named_datatype_at_the_load_path(tmp_path):
    path = tmp_path / "dt.h5"
    with h5py.File(path, "w") as f:
        f["t"] = np.dtype("f8")
    load_fails(path, CorruptFileError, "dt.h5:/t", "t")


def test_error_classes_are_h5forge_errors():
    for cls in (CodecError, CorruptFileError, FormatVersionError, NodeNotFoundError,
                ResourceLimitError, TargetError, UnsafeContentError):
        assert issubclass(cls, H5ForgeError)
    assert issubclass(UnknownClassWarning, Warning)


def test_load_path_that_is_a_soft_or_external_link_is_refused(tmp_path):
    path = tmp_path / "links.h5"
    h5forge.dump({"a": [1, 2]}, path, "real")
    with h5py.File(path, "r+") as f:
        f["soft"] = h5py.SoftLink("/real")
        f["external"] = h5py.ExternalLink("other.h5", "/")
    for name in ("soft", "external"):
        with pytest.raises(UnsafeContentError, match=name):
            h5forge.load(path, name)


@pytest.mark.parametrize("class_name,data", [("str", 5), ("numpy.float32", [1.0, 2.0]),
                                             ("pathlib.PurePosixPath", 3)])
def test_leaf_of_the_wrong_shape_or_kind_is_refused(tmp_path, class_name, data):
    path = tmp_path / "kind.h5"
    with h5py.File(path, "w") as f:
        f["victim"] = np.asarray(data, dtype="f4" if "float" in class_name else None)
        f["victim"].attrs["class"] = class_name
    with pytest.raises(CorruptFileError, match="victim"):
        h5forge.load(path, "victim")
