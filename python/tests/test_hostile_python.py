"""Hostile inputs to the Python side: the exporter given IDs, outputs and
module names it cannot store as they are, and the result loader given files
that are not whole mpicka results. Every refusal names what is wrong and
leaves nothing behind."""

import os
import re
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from mkt import minibatch_cka, write_yaml
from mpicka.export import Exporter, ExportError, export
from mpicka.result import load

N, B = 32, 8
BIG = 2**63  # the first ID int64 cannot hold


def head_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh()).eval()


def inputs(n=N, seed=1):
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))


def left(folder):
    """Files and folders under folder, relative: for 'nothing is left behind'."""
    out = []
    for root, dirs, files in os.walk(folder):
        out += [os.path.relpath(os.path.join(root, n), folder) for n in dirs + files]
    return sorted(out)


# ---- 1. IDs are checked per batch ------------------------------------------

def test_ids_are_checked_batch_by_batch(tmp_path):
    """9 IDs for batch 0's 8 examples and 7 for batch 1's: the total matches,
    but batch 0's last ID would be stored against batch 1's first row."""
    m, x = head_model(), inputs()
    with pytest.raises(ExportError, match=r"batch 0: 9 IDs for 8 examples"):
        with Exporter(m, tmp_path / "a.h5", layers=["0"]) as ex:
            m(x[:8])
            ex.add_ids(range(9))
            m(x[8:16])
            ex.add_ids(range(9, 16))
    assert left(tmp_path) == []


def test_ids_checked_per_batch_through_export(tmp_path):
    sizes = iter([8, 9, 7, 8])  # IDs per batch: 32 in all, as the examples
    ids = lambda batch: list(range(next(sizes)))  # noqa: E731
    with pytest.raises(ExportError, match=r"batch 1: 9 IDs for 8 examples"):
        export(head_model(), DataLoader(inputs(), batch_size=B), tmp_path / "a.h5", layers=["0"], ids=ids)
    assert left(tmp_path) == []


# ---- 2. uint64 IDs are stored exactly --------------------------------------

def export_with_ids(folder, name, ids, seed=0):
    m, x = head_model(seed), inputs()
    with Exporter(m, folder / name, layers=["0"]) as ex:
        for lo in range(0, N, B):
            m(x[lo:lo + B])
            ex.add_ids(ids[lo:lo + B])
    return str(folder / name)


def test_uint64_ids_are_stored_exactly(tmp_path):
    export_with_ids(tmp_path, "u.h5", np.arange(BIG, BIG + N, dtype=np.uint64))
    export_with_ids(tmp_path, "p.h5", [BIG + i for i in range(N)])  # Python ints: numpy would make floats
    for name in ("u.h5", "p.h5"):
        with h5py.File(tmp_path / name, "r") as f:
            assert f["ids"].dtype == np.uint64
            assert [int(v) for v in f["ids"][()]] == [BIG + i for i in range(N)]


def test_ids_beyond_the_stored_type_are_refused(tmp_path):
    m, x = head_model(), inputs()
    with pytest.raises(ExportError, match=rf"batch 1: ID {BIG} is above int64, but earlier batches' IDs were "
                                          r"stored as int64: give the IDs as uint64"):
        with Exporter(m, tmp_path / "a.h5", layers=["0"]) as ex:
            m(x[:8])
            ex.add_ids(list(range(8)))
            m(x[8:16])
            ex.add_ids([BIG + i for i in range(8)])
    with pytest.raises(ExportError, match=r"batch 1: negative ID -3, but earlier batches' IDs were stored as uint64"):
        with Exporter(m, tmp_path / "a.h5", layers=["0"]) as ex:
            m(x[:2])
            ex.add_ids(np.asarray([BIG, BIG + 1], dtype=np.uint64))
            m(x[2:4])
            ex.add_ids([2, -3])
    with pytest.raises(ExportError, match=rf"ID {2**64} is beyond both int64 and uint64"):
        with Exporter(m, tmp_path / "a.h5", layers=["0"]) as ex:
            m(x[:2])
            ex.add_ids([1, 2**64])
    assert left(tmp_path) == []


def run_pair(mpicka, folder, x, y, out):
    cfg = write_yaml(folder / f"{out}.yaml", {"x": {"file": x, "layers": ["0"]}, "y": {"file": y, "layers": ["0"]},
                                              "batch_size": 16, "plot": False, "output": str(folder / out)})
    return mpicka.run(["run", cfg, "--quiet"])


