"""The measures beyond CKA (`measures:`, estimator exact) of real mpicka runs
on real HDF5 files, against naive float64 numpy written here from each
paper's formula on the activations themselves (not on covariances): CCA as
Kornblith et al. 2019 write it (orthonormal bases, SVD of Qx^T Qy), SVCCA as
Raghu et al. 2017 (SVD of each layer, then CCA), PWCCA as Morcos et al. 2018,
the Procrustes distance as Ding et al. 2021, the shape metric as netrep's
partial whitening, and regression R^2 from a least-squares fit with
intercept. The data have offsets, correlated features, a constant and a
duplicated feature, a layer wider than n, a constant layer, and layers of
1e-80 and 1e100 that mpicka scales by a power of two."""

import re
import subprocess

import h5py
import numpy as np
import pytest

import mkt
from mkt import write_yaml
from mpicka.result import ResultError, load, measure_params, measures

EPS = 1e-10          # the rank cut of docs/maths.md, on squared singular values
CONSTANT = 1e-13     # and a layer with s_max^2 below this times its sum of squares is constant
N, BATCH = 160, 32
ALPHA, KEEP = 0.5, 0.9


def layers(seed=5):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((N, 8))
    a = 1000.0 + base @ rng.standard_normal((8, 12)) + 0.3 * rng.standard_normal((N, 12))   # offset, correlated
    b = np.tanh(base @ rng.standard_normal((8, 9))) + 0.1 * rng.standard_normal((N, 9))
    b[:, 3] = 2.5                       # a constant feature
    b[:, 7] = b[:, 1]                   # a duplicated one
    b[:, 8] = -3.0 * b[:, 2] + 7.0      # and an affine copy
    wide = base @ rng.standard_normal((8, 180)) + rng.standard_normal((N, 180)) - 20.0  # p > n
    c = (base[:, :5] ** 2) @ rng.standard_normal((5, 10)) + 0.5 * rng.standard_normal((N, 10)) + 50.0
    d = base @ rng.standard_normal((8, 6)) + 0.2 * rng.standard_normal((N, 6))
    dead = np.full((N, 4), 0.1)         # a constant layer (0.1: its means are off by rounding)
    tiny = a * 1e-80                    # values mpicka scales by a power of two to keep the sums
    huge = 1e100 * (d + 3.0)            # in range: only the partial whitening (shape) sees the scale
    return {"a": a, "b": b, "wide": wide, "tiny": tiny}, {"c": c, "d": d, "dead": dead, "huge": huge}


# ---- the oracle, from the activations ----

def centred(x):
    return x - x.mean(axis=0)


def basis(x):
    """Orthonormal basis of the centred columns, directions with s^2 <= EPS s_max^2 dropped."""
    u, s, _ = np.linalg.svd(centred(x), full_matrices=False)
    r = int(np.sum(s ** 2 > EPS * s[0] ** 2)) if s[0] ** 2 > CONSTANT * np.sum(x ** 2) else 0
    return u[:, :r], s[:r]


def canonical(qx, qy):
    u, rho, vt = np.linalg.svd(qx.T @ qy)
    return u, rho, vt.T


def cca(x, y):
    _, rho, _ = canonical(basis(x)[0], basis(y)[0])
    return rho.mean(), (rho ** 2).mean()


def svcca(x, y):
    def reduced(a):
        u, s = basis(a)
        k = int(np.searchsorted(np.cumsum(s ** 2), KEEP * np.sum(s ** 2))) + 1   # fewest with >= KEEP
        return u[:, :k] * s[:k]                                                 # the top-k PC scores
    _, rho, _ = canonical(basis(reduced(x))[0], basis(reduced(y))[0])
    return rho.mean()


def pwcca(x, y):
    qx, qy = basis(x)[0], basis(y)[0]
    u, rho, v = canonical(qx, qy)
    k = len(rho)
    q, w, z = (qx, u, x) if qx.shape[1] <= qy.shape[1] else (qy, v, y)
    h = q @ w[:, :k]                                 # canonical variates, unit norm
    alpha = np.abs(h.T @ centred(z)).sum(axis=1)     # sum_j |<h_i, z_j>|
    return np.sum(alpha * rho) / np.sum(alpha)


def procrustes(x, y):
    xn, yn = centred(x), centred(y)
    xn, yn = xn / np.linalg.norm(xn), yn / np.linalg.norm(yn)
    return np.sum(xn ** 2) + np.sum(yn ** 2) - 2 * np.linalg.norm(xn.T @ yn, "nuc")


def whiten(x, alpha):
    """netrep's partial whitening: X (alpha I + (1 - alpha) (X^T X)^(-1/2)), the inverse over the kept rank."""
    xc = centred(x)
    lam, v = np.linalg.eigh(xc.T @ xc)
    keep = lam > EPS * lam.max()
    d = alpha + (1 - alpha) * np.where(keep, 1 / np.sqrt(np.where(keep, lam, 1)), 0)
    return xc @ (v * d) @ v.T


