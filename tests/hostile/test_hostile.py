"""The standing hostile-input suite: every case asserts the exit status, the
message and that nothing is left behind (docs/reliability.md lists the
classes and what each promises). Inputs are written with h5py; numbers are
checked against a naive float64 oracle (mkt.minibatch_cka)."""
import os
import shutil
import signal
import struct
import subprocess

import h5py
import numpy as np
import pytest

from mkt import (config, held_lock, listing, minibatch_cka, read_cka, related, run, start, stop, wait_for,
                      write_config, write_layers)


def expect_failure(work, text, status, message, np_=1, args=(), output="out"):
    write_config(work / "c.yaml", text)
    got, out = run(["run", "c.yaml", "--quiet", *args], work, np_)
    assert got == status, out
    assert message in out, out
    assert out.count("mpicka: ") - out.count("mpicka: warning") == 1, out  # one message, from rank 0
    assert not (work / output).exists(), f"{output} left behind: {listing(work / output)}"
    return out


def cka_of(work, text, np_=1, args=()):
    write_config(work / "c.yaml", text)
    got, out = run(["run", "c.yaml", "--quiet", *args], work, np_)
    assert got == 0, out
    return read_cka(work / "out" / "cka.h5"), out


# ---------------------------------------------------------------- numbers

SCALED = [  # (dtype in the file, factor, precision)
    ("f8", 1e306, "float32"),
    ("f8", 1e150, "float64"),
    ("f8", 1e300, "float64"),
    ("f4", 1e20, "float32"),
    ("f8", 1e-200, "float64"),
    ("f4", 1e-30, "float32"),
]


@pytest.mark.parametrize("dtype,factor,precision", SCALED)
def test_extreme_finite_values_give_the_right_cka(work, dtype, factor, precision):
    """CKA is scale invariant: data near the ends of the type's range must give
    the CKA of the same data near 1 (once: 0.005 instead of 0.718, or 0.0)."""
    base = related(96, [4, 3, 5], seed=7)
    base = [b / np.abs(b).max() * 0.9 for b in base]  # at most 0.9 * factor: finite in dtype
    write_layers(work / "s.h5", [b * factor for b in base], dtype=dtype)
    ref = minibatch_cka([np.asarray(b * factor, dtype=dtype).astype(np.float64) / factor for b in base], 32)
    cka, _ = cka_of(work, config("s.h5", extra=f"batch_size: 32\nprecision: {precision}\n"))
    tol = 1e-5 if precision == "float32" else 1e-9
    assert np.all(np.isfinite(cka))
    assert np.max(np.abs(cka - ref)) < tol, (cka, ref)


def test_extreme_values_are_bitwise_equal_on_1_and_3_ranks(work):
    base = related(96, [4, 3], seed=8)
    write_layers(work / "s.h5", [b * 1e150 for b in base])
    runs = []
    for np_ in (1, 3):
        cka, _ = cka_of(work, config("s.h5", output=f"out", extra="batch_size: 16\n"), np_)
        runs.append(cka.tobytes())
    assert runs[0] == runs[1]


def test_values_that_grow_past_the_first_batch_stop_the_run(work):
    a = related(64, [4], seed=3)[0]
    a[32:] *= 1e25  # batch 2 would overflow a float32 Gram at the scale of batch 1
    write_layers(work / "g.h5", [a, related(64, [3], seed=4)[0]])
    expect_failure(work, config("g.h5", extra="batch_size: 16\nprecision: float32\n"), 3,
                   "g.h5: dataset 'l0', batch 2 (examples 32..47): its Gram would overflow")


def test_constant_layer_is_nan_and_called_dead(work):
    write_layers(work / "d.h5", [np.full((40, 3), 0.1), related(40, [3], seed=5)[0]])
    cka, out = cka_of(work, config("d.h5", extra="batch_size: 10\n"))
    assert "layer 'l0' is constant in every batch (a dead layer)" in out
    assert np.isnan(cka[0]).all() and np.isnan(cka[:, 0]).all() and abs(cka[1, 1] - 1) < 1e-12


