"""Shared fixtures: the mpicka binary under the MPI launcher (CTest passes
both; tests/pyhelpers/mkt reads the launcher). A test that uses it is marked
e2e: python_unit starts no launcher."""

import os
import subprocess

import pytest

import mkt


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end-to-end: runs mpicka under the MPI launcher (torchvision models, "
                                       "results of real runs)")


def pytest_collection_modifyitems(items):
    for item in items:
        if "mpicka" in item.fixturenames:
            item.add_marker(pytest.mark.e2e)


class Mpicka:
    """Runs the real mpicka binary (mkt.MPICKA, $MPICKA_EXE) under the real launcher."""

    def run(self, args, ranks=2, timeout=300):
        return subprocess.run(mkt.mpirun_cmd(ranks, args), capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, **mkt.MPI_ENV))


@pytest.fixture(scope="session")
def mpicka():
    if not os.access(mkt.MPICKA, os.X_OK):
        pytest.fail("set MPICKA_EXE to the mpicka binary (CTest does; e.g. MPICKA_EXE=build/mpicka)")
    return Mpicka()