def shape(x, y):
    xw, yw = whiten(x, ALPHA), whiten(y, ALPHA)
    c = np.linalg.norm(xw.T @ yw, "nuc") / (np.linalg.norm(xw) * np.linalg.norm(yw))
    return np.arccos(min(c, 1.0))


def r2(x, y):
    """R^2 of y fitted from x by least squares with an intercept: the intercept takes the means, so
    the fit is centred y on centred x (a column of ones beside x would set rcond against the ones,
    hiding a layer of 1e-80 or the small directions of an offset layer)."""
    xc, yc = centred(x), centred(y)
    beta = np.linalg.lstsq(xc, yc, rcond=np.sqrt(EPS))[0]
    return 1 - np.sum((yc - xc @ beta) ** 2) / np.sum(yc ** 2)


def oracle(xs, ys):
    out = {k: np.full((len(xs), len(ys)), np.nan) for k in
           ("cca_mean", "cca_r2", "svcca", "pwcca", "procrustes", "shape", "regression_y_from_x",
            "regression_x_from_y")}
    for i, x in enumerate(xs.values()):
        for j, y in enumerate(ys.values()):
            if not basis(x)[1].size or not basis(y)[1].size:
                continue                              # a constant layer: NaN
            out["cca_mean"][i, j], out["cca_r2"][i, j] = cca(x, y)
            out["svcca"][i, j] = svcca(x, y)
            out["pwcca"][i, j] = pwcca(x, y)
            out["procrustes"][i, j] = procrustes(x, y)
            out["shape"][i, j] = shape(x, y)
            out["regression_y_from_x"][i, j] = r2(x, y)
            out["regression_x_from_y"][i, j] = r2(y, x)
    return out


# ---- the runs ----

MEASURES = ["cka", "cca", {"svcca": {"keep": KEEP}}, "pwcca", "procrustes", {"shape": {"alpha": ALPHA}},
            "regression"]


def write_inputs(d):
    xs, ys = layers()
    for name, ls in (("x", xs), ("y", ys)):
        mkt.write_layers(d / f"{name}.h5", list(ls.values()), list(ls))
    return xs, ys


def config(d, out, **extra):
    cfg = {"x": {"file": str(d / "x.h5"), "layers": ["a", "b", "wide", "tiny"]},
           "y": {"file": str(d / "y.h5"), "layers": ["c", "d", "dead", "huge"]},
           "batch_size": BATCH, "estimator": "exact", "measures": MEASURES, "plot": False,
           "output": str(d / out)}
    cfg.update(extra)
    return write_yaml(d / f"{out}.yaml", {k: v for k, v in cfg.items() if v is not None})  # y=None: x vs itself


@pytest.fixture(scope="module")
def runs(mpicka, tmp_path_factory):
    d = tmp_path_factory.mktemp("measures")
    xs, ys = write_inputs(d)
    outs = {}
    for ranks in (1, 2, 3):  # and on 3 ranks, rank 0's 2 threads share out the pairs
        p = mpicka.run(["run", config(d, f"r{ranks}"), "--quiet", "--set", f"threads={1 + (ranks == 3)}"], ranks=ranks)
        assert p.returncode == 0, p.stdout + p.stderr
        outs[ranks] = (d / f"r{ranks}", p.stderr)
    return xs, ys, outs


def test_every_measure_matches_the_formulas(runs):
    xs, ys, outs = runs
    got, want = measures(outs[1][0] / "cka.h5"), oracle(xs, ys)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].shape == (4, 4), name
        np.testing.assert_array_equal(np.isnan(got[name]), np.isnan(want[name]), err_msg=name)
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-10, err_msg=name)
    # p > n: the wide layer spans every centred direction, so every canonical correlation is 1
    np.testing.assert_allclose(got["cca_mean"][2, :2], 1.0, atol=1e-10)
    np.testing.assert_allclose(got["regression_y_from_x"][2, :2], 1.0, atol=1e-10)
    assert not np.isnan(want["pwcca"][:, [0, 1, 3]]).any() and np.isnan(want["pwcca"][:, 2]).all()
    # the scaled layers: invariant measures as at their own scale, shape as at theirs
    np.testing.assert_allclose(got["cca_mean"][3], got["cca_mean"][0], rtol=0, atol=1e-12)
    assert abs(got["shape"][3, 0] - got["shape"][0, 0]) > 0.01


