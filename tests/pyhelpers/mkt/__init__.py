"""Helpers shared by the Python test suites (tests/hostile, tests/models,
tests/bits, python/tests): mpicka under the MPI launcher, inputs written with
h5py, results read back, and an independent float64 oracle of minibatch CKA.
CTest puts this folder on PYTHONPATH; by hand:
    PYTHONPATH=tests/pyhelpers MPICKA_EXE=build/mpicka python3 -m pytest tests/hostile

The launcher is read at run time (tests/CMakeLists.txt lists the variables):
$MPIEXEC (words allowed; else $MPICKA_TEST_MPIEXEC, the one CMake found; else
mpirun), $MPIEXEC_FLAGS (default --allow-run-as-root --oversubscribe; set and
empty: none) and $MPIEXEC_NUMPROC_FLAG before the rank count (default -np)."""
import contextlib
import fcntl
import json
import os
import shlex
import signal
import subprocess
import time

import h5py
import numpy as np

MPICKA = os.environ.get("MPICKA_EXE", "mpicka")
MPIEXEC = os.environ.get("MPIEXEC") or os.environ.get("MPICKA_TEST_MPIEXEC") or "mpirun"
MPIEXEC_FLAGS = os.environ.get("MPIEXEC_FLAGS", "--allow-run-as-root --oversubscribe")
MPIEXEC_NUMPROC_FLAG = os.environ.get("MPIEXEC_NUMPROC_FLAG") or "-np"

# Open MPI as root, one BLAS thread per rank.
MPI_ENV = dict(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OPENBLAS_NUM_THREADS="1")
# And one node: shared memory only, no network probing (0.3 s less per run);
# and no second to wait before mpirun kills the ranks of a failed job, which
# have exited already (2 s less per expected failure).
ENV = dict(os.environ, **MPI_ENV, OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_pml="ob1",
           OMPI_MCA_btl="self,vader", OMPI_MCA_odls_base_sigkill_timeout="0")


def mpirun_cmd(np_, args, launcher_args=()):
    """The command line of mpicka ARGS on np_ ranks (launcher_args: more
    flags of the launcher, e.g. ["--bind-to", "none"])."""
    return (shlex.split(MPIEXEC) + shlex.split(MPIEXEC_FLAGS) + [MPIEXEC_NUMPROC_FLAG, str(np_)]
            + list(launcher_args) + [MPICKA] + list(args))


def run(args, cwd, np_=1, timeout=120, mpi=True, env=None, launcher_args=()):
    """Runs mpicka (under the launcher unless mpi is False); returns (status,
    output), stdout and stderr merged."""
    cmd = mpirun_cmd(np_, args, launcher_args) if mpi else [MPICKA] + list(args)
    for _ in range(2):
        p = subprocess.run(cmd, cwd=cwd, env=ENV if env is None else env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        out = p.stdout.decode("utf-8", "replace")
        if not (mpi and launcher_race(p.returncode, out)):
            break
    return p.returncode, out


def launcher_race(status, out):
    """Open MPI 4.1's mpirun now and then reports a rank that had finalized as
    "exiting improperly" (PID 0) and exits 1, whatever the ranks returned (a
    race in its run-time: open-mpi/ompi issues 7833, 9389); mpicka never exits
    1. run() runs such a command once more; any other failure stands."""
    return status == 1 and "exiting improperly" in out


def start(args, cwd, np_=1, env=None, launcher_args=()):
    """Starts the launcher in the background (its own process group)."""
    return subprocess.Popen(mpirun_cmd(np_, args, launcher_args), cwd=cwd, env=ENV if env is None else env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(path, proc, seconds=60, poll=0.01):
    """Waits until path exists (True) or proc has ended (False: whether path exists then)."""
    end = time.time() + seconds
    while time.time() < end:
        if os.path.exists(path) or proc.poll() is not None:
            return os.path.exists(path)
        time.sleep(poll)
    return False


def stop(proc, sig=signal.SIGUSR1):
    """SIGUSR1 to the launcher (it forwards it), another signal to its whole
    group; returns (status, output)."""
    os.killpg(proc.pid, sig) if sig != signal.SIGUSR1 else proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out.decode("utf-8", "replace")


def stopped_run(args, cwd, np_, checkpoint, tries=5, poll=0.005, **kw):
    """Starts a run, stops it with SIGUSR1 once checkpoint exists; tries
    again (with output removed: the folder of checkpoint) while the run ended
    before the signal. Returns (status, output) of the last try: 75 when
    stopped."""
    for _ in range(tries):
        proc = start(args, cwd, np_, **kw)
        wait_for(checkpoint, proc, poll=poll)
        got, out = stop(proc)
        if got == 75:
            break
        subprocess.run(["rm", "-rf", os.path.dirname(str(checkpoint))])
    return got, out


def write_config(path, text):
    with open(path, "w") as f:
        f.write(text)


def write_yaml(path, cfg):
    """A config as YAML from a dict: JSON scalars and flow lists are valid
    YAML, and quoting every string keeps '*' globs from being read as YAML
    aliases. Returns the path as a string."""
    lines = []
    for key, value in cfg.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {k}: {json.dumps(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key}: {json.dumps(value)}")
    write_config(path, "\n".join(lines) + "\n")
    return str(path)


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
    """Song et al.'s unbiased HSIC of two m x m Grams, term by term."""
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


def matrices(path, names):
    """The bytes of datasets names of a result (for 'the same bits')."""
    with h5py.File(path, "r") as f:
        return {k: f[k][()].tobytes() for k in names}


def listing(folder):
    """Every file under folder, relative (for 'nothing is left behind')."""
    out = []
    for root, _, files in os.walk(folder):
        out += [os.path.relpath(os.path.join(root, f), folder) for f in files]
    return sorted(out)


@contextlib.contextmanager
def held_lock(folder, holder):
    """folder (made here) locked as another mpicka run would hold it: its
    .mpicka.lock locked and naming holder ("host H, process P"); yields the
    open lock file."""
    folder.mkdir()
    with open(folder / ".mpicka.lock", "w") as lock:
        fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write(holder + "\n")
        lock.flush()
        yield lock
