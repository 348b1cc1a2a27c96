"""Same bits in every environment: every stored matrix of cka.h5 is bitwise
identical for 1 to 4 ranks, OPENBLAS_NUM_THREADS unset, 1 or 2, with and
without --bind-to none, 1 or 2 mpicka threads, and across a stop on 3 ranks
resumed on 2 with other threads. (OpenBLAS follows mpirun's binding: 1
thread per rank at -np 1 or 2, 2 at -np 3 and more; some of its calls change
their bits with the thread count, which mpicka no longer lets matter.)"""
import itertools
import os
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "hostile"))
from conftest import related, write_config, write_layers  # noqa: E402

MPICKA = os.environ.get("MPICKA_EXE", "mpicka")
MPIEXEC = os.environ.get("MPIEXEC", "mpirun")
MATRICES = ("cka", "hsic_xy", "hsic_xx", "hsic_yy", "cka_stderr", "cka_pvalue")

CASES = {  # name: (y present, precision)
    "xy-f32": (True, "float32"),
    "xy-f64": (True, "float64"),
    "self-f32": (False, "float32"),
    "self-f64": (False, "float64"),
}


def env(blas):
    e = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    e.pop("OPENBLAS_NUM_THREADS", None)
    if blas:
        e["OPENBLAS_NUM_THREADS"] = blas
    return e


def mpirun(np_, bind_none, blas, args, cwd, background=False):
    cmd = [MPIEXEC, "--allow-run-as-root", "--oversubscribe", "-np", str(np_)]
    cmd += ["--bind-to", "none"] if bind_none else []
    cmd += [MPICKA] + args
    if background:
        return subprocess.Popen(cmd, cwd=cwd, env=env(blas), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    p = subprocess.run(cmd, cwd=cwd, env=env(blas), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def matrices(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()].tobytes() for k in MATRICES}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("bits")
    # 331 examples, batches of 48: a tail batch of 43; wide enough layers that
    # the Grams and pairs span several tiles and chunks.
    write_layers(d / "x.h5", related(331, [300, 17, 64], seed=1), dtype="f4")
    write_layers(d / "y.h5", related(331, [40, 280], seed=2), dtype="f8")
    for name, (has_y, prec) in CASES.items():
        text = (f"x:\n  file: x.h5\n  layers: [\"*\"]\n" + ("y:\n  file: y.h5\n  layers: [\"*\"]\n" if has_y else "")
                + f"batch_size: 48\nepochs: 2\nshuffle: true\nseed: 3\nprecision: {prec}\npermutations: 3\n"
                + "jackknife: 5\nplot: false\ncheckpoint: {every: 1}\noutput: out\n")
        write_config(d / f"{name}.yaml", text)
    return d


ENVIRONMENTS = list(itertools.product((1, 2, 3, 4), ("", "1", "2"), (False, True)))


@pytest.mark.parametrize("case", CASES)
def test_every_environment_gives_the_same_bits(data, case):
    ref = None
    for k, (np_, blas, bind_none) in enumerate(ENVIRONMENTS):
        out = f"{case}-{np_}-{blas or 'unset'}-{int(bind_none)}"
        threads = 1 + (k // 2) % 2  # each binding with 1 and with 2 threads
        got, log = mpirun(np_, bind_none, blas, ["run", f"{case}.yaml", "--quiet", "--set", f"output={out}",
                                                 "--set", f"threads={threads}"], data)
        assert got == 0, log
        m = matrices(data / out / "cka.h5")
        if ref is None:
            ref = m
        for name in MATRICES:
            assert m[name] == ref[name], f"{name} differs: {np_} ranks, OPENBLAS_NUM_THREADS={blas or 'unset'}, " \
                                         f"bind-to none {bind_none}, {threads} thread(s)"


def test_a_stop_on_3_ranks_resumed_on_2_with_other_threads(data):
    got, log = mpirun(1, False, "", ["run", "xy-f64.yaml", "--quiet", "--set", "output=ref-resume"], data)
    assert got == 0, log
    for _ in range(5):
        proc = mpirun(3, False, "", ["run", "xy-f64.yaml", "--quiet", "--set", "output=stopped",
                                     "--set", "threads=1"], data, background=True)
        end = time.time() + 60
        while time.time() < end and proc.poll() is None and not (data / "stopped" / "checkpoint.h5").exists():
            time.sleep(0.005)
        proc.send_signal(10)
        proc.communicate(timeout=120)
        if proc.returncode == 75:
            break
        subprocess.run(["rm", "-rf", str(data / "stopped")])
    assert proc.returncode == 75
    got, log = mpirun(2, True, "2", ["run", "xy-f64.yaml", "--quiet", "--set", "output=stopped",
                                     "--set", "threads=2"], data)
    assert got == 0 and "resuming from" in log, log
    assert matrices(data / "stopped" / "cka.h5") == matrices(data / "ref-resume" / "cka.h5")
