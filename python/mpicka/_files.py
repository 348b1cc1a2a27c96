"""The file side of an export: folders made for it (and removed again when
it fails), resizable datasets appended a batch at a time."""

from __future__ import annotations

import os

import h5py
import numpy as np

CHUNK_BYTES = 1 << 20  # fits HDF5's default 1 MiB chunk cache: mpicka reads a chunk once


def make_folders(parent: str) -> list[str]:
    """Creates parent and the folders above it that are missing; returns
    those it created, outermost first (another process may create one at the
    same time: that one is not ours to remove)."""
    missing = []
    while parent and not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    made: list[str] = []
    try:
        for folder in reversed(missing):
            try:
                os.mkdir(folder)
                made.append(folder)
            except FileExistsError:
                if not os.path.isdir(folder):
                    raise
    except BaseException:
        remove_folders(made)
        raise
    return made


def remove_folders(made: list[str]) -> None:
    """Removes the folders an export created, innermost first, each only
    while empty: a file another process wrote there meanwhile stays."""
    for folder in reversed(made):
        try:
            os.rmdir(folder)
        except OSError:
            return


def create_rows(f: h5py.File, name: str, arr: np.ndarray) -> h5py.Dataset:
    """A resizable dataset for rows like arr's, in chunks of about 1 MiB (at
    least one row)."""
    trailing = arr.shape[1:]
    row_bytes = max(1, int(np.prod(trailing, dtype=np.int64)) * arr.itemsize)
    rows = max(1, CHUNK_BYTES // row_bytes)
    return f.create_dataset(name, shape=(0,) + trailing, maxshape=(None,) + trailing, dtype=arr.dtype,
                            chunks=(rows,) + trailing)


def create_ids(f: h5py.File, name: str, dtype) -> h5py.Dataset:
    is_str = h5py.check_string_dtype(np.dtype(dtype)) is not None
    return f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype,
                            chunks=(CHUNK_BYTES // (16 if is_str else 8),))


def append(dset: h5py.Dataset, arr: np.ndarray) -> None:
    n0 = dset.shape[0]
    dset.resize(n0 + arr.shape[0], axis=0)
    dset[n0:] = arr


def write_index(f: h5py.File, name: str, n: int) -> None:
    """0..n-1, a chunk at a time: no n-sized array."""
    ids = f.create_dataset(name, shape=(n,), dtype=np.int64, chunks=(max(1, min(n, CHUNK_BYTES // 8)),))
    step = CHUNK_BYTES // 8
    for lo in range(0, n, step):
        ids[lo:lo + step] = np.arange(lo, min(n, lo + step), dtype=np.int64)
