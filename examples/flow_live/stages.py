"""The stage of the live example: each frame's spot (intensity per unit of beam, centroid)."""

from __future__ import annotations

import numpy as np

from h5forge.flow import Stage

SPOT_DTYPE = np.dtype([("index", "<i8"), ("intensity", "<f8"), ("row", "<f8"),
                       ("col", "<f8"), ("peak", "<u4")])


class SpotFinder(Stage):
    """One row per frame, aligned with the source table ``frames``."""

    def init(self, source_name: str) -> None:
        self.data_manager.create_dset("spots", SPOT_DTYPE)
        self.batches = 0

    def run(self, source_name: str, source_slice: slice, cache: dict) -> None:
        frames = cache[source_name]                 # the rows the writer completed so far
        images = frames["image"].astype(np.float64)
        total = images.sum(axis=(1, 2))
        rows, cols = np.mgrid[0:images.shape[1], 0:images.shape[2]] if len(images) else (0, 0)
        spots = np.zeros(len(frames), SPOT_DTYPE)
        spots["index"] = frames["index"]
        spots["intensity"] = total / frames["i0"]
        with np.errstate(invalid="ignore", divide="ignore"):
            spots["row"] = (images * rows).sum(axis=(1, 2)) / total
            spots["col"] = (images * cols).sum(axis=(1, 2)) / total
        spots["peak"] = frames["image"].reshape(len(frames), -1).max(axis=1, initial=0)
        sel = self.data_manager.reserve_data("spots", source_slice)
        self.data_manager.write_data("spots", sel, spots)
        self.batches += len(frames) > 0
