"""neo in format 3: a plain data object (AnalogSignal, SpikeTrain without waveforms,
ImageSequence; no annotations) is one dataset, and back-references implied by the parent's
list are not stored. The committed ``neo_v3.h5`` read with plain h5py and without neo, when
the lighter layout applies and when it does not, crafted files, and updates refused."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest

import h5forge
from h5forge.errors import CorruptFileError, UpdateError
from tests.store.test_neo import (
    GOLDEN_V3,
    assert_same_neo,
    hide_neo,
    make_block,
    roundtrip,
)

neo = pytest.importorskip("neo")
pq = pytest.importorskip("quantities")

_CURRENT = "segments/0/analogsignals/1"  # a plain AnalogSignal: one dataset


# -- the golden file, read without h5forge ------------------------------------------------------
def test_golden_v3_is_plain_hdf5():
    with h5py.File(GOLDEN_V3, "r") as f:
        assert f.attrs["class"] == "neo.Block" and f.attrs["h5forge_format"] == "3"
        current = f[_CURRENT]
        assert isinstance(current, h5py.Dataset)  # the signal itself: no group around it
        assert current.dtype == np.int16 and current.shape == (10, 1)
        np.testing.assert_array_equal(current[:, 0], np.arange(10))
        assert dict(current.attrs) == {
            "class": "neo.AnalogSignal", "units": "pA", "name": "current 0",
            "t_start": 0.0, "t_start_units": "ms", "sampling_rate": 2.0,
            "sampling_rate_units": "1/ms"}
        frames = f["segments/0/imagesequences/0"]
        assert frames.shape == (3, 4, 5) and frames.attrs["spatial_scale_units"] == "um"
        train_b = f["segments/1/spiketrains/1"]
        assert isinstance(train_b, h5py.Dataset) and train_b.attrs["t_stop"] == 5.0
        assert "sampling_rate" not in train_b.attrs  # None: no attribute
        # objects with annotations keep the group layout (their data a member)
        lfp = f["segments/1/analogsignals/0"]
        assert isinstance(lfp, h5py.Group) and lfp["signal"].attrs["units"] == "mV"
        assert isinstance(f["segments/0/spiketrains/0"], h5py.Group)  # has waveforms
        # one object, several names; back-references the lists imply are not stored
        assert f["groups/0/groups/1/spiketrains/1"] == train_b
        assert f["groups/1/analogsignals/1"] == lfp
        assert "segment" not in lfp and "block" not in f["segments/1"]
        assert "block" not in f["groups/0"]


def test_golden_v3_loads_without_neo(monkeypatch):
    hide_neo(monkeypatch)
    with pytest.warns(h5forge.UnknownClassWarning, match="needs neo") as record:
        block = h5forge.load(GOLDEN_V3)
    assert len(record) == 1
    seg0, seg1 = block.state["segments"]
    current = seg0.state["analogsignals"][1]
    assert isinstance(current, h5forge.UnknownObject) and current.kind == "dataset"
    assert current.class_name == "neo.AnalogSignal"
    np.testing.assert_array_equal(current.state[:, 0], np.arange(10))
    assert current.attrs == {"units": "pA", "name": "current 0", "t_start": 0.0,
                             "t_start_units": "ms", "sampling_rate": 2.0,
                             "sampling_rate_units": "1/ms"}
    lfp = seg1.state["analogsignals"][0]
    assert lfp.kind == "group" and "segment" not in lfp.state  # implied, not stored
    assert lfp.state["signal"].attrs["t_start"] == 12.5
    unit_b = block.state["groups"][0].state["groups"][1]
    assert unit_b.state["spiketrains"][1] is seg1.state["spiketrains"][1]  # still shared


def test_a_plain_object_loaded_alone_has_no_segment():
    """Loading a sub-tree loads that sub-tree: the segment holding it is not part of it."""
    sig = h5forge.load(GOLDEN_V3, _CURRENT)
    assert type(sig) is neo.AnalogSignal and sig.segment is None
    assert sig.units == pq.pA and sig.sampling_rate == 2 / pq.ms and sig.name == "current 0"


# -- when the lighter layout applies ------------------------------------------------------------
def _sig(**kwargs):
    return neo.AnalogSignal(np.arange(6, dtype=np.float32).reshape(3, 2), units="mV",
                            sampling_rate=30 * pq.kHz, t_start=2 * pq.s, **kwargs)


def test_a_bench_like_block_is_one_dataset_per_signal(tmp_path):
    block = neo.Block(name="b")
    groups = [neo.Group(name=f"channel {c}") for c in range(2)]
    block.groups.extend(groups)
    for s in range(3):
        segment = neo.Segment(name=f"trial {s}", index=s)
        block.segments.append(segment)
        for c in range(2):
            signal = _sig(name=f"ch{c}")
            segment.analogsignals.append(signal)
            groups[c].analogsignals.append(signal)
    path = tmp_path / "b.h5"
    h5forge.dump(block, path)
    with h5py.File(path, "r") as f:
        datasets, groups_seen = [], []
        f.visititems(lambda n, o: (datasets if isinstance(o, h5py.Dataset)
                                   else groups_seen).append(n))
        assert len(datasets) == 6  # the signals only, each once
        assert all(f[n].attrs["class"] == "neo.AnalogSignal" for n in datasets)
        assert f["groups/1/analogsignals/2"] == f["segments/2/analogsignals/1"]
        for name in groups_seen:
            assert "segment" not in f[name] and "block" not in f[name]
    out = h5forge.load(path)
    assert_same_neo(block, out)
    assert out.groups[1].analogsignals[2] is out.segments[2].analogsignals[1]
    assert out.segments[2].analogsignals[1].segment is out.segments[2]
    assert out.segments[2].block is out and out.groups[0].block is out


@pytest.mark.parametrize("obj", [
    _sig(name="n" * 300),  # too long for an attribute
    _sig(gain=2.0),  # annotations
    _sig(array_annotations={"channel": np.array([1, 2])}),
    neo.SpikeTrain([0.1, 0.2], units="s", t_stop=1.0,
                   waveforms=np.zeros((2, 1, 3)) * pq.uV),
], ids=["long name", "annotations", "array annotations", "waveforms"])
def test_objects_with_more_than_attributes_hold_keep_the_group_layout(tmp_path, obj):
    path = tmp_path / "g.h5"
    h5forge.dump({"x": obj}, path)
    with h5py.File(path, "r") as f:
        assert isinstance(f["x"], h5py.Group)
    assert_same_neo(obj, h5forge.load(path)["x"])


def test_plain_objects_of_every_lean_kind_round_trip(tmp_path):
    objects = [
        _sig(description="d", file_origin="f.ns6"),
        neo.SpikeTrain(np.array([1.0, 4.0], np.float32) * pq.s, t_stop=5.0 * pq.s,
                       t_start=0.5 * pq.s, left_sweep=1 * pq.ms, sampling_rate=30 * pq.kHz),
        neo.ImageSequence(np.zeros((2, 3, 4), np.uint8), units="dimensionless",
                          sampling_rate=20 * pq.Hz, spatial_scale=2, t_start=0 * pq.s),
        neo.AnalogSignal(np.zeros((0, 1)), units="V", sampling_rate=1 * pq.Hz),  # empty
    ]
    path = tmp_path / "lean.h5"
    h5forge.dump(objects, path)
    with h5py.File(path, "r") as f:
        assert all(isinstance(f[str(i)], h5py.Dataset) for i in range(len(objects)))
        assert f["2"].attrs["spatial_scale"] == 2 and "spatial_scale_units" not in f["2"].attrs
    out = h5forge.load(path)
    for i, (a, b) in enumerate(zip(objects, out)):
        assert_same_neo(a, b, f"objects[{i}]")
    assert type(out[2].spatial_scale) is int


def test_a_back_reference_the_lists_do_not_imply_is_stored(tmp_path):
    """A signal whose segment does not list it, and a signal reached before its segment,
    keep the group layout with their ``segment`` link, as in format 1."""
    segment = neo.Segment(name="s")
    loose = _sig(name="loose")
    loose.segment = segment  # set by hand: not in segment.analogsignals
    out = roundtrip({"segment": segment, "loose": loose}, tmp_path)
    assert out["loose"].segment is out["segment"] and not out["segment"].analogsignals

    block = make_block()
    current = block.segments[1].analogsignals[1]  # plain, but its segment is not stored yet
    path = tmp_path / "current.h5"
    h5forge.dump({"current": current}, path)
    with h5py.File(path, "r") as f:
        assert isinstance(f["current"], h5py.Group) and "segment" in f["current"]
    out = h5forge.load(path)["current"]
    assert out.segment.analogsignals[1] is out and out.segment.block.segments[1] is out.segment
    assert_same_neo(block, out.segment.block)


def test_a_group_dumped_before_its_block_keeps_the_sharing(tmp_path):
    block = make_block()
    lfps = block.groups[1]
    out = roundtrip({"lfps": lfps, "block": block}, tmp_path)
    assert out["lfps"] is out["block"].groups[1]
    assert out["lfps"].analogsignals[1] is out["block"].segments[1].analogsignals[0]
    assert_same_neo(block, out["block"])


# -- crafted files ------------------------------------------------------------------------------
def _replace(f, name, data):
    old = dict(f[name].attrs)
    del f[name]
    f[name] = data
    f[name].attrs.update(old)


@pytest.mark.parametrize("edit, message", [
    (lambda f: f[_CURRENT].attrs.__setitem__("colour", "red"), r"no member\(s\) \['colour'\]"),
    (lambda f: f[_CURRENT].attrs.__delitem__("units"), "'units' is missing"),
    (lambda f: f[_CURRENT].attrs.__setitem__("units", "__import__"), "not a unit"),
    (lambda f: f[_CURRENT].attrs.__delitem__("sampling_rate"), "'sampling_rate' is missing"),
    (lambda f: f[_CURRENT].attrs.__setitem__("t_start", "soon"), "'t_start' must be a number"),
    (lambda f: f[_CURRENT].attrs.__setitem__("name", 3), "'name' must be a string"),
    (lambda f: _replace(f, _CURRENT, np.zeros(4)), "must be 2-D"),
    (lambda f: _replace(f, _CURRENT, np.array([["a"]], dtype=object)), "must be numbers"),
    (lambda f: f[_CURRENT].attrs.__setitem__("class", "neo.Epoch"), "stored as a group"),
    (lambda f: f[_CURRENT].attrs.__setitem__("class", "neo.Segment"), "needs a group"),
    (lambda f: f.copy(f["segments/1/spiketrains/1"], "segments/0/analogsignals/2"),
     "Object is a"),  # a SpikeTrain among the signals (neo's own TypeError)
])
def test_crafted_v3_files_raise_corrupt_file_error(tmp_path, edit, message):
    path = tmp_path / "bad.h5"
    h5forge.dump(make_block(), path)
    with h5py.File(path, "r+") as f:
        edit(f)
    with pytest.raises(CorruptFileError, match=message):
        h5forge.load(path)


# -- updates ------------------------------------------------------------------------------------
def test_updates_inside_a_stored_block_are_refused(tmp_path):
    path = tmp_path / "b.h5"
    h5forge.dump({"block": make_block()}, path)
    with pytest.raises(UpdateError, match="neo.Block"):
        h5forge.dump(1, path, f"block/{_CURRENT}/x")
    with pytest.raises(UpdateError, match="neo.Block"):
        h5forge.dump(_sig(), path, f"block/{_CURRENT}", overwrite=True)
    with pytest.raises(UpdateError):
        h5forge.delete(path, f"block/{_CURRENT}")
    with pytest.raises(UpdateError):
        h5forge.append(_sig(), path, "block/segments/0/analogsignals")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_neo(make_block(), h5forge.load(path)["block"])  # untouched


# -- unit texts ---------------------------------------------------------------------------------
def test_a_unit_missing_at_one_load_is_found_once_defined(tmp_path):
    """Unit texts are cached, failures are not: a custom unit defined after a failed load is
    read by the next load."""
    path = tmp_path / "u.h5"
    h5forge.dump(make_block(), path)
    with h5py.File(path, "r+") as f:
        f[_CURRENT].attrs["units"] = "h5forge_test_blip"
    with pytest.raises(CorruptFileError, match="quantities defines no unit"):
        h5forge.load(path)
    blip = pq.UnitQuantity("h5forge_test_blip", 3 * pq.pA, symbol="h5forge_test_blip")
    sig = h5forge.load(path).segments[0].analogsignals[1]
    assert sig.units.dimensionality == blip.dimensionality
    # and the dump side: its own text back, from the cache the second time
    for _ in range(2):
        node = h5forge.store.plan(neo.AnalogSignal([1.0], units=blip,
                                                   sampling_rate=1 * pq.Hz))
        assert node.attrs["units"] == "h5forge_test_blip"


# -- lists read directly, anything unusual by the decoder ------------------------------------
def test_lists_changed_outside_h5forge_load_with_the_decoders_rules(tmp_path):
    path = tmp_path / "odd.h5"
    h5forge.dump(make_block(), path)
    with h5py.File(path, "r+") as f:
        f.move("segments/0/analogsignals/1", "segments/0/analogsignals/5")  # a gap
    with pytest.warns(h5forge.store.MemberMismatchWarning, match=r"not numbered 0\.\.1"):
        block = h5forge.load(path)
    assert [s.name for s in block.segments[0].analogsignals] == ["lfp 0", "current 0"]
    with h5py.File(path, "r+") as f:
        f["segments/1/spiketrains/2"] = h5py.SoftLink("/segments/0/spiketrains/0")
    with pytest.raises(h5forge.errors.UnsafeContentError, match="soft or external"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", h5forge.store.MemberMismatchWarning)  # the gap again
        h5forge.load(path)


def test_a_list_item_reached_twice_is_one_object_whichever_path_reads_it(tmp_path):
    block = make_block()
    tree = {"first": block.segments[0].spiketrains[1], "block": block}  # plain, met first
    out = roundtrip(tree, tmp_path)
    assert out["first"] is out["block"].segments[0].spiketrains[1]
    assert out["first"] is out["block"].groups[0].groups[1].spiketrains[0]
    assert out["first"].segment is out["block"].segments[0]