def test_layer_constant_in_one_batch_only_is_not_dead(work):
    a = related(40, [3], seed=6)[0]
    a[:10] = 2.5
    b = related(40, [2], seed=9)[0]
    write_layers(work / "c1.h5", [a, b])
    cka, out = cka_of(work, config("c1.h5", extra="batch_size: 10\n"))
    assert "dead" not in out
    assert np.max(np.abs(cka - minibatch_cka([a, b], 10))) < 1e-9


def test_rbf_on_a_mostly_constant_layer_is_not_nan(work):
    a = np.zeros((40, 2))
    a[::7] = 1.0
    write_layers(work / "r.h5", [a, related(40, [3], seed=2)[0]])
    cka, out = cka_of(work, config("r.h5", extra="batch_size: 20\nkernel: rbf\n"))
    assert np.all(np.isfinite(cka)), out


@pytest.mark.parametrize("value,where", [(np.nan, 37), (np.inf, 5), (-np.inf, 63)])
def test_non_finite_values_name_the_example(work, value, where):
    a = related(64, [4], seed=1)[0]
    a[where, 1] = value
    write_layers(work / "n.h5", [a], dtype="f2")
    expect_failure(work, config("n.h5", extra="batch_size: 16\n"), 3,
                   f"n.h5: dataset 'l0' holds NaN or Inf at example {where}", np_=2)


# ------------------------------------------------------------------ sizes

def test_permutations_that_overflow_are_refused_with_a_sane_estimate(work):
    text = config(extra="permutations: 2305843009213693952\n")
    out = expect_failure(work, text, 3, "a rank would need about")
    assert "-" not in out.split("a rank would need about")[1].split("GiB")[0]
    write_config(work / "c.yaml", text)
    got, out = run(["check", "c.yaml"], work, mpi=False)
    assert got == 3 and "a rank would need about" in out, out


def test_feature_product_that_wraps_is_refused(work):
    with h5py.File(work / "w.h5", "w") as f:
        f.create_dataset("wrap", shape=(1000, 274177, 67280421310721), dtype="f4", chunks=(1, 1, 1))
    expect_failure(work, config("w.h5", '["wrap"]'), 3, "more than 2147483647 features")


def test_epochs_that_overflow_the_batch_count_are_refused(work):
    expect_failure(work, config(extra="epochs: 9223372036854775807\nbatch_size: 4\n"), 2,
                   "more batches than can be counted")


def test_huge_jackknife_is_clipped_to_the_batches(work):
    cka, _ = cka_of(work, config(extra="jackknife: 9223372036854775807\nbatch_size: 16\n"))
    with h5py.File(work / "out" / "cka.h5") as f:
        assert f["meta"].attrs["jackknife_groups"] == 4


@pytest.mark.parametrize("key,value,message", [
    ("batch_size", "46342", "batch_size 46342 is too large"),
    ("batch_size", "3", "'batch_size' must be at least 4"),
    ("permutations", "-1", "'permutations' must be at least 0"),
    ("jackknife", "1", "'jackknife' is 0"),
    ("rbf_threshold", "0", "'rbf_threshold' must be"),
    ("rbf_threshold", "1e-320", "'rbf_threshold' must be"),
    ("epochs", "0", "'epochs' must be at least 1"),
    ("seed", "-3", "'seed' must be an integer from 0"),
    ("epochs", "99999999999999999999", "'epochs' must be an integer of at most"),
])
def test_out_of_range_numbers(work, key, value, message):
    expect_failure(work, config(extra=f"{key}: {value}\n"), 2, message)


# ----------------------------------------------------------------- inputs

