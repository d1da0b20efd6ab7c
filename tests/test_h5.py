"""The core's hooks for objects that lend or take an h5py group (``h5forge._h5`` protocols)."""

from __future__ import annotations

import contextlib

import h5py
import pytest

import h5forge
from h5forge import _h5


def test_versioned_file_objects_implement_the_protocols(tmp_path):
    path = tmp_path / "v.h5"
    with h5forge.VersionedFile(path, "w") as vf:
        with vf.stage_version("v1") as stage:
            assert isinstance(stage, _h5.ImportTarget)
            h5forge.dump({"a": [1, 2]}, stage, "rec")  # through __h5forge_import__
        version = vf["v1"]
        assert isinstance(version, _h5.H5pyProvider)
        assert not isinstance(version, _h5.ImportTarget)
        assert h5forge.load(version, "rec") == {"a": [1, 2]}  # through __h5forge_h5py__


class Lender:
    """A minimal third-party H5pyProvider: lends a group of a file it opens per use."""

    def __init__(self, path):
        self.path = path

    @contextlib.contextmanager
    def __h5forge_h5py__(self):
        with h5py.File(self.path, "r") as f:
            yield f["inner"]


def test_any_h5py_provider_is_read_like_a_group(tmp_path):
    path = tmp_path / "l.h5"
    with h5py.File(path, "w") as f:
        h5forge.dump({"x": 1.5}, f.create_group("inner"))
    assert isinstance(Lender(path), _h5.H5pyProvider)
    assert h5forge.load(Lender(path)) == {"x": 1.5}
    with pytest.raises(h5forge.errors.TargetError, match="object"):
        h5forge.load(object())
