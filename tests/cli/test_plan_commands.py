"""``h5forge config`` and ``h5forge repack``: plans printed, saved, edited and applied."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import yaml

import h5forge
from h5forge.cli.main import main
from h5forge.io import BackendConfiguration, get_current_configuration


@pytest.fixture
def source(tmp_path):
    """A store file with a 2-D recording, a small array, and a user-visible attribute."""
    path = tmp_path / "src.h5"
    obj = {"recording": np.arange(40_000, dtype=np.int16).reshape(-1, 8),
           "times": np.linspace(0, 1, 100), "meta": {"subject": "M12"}}
    h5forge.dump(obj, path)
    with h5py.File(path, "a") as f:
        f["recording"].attrs["units"] = "uV"
    return path, obj


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_config_prints_default_plan(capsys, source):
    path, _ = source
    code, out, err = run(capsys, "config", path)
    assert code == 0 and err == ""
    assert out.startswith("HDF5 dataset configuration: 2 dataset(s)")
    block = out.split("\nrecording\n")[1]
    assert "full shape           : (5000, 8)" in block
    assert "chunk shape          : (5000, 8)" in block
    assert "compression          : gzip (level=4)" in block


def test_config_current_shows_the_file_as_written(capsys, source):
    path, _ = source
    code, out, _ = run(capsys, "config", path, "--current")
    assert code == 0
    assert "chunk shape  : None (contiguous)" in out and "gzip" not in out


def test_config_yaml_and_output_file_round_trip(capsys, source, tmp_path):
    path, _ = source
    code, out, _ = run(capsys, "config", path, "--yaml", "-z", "zstd", "--level", "7")
    assert code == 0
    parsed = yaml.safe_load(out)
    assert parsed["datasets"]["recording"]["compression_method"] == "zstd"
    assert parsed["datasets"]["recording"]["compression_options"] == {"clevel": 7}
    plan_path = tmp_path / "plan.yaml"
    code, out, _ = run(capsys, "config", path, "-o", plan_path)
    assert code == 0 and "2 dataset(s)" in out
    assert BackendConfiguration.from_yaml(plan_path)["times"].full_shape == (100,)


def test_repack_with_compression_keeps_objects_and_attributes(capsys, source, tmp_path):
    path, obj = source
    dst = tmp_path / "dst.h5"
    code, _, err = run(capsys, "repack", path, dst, "-z", "zstd", "--level", "5",
                       "--no-progress")
    assert code == 0, err
    current = get_current_configuration(dst)
    assert current["recording"].compression_method == "zstd"
    assert current["recording"].compression_options == {"clevel": 5}
    loaded = h5forge.load(dst)
    assert np.array_equal(loaded["recording"], obj["recording"])
    assert loaded["meta"] == obj["meta"]
    with h5py.File(dst, "r") as f:
        assert f["recording"].attrs["units"] == "uV"


def test_repack_with_edited_yaml_plan(capsys, source, tmp_path):
    path, obj = source
    plan_path = tmp_path / "plan.yaml"
    assert run(capsys, "config", path, "-o", plan_path)[0] == 0
    text = yaml.safe_load(plan_path.read_text())
    text["datasets"]["recording"].update(chunk_shape=[1000, 8], buffer_shape=[2000, 8],
                                         compression_method="lz4", compression_options=None,
                                         filter=["bitshuffle"])
    plan_path.write_text(yaml.safe_dump(text))
    dst = tmp_path / "dst.h5"
    code, _, err = run(capsys, "repack", path, dst, "--config", plan_path)
    assert code == 0, err
    entry = get_current_configuration(dst)["recording"]
    assert entry.chunk_shape == (1000, 8)
    assert entry.compression_method == "lz4" and entry.filter == ("bitshuffle",)
    assert np.array_equal(h5forge.load(dst)["recording"], obj["recording"])


def test_repack_refuses_existing_destination_and_keeps_it(capsys, source, tmp_path):
    path, _ = source
    dst = tmp_path / "dst.h5"
    dst.write_bytes(b"precious")
    code, _, err = run(capsys, "repack", path, dst)
    assert code == 2 and "overwrite" in err
    assert dst.read_bytes() == b"precious"


def test_repack_in_place_with_overwrite(capsys, source):
    path, obj = source
    code, _, err = run(capsys, "repack", path, path, "--overwrite", "-z", "gzip", "--level", "9")
    assert code == 0, err
    assert get_current_configuration(path)["recording"].compression_options == {"level": 9}
    assert np.array_equal(h5forge.load(path)["recording"], obj["recording"])


@pytest.mark.parametrize("args, message", [
    (["-z", "nope"], "unknown compression method 'nope'; available: gzip"),
    (["-z", "lz4", "--level", "3"], "lz4 has no compression level"),
    (["--level", "3"], "--level and --option need --compression"),
    (["-z", "zstd", "--option", "clevel"], "--option expects KEY=VALUE"),
    (["-z", "gzip", "--level", "12"], "gzip level must be an integer 0..9"),
    (["-z", "zstd", "--option", "speed=3"], "unknown option(s) speed"),
])
def test_bad_compression_arguments(capsys, source, tmp_path, args, message):
    path, _ = source
    dst = tmp_path / "dst.h5"
    code, _, err = run(capsys, "repack", path, dst, *args)
    assert code == 2
    assert message in err
    assert not dst.exists()


def test_repack_with_a_plan_for_another_file_fails_before_writing(capsys, source, tmp_path):
    path, _ = source
    other = tmp_path / "other.h5"
    h5forge.dump({"elsewhere": np.zeros(10)}, other)
    plan_path = tmp_path / "plan.yaml"
    assert run(capsys, "config", other, "-o", plan_path)[0] == 0
    dst = tmp_path / "dst.h5"
    code, _, err = run(capsys, "repack", path, dst, "--config", plan_path)
    assert code == 2 and "elsewhere" in err and "does not have" in err
    assert not dst.exists()


def test_config_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "config", tmp_path / "missing.h5")
    assert code == 2 and "missing.h5: no such file" in err
