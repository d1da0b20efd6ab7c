"""The undo journal under h5py's fileobj driver (h5forge.versions.journal).

Plain-bytes tests of JournalFile / recover (overwrites, appends, truncation, torn entries,
commit, idempotent recovery), then the same guarantee with real h5py writes through the
``fileobj`` driver: closing HDF5 without ``commit()`` and recovering gives back the original
file byte for byte.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib

import h5py
import numpy as np
import pytest

from h5forge.errors import CorruptFileError
from h5forge.versions.journal import JournalFile, journal_path, recover

HEADER = struct.Struct("<8sQ")
ENTRY = struct.Struct("<QQI")
ORIGINAL = bytes((i * 7 + 3) % 256 for i in range(4096))


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "data.bin"
    p.write_bytes(ORIGINAL)
    return str(p)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def entries(path: str) -> tuple[int, list[tuple[int, bytes]]]:
    """(file size at begin, [(offset, saved bytes)]) of the journal of ``path``."""
    raw = read(journal_path(path))
    magic, size = HEADER.unpack_from(raw)
    assert magic == b"H5FJRNL1"
    out = []
    pos = HEADER.size
    while pos < len(raw):
        offset, length, crc = ENTRY.unpack_from(raw, pos)
        data = raw[pos + ENTRY.size:pos + ENTRY.size + length]
        assert zlib.crc32(data) == crc
        out.append((offset, data))
        pos += ENTRY.size + length
    return size, out


def write_at(jf: JournalFile, offset: int, data: bytes) -> None:
    jf.seek(offset)
    assert jf.write(data) == len(data)


# -- plain bytes ---------------------------------------------------------------------------------

def test_overwrites_below_the_end_are_journaled_once_and_undone(path):
    jf = JournalFile(path)
    write_at(jf, 100, b"X" * 50)
    write_at(jf, 120, b"Y" * 100)  # overlaps the first write: only [150, 220) is new
    write_at(jf, 100, b"Z" * 120)  # entirely saved already
    write_at(jf, 0, b"W" * 10)
    expected = bytearray(ORIGINAL)
    expected[100:220] = b"Z" * 120
    expected[0:10] = b"W" * 10
    assert read(path) == bytes(expected)

    size, saved = entries(path)
    assert size == len(ORIGINAL)
    covered = sorted((offset, offset + len(data)) for offset, data in saved)
    assert sum(e - s for s, e in covered) == 130  # every original byte saved exactly once
    assert all(a[1] <= b[0] for a, b in zip(covered, covered[1:]))  # disjoint
    for offset, data in saved:  # and the saved bytes are the originals, not a later write
        assert data == ORIGINAL[offset:offset + len(data)]

    jf.close()  # the process dies here: no commit
    assert os.path.exists(journal_path(path))
    assert recover(path) is True
    assert read(path) == ORIGINAL
    assert not os.path.exists(journal_path(path))


def test_recover_leaves_a_live_writer_alone_and_undoes_a_dead_one(path):
    jf = JournalFile(path)
    write_at(jf, 4000, b"\xff" * 500)  # straddles the end: 96 bytes saved, 404 appended
    assert len(read(path)) == 4500
    assert recover(path) is False  # the writer holds its lock: its journal is not ours
    assert len(read(path)) == 4500
    jf.close()  # what a killed process's descriptors do: the lock goes, the journal stays
    assert recover(path) is True
    assert read(path) == ORIGINAL


def test_a_second_writer_is_refused(path):
    from h5forge.versions.journal import FileLockedError

    first = JournalFile(path)
    with pytest.raises(FileLockedError, match="open for writing"):
        JournalFile(path)
    first.close()
    JournalFile(path).close()  # free again


def test_appends_past_the_end_are_truncated_away(path):
    jf = JournalFile(path)
    write_at(jf, 10, b"a")  # an overwrite, so there is a journal
    write_at(jf, len(ORIGINAL), b"b" * 1000)
    write_at(jf, 10_000, b"c" * 10)  # a hole, then more
    assert len(read(path)) == 10_010
    _, saved = entries(path)
    assert [(o, len(d)) for o, d in saved] == [(10, 1)]  # appends are never journaled
    jf.close()
    assert recover(path) is True
    assert read(path) == ORIGINAL


def test_append_only_transaction_is_undone(path):
    """A transaction that only appended (HDF5 writes new raw chunks at the end of the file
    before its first metadata overwrite) must also return the file to its committed size."""
    jf = JournalFile(path)
    write_at(jf, len(ORIGINAL), b"new chunk" * 100)
    jf.close()  # killed before any byte below the old end was touched
    recover(path)
    assert read(path) == ORIGINAL
    assert not os.path.exists(journal_path(path))


def test_truncate_below_the_original_size_is_undone(path):
    jf = JournalFile(path)
    jf.truncate(1000)
    assert len(read(path)) == 1000
    write_at(jf, 1000, b"q" * 2000)  # regrow over the cut part (already saved by truncate)
    write_at(jf, 500, b"r" * 10)
    jf.seek(1500)
    jf.truncate()  # at the position
    assert len(read(path)) == 1500
    size, saved = entries(path)
    assert size == len(ORIGINAL)
    assert sorted((o, len(d)) for o, d in saved) == [(500, 10), (1000, 3096)]
    jf.close()
    assert recover(path) is True
    assert read(path) == ORIGINAL


def test_torn_last_entry_is_ignored(path):
    jf = JournalFile(path)
    write_at(jf, 0, b"A" * 100)
    write_at(jf, 2000, b"B" * 100)
    jf.close()
    full = read(journal_path(path))
    first_entry_end = HEADER.size + ENTRY.size + 100
    assert len(full) == first_entry_end + ENTRY.size + 100
    # Killed while appending the second entry: its bytes at 2000 were not yet overwritten (the
    # journal is written first), so put them back the way they were on disk at that moment.
    disk = bytearray(read(path))
    disk[2000:2100] = ORIGINAL[2000:2100]
    for cut in (first_entry_end + 3, first_entry_end + ENTRY.size,
                first_entry_end + ENTRY.size + 50, len(full) - 1):
        with open(path, "wb") as f:
            f.write(disk)
        with open(journal_path(path), "wb") as f:
            f.write(full[:cut])
        assert recover(path) is True
        assert read(path) == ORIGINAL, cut
        assert not os.path.exists(journal_path(path))


def test_corrupted_last_entry_is_ignored(path):
    """The entry's length was written but its bytes are garbage (crc mismatch)."""
    jf = JournalFile(path)
    write_at(jf, 0, b"A" * 100)
    write_at(jf, 2000, b"B" * 100)
    jf.close()
    journal = bytearray(read(journal_path(path)))
    journal[-1] ^= 0xFF
    with open(journal_path(path), "wb") as f:
        f.write(journal)
    disk = bytearray(read(path))
    disk[2000:2100] = ORIGINAL[2000:2100]
    with open(path, "wb") as f:
        f.write(disk)
    assert recover(path) is True
    assert read(path) == ORIGINAL


