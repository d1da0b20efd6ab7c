"""Writes the h5flow golden files of this directory with the real h5flow (not with h5forge).

h5flow is not on PyPI. To remake the files, check out its source and install it with its own
dependencies into a scratch environment (outside this repository), then run this script there::

    git clone https://github.com/lbl-neutrino/h5flow /tmp/h5flow-src      # commit 050f9ea (0.2.4)
    python -m venv /tmp/h5flow-venv
    /tmp/h5flow-venv/bin/pip install numpy h5py pyyaml 'pyyaml-include<2.0' tqdm pytest
    /tmp/h5flow-venv/bin/pip install --no-deps -e /tmp/h5flow-src
    H5FLOW_NOMPI=1 /tmp/h5flow-venv/bin/python tests/data/h5flow/make_h5flow_golden.py \\
        --h5flow-src /tmp/h5flow-src

It writes (each small; the tests read them without h5flow):

- ``example.h5``: h5flow's own example (``examples/example_config.yaml`` and
  ``examples/modules/examples.py``, unchanged) run by ``h5flow.run`` for 2 generator iterations
  (``end_position=2``: 2,048 source rows) with gzip, from h5flow's source directory (h5flow finds
  the classes by scanning the working directory).
- ``refs.h5``: three tables written through h5flow's ``H5FlowDataManager``: ``A`` (6 int rows),
  ``B`` (20 rows, fields ``q`` f4 and ``t`` i8) and ``C`` (30 int rows); references ``A -> B``
  written in two batches (row 0 of ``A`` in both), ``C -> B``, then more ``A``/``B`` references
  written from ``B``'s side (``write_ref('B', 'A', ...)``, stored reversed in ``A``'s table);
  an empty ``D -> A`` reference table.
- ``expected.npz``: what h5flow's own reading code returns on those files (its
  ``H5FlowDataManager.__getitem__``, ``get_ref`` with its child-to-parent fallback,
  ``dereference`` / ``dereference_chain``, and the requires of the example's
  ``example_stage1`` as its ``H5FlowManager.load_requirement`` resolves them): per result
  ``<key>.data`` and ``<key>.mask`` (masked arrays) or ``<key>`` (plain arrays), plus
  ``h5flow_version`` and ``h5flow_commit``.

The files are committed; ``tests/flow/test_h5flow_files.py`` checks h5forge against them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _store(out: dict, key: str, value) -> None:
    if isinstance(value, np.ma.MaskedArray):
        out[f"{key}.data"] = np.asarray(value.data)
        out[f"{key}.mask"] = np.ma.getmaskarray(value)
    else:
        out[key] = np.asarray(value)


def make_example(src: Path, out: dict) -> None:
    import h5flow
    from h5flow.data import H5FlowDataManager, dereference, dereference_chain

    target = HERE / "example.h5"
    if target.exists():
        target.unlink()
    here = os.getcwd()
    os.chdir(src)  # h5flow finds ExampleStage & co. by scanning the working directory
    try:
        h5flow.run(["examples/example_config.yaml"], str(target), end_position=2,
                   compression="gzip")
    finally:
        os.chdir(here)

    dm = H5FlowDataManager(str(target), mode="r", mpi=False)
    src_name, s0, s1 = "input/index", "stage0/example", "stage1/example"
    for sl in (slice(0, 50), slice(1000, 1100), slice(2040, 2048)):
        tag = f"{sl.start}_{sl.stop}"
        _store(out, f"example/getitem/{src_name}>{s0}/{tag}", dm[src_name, s0, sl])
        _store(out, f"example/getitem/{s0}>{src_name}/{tag}", dm[s0, src_name, sl])
        _store(out, f"example/getitem/{s1}>{src_name}>{s0}/{tag}", dm[s1, src_name, s0, sl])
    # example_stage1's requires on each chunk, resolved as H5FlowManager.load_requirement does
    for sl in (slice(0, 1024), slice(1024, 2048)):
        tag = f"{sl.start}_{sl.stop}"
        ref, direction = dm.get_ref(src_name, s0)
        region = dm.get_ref_region(src_name, s0)
        _store(out, f"example/require/stage0/example/{tag}",
               dereference_chain(sl, [ref], data=dm.get_dset(s0), regions=[region],
                                 ref_directions=[direction]))
        _store(out, f"example/require/stage0/example_idcs/{tag}",
               dereference_chain(sl, [ref], data=dm.get_dset(s0), regions=[region],
                                 ref_directions=[direction], indices_only=True))
        chain = [(src_name, s0), (s0, src_name)]
        refs, dirs = zip(*[dm.get_ref(p, c) for p, c in chain])
        regions = [dm.get_ref_region(p, c) for p, c in chain]
        _store(out, f"example/require/input/index_once_referred/{tag}",
               dereference_chain(sl, refs, data=dm.get_dset(src_name), regions=regions,
                                 ref_directions=dirs))
    # child -> parent with h5flow's get_ref fallback and its dereference
    ref, direction = dm.get_ref(s0, src_name)
    out["example/get_ref/stage0>input/direction"] = np.asarray(direction)
    _store(out, "example/dereference/stage0>input/list_lengths",
           np.asarray([len(x) for x in dereference(slice(0, 2048), ref, dm.get_dset(src_name),
                                                   region=dm.get_ref_region(s0, src_name),
                                                   ref_direction=direction,
                                                   as_masked=False)]))
    dm.close_file()


def make_refs(out: dict) -> None:
    from h5flow.data import H5FlowDataManager, dereference

    target = HERE / "refs.h5"
    if target.exists():
        target.unlink()
    dm = H5FlowDataManager(str(target), mode="a", mpi=False)
    b_dtype = np.dtype([("q", "f4"), ("t", "i8")])
    dm.create_dset("A", int)
    dm.create_dset("B", b_dtype)
    dm.create_dset("C", int)
    dm.create_dset("D", int)
    dm.create_ref("A", "B")
    dm.create_ref("C", "B")
    dm.create_ref("D", "A")
    sl = dm.reserve_data("A", 6)
    dm.write_data("A", sl, 10 * np.arange(6))
    sl = dm.reserve_data("B", 20)
    rows = np.zeros(20, b_dtype)
    rows["q"] = np.arange(20) / 4
    rows["t"] = np.arange(20)
    dm.write_data("B", sl, rows)
    sl = dm.reserve_data("C", 30)
    dm.write_data("C", sl, 100 + np.arange(30))
    dm.reserve_data("D", 2)  # reserved, never written: fill value
    # A -> B: rows 0..2 -> three children each, then rows 3..5 and row 0 again
    dm.write_ref("A", "B", np.array([[a, 3 * a + k] for a in range(3) for k in range(3)]))
    dm.write_ref("A", "B", np.array([[3, 9], [3, 10], [4, 12], [5, 15], [0, 18], [0, 19]]))
    # C -> B: child c -> B row c % 20 and c // 2
    dm.write_ref("C", "B", np.unique(np.array(
        [[c, c % 20] for c in range(30)] + [[c, c // 2] for c in range(30)]), axis=0))
    # written from B's side: B rows 5, 6 -> A row 4 (stored as (A, B) pairs in A's table)
    dm.write_ref("B", "A", np.array([[5, 4], [6, 4], [16, 1]]))

    for key, args in {
        "A>B/all": ("A", "B"),
        "A>B/0_6": ("A", "B", slice(0, 6)),
        "A>B/rows_0_5_3": ("A", "B", [0, 5, 3]),
        "A>B/int_4": ("A", "B", 4),
        "B>A/0_20": ("B", "A", slice(0, 20)),
        "A>B>C/0_6": ("A", "B", "C", slice(0, 6)),
        "C>B>A/0_30": ("C", "B", "A", slice(0, 30)),
        "D>A/0_2": ("D", "A", slice(0, 2)),
    }.items():
        _store(out, f"refs/getitem/{key}", dm[args])
    for parent, child in (("A", "B"), ("B", "A"), ("B", "C"), ("C", "B")):
        ref, direction = dm.get_ref(parent, child)
        out[f"refs/get_ref/{parent}>{child}/direction"] = np.asarray(direction)
        _store(out, f"refs/dereference/{parent}>{child}/indices",
               dereference(slice(0, len(dm.get_dset(parent))), ref,
                           region=dm.get_ref_region(parent, child), ref_direction=direction,
                           indices_only=True))
    dm.close_file()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--h5flow-src", required=True, type=Path,
                        help="h5flow's source checkout (its examples/ are run from there)")
    args = parser.parse_args()
    if os.environ.get("H5FLOW_NOMPI") != "1":
        sys.exit("set H5FLOW_NOMPI=1 (the golden files are written serially)")
    import h5flow  # noqa: F401 - fails early without h5flow

    out: dict = {}
    with tempfile.TemporaryDirectory():
        make_example(args.h5flow_src.resolve(), out)
        make_refs(out)
    commit = subprocess.run(["git", "-C", str(args.h5flow_src), "rev-parse", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    out["h5flow_version"] = np.asarray((args.h5flow_src / "VERSION").read_text().strip())
    out["h5flow_commit"] = np.asarray(commit)
    np.savez_compressed(HERE / "expected.npz", **out)
    print(f"wrote {HERE / 'example.h5'}, {HERE / 'refs.h5'}, {HERE / 'expected.npz'} "
          f"({len(out)} arrays) with h5flow {out['h5flow_version']} at {commit[:7]}")


if __name__ == "__main__":
    main()
