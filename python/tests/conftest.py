"""Shared fixtures: the mpicka binary and mpirun (CTest passes both), and a
way to run them."""

import json
import os
import subprocess

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end-to-end: export real torchvision models and run mpicka on them")


class Mpicka:
    """Runs the real mpicka binary under the real mpirun."""

    def __init__(self, exe, mpiexec):
        self.exe, self.mpiexec = exe, mpiexec

    def run(self, args, ranks=2, timeout=300):
        cmd = [self.mpiexec, "-np", str(ranks), "--allow-run-as-root", "--oversubscribe", self.exe, *args]
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OPENBLAS_NUM_THREADS="1")
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="session")
def mpicka():
    exe = os.environ.get("MPICKA_EXE")
    if not exe or not os.access(exe, os.X_OK):
        pytest.fail("set MPICKA_EXE to the mpicka binary (CTest does; e.g. MPICKA_EXE=build/mpicka)")
    return Mpicka(exe, os.environ.get("MPIEXEC") or "mpirun")


def write_config(path, cfg):
    """A config as YAML: JSON scalars and flow lists are valid YAML, and
    quoting every string keeps '*' globs from being read as YAML aliases."""
    lines = []
    for key, value in cfg.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {k}: {json.dumps(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key}: {json.dumps(value)}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)
