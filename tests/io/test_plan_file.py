"""Plans as YAML files: round trips, readable text, and the errors of bad files."""

from __future__ import annotations

import io
import re

import h5py
import numpy as np
import pytest
import yaml

from h5forge.errors import ConfigurationError
from h5forge.io import BackendConfiguration, DatasetConfiguration, dump_plan, load_plan
from h5forge.io.plan_file import PLAN_FORMAT

COMPOUND = np.dtype([("id", "<i4"), ("name", h5py.string_dtype()), ("xyz", "<f4", (3,)),
                     ("raw", "S8")])


@pytest.fixture
def plan():
    return BackendConfiguration([
        DatasetConfiguration("recording/data", "i2", (10**7, 128), compression_method="zstd",
                             compression_options={"clevel": 3}, filter="shuffle"),
        DatasetConfiguration("table", COMPOUND, (1000,)),
        DatasetConfiguration("names", h5py.string_dtype(), (10,)),
        DatasetConfiguration("blobs", h5py.string_dtype("ascii"), (10,), compression_method="lzf"),
        DatasetConfiguration("scalar", "f8", ()),
        DatasetConfiguration("empty", "f4", (0, 8)),
        DatasetConfiguration("contiguous", "u1", (50,), chunk_shape=None),
        DatasetConfiguration("lossy", "f4", (100, 100), compression_method="zfp",
                             compression_options={"accuracy": 1e-3}),
        DatasetConfiguration("deep/er/blosc", ">f8", (100, 100), chunk_shape=(10, 100),
                             buffer_shape=(50, 100), compression_method="blosc",
                             compression_options={"cname": "zstd", "clevel": 3, "shuffle": 2},
                             filter=["bitshuffle"]),
        DatasetConfiguration("plain", "c16", (64,), compression_method=None),
    ])


def assert_same_plan(loaded, plan):
    assert loaded == plan
    assert list(loaded) == list(plan)
    for location in plan:
        assert loaded[location].dtype == plan[location].dtype
        assert h5py.check_string_dtype(loaded[location].dtype) == \
            h5py.check_string_dtype(plan[location].dtype)


def test_round_trip_through_a_file(tmp_path, plan):
    path = tmp_path / "plan.yaml"
    text = plan.to_yaml(path)
    assert path.read_text(encoding="utf-8") == text
    assert_same_plan(BackendConfiguration.from_yaml(path), plan)
    assert_same_plan(BackendConfiguration.from_yaml(str(path)), plan)
    assert_same_plan(load_plan(path), plan)


def test_round_trip_through_a_stream(tmp_path, plan):
    text = plan.to_yaml()
    assert_same_plan(BackendConfiguration.from_yaml(io.StringIO(text)), plan)
    path = tmp_path / "plan.yaml"
    dump_plan(plan, path)
    with open(path, encoding="utf-8") as stream:
        assert_same_plan(BackendConfiguration.from_yaml(stream), plan)


