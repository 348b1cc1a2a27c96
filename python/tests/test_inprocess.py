"""CKA while the models run (issue 20, "Done when"): two torchvision
ResNet-18s (seeds 0 and 1) on 512 images, 4 layers each. mpicka.compare in
this process and in 2 processes (torch.distributed, gloo), and the exporter
followed by `mpicka run` on 1 and 3 ranks: /cka, /hsic_*, /cka_stderr and
/cka_pvalue bitwise identical across the four, and the in-process runs write
nothing but the result. The same with three models (`models:`), one of them
in float16, and with 2 processes under mpirun with mpi4py.

The forward runs with one thread and the same batch size on every route, so
the activations are the same bits; what is tested is that the library sums
them into the bits of a file run."""

import os
import shlex
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import inprocess_case as case
import mkt
import mpicka
import mpicka as mpicka_module   # the tests' fixture `mpicka` is the program
from mpicka.export import export

pytestmark = pytest.mark.e2e

HERE = os.path.dirname(os.path.abspath(__file__))
MATRICES = ["cka", "hsic_xy", "hsic_xx", "hsic_yy", "cka_stderr", "cka_pvalue"]
MATCHED = ["cka_matched", "cka_matched_stderr", "cka_matched_pvalue"]


def env():
    paths = [os.path.dirname(os.path.dirname(mpicka.__file__)), HERE, os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, **mkt.MPI_ENV, PYTHONPATH=os.pathsep.join(p for p in paths if p))


def bits(folder, names):
    with h5py.File(os.path.join(folder, "cka.h5"), "r") as f:
        missing = [k for k in names if k not in f]
        assert not missing, f"{folder}: no {missing}"
        return {k: (f[k].dtype.str, f[k].shape, f[k][()].tobytes()) for k in names}


def files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def check(p, what):
    assert p.returncode == 0, f"{what}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"


def in_process(d, name):
    """One process, here: only out/cka.h5 and out/cka.csv appear anywhere under d."""
    before = files(d)
    r = mpicka.compare(case.models(name), case.dataset(), layers=case.LAYERS, output=str(d / "one"), **case.CONFIG)
    assert sorted(set(files(d)) - set(before)) == ["one/cka.csv", "one/cka.h5"]
    assert r.path == str(d / "one" / "cka.h5") and r.provenance["n"] == case.N and r.provenance["ranks"] == 1
    return d / "one"


