"""Flows: YAML pipelines that loop over table-like HDF5 in chunks through a chain of stages
(h5flow's model and file layout; see DESIGN.md).

- ``config``: reading and checking YAML configs; ``loading``: finding stage classes;
- ``objects``: Generator, Stage, Resource and the default LoopGenerator;
- ``data``: the DataManager (tables, references, regions; collective on MPI ranks);
- ``refs``: ``dereference`` / ``dereference_chain``;
- ``manager``: ``run`` (serial, or on MPI ranks); ``mpi``: which ranks and why;
- ``live``: ``source: follow``, a flow over a file still being written;
- ``compat``: h5flow's names (``H5FlowStage``, ``resources``, ``H5FlowDataManager``, ...) for
  modules written for h5flow.
"""

from h5forge.flow.config import FlowConfig, load_config, load_configs
from h5forge.flow.data import DataManager
from h5forge.flow.live import FollowGenerator
from h5forge.flow.manager import RunSummary, run
from h5forge.flow.mpi import PeerFailed, Ranks
from h5forge.flow.objects import Generator, LoopGenerator, Resource, Stage
from h5forge.flow.refs import dereference, dereference_chain

__all__ = ["run", "RunSummary", "Generator", "Stage", "Resource", "LoopGenerator",
           "FollowGenerator", "DataManager", "dereference", "dereference_chain", "load_config",
           "load_configs", "FlowConfig", "Ranks", "PeerFailed"]