def test_dump_plan_without_a_path_only_returns_text(tmp_path, plan, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert dump_plan(plan) == plan.to_yaml()
    assert list(tmp_path.iterdir()) == []


def test_compound_and_vlen_dtypes_survive(tmp_path, plan):
    loaded = BackendConfiguration.from_yaml(io.StringIO(plan.to_yaml()))
    table = loaded["table"].dtype
    assert table == COMPOUND
    assert table.names == ("id", "name", "xyz", "raw")
    assert h5py.check_string_dtype(table["name"]).encoding == "utf-8"
    assert table["xyz"].shape == (3,)
    assert h5py.check_string_dtype(loaded["names"].dtype).encoding == "utf-8"
    assert h5py.check_string_dtype(loaded["blobs"].dtype).encoding == "ascii"
    assert loaded["deep/er/blosc"].dtype == np.dtype(">f8")


def test_special_entries_survive(plan):
    loaded = BackendConfiguration.from_yaml(io.StringIO(plan.to_yaml()))
    assert loaded["scalar"].full_shape == () and loaded["scalar"].chunk_shape is None
    assert loaded["empty"].full_shape == (0, 8) and loaded["empty"].buffer_shape == (0, 8)
    assert loaded["contiguous"].chunk_shape is None
    assert loaded["contiguous"].compression_method is None
    assert loaded["recording/data"].filter == ("shuffle",)
    assert loaded["deep/er/blosc"].filter == ("bitshuffle",)
    assert loaded["deep/er/blosc"].compression_options == {"cname": "zstd", "clevel": 3,
                                                           "shuffle": 2}
    assert loaded["lossy"].compression_options == {"reversible": False, "accuracy": 1e-3}
    assert loaded["plain"].compression_method is None
    assert loaded["plain"].compression_options is None


def test_a_loaded_plan_writes_the_same_datasets(tmp_path, plan):
    loaded = BackendConfiguration.from_yaml(io.StringIO(plan.to_yaml()))
    data = np.arange(10000, dtype=">f8").reshape(100, 100)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        a = f.create_dataset("a", data=data, **plan["deep/er/blosc"].h5py_kwargs())
        b = f.create_dataset("b", data=data, **loaded["deep/er/blosc"].h5py_kwargs())
        assert a._filters == b._filters and a.chunks == b.chunks == (10, 100)
        np.testing.assert_array_equal(b[()], data)


def test_empty_plan_round_trips():
    text = BackendConfiguration().to_yaml()
    assert yaml.safe_load(text) == {"h5forge_plan": PLAN_FORMAT, "datasets": {}}
    assert BackendConfiguration.from_yaml(io.StringIO(text)) == BackendConfiguration()


def test_yaml_text_is_readable(plan):
    text = plan.to_yaml()
    assert text.startswith(f"h5forge_plan: {PLAN_FORMAT}\ndatasets:\n")
    assert "\n  recording/data:\n" in text
    assert "\n  deep/er/blosc:\n" in text
    assert "    chunk_shape: [39062, 128]\n" in text
    assert "    full_shape: [10000000, 128]\n" in text
    assert "    buffer_shape: [1953100, 128]\n" in text
    assert "    compression_method: zstd\n" in text
    assert "    compression_options: {clevel: 3}\n" in text
    assert "    filter: [shuffle]\n" in text
    assert "    dtype: <i2\n" in text
    assert "    dtype: vlen-str\n" in text and "    dtype: vlen-bytes\n" in text
    assert "    full_shape: []\n" in text
    assert "    chunk_shape: null\n" in text
    assert "!!python" not in text  # plain YAML, no Python tags
    # fields in the order a reader expects
    block = text.split("\n  recording/data:\n")[1].split("\n  table:")[0]
    keys = [line.split(":")[0].strip() for line in block.splitlines()]
    assert keys == ["dtype", "full_shape", "chunk_shape", "buffer_shape", "compression_method",
                    "compression_options", "filter"]


def test_edited_text_is_applied():
    plan = BackendConfiguration([DatasetConfiguration("rec/data", "i2", (10**7, 128))])
    edited = plan.to_yaml().replace("chunk_shape: [39062, 128]", "chunk_shape: [30000, 128]") \
        .replace("buffer_shape: [1953100, 128]", "buffer_shape: [1500000, 128]") \
        .replace("compression_method: gzip", "compression_method: lz4") \
        .replace("compression_options: {level: 4}", "compression_options: {nbytes: 4096}")
    loaded = BackendConfiguration.from_yaml(io.StringIO(edited))
    entry = loaded["rec/data"]
    assert entry.chunk_shape == (30000, 128) and entry.buffer_shape == (1_500_000, 128)
    assert (entry.compression_method, entry.compression_options) == ("lz4", {"nbytes": 4096})
    assert plan["rec/data"].chunk_shape == (39062, 128)  # the original plan is untouched


def test_numpy_scalars_in_options_can_be_saved(tmp_path):
    # the plan accepts a numpy integer as gzip level; the saved plan must be plain YAML
    plan = BackendConfiguration([DatasetConfiguration(
        "a", "f8", (100,), compression_options={"level": np.int64(5)})])
    text = plan.to_yaml(tmp_path / "plan.yaml")
    loaded = BackendConfiguration.from_yaml(tmp_path / "plan.yaml")
    assert loaded["a"].compression_options == {"level": 5}
    assert "!!" not in text


# ---- fields left out --------------------------------------------------------------------------

def load_text(text):
    return BackendConfiguration.from_yaml(io.StringIO(text))


def test_fields_left_out_get_defaults():
    loaded = load_text("datasets:\n  rec/data: {dtype: <i2, full_shape: [10000000, 128]}\n")
    assert loaded["rec/data"] == DatasetConfiguration("rec/data", "i2", (10**7, 128))
    assert loaded["rec/data"].compression_options == {"level": 4}


def test_format_marker_may_be_left_out_but_is_checked():
    assert len(load_text(f"h5forge_plan: {PLAN_FORMAT}\ndatasets: {{}}\n")) == 0
    assert len(load_text("datasets: {}\n")) == 0
    assert len(load_text("datasets:\n")) == 0


def test_a_chunk_shape_alone_gets_a_buffer_of_whole_chunks():
    loaded = load_text("datasets:\n  x: {dtype: <f8, full_shape: [100000000], "
                       "chunk_shape: [1000]}\n")
    assert loaded["x"].buffer_shape == (62_500_000,)
    assert loaded["x"].compression_method == "gzip"


def test_a_method_alone_gets_its_default_options():
    loaded = load_text("datasets:\n  x: {dtype: <f8, full_shape: [100], "
                       "compression_method: zstd}\n")
    assert loaded["x"].compression_options == {"clevel": 3}


def test_contiguous_entry_without_compression_fields():
    loaded = load_text("datasets:\n  x: {dtype: <f8, full_shape: [100], chunk_shape: null}\n")
    assert loaded["x"].chunk_shape is None and loaded["x"].compression_method is None
    assert loaded["x"].filter == ()


def test_scalar_entry_written_by_hand():
    loaded = load_text("datasets:\n  /s/: {dtype: vlen-str, full_shape: []}\n")
    assert loaded["s"].full_shape == () and loaded["s"].chunk_shape is None
    assert h5py.check_string_dtype(loaded["s"].dtype).encoding == "utf-8"


def test_compound_written_by_hand():
    loaded = load_text("datasets:\n"
                       "  t:\n"
                       "    dtype: [[a, <i4], [b, <f8, [2, 2]], [c, vlen-str]]\n"
                       "    full_shape: [10]\n")
    dtype = loaded["t"].dtype
    assert dtype.names == ("a", "b", "c")
    assert dtype["b"].shape == (2, 2)
    assert h5py.check_string_dtype(dtype["c"]) is not None


# ---- bad files ---------------------------------------------------------------------------------

def at(path):
    """A pattern for a message that starts with ``path``."""
    return f"^{re.escape(str(path))}: "


def write(tmp_path, text, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, message", [
    ("datasets: [unclosed\n", "not a valid YAML plan"),
    ("datasets:\n  a: {dtype: <f8\n", "not a valid YAML plan"),
    ("\tdatasets: {}\n", "not a valid YAML plan"),
    ("", "a plan file needs a 'datasets' mapping"),
    ("just text\n", "a plan file needs a 'datasets' mapping"),
    ("- datasets\n", "a plan file needs a 'datasets' mapping"),
    ("h5forge_plan: 1\n", "a plan file needs a 'datasets' mapping"),
    ("h5forge_plan: 1\ndatasets: {}\nextra: 1\n", r"unknown key\(s\) extra"),
    ("datasets: {}\ncomment: x\nzzz: 1\n", r"unknown key\(s\) comment, zzz"),
    ("h5forge_plan: 2\ndatasets: {}\n", "plan format 2 is not supported"),
    ("datasets: [a, b]\n", "a plan must map dataset locations to fields, got list"),
])
def test_bad_file_names_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError, match=message) as info:
        BackendConfiguration.from_yaml(path)
    assert str(info.value).startswith(f"{path}: ")


