"""neo object trees (Block, Segment, Group and the data objects): round trips, the committed
golden file, shared references as hard links, loading without neo (UnknownObjects) and back,
dataset plans, and errors for what cannot be stored or loaded."""

from __future__ import annotations

import datetime as dt
import importlib.util
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.errors import CodecError, CorruptFileError
from tests.store.equality import assert_same
from tests.store.golden_objects import DATA

neo = pytest.importorskip("neo")
pq = pytest.importorskip("quantities")

GOLDEN = DATA / "neo_v1.h5"  # format 1: every neo object a group
GOLDEN_V3 = DATA / "neo_v3.h5"  # format 3: plain data objects one dataset each


def _golden_module():
    spec = importlib.util.spec_from_file_location("make_neo_golden",
                                                  DATA / "make_neo_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_block = _golden_module().make_block


# -- comparison -------------------------------------------------------------------------------
_CONTAINER_LISTS = {
    neo.Block: ("segments", "groups"),
    neo.Segment: ("analogsignals", "irregularlysampledsignals", "spiketrains", "events",
                  "epochs", "imagesequences"),
    neo.Group: ("analogsignals", "irregularlysampledsignals", "spiketrains", "events", "epochs",
                "imagesequences", "segments", "groups"),
}
_DATA_ATTRS = {
    neo.AnalogSignal: ("t_start", "sampling_rate"),
    neo.IrregularlySampledSignal: ("times",),
    neo.SpikeTrain: ("t_start", "t_stop", "sampling_rate", "left_sweep", "waveforms"),
    neo.Event: ("labels",),
    neo.Epoch: ("durations", "labels"),
    neo.ImageSequence: ("t_start", "sampling_rate", "spatial_scale"),
}


def assert_quantity(a, b, where):
    """Same magnitudes (dtype, shape, values) and the same units; None only with None."""
    if a is None or b is None:
        assert a is None and b is None, f"{where}: {a!r} != {b!r}"
        return
    if isinstance(a, pq.Quantity):
        assert isinstance(b, pq.Quantity), f"{where}: {type(b).__name__} is not a Quantity"
        assert a.dimensionality == b.dimensionality, \
            f"{where}: units {a.dimensionality} != {b.dimensionality}"
        a, b = a.magnitude, b.magnitude
    assert_same(np.asarray(a), np.asarray(b), where)


def assert_same_neo(a, b, where="block", seen=None):
    """``b`` equals ``a``: same neo classes, data, units, time axes, text, datetimes,
    annotations and array annotations, and the same sharing: an object reached twice in ``a``
    (a signal in a segment and a group, a back-reference) is one object in ``b`` too."""
    seen = {} if seen is None else seen
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if id(a) in seen:
        assert seen[id(a)][1] is b, f"{where}: a shared object was copied"
        return
    seen[id(a)] = (a, b)
    for attr in ("name", "description", "file_origin"):
        assert getattr(a, attr) == getattr(b, attr), f"{where}.{attr}"
    assert_same(a.annotations, b.annotations, f"{where}.annotations")
    if type(a) in _CONTAINER_LISTS:
        if not isinstance(a, neo.Group):
            for attr in ("file_datetime", "rec_datetime", "index"):
                assert_same(getattr(a, attr), getattr(b, attr), f"{where}.{attr}")
        else:
            assert a.allowed_types == b.allowed_types, f"{where}.allowed_types"
        for name in _CONTAINER_LISTS[type(a)]:
            items_a, items_b = list(getattr(a, name)), list(getattr(b, name))
            assert len(items_a) == len(items_b), f"{where}.{name}: length"
            for i, (x, y) in enumerate(zip(items_a, items_b)):
                assert_same_neo(x, y, f"{where}.{name}[{i}]", seen)
        parent_a = getattr(a, "block", None)
        if parent_a is not None:
            assert seen.get(id(parent_a), (None, None))[1] is b.block, f"{where}.block"
        return
    assert_quantity(a, b, f"{where}.magnitude")
    for attr in _DATA_ATTRS[type(a)]:
        assert_quantity(getattr(a, attr), getattr(b, attr), f"{where}.{attr}")
    assert_same(dict(a.array_annotations), dict(b.array_annotations),
                f"{where}.array_annotations")
    if a.segment is not None:
        assert b.segment is not None, f"{where}.segment"
        if id(a.segment) in seen:
            assert seen[id(a.segment)][1] is b.segment, f"{where}.segment"
        else:
            assert_same_neo(a.segment, b.segment, f"{where}.segment", seen)
    else:
        assert b.segment is None, f"{where}.segment"


def roundtrip(obj, tmp_path, **load_kwargs):
    path = tmp_path / "neo.h5"
    h5forge.dump(obj, path, overwrite=True)
    return h5forge.load(path, **load_kwargs)


def hide_neo(monkeypatch):
    """Make ``import neo`` and ``import quantities`` fail, as if they were not installed."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("neo", "quantities"):
            monkeypatch.setitem(sys.modules, name, None)


# -- the golden files --------------------------------------------------------------------------
@pytest.mark.parametrize("golden", [GOLDEN, GOLDEN_V3], ids=["v1", "v3"])
def test_golden_file_loads_to_the_objects_the_script_builds(golden):
    expected = make_block()
    block = h5forge.load(golden)
    assert_same_neo(expected, block)
    # relationships are shared references, not copies
    seg0, seg1 = block.segments
    probe, lfps = block.groups
    unit_a, unit_b = probe.groups
    assert unit_a.spiketrains[0] is seg0.spiketrains[0]
    assert unit_a.spiketrains[1] is seg1.spiketrains[0]
    assert unit_b.spiketrains[1] is seg1.spiketrains[1]
    assert lfps.analogsignals[1] is seg1.analogsignals[0]
    assert seg1.block is block and probe.block is block and unit_a.block is None
    assert seg1.analogsignals[0].segment is seg1 and seg0.epochs[0].segment is seg0
    assert unit_a.allowed_types == (neo.SpikeTrain,)
    lfp = seg1.analogsignals[0]
    assert lfp.dtype == np.float32 and lfp.units == pq.mV
    assert lfp.t_start == 12.5 * pq.s and lfp.sampling_rate == 1 * pq.kHz
    assert lfp.array_annotations["channel_names"].tolist() == ["CA1-a", "CA1-b", "DG"]
    assert block.rec_datetime == dt.datetime(2024, 5, 1, 9, 30, 15, 250000)
    assert golden.stat().st_size < 200_000


def test_golden_file_is_plain_hdf5():
    """Units, time axes and names are plain attributes; shared objects are hard links."""
    with h5py.File(GOLDEN, "r") as f:
        assert f.attrs["class"] == "neo.Block" and f.attrs["h5forge_format"] == "1"
        assert f.attrs["name"] == "session M12"
        lfp = f["segments/1/analogsignals/0"]
        assert lfp.attrs["class"] == "neo.AnalogSignal" and lfp.attrs["name"] == "lfp 1"
        signal = lfp["signal"]
        assert signal.dtype == np.float32 and signal.shape == (40, 3)
        assert dict(signal.attrs) == {"class": "neo.quantity", "units": "mV", "t_start": 12.5,
                                      "t_start_units": "s", "sampling_rate": 1.0,
                                      "sampling_rate_units": "kHz"}
        train = f["segments/0/spiketrains/0"]
        assert train["times"].attrs["units"] == "ms" and train["times"].attrs["t_stop"] == 10
        assert train["waveforms"].shape == (5, 2, 8) and train["waveforms"].attrs["units"] == "uV"
        assert f["segments/0/epochs/0/durations"].attrs["units"] == "ms"
        assert f["segments/0/events/0/labels"].asstr()[()].tolist() == ["cue", "lick", "reward"]
        irregular = f["segments/0/irregularlysampledsignals/0"]
        assert irregular["times"].attrs["units"] == "s" and irregular["signal"].attrs[
            "units"] == "degC"
        # one object, several names: hard links
        assert f["groups/1/analogsignals/1"] == f["segments/1/analogsignals/0"]
        assert f["groups/0/groups/0/spiketrains/0"] == f["segments/0/spiketrains/0"]
        assert f["segments/1/analogsignals/0/segment"] == f["segments/1"]
        assert f["segments/1/block"] == f["/"]
        classes = set()
        f.visititems(lambda name, obj: classes.add(obj.attrs.get("class")))
    neo_classes = {c for c in classes if c.startswith("neo")}
    assert neo_classes == {"neo.Segment", "neo.Group", "neo.AnalogSignal", "neo.quantity",
                           "neo.IrregularlySampledSignal", "neo.SpikeTrain", "neo.Event",
                           "neo.Epoch", "neo.ImageSequence"}  # stable public names


def test_golden_file_loads_without_neo(monkeypatch):
    expected = np.asarray(make_block().segments[1].analogsignals[0])
    hide_neo(monkeypatch)
    with pytest.warns(h5forge.UnknownClassWarning, match="needs neo") as record:
        block = h5forge.load(GOLDEN)
    assert len(record) == 1  # one warning per load, not one per neo object
    assert isinstance(block, h5forge.UnknownObject) and block.class_name == "neo.Block"
    state = block.state
    assert state["name"] == "session M12" and state["index"] == 7
    assert state["rec_datetime"] == dt.datetime(2024, 5, 1, 9, 30, 15, 250000)
    assert state["annotations"]["rig"] == {"name": "rig3", "amplifier": "Intan", "ground": None}
    seg0, seg1 = state["segments"]
    assert seg1.class_name == "neo.Segment" and seg1.state["block"] is block
    lfp = seg1.state["analogsignals"][0]
    assert lfp.class_name == "neo.AnalogSignal" and lfp.state["segment"] is seg1
    signal = lfp.state["signal"]
    assert signal.kind == "dataset" and signal.class_name == "neo.quantity"
    assert signal.state.dtype == np.float32 and signal.state.shape == (40, 3)
    assert signal.attrs == {"units": "mV", "t_start": 12.5, "t_start_units": "s",
                            "sampling_rate": 1.0, "sampling_rate_units": "kHz"}
    np.testing.assert_array_equal(signal.state, expected)
    assert lfp.state["annotations"] == {"filtered": False, "gain": 2.0}
    assert lfp.state["array_annotations"]["channel_names"].tolist() == ["CA1-a", "CA1-b", "DG"]
    train = seg0.state["spiketrains"][0].state
    assert train["waveforms"].state.shape == (5, 2, 8) and train["times"].attrs["t_stop"] == 10.0
    assert seg0.state["events"][0].state["labels"].tolist() == ["cue", "lick", "reward"]
    probe, lfps = state["groups"]
    assert lfps.state["analogsignals"][1] is lfp  # sharing survives too
    assert probe.state["groups"][0].state["allowed_types"] == ["neo.SpikeTrain"]


def test_without_neo_alone_data_datasets_still_load_as_quantities(monkeypatch):
    for name in list(sys.modules):
        if name.split(".")[0] == "neo":
            monkeypatch.setitem(sys.modules, name, None)
    with pytest.warns(h5forge.UnknownClassWarning, match="needs neo"):
        block = h5forge.load(GOLDEN)
    signal = block.state["segments"][0].state["analogsignals"][0].state["signal"]
    assert isinstance(signal, h5forge.UnknownObject) and signal.attrs["t_start_units"] == "s"
    alone = h5forge.load(GOLDEN, "segments/0/analogsignals/0/signal")
    assert type(alone) is pq.Quantity and alone.units == pq.mV


@pytest.mark.parametrize("golden", [GOLDEN, GOLDEN_V3], ids=["v1", "v3"])
def test_unknown_objects_dump_back_and_load_as_neo(tmp_path, monkeypatch, golden):
    path = tmp_path / "resaved.h5"
    with monkeypatch.context() as patch:
        hide_neo(patch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", h5forge.UnknownClassWarning)
            unknown = h5forge.load(golden)
        h5forge.dump(unknown, path)  # a program without neo saves the file again
    assert_same_neo(make_block(), h5forge.load(path))


def test_a_data_dataset_alone_loads_as_a_quantity():
    signal = h5forge.load(GOLDEN, "segments/1/analogsignals/0/signal")
    assert type(signal) is pq.Quantity and signal.units == pq.mV and signal.shape == (40, 3)
    assert_quantity(pq.Quantity(make_block().segments[1].analogsignals[0]), signal, "signal")


# -- round trips --------------------------------------------------------------------------------
def test_roundtrip_of_the_golden_block(tmp_path):
    block = make_block()
    assert_same_neo(block, roundtrip(block, tmp_path))
    assert_same_neo(block, roundtrip(block, tmp_path, lazy=True))


def test_roundtrip_of_loose_objects_and_edge_cases(tmp_path):
    sig = neo.AnalogSignal(np.ones(4), units="uV", sampling_rate=10 * pq.Hz,
                           description="x" * 300)  # a long description is a dataset
    train = neo.SpikeTrain([], units="s", t_stop=1.0)  # empty, no waveforms
    event = neo.Event(np.array([], float) * pq.ms)  # no labels
    epoch = neo.Epoch([1.0] * pq.min, durations=[2.0] * pq.s, labels=np.array(["é ü"]))
    irregular = neo.IrregularlySampledSignal([1, 2] * pq.ms, np.zeros((2, 3)) * pq.m ** 2 / pq.s)
    views = neo.Group(allowed_types=[neo.ChannelView, neo.Event])
    anything = neo.Group(allowed_types=[])
    tree = {"sig": sig, "objects": [train, event, epoch, irregular], "again": sig,
            "empty": neo.Block(), "segment": neo.Segment(), "views": views,
            "anything": anything}
    out = roundtrip(tree, tmp_path)
    assert out["again"] is out["sig"]
    assert out["views"].allowed_types == (neo.ChannelView, neo.Event)
    assert out["anything"].allowed_types == ()
    for key in ("sig", "empty", "segment", "views", "anything"):
        assert_same_neo(tree[key], out[key], key)
    for i, (a, b) in enumerate(zip(tree["objects"], out["objects"])):
        assert_same_neo(a, b, f"objects[{i}]")
    assert str(out["objects"][3].units.dimensionality) == "m**2/s"


def test_a_signal_brings_its_segment_and_block(tmp_path):
    """Back-references are part of the tree: dumping a signal stores its segment and block,
    and the loaded signal's segment holds that very signal."""
    block = make_block()
    lfp = block.segments[1].analogsignals[0]
    out = roundtrip({"lfp": lfp}, tmp_path)["lfp"]
    assert out.segment.analogsignals[0] is out
    assert out.segment.block.segments[1] is out.segment
    assert_same_neo(block, out.segment.block)


def test_example_io_block_round_trips(tmp_path):
    block = neo.io.ExampleIO("example.fake").read_block()
    assert_same_neo(block, roundtrip(block, tmp_path))


# -- dataset plans -----------------------------------------------------------------------------
def test_configuration_lists_and_chunks_the_signal_datasets(tmp_path):
    block = make_block()
    plan = h5forge.get_default_configuration(block)
    locations = set(plan.dataset_configurations)
    # annotated objects are groups (their data a member), plain ones a dataset each
    assert {"segments/0/analogsignals/0/signal", "segments/1/analogsignals/1",
            "segments/0/spiketrains/0/waveforms", "segments/1/epochs/0/durations",
            "segments/0/imagesequences/0", "segments/1/spiketrains/1",
            "segments/0/irregularlysampledsignals/0/times"} <= locations
    assert not any(loc.startswith("groups/") for loc in locations)  # links, not copies
    entry = plan["segments/1/analogsignals/0/signal"]
    assert entry.full_shape == (40, 3) and entry.dtype == np.float32
    entry.update(chunk_shape=(8, 3), buffer_shape=(40, 3))
    path = tmp_path / "chunked.h5"
    h5forge.dump(block, path, configuration=plan)
    with h5py.File(path, "r") as f:
        assert f["segments/1/analogsignals/0/signal"].chunks == (8, 3)
        assert f["segments/0/analogsignals/0/signal"].chunks is not None
        assert f["segments/1/analogsignals/1"].chunks is not None  # a plain signal's dataset
    assert_same_neo(block, h5forge.load(path))


# -- errors ------------------------------------------------------------------------------------
def test_unsupported_neo_objects_raise_codec_errors(tmp_path):
    sig = neo.AnalogSignal(np.ones((3, 2)), units="mV", sampling_rate=1 * pq.Hz)
    group = neo.Group()
    group.add(neo.ChannelView(sig, [0]))
    block = neo.Block()
    block.groups.append(group)
    with pytest.raises(CodecError, match=r"obj\.groups\[0\]\.channelviews\[0\].*resolve\(\)"):
        h5forge.dump(block, tmp_path / "x.h5")
    lazy = neo.io.ExampleIO("example.fake").read_block(lazy=True)
    with pytest.raises(CodecError, match=r"obj\.segments\[0\]\.analogsignals\[0\].*load"):
        h5forge.dump(lazy, tmp_path / "x.h5")
    segment = neo.Segment()
    with pytest.raises(CodecError, match=r"obj\['trains'\].*list\(segment\.spiketrains\)"):
        h5forge.dump({"trains": segment.spiketrains}, tmp_path / "x.h5")

    class MySignal(neo.AnalogSignal):
        pass

    with pytest.raises(CodecError, match=r"obj\[0\].*subclasses a neo class"):
        h5forge.dump([MySignal([1.0], units="mV", sampling_rate=1 * pq.Hz)], tmp_path / "x.h5")
    train = neo.SpikeTrain([0.1], t_stop=1.0, units="s")
    train.waveforms = np.zeros((1, 1, 3))  # no units
    with pytest.raises(CodecError, match=r"obj\.waveforms: expected a quantities\.Quantity"):
        h5forge.dump(train, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()  # nothing is written when the plan fails


def _edit(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f)


_SIGNAL = "segments/0/analogsignals/0/signal"


def _replace(f, name, data, **attrs):
    old = dict(f[name].attrs)
    del f[name]
    f[name] = data
    f[name].attrs.update({**old, **attrs})


@pytest.mark.parametrize("edit, message", [
    (lambda f: _replace(f, _SIGNAL, np.zeros(4)), "must be 2-D"),
    (lambda f: _replace(f, _SIGNAL, np.array(["a", "b"], dtype=object)), "must be numbers"),
    (lambda f: f[_SIGNAL].attrs.__setitem__("units", "9**9**9**9**9"), "not a unit expression"),
    (lambda f: f[_SIGNAL].attrs.__setitem__("units", "furlongs_per_fortnight"),
     "quantities defines no unit"),
    (lambda f: f[_SIGNAL].attrs.__delitem__("units"), "'units' is missing"),
    (lambda f: f[_SIGNAL].attrs.__delitem__("sampling_rate"), "'sampling_rate' is missing"),
    (lambda f: f[_SIGNAL].attrs.__setitem__("t_start", "soon"), "'t_start' must be a number"),
    (lambda f: f[_SIGNAL].attrs.__setitem__("class", "numpy.ndarray"), "expected a 'neo.quantity'"),
    (lambda f: f["segments/0/analogsignals/0"].attrs.__setitem__("colour", "red"),
     r"no member\(s\) \['colour'\]"),
    (lambda f: f["segments/0"].attrs.__setitem__("analogsignals", 3), "must be a list"),
    (lambda f: f["segments/0"].attrs.__setitem__("block", "me"), "must be a Block"),
    (lambda f: f["groups/0/groups/0"].attrs.__setitem__("allowed_types", ["os.system"]),
     "not neo classes"),
    (lambda f: f.copy(f["segments/0/analogsignals/0"], "segments/0/spiketrains/2"),
     "Object is a"),  # an AnalogSignal among the spike trains (neo's own TypeError)
])
def test_crafted_files_raise_corrupt_file_error(tmp_path, edit, message):
    path = tmp_path / "bad.h5"
    h5forge.dump(make_block(), path)
    _edit(path, edit)
    with pytest.raises(CorruptFileError, match=message):
        h5forge.load(path)


def test_units_whose_symbol_text_does_not_read_back_are_written_by_name(monkeypatch):
    from h5forge.store.codecs import _units_text

    monkeypatch.setattr(_units_text, "_TEXTS", {})  # texts found before the patch
    monkeypatch.setattr(type(pq.mV.dimensionality), "string", property(lambda self: "m V"))
    node = h5forge.store.plan(neo.AnalogSignal([1.0], units="mV", sampling_rate=1 * pq.Hz))
    assert node.attrs["units"] == "millivolt"
    grouped = h5forge.store.plan(neo.AnalogSignal([1.0], units="mV", sampling_rate=1 * pq.Hz,
                                                  gain=2))
    assert grouped.members["signal"].attrs["units"] == "millivolt"


def test_importing_h5forge_does_not_import_neo():
    code = ("import sys, h5forge, numpy as np; import h5forge.store.codecs.neo as c; "
            "h5forge.store.plan({'a': np.zeros(3), 'b': [1, 2], 'c': 1j}); "
            "assert c.NeoCodec().matches(dict) is False; "
            "bad = [m for m in sys.modules if m.split('.')[0] == 'neo']; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