def test_journal_killed_before_its_header_is_removed(path):
    with open(journal_path(path), "wb") as f:
        f.write(b"H5FJ")  # created (O_TRUNC) and killed mid-header: the file is untouched
    assert recover(path) is False
    assert read(path) == ORIGINAL
    assert not os.path.exists(journal_path(path))


def test_foreign_journal_is_refused(path):
    with open(journal_path(path), "wb") as f:
        f.write(b"NOTAJRNL" + bytes(8))
    with pytest.raises(CorruptFileError):
        recover(path)
    assert read(path) == ORIGINAL  # nothing touched
    assert os.path.exists(journal_path(path))


def test_commit_deletes_the_journal_and_keeps_the_writes(path):
    jf = JournalFile(path)
    write_at(jf, 0, b"first")
    write_at(jf, len(ORIGINAL), b"tail")
    assert os.path.exists(journal_path(path))
    jf.commit()
    assert not os.path.exists(journal_path(path))
    committed = read(path)
    assert committed == b"first" + ORIGINAL[5:] + b"tail"
    assert recover(path) is False
    assert read(path) == committed

    # the next transaction starts from the committed state (its size, its bytes)
    write_at(jf, 2, b"second")
    write_at(jf, len(committed), b"more")
    size, saved = entries(path)
    assert size == len(committed)
    assert saved == [(2, committed[2:8])]
    jf.close()
    assert recover(path) is True
    assert read(path) == committed