def make_bad(work, kind):
    """Writes bad.h5 (or another path) holding one kind of hostile layer 'bad'
    next to a good layer 'ok'; returns the file name to configure."""
    f = work / "bad.h5"
    good = related(64, [3], seed=3)[0]
    with h5py.File(f, "w") as h:
        h["ok"] = good
        if kind == "string":
            h["bad"] = np.array([b"abc"] * 64)
        elif kind == "compound":
            h["bad"] = np.zeros(64, dtype=[("a", "f4"), ("b", "i4")])
        elif kind == "enum":
            h["bad"] = np.zeros((64, 2), dtype=bool)
        elif kind == "scalar":
            h["bad"] = 3.0
        elif kind == "zero_features":
            h.create_dataset("bad", shape=(64, 0), dtype="f4")
        elif kind == "few_examples":
            del h["ok"]
            h["ok"] = good[:3]
            h["bad"] = good[:3]
        elif kind == "other_n":
            h["bad"] = good[:50]
        elif kind == "group":
            h.create_group("bad")
        elif kind == "dangling":
            h["bad"] = h5py.SoftLink("/nowhere")
        elif kind == "ext_missing":
            h["bad"] = h5py.ExternalLink("missing.h5", "/data")
        elif kind == "vds_missing":
            layout = h5py.VirtualLayout(shape=(64, 3), dtype="f8")
            layout[:] = h5py.VirtualSource("gone.h5", "data", shape=(64, 3))
            h.create_virtual_dataset("bad", layout, fillvalue=0)
        elif kind == "external_raw_missing":
            h.create_dataset("bad", shape=(64, 3), dtype="f8", external=[("raw-gone.bin", 0, 64 * 3 * 8)])
        elif kind == "reference":
            h.create_dataset("bad", shape=(64,), dtype=h5py.ref_dtype)
        elif kind == "empty":
            h.create_dataset("bad", shape=(0, 3), dtype="f4")
    if kind == "external_raw_missing":
        pass  # the raw file was never created
    return "bad.h5"


BAD_INPUTS = [
    ("string", "dataset 'bad' is not numeric"),
    ("compound", "dataset 'bad' is not numeric"),
    ("enum", "dataset 'bad' is not numeric"),
    ("reference", "dataset 'bad' is not numeric"),
    ("scalar", "dataset 'bad' is a scalar"),
    ("zero_features", "a feature dimension is zero"),
    ("few_examples", "has 3 examples; at least 4 are needed"),
    ("other_n", "dataset 'bad' has 50 examples but 'ok' has 64"),
    ("empty", "dataset 'bad' has 0 examples but 'ok' has 64"),
    ("group", "'bad' is a group, not a dataset"),
    ("dangling", "no dataset 'bad'"),
    ("ext_missing", "no dataset 'bad'"),
    ("vds_missing", "dataset 'bad' is virtual and its source file 'gone.h5' cannot be read"),
    ("external_raw_missing", "stores its data in the external file 'raw-gone.bin'"),
]


@pytest.mark.parametrize("kind,message", BAD_INPUTS)
def test_bad_datasets(work, kind, message):
    f = make_bad(work, kind)
    expect_failure(work, config(f, "[ok, bad]"), 3, message, np_=2)


def test_virtual_and_linked_layers_that_exist_are_read(work):
    a, b = related(64, [3, 4], seed=11)
    write_layers(work / "src.h5", [a, b], names=["data", "other"])
    with h5py.File(work / "v.h5", "w") as h:
        layout = h5py.VirtualLayout(shape=(64, 3), dtype="f8")
        layout[:] = h5py.VirtualSource("src.h5", "data", shape=(64, 3))
        h.create_virtual_dataset("virt", layout, fillvalue=0)
        h["linked"] = h5py.ExternalLink("src.h5", "/other")
    cka, _ = cka_of(work, config("v.h5", "[virt, linked]", extra="batch_size: 16\n"))
    assert np.max(np.abs(cka - minibatch_cka([a, b], 16))) < 1e-9


