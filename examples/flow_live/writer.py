"""A simulated area detector writing a scan live (HDF5 SWMR, h5forge.follow.LiveWriter): a
spot moves across a 32x32 image, one frame every INTERVAL seconds, with the beam monitor's
reading ``i0`` beside each frame.

Run with ``python writer.py SCAN.h5 [FRAMES] [INTERVAL]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from h5forge.follow import LiveWriter

SHAPE = (32, 32)


def spot_position(index: int) -> tuple[float, float]:
    """Where the spot is in frame ``index`` (row, column), as the stage should find it."""
    return 8.0 + (index % 16), 6.0 + 0.5 * (index % 32)


def frame(index: int) -> tuple[np.ndarray, float]:
    """Frame ``index``: a Gaussian spot of 1,000 counts per unit of i0, and i0."""
    i0 = 1.0 + 0.1 * (index % 7)
    row, col = spot_position(index)
    rr, cc = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    spot = np.exp(-((rr - row) ** 2 + (cc - col) ** 2) / (2 * 1.5 ** 2))
    image = np.round(1000 * i0 * spot / spot.sum() * 50).astype("<u4")
    return image, i0


def main(path: str, n_frames: int = 40, interval: float = 0.02) -> None:
    with LiveWriter(path) as w:
        w.create_key("entry/keys")
        w.create_frames("entry/image", frame_shape=SHAPE, dtype="<u4")
        w.create_frames("entry/i0", frame_shape=(), dtype="<f8")
        w.create_finished("entry/finished")
        w.start()                                  # readers may open the file from here on
        for index in range(n_frames):
            image, i0 = frame(index)
            w.append(image=image, i0=i0)           # frames flushed, then the key
            time.sleep(interval)
        w.finish()


if __name__ == "__main__":
    main(sys.argv[1], *(int(sys.argv[2]),) if len(sys.argv) > 2 else (),
         *(float(sys.argv[3]),) if len(sys.argv) > 3 else ())
