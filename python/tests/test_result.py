"""mpicka.result.load on a cka.h5 written by a real `mpicka run` under mpirun."""

import csv
import importlib.util

import h5py
import numpy as np
import pytest

from mkt import write_yaml as write_config
from mpicka.result import load
from reference import minibatch_cka

HAVE_PANDAS = importlib.util.find_spec("pandas") is not None


@pytest.fixture(scope="module")
def run(mpicka, tmp_path_factory):
    """x: 3 layers, y: 2 layers, 200 examples, related by construction."""
    d = tmp_path_factory.mktemp("result")
    rng = np.random.default_rng(7)
    base = rng.standard_normal((200, 6))
    xs = [base @ rng.standard_normal((6, p)) + 0.5 * rng.standard_normal((200, p)) for p in (5, 8, 3)]
    ys = [np.tanh(base @ rng.standard_normal((6, p))) for p in (4, 7)]
    for name, layers in (("x", xs), ("y", ys)):
        with h5py.File(d / f"{name}.h5", "w") as f:
            for i, a in enumerate(layers):
                f[f"l{i}"] = a
    cfg = write_config(d / "run.yaml", {
        "x": {"file": str(d / "x.h5"), "name": "mx", "layers": ["l0", "l1", "l2"]},
        "y": {"file": str(d / "y.h5"), "name": "my", "layers": ["l0", "l1"]},
        "batch_size": 50, "jackknife": 4, "permutations": 19, "plot": False,
        "output": str(d / "out")})
    p = mpicka.run(["run", cfg, "--quiet"])
    assert p.returncode == 0, p.stderr
    return d / "out" / "cka.h5", minibatch_cka(xs, ys, 50)


def test_load_reads_every_part(run):
    path, ref = run
    r = load(path)
    assert r.x_layers == ["l0", "l1", "l2"] and r.y_layers == ["l0", "l1"]
    assert r.cka.dtype == np.float64 and r.cka.shape == (3, 2)
    np.testing.assert_allclose(r.cka, ref, rtol=0, atol=1e-9)
    assert r.hsic_xy.shape == (3, 2) and r.hsic_xx.shape == (3,) and r.hsic_yy.shape == (2,)
    np.testing.assert_allclose(r.hsic_xy / np.sqrt(np.outer(r.hsic_xx, r.hsic_yy)), r.cka, atol=1e-12)
    assert r.stderr.shape == (3, 2) and np.all(r.stderr > 0)
    assert r.pvalue.shape == (3, 2) and np.all((r.pvalue >= 1 / 20) & (r.pvalue <= 1))
    assert r.meta["estimator"] == "hsic1" and r.meta["jackknife_groups"] == 4
    assert r.meta["permutations"] == 19 and isinstance(r.meta["description"], str)
    assert r.provenance["n"] == 200 and r.provenance["batch_size"] == 50 and r.provenance["ranks"] == 2
    assert (r.x_name, r.y_name) == ("mx", "my")
    assert "batch_size: 50" in r.config


@pytest.mark.skipif(HAVE_PANDAS, reason="pandas is installed: the DataFrame test runs instead")
def test_to_pandas_without_pandas_says_what_to_do(run):
    with pytest.raises(ImportError, match=r"needs pandas.*python3-pandas.*numpy arrays in \.cka"):
        load(run[0]).to_pandas()


@pytest.mark.skipif(not HAVE_PANDAS, reason="pandas is not installed (the ImportError test runs instead)")
def test_to_pandas(run):
    r = load(run[0])
    long = r.to_pandas()
    assert list(long.columns) == ["x_layer", "y_layer", "cka", "stderr", "pvalue"] and len(long) == 6
    assert long.loc[1, "x_layer"] == "l0" and long.loc[1, "y_layer"] == "l1"
    assert long.loc[1, "cka"] == r.cka[0, 1]
    wide = r.to_pandas("wide")
    assert wide.loc["l2", "l1"] == r.cka[2, 1]


