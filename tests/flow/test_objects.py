"""Flow building blocks: the default loop generator's chunking, and the base classes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5forge.errors import FlowConfigError
from h5forge.flow.data import DataManager
from h5forge.flow.objects import AUTO_ROWS, LoopGenerator, Resource, Stage


@pytest.fixture
def dm(tmp_path):
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f.create_dataset("chunked/data", data=np.arange(1000), chunks=(128,))
        f.create_dataset("contiguous/data", data=np.arange(200_000))
        yield DataManager(f)


def slices(generator):
    return [(s.start, s.stop) for s in generator]


def test_auto_chunk_size_follows_the_tables_chunking(dm):
    gen = LoopGenerator(name="loop", dset_name="chunked", data_manager=dm)
    got = slices(gen)
    assert got[0] == (0, 128) and got[-1] == (896, 1000) and len(got) == 8


def test_auto_chunk_size_for_a_contiguous_table(dm):  # h5flow crashes here
    got = slices(LoopGenerator(name="loop", dset_name="contiguous", data_manager=dm))
    assert got[0] == (0, AUTO_ROWS) and got[-1][1] == 200_000


def test_start_end_and_explicit_chunk_size(dm):
    gen = LoopGenerator(name="loop", dset_name="chunked", data_manager=dm, chunk_size=300,
                        start_position=100, end_position=950)
    assert slices(gen) == [(100, 400), (400, 700), (700, 950)]


@pytest.mark.parametrize("bad", [0, -3, 2.5, "big", True])
def test_bad_chunk_size(dm, bad):
    gen = LoopGenerator(name="loop", dset_name="chunked", data_manager=dm, chunk_size=bad)
    with pytest.raises(FlowConfigError, match="chunk_size must be a positive integer"):
        gen.next()


def test_missing_table_and_bad_start(dm):
    with pytest.raises(FlowConfigError, match="no table 'nope'"):
        LoopGenerator(name="loop", dset_name="nope", data_manager=dm).next()
    with pytest.raises(FlowConfigError, match="start position 5000 is outside"):
        LoopGenerator(name="loop", dset_name="chunked", data_manager=dm,
                      start_position=5000).next()


def test_stage_params_pass_through_super_init():
    class Scale(Stage):
        def __init__(self, **params):
            super().__init__(**params)
            self.factor = params.get("factor", 1)

    stage = Scale(name="scale", classname="Scale", requires=["hits"], factor=3)
    assert (stage.name, stage.factor, stage.requires) == ("scale", 3, ["hits"])
    # h5flow's stages call super().run/init/finish: the base methods do nothing
    bare = Stage(name="bare")
    cache = {"events": np.arange(3)}
    assert bare.init("events") is None and bare.finish("events") is None
    assert bare.run("events", slice(0, 3), cache) is None and list(cache) == ["events"]


def test_resource_gets_the_runs_input_and_row_range():
    resource = Resource(name="geo", classname="Geo", input_filename="in.h5", start_position=2,
                        end_position=9)
    assert (resource.input_filename, resource.start_position, resource.end_position) == (
        "in.h5", 2, 9)
    assert Resource(name="bare").input_filename is None
