"""Same bits in every environment: every stored matrix of cka.h5 is bitwise
identical for 1 to 4 ranks, OPENBLAS_NUM_THREADS unset, 1 or 2, with and
without --bind-to none, 1 or 2 mpicka threads, and across a stop on 3 ranks
resumed on 2 with other threads. (OpenBLAS follows mpirun's binding: 1
thread per rank at -np 1 or 2, 2 at -np 3 and more; some of its calls change
their bits with the thread count, which mpicka no longer lets matter.)"""
import itertools
import os

import pytest

from mkt import MPI_ENV, matrices, related, run, stopped_run, write_config, write_layers

MATRICES = ("cka", "hsic_xy", "hsic_xx", "hsic_yy", "cka_stderr", "cka_pvalue")

CASES = {  # name: (y present, precision)
    "xy-f32": (True, "float32"),
    "xy-f64": (True, "float64"),
    "self-f32": (False, "float32"),
    "self-f64": (False, "float64"),
}


def env(blas):
    """Open MPI as root, OPENBLAS_NUM_THREADS=blas (unset when blas is empty)."""
    e = dict(os.environ, **MPI_ENV)
    e.pop("OPENBLAS_NUM_THREADS", None)
    if blas:
        e["OPENBLAS_NUM_THREADS"] = blas
    return e


def mpirun(np_, bind_none, blas, args, cwd):
    return run(args, cwd, np_, timeout=300, env=env(blas), launcher_args=["--bind-to", "none"] if bind_none else [])


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
        m = matrices(data / out / "cka.h5", MATRICES)
        if ref is None:
            ref = m
        for name in MATRICES:
            assert m[name] == ref[name], f"{name} differs: {np_} ranks, OPENBLAS_NUM_THREADS={blas or 'unset'}, " \
                                         f"bind-to none {bind_none}, {threads} thread(s)"


def test_a_stop_on_3_ranks_resumed_on_2_with_other_threads(data):
    got, log = mpirun(1, False, "", ["run", "xy-f64.yaml", "--quiet", "--set", "output=ref-resume"], data)
    assert got == 0, log
    got, log = stopped_run(["run", "xy-f64.yaml", "--quiet", "--set", "output=stopped", "--set", "threads=1"],
                           data, 3, data / "stopped" / "checkpoint.h5", env=env(""))
    assert got == 75, log
    got, log = mpirun(2, True, "2", ["run", "xy-f64.yaml", "--quiet", "--set", "output=stopped",
                                     "--set", "threads=2"], data)
    assert got == 0 and "resuming from" in log, log
    assert matrices(data / "stopped" / "cka.h5", MATRICES) == matrices(data / "ref-resume" / "cka.h5", MATRICES)
