"""h5flow's example classes (``examples/modules/examples.py`` in its repository) as a module
ported to h5forge by changing its imports only: ``from h5flow.core import ...`` becomes
``from h5forge.flow.compat import ...`` (with h5flow installed, its own module runs unchanged).
Written here from h5flow's documented behaviour, so the example and the tests
(``tests/flow/test_h5flow_files.py``: the output equals h5flow's own) run without h5flow:

- ``ExampleResource`` writes its ``data`` as attributes of ``path`` (default ``meta``) and hands
  out values with ``get(name)``;
- ``ExampleGenerator`` appends ``chunk_size`` rows holding their own row numbers to
  ``dset_name`` on each of ``end_position`` (default 10) turns;
- ``ExampleStage`` copies each chunk of the source to ``output_dset`` and references every
  source row ``p`` of the chunk to the ten copied rows from its own copy on (clipped to the last
  copied row).
"""

import numpy as np

from h5forge.flow.compat import H5FlowGenerator, H5FlowResource, H5FlowStage, resources


class ExampleResource(H5FlowResource):
    class_version = "0.0.0"
    default_path = "meta"

    def __init__(self, **params):
        super().__init__(**params)
        self.path = params.get("path", self.default_path)
        self.data = params.get("data", dict())

    def init(self, source_name):
        super().init(source_name)
        self.data_manager.set_attrs(self.path, **self.data)

    def get(self, name):
        return self.data[name]


class ExampleGenerator(H5FlowGenerator):
    class_version = "0.0.0"
    default_chunk_size = 1024
    default_iterations = 10

    def __init__(self, **params):
        super().__init__(**params)
        self.chunk_size = params.get("chunk_size", self.default_chunk_size)
        if self.end_position is None:
            self.end_position = self.default_iterations
        self.iteration = 0

    def init(self):
        super().init()
        self.data_manager.create_dset(self.dset_name, dtype=int)
        self.data_manager.set_attrs(self.dset_name, classname=self.classname,
                                    class_version=self.class_version,
                                    chunk_size=self.chunk_size, end_position=self.end_position)

    def next(self):
        if self.iteration >= self.end_position:
            return H5FlowGenerator.EMPTY
        self.iteration += 1
        rows = self.data_manager.reserve_data(self.dset_name, self.chunk_size)
        self.data_manager.write_data(self.dset_name, rows, np.arange(rows.start, rows.stop))
        return rows


class ExampleStage(H5FlowStage):
    class_version = "0.0.0"

    def __init__(self, **params):
        super().__init__(**params)
        self.output_dset = params.get("output_dset")

    def init(self, source_name):
        super().init(source_name)
        self.data_manager.set_attrs(self.output_dset, classname=self.classname,
                                    class_version=self.class_version, input_dset=source_name,
                                    output_dset=self.output_dset, test_attr="test_value")
        dtype = self.data_manager.get_dset(source_name).dtype
        self.data_manager.create_dset(self.output_dset, dtype=dtype)
        self.data_manager.create_ref(source_name, self.output_dset)

    def run(self, source_name, source_slice, cache):
        super().run(source_name, source_slice, cache)
        rows = cache[source_name]
        resources["ExampleResource"].get("val0")  # h5flow's global resources
        copied = self.data_manager.reserve_data(self.output_dset, len(rows))
        self.data_manager.write_data(self.output_dset, copied, rows)
        parents = np.arange(source_slice.start, source_slice.stop)
        pairs = [(p, min(copied.start + (p - source_slice.start) + k, copied.stop - 1))
                 for p in parents for k in range(10)]
        ref = np.unique(np.array(pairs, dtype=np.int64).reshape(-1, 2), axis=0)
        self.data_manager.write_ref(source_name, self.output_dset, ref)
