"""A simulated detector: the generator of the example flow (``pipeline.yaml``).

Each event is triggered at a fixed rate (with jitter) and leaves a few charge deposits; each
deposit leaves hits scattered around it. ``next()`` simulates one chunk of events, writes them
to the ``events`` table and their hits to ``hits`` (with references ``events -> hits``), and
returns the slice of ``events`` it wrote, which the stages then process (h5flow's generator
protocol: the generator writes its own source table).

Every event draws from its own random stream (``seed`` and the event id), so the tables are the
same whatever ``chunk_size`` is, and a run over ``start:end`` simulates exactly those events of
the full run.

Under ``mpiexec -n N`` rank ``r`` simulates chunks ``r``, ``r + N``, ...; its writes are
collective, so it makes them on every call, with no rows once it is done. The tables are the
same as on one rank: each step appends the ranks' chunks in rank order.
"""

from __future__ import annotations

import numpy as np

from h5forge.flow import Generator

EVENT_DTYPE = np.dtype([("id", "<i8"), ("time", "<f8"), ("n_hits", "<i4")])
HIT_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("q", "<f4"), ("t", "<f8")])

#: Detector size (cm) and how fast the charge drifts along z (cm per us).
HALF_WIDTH = 50.0
DRIFT_VELOCITY = 0.16


class DetectorSim(Generator):
    """Simulate ``n_events`` events of on average ``hits_per_event`` hits, ``chunk_size`` events
    per chunk. A fraction ``empty_fraction`` of the triggers record nothing (events with no
    hits, so no clusters either)."""

    def __init__(self, n_events: int = 1000, hits_per_event: float = 20.0,
                 chunk_size: int = 256, seed: int = 12345, trigger_period: float = 1000.0,
                 empty_fraction: float = 0.02, **params):
        super().__init__(**params)
        if n_events < 0 or chunk_size <= 0 or hits_per_event < 0:
            raise ValueError(f"need n_events >= 0, chunk_size > 0, hits_per_event >= 0; got "
                             f"{n_events}, {chunk_size}, {hits_per_event}")
        self.n_events = int(n_events)
        self.hits_per_event = float(hits_per_event)
        self.chunk_size = int(chunk_size)
        self.seed = int(seed)
        self.trigger_period = float(trigger_period)  # us between triggers
        self.empty_fraction = float(empty_fraction)

    def init(self) -> None:
        dm = self.data_manager
        dm.create_dset(self.dset_name, EVENT_DTYPE)
        dm.create_dset("hits", HIT_DTYPE)
        dm.create_ref(self.dset_name, "hits")
        dm.set_attrs(self.dset_name, n_events=self.n_events, seed=self.seed,
                     hits_per_event=self.hits_per_event)
        start = 0 if self.start_position is None else int(self.start_position)
        stop = self.n_events if self.end_position is None else int(self.end_position)
        first = min(max(start, 0), self.n_events)
        self._stop = min(max(stop, first), self.n_events)
        self._next_id = first + self.rank * self.chunk_size  # this rank's first chunk

    def next(self) -> slice | None:
        ids = np.arange(self._next_id, min(self._next_id + self.chunk_size, self._stop))
        self._next_id += self.size * self.chunk_size  # the chunk after the other ranks' ones
        events = np.zeros(len(ids), EVENT_DTYPE)
        per_event = [self._simulate(int(i)) for i in ids]
        events["id"] = ids
        events["time"] = [time for time, _ in per_event]
        events["n_hits"] = [len(hits) for _, hits in per_event]
        hits = np.concatenate([h for _, h in per_event]) if per_event else np.zeros(0, HIT_DTYPE)

        dm = self.data_manager
        ev_sel = dm.reserve_data(self.dset_name, len(events))
        dm.write_data(self.dset_name, ev_sel, events)
        hit_sel = dm.reserve_data("hits", len(hits))
        dm.write_data("hits", hit_sel, hits)
        parents = np.repeat(np.arange(ev_sel.start, ev_sel.stop), events["n_hits"])
        children = np.arange(hit_sel.start, hit_sel.stop)
        dm.write_ref(self.dset_name, "hits", np.stack([parents, children], axis=1))
        return ev_sel if len(ids) else None  # None: this rank is done

    def _simulate(self, event_id: int) -> tuple[float, np.ndarray]:
        """The trigger time (us) and the hits of one event, from its own random stream."""
        rng = np.random.default_rng([self.seed, event_id])
        time = (event_id + rng.uniform(-0.25, 0.25)) * self.trigger_period
        n_hits = 0 if rng.random() < self.empty_fraction else int(rng.poisson(self.hits_per_event))
        hits = np.zeros(n_hits, HIT_DTYPE)
        if n_hits == 0:
            return time, hits
        n_deposits = 1 + int(rng.poisson(1.5))
        centres = rng.uniform(-0.8 * HALF_WIDTH, 0.8 * HALF_WIDTH, size=(n_deposits, 3))
        which = rng.integers(0, n_deposits, size=n_hits)
        xyz = np.clip(centres[which] + rng.normal(0.0, 1.5, size=(n_hits, 3)),
                      -HALF_WIDTH, HALF_WIDTH)
        hits["x"], hits["y"], hits["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        hits["q"] = rng.gamma(4.0, 2.5, size=n_hits)  # ke-, about 10 on average
        drift = (xyz[:, 2] + HALF_WIDTH) / DRIFT_VELOCITY
        hits["t"] = time + drift + rng.normal(0.0, 0.05, size=n_hits)
        return time, hits[np.argsort(hits["t"], kind="stable")]  # read out in time order
