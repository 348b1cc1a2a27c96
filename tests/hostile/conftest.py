"""Shared helpers of the hostile-input suite: running mpicka, writing inputs
and configs, and an independent float64 oracle of minibatch CKA."""
import os
import shutil
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

MPICKA = os.environ.get("MPICKA_EXE", "mpicka")
MPIEXEC = os.environ.get("MPIEXEC", "mpirun")
# One node: shared memory only, no network probing (0.3 s less per run); and
# no second to wait before mpirun kills the ranks of a failed job, which have
# exited already (2 s less per expected failure).
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1", OPENBLAS_NUM_THREADS="1", OMPI_MCA_pml="ob1",
           OMPI_MCA_btl="self,vader", OMPI_MCA_odls_base_sigkill_timeout="0")


def mpirun_cmd(np_, args):
    return [MPIEXEC, "--allow-run-as-root", "--oversubscribe", "-np", str(np_), MPICKA] + list(args)


def run(args, cwd, np_=1, timeout=120, mpi=True):
    """Runs mpicka (under mpirun unless mpi is False); returns (status, output)."""
    cmd = mpirun_cmd(np_, args) if mpi else [MPICKA] + list(args)
    p = subprocess.run(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def start(args, cwd, np_=1):
    """Starts mpirun in the background (its own process group)."""
    return subprocess.Popen(mpirun_cmd(np_, args), cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(path, proc, seconds=60):
    end = time.time() + seconds
    while time.time() < end:
        if os.path.exists(path) or proc.poll() is not None:
            return os.path.exists(path)
        time.sleep(0.01)
    return False


def write_config(path, text):
    with open(path, "w") as f:
        f.write(text)


def config(file="x.h5", layers='["*"]', output="out", extra=""):
    if "batch_size:" not in extra:  # the inputs are small: a batch must not be larger than n
        extra += "batch_size: 16\n"
    return f"x:\n  file: {file}\n  layers: {layers}\noutput: {output}\nplot: false\n{extra}"


def rng(seed):
    return np.random.default_rng(seed)


def related(n, widths, seed=0):
    """Layers that share a latent signal, so that CKA is far from 0 and 1."""
    r = rng(seed)
    z = r.standard_normal((n, 3))
    return [z @ r.standard_normal((3, p)) + 0.5 * r.standard_normal((n, p)) for p in widths]


def write_layers(path, layers, names=None, dtype="f8"):
    with h5py.File(path, "a") as f:
        for k, a in enumerate(layers):
            f.create_dataset(names[k] if names else f"l{k}", data=np.asarray(a, dtype=dtype))


def hsic1(k, l):
    m = k.shape[0]
    k = k.copy()
    l = l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    one = np.ones(m)
    return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((m - 1) * (m - 2))
            - 2.0 / (m - 2) * (one @ k @ l @ one)) / (m * (m - 3))


def minibatch_cka(layers, m):
    """Naive minibatch CKA of every pair (self comparison), float64, batches in
    order, a last batch kept when it has at least 4 examples."""
    n = layers[0].shape[0]
    starts = [s for s in range(0, n, m) if n - s >= 4]
    L = len(layers)
    h = np.zeros((L, L))
    for s in starts:
        grams = []
        for a in layers:
            x = np.asarray(a[s:s + m], dtype=np.float64).reshape(min(m, n - s), -1)
            x = x - x.mean(axis=0)
            grams.append(x @ x.T)
        for i in range(L):
            for j in range(L):
                h[i, j] += hsic1(grams[i], grams[j])
    d = np.sqrt(np.diag(h))
    return h / np.outer(d, d)


def read_cka(path):
    with h5py.File(path, "r") as f:
        return f["cka"][()]


def listing(folder):
    """Every file under folder, relative (for 'nothing is left behind')."""
    out = []
    for root, _, files in os.walk(folder):
        out += [os.path.relpath(os.path.join(root, f), folder) for f in files]
    return sorted(out)


@pytest.fixture
def work(tmp_path):
    """A folder with a good x.h5 (layers l0..l2, n = 64) and y.h5 (n = 64)."""
    write_layers(tmp_path / "x.h5", related(64, [5, 3, 4], seed=1))
    write_layers(tmp_path / "y.h5", related(64, [2, 6], seed=2))
    return tmp_path


def tamper_copy(src, dst):
    shutil.copyfile(src, dst)
    return dst


def stop(proc, sig=signal.SIGUSR1):
    os.killpg(proc.pid, sig) if sig != signal.SIGUSR1 else proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out.decode("utf-8", "replace")
