"""Hostile shard sets, sample IDs and checkpoint fingerprints: an incomplete
or mixed `-K-of-W` set, one file under two spellings, 64-bit IDs the
comparison used to lose, and inputs changed behind a checkpoint's back
(size and modification time kept). Every case asserts the exit status, the
message and that nothing is left behind."""
import os
import shutil

import h5py
import numpy as np
import pytest

from mkt import (config, minibatch_cka, read_cka, related, run, stopped_run, write_config, write_layers)
from test_hostile import expect_failure, reseal


def write_shards(work, stem, numbers, world, n=16, seed=1):
    """Shards stem-K-of-W.h5 for K in numbers, n examples each, of one data set
    (the examples of shard K are rows K*n..K*n+n-1); returns the whole layers."""
    layers = related(n * (max(numbers) + 1), [5, 3], seed=seed)
    for k in numbers:
        write_layers(work / f"{stem}-{k}-of-{world}.h5", [a[k * n:(k + 1) * n] for a in layers])
    return layers


# ------------------------------------------------------------- shard sets

def test_a_shard_set_with_one_missing_is_refused(work):
    """Once: 3 shards of 4 read without a word (CKA of 48 of 64 examples)."""
    write_shards(work, "s", [0, 1, 3], 4)
    expect_failure(work, config('"s-*-of-4.h5"'), 3, "input 's-*-of-4.h5' is an incomplete shard set: missing shard 2 "
                   "of 0..3")


def test_a_listed_shard_set_with_one_missing_is_refused(work):
    write_shards(work, "s", [0, 1], 3)
    out = expect_failure(work, config("[s-0-of-3.h5, s-1-of-3.h5]"), 3, "missing shard 2 of 0..2")
    assert "'s-0-of-3.h5, s-1-of-3.h5'" in out, out


def test_a_shard_numbered_twice_is_refused(work):
    write_shards(work, "s", [0, 1], 2)
    shutil.copy(work / "s-1-of-2.h5", work / "s-01-of-2.h5")
    expect_failure(work, config('"s-*-of-2.h5"'), 3, "'s-01-of-2.h5' and 's-1-of-2.h5' are both shard 1 of 2")


def test_shard_sets_of_different_sizes_are_refused(work):
    """An old and a new sharding of the same data side by side in one folder."""
    write_shards(work, "s", [0, 1], 2)
    write_shards(work, "s", [0, 1, 2], 3)
    expect_failure(work, config('"s-*-of-*.h5"'), 3, "mixes shard sets of different sizes: 's-0-of-2.h5' is one "
                   "of 2, 's-0-of-3.h5' one of 3")


def test_a_shard_numbered_past_its_set_is_refused(work):
    write_shards(work, "s", [0, 1, 2], 2)
    expect_failure(work, config('"s-*-of-2.h5"'), 3, "'s-2-of-2.h5' says shard 2 of 2")


@pytest.mark.parametrize("files,first", [('"s-*-of-4.h5"', 0), ("[s-1-of-3.h5, s-2-of-3.h5, s-3-of-3.h5]", 1)])
def test_complete_shard_sets_give_the_right_cka(work, files, first):
    """Pins a right value (held before): 0..W-1 and 1..W are both whole sets."""
    world = 4 if first == 0 else 3
    layers = write_shards(work, "s", list(range(first, first + world)), world)
    write_config(work / "c.yaml", config(files))
    got, out = run(["run", "c.yaml", "--quiet"], work)
    assert got == 0, out
    whole = [a[first * 16:] for a in layers]
    assert np.max(np.abs(read_cka(work / "out" / "cka.h5") - minibatch_cka(whole, 16))) < 1e-9


# ------------------------------------------------- one file, two spellings

SPELLINGS = {
    "dot": lambda work: "./x.h5",
    "symlink": lambda work: os.symlink("x.h5", work / "x-link.h5") or "x-link.h5",
    "hardlink": lambda work: os.link(work / "x.h5", work / "x-hard.h5") or "x-hard.h5",
}


@pytest.mark.parametrize("how", sorted(SPELLINGS))
def test_the_same_shard_under_two_names_is_refused(work, how):
    """Once: read twice, n = 128 instead of 64, CKA off by 0.030."""
    other = SPELLINGS[how](work)
    expect_failure(work, config(f"[x.h5, {other}]"), 3, f"inputs 'x.h5' and '{other}' are the same file")


def test_x_and_y_may_be_the_same_file(work):
    """Pins a right value (held before): the check is within one model only."""
    write_config(work / "c.yaml", config("x.h5") + "y:\n  file: ./x.h5\n  layers: [l0, l1]\n")
    got, out = run(["run", "c.yaml", "--quiet"], work)
    assert got == 0, out
    with h5py.File(work / "x.h5") as f:
        layers = [f[k][()] for k in ("l0", "l1", "l2")]
    assert np.max(np.abs(read_cka(work / "out" / "cka.h5") - minibatch_cka(layers, 16)[:, :2])) < 1e-9