def spawn(d, name, world=2):
    """world processes of inprocess_worker.py under torch.distributed (gloo,
    a FileStore), each in the same empty folder; their exit statuses and output."""
    work = d / "two"
    work.mkdir()
    worker = os.path.join(HERE, "inprocess_worker.py")
    procs = [subprocess.Popen([sys.executable, worker, "torch", name, "out", str(d / "store"), str(r), str(world)],
                              cwd=work, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(world)]
    try:
        outs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return work, procs, outs


def torch_distributed(d, name, world=2):
    """The result and each rank's /cka, nothing else."""
    work, procs, outs = spawn(d, name, world)
    for r, p in enumerate(procs):
        assert p.returncode == 0, f"rank {r}: exit {p.returncode}\n{outs[r]}"
    assert files(work) == ["out.rank0.npy", "out.rank1.npy", "out/cka.csv", "out/cka.h5"]
    same_everywhere(work, world)
    return work / "out"


def same_everywhere(work, world):
    """The sessions ran as world processes (not each alone, which would give
    the same bits too), and every rank returned rank 0's result."""
    with h5py.File(work / "out" / "cka.h5", "r") as f:
        written = f["cka"][()]
        assert f.attrs["ranks"] == world
    for r in range(world):
        assert np.load(work / f"out.rank{r}.npy").tobytes() == written.tobytes(), f"rank {r}"


def exported(d, name, mpicka_, ranks):
    """The file route: the exporter (same forward batches), then mpicka run."""
    acts = d / "acts"
    if not acts.exists():
        data = case.dataset()
        for model, (seed, half) in case.CASES[name].items():
            export(case.models(name)[model], DataLoader(data, batch_size=case.M), acts / f"{model}.h5", case.LAYERS,
                   dtype="float16" if half else "float32")
    names = list(case.CASES[name])
    inputs = ({"x": {"file": str(acts / f"{names[0]}.h5"), "layers": case.LAYERS},
               "y": {"file": str(acts / f"{names[1]}.h5"), "layers": case.LAYERS}} if len(names) == 2 else
              {"models": [{"file": str(acts / f"{m}.h5"), "layers": case.LAYERS} for m in names]})
    out = d / f"run{ranks}"
    cfg = mkt.write_yaml(d / f"run{ranks}.yaml", dict(inputs, output=str(out), **case.CONFIG))
    check(mpicka_.run(["run", cfg, "--quiet"], ranks=ranks), f"mpicka run on {ranks} ranks")
    return out


@pytest.mark.parametrize("name", ["two", "three"])
def test_in_process_routes_give_the_file_runs_bits(tmp_path, mpicka, name):
    names = MATRICES + (MATCHED if name == "three" else [])
    ref = bits(exported(tmp_path, name, mpicka, 1), names)
    assert bits(exported(tmp_path, name, mpicka, 3), names) == ref, "mpicka run on 3 ranks"
    assert bits(in_process(tmp_path, name), names) == ref, "compare in one process"
    assert bits(torch_distributed(tmp_path, name), names) == ref, "compare on 2 processes (torch.distributed)"
    with h5py.File(tmp_path / "one" / "cka.h5", "r") as f:
        cka = f["cka"][()]
    # Not a degenerate matrix: the seeds' stages differ, each model matches itself.
    assert np.all(np.isfinite(cka)) and cka.min() < 0.99
    if name == "three":
        with h5py.File(tmp_path / "one" / "cka.h5", "r") as f:
            assert [s.decode() for s in f["model_names"][()]] == ["s0", "s1", "s2"]
            assert f["cka_matched"].shape == (4, 3, 3)


def test_mpi4py_ranks_give_the_same_bits(tmp_path, mpicka):
    ref = bits(exported(tmp_path, "two", mpicka, 1), MATRICES)
    work = tmp_path / "mpi"
    work.mkdir()
    cmd = (shlex.split(mkt.MPIEXEC) + shlex.split(mkt.MPIEXEC_FLAGS) + [mkt.MPIEXEC_NUMPROC_FLAG, "2"]
           + [sys.executable, os.path.join(HERE, "inprocess_worker.py"), "mpi", "two", "out"])
    p = subprocess.run(cmd, cwd=work, env=env(), capture_output=True, text=True, timeout=240)
    check(p, " ".join(cmd))
    assert files(work) == ["out.rank0.npy", "out.rank1.npy", "out/cka.csv", "out/cka.h5"]
    same_everywhere(work, 2)
    assert bits(work / "out", MATRICES) == ref



def test_a_failure_on_one_process_stops_every_process_naming_it(tmp_path):
    """NaN on rank 1 only: both processes stop (none waits for the other),
    the message names the rank, the model, the module and the batch, and
    nothing is written."""
    work, procs, outs = spawn(tmp_path, "nan")
    assert [p.returncode for p in procs] != [0, 0] and all(p.returncode != 0 for p in procs), outs
    for out in outs:
        assert "rank 1" in out and "model 'b'" in out and "NaN or Inf" in out, out
    assert not (work / "out").exists()



# Every estimator, kernel and precision, and the measures: the config reaches
# the library as it reaches run. Two small MLPs, p's output in float16, on
# 203 examples in batches of 40 (a tail of 3: left out, or kept by the
# exact estimator).
OPTIONS = {
    "hsic0_rbf_float32": {"estimator": "hsic0", "kernel": "rbf", "precision": "float32", "permutations": 2},
    "exact_measures": {"estimator": "exact", "measures": ["cca", "procrustes", {"svcca": {"keep": 0.99}}]},
}


class Small(torch.nn.Module):
    """Linear, Tanh, Linear; the output ('out') in dtype."""

    def __init__(self, seed, dtype):
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Linear(5, 12), torch.nn.Tanh(), torch.nn.Linear(12, 6))
        self.out = torch.nn.Identity()
        self.dtype = dtype

    def forward(self, x):
        return self.out(self.net(x).to(self.dtype))


@pytest.mark.parametrize("option", OPTIONS)
def test_estimators_kernels_precision_and_measures_give_the_file_runs_bits(tmp_path, mpicka, option):
    data = torch.utils.data.TensorDataset(torch.randn(203, 5, generator=torch.Generator().manual_seed(1)))
    models = {"p": Small(0, torch.float16).eval(), "q": Small(1, torch.float32).eval()}
    layers = ["net.1", "out"]
    cfg = dict(batch_size=40, jackknife=3, plot=False, **OPTIONS[option])
    mpicka_module.compare(models, data, layers=layers, output=str(tmp_path / "inproc"), **cfg)
    for name, model in models.items():   # p's float16 'out' is stored exactly as float32, beside its float32 'net.1'
        export(model, DataLoader(data, batch_size=40), tmp_path / f"{name}.h5", layers)
    conf = mkt.write_yaml(tmp_path / "run.yaml", dict(
        x={"file": str(tmp_path / "p.h5"), "layers": layers}, y={"file": str(tmp_path / "q.h5"), "layers": layers},
        output=str(tmp_path / "run"), **cfg))
    check(mpicka.run(["run", conf, "--quiet"], ranks=2), "mpicka run on 2 ranks")
    with h5py.File(tmp_path / "run" / "cka.h5", "r") as f:
        names = [k for k in MATRICES if k in f] + [f"measures/{k}" for k in f.get("measures", {})]
        assert f.attrs["n"] == 203
    assert ("cka_pvalue" in names) == ("permutations" in OPTIONS[option])
    assert ("measures/procrustes" in names) == (option == "exact_measures")
    assert bits(tmp_path / "inproc", names) == bits(tmp_path / "run", names)
