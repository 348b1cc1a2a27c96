"""Many models in one pass (a `models:` list): every block of the result
against the two-model run of its pair, against a naive float64 oracle, the
same bits on 1 and 3 ranks and across a stop and resume, and the models
datasets of cka.h5. Four models of different layer counts; one sharded; all
with sample IDs."""
import os
import subprocess

import h5py
import numpy as np
import pytest

from mkt import MPICKA, minibatch_cka, run, stopped_run

N = 150  # batches of 32 and a tail of 22
MODELS = {"a": [5, 3, 4], "b": [6, 2], "c": [3, 3, 2, 7], "d": [4, 5, 2, 2, 3]}  # layer widths
MATRICES = ("cka", "cka_stderr", "cka_pvalue", "hsic_xy", "hsic_xx", "hsic_yy")
COMMON = "batch_size: 32\nplot: false\njackknife: 5\npermutations: 4\nshuffle: true\nepochs: 2\nseed: 7\n"


def layers_of(name, z, r):
    """Layers sharing the latent z (CKA far from 0 and 1 across models too)."""
    return [z @ r.standard_normal((z.shape[1], p)) + 0.7 * r.standard_normal((N, p)) for p in MODELS[name]]


def model_entry(name):
    files = "[b-0-of-2.h5, b-1-of-2.h5]" if name == "b" else f"{name}.h5"
    return f"  - {{file: {files}, name: {name}, layers: [\"l*\"]}}\n"


def model_keys(axis, name):
    files = "[b-0-of-2.h5, b-1-of-2.h5]" if name == "b" else f"{name}.h5"
    return f"{axis}: {{file: {files}, name: {name}, layers: [\"l*\"]}}\n"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    work = tmp_path_factory.mktemp("zoo")
    r = np.random.default_rng(3)
    z = r.standard_normal((N, 3))
    ids = np.arange(1000, 1000 + N, dtype=np.int64)
    data = {}
    for name in MODELS:
        data[name] = layers_of(name, z, r)
        parts = [(f"{name}.h5", slice(0, N))] if name != "b" else [("b-0-of-2.h5", slice(0, 80)),
                                                                    ("b-1-of-2.h5", slice(80, N))]
        for file, rows in parts:
            with h5py.File(work / file, "w") as f:
                for k, a in enumerate(data[name]):
                    f.create_dataset(f"l{k}", data=a[rows])
                f.create_dataset("ids", data=ids[rows])
    (work / "all.yaml").write_text("models:\n" + "".join(model_entry(m) for m in MODELS) + COMMON +
                                   "output: one\n")
    got, out = run(["run", "all.yaml", "--quiet"], work, 1)
    assert got == 0, out
    return work, data


def read(path):
    with h5py.File(path, "r") as f:
        out = {k: f[k][()] for k in f if k != "meta"}
        out.update(dict(f.attrs))
        return out


def test_every_block_is_the_run_of_its_pair(zoo):
    work, _ = zoo
    one = read(work / "one" / "cka.h5")
    off = dict(zip(MODELS, one["model_offsets"]))
    assert list(one["model_offsets"]) == [0, 3, 5, 9, 14]
    names = list(MODELS)
    for i, a in enumerate(names):
        for b in names[i:]:
            cfg = model_keys("x", a) + (model_keys("y", b) if b != a else "") + COMMON + f"output: {a}-{b}\n"
            (work / f"{a}-{b}.yaml").write_text(cfg)
            got, out = run(["run", f"{a}-{b}.yaml", "--quiet"], work, 1)
            assert got == 0, out
            pair = read(work / f"{a}-{b}" / "cka.h5")
            rows = slice(off[a], off[a] + len(MODELS[a]))
            cols = slice(off[b], off[b] + len(MODELS[b]))
            for name in ("cka", "cka_stderr", "cka_pvalue", "hsic_xy"):
                block = one[name][rows, cols]
                assert block.shape == pair[name].shape
                np.testing.assert_allclose(block, pair[name], rtol=1e-12, atol=1e-12, err_msg=f"{name} {a},{b}")
                # the transposed block is the same comparison the other way round
                np.testing.assert_allclose(one[name][cols, rows].T, pair[name], rtol=1e-12, atol=1e-12,
                                           err_msg=f"{name} {b},{a}")
            np.testing.assert_allclose(one["hsic_xx"][rows], pair["hsic_xx"], rtol=1e-12)
            assert np.abs(pair["cka"]).max() > 0.2  # a comparison of something, not of noise


def test_one_and_three_ranks_give_the_same_bits(zoo):
    work, _ = zoo
    got, out = run(["run", "all.yaml", "--quiet", "--set", "output=three"], work, 3)
    assert got == 0, out
    one, three = read(work / "one" / "cka.h5"), read(work / "three" / "cka.h5")
    for name in MATRICES + ("cka_matched", "cka_matched_stderr", "cka_matched_pvalue"):
        assert one[name].tobytes() == three[name].tobytes(), name


