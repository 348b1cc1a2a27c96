"""Every input byte is read once per epoch: the probe that fixes each
layer's scale reads the first batch, and that batch then uses the probe's
blocks instead of reading them again.

Bytes are rchar of /proc/<pid>/io (bytes returned by read system calls) of
every rank, with io_uring off (its reads are not counted there). A run also
reads its config, libraries' files and HDF5 metadata: the same for one epoch
as for two, so 2 * bytes(1 epoch) - bytes(2 epochs) is that overhead plus
anything a run reads beyond its epochs. A second read of the first batch
would add a whole batch to it. The overhead is about 1.2 MB here (most of it
the fingerprint's samples of each input file), well under half a batch."""
import os

import numpy as np
import pytest
from mkt import ENV, related, run, write_config, write_layers

N, M, WIDTHS = 4096, 1024, [512, 384, 640]
BATCH_BYTES = M * sum(WIDTHS) * 4  # one model's batch, float32
COUNT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "io_count.sh")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("once")
    for name, seed in (("a", 1), ("b", 2)):
        write_layers(work / f"{name}.h5", [x.astype(np.float32) for x in related(N, WIDTHS, seed=seed)], dtype="f4")
    common = f"batch_size: {M}\nplot: false\ncheckpoint: false\nprecision: float32\n"
    write_config(work / "pair.yaml", "x: {file: a.h5, layers: ['*']}\ny: {file: b.h5, layers: ['*']}\noutput: pair\n" + common)
    write_config(work / "models.yaml", "models:\n  - {file: a.h5, name: a, layers: ['*']}\n  - {file: b.h5, name: b, layers: ['*']}\n"
                 "output: models\n" + common)
    write_config(work / "exact.yaml", "x: {file: a.h5, layers: ['*']}\ny: {file: b.h5, layers: ['*']}\noutput: exact\nestimator: exact\n" + common)
    write_config(work / "measures.yaml", "x: {file: a.h5, layers: ['*']}\ny: {file: b.h5, layers: ['*']}\n"
                 "output: measures\nestimator: exact\nmeasures: [cka, cca, svcca, pwcca, procrustes, shape, "
                 "regression]\n" + common)
    grams = "[rsa, {mutual_knn: {k: 5}}, cknna, jaccard]"
    write_config(work / "grams.yaml", "x: {file: a.h5, layers: ['*']}\ny: {file: b.h5, layers: ['*']}\n"
                 f"output: grams\nmeasures: {grams}\n" + common)
    write_config(work / "every.yaml", "x: {file: a.h5, layers: ['*']}\ny: {file: b.h5, layers: ['*']}\n"
                 "output: every\nestimator: exact\nmeasures: [cka, cca, svcca, pwcca, procrustes, shape, "
                 f"regression, rsa, {{mutual_knn: {{k: 5}}}}, cknna, jaccard]\n" + common)
    return work


def bytes_read(work, cfg, np_, epochs):
    """rchar summed over the ranks of one run of cfg with `epochs` (each rank
    under bench/io_count.sh, which appends its counters to io.txt)."""
    io = work / "io.txt"
    io.unlink(missing_ok=True)
    env = dict(ENV, IO_COUNT_OUT=str(io), MPICKA_IO_URING="0")
    got, out = run(["run", cfg, "--quiet", "--force", "--set", f"epochs={epochs}"], work, np_, env=env,
                   launcher_args=["-x", "IO_COUNT_OUT", "-x", "MPICKA_IO_URING", COUNT])
    assert got == 0, out
    lines = io.read_text().splitlines()
    assert len(lines) == np_, (lines, out)
    return sum(int(line.split()[1]) for line in lines)


@pytest.mark.parametrize("cfg,np_", [("pair.yaml", 1), ("pair.yaml", 2), ("models.yaml", 2), ("grams.yaml", 2)])
def test_each_byte_is_read_once_per_epoch(work, cfg, np_):
    one, two = bytes_read(work, cfg, np_, 1), bytes_read(work, cfg, np_, 2)
    data = 2 * N * sum(WIDTHS) * 4
    assert abs(two - one - data) < 65536, (one, two, data)  # an epoch reads every byte
    beyond = 2 * one - two
    assert beyond < BATCH_BYTES // 2, f"{beyond} bytes beyond the epochs (a batch of one model is {BATCH_BYTES})"


@pytest.mark.parametrize("cfg", ["exact.yaml", "measures.yaml", "every.yaml"])
def test_the_exact_estimator_reads_as_much_as_one_epoch(work, cfg):
    """It runs one epoch only (with every measure besides CKA too, of both
    families): its bytes are those of the minibatch run's epoch."""
    exact, minibatch = bytes_read(work, cfg, 1, 1), bytes_read(work, "pair.yaml", 1, 1)
    assert abs(exact - minibatch) < 65536, (exact, minibatch)