ENTRY_ERRORS = [
    ("{dtype: <f8, full_shape: [10], chunks: [5]}", r"unknown field\(s\) chunks"),
    ("{dtype: <f8, full_shape: [10], comment: x, size: 3}", r"unknown field\(s\) comment, size"),
    ("{dtype: <f8, full_shape: [10], location: other}", r"unknown field\(s\) location"),
    ("{dtype: notatype, full_shape: [10]}", "bad dtype 'notatype'"),
    ("{dtype: [[x]], full_shape: [10]}", "bad dtype"),
    ("{dtype: 5, full_shape: [10]}", "bad dtype 5"),
    ("{full_shape: [10]}", "the plan lacks 'dtype'"),
    ("{dtype: <f8}", "the plan lacks 'full_shape'"),
    ("{dtype: <f8, full_shape: null}", "full_shape must be a tuple of integers"),
    ("{dtype: <f8, full_shape: [-1]}", "negative size"),
    ("{dtype: <f8, full_shape: [10], chunk_shape: [20]}", r"exceeds full_shape \(10,\)"),
    ("{dtype: <f8, full_shape: [10], chunk_shape: [0]}", "sizes must be positive"),
    ("{dtype: <f8, full_shape: [10], chunk_shape: [2.5]}", "chunk_shape must be a tuple of"),
    ("{dtype: <f8, full_shape: [10], chunk_shape: [true]}", "chunk_shape must be a tuple of"),
    ("{dtype: <f8, full_shape: [10], chunk_shape: ['5']}", "chunk_shape must be a tuple of"),
    ("{dtype: <f8, full_shape: [10], chunk_shape: [5, 5]}", "has rank 2"),
    ("{dtype: <f8, full_shape: [10], chunk_shape: [3], buffer_shape: [5]}",
     "not a whole number of chunks"),
    ("{dtype: <f8, full_shape: [10], chunk_shape: [5], buffer_shape: [4]}",
     "smaller than chunk_shape"),
    ("{dtype: <f8, full_shape: [10], chunk_shape: null, compression_method: gzip}",
     "a contiguous dataset"),
    ("{dtype: <f8, full_shape: [10], compression_method: nope}",
     "unknown compression method 'nope'"),
    ("{dtype: <f8, full_shape: [10], compression_options: {level: 12}}", "gzip level"),
    ("{dtype: <f8, full_shape: [10], compression_options: [1]}", "must be a mapping"),
    ("{dtype: <f8, full_shape: [10], filter: [shuffle, bitshuffle]}", "not both"),
    ("{dtype: <f8, full_shape: [10], filter: [zip]}", "unknown filter 'zip'"),
    ("5", "a dataset plan must be a mapping of fields"),
]


