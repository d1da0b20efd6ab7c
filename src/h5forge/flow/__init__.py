"""Flows: YAML pipelines that loop over table-like HDF5 in chunks through a chain of stages
(h5flow's model and file layout; see DESIGN.md). Work in progress: the serial engine, config
checking, the data manager and dereferencing are here; the CLI, drop into a temporary file,
the example and MPI come next.
"""

from h5forge.flow.config import FlowConfig, load_config, load_configs
from h5forge.flow.data import DataManager
from h5forge.flow.manager import RunSummary, run
from h5forge.flow.objects import Generator, LoopGenerator, Resource, Stage
from h5forge.flow.refs import dereference, dereference_chain

__all__ = ["run", "RunSummary", "Generator", "Stage", "Resource", "LoopGenerator",
           "DataManager", "dereference", "dereference_chain", "load_config", "load_configs",
           "FlowConfig"]