@pytest.mark.parametrize("how,status,message", [
    ("truncate", 3, "cannot open HDF5 file 'f.h5'"),
    ("garbage", 3, "input 'f.h5' is not an HDF5 file"),
    ("empty_file", 3, "input 'f.h5' is not an HDF5 file"),
    ("folder", 3, "input 'f.h5' is not a regular file"),
    ("fifo", 3, "input 'f.h5' is not a regular file"),
    ("missing", 3, "cannot open input 'f.h5'"),
])
def test_damaged_or_odd_files(work, how, status, message):
    path = work / "f.h5"
    if how == "truncate":
        data = open(work / "x.h5", "rb").read()
        path.write_bytes(data[:len(data) // 3])
    elif how == "garbage":
        path.write_bytes(bytes(range(256)) * 40)
    elif how == "empty_file":
        path.write_bytes(b"")
    elif how == "folder":
        path.mkdir()
    elif how == "fifo":
        os.mkfifo(path)
    expect_failure(work, config("f.h5"), status, message, np_=2)


def test_corrupt_compressed_chunk_is_an_io_error(work):
    a = related(64, [50], seed=4)[0]
    with h5py.File(work / "z.h5", "w") as h:
        h.create_dataset("z", data=a, chunks=(16, 50), compression="gzip")
        offset, size = h["z"].id.get_chunk_info(2).byte_offset, h["z"].id.get_chunk_info(2).size
    with open(work / "z.h5", "r+b") as f:
        f.seek(offset + size // 2)
        f.write(b"\xff" * 16)
    expect_failure(work, config("z.h5", extra="batch_size: 16\n"), 4, "z.h5: cannot read examples 32..47 of dataset 'z'",
                   np_=2)


@pytest.mark.parametrize("dtype", [">f8", ">i4", "u8", "i1", "f2"])
def test_exotic_numeric_types_are_read_right(work, dtype):
    a, b = related(48, [3, 4], seed=12)
    if np.dtype(dtype).kind in "iu":  # integers in the type's range (unsigned: shifted to be positive)
        a, b = (np.round(v * 20) - (np.round(v * 20).min() - 7 if dtype == "u8" else 0) for v in (a, b))
    write_layers(work / "t.h5", [a, b], dtype=dtype)
    stored = [np.asarray(v, dtype=dtype).astype(np.float64) for v in (a, b)]
    cka, _ = cka_of(work, config("t.h5", extra="batch_size: 16\n"))
    assert np.max(np.abs(cka - minibatch_cka(stored, 16))) < 1e-9


def test_unicode_layer_names(work):
    a, b = related(32, [3, 2], seed=2)
    write_layers(work / "u.h5", [a, b], names=["couche/é", "层/二"])
    cka, _ = cka_of(work, config("u.h5", '["couche/*", "层/*"]'))
    assert cka.shape == (2, 2)


# ----------------------------------------------------------------- config

CONFIGS = [
    ("x:\n  file: x.h5\n  layers: [l0]\noutput: out\nbatchsize: 8\n", "unknown key 'batchsize' (did you mean 'batch_size'?)"),
    ("x:\n  file: x.h5\n  layers: [l0]\noutput: out\noutput: again\n", "duplicate key 'output'"),
    ("", "the configuration is empty"),
    ("- a\n- b\n", "must be a mapping of keys"),
    ("x:\n  file: x.h5\n  layers: [l0\noutput: out\n", "malformed YAML"),
    ("x:\n  file: x.h5\n  layers: []\noutput: out\n", "'x.layers' must list at least one entry"),
    ("x:\n  file: x.h5\n  layers: [l0]\n", "missing required key 'output'"),
    ("x:\n  file: x.h5\n  layers: [l0]\noutput: out\ny:\n  layers: [l0]\n", "missing required key 'y.file'"),
    ("x:\n  file: x.h5\n  layers: [l0]\noutput: out\nshuffle: maybe\n", "'shuffle' must be true or false"),
    ("x:\n  file: x.h5\n  layers: [l0]\noutput: out\nestimator: exact\nkernel: rbf\n", "needs 'kernel: linear'"),
    ("x:\n  file: x.h5\n  layers: [l0]\noutput: out\nestimator: exact\npermutations: 5\n", "needs a minibatch estimator"),
    ("x:\n  file: x.h5\n  layers: [l0]\noutput: out\nx2: &a 1\nx3: *a\n", "aliases"),
    ("x: {file: x.h5, layers: [l0]}\noutput: out\nplot: {cmap: rainbow}\n", "'plot.cmap' must be one of"),
    ("x:\n  file: x.h5\n  layers: [l0]\noutput: out\nprecision: float16\n", "'precision' must be one of"),
    ("x:\n  file: x.h5\n  layers: [l0]\noutput: \"\"\n", "'output' must not be empty"),
]


@pytest.mark.parametrize("text,message", CONFIGS)
def test_bad_configs(work, text, message):
    expect_failure(work, text, 2, message)


def test_config_with_a_nul_byte(work):
    (work / "c.yaml").write_bytes(b"x:\n  file: x.h5\n\0\n")
    got, out = run(["run", "c.yaml"], work)
    assert got == 2 and "holds a NUL byte" in out, out


def test_config_too_large(work):
    (work / "c.yaml").write_bytes(b"# " + b"a" * (17 << 20) + b"\n")
    got, out = run(["run", "c.yaml"], work)
    assert got == 2 and "larger than 16 MiB" in out, out


def test_config_nested_too_deep(work):
    write_config(work / "c.yaml", "x: " + "[" * 40 + "]" * 40 + "\n")
    got, out = run(["run", "c.yaml"], work)
    assert got == 2 and "nest deeper than" in out, out


def test_config_is_a_folder(work):
    (work / "c.yaml").mkdir()
    got, out = run(["run", "c.yaml"], work)
    assert got == 4 and "Is a directory" in out, out


@pytest.mark.parametrize("arg,status,message", [
    ("--set", 2, "--set needs KEY=VALUE"),
    ("--set=batch_size", 2, "expected KEY=VALUE"),
    ("--set=batch_size=", 2, "the value is empty"),
    ("--set=nokey=3", 2, "unknown key 'nokey'"),
    ("--set=x=3", 2, "'x' is a section"),
    ("--frob", 2, "unknown option '--frob'"),
])
def test_bad_command_lines(work, arg, status, message):
    write_config(work / "c.yaml", config())
    got, out = run(["run", "c.yaml", arg], work)
    assert got == status and message in out, out
    assert not (work / "out").exists()


# ------------------------------------------------------------ file system

def test_output_that_is_a_file(work):
    (work / "out").write_text("not a folder")
    write_config(work / "c.yaml", config())
    got, out = run(["run", "c.yaml"], work)
    assert got == 4 and "output 'out' exists and is not a folder" in out, out
    assert (work / "out").read_text() == "not a folder"


def test_output_over_the_input(work):
    (work / "out").mkdir()
    os.replace(work / "x.h5", work / "out" / "cka.h5")
    expect_failure(work, config("out/cka.h5", output="out"), 2, "would overwrite the input", output="nothing")


def test_failed_run_removes_every_folder_it_made(work):
    expect_failure(work, config(layers="[missing]", output="a/b/c"), 3, "no dataset 'missing'", output="a")


def test_failed_run_keeps_a_folder_that_was_there(work):
    (work / "out").mkdir()
    (work / "out" / "mine.txt").write_text("keep")
    write_config(work / "c.yaml", config(layers="[missing]"))
    got, out = run(["run", "c.yaml"], work)
    assert got == 3
    assert listing(work / "out") == ["mine.txt"]


def test_locked_output_folder_is_refused_naming_the_holder(work):
    with held_lock(work / "out", "host elsewhere, process 4242"):
        write_config(work / "c.yaml", config())
        got, out = run(["run", "c.yaml"], work, np_=2)
    assert got == 2 and "output folder 'out' is in use by another mpicka run (host elsewhere, process 4242" in out, out
    assert not (work / "out" / "cka.h5").exists()


def test_stale_temporary_files_are_removed(work):
    (work / "out").mkdir()
    for name in (".cka.h5.tmp.123", ".cka.csv.tmp.77", "checkpoint.h5.tmp.9", ".cka.png.tmp.5",
                 ".cka_measures.png.tmp.6", "keep.tmp.1"):
        (work / "out" / name).write_text("half")
    write_config(work / "c.yaml", config().replace("plot: false\n", ""))
    got, out = run(["run", "c.yaml"], work)
    assert got == 0 and "removed 5 temporary file(s)" in out, out
    assert listing(work / "out") == ["cka.csv", "cka.h5", "cka.png", "keep.tmp.1"]


@pytest.fixture
def small_disk(work):
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    disk = work / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_full_disk_for_the_result(work, small_disk):
    write_layers(work / "wide.h5", related(400, [4] * 120, seed=1), names=[f"l{k:03d}" for k in range(120)])
    out = expect_failure(work, config("wide.h5", output="disk/out", extra="checkpoint: false\nbatch_size: 100\n"),
                         4, "No space left on device", np_=2, output="disk/out")
    assert "Segmentation" not in out
    assert listing(small_disk) == []


def test_full_disk_for_a_checkpoint(work, small_disk):
    write_layers(work / "many.h5", related(2000, [64] * 30, seed=1))
    out = expect_failure(work, config("many.h5", output="disk/out", extra="batch_size: 100\ncheckpoint: {every: 1}\n"),
                         4, "checkpoint.h5.tmp", np_=2, output="disk/out")
    assert "No space left on device" in out
    assert listing(small_disk) == []


# ------------------------------------------------------------- checkpoints

CKPT_CONFIG = config("big.h5", extra="batch_size: 32\nshuffle: true\ncheckpoint: {every: 1}\njackknife: 5\n")


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A run stopped by SIGUSR1 with a checkpoint, and the uninterrupted result."""
    work = tmp_path_factory.mktemp("ckpt")
    write_layers(work / "big.h5", related(6400, [128] * 4, seed=4), dtype="f4")
    write_config(work / "c.yaml", CKPT_CONFIG)
    got, out = run(["run", "c.yaml", "--quiet", "--set", "output=ref"], work)
    assert got == 0, out
    for _ in range(5):  # a loaded machine may deliver the signal after the last batch
        proc = start(["run", "c.yaml", "--quiet"], work, 2)
        wait_for(work / "out" / "checkpoint.h5", proc)
        status, out = stop(proc)
        if status != 0:
            break
    assert status == 75 and "stopped by signal 10" in out, out
    return work


def fnv(data, h=0xcbf29ce484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def reseal(path):
    """Writes the header a checkpoint carries (magic, length, FNV-1a of the
    bytes after the 512-byte user block) again, as a careful forger would:
    the range checks must catch what the seal then cannot."""
    data = bytearray(open(path, "rb").read())
    header = b"mpicka checkpoint 2\n%d %016x\n" % (len(data), fnv(bytes(data[512:])))
    data[:512] = header + bytes(512 - len(header))
    open(path, "wb").write(bytes(data))


def replace(f, name, value):
    del f[name]
    f[name] = value


TAMPER = [
    ("bitflip", False, "its bytes do not match their hash"),
    ("todo_huge", True, "list of batches to do does not fit the plan"),
    ("todo_empty", True, "does not cover every batch"),
    ("node_misaligned", True, "fit the plan"),
    ("node_overlap", True, "fit the plan"),
    ("sums_nan", True, "a partial sum is not finite"),
    ("sums_width", True, "sums do not fit this run's layers"),
    ("sums_1d", True, "damaged (sums)"),  # no second extent: read whole into rows x 0 values, it overran
    ("edited", False, "its bytes do not match their hash"),
    ("no_fingerprint", True, "damaged (fingerprint)"),
    ("truncated", False, "its bytes do not match their hash"),
    ("text", False, "not a checkpoint of this version"),
]


@pytest.mark.parametrize("how,restamped,message", TAMPER)
def test_damaged_checkpoints_are_refused(stopped, tmp_path, how, restamped, message):
    work = tmp_path
    for name in ("big.h5", "c.yaml"):
        os.link(stopped / name, work / name)
    (work / "out").mkdir()
    ck = work / "out" / "checkpoint.h5"
    ck.write_bytes((stopped / "out" / "checkpoint.h5").read_bytes())
    if how == "truncated":
        ck.write_bytes(ck.read_bytes()[:1500])
    elif how == "text":
        ck.write_text("not a checkpoint\n")
    else:
        with h5py.File(ck, "r+") as f:
            if how == "bitflip":
                s = f["sums"][()]
                s.view(np.uint64)[0, 3] ^= np.uint64(1 << 20)
                f["sums"][...] = s
            elif how == "todo_huge":
                replace(f, "todo", np.array([[0, 10 ** 12]], dtype="<i8"))
            elif how == "todo_empty":
                replace(f, "todo", np.zeros((0, 2), dtype="<i8"))
                for k in ("level", "start"):
                    replace(f, k, np.zeros(0, dtype="<i8"))
                replace(f, "sums", np.zeros((0, f["sums"].shape[1])))
            elif how == "node_misaligned":
                st = f["start"][()]
                st[-1] += 1
                f["start"][...] = st
            elif how == "node_overlap":
                lv = f["level"][()]
                lv[0] += 1
                f["level"][...] = lv
            elif how == "sums_nan":
                s = f["sums"][()]
                s[0, 0] = np.nan
                f["sums"][...] = s
            elif how == "sums_width":
                replace(f, "sums", f["sums"][()][:, :-1])
            elif how == "sums_1d":
                replace(f, "sums", f["sums"][()].ravel())
            elif how == "edited":
                f.attrs["note"] = "rewritten by another program"
            elif how == "no_fingerprint":
                del f.attrs["fingerprint"]
        if restamped:
            reseal(ck)
    got, out = run(["run", "c.yaml", "--quiet"], work, 1)
    assert got == 3, out
    assert message in out and "rerun with --restart to discard it" in out, out
    assert not (work / "out" / "cka.h5").exists()
    if how == "bitflip":  # --restart discards it
        got, out = run(["run", "c.yaml", "--quiet", "--restart"], work, 2)
        assert got == 0, out
        assert read_cka(work / "out" / "cka.h5").tobytes() == read_cka(stopped / "ref" / "cka.h5").tobytes()


def test_intact_checkpoint_resumes_to_the_same_bits(stopped, tmp_path):
    for name in ("big.h5", "c.yaml"):
        os.link(stopped / name, tmp_path / name)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "checkpoint.h5").write_bytes((stopped / "out" / "checkpoint.h5").read_bytes())
    got, out = run(["run", "c.yaml"], tmp_path, 3)
    assert got == 0 and "resuming from" in out, out
    assert read_cka(tmp_path / "out" / "cka.h5").tobytes() == read_cka(stopped / "ref" / "cka.h5").tobytes()


def test_checkpoint_of_another_configuration(stopped, tmp_path):
    for name in ("big.h5", "c.yaml"):
        os.link(stopped / name, tmp_path / name)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "checkpoint.h5").write_bytes((stopped / "out" / "checkpoint.h5").read_bytes())
    got, out = run(["run", "c.yaml", "--set", "seed=4"], tmp_path)
    assert got == 2 and "was made by another configuration" in out, out


def family(pid):
    """pid and every process below it, from /proc."""
    kids = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                kids.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo += kids.get(out[-1], [])
    return out


def test_second_run_into_the_same_folder_is_refused(stopped, tmp_path):
    for name in ("big.h5", "c.yaml"):
        os.link(stopped / name, tmp_path / name)
    for attempt in range(5):  # the first run can end between seeing its checkpoint and being stopped
        first = start(["run", "c.yaml", "--quiet"], tmp_path, 1)
        assert wait_for(tmp_path / "out" / "checkpoint.h5", first)  # it exists only while the run is on
        stopped_pids = family(first.pid)  # mpirun starts the rank in a process group of its own
        for pid in stopped_pids:
            os.kill(pid, signal.SIGSTOP)  # holds the lock while the second run tries
        if (tmp_path / "out" / "checkpoint.h5").exists():
            break
        for pid in stopped_pids:
            os.kill(pid, signal.SIGCONT)
        assert first.wait(timeout=120) == 0
        shutil.rmtree(tmp_path / "out")
    else:
        pytest.fail("the first run always ended before it could be stopped")
    try:
        got, out = run(["run", "c.yaml"], tmp_path)
    finally:
        for pid in stopped_pids:
            os.kill(pid, signal.SIGCONT)
    assert got == 2 and "is in use by another mpicka run" in out, out
    assert first.wait(timeout=120) == 0
    assert read_cka(tmp_path / "out" / "cka.h5").tobytes() == read_cka(stopped / "ref" / "cka.h5").tobytes()


def test_a_layer_behind_an_external_link_that_changed_refuses_the_checkpoint(stopped, tmp_path):
    os.link(stopped / "big.h5", tmp_path / "data.h5")
    with h5py.File(tmp_path / "links.h5", "w") as f:
        for name in ("l0", "l1", "l2", "l3"):
            f[name] = h5py.ExternalLink("data.h5", "/" + name)
    write_config(tmp_path / "c.yaml", CKPT_CONFIG.replace("big.h5", "links.h5").replace('["*"]', "[l0, l1, l2, l3]"))
    for _ in range(5):
        proc = start(["run", "c.yaml", "--quiet"], tmp_path, 2)
        if wait_for(tmp_path / "out" / "checkpoint.h5", proc):
            break
    status, out = stop(proc)
    assert status == 75, out
    st = os.stat(tmp_path / "data.h5")
    os.utime(tmp_path / "data.h5", ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))  # the data behind the link
    got, out = run(["run", "c.yaml", "--quiet"], tmp_path, 2)
    assert got == 2 and "was made by another configuration or other inputs" in out and "data.h5" in out, out
    assert not (tmp_path / "out" / "cka.h5").exists()


# ----------------------------------------------------------------- signals

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_through_mpirun_never_lose_work(stopped, tmp_path, sig):
    """Open MPI's mpirun ends with its own status (1) on SIGTERM or SIGINT, and
    passes the signal on or not; what mpicka promises is that the work is
    kept: either the finished result or a checkpoint that resumes to it."""
    for name in ("big.h5", "c.yaml"):
        os.link(stopped / name, tmp_path / name)
    proc = start(["run", "c.yaml", "--quiet"], tmp_path, 2)
    assert wait_for(tmp_path / "out" / "checkpoint.h5", proc)
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    # mpirun may kill a rank while it writes (a kill -9): its temporary file
    # is removed by the next start.
    stale = [f for f in listing(tmp_path / "out") if ".tmp." in f]
    if stale or not (tmp_path / "out" / "cka.h5").exists():
        assert (tmp_path / "out" / "checkpoint.h5").exists() or (tmp_path / "out" / "cka.h5").exists()
        got, out = run(["run", "c.yaml"], tmp_path, 2)
        assert got == 0, out
        assert not stale or f"removed {len(stale)} temporary file(s)" in out, out
    assert [f for f in listing(tmp_path / "out") if ".tmp." in f] == []
    assert read_cka(tmp_path / "out" / "cka.h5").tobytes() == read_cka(stopped / "ref" / "cka.h5").tobytes()


def test_sigusr1_to_mpirun_exits_75(stopped, tmp_path):
    for name in ("big.h5", "c.yaml"):
        os.link(stopped / name, tmp_path / name)
    proc = start(["run", "c.yaml", "--quiet"], tmp_path, 3)
    assert wait_for(tmp_path / "out" / "checkpoint.h5", proc)
    status, out = stop(proc)
    assert status == 75 and "run the same command again to resume" in out, out