def test_a_self_comparison_matches_and_is_symmetric_to_the_bit(runs, mpicka):
    xs, _, outs = runs
    d = outs[1][0].parent
    cfg = config(d, "self", y=None)
    p = mpicka.run(["run", cfg, "--quiet", "--set", "threads=2"], ranks=2)
    assert p.returncode == 0, p.stdout + p.stderr
    got, want = measures(d / "self" / "cka.h5"), oracle(xs, xs)
    for name in want:  # arccos near 1 turns rounding into its square root: the shape's diagonal to 1e-7
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-7 if name == "shape" else 1e-10,
                                   err_msg=name)
    off = ~np.eye(len(xs), dtype=bool)
    np.testing.assert_allclose(got["shape"][off], want["shape"][off], rtol=0, atol=1e-10)
    for name in ("cca_mean", "cca_r2", "svcca", "procrustes", "shape"):
        assert got[name].tobytes() == got[name].T.copy().tobytes(), name
    np.testing.assert_allclose(np.diag(got["cca_mean"]), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.diag(got["procrustes"]), 0.0, atol=1e-12)


def test_bits_do_not_depend_on_the_ranks_or_threads(runs):
    _, _, outs = runs
    one = measures(outs[1][0] / "cka.h5")
    for ranks in (2, 3):
        other = measures(outs[ranks][0] / "cka.h5")
        for name in one:
            assert one[name].tobytes() == other[name].tobytes(), (name, ranks)


def pair_counts(log):
    """The pairs each rank computed, from the run's line "measures: N pairs
    (a on rank 0, b on rank 1, ...)"."""
    line = re.search(r"measures: (\d+) pairs \(([^)]*)\)", log)
    assert line, log
    per = [int(m.group(1)) for m in re.finditer(r"(\d+) on rank (\d+)", line.group(2))]
    return int(line.group(1)), per


@pytest.mark.parametrize("asked, pairs", [(MEASURES, 16), (["cca", "procrustes"], 10)])
def test_the_pairs_are_spread_over_the_ranks_each_once(runs, mpicka, asked, pairs):
    """x against itself (4 layers) on 3 ranks: each rank computes its share
    of the pairs (a mirrored pair only when some measure is not symmetric),
    every pair once, with the bits of 1 rank."""
    d = runs[2][1][0].parent
    got = {}
    for ranks in (1, 3):
        out = f"spread{len(asked)}r{ranks}"
        p = mpicka.run(["run", config(d, out, y=None, measures=asked)], ranks=ranks)
        assert p.returncode == 0, p.stdout + p.stderr
        total, per = pair_counts(p.stdout + p.stderr)
        assert total == pairs and sum(per) == pairs and len(per) == ranks, p.stdout + p.stderr
        assert min(per) >= pairs // ranks - 1, p.stdout + p.stderr
        got[ranks] = measures(d / out / "cka.h5")
    assert list(got[1]) == list(got[3])
    for name in got[1]:
        assert got[1][name].tobytes() == got[3][name].tobytes(), name