# -------------------------------------------------------------- sample IDs

def with_ids(work, ids_x, ids_y):
    for name, ids in (("x.h5", ids_x), ("y.h5", ids_y)):
        with h5py.File(work / name, "a") as f:
            f["ids"] = ids
    return config("x.h5") + "y:\n  file: y.h5\n  layers: ['*']\n"


BIG = np.uint64(2 ** 63)
ID_CASES = {  # x's IDs, y's IDs, the message
    "uint64_above_2_63": (BIG + np.arange(64, dtype=np.uint64),
                          np.where(np.arange(64) == 37, BIG + np.uint64(1000), BIG + np.arange(64, dtype=np.uint64)),
                          "example 37 is '9223372036854775845' in x.h5 but '9223372036854776808' in y.h5"),
    "uint64_max_against_int64_minus_1": (np.full(64, 2 ** 64 - 1, dtype=np.uint64), np.full(64, -1, dtype=np.int64),
                                         "example 0 is '18446744073709551615' in x.h5 but '-1' in y.h5"),
    "int64_negatives": (-np.arange(64, dtype=np.int64) - 2 ** 62, np.where(np.arange(64) == 5, 7, -np.arange(64) - 2 ** 62),
                        "example 5 is '-4611686018427387909' in x.h5 but '7' in y.h5"),
}


@pytest.mark.parametrize("case", sorted(ID_CASES))
def test_different_sample_ids_are_found_exactly(work, case):
    """Once: uint64 IDs above 2^63 were clipped to 2^63 - 1 and compared equal.
    int64_negatives pins a message that held before."""
    ids_x, ids_y, message = ID_CASES[case]
    expect_failure(work, with_ids(work, ids_x, ids_y), 3, message, np_=2)


def write_int128_ids(path, high):
    """IDs as 128-bit signed integers (h5py's low level: numpy has none),
    example k being high * 2^64 + k."""
    t = h5py.h5t.STD_I64LE.copy()
    t.set_size(16)
    t.set_precision(128)
    raw = np.zeros((64, 2), dtype="<u8")
    raw[:, 0] = np.arange(64)
    raw[:, 1] = high
    with h5py.File(path, "a") as f:
        d = h5py.h5d.create(f.id, b"ids", t, h5py.h5s.create_simple((64,)))
        d.write(h5py.h5s.ALL, h5py.h5s.ALL, raw.view(np.uint8).ravel(), mtype=t)


def test_sample_ids_wider_than_64_bits_are_refused(work):
    """Once: clipped to 2^63 - 1 on reading, so that x's and y's IDs, which
    differ in every example, compared equal."""
    write_int128_ids(work / "x.h5", 1)
    write_int128_ids(work / "y.h5", 2)
    expect_failure(work, config("x.h5") + "y:\n  file: y.h5\n  layers: ['*']\n", 3,
                   "x.h5: the sample-ID dataset 'ids' holds integers wider than 64 bits")


def test_equal_uint64_ids_above_2_63_are_accepted(work):
    """Pins a right value (held before)."""
    ids = np.uint64(2 ** 64 - 1) - np.arange(64, dtype=np.uint64)
    write_config(work / "c.yaml", with_ids(work, ids, ids.copy()))
    got, out = run(["run", "c.yaml", "--quiet"], work, 2)
    assert got == 0, out


# ------------------------------------------- checkpoints and their inputs

LAYOUTS = {  # the files of x, the config's file and layers, the file whose data is changed
    "file": ("x.h5", '["*"]', "x.h5"),
    "shards": ('"s-*-of-2.h5"', '["*"]', "s-1-of-2.h5"),
    "link": ("links.h5", "[l0, l1, l2]", "data.h5"),
}
SLOW = "batch_size: 4\nepochs: 100\nshuffle: true\ncheckpoint: {every: 20}\n"  # 3200 batches: time to stop it


def write_inputs(work, layout):
    layers = related(128, [6, 5, 4], seed=11)
    if layout == "file":
        write_layers(work / "x.h5", layers)
    elif layout == "shards":
        for k in range(2):
            write_layers(work / f"s-{k}-of-2.h5", [a[k * 64:(k + 1) * 64] for a in layers])
    else:
        write_layers(work / "data.h5", layers)
        with h5py.File(work / "links.h5", "w") as f:
            for name in ("l0", "l1", "l2"):
                f[name] = h5py.ExternalLink("data.h5", "/" + name)