def test_commit_without_writes_and_durable_mode(path):
    jf = JournalFile(path, durable=True)
    jf.commit()  # nothing written: no journal to delete
    assert not os.path.exists(journal_path(path))
    write_at(jf, 7, b"durable")
    assert os.path.exists(journal_path(path))
    jf.commit()
    assert not os.path.exists(journal_path(path))
    jf.close()
    assert read(path) == ORIGINAL[:7] + b"durable" + ORIGINAL[14:]


def test_rollback_restores_and_starts_a_new_transaction(path):
    jf = JournalFile(path)
    write_at(jf, 50, b"undo me")
    write_at(jf, len(ORIGINAL), b"and me")
    jf.rollback()
    assert read(path) == ORIGINAL
    assert not os.path.exists(journal_path(path))
    write_at(jf, 60, b"kept")
    jf.commit()
    jf.close()
    assert read(path) == ORIGINAL[:60] + b"kept" + ORIGINAL[64:]


def test_recover_without_a_journal_returns_false(path):
    assert recover(path) is False
    assert read(path) == ORIGINAL


def test_recover_is_idempotent_when_interrupted(path):
    jf = JournalFile(path)
    write_at(jf, 0, b"x" * 300)
    jf.truncate(3000)
    write_at(jf, 3000, b"y" * 5000)
    jf.close()
    saved_journal = journal_path(path) + ".copy"
    shutil.copy(journal_path(path), saved_journal)
    assert recover(path) is True
    assert read(path) == ORIGINAL
    # Killed after writing the saved bytes back but before removing the journal: run again.
    shutil.copy(saved_journal, journal_path(path))
    assert recover(path) is True
    assert read(path) == ORIGINAL
    # Killed half-way through the first recovery: only part of the bytes put back.
    jf = JournalFile(path)
    write_at(jf, 0, b"x" * 300)
    write_at(jf, 1000, b"z" * 300)
    jf.truncate(3000)
    jf.close()
    shutil.copy(journal_path(path), saved_journal)
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(ORIGINAL[1000:1300])  # the first entry restored, nothing else
    assert recover(path) is True
    assert read(path) == ORIGINAL
    assert recover(path) is False


def test_file_object_protocol(path):
    jf = JournalFile(path)
    assert jf.readable() and jf.writable() and jf.seekable() and not jf.closed
    assert jf.seek(10) == 10 and jf.read(5) == ORIGINAL[10:15] and jf.tell() == 15
    assert jf.seek(5, 1) == 20
    assert jf.seek(-6, 2) == len(ORIGINAL) - 6 and jf.read() == ORIGINAL[-6:]
    buffer = bytearray(8)
    jf.seek(100)
    assert jf.readinto(buffer) == 8 and bytes(buffer) == ORIGINAL[100:108]
    jf.seek(len(ORIGINAL) - 2)
    assert jf.readinto(buffer) == 2
    assert jf.fileno() >= 0
    jf.seek(0, 2)
    assert jf.write(np.arange(3, dtype="<u2")) == 6  # any buffer
    assert read(path) == ORIGINAL + np.arange(3, dtype="<u2").tobytes()
    jf.close()
    jf.close()
    assert jf.closed


def test_create_truncates_and_has_nothing_to_undo(path):
    jf = JournalFile(path, create=True)
    write_at(jf, 0, b"fresh")
    with open(journal_path(path), "rb") as journal:  # only the header: nothing to save
        assert len(journal.read()) == 16
    jf.commit()
    assert not os.path.exists(journal_path(path))
    jf.close()
    assert read(path) == b"fresh"


# -- real HDF5 through the fileobj driver -----------------------------------------------------

