"""A run's life: its output folder's lock, files that are not regular, stop
signals at any moment, and messages that name the right cause. Every case
asserts the exit status, the message and what is left behind."""
import os
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

from mkt import (config, held_lock, listing, minibatch_cka, read_cka, related, run, start, write_config,
                 write_layers)


def bounded(args, cwd, np_=1, mpi=True, seconds=20):
    """run(), but a hang fails the case and leaves no process behind."""
    if not mpi:
        return run(args, cwd, mpi=False, timeout=seconds)
    proc = start(args, cwd, np_)
    try:
        out, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"mpicka {' '.join(args)} hung")
    return proc.returncode, out.decode("utf-8", "replace")


def one_message(out):
    assert out.count("mpicka: ") - out.count("mpicka: warning") == 1, out


# ------------------------------------------------------------------ lock

def test_no_lock_left_after_a_successful_run(work):
    write_config(work / "c.yaml", config())
    got, out = run(["run", "c.yaml", "--quiet"], work, 2)
    assert got == 0, out
    assert listing(work / "out") == ["cka.csv", "cka.h5"]


REFUSALS = {  # what the output folder holds before a run -> (status, message)
    "another config": (2, "holds the results of another configuration"),
    "garbage cka.h5": (2, "whose configuration cannot be read"),
    "garbage checkpoint": (3, "checkpoint 'out/checkpoint.h5' is damaged"),
    "checkpoint folder": (3, "checkpoint 'out/checkpoint.h5': it is a folder"),
}


