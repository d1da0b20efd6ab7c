"""Writes ``neo_v<format>.h5``: a small neo.Block with every object the neo codec stores
(``neo_v1.h5``: format 1, every object a group; ``neo_v3.h5``: format 3, plain data objects
one dataset each).

    python tests/data/make_neo_golden.py

Run once per format version that changes the neo layout (needs neo); it writes the current
format's file. The files are committed; ``tests/store/test_neo.py`` loads each and compares it
with :func:`make_block`, so the data here must never change.
"""

from __future__ import annotations

import datetime as dt
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent


def make_block():
    """Two segments (signals of every kind), and neo Groups that refer to the same objects."""
    import neo
    import quantities as pq

    rng = np.random.default_rng(2024)
    block = neo.Block(
        name="session M12", description="two trials of a fixed test recording",
        file_origin="rig3/M12.ns6", index=7,
        file_datetime=dt.datetime(2024, 5, 1, 10, 0, 0),
        rec_datetime=dt.datetime(2024, 5, 1, 9, 30, 15, 250000),
        subject="M12", weight_g=23.5, channels=[1, 2, 3], gains=np.array([1.0, 0.5]),
        rig={"name": "rig3", "amplifier": "Intan", "ground": None},
        started=dt.datetime(2024, 5, 1, 9, 29),
    )
    units = []
    for i in range(2):
        segment = neo.Segment(name=f"trial {i}", description=f"trial number {i}", index=i,
                              rec_datetime=dt.datetime(2024, 5, 1, 9, 30 + i), outcome="hit")
        block.segments.append(segment)

        lfp = neo.AnalogSignal(
            rng.standard_normal((40, 3)).astype(np.float32), units="mV",
            sampling_rate=1 * pq.kHz, t_start=(2.5 + 10 * i) * pq.s, name=f"lfp {i}",
            description="wide band", file_origin="rig3/M12.ns6", filtered=False, gain=2.0,
        )
        lfp.array_annotate(channel_names=np.array(["CA1-a", "CA1-b", "DG"]),
                           impedance_kohm=np.array([120.0, 98.5, 143.0]))
        segment.analogsignals.append(lfp)
        current = neo.AnalogSignal(np.arange(10, dtype=np.int16).reshape(10, 1), units="pA",
                                   sampling_period=0.5 * pq.ms, t_start=0 * pq.ms,
                                   name=f"current {i}")
        segment.analogsignals.append(current)

        segment.irregularlysampledsignals.append(neo.IrregularlySampledSignal(
            np.array([0.0, 0.15, 0.4, 1.0]) * pq.s, rng.standard_normal((4, 2)) * pq.degC,
            name="temperature", array_annotations={"probe": np.array([1, 2])}))

        train = neo.SpikeTrain(
            np.sort(rng.uniform(0, 10, 5)) * pq.ms, t_start=0 * pq.ms, t_stop=10 * pq.ms,
            waveforms=rng.standard_normal((5, 2, 8)) * pq.uV, left_sweep=0.25 * pq.ms,
            sampling_rate=30 * pq.kHz, name=f"unit A trial {i}", sorted_by="kilosort",
        )
        train.array_annotate(amplitude_uv=rng.uniform(50, 100, 5).round(2))
        segment.spiketrains.append(train)
        other = neo.SpikeTrain(np.array([1.0, 4.0], np.float32) * pq.s, t_stop=5.0 * pq.s,
                               sampling_rate=None, name=f"unit B trial {i}")
        segment.spiketrains.append(other)
        units.append((train, other))

        segment.events.append(neo.Event(
            np.array([0.5, 1.25, 3.0]) * pq.s, labels=np.array(["cue", "lick", "reward"]),
            name="trial events", array_annotations={"code": np.array([1, 7, 9])}))
        segment.epochs.append(neo.Epoch(
            np.array([0.0, 2.0]) * pq.s, durations=np.array([150.0, 500.0]) * pq.ms,
            labels=np.array(["baseline", "response"]), name="phases"))
        segment.imagesequences.append(neo.ImageSequence(
            rng.integers(0, 255, (3, 4, 5)).astype(np.uint8), units="dimensionless",
            sampling_rate=20 * pq.Hz, spatial_scale=1.5 * pq.um, t_start=0.1 * pq.s,
            name="GCaMP frames"))

    # Groups refer to objects that already live in the segments: the same objects, not copies.
    unit_a = neo.Group([u[0] for u in units], name="unit A", cluster=17,
                       allowed_types=[neo.SpikeTrain])
    unit_b = neo.Group([u[1] for u in units], name="unit B")
    lfps = neo.Group([s.analogsignals[0] for s in block.segments], name="LFP channels")
    probe = neo.Group(name="probe 1", description="all units of probe 1")
    probe.add(unit_a, unit_b)
    block.groups.extend([probe, lfps])
    return block


if __name__ == "__main__":  # pragma: no cover - run by hand once per format version
    import h5forge
    from h5forge.store import FORMAT_VERSION

    target = HERE / f"neo_v{FORMAT_VERSION}.h5"
    h5forge.dump(make_block(), target, overwrite=True)
    print("wrote", target, target.stat().st_size, "bytes")