def test_mpicka_compares_the_uint64_ids_written(mpicka, tmp_path):
    """The same uint64 IDs above int64 on both sides: the run's value is the
    oracle's. One ID differs, and only above int64: a comparison clipped or
    wrapped to int64 would call them the same examples."""
    ids = np.arange(BIG, BIG + N, dtype=np.uint64)
    x, y = export_with_ids(tmp_path, "x.h5", ids), export_with_ids(tmp_path, "y.h5", ids, seed=1)
    p = run_pair(mpicka, tmp_path, x, y, "same")
    assert p.returncode == 0, p.stderr
    with h5py.File(x, "r") as fx, h5py.File(y, "r") as fy:
        want = minibatch_cka([fx["0"][()], fy["0"][()]], 16)[0, 1]
    np.testing.assert_allclose(load(tmp_path / "same" / "cka.h5").cka, [[want]], rtol=0, atol=1e-9)
    other = ids.copy()
    other[5] += np.uint64(1)  # a Python 1 would make the sum a float64 (NumPy 1.x), rounded back to 2**63
    p = run_pair(mpicka, tmp_path, x, export_with_ids(tmp_path, "z.h5", other), "differ")
    assert p.returncode == 3, p.stderr
    assert str(BIG + 5) in p.stderr and str(BIG + 6) in p.stderr, p.stderr
    assert not (tmp_path / "differ").exists()


# ---- 3. complex outputs ------------------------------------------------------

class Spectrum(nn.Module):
    def forward(self, x):
        return torch.fft.fft(x)


def test_complex_output_is_refused_naming_module_and_dtype(tmp_path):
    m = nn.Sequential(nn.Linear(4, 4), Spectrum()).eval()
    with warnings.catch_warnings(record=True) as caught, \
            pytest.raises(ExportError, match=r"module '1' returned complex values \(torch.complex64\)"):
        warnings.simplefilter("always")
        export(m, DataLoader(inputs(), batch_size=B), tmp_path / "a.h5", layers=["0", "1"])
    assert not [w for w in caught if "imaginary part" in str(w.message)]
    assert left(tmp_path) == []


# ---- 4. module names with '/' -----------------------------------------------

class Slashed(nn.Module):
    def __init__(self):
        super().__init__()
        self.d = nn.ModuleDict({"a": nn.Linear(4, 4), "a/b": nn.Linear(4, 2)})

    def forward(self, x):
        return self.d["a/b"](self.d["a"](x))


@pytest.mark.parametrize("layers", [None, ["d.a", "d.a/b"]])
def test_slash_in_a_module_name_is_refused_naming_it(tmp_path, layers):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"module 'd.a/b' has a / in its name.*rename it"):
        export(Slashed().eval(), DataLoader(inputs(), batch_size=B), tmp_path / "a.h5", layers=layers)
    assert left(tmp_path) == []


# ---- 5. a failed export removes the folders it made --------------------------

def test_failed_export_removes_the_folders_it_made(tmp_path):
    (tmp_path / "had").mkdir()
    (tmp_path / "had" / "keep.txt").write_text("mine")
    (tmp_path / "empty").mkdir()
    bad = torch.full((N, 4), float("nan"))
    for target in ("had/new/deeper/a.h5", "empty/a.h5", "fresh/a.h5"):
        with pytest.raises(ExportError, match="NaN or Inf"):
            export(head_model(), DataLoader(bad, batch_size=B), tmp_path / target, layers=["0"])
    assert left(tmp_path) == ["empty", "had", "had/keep.txt"]


def test_failed_start_removes_the_folders_it_made(tmp_path):
    """The folder is made, then the file cannot be: its name is too long."""
    with pytest.raises(OSError):
        with Exporter(head_model(), tmp_path / "new" / ("x" * 300 + ".h5"), layers=["0"]):
            pass
    assert left(tmp_path) == []


# ---- 6. the loader on a FIFO -------------------------------------------------

def test_load_refuses_a_fifo_fast(tmp_path):
    fifo = tmp_path / "cka.h5"
    os.mkfifo(fifo)
    code = ("import sys; from mpicka.result import load\n"
            "try:\n    load(sys.argv[1])\n"
            "except ValueError as e:\n    print(type(e).__name__, e)\n")
    try:
        p = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    except subprocess.TimeoutExpired:
        pytest.fail("mpicka.result.load blocked on a FIFO")
    assert p.stdout.startswith(f"ResultError {fifo}: not a regular file"), p.stdout + p.stderr


# ---- 7, 8. damaged results -----------------------------------------------------

def strings(values):
    return np.asarray(values, dtype=h5py.string_dtype())


