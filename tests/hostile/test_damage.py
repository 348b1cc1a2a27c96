"""Damaged and incomplete storage, and what inputs link to: a damaged chunk or
chunk index, rows never written, virtual datasets and external storage that
do not cover the layer, virtual datasets that are their own source, pipes
behind links, and an input another process holds open for writing. Each is
an error naming file, dataset and rows (exit 3 at inspection, 4 at read
time) with nothing left behind, or, where the damage is provably harmless,
the oracle's numbers."""
import os

import h5py
import numpy as np
import pytest

from mkt import config, listing, minibatch_cka, read_cka, related, run, write_config, write_layers


def expect_failure(work, text, status, message, np_=1):
    write_config(work / "c.yaml", text)
    got, out = run(["run", "c.yaml", "--quiet"], work, np_)
    assert got == status, out
    for part in (message if isinstance(message, tuple) else (message,)):
        assert part in out, out
    assert out.count("mpicka: ") - out.count("mpicka: warning") == 1, out
    assert not (work / "out").exists(), f"out left behind: {listing(work / 'out')}"
    return out


def flip(path, offset, bit=0x10):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ bit]))


# ---------------------------------------------------- damaged chunks (1, 2)

LAYERS = {  # name: (dtype, h5py options); the last two HDF5 reads itself
    "f4": ("f4", dict(compression="gzip")),
    "f4_shuffle": ("f4", dict(compression="gzip", shuffle=True)),
    "f8": ("f8", dict(compression="gzip")),
    "f8_shuffle": ("f8", dict(compression="gzip", shuffle=True)),
    "i2": ("i2", dict(compression="gzip")),
    "f4_fletcher": ("f4", dict(compression="gzip", fletcher32=True)),
}