def make_hdf5(path: str) -> None:
    rng = np.random.default_rng(7)
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["title"] = "original"
        f.create_dataset("chunked", data=rng.random((200, 300)), chunks=(50, 50),
                         maxshape=(None, 300))
        f.create_dataset("contiguous", data=np.arange(10_000, dtype="i8"))
        f.create_dataset("packed", data=rng.integers(0, 5, 50_000), chunks=(5000,),
                         compression="gzip")
        g = f.create_group("group")
        g.attrs["n"] = 3
        for i in range(20):
            g.create_dataset(f"d{i}", data=np.full(100, i))


def h5_content(path: str) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            attrs = {k: np.asarray(v).tolist() for k, v in obj.attrs.items()}
            out[name] = (obj[()] if isinstance(obj, h5py.Dataset) else None, attrs)
        visit("/", f)
        f.visititems(visit)
    return out


def modify_hdf5(f: h5py.File) -> None:
    f.attrs["title"] = "changed"
    f.attrs["new"] = np.arange(100)
    f["chunked"][10:120, 40:260] = -1.0
    f["chunked"].resize((400, 300))
    f["chunked"][300:] = 5.0
    f["contiguous"][::3] = 0
    f["packed"][:] = 9
    del f["group/d3"]
    f["group"].attrs["n"] = 4
    for i in range(30):
        f.create_dataset(f"group/new{i}", data=np.full(1000, -i))
    f.create_group("fresh").create_dataset("x", data=np.ones((100, 100)), chunks=(10, 10))


@pytest.mark.parametrize("flush_only", [False, True], ids=["closed", "flushed"])
def test_hdf5_writes_without_commit_are_undone_byte_for_byte(tmp_path, flush_only):
    path = str(tmp_path / "real.h5")
    make_hdf5(path)
    original = read(path)
    content = h5_content(path)

    jf = JournalFile(path)
    f = h5py.File(jf, "r+")
    modify_hdf5(f)
    if flush_only:  # killed right after a flush, HDF5 still open: recover a copy of the disk
        f.flush()
        target = str(tmp_path / "killed.h5")
        shutil.copy(path, target)
        shutil.copy(journal_path(path), journal_path(target))
        f.close()
        jf.close()
    else:  # HDF5 closed normally (every write done), but the transaction never committed
        f.close()
        jf.close()
        target = path
    assert read(target) != original
    assert os.path.exists(journal_path(target))

    assert recover(target) is True
    assert read(target) == original
    assert not os.path.exists(journal_path(target))
    after = h5_content(target)
    assert after.keys() == content.keys()
    for name, (data, attrs) in content.items():
        assert after[name][1] == attrs
        if data is not None:
            np.testing.assert_array_equal(after[name][0], data)


def test_hdf5_committed_writes_survive_and_later_ones_are_undone(tmp_path):
    path = str(tmp_path / "real.h5")
    make_hdf5(path)
    jf = JournalFile(path)
    f = h5py.File(jf, "r+")
    f["contiguous"][:100] = -7
    f.attrs["title"] = "first commit"
    f.flush()
    jf.commit()
    committed = read(path)

    modify_hdf5(f)
    f.close()
    jf.close()
    assert recover(path) is True
    assert read(path) == committed
    with h5py.File(path, "r") as check:
        assert check.attrs["title"] == "first commit"
        assert (check["contiguous"][:100] == -7).all()
        assert "fresh" not in check and "group/d3" in check


def test_a_versioned_file_has_one_writer_and_plain_readers_between_commits(tmp_path):
    import h5py

    from h5forge.versions import VersionedFile
    from h5forge.versions.journal import FileLockedError

    path = str(tmp_path / "v.h5")
    with VersionedFile(path, "w") as vf:
        with vf.stage_version("v1") as g:
            g["x"] = np.arange(10)
        with pytest.raises(FileLockedError):
            VersionedFile(path, "r+")
        with h5py.File(path, "r") as plain:  # between commits h5py reads the mirror
            assert list(plain["x"][:3]) == [0, 1, 2]
        with VersionedFile(path, "r") as reader:  # no journal between commits
            assert reader.versions == ["v1"]
    assert not os.path.exists(path + ".h5forge-lock")