def test_check_counts_the_second_moments_every_rank_holds(runs):
    """`check`'s estimate of the measures: each rank's copy of the second
    moments (S and s: P(P+1)/2 + P doubles), the eigenvectors, the matrices
    and 8 widest blocks per thread."""
    xs, _, outs = runs
    d = outs[1][0].parent
    p = subprocess.run([mkt.MPICKA, "check", config(d, "estimate", y=None, threads=1)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    got = re.search(r"of which the measures beyond CKA \(after the pass, every rank\): ([0-9.]+) MiB", p.stdout)
    assert got, p.stdout
    widths = [x.shape[1] for x in xs.values()]
    P, outputs = sum(widths), 8  # cca 2, svcca, pwcca, procrustes, shape, regression 2
    doubles = P * (P + 1) / 2 + P + sum(w * w for w in widths) + len(xs) ** 2 * outputs + 8 * max(widths) ** 2
    assert abs(float(got.group(1)) - 8 * doubles / 2**20) <= 0.05, p.stdout


def test_a_stop_on_3_ranks_resumed_on_2_gives_the_same_bits(runs):
    _, _, outs = runs
    d = outs[1][0].parent
    cfg = config(d, "stopped", batch_size=8, checkpoint={"every": 1})
    got, log = mkt.stopped_run(["run", cfg, "--quiet"], d, 3, d / "stopped" / "checkpoint.h5")
    assert got == 75, log
    got, log = mkt.run(["run", cfg, "--quiet"], d, 2)
    assert got == 0 and "resuming from" in log, log
    p = mkt.run(["run", config(d, "straight", batch_size=8), "--quiet"], d, 1)
    assert p[0] == 0, p[1]
    one, other = measures(d / "straight" / "cka.h5"), measures(d / "stopped" / "cka.h5")
    assert list(one) == list(other)
    for name in one:
        assert one[name].tobytes() == other[name].tobytes(), name


def test_parameters_are_stored_and_ranks_warned(runs):
    _, _, outs = runs
    folder, log = outs[1]
    with h5py.File(folder / "cka.h5", "r") as f:
        assert f["measures/svcca"].attrs["keep"] == KEEP and f["measures/shape"].attrs["alpha"] == ALPHA
        assert f["measures"].attrs["eps"] == EPS
        assert f["measures/cca_mean"].attrs["measure"] == "cca"
    assert measure_params(folder / "cka.h5", "svcca")["keep"] == KEEP
    assert measure_params(folder / "cka.h5", "shape")["alpha"] == ALPHA
    assert measure_params(folder / "cka.h5", "regression_x_from_y")["measure"] == "regression"
    with pytest.raises(ResultError, match="no /measures/rsa"):
        measure_params(folder / "cka.h5", "rsa")
    assert "layer 'b' has rank 6 of its 9 features" in log, log
    assert "layer 'wide' has rank 159 of its 180 features" in log, log
    assert "some canonical correlations are 1" in log, log
    lines = (folder / "measures.csv").read_text().splitlines()
    assert lines[0] == "measure,model_a,layer_a,model_b,layer_b,value"
    assert len(lines) == 1 + 8 * 16 and lines[1].startswith("cca_mean,x,a,y,c,")
    assert load(folder / "cka.h5").cka.shape == (4, 4)


def test_cka_csv_unchanged_without_measures(mpicka, tmp_path):
    write_inputs(tmp_path)
    cfg = config(tmp_path, "plain", measures=["cka"])
    p = mpicka.run(["run", cfg, "--quiet"], ranks=1)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not (tmp_path / "plain" / "measures.csv").exists()
    assert measures(tmp_path / "plain" / "cka.h5") == {}


@pytest.mark.parametrize("extra, words", [
    ({"estimator": "hsic1"}, ["'measures' lists cca", "needs 'estimator: exact'"]),
    ({"measures": ["cca", "pwca"]}, ["unknown measure 'pwca'", "did you mean 'pwcca'"]),
    ({"measures": [{"shape": {"alpha": 2}}]}, ["shape's alpha", "from 0 to 1"]),
    ({"measures": [{"svcca": {"keep": 0.9, "k": 3}}]}, ["keep or k, not both"]),
    ({"measures": ["cca", "cca"]}, ["names cca twice"]),
])
def test_bad_measures_are_refused_naming_the_key(mpicka, tmp_path, extra, words):
    write_inputs(tmp_path)
    p = mpicka.run(["run", config(tmp_path, "bad", **extra)], ranks=1)
    assert p.returncode == 2, p.stdout + p.stderr
    for w in words:
        assert w in p.stderr, p.stderr
    assert not (tmp_path / "bad" / "cka.h5").exists()


def test_show_prints_a_measure(runs):
    xs, ys, outs = runs
    path = str(outs[1][0] / "cka.h5")
    p = subprocess.run([mkt.MPICKA, "show", path, "--measure", "procrustes", "--format", "csv"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = [line.split(",") for line in p.stdout.splitlines()]
    assert rows[0] == ["layer", "c", "d", "dead", "huge"] and [r[0] for r in rows[1:]] == ["a", "b", "wide", "tiny"]
    np.testing.assert_array_equal(np.array([r[1:] for r in rows[1:]], dtype=float), measures(path)["procrustes"])
    p = subprocess.run([mkt.MPICKA, "show", path, "--measure", "shape"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("Measure shape of x (rows, 4 layers) vs y"), p.stdout
    p = subprocess.run([mkt.MPICKA, "show", path, "--measure", "cca"], capture_output=True, text=True)
    assert p.returncode == 3 and "no measure 'cca' (it has: cca_mean, cca_r2," in p.stderr, p.stderr


def fake_result(path, measure_shape):
    with h5py.File(path, "w") as f:
        f["cka"] = np.zeros((2, 3))
        f["x_layers"] = np.array(["a", "b"], dtype=h5py.string_dtype())
        f["y_layers"] = np.array(["c", "d", "e"], dtype=h5py.string_dtype())
        if measure_shape:
            f["measures/cca_mean"] = np.zeros(measure_shape)


def test_measures_of_a_file_are_checked(tmp_path):
    fake_result(tmp_path / "none.h5", None)
    assert measures(tmp_path / "none.h5") == {}
    fake_result(tmp_path / "ok.h5", (2, 3))
    assert measures(tmp_path / "ok.h5")["cca_mean"].shape == (2, 3)
    fake_result(tmp_path / "bad.h5", (3, 2))
    with pytest.raises(ResultError, match=r"bad\.h5: /measures/cca_mean is \(3, 2\) but /x_layers and /y_layers"):
        measures(tmp_path / "bad.h5")