def chunked(work, kind, n=64, rows=16):
    dtype, opts = LAYERS[kind]
    a = related(n, [40], seed=4)[0] * (100 if dtype == "i2" else 1)
    with h5py.File(work / "z.h5", "w") as h:
        h.create_dataset("z", data=a.astype(dtype), chunks=(rows, 40), **opts)
        info = h["z"].id.get_chunk_info(2)
    return info.byte_offset, info.size, a.astype(dtype)


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("where", ["header", "middle", "trailer"])
def test_a_flipped_byte_in_a_chunk_is_an_io_error(work, kind, where):
    """Every flip in a chunk's deflate stream (its zlib header, its middle,
    the adler32 trailer; the fletcher32 checksum after it) is caught."""
    offset, size, _ = chunked(work, kind)
    flip(work / "z.h5", offset + {"header": 1, "middle": size // 2, "trailer": size - 2}[where])
    expect_failure(work, config("z.h5", extra="batch_size: 16\n"), 4,
                   "z.h5: cannot read examples 32..47 of dataset 'z'", np_=2)


def test_a_flip_in_the_last_deflate_bits_is_harmless_or_caught(work):
    """The byte before the adler32 trailer may end in padding bits: a flip
    there must give either the error or the undamaged numbers, never others."""
    offset, size, a = chunked(work, "f4")
    flip(work / "z.h5", offset + size - 5, bit=0x80)
    write_config(work / "c.yaml", config("z.h5", extra="batch_size: 16\n"))
    got, out = run(["run", "c.yaml", "--quiet"], work, 1)
    if got == 0:
        with h5py.File(work / "z.h5") as h:
            assert np.array_equal(h["z"][()], a)
        assert np.max(np.abs(read_cka(work / "out" / "cka.h5") - minibatch_cka([a], 16))) < 1e-9
    else:
        assert got == 4 and "cannot read examples 32..47 of dataset 'z'" in out, out


def chunk_records(path, count):
    """The file offsets of the chunk index's records (v1 B-tree leaf): size
    (4 bytes), filter mask (4), then the chunk's coordinates (8 each)."""
    raw = open(path, "rb").read()
    node = [i for i in range(len(raw)) if raw[i:i + 4] == b"TREE" and raw[i + 4] == 1][0]
    return [node + 24 + 40 * k for k in range(count)]


@pytest.mark.parametrize("what", ["coordinate", "mask"])
@pytest.mark.parametrize("kind", ["f4", "f4_shuffle", "i2", "f4_fletcher"])
def test_a_damaged_chunk_index_is_an_io_error(work, what, kind):
    """A flipped coordinate in the index: HDF5 finds no chunk at rows
    228..231 and reads the fill value; a flipped filter mask: a chunk read
    without unshuffling or inflating. Neither may become numbers."""
    dtype, opts = LAYERS[kind]
    a = (related(256, [10], seed=4)[0] * (100 if dtype == "i2" else 1)).astype(dtype)
    with h5py.File(work / "z.h5", "w") as h:
        h.create_dataset("z", data=a, chunks=(4, 10), **opts)
    record = chunk_records(work / "z.h5", 64)[57]
    flip(work / "z.h5", record + (17 if what == "coordinate" else 4), bit=0x01)  # column coordinate 0 -> 256
    with h5py.File(work / "z.h5") as h:  # HDF5 itself reads other numbers, no error
        assert not np.array_equal(h["z"][228:232], a[228:232])
    expect_failure(work, config("z.h5", extra="batch_size: 32\n"), 4,
                   ("z.h5: cannot read examples", "of dataset 'z'", "the chunk at example 228"))


@pytest.mark.parametrize("layout", ["chunked", "contiguous"])
def test_rows_never_written_are_refused(work, layout):
    """A partly written export (chunks never written), or a dataset created
    and never written: HDF5 reads fill values for them."""
    a = related(64, [5], seed=2)[0]
    with h5py.File(work / "p.h5", "w") as h:
        h["ok"] = a
        if layout == "chunked":
            d = h.create_dataset("bad", shape=(64, 5), dtype="f4", chunks=(16, 5), compression="gzip")
            d[:32] = a[:32]
        else:
            h.create_dataset("bad", shape=(64, 5), dtype="f8")
    message = ("examples 32..47 (at least) were never written" if layout == "chunked"
               else "dataset 'bad' was never written")
    expect_failure(work, config("p.h5", "[ok, bad]"), 3, ("p.h5: dataset 'bad'", message), np_=2)


# --------------------------------------- virtual and external storage (3, 4)

def vds(path, name, sources, n=64, p=3):
    """A virtual dataset of n x p whose rows [lo, hi) come from the first
    rows of (file, dataset[, its rows: hi - lo unless given])."""
    with h5py.File(path, "a") as h:
        layout = h5py.VirtualLayout(shape=(n, p), dtype="f8")
        for (lo, hi), (file, dset, *rows) in sources:
            layout[lo:hi] = h5py.VirtualSource(file, dset, shape=(rows[0] if rows else hi - lo, p))[:hi - lo]
        h.create_virtual_dataset(name, layout, fillvalue=0)


def test_a_virtual_source_dataset_that_is_missing_is_refused(work):
    a = related(64, [3], seed=3)[0]
    write_layers(work / "src.h5", [a[:32]], names=["first"])
    vds(work / "v.h5", "v", [((0, 32), ("src.h5", "first")), ((32, 64), ("src.h5", "second"))])
    write_layers(work / "v.h5", [a], names=["ok"])
    expect_failure(work, config("v.h5", "[ok, v]"), 3,
                   "v.h5: dataset 'v' is virtual and its source dataset 'second' is not in 'src.h5': HDF5 would read "
                   "fill values for examples 32..63", np_=2)


def test_a_virtual_dataset_with_rows_no_source_maps_is_refused(work):
    a = related(64, [3], seed=3)[0]
    write_layers(work / "src.h5", [a], names=["data"])
    vds(work / "v.h5", "v", [((0, 40), ("src.h5", "data", 64))])
    write_layers(work / "v.h5", [a], names=["ok"])
    expect_failure(work, config("v.h5", "[ok, v]"), 3,
                   "v.h5: dataset 'v' is virtual and no source maps examples 40..63")


def test_a_virtual_dataset_split_over_two_sources_is_read(work):
    a, b = related(64, [3, 4], seed=5)
    write_layers(work / "s1.h5", [a[:32]], names=["d"])
    write_layers(work / "s2.h5", [a[32:]], names=["d"])
    vds(work / "v.h5", "v", [((0, 32), ("s1.h5", "d")), ((32, 64), ("s2.h5", "d"))])
    write_layers(work / "v.h5", [b], names=["w"])
    write_config(work / "c.yaml", config("v.h5", "[v, w]"))
    got, out = run(["run", "c.yaml", "--quiet"], work, 1)
    assert got == 0, out
    assert np.max(np.abs(read_cka(work / "out" / "cka.h5") - minibatch_cka([a, b], 16))) < 1e-9


def test_external_storage_shorter_than_the_layer_is_refused(work):
    a = related(64, [3], seed=6)[0]
    (work / "raw.bin").write_bytes(a[:32].astype("<f8").tobytes())  # rows 32..63 in no file
    with h5py.File(work / "e.h5", "w") as h:
        h["ok"] = a
        h.create_dataset("bad", shape=(64, 3), dtype="<f8", external=[("raw.bin", 0, 64 * 3 * 8)])
    expect_failure(work, config("e.h5", "[ok, bad]"), 3,
                   "e.h5: dataset 'bad' stores its data in external files that hold 768 of its 1536 bytes: "
                   "examples 32..63 are in no file", np_=2)


def test_a_virtual_dataset_that_is_its_own_source_is_refused(work):
    write_layers(work / "x2.h5", [related(64, [3], seed=1)[0]], names=["ok"])
    vds(work / "x2.h5", "v", [((0, 64), ("x2.h5", "v"))])
    expect_failure(work, config("x2.h5", "[ok, v]"), 3,
                   "x2.h5: dataset 'v' is virtual and takes its data, through its sources, from itself", np_=2)


def test_two_virtual_datasets_that_map_each_other_are_refused(work):
    vds(work / "a.h5", "v", [((0, 64), ("b.h5", "w"))])
    vds(work / "b.h5", "w", [((0, 64), ("a.h5", "v"))])
    write_layers(work / "a.h5", [related(64, [3], seed=1)[0]], names=["ok"])
    expect_failure(work, config("a.h5", "[ok, v]"), 3, ("a.h5: dataset 'v' is virtual and takes its data", "a cycle"))


# ------------------------------------------------------ pipes behind links (5)

@pytest.mark.parametrize("how", ["external_link", "virtual_source", "external_storage"])
def test_a_pipe_behind_a_link_is_refused_without_blocking(work, how):
    os.mkfifo(work / "pipe.h5")
    a = related(64, [3], seed=1)[0]
    write_layers(work / "l.h5", [a], names=["ok"])
    with h5py.File(work / "l.h5", "a") as h:
        if how == "external_link":
            h["bad"] = h5py.ExternalLink("pipe.h5", "/data")
        elif how == "external_storage":
            h.create_dataset("bad", shape=(64, 3), dtype="f8", external=[("pipe.h5", 0, 64 * 3 * 8)])
    if how == "virtual_source":
        vds(work / "l.h5", "bad", [((0, 64), ("pipe.h5", "data"))])
    expect_failure(work, config("l.h5", "[ok, bad]"), 3, ("l.h5: dataset 'bad'", "pipe.h5", "not a regular file"),
                   np_=2)


# ------------------------------------------------- a file open for writing (6)

def test_an_input_held_open_for_writing_is_called_locked(work):
    held = h5py.File(work / "x.h5", "a")
    try:
        expect_failure(work, config("x.h5"), 3, ("'x.h5'", "another process holds it open for writing",
                                                  "HDF5_USE_FILE_LOCKING=FALSE"))
    finally:
        held.close()
