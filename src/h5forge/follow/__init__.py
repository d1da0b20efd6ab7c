"""Follow HDF5 files another process is writing (SWMR), and write them.

Reader::

    for index, data in h5forge.follow.frames("scan.h5", data={"image": "entry/data"},
                                             keys=["entry/keys"], finished="entry/finished"):
        process(index, data["image"])

Writer::

    with h5forge.follow.LiveWriter("scan.h5") as w:
        w.create_key("entry/keys")
        w.create_frames("entry/data", frame_shape=(512, 512), dtype="u2")
        w.create_finished("entry/finished")
        w.start()                      # SWMR on: readers may open the file now
        for image in detector:
            w.append(data=image)       # frame flushed, then its key
        w.finish()

The protocol is swmr_tools': key ``i`` non-zero means frame ``i`` is complete; keys may be
shaped like the scan ((rows, cols, 1, 1) is flattened in C order), there may be several (a frame
is ready when all say so), and a ``finished`` flag (scalar or one element) ends the scan. Unlike
swmr_tools, empty key datasets and scalar flags are normal, and a poll reads only the keys past
the frames already seen.

Datasets may be given as the ``h5py.Dataset`` objects you hold; a path to one you hold reuses
your handle (HDF5 cannot refresh a dataset opened twice). The scan shape is the keys' maxshape.
swmr_tools' classes (``KeyFollower``, ``DataSource``, ``FrameReader``, ``ChunkSource``...) are
in :mod:`h5forge.follow.compat`.
"""

from h5forge.follow.chunk_grid import chunk_writes, write_chunk
from h5forge.follow.direct import DirectChunkReader
from h5forge.follow.follower import DEFAULT_POLL_INTERVAL, Follower, open_swmr, scan_shape_of
from h5forge.follow.frames import FrameReader, follow_frames, frames, scan_rank_of
from h5forge.follow.writer import LiveWriter

__all__ = ["Follower", "FrameReader", "frames", "follow_frames", "LiveWriter", "open_swmr",
           "scan_rank_of", "scan_shape_of", "DirectChunkReader", "chunk_writes", "write_chunk",
           "DEFAULT_POLL_INTERVAL"]
