"""One HDF5 identifier per followed dataset, and refreshing it only where it means something.

HDF5 keeps one shared record per open dataset, whatever the number of identifiers opened on
it. ``H5Drefresh`` closes and reopens *one* identifier, so while a second one is open the
shared record (its extent, its chunk index) is not re-read: frames read afterwards can be
stale or fill values, and on a file in the earliest format (v1 B-tree chunk index) the next
read fails with "can't retrieve B-tree's shared ref. count object" and closing the file can
crash the process. Hence the rules here:

- a dataset named by path is looked up among the identifiers already open in the file (the
  ``h5py.Dataset`` objects the caller holds) and that identifier is borrowed (no reference of
  ours, so either side can still refresh it), so following never adds a second one;
- before a refresh, each dataset is checked to be open once; if the caller opened it after
  the follower did, the follower closes its own identifier and borrows theirs; if the caller
  holds it twice, a :class:`FollowError` says so rather than reading stale data;
- only files opened for SWMR reading are refreshed: a file opened without SWMR is not being
  written (HDF5 refuses such a reader while a SWMR writer has the file: "file is already
  open for write"), so it is read as it is.

Objects that are not ``h5py.Dataset`` (numpy arrays, test doubles) are read as they are and
refreshed only if they have a ``refresh`` method.
"""

from __future__ import annotations

from typing import Any, Iterable

import h5py
from h5py import h5f, h5i, h5o

from h5forge.errors import FollowError

__all__ = ["open_dataset", "usable", "is_open", "single", "FollowedDataset", "is_swmr_reader",
           "refresh", "describe", "layout_hint"]


def describe(dataset: Any) -> str:
    """``file.h5:/path`` for an h5py dataset, else a short description of the object."""
    if isinstance(dataset, h5py.Dataset):
        try:
            return f"{dataset.file.filename}:{dataset.name}"
        except (ValueError, RuntimeError, TypeError):  # closed
            return "a closed h5py.Dataset"
    name = getattr(dataset, "name", None)
    return name if isinstance(name, str) else type(dataset).__name__


def _address(dataset_id: h5py.h5d.DatasetID) -> tuple[int, int]:
    info = h5o.get_info(dataset_id)
    return info.fileno, info.addr


def layout_hint(dataset: Any) -> str:
    """A hint for read/refresh failures of contiguous datasets under SWMR, else ''."""
    try:
        contiguous = isinstance(dataset, h5py.Dataset) and dataset.chunks is None
    except (ValueError, RuntimeError, TypeError):
        return ""
    return (" It is contiguous (not chunked): HDF5 cannot show a SWMR reader a contiguous "
            "dataset's updates reliably, so the writer should create it with chunks "
            "(LiveWriter does)") if contiguous else ""


class FollowedDataset(h5py.Dataset):
    """An ``h5py.Dataset`` the follower found by path: either opened by it (``owned``) or
    *borrowed* -- the identifier an ``h5py.Dataset`` of the caller already holds, without a
    reference of the follower's own, so that the identifier stays open once and both sides
    can refresh it (HDF5 refuses to refresh an identifier referenced twice: "ID already in
    use"). When the caller drops theirs, :func:`usable` opens the path again; when the
    caller opens the dataset after the follower did, :func:`refresh` hands the follower's
    identifier over to theirs."""

    def __init__(self, bind: h5py.h5d.DatasetID, group: h5py.Group, path: str, what: str,
                 owned: bool):
        super().__init__(bind)
        self._h5forge_source = (group, path, what)
        self._h5forge_owned = owned


def open_dataset(group: h5py.Group, path: str, what: str) -> FollowedDataset:
    """The dataset at ``path`` in ``group``: the identifier already open for it (an
    ``h5py.Dataset`` the caller holds) when there is one, else a new one. ``what`` names the
    role for the error when there is no such dataset."""
    if not group.id.valid:
        raise FollowError(f"{what} dataset {path!r}: the h5py File/Group was closed")
    where = f"{group.file.filename}:{path}"
    try:
        info = h5o.get_info(group.id, path.encode())
    except (KeyError, ValueError, RuntimeError, OSError) as exc:
        if path not in group:
            raise FollowError(f"{where}: no such {what} dataset") from None
        raise _unopenable(where, what, exc) from exc
    if info.type != h5o.TYPE_DATASET:
        raise FollowError(f"{where}: is not a dataset (a {what} dataset is needed)")
    target = (info.fileno, info.addr)
    file_id = group.file.id
    for scope in (h5f.OBJ_DATASET | h5f.OBJ_LOCAL, h5f.OBJ_DATASET):  # this h5py.File first
        for open_id in h5f.get_obj_ids(file_id, scope):
            if _address(open_id) == target:
                # get_obj_ids added a reference: give it back, and never drop it again
                h5i.dec_ref(open_id)
                open_id.locked = True
                return FollowedDataset(open_id, group, path, what, owned=False)
    try:
        opened = group[path]
    except (KeyError, ValueError, RuntimeError, OSError) as exc:
        raise _unopenable(where, what, exc) from exc
    return FollowedDataset(opened.id, group, path, what, owned=True)


