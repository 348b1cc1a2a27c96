"""Shared fixtures of the install suite: the source tree, the build folder,
and a private environment (HOME, PATH) so nothing lands outside tmp_path."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(os.environ.get("MPICKA_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD = Path(os.environ.get("MPICKA_BUILD_DIR", SOURCE / "build"))
PYTHON = "/usr/bin/python3"


def sh(cmd, cwd, env=None, timeout=300, check=True):
    """Runs cmd (a list, or a string for bash) and returns the process; a
    failure shows the command and all it printed."""
    args = ["bash", "-e", "-o", "pipefail", "-c", cmd] if isinstance(cmd, str) else cmd
    p = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, f"{cmd}\nexit {p.returncode}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}"
    return p


def user_env(home, extra_path=()):
    """A user's environment on Debian 12 as root: HOME in the test's folder,
    Debian's python3 and mpirun first on PATH, Open MPI allowed as root (the
    README's set-up says so), no user site-packages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MPICKA", "VIRTUAL_ENV", "SLURM_"))}
    env.update(HOME=str(home), PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1", OPENBLAS_NUM_THREADS="1",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PATH=":".join([*map(str, extra_path), "/usr/bin", "/bin", os.environ.get("PATH", "")]))
    return env


def copy_python(dest):
    """The Python package's sources, without tests or caches (pip builds in
    the tree it is given: never the checkout's)."""
    shutil.copytree(SOURCE / "python", dest,
                    ignore=shutil.ignore_patterns("tests", "__pycache__", "*.egg-info", "build"))
    return dest


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """`cmake --install BUILD --prefix P`, once: P."""
    prefix = tmp_path_factory.mktemp("prefix")
    sh(["cmake", "--install", str(BUILD), "--prefix", str(prefix)], cwd=prefix)
    return prefix
