"""How a layer is stored must not change a bit of the result: contiguous,
chunked, gzip-compressed (with and without the shuffle filter) and chunks that
do not align with the batches, shuffled or not, over two epochs with a tail
batch, on 1 and 3 ranks. The values read are the same, so every stored matrix
must be bitwise the one of the contiguous file on 1 rank. And a filter that
HDF5 cannot decode (h5py's lzf) is refused up front, naming it."""
import h5py
import numpy as np
import pytest

from mkt import config, matrices, related, run, write_config

MATRICES = ("cka", "hsic_xx", "cka_stderr")

# name: create_dataset keywords. Batches are 16 examples; chunks of 24 or 7
# rows straddle them, chunks of 5 features split the rows.
STORAGE = {
    "gzip": dict(compression="gzip", chunks=True),
    "gzip-shuffle-unaligned": dict(compression="gzip", compression_opts=1, shuffle=True, chunks=(24, 5)),
    "chunked-unaligned": dict(chunks=(7, 13)),
    "userblock": dict(userblock_size=512),  # contiguous, read with pread: the offset counts the user block
}


def write(path, layers, userblock_size=0, **kw):
    with h5py.File(path, "w", userblock_size=userblock_size) as f:
        for k, a in enumerate(layers):
            chunks = kw.get("chunks")
            if isinstance(chunks, tuple):  # h5py wants chunks within the shape
                chunks = tuple(min(c, s) for c, s in zip(chunks, a.shape))
            f.create_dataset(f"l{k}", data=np.asarray(a, dtype="f4"), **dict(kw, chunks=chunks))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("storage")
    layers = related(107, [30, 9, 17], seed=5)  # 107 = 6 batches of 16 and a tail of 11
    write(d / "plain.h5", layers)
    for name, kw in STORAGE.items():
        write(d / f"{name}.h5", layers, **kw)
    with h5py.File(d / "gzip.h5", "r") as f:  # the layout the test means to cover
        assert f["l0"].chunks and f["l0"].compression == "gzip"
    return d


def result(d, name, shuffle, np_):
    out = f"out-{name}-{shuffle}-{np_}"
    extra = f"batch_size: 16\nepochs: 2\nshuffle: {str(bool(shuffle)).lower()}\nseed: 4\njackknife: 3\n"
    extra += "shuffle_block: 8\n" if shuffle == "blocks" else ""
    write_config(d / f"{out}.yaml", config(f"{name}.h5", output=out, extra=extra))
    got, log = run(["run", f"{out}.yaml", "--quiet"], d, np_)
    assert got == 0, log
    return matrices(d / out / "cka.h5", MATRICES)


@pytest.mark.parametrize("shuffle", [False, True, "blocks"])
def test_storage_does_not_change_a_bit(files, shuffle):
    want = result(files, "plain", shuffle, 1)
    for name in STORAGE:
        for np_ in (1, 3):
            got = result(files, name, shuffle, np_)
            for k in MATRICES:
                assert got[k] == want[k], f"{name} on {np_} ranks, shuffle {shuffle}: /{k} differs"


def test_lzf_is_refused_naming_file_dataset_and_filter(tmp_path):
    a = np.zeros((40, 8), dtype="f4")  # compressible: lzf really filters the chunks
    a[::3] = 1.5
    write(tmp_path / "z.h5", [a, a + 1], compression="lzf")
    write_config(tmp_path / "c.yaml", config("z.h5"))
    got, out = run(["run", "c.yaml", "--quiet"], tmp_path, 2)
    assert got == 3, out
    assert "z.h5: dataset 'l0' is stored with HDF5 filter 32000 ('lzf'), h5py's lzf compression, which this HDF5 " \
           "library cannot decode" in out, out
    assert not (tmp_path / "out").exists()
