"""The last stage of the example flow: one summary row per event, aligned with ``events``.

The hits are reached through the clusters, ``events -> clusters -> hits``, with
:func:`h5forge.flow.dereference_chain`: one masked array of shape
``(events, clusters per event, hits per cluster)``.
"""

from __future__ import annotations

import numpy as np
import numpy.ma as ma

from h5forge.flow import Stage, dereference_chain

SUMMARY_DTYPE = np.dtype([
    ("n_clusters", "<i4"),
    ("n_hits", "<i4"),          # hits in the event's clusters
    ("q_total", "<f8"),         # their charge (ke-)
    ("q_max_cluster", "<f8"),   # charge of the largest cluster (0 without clusters)
    ("x_centroid", "<f8"),      # charge-weighted x of the hits (NaN without hits)
    ("t0", "<f8"),              # from the intermediate table event_t0 (dropped at the end)
])


class EventSummary(Stage):
    """Per event: how many clusters and hits, total and largest-cluster charge, centroid."""

    def init(self, source_name: str) -> None:
        self.data_manager.create_dset("event_summary", SUMMARY_DTYPE)

    def run(self, source_name: str, source_slice: slice, cache: dict) -> None:
        dm = self.data_manager
        to_clusters, dir_c = dm.get_ref(source_name, "clusters")
        to_hits, dir_h = dm.get_ref("clusters", "hits")
        hits = dereference_chain(
            source_slice, [to_clusters, to_hits], data=dm.get_dset("hits"),
            regions=[dm.get_ref_region(source_name, "clusters"),
                     dm.get_ref_region("clusters", "hits")],
            ref_directions=[dir_c, dir_h])             # (events, clusters, hits)
        q = hits["q"].astype(np.float64)
        q_total = q.sum(axis=(1, 2)).filled(0.0)

        clusters = cache["event_clusters"]             # (events, clusters): rows of `clusters`
        summary = np.zeros(len(q_total), SUMMARY_DTYPE)
        summary["n_clusters"] = clusters["n_hits"].count(axis=1)
        summary["n_hits"] = q.count(axis=(1, 2))
        summary["q_total"] = q_total
        summary["q_max_cluster"] = ma.filled(clusters["q_sum"].max(axis=1), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            summary["x_centroid"] = ((q * hits["x"]).sum(axis=(1, 2)).filled(0.0) / q_total)
        summary["t0"] = cache["t0"]

        sel = dm.reserve_data("event_summary", source_slice)  # row i summarizes event i
        dm.write_data("event_summary", sel, summary)
