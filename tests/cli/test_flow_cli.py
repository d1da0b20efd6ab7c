"""``h5forge flow``: the command runs configs, applies -i/-s/-e/-d/-z, reports errors."""

from __future__ import annotations

import h5py
import numpy as np

from h5forge.cli.main import main
from h5forge.io import get_current_configuration
from tests.flow.test_run import STAGES, config


def make_input(tmp_path):
    (tmp_path / "my_stages.py").write_text(STAGES)
    with h5py.File(tmp_path / "in.h5", "w") as f:
        data = np.zeros(10, [("energy", "f8")])
        data["energy"] = np.arange(10)
        f.create_dataset("events/data", data=data, chunks=(4,))
    return config(tmp_path, """
        flow: {source: events, stages: [hits, sum]}
        hits: {classname: Hits, path: my_stages.py}
        sum: {classname: Sum, path: my_stages.py, requires: [{name: ev_hits, path: hits}]}
    """)


def test_flow_command_with_range_drop_and_compression(tmp_path, capsys):
    cfg = make_input(tmp_path)
    out = tmp_path / "out.h5"
    code = main(["flow", "-c", str(cfg), "-o", str(out), "-i", str(tmp_path / "in.h5"),
                 "-s", "4", "-e", "10", "-d", "hits", "-z", "zstd", "-v", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"{out}: 6 rows in 2 chunks" in printed and "  sum: " in printed
    with h5py.File(out, "r") as f:
        assert "hits" not in f
        assert np.allclose(f["sums/data"][4:10], np.arange(4, 10))
    assert get_current_configuration(out)["sums/data"].compression_method == "zstd"


def test_flow_command_errors_are_reported_not_raised(tmp_path, capsys):
    cfg = config(tmp_path, "flow: {source: events, stages: [missing]}\n")
    code = main(["flow", "-c", str(cfg), "-o", str(tmp_path / "out.h5")])
    assert code == 2
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "out.h5").exists()