@pytest.mark.parametrize("entry, message", ENTRY_ERRORS)
def test_bad_entry_names_the_file_and_the_location(tmp_path, entry, message):
    text = f"h5forge_plan: 1\ndatasets:\n  good: {{dtype: <f8, full_shape: [3]}}\n" \
           f"  grp/bad: {entry}\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError, match=message) as info:
        BackendConfiguration.from_yaml(path)
    assert str(info.value).startswith(f"{path}: grp/bad: ")


@pytest.mark.parametrize("entry", ["{dtype: <f8, full_shape: [10], filter: 5}",
                                   "{dtype: <f8, full_shape: [10], filter: true}"])
def test_a_filter_that_is_not_a_list_names_the_file_and_the_location(tmp_path, entry):
    path = write(tmp_path, f"datasets:\n  grp/bad: {entry}\n")
    with pytest.raises(ConfigurationError) as info:
        BackendConfiguration.from_yaml(path)
    assert str(info.value).startswith(f"{path}: grp/bad: ")


def test_bad_location_in_a_file(tmp_path):
    path = write(tmp_path, "datasets:\n  '/': {dtype: <f8, full_shape: [3]}\n")
    with pytest.raises(ConfigurationError, match=at(path) + "a dataset location must name"):
        load_plan(path)
    path = write(tmp_path, "datasets:\n  5: {dtype: <f8, full_shape: [3]}\n", "int.yaml")
    with pytest.raises(ConfigurationError, match=at(path) + "a dataset location must be a"):
        load_plan(path)


def test_duplicate_location_in_a_file(tmp_path):
    path = write(tmp_path, "datasets:\n  a/b: {dtype: <f8, full_shape: [3]}\n"
                           "  /a/b: {dtype: <f8, full_shape: [3]}\n")
    with pytest.raises(ConfigurationError, match=at(path) + "a/b: planned twice"):
        load_plan(path)


def test_a_stream_error_names_the_stream(tmp_path):
    with pytest.raises(ConfigurationError, match=r"^<stream>: grp/bad: the plan lacks"):
        load_text("datasets:\n  grp/bad: {dtype: <f8}\n")
    path = write(tmp_path, "datasets:\n  grp/bad: {dtype: <f8}\n")
    with open(path, encoding="utf-8") as stream:
        with pytest.raises(ConfigurationError, match=at(path) + "grp/bad: the plan lacks"):
            load_plan(stream)


def test_a_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_plan(tmp_path / "nope.yaml")


def test_python_tags_are_not_executed(tmp_path):
    path = write(tmp_path, "datasets: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigurationError, match="not a valid YAML plan"):
        load_plan(path)
