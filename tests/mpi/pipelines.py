"""Stages of the reference-heavy test flow (``refs.yaml`` in the tests): every chunk of events
writes hits, references from events to hits, from hits to a small shared ``channels`` table
(so both ranks reference the same channel rows in one ``write_ref``), and two ``write_ref``
calls per chunk for ``events -> tracks``; it reads ``events -> hits -> channels`` back through
a chain. ``who`` records which rank handled each event."""

from __future__ import annotations

import numpy as np

from h5forge.flow import Stage

N_CHANNELS = 16
HIT_DTYPE = np.dtype([("event", "<i8"), ("q", "<f4")])
TRACK_DTYPE = np.dtype([("event", "<i8"), ("n_channels", "<i4"), ("q", "<f8")])


def hits_of(event: int) -> int:
    return (event * 7) % 5  # 0..4 hits; some events have none


class Hits(Stage):
    def init(self, source_name: str) -> None:
        dm = self.data_manager
        dm.create_dset("channels", "<i4")
        sel = dm.reserve_data("channels", N_CHANNELS if self.rank == 0 else 0)
        dm.write_data("channels", sel, np.arange(sel.start, sel.stop, dtype="<i4"))
        dm.create_dset("hits", HIT_DTYPE)
        dm.create_ref(source_name, "hits")
        dm.create_ref("hits", "channels")
        dm.create_dset("who", "<i4")

    def run(self, source_name: str, source_slice: slice, cache: dict) -> None:
        dm = self.data_manager
        events = np.asarray(cache[source_name]["id"], dtype=np.int64)
        counts = np.array([hits_of(int(e)) for e in events], dtype=np.int64)
        hits = np.zeros(int(counts.sum()), HIT_DTYPE)
        hits["event"] = np.repeat(events, counts)
        hits["q"] = (hits["event"] % 11) + np.arange(len(hits)) % 3
        sel = dm.reserve_data("hits", len(hits))
        dm.write_data("hits", sel, hits)
        rows = np.arange(sel.start, sel.stop)
        ev_rows = np.repeat(np.arange(source_slice.start, source_slice.stop), counts)
        dm.write_ref(source_name, "hits", np.stack([ev_rows, rows], axis=1))
        # every hit touches two channels: the same channel rows from every rank
        channels = np.stack([hits["event"] % N_CHANNELS, (hits["event"] * 3 + 1) % N_CHANNELS])
        pairs = np.stack([np.tile(rows, 2), channels.reshape(-1)], axis=1)
        dm.write_ref("hits", "channels", pairs)
        who = dm.reserve_data("who", source_slice)
        dm.write_data("who", who, np.full(len(events), self.rank, "<i4"))


class Tracks(Stage):
    """One track per event with hits, from the chain events -> hits -> channels; its
    references are written in two calls (odd events, then even ones)."""

    def init(self, source_name: str) -> None:
        self.data_manager.create_dset("tracks", TRACK_DTYPE)
        self.data_manager.create_ref(source_name, "tracks")

    def run(self, source_name: str, source_slice: slice, cache: dict) -> None:
        dm = self.data_manager
        chans = cache["event_channels"]            # (events, hits, channels)
        hits = cache["event_hits"]                 # (events, hits)
        events = np.arange(source_slice.start, source_slice.stop)
        has = hits["q"].count(axis=1) > 0 if len(events) else np.zeros(0, bool)
        tracks = np.zeros(int(has.sum()), TRACK_DTYPE)
        tracks["event"] = events[has]
        flat = chans.reshape(chans.shape[0], chans.shape[1] * chans.shape[2])
        tracks["n_channels"] = [len(np.unique(row.compressed())) for row in flat[has]]
        tracks["q"] = hits["q"].sum(axis=1).filled(0)[has]
        sel = dm.reserve_data("tracks", len(tracks))
        dm.write_data("tracks", sel, tracks)
        pairs = np.stack([tracks["event"], np.arange(sel.start, sel.stop)], axis=1)
        odd = pairs[:, 0] % 2 == 1
        dm.write_ref(source_name, "tracks", pairs[odd])
        dm.write_ref(source_name, "tracks", pairs[~odd])


class FailOnRank(Stage):
    """Raises on rank ``rank_to_fail`` at its ``at_chunk``-th chunk (counting from 0)."""

    def __init__(self, rank_to_fail: int = 1, at_chunk: int = 1, **params):
        super().__init__(**params)
        self.rank_to_fail, self.at_chunk, self.seen = rank_to_fail, at_chunk, 0

    def run(self, source_name: str, source_slice: slice, cache: dict) -> None:
        if self.rank == self.rank_to_fail and self.seen == self.at_chunk:
            raise RuntimeError("detector calibration missing")
        self.seen += 1