@pytest.fixture(scope="module")
def stopped_runs(tmp_path_factory):
    """Per layout: a folder with a run stopped by SIGUSR1 (out/checkpoint.h5)
    and the uninterrupted result (ref/cka.h5)."""
    folders = {}
    for layout, (file, layers, _) in LAYOUTS.items():
        work = tmp_path_factory.mktemp(layout)
        write_inputs(work, layout)
        write_config(work / "c.yaml", config(file, layers, extra=SLOW))
        got, out = run(["run", "c.yaml", "--quiet", "--set", "output=ref"], work)
        assert got == 0, out
        got, out = stopped_run(["run", "c.yaml", "--quiet"], work, 2, work / "out" / "checkpoint.h5")
        assert got == 75, out
        folders[layout] = work
    return folders


def copy_of(stopped_runs, layout, tmp_path):
    """The stopped run's folder, times kept (a copy changes no fingerprint)."""
    work = tmp_path / "w"
    shutil.copytree(stopped_runs[layout], work, symlinks=True)
    return work


def change_one_value(path):
    """One float64 of the first layer changed in place: same size, and the
    old access and modification times put back."""
    st = os.stat(path)
    with h5py.File(path, "r") as f:
        offset = f["l0"].id.get_offset()
        assert offset is not None
    with open(path, "r+b") as f:
        f.seek(offset + 8 * 7)
        old = np.frombuffer(f.read(8), dtype="<f8")[0]
        f.seek(offset + 8 * 7)
        f.write(np.array([old + 0.75], dtype="<f8").tobytes())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns


def resume(work, np_=2):
    return run(["run", "c.yaml", "--quiet"], work, np_)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_content_change_that_keeps_size_and_time_refuses_the_checkpoint(stopped_runs, tmp_path, layout):
    """Once: accepted, and the resumed CKA differed by 0.12 from a run on the
    new data. Also for a shard of a glob and for data behind an external link."""
    # HDF5 names the file behind a link by its absolute path: that run is
    # resumed where it was made (no other case uses it).
    work = stopped_runs[layout] if layout == "link" else copy_of(stopped_runs, layout, tmp_path)
    changed = LAYOUTS[layout][2]
    change_one_value(work / changed)
    got, out = resume(work)
    assert got == 2, out
    assert f"{changed}' has changed since the checkpoint: its content" in out, out
    assert "rerun with --restart" in out, out
    assert not (work / "out" / "cka.h5").exists()
    assert (work / "out" / "checkpoint.h5").exists()  # refused, not discarded


def test_an_unchanged_copy_with_times_kept_resumes_to_the_same_bits(stopped_runs, tmp_path):
    """Pins a right value (held before): `cp -p` of the same bytes gives the
    file a new inode and change time, but the same data: resumed."""
    work = copy_of(stopped_runs, "file", tmp_path)
    shutil.copy2(work / "x.h5", work / "x-copy.h5")
    os.replace(work / "x-copy.h5", work / "x.h5")
    got, out = resume(work)
    assert got == 0, out
    assert read_cka(work / "out" / "cka.h5").tobytes() == read_cka(work / "ref" / "cka.h5").tobytes()


def test_a_touched_input_refuses_the_checkpoint_naming_the_time(stopped_runs, tmp_path):
    """`touch` with the same bytes: the sample cannot prove the rest of the
    file unchanged, so a new modification time refuses it, and says so."""
    work = copy_of(stopped_runs, "file", tmp_path)
    os.utime(work / "x.h5")
    got, out = resume(work)
    assert got == 2, out
    assert "input 'x.h5' has changed since the checkpoint: its modification time" in out, out
    assert not (work / "out" / "cka.h5").exists()


def as_written_before(text):
    """A fingerprint as mpicka wrote it before it sampled content: each input
    on one line, "file PATH, SIZE bytes, modified TIME"."""
    lines, out = text.split("\n"), []
    for line in lines:
        if line.startswith("  size "):
            size, modified = line[len("  size "):].split(", content")[0].split(", modified ")
            out[-1] += f", {size} bytes, modified {modified}"
        else:
            out.append(line)
    return "\n".join(out)


def test_a_checkpoint_without_content_fingerprints_is_refused_cleanly(stopped_runs, tmp_path):
    """A checkpoint of an older mpicka (no sampled content): refused with the
    usual advice, never resumed on trust."""
    work = copy_of(stopped_runs, "file", tmp_path)
    ck = work / "out" / "checkpoint.h5"
    with h5py.File(ck, "r+") as f:
        text = f.attrs["fingerprint"]
        text = text.decode() if isinstance(text, bytes) else text
        old = as_written_before(text)
        assert old != text
        del f.attrs["fingerprint"]
        f.attrs["fingerprint"] = old
    reseal(ck)
    got, out = resume(work)
    assert got == 2, out
    assert "written by an older mpicka" in out and "rerun with --restart" in out, out
    assert not (work / "out" / "cka.h5").exists()
    got, out = run(["run", "c.yaml", "--quiet", "--restart"], work, 2)
    assert got == 0, out
    assert read_cka(work / "out" / "cka.h5").tobytes() == read_cka(work / "ref" / "cka.h5").tobytes()