def _unopenable(where: str, what: str, exc: Exception) -> FollowError:
    return FollowError(f"{where}: the {what} dataset cannot be opened ({exc}). If a SWMR "
                       f"writer is writing it and it is contiguous (not chunked), HDF5 cannot "
                       f"show it to readers reliably: the writer should create it with chunks "
                       f"(LiveWriter does)")


def is_open(dataset: h5py.Dataset) -> bool:
    """Whether ``dataset``'s identifier is still open (h5py's ``valid`` is always True for
    the locked identifiers borrowed here)."""
    try:
        return h5i.get_type(dataset.id) == h5i.DATASET
    except (RuntimeError, ValueError, TypeError):
        return False


def usable(dataset: Any) -> Any:
    """``dataset``, or (a borrowed one whose owner dropped it) the path opened again; a
    :class:`FollowError` when an h5py dataset was closed under the follower."""
    if not isinstance(dataset, h5py.Dataset) or is_open(dataset):
        return dataset
    if isinstance(dataset, FollowedDataset):
        group, path, what = dataset._h5forge_source
        return open_dataset(group, path, what)
    raise FollowError("a dataset being followed was closed (its file closed?): open the file "
                      "and follow it again")


class _Facts:
    """What a followed h5py dataset's checks need, asked once: its file's identifier, its
    object address, whether the file is open for SWMR reading."""

    __slots__ = ("file_id", "address", "swmr")

    def __init__(self, dataset: h5py.Dataset):
        self.file_id = h5i.get_file_id(dataset.id)
        self.address = _address(dataset.id)
        self.swmr = bool(self.file_id.get_intent() & h5f.ACC_SWMR_READ)


def _facts(dataset: h5py.Dataset) -> _Facts:
    facts = getattr(dataset, "_h5forge_facts", None)
    if facts is None:
        facts = dataset._h5forge_facts = _Facts(dataset)
    return facts


# file number -> (the dataset identifiers open in it when last looked, {address: [ids]})
_open_by_file: dict[int, tuple[frozenset[int], dict[tuple[int, int], list[int]]]] = {}


def _others(dataset: h5py.Dataset) -> list[int]:
    """Other identifiers open on ``dataset``'s object in this process. Costs one listing of
    the file's open dataset identifiers; their addresses are looked up only when that list
    changed since the last call."""
    facts = _facts(dataset)
    # without OBJ_LOCAL: every identifier of the file, through any h5py.File opened on it
    listed = h5f.get_obj_ids(facts.file_id, h5f.OBJ_DATASET)
    ids = frozenset(i.id for i in listed)
    known = _open_by_file.get(facts.address[0])
    if known is None or known[0] != ids:
        by_address: dict[tuple[int, int], list[int]] = {}
        for open_id in listed:
            by_address.setdefault(_address(open_id), []).append(open_id.id)
        known = _open_by_file[facts.address[0]] = (ids, by_address)
    return [i for i in known[1].get(facts.address, ()) if i != dataset.id.id]


def single(dataset: h5py.Dataset) -> h5py.Dataset:
    """``dataset`` open once in this process: if the caller opened it too after the follower
    did, the follower's identifier is closed and the caller's borrowed instead; if the caller
    holds it twice, a :class:`FollowError` (a refresh could not show new data)."""
    others = _others(dataset)
    if others and isinstance(dataset, FollowedDataset) and dataset._h5forge_owned:
        group, path, what = dataset._h5forge_source
        dataset.id._close()
        dataset = open_dataset(group, path, what)
        others = _others(dataset)
    if others:
        raise FollowError(
            f"{describe(dataset)}: this dataset is open {len(others) + 1} times in this "
            f"process (several h5py.Dataset objects from separate lookups such as f[path]). "
            f"HDF5 cannot refresh a dataset opened more than once, so the writer's new data "
            f"would not be seen. Pass your h5py.Dataset itself to the follower instead of its "
            f"path, or drop the extra handles")
    return dataset


def is_swmr_reader(dataset: Any) -> bool:
    """Whether ``dataset``'s file is open for SWMR reading (the only case a refresh shows
    anything new). Non-h5py objects: whether they have a ``refresh`` method."""
    if isinstance(dataset, h5py.Dataset):
        return _facts(dataset).swmr
    return callable(getattr(dataset, "refresh", None))


def refresh(datasets: Iterable[Any]) -> list[Any]:
    """Refresh each of ``datasets`` that can show new data (SWMR readers; objects with a
    ``refresh`` method), each made :func:`single` first. Returns the datasets to use from now
    on (see :func:`usable` and :func:`single`)."""
    out = []
    for d in datasets:
        d = usable(d)
        if is_swmr_reader(d):
            if isinstance(d, h5py.Dataset):
                d = single(d)
            where = _described(d)  # a failed refresh closes the dataset: ask it now
            try:
                d.refresh()
            except (OSError, RuntimeError, ValueError) as exc:
                raise FollowError(f"{where[0]}: refreshing it for new data failed "
                                  f"({type(exc).__name__}: {exc}).{where[1]}") from exc
        out.append(d)
    return out


def _described(dataset: Any) -> tuple[str, str]:
    """``(describe(dataset), layout_hint(dataset))``, remembered on h5py datasets."""
    known = getattr(dataset, "_h5forge_described", None)
    if known is None:
        known = (describe(dataset), layout_hint(dataset))
        if isinstance(dataset, h5py.Dataset):
            dataset._h5forge_described = known
    return known