def test_the_models_datasets(zoo):
    work, _ = zoo
    one = read(work / "one" / "cka.h5")
    L = sum(len(w) for w in MODELS.values())
    assert one["cka"].shape == (L, L) and one["models"] == 4 and one["self"] == 1
    assert [s.decode() for s in one["model_names"]] == list(MODELS)
    assert one["model_files"][1].decode() == "b-0-of-2.h5, b-1-of-2.h5"
    assert one["x_name"] == "a, b, c, d"
    assert [s.decode() for s in one["matched_layers"]] == ["l0", "l1"]  # b has two layers only
    off = one["model_offsets"]
    for name in ("cka", "cka_stderr", "cka_pvalue"):
        cube = one[name.replace("cka", "cka_matched")]
        assert cube.shape == (2, 4, 4)
        for k in range(2):
            assert (cube[k] == one[name][np.ix_(off[:4] + k, off[:4] + k)]).all(), name
    text = (work / "one" / "cka.csv").read_text().splitlines()
    assert text[0] == "model_a,layer_a,model_b,layer_b,cka,stderr,pvalue" and len(text) == 1 + L * L
    a, la, b, lb, v, se, p = text[1 + 3 * L + 5].split(",")  # row 3 (b:l0) against column 5 (c:l0)
    assert (a, la, b, lb) == ("b", "l0", "c", "l0")
    assert (float(v), float(se), float(p)) == (one["cka"][3, 5], one["cka_stderr"][3, 5], one["cka_pvalue"][3, 5])
    shown = subprocess.run([MPICKA, "show", str(work / "one" / "cka.h5"), "--format", "csv"],
                           stdout=subprocess.PIPE, check=True).stdout
    assert shown == (work / "one" / "cka.csv").read_bytes()


def test_against_a_naive_oracle(zoo):
    """In file order, one epoch: minibatch CKA over all layers, from the formula."""
    work, data = zoo
    cfg = "models:\n" + "".join(model_entry(m) for m in MODELS) + "batch_size: 32\nplot: false\noutput: plain\n"
    (work / "plain.yaml").write_text(cfg)
    got, out = run(["run", "plain.yaml", "--quiet"], work, 2)
    assert got == 0, out
    flat = [a for name in MODELS for a in data[name]]
    np.testing.assert_allclose(read(work / "plain" / "cka.h5")["cka"], minibatch_cka(flat, 32), rtol=1e-11, atol=1e-12)


def test_exact_estimator_over_the_models(zoo):
    """The exact estimator's whole-data CKA: the blocks of the one pass against the pairwise runs."""
    work, _ = zoo
    extra = "estimator: exact\nbatch_size: 32\nplot: false\n"
    (work / "exact.yaml").write_text("models:\n" + "".join(model_entry(m) for m in ("a", "c")) + extra +
                                     "output: exact\n")
    (work / "exact-ac.yaml").write_text(model_keys("x", "a") + model_keys("y", "c") + extra + "output: exact-ac\n")
    for name in ("exact", "exact-ac"):
        got, out = run(["run", f"{name}.yaml", "--quiet"], work, 2)
        assert got == 0, out
    one, pair = read(work / "exact" / "cka.h5"), read(work / "exact-ac" / "cka.h5")
    np.testing.assert_allclose(one["cka"][:3, 3:], pair["cka"], rtol=1e-11, atol=1e-13)


def test_a_stop_on_3_ranks_resumed_on_1(zoo):
    work, _ = zoo
    got, out = stopped_run(["run", "all.yaml", "--quiet", "--set", "output=stopped", "--set", "checkpoint.every=1"],
                           work, 3, work / "stopped" / "checkpoint.h5", poll=0.002)
    assert got == 75, out
    got, out = run(["run", "all.yaml", "--set", "output=stopped", "--set", "checkpoint.every=1"], work, 1)
    assert got == 0 and "resuming from" in out, out
    one, resumed = read(work / "one" / "cka.h5"), read(work / "stopped" / "cka.h5")
    for name in MATRICES + ("cka_matched",):
        assert one[name].tobytes() == resumed[name].tobytes(), name


def test_models_that_disagree(zoo, tmp_path):
    work, _ = zoo
    for f in ("a.h5", "c.h5"):
        os.link(work / f, tmp_path / f)
    with h5py.File(tmp_path / "short.h5", "w") as f:
        f.create_dataset("l0", data=np.ones((N - 1, 2)))
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("l0", data=np.random.default_rng(0).standard_normal((N, 2)))
        ids = np.arange(1000, 1000 + N)
        ids[40] = 7
        f.create_dataset("ids", data=ids)
    head = "models:\n" + model_entry("a") + model_entry("c")
    cases = {"short": ("differ in examples", "models 'a' and 'short'", "short.h5"),
             "other": ("models 'a' and 'other' hold different samples", "example 40 is '1040' in a.h5 but '7'",
                       "other.h5")}
    for name, needles in cases.items():
        (tmp_path / f"{name}.yaml").write_text(head + f"  - {{file: {name}.h5, layers: [l0]}}\n"
                                               f"batch_size: 32\nplot: false\noutput: {name}\n")
        got, out = run(["run", f"{name}.yaml", "--quiet"], tmp_path, 2)
        assert got != 0 and all(s in out for s in needles), out
        assert not (tmp_path / name).exists(), out  # no half-written output