def test_load_names_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5: no such file"):
        load(tmp_path / "nope.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="text.h5: not an HDF5 file"):
        load(tmp_path / "text.h5")
    with h5py.File(tmp_path / "acts.h5", "w") as f:
        f["cka"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match="acts.h5: not an mpicka result: no /x_layers"):
        load(tmp_path / "acts.h5")
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["cka"] = np.zeros((2, 2))
        f["x_layers"] = ["a", "b"]
        f["y_layers"] = ["c"]
    with pytest.raises(ValueError, match=r"bad.h5: /cka is \(2, 2\) but /x_layers and /y_layers make it \(2, 1\)"):
        load(tmp_path / "bad.h5")


def test_load_a_models_result(mpicka, tmp_path):
    """Three models in one pass: .models, .block and .matched against the two-model run of a pair."""
    rng = np.random.default_rng(8)
    base = rng.standard_normal((120, 4))
    for name, widths in (("a", (3, 5)), ("b", (4, 2, 6)), ("c", (2, 3))):
        with h5py.File(tmp_path / f"{name}.h5", "w") as f:
            for i, p in enumerate(widths):
                f[f"l{i}"] = base @ rng.standard_normal((4, p)) + 0.5 * rng.standard_normal((120, p))
    common = {"batch_size": 40, "jackknife": 3, "plot": False}
    models = [{"file": str(tmp_path / f"{n}.h5"), "name": n, "layers": ["l*"]} for n in "abc"]
    p = mpicka.run(["run", write_config(tmp_path / "m.yaml", {"models": models, **common,
                                                              "output": str(tmp_path / "m")}), "--quiet"])
    assert p.returncode == 0, p.stderr
    p = mpicka.run(["run", write_config(tmp_path / "bc.yaml", {"x": models[1], "y": models[2], **common,
                                                               "output": str(tmp_path / "bc")}), "--quiet"])
    assert p.returncode == 0, p.stderr
    r, pair = load(tmp_path / "m" / "cka.h5"), load(tmp_path / "bc" / "cka.h5")
    assert r.models == ["a", "b", "c"] and r.model_offsets.tolist() == [0, 2, 5, 7]
    np.testing.assert_allclose(r.block("b", "c"), pair.cka, rtol=1e-12)
    np.testing.assert_allclose(r.block("b", "c", "stderr"), pair.stderr, rtol=1e-12)
    assert r.matched_layers == ["l0", "l1"]
    assert r.matched("l1")[1, 2] == r.cka[3, 6]
    with pytest.raises(KeyError, match="no model 'd'; the models are a, b, c"):
        r.block("a", "d")
    with pytest.raises(KeyError, match="'l2' is not a layer every model has; those are l0, l1"):
        r.matched("l2")
    with pytest.raises(ValueError, match="not a models result"):
        pair.block("b", "c")
    with pytest.raises(ValueError, match="matrix must be 'cka', 'stderr' or 'pvalue', got 'p'"):
        r.block("a", "b", "p")
    check_models_long_form(r, tmp_path / "m" / "cka.csv")


def check_models_long_form(r, csv_path):
    """The long form of a models result is the run's cka.csv: one row per
    cell, the model columns telling apart layers of the same name (l0 is in
    every model), every number the CSV's exactly (the CSV's text reads back
    as the same double)."""
    cols = r.long_form()
    assert list(cols) == ["model_a", "layer_a", "model_b", "layer_b", "cka", "stderr"]
    keys = list(zip(cols["model_a"], cols["layer_a"], cols["model_b"], cols["layer_b"]))
    assert len(keys) == 7 * 7 and len(set(keys)) == len(keys)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(w["model_a"], w["layer_a"], w["model_b"], w["layer_b"]) for w in rows] == keys
    assert [float(w["cka"]) for w in rows] == cols["cka"].tolist()
    assert [float(w["stderr"]) for w in rows] == cols["stderr"].tolist()
    assert all(w["pvalue"] == "" for w in rows)
    k = keys.index(("b", "l1", "c", "l0"))
    assert cols["cka"][k] == r.block("b", "c")[1, 0]
    if HAVE_PANDAS:
        df = r.to_pandas()
        assert list(df.columns) == list(cols) and len(df) == 49
        assert not df.duplicated(["model_a", "layer_a", "model_b", "layer_b"]).any()
        wide = r.to_pandas("wide")
        np.testing.assert_array_equal(wide.loc["b", "c"].to_numpy(), r.block("b", "c"))


def test_long_form_of_a_two_model_result(run):
    r = load(run[0])
    cols = r.long_form()
    assert list(cols) == ["x_layer", "y_layer", "cka", "stderr", "pvalue"]
    assert cols["x_layer"].tolist() == ["l0", "l0", "l1", "l1", "l2", "l2"]
    assert cols["y_layer"].tolist() == ["l0", "l1"] * 3
    assert cols["cka"].tolist() == r.cka.ravel().tolist()
