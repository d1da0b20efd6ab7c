"""Reconstruction stages of the example flow: find each event's t0, then cluster its hits.

Both get an event's hits from the cache as a masked array, one row per event of the chunk
(``requires: [{name: event_hits, path: hits}]``: the engine follows ``events -> hits``).
"""

from __future__ import annotations

import numpy as np
import numpy.ma as ma

from h5forge.flow import Stage

CLUSTER_DTYPE = np.dtype([
    ("x_bin", "<i4"),      # the coarse x bin the cluster's hits fall in
    ("n_hits", "<i4"),
    ("q_sum", "<f8"),      # total charge (ke-)
    ("x_mean", "<f8"),     # charge-weighted centre (cm)
    ("y_mean", "<f8"),
    ("z_mean", "<f8"),
    ("drift", "<f8"),      # charge-weighted hit time minus the event's t0 (us)
])


class T0Finder(Stage):
    """Each event's t0: the time of its first hit (NaN for an event without hits), written to
    ``event_t0``, a table aligned row by row with the events. It is an intermediate table: the
    clusterer and the summary read it, and the flow drops it."""

    def init(self, source_name: str) -> None:
        self.data_manager.create_dset("event_t0", "<f8")

    def run(self, source_name: str, source_slice: slice, cache: dict) -> None:
        t0 = cache["event_hits"]["t"].min(axis=1)
        t0 = ma.filled(t0.astype("<f8"), np.nan)
        sel = self.data_manager.reserve_data("event_t0", source_slice)  # aligned with events
        self.data_manager.write_data("event_t0", sel, t0)


class XBinClusterer(Stage):
    """Group each event's hits into clusters by coarse x bins of ``bin_width`` cm: every hit
    lands in exactly one cluster. Writes ``clusters`` and the references ``events -> clusters``
    and ``clusters -> hits``."""

    def __init__(self, bin_width: float = 5.0, **params):
        super().__init__(**params)
        if bin_width <= 0:
            raise ValueError(f"bin_width must be positive, got {bin_width}")
        self.bin_width = float(bin_width)

    def init(self, source_name: str) -> None:
        dm = self.data_manager
        dm.create_dset("clusters", CLUSTER_DTYPE)
        dm.create_ref(source_name, "clusters")
        dm.create_ref("clusters", "hits")

    def run(self, source_name: str, source_slice: slice, cache: dict) -> None:
        hit_idx = cache["event_hit_idx"]             # (events, max hits): rows of `hits`
        valid = ~ma.getmaskarray(hit_idx)
        events = np.broadcast_to(
            np.arange(source_slice.start, source_slice.stop)[:, None], hit_idx.shape)[valid]
        hit_rows = hit_idx.data[valid]
        hits = cache["event_hits"].data[valid]       # the same order as hit_idx
        bins = np.floor(hits["x"] / self.bin_width).astype(np.int64)

        # one cluster per (event, x bin), ordered by event then bin
        keys, inverse = np.unique(np.stack([events, bins], axis=1), axis=0,
                                  return_inverse=True)
        inverse = inverse.reshape(-1)
        n = len(keys)
        q = hits["q"].astype(np.float64)

        def weighted(values: np.ndarray) -> np.ndarray:
            return np.bincount(inverse, weights=q * values, minlength=n) / q_sum

        clusters = np.zeros(n, CLUSTER_DTYPE)
        q_sum = np.bincount(inverse, weights=q, minlength=n)
        clusters["x_bin"] = keys[:, 1]
        clusters["n_hits"] = np.bincount(inverse, minlength=n)
        clusters["q_sum"] = q_sum
        clusters["x_mean"] = weighted(hits["x"])
        clusters["y_mean"] = weighted(hits["y"])
        clusters["z_mean"] = weighted(hits["z"])
        t0 = cache["t0"]                             # event_t0, rows of this chunk
        clusters["drift"] = weighted(hits["t"]) - t0[keys[:, 0] - source_slice.start]

        dm = self.data_manager
        sel = dm.reserve_data("clusters", n)
        dm.write_data("clusters", sel, clusters)
        cluster_rows = sel.start + np.arange(n)
        dm.write_ref(source_name, "clusters", np.stack([keys[:, 0], cluster_rows], axis=1))
        order = np.lexsort((hit_rows, inverse))      # by cluster, then hit
        dm.write_ref("clusters", "hits",
                     np.stack([cluster_rows[inverse[order]], hit_rows[order]], axis=1))