@pytest.mark.parametrize("how", REFUSALS)
def test_no_lock_left_after_a_refused_run(work, how):
    status, message = REFUSALS[how]
    write_config(work / "c.yaml", config())
    got, out = run(["run", "c.yaml", "--quiet"], work)
    assert got == 0, out
    (work / "out" / "cka.h5").unlink()
    (work / "out" / "cka.csv").unlink()
    if how == "another config":
        write_config(work / "c.yaml", config(extra="batch_size: 32\n"))
        assert run(["run", "c.yaml", "--quiet"], work)[0] == 0
        write_config(work / "c.yaml", config())
    elif how == "garbage cka.h5":
        (work / "out" / "cka.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"junk" * 100)
    elif how == "garbage checkpoint":
        (work / "out" / "checkpoint.h5").write_bytes(b"not a checkpoint" * 64)
    else:
        (work / "out" / "checkpoint.h5").mkdir()
    before = listing(work / "out")
    got, out = bounded(["run", "c.yaml", "--quiet"], work, 2)
    assert got == status and message in out, out
    one_message(out)
    assert ".mpicka.lock" not in os.listdir(work / "out"), listing(work / "out")
    assert listing(work / "out") == before


def test_a_refused_run_leaves_the_holders_lock_alone(work):
    """Exclusion still holds: the second run is refused and does not remove
    the lock file of the run that holds it."""
    with held_lock(work / "out", "host here, process 77") as lock:
        write_config(work / "c.yaml", config())
        got, out = run(["run", "c.yaml", "--quiet"], work, 2)
        assert got == 2 and "is in use by another mpicka run (host here, process 77" in out, out
        assert os.path.samestat(os.fstat(lock.fileno()), os.stat(work / "out" / ".mpicka.lock"))
    assert listing(work / "out") == [".mpicka.lock"]


# ------------------------------------------------- files that are not regular

def test_fifo_as_the_config(work):
    os.mkfifo(work / "f.yaml")
    got, out = bounded(["run", "f.yaml", "--quiet"], work, 2)
    assert got == 4 and "cannot read config 'f.yaml': it is a FIFO" in out, out
    one_message(out)
    assert not (work / "out").exists()


def test_fifo_as_the_config_of_check(work):
    os.mkfifo(work / "f.yaml")
    got, out = bounded(["check", "f.yaml"], work, mpi=False)
    assert got == 4 and "cannot read config 'f.yaml': it is a FIFO" in out, out


@pytest.mark.parametrize("name,status,what", [("cka.h5", 2, "the result"), ("checkpoint.h5", 3, "checkpoint")])
def test_fifo_in_the_output_folder(work, name, status, what):
    """run reads an earlier cka.h5 (to compare configs) and a checkpoint."""
    (work / "out").mkdir()
    os.mkfifo(work / "out" / name)
    write_config(work / "c.yaml", config())
    got, out = bounded(["run", "c.yaml", "--quiet"], work, 2)
    assert got == status and f"cannot read {what} 'out/{name}': it is a FIFO" in out, out
    one_message(out)
    assert listing(work / "out") == [name]


@pytest.mark.parametrize("cmd", [["show", "f.h5"], ["plot", "f.h5", "-o", "f.png"]])
def test_fifo_given_to_show_and_plot(work, cmd):
    os.mkfifo(work / "f.h5")
    got, out = bounded(cmd, work, mpi=False)
    assert got == 3 and "cannot read the result 'f.h5': it is a FIFO" in out, out
    assert sorted(os.listdir(work)) == ["f.h5", "x.h5", "y.h5"]


@pytest.mark.parametrize("restart", [False, True])
def test_checkpoint_that_is_a_folder(work, restart):
    """Read as a file, a folder's size was 2^63 - 1: an allocation that
    AddressSanitizer refuses; --restart cannot remove it either."""
    (work / "out" / "checkpoint.h5").mkdir(parents=True)
    write_config(work / "c.yaml", config())
    got, out = bounded(["run", "c.yaml", "--quiet"] + (["--restart"] if restart else []), work, 2)
    assert got == 3 and "checkpoint 'out/checkpoint.h5': it is a folder" in out and "remove it" in out, out
    one_message(out)
    assert "requested allocation size" not in out
    assert listing(work / "out") == [] and (work / "out" / "checkpoint.h5").is_dir()


# --------------------------------------------------------------- signals

SIG_CONFIG = config("s.h5", extra="batch_size: 4\ncheckpoint: {every: 1}\n")


@pytest.fixture(scope="module")
def sigwork(tmp_path_factory):
    """n = 128 in 32 batches, a checkpoint after each, and the uninterrupted result."""
    work = tmp_path_factory.mktemp("sig")
    write_layers(work / "s.h5", related(128, [24, 16, 20], seed=3))
    write_config(work / "c.yaml", SIG_CONFIG)
    got, out = run(["run", "c.yaml", "--quiet", "--set", "output=ref"], work, 2)
    assert got == 0, out
    return work


def family(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == p:
                        todo.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return out


def status_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    except OSError:
        return {}


def ranks_where(proc, np_, ready, seconds=20):
    """The rank processes once np_ of them satisfy ready(status), or []."""
    end = time.time() + seconds
    while time.time() < end and proc.poll() is None:
        ranks = [p for p in family(proc.pid) if status_of(p).get("Name", "").strip() == "mpicka"]
        if len(ranks) == np_ and all(ready(status_of(p)) for p in ranks):
            return ranks
        time.sleep(0.002)
    return []


def catches_usr1(st):
    return bool(int(st.get("SigCgt", "0"), 16) >> (signal.SIGUSR1 - 1) & 1)


def start_clean(work):
    """A run from an empty output folder (what a failed case left is gone)."""
    subprocess.run(["rm", "-rf", str(work / "out")])
    return start(["run", "c.yaml", "--quiet"], work, 2)


def expect_kept_work(work, got, out):
    """Exit 0 with the result, or 75 with a checkpoint that resumes to the
    same bits, or 75 before any batch with nothing left behind. Open MPI's
    mpirun drops its handlers while it tears down after the ranks ended, so a
    signal that lands then kills mpirun itself (-SIGUSR1): accepted only with
    the complete, identical result on disk."""
    assert got in (0, 75, -signal.SIGUSR1), out
    ref = read_cka(work / "ref" / "cka.h5").tobytes()
    if got in (0, -signal.SIGUSR1):
        assert read_cka(work / "out" / "cka.h5").tobytes() == ref, out
    elif (work / "out" / "checkpoint.h5").exists():
        assert "run the same command again to resume" in out, out
        got, out = run(["run", "c.yaml", "--quiet"], work, 2)
        assert got == 0 and read_cka(work / "out" / "cka.h5").tobytes() == ref, out
    else:
        assert "before any batch was computed" in out and "no checkpoint" in out, out
        assert not (work / "out").exists(), listing(work / "out")
    subprocess.run(["rm", "-rf", str(work / "out")])


@pytest.mark.parametrize("delay", [0, 0.02, 0.05, 0.1, 0.2, 0.3])
def test_sigusr1_to_mpirun_at_any_moment(sigwork, delay):
    """From the moment mpicka's code runs in every rank (the handlers come
    before the libraries' constructors and MPI_Init) to the end of the run:
    the result, or exit 75; never a rank killed (138), never a hang."""
    proc = start_clean(sigwork)
    assert ranks_where(proc, 2, catches_usr1) or proc.poll() is not None
    time.sleep(delay)
    proc.send_signal(signal.SIGUSR1)
    out, _ = proc.communicate(timeout=60)
    expect_kept_work(sigwork, proc.returncode, out.decode("utf-8", "replace"))


def test_sigusr1_to_the_ranks_inside_mpi_init(sigwork):
    """Slurm signals every task: a signal while MPI_Init runs (its progress
    thread is up) killed the ranks (exit 138) before the handlers existed."""
    proc = start_clean(sigwork)
    ranks = ranks_where(proc, 2, lambda st: int(st.get("Threads", "1")) >= 2)
    for pid in ranks:
        os.kill(pid, signal.SIGUSR1)
    out, _ = proc.communicate(timeout=60)
    expect_kept_work(sigwork, proc.returncode, out.decode("utf-8", "replace"))


# --------------------------------------------------------------- messages

def test_plot_file_with_an_unknown_extension(work):
    write_config(work / "c.yaml", config().replace("plot: false\n", "plot:\n  file: out.jpg\n"))
    got, out = run(["run", "c.yaml", "--quiet"], work, 2)
    assert got == 2 and "'plot.file' is 'out.jpg'" in out and ".png, .svg or .pdf" in out, out
    one_message(out)
    assert not (work / "out").exists()


def test_permutations_that_need_the_memory_are_named(work):
    write_config(work / "c.yaml", config(extra="permutations: 2305843009213693952\n"))
    got, out = run(["run", "c.yaml", "--quiet"], work)
    assert got == 3 and "per permutation (permutations: 2305843009213693952)" in out, out
    assert "lower permutations" in out and "lower batch_size" not in out, out
    one_message(out)
    assert not (work / "out").exists()


# ----------------------------------------------------------------- numbers

def test_subnormal_float64_values_give_the_right_cka(work):
    base = related(64, [4, 3, 5], seed=11)
    sub = [np.ldexp(b / np.abs(b).max() * 0.9, -1030) for b in base]  # every value below 2^-1022
    assert all(np.abs(s).max() < np.finfo(np.float64).tiny for s in sub)
    write_layers(work / "sub.h5", sub)
    write_config(work / "c.yaml", config("sub.h5", extra="batch_size: 32\nprecision: float64\n"))
    got, out = run(["run", "c.yaml", "--quiet"], work)
    assert got == 0, out
    ref = minibatch_cka([np.ldexp(s, 1060) for s in sub], 32)  # powers of two: the same data, exactly
    assert np.max(np.abs(read_cka(work / "out" / "cka.h5") - ref)) < 1e-9
