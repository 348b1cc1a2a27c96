"""The hostile-input suite's fixture; its helpers (running mpicka, writing
inputs and configs, the float64 oracle) are tests/pyhelpers/mkt's."""
import pytest

from mkt import related, write_layers


@pytest.fixture
def work(tmp_path):
    """A folder with a good x.h5 (layers l0..l2, n = 64) and y.h5 (n = 64)."""
    write_layers(tmp_path / "x.h5", related(64, [5, 3, 4], seed=1))
    write_layers(tmp_path / "y.h5", related(64, [2, 6], seed=2))
    return tmp_path