def write_models_result(path):
    """A whole models result as mpicka writes it: 3 models of 2, 3 and 2
    layers, 2 matched layers."""
    rng = np.random.default_rng(3)
    with h5py.File(path, "w") as f:
        names = strings([f"{m}/l{i}" for m, k in (("a", 2), ("b", 3), ("c", 2)) for i in range(k)])
        for key in ("cka", "cka_stderr", "cka_pvalue", "hsic_xy"):
            f[key] = rng.random((7, 7))
        f["hsic_xx"], f["hsic_yy"] = rng.random(7), rng.random(7)
        f["x_layers"], f["y_layers"] = names, names
        f["model_names"], f["model_files"] = strings(["a", "b", "c"]), strings(["a.h5", "b.h5", "c.h5"])
        f["model_offsets"] = np.asarray([0, 2, 5, 7], dtype=np.int64)
        f["matched_layers"] = strings(["l0", "l1"])
        f["cka_matched"] = rng.random((2, 3, 3))
        f.create_group("meta").attrs["estimator"] = "hsic1"
        f.attrs["models"] = np.int64(3)
        f.attrs["n"] = np.int64(64)


def test_a_whole_models_result_loads(tmp_path):
    write_models_result(tmp_path / "cka.h5")
    r = load(tmp_path / "cka.h5")
    assert r.models == ["a", "b", "c"] and r.model_offsets.tolist() == [0, 2, 5, 7]
    assert r.matched_layers == ["l0", "l1"] and r.cka_matched.shape == (2, 3, 3)
    assert r.block("b", "c").shape == (3, 2) and r.meta == {"estimator": "hsic1"}


def replace(key, value):
    def damage(f):
        del f[key]
        f[key] = value
    return damage


def delete(key):
    def damage(f):
        del f[key]
    return damage


DAMAGE = {
    "scalar layer names": (replace("x_layers", "abcdefg"), "x_layers", "has 0 dimension"),
    "2-D layer names": (replace("y_layers", strings([["a"] * 7] * 2)), "y_layers", "has 2 dimension"),
    "numbers as layer names": (replace("x_layers", np.arange(7)), "x_layers", "not a dataset of strings"),
    "too few layer names": (replace("y_layers", strings(["a"] * 6)), "cka", r"make it \(7, 6\)"),
    "strings as /cka": (replace("cka", strings([["x"] * 7] * 7)), "cka", "not a floating-point dataset"),
    "a group as /cka": (lambda f: (f.__delitem__("cka"), f.create_group("cka")), "cka", "is not a dataset"),
    "/cka_stderr of another shape": (replace("cka_stderr", np.zeros((7, 6))), "cka_stderr", r"is \(7, 6\)"),
    "/cka_pvalue of another shape": (replace("cka_pvalue", np.zeros(7)), "cka_pvalue", r"is \(7,\)"),
    "/hsic_xx of another shape": (replace("hsic_xx", np.zeros(6)), "hsic_xx", r"is \(6,\)"),
    "/meta a dataset": (replace("meta", np.zeros(2)), "meta", "is not a group"),
    "no /model_offsets": (delete("model_offsets"), "model_offsets", "a models result"),
    "no /matched_layers": (delete("matched_layers"), "matched_layers", "a models result"),
    "no /cka_matched": (delete("cka_matched"), "cka_matched", "a models result"),
    "/cka_matched shorter than /matched_layers": (replace("cka_matched", np.zeros((1, 3, 3))), "cka_matched",
                                                  r"is \(1, 3, 3\) but /matched_layers and /model_names"),
    "offsets not increasing": (replace("model_offsets", np.asarray([0, 5, 2, 7])), "model_offsets",
                               r"\[0, 5, 2, 7\] does not split"),
    "offsets not ending at the layer count": (replace("model_offsets", np.asarray([0, 2, 5, 6])), "model_offsets",
                                              r"\[0, 2, 5, 6\] does not split the 7 layers"),
    "offsets of another length": (replace("model_offsets", np.asarray([0, 2, 7])), "model_offsets",
                                  r"is \(3,\) but /model_names make it \(4,\)"),
    "float offsets": (replace("model_offsets", np.asarray([0.0, 2.0, 5.0, 7.0])), "model_offsets",
                      "not an integer dataset"),
    "a model name twice": (replace("model_names", strings(["a", "b", "a"])), "model_names", "holds .a. twice"),
    "attribute 'models' disagreeing": (lambda f: f.attrs.__setitem__("models", np.int64(4)), "model_names",
                                       "has 3 names but attribute 'models' is 4"),
    "undecodable layer names": (replace("x_layers", np.asarray([b"\xff"] * 7, dtype="S1")), "x_layers",
                                "cannot be read"),
    "more matched layers than a model has": (replace("matched_layers", strings(["l0", "l1", "l2"])),
                                             "matched_layers", r"more than the smallest model has \(2\)"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_result_names_file_and_dataset(tmp_path, case):
    damage, key, what = DAMAGE[case]
    path = tmp_path / "cka.h5"
    write_models_result(path)
    with h5py.File(path, "r+") as f:
        damage(f)
    with pytest.raises(ValueError) as e:
        load(path)
    assert type(e.value).__name__ == "ResultError", repr(e.value)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and f"/{key}" in msg, msg
    assert re.search(what, msg), msg
