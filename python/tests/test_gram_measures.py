"""The measures from each minibatch's Grams (`measures:` with a minibatch
estimator): RSA, mutual k-NN, CKNNA and the k-NN Jaccard similarity of real
mpicka runs on real HDF5 files, against naive float64 numpy written here
from the formulas on the activations themselves (rsatoolbox's RDMs,
platonic-rep's neighbours and its unbiased HSIC), batch by batch, then the
plain mean over the batches and the jackknife over the groups. The data have
offsets, correlated features, a constant and a duplicated feature, a layer
wider than the batch, a layer constant in every batch and one constant in a
single batch, and a tail batch smaller than one measure's k."""

import json
import re
import subprocess

import h5py
import numpy as np
import pytest

import mkt
from mkt import write_yaml
from mpicka.result import measure_params, measures, measures_matched

N, BATCH, GROUPS = 150, 32, 3          # 4 batches of 32 and a tail of 22
K_MUTUAL, K_CKNNA, K_JACCARD = 5, 10, 25  # jaccard's 25 neighbours do not fit the tail's 21
MEASURES = ["cka", {"rsa": {"method": "spearman", "distance": "correlation"}}, {"mutual_knn": {"k": K_MUTUAL}},
            "cknna", {"jaccard": {"k": K_JACCARD}}]
NAMES = ["rsa", "mutual_knn", "cknna", "jaccard"]


def layers(seed=3):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((N, 6))
    a = 5.0 + base @ rng.standard_normal((6, 12)) + 0.3 * rng.standard_normal((N, 12))    # offset, correlated
    b = np.tanh(base @ rng.standard_normal((6, 9))) + 0.2 * rng.standard_normal((N, 9))
    b[:, 3] = 2.5                                  # a constant feature
    b[:, 7] = b[:, 1]                              # a duplicated one
    wide = base @ rng.standard_normal((6, 40)) + rng.standard_normal((N, 40)) - 3.0        # p > batch
    part = base[:, :4] ** 2 @ rng.standard_normal((4, 7)) + 0.5 * rng.standard_normal((N, 7))
    part[BATCH:2 * BATCH] = 0.25                   # constant in batch 1 alone
    dead = np.full((N, 4), 0.1)                    # constant in every batch
    c = base[:, :3] @ rng.standard_normal((3, 10)) + rng.standard_normal((N, 10)) + 50.0
    d = np.maximum(base @ rng.standard_normal((6, 8)), 0.0) + 0.1 * rng.standard_normal((N, 8))
    return {"a": a, "b": b, "wide": wide, "part": part, "dead": dead}, {"c": c, "d": d}


# ---- the oracle, from the activations ----

def avg_ranks(v):
    """Ranks from 1, ties given their average (scipy.stats.rankdata's 'average')."""
    values, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2.0)[inverse]


def rdm(x, distance):
    """rsatoolbox: the squared Euclidean distance over the features, or 1 - the Pearson correlation of
    two examples' features; the upper triangle."""
    if distance == "euclidean":
        d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2) / x.shape[1]
    else:
        z = x - x.mean(axis=1, keepdims=True)
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        d = 1.0 - z @ z.T
    return d[np.triu_indices(len(x), 1)]


def rsa(x, y, method, distance):
    dx, dy = rdm(x, distance), rdm(y, distance)
    if method == "spearman":
        dx, dy = avg_ranks(dx), avg_ranks(dy)
    return np.corrcoef(dx, dy)[0, 1]


def cosines(x):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    return xn @ xn.T


def knn(x, k):
    """platonic-rep: the k highest cosines of L2-normalised features, self excluded; ties to the lower index."""
    s = cosines(x)
    np.fill_diagonal(s, -np.inf)
    idx = np.arange(len(x))
    return [np.lexsort((idx, -s[i]))[:k] for i in range(len(x))]


def mutual_knn(x, y, k):
    nx, ny = knn(x, k), knn(y, k)
    return np.mean([len(set(a) & set(b)) / k for a, b in zip(nx, ny)])


def jaccard(x, y, k):
    nx, ny = knn(x, k), knn(y, k)
    return np.mean([len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(nx, ny)])


def hsic_unbiased(K, L):
    """Song et al. 2012, eq. 5, as platonic-rep writes it (K, L need not be symmetric)."""
    m = K.shape[0]
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    value = np.sum(K * L.T) + K.sum() * L.sum() / ((m - 1) * (m - 2)) - 2.0 * np.sum(K @ L) / (m - 2)
    return value / (m * (m - 3))


def cknna(x, y, k):
    """Huh et al. 2024 (platonic-rep's cknna, unbiased): HSIC of the kernels masked to mutual neighbours."""
    def mask(z):
        out = np.zeros((len(z), len(z)))
        for i, row in enumerate(knn(z, k)):
            out[i, row] = 1.0
        return out

    def sim(A, B, M):
        return hsic_unbiased(M * A, M * B)

    K, L, mk, ml = cosines(x), cosines(y), mask(x), mask(y)
    return sim(K, L, mk * ml) / np.sqrt(sim(K, K, mk) * sim(L, L, ml))


def constant(x):
    return bool(np.all(x == x[0]))


def batch_value(name, x, y):
    """One batch's value, NaN when a layer is constant in it or k does not fit."""
    if constant(x) or constant(y):
        return np.nan
    if name == "rsa":
        return rsa(x, y, "spearman", "correlation")
    if name == "mutual_knn":
        return mutual_knn(x, y, K_MUTUAL) if K_MUTUAL <= len(x) - 1 else np.nan
    if name == "cknna":
        return cknna(x, y, K_CKNNA) if K_CKNNA <= len(x) - 1 else np.nan
    return jaccard(x, y, K_JACCARD) if K_JACCARD <= len(x) - 1 else np.nan


def batches():
    return [np.arange(s, min(s + BATCH, N)) for s in range(0, N, BATCH)]


def mean_and_stderr(values):
    """The plain mean of the finite per-batch values, and the jackknife over GROUPS groups of batches
    (batch g in group g * GROUPS // batches, as minibatch CKA's)."""
    v = np.asarray(values)
    ok = np.isfinite(v)
    if not ok.any():
        return np.nan, np.nan
    group = np.arange(len(v)) * GROUPS // len(v)
    theta = [v[ok & (group != g)].mean() if (ok & (group != g)).any() else np.nan for g in range(GROUPS)]
    theta = np.asarray(theta)
    se = np.sqrt((GROUPS - 1) / GROUPS * np.sum((theta - theta.mean()) ** 2))
    return v[ok].mean(), se


def oracle(xs, ys):
    out = {}
    for name in NAMES:
        mean = np.full((len(xs), len(ys)), np.nan)
        se = np.full_like(mean, np.nan)
        for i, x in enumerate(xs.values()):
            for j, y in enumerate(ys.values()):
                mean[i, j], se[i, j] = mean_and_stderr([batch_value(name, x[r], y[r]) for r in batches()])
        out[name], out[name + "_stderr"] = mean, se
    return out


# ---- the runs ----

def write_inputs(d):
    xs, ys = layers()
    for name, ls in (("x", xs), ("y", ys)):
        mkt.write_layers(d / f"{name}.h5", list(ls.values()), list(ls))
    return xs, ys


def config(d, out, **extra):
    cfg = {"x": {"file": str(d / "x.h5"), "layers": list(layers()[0])},
           "y": {"file": str(d / "y.h5"), "layers": list(layers()[1])},
           "batch_size": BATCH, "jackknife": GROUPS, "measures": MEASURES, "plot": False, "output": str(d / out)}
    cfg.update(extra)
    return write_yaml(d / f"{out}.yaml", {k: v for k, v in cfg.items() if v is not None})  # y=None: x vs itself


@pytest.fixture(scope="module")
def runs(mpicka, tmp_path_factory):
    d = tmp_path_factory.mktemp("gram_measures")
    xs, ys = write_inputs(d)
    outs = {}
    for ranks in (1, 2, 3):  # and on 3 ranks with 2 threads each
        p = mpicka.run(["run", config(d, f"r{ranks}"), "--quiet", "--set", f"threads={1 + (ranks == 3)}"], ranks=ranks)
        assert p.returncode == 0, p.stdout + p.stderr
        outs[ranks] = (d / f"r{ranks}", p.stderr)
    return xs, ys, outs


def assert_matches(got, want, tol=1e-10):
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(np.isnan(got[name]), np.isnan(want[name]), err_msg=name)
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=tol, err_msg=name)


def test_every_measure_matches_the_formulas(runs):
    xs, ys, outs = runs
    got, want = measures(outs[1][0] / "cka.h5"), oracle(xs, ys)
    assert_matches(got, want)
    assert np.isnan(got["rsa"][4]).all() and np.isfinite(got["rsa"][3]).all()   # dead: NaN; part: 4 batches
    assert 0.05 < got["mutual_knn"][0, 0] < 0.95 and 0.05 < got["jaccard"][0, 0] < 0.95
    log = outs[1][1]
    assert "too few for jaccard's k = 25" in log, log
    # part (x's layer 3) against y's 2 layers: 4 of 5 batches; dead (layer 4): none; jaccard: every pair 4
    assert "rsa: 2 of its 10 layer pairs are the mean of fewer batches than the run's 5 (as few as 4)" in log, log
    assert "rsa: 2 of its 10 layer pairs have no value in any batch (NaN)" in log, log
    assert "jaccard: 8 of its 10 layer pairs are the mean of fewer batches than the run's 5 (as few as 3)" in log, log


def test_the_tail_and_a_constant_batch_are_left_out(runs):
    """The k-NN Jaccard averages the 4 full batches (the tail of 22 has 21 neighbours); a layer constant
    in batch 1 averages the other batches."""
    xs, ys, outs = runs
    got = measures(outs[1][0] / "cka.h5")
    x, y = xs["a"], ys["c"]
    full = [jaccard(x[r], y[r], K_JACCARD) for r in batches()[:4]]
    assert abs(got["jaccard"][0, 0] - np.mean(full)) < 1e-12
    part = [rsa(xs["part"][r], y[r], "spearman", "correlation") for i, r in enumerate(batches()) if i != 1]
    assert abs(got["rsa"][3, 0] - np.mean(part)) < 1e-12


@pytest.mark.parametrize("rsa_params", [{"method": "pearson", "distance": "euclidean"},
                                        {"method": "pearson", "distance": "correlation"},
                                        {"method": "spearman", "distance": "euclidean"}])
def test_rsa_methods_and_distances(runs, mpicka, rsa_params):
    xs, ys, outs = runs
    d = outs[1][0].parent
    out = "rsa_" + "_".join(rsa_params.values())
    p = mpicka.run(["run", config(d, out, measures=[{"rsa": rsa_params}], jackknife=0), "--quiet"], ranks=2)
    assert p.returncode == 0, p.stdout + p.stderr
    got = measures(d / out / "cka.h5")
    assert list(got) == ["rsa"]                     # no groups: no standard errors
    want = np.full((len(xs), len(ys)), np.nan)
    for i, x in enumerate(xs.values()):
        for j, y in enumerate(ys.values()):
            v = [np.nan if constant(x[r]) or constant(y[r]) else rsa(x[r], y[r], *rsa_params.values())
                 for r in batches()]
            v = np.asarray(v)
            want[i, j] = v[np.isfinite(v)].mean() if np.isfinite(v).any() else np.nan
    np.testing.assert_array_equal(np.isnan(got["rsa"]), np.isnan(want))
    np.testing.assert_allclose(got["rsa"], want, rtol=0, atol=1e-10)
    assert measure_params(d / out / "cka.h5", "rsa")["method"] == rsa_params["method"]


def test_a_self_comparison_matches_and_is_symmetric_to_the_bit(runs, mpicka):
    xs, _, outs = runs
    d = outs[1][0].parent
    p = mpicka.run(["run", config(d, "self", y=None), "--quiet", "--set", "threads=2"], ranks=2)
    assert p.returncode == 0, p.stdout + p.stderr
    got = measures(d / "self" / "cka.h5")
    assert_matches(got, oracle(xs, xs))
    for name in ("rsa", "mutual_knn", "jaccard"):   # cknna's sum of A B is not that of B A
        assert got[name].tobytes() == got[name].T.copy().tobytes(), name
    assert np.nanmax(np.abs(got["cknna"] - got["cknna"].T)) > 1e-6
    live = [0, 1, 2, 3]
    np.testing.assert_allclose(np.diag(got["mutual_knn"])[live], 1.0, atol=1e-15)
    np.testing.assert_allclose(np.diag(got["rsa"])[live], 1.0, atol=1e-12)


def test_bits_do_not_depend_on_the_ranks_or_threads(runs):
    _, _, outs = runs
    one = measures(outs[1][0] / "cka.h5")
    for ranks in (2, 3):
        other = measures(outs[ranks][0] / "cka.h5")
        for name in one:
            assert one[name].tobytes() == other[name].tobytes(), (name, ranks)


def test_a_stop_on_3_ranks_resumed_on_2_gives_the_same_bits(runs):
    _, _, outs = runs
    d = outs[1][0].parent
    cfg = config(d, "stopped", checkpoint={"every": 1}, epochs=3, shuffle=True)
    got, log = mkt.stopped_run(["run", cfg, "--quiet"], d, 3, d / "stopped" / "checkpoint.h5")
    assert got == 75, log
    got, log = mkt.run(["run", cfg, "--quiet"], d, 2)
    assert got == 0 and "resuming from" in log, log
    p = mkt.run(["run", config(d, "straight", epochs=3, shuffle=True), "--quiet"], d, 1)
    assert p[0] == 0, p[1]
    one, other = measures(d / "straight" / "cka.h5"), measures(d / "stopped" / "cka.h5")
    assert sorted(one) == sorted(NAMES + [n + "_stderr" for n in NAMES])
    for name in one:
        assert one[name].tobytes() == other[name].tobytes(), name


def test_three_models_in_one_pass(runs, mpicka):
    """`models:` with 3 models: every layer against every other, as the oracle of the stacked layers, and
    each layer every model has across the models (/measures/NAME_matched, as /cka_matched)."""
    xs, ys, outs = runs
    d = outs[1][0].parent
    stacked = {"m0": (xs["a"], xs["b"]), "m1": (ys["c"], ys["d"]), "m2": (np.sin(xs["a"][:, :5]) + 0.1, xs["wide"])}
    for name, (l1, l2) in stacked.items():
        with h5py.File(d / f"{name}.h5", "w") as f:
            f["l1"], f["l2"] = l1, l2
    lines = ["models:"] + [f"  - {{file: \"{d / name}.h5\", layers: [l1, l2]}}" for name in stacked]
    lines += [f"output: \"{d / 'models'}\"", f"batch_size: {BATCH}", f"jackknife: {GROUPS}", "plot: false",
              "measures: [rsa, {mutual_knn: {k: %d}}, cknna, {jaccard: {k: %d}}]" % (K_MUTUAL, K_JACCARD)]
    (d / "models.yaml").write_text("\n".join(lines) + "\n")
    p = mpicka.run(["run", str(d / "models.yaml"), "--quiet"], ranks=3)
    assert p.returncode == 0, p.stdout + p.stderr
    flat = {f"{m}{k}": layer for m, pair in stacked.items() for k, layer in enumerate(pair)}
    got, want = measures(d / "models" / "cka.h5"), oracle(flat, flat)
    want["rsa"], want["rsa_stderr"] = oracle_rsa_pearson_euclidean(flat)
    assert_matches(got, want)
    matched = measures_matched(d / "models" / "cka.h5")
    assert sorted(matched) == sorted(f"{n}_matched{e}" for n in NAMES for e in ("", "_stderr"))
    for name in got:
        cube = matched[name.replace("_stderr", "") + "_matched" + ("_stderr" if "stderr" in name else "")]
        assert cube.shape == (2, 3, 3)
        for k in range(2):  # layer l(k+1) of models 0, 1, 2: flat layers k, 2 + k, 4 + k
            np.testing.assert_array_equal(cube[k], got[name][np.ix_([k, 2 + k, 4 + k], [k, 2 + k, 4 + k])])
    path = str(d / "models" / "cka.h5")
    for args in ([], ["--pair", "m1,m0"], ["--matched", "l2"], ["--format", "csv"]):
        p = subprocess.run([mkt.MPICKA, "show", path, "--measure", "jaccard", *args], capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        if args[:1] == ["--matched"]:
            assert p.stdout.startswith("Measure jaccard of layer l2 across 3 models"), p.stdout
            assert "%.3f" % matched["jaccard_matched"][1, 0, 1] in p.stdout, p.stdout
        if args[:1] == ["--pair"]:
            assert "%.3f" % got["jaccard"][2, 1] in p.stdout, p.stdout
        if args[:1] == ["--format"]:
            lines = p.stdout.splitlines()
            assert lines[0] == "model_a,layer_a,model_b,layer_b,jaccard,stderr,pvalue", p.stdout
            assert lines[2].split(",")[4:6] == [repr(got["jaccard"][0, 1]), repr(got["jaccard_stderr"][0, 1])]
    p = subprocess.run([mkt.MPICKA, "show", path, "--measure", "rsa", "--format", "json"], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    doc = json.loads(p.stdout)
    np.testing.assert_array_equal(np.array(doc["rsa_matched_stderr"]), matched["rsa_matched_stderr"])
    np.testing.assert_array_equal(np.array(doc["rsa"]), got["rsa"])


def oracle_rsa_pearson_euclidean(ls):
    """rsa's defaults: Pearson correlation of squared-Euclidean RDMs."""
    mean = np.full((len(ls), len(ls)), np.nan)
    se = np.full_like(mean, np.nan)
    for i, x in enumerate(ls.values()):
        for j, y in enumerate(ls.values()):
            mean[i, j], se[i, j] = mean_and_stderr([rsa(x[r], y[r], "pearson", "euclidean") for r in batches()])
    return mean, se


def test_both_families_in_one_exact_pass(runs, mpicka):
    """`estimator: exact` with measures of both families: one pass gives the second-moment measures of an
    exact run and the Gram measures of a minibatch run (the same batches and groups), to the bit; the
    second-moment measures have no standard errors (empty in measures.csv)."""
    _, _, outs = runs
    d = outs[1][0].parent
    moments = ["cka", "cca", "procrustes"]
    both = moments + MEASURES[1:]
    p = mpicka.run(["run", config(d, "both", estimator="exact", measures=both), "--quiet"], ranks=3)
    assert p.returncode == 0, p.stdout + p.stderr
    p = mpicka.run(["run", config(d, "moments", estimator="exact", measures=moments), "--quiet"], ranks=2)
    assert p.returncode == 0, p.stdout + p.stderr
    got, exact, grams = (measures(d / k / "cka.h5") for k in ("both", "moments", "r1"))
    assert sorted(got) == sorted(list(exact) + list(grams))
    for name, want in list(exact.items()) + list(grams.items()):
        assert got[name].tobytes() == want.tobytes(), name
    lines = (d / "both" / "measures.csv").read_text().splitlines()
    assert lines[0].endswith(",value,stderr") and lines[1].startswith("cca_mean,") and lines[1].endswith(",")
    assert [line for line in lines if line.startswith("rsa,")][0].split(",")[6] != ""


def test_outputs_name_the_parameters(runs):
    _, _, outs = runs
    folder = outs[1][0]
    with h5py.File(folder / "cka.h5", "r") as f:
        assert f["measures/rsa"].attrs["method"] == "spearman"
        assert f["measures/rsa"].attrs["distance"] == "correlation"
        assert f["measures/jaccard"].attrs["k"] == K_JACCARD and f["measures/cknna"].attrs["k"] == K_CKNNA
        assert f["measures/mutual_knn_stderr"].attrs["k"] == K_MUTUAL
    lines = (folder / "measures.csv").read_text().splitlines()
    assert lines[0] == "measure,model_a,layer_a,model_b,layer_b,value,stderr"
    assert len(lines) == 1 + 4 * 5 * 2 and lines[1].startswith("rsa,x,a,y,c,")
    got = measures(folder / "cka.h5")
    row = lines[1].split(",")
    assert float(row[5]) == got["rsa"][0, 0] and float(row[6]) == got["rsa_stderr"][0, 0]


def test_show_prints_a_gram_measure(runs):
    _, _, outs = runs
    path = str(outs[1][0] / "cka.h5")
    p = subprocess.run([mkt.MPICKA, "show", path, "--measure", "cknna", "--format", "csv"], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = [line.split(",") for line in p.stdout.splitlines()]
    assert rows[0] == ["layer", "c", "d"]
    np.testing.assert_array_equal(np.array([r[1:] for r in rows[1:]], dtype=float), measures(path)["cknna"])


def test_check_counts_the_gram_measures(runs):
    """`check` counts, per rank, each layer's RDM (m(m-1)/2 doubles) and neighbour lists (an int and a
    double per neighbour, k the largest k), one layer's scratch (its distances and Spearman's (value,
    index) pairs twice, 6 m doubles), each k-NN measure's lists of every layer sorted for the pairs (as
    many, and a double), 2 m doubles per thread and the batch's values."""
    _, _, outs = runs
    d = outs[1][0].parent
    p = subprocess.run([mkt.MPICKA, "check", config(d, "estimate", threads=1)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    got = re.search(r"of which the measures beyond CKA \(each batch's RDMs and neighbours of every layer, every "
                    r"rank\): ([0-9.]+) MiB", p.stdout)
    assert got, p.stdout
    m, t, k, layers, cells = BATCH, BATCH * (BATCH - 1) // 2, K_JACCARD, 7, 5 * 2
    want = layers * (12 * m * k + 8 * t) + 6 * 8 * m + 8 * t + 32 * t + 3 * layers * (12 * m * k + 8) \
        + 1 * 16 * m + 8 * 4 * cells
    assert abs(float(got.group(1)) - want / 2**20) <= 0.05, p.stdout


@pytest.mark.parametrize("extra, words", [
    ({"measures": [{"jaccard": {"k": 32}}]}, ["jaccard's k is 32", "batch_size 32", "31 neighbours"]),
    ({"measures": [{"cknna": {"k": 1}}]}, ["cknna's k must be at least 2"]),
    ({"measures": [{"rsa": {"method": "kendall"}}]}, ["rsa's method", "pearson or spearman"]),
    ({"measures": [{"rsa": {"distance": "cosine"}}]}, ["rsa's distance", "euclidean or correlation"]),
    ({"measures": [{"mutual_knn": {"q": 3}}]}, ["mutual_knn has the parameter k, not 'q'"]),
    ({"measures": ["rsa", "cca"]}, ["'measures' lists cca", "needs 'estimator: exact'", "rsa"]),
])
def test_bad_measures_are_refused_naming_the_key(mpicka, tmp_path, extra, words):
    write_inputs(tmp_path)
    p = mpicka.run(["run", config(tmp_path, "bad", **extra)], ranks=1)
    assert p.returncode == 2, p.stdout + p.stderr
    for w in words:
        assert w in p.stderr, p.stderr
    assert not (tmp_path / "bad" / "cka.h5").exists()


def test_plot_draws_the_gram_measures_without_their_errors(runs, tmp_path):
    _, _, outs = runs
    path = str(outs[1][0] / "cka.h5")
    for args in (["--measure", "rsa"], ["--measures", "all"], ["--measure", "cknna_stderr"]):
        png = tmp_path / "m.png"
        p = subprocess.run([mkt.MPICKA, "plot", path, *args, "-o", str(png)], capture_output=True, text=True)
        assert p.returncode == 0 and png.stat().st_size > 1000, p.stdout + p.stderr


def test_the_estimator_kernel_and_permutations_do_not_change_them(runs, mpicka):
    """The measures use the linear Gram of the centred block whatever the estimator and kernel: hsic0 with
    an RBF kernel and permutations gives the same bits; float32 Grams give the values to float32's
    precision."""
    _, _, outs = runs
    d = outs[1][0].parent
    one = measures(outs[1][0] / "cka.h5")
    cfg = config(d, "hsic0", estimator="hsic0", kernel="rbf", permutations=3)
    p = mpicka.run(["run", cfg, "--quiet"], ranks=2)
    assert p.returncode == 0, p.stdout + p.stderr
    other = measures(d / "hsic0" / "cka.h5")
    for name in one:
        assert one[name].tobytes() == other[name].tobytes(), name
    p = mpicka.run(["run", config(d, "f32", precision="float32", measures=["rsa"]), "--quiet"], ranks=1)
    assert p.returncode == 0, p.stdout + p.stderr
    got = measures(d / "f32" / "cka.h5")["rsa"]
    xs, ys = layers()
    want = np.array([[mean_and_stderr([rsa(x[r], y[r], "pearson", "euclidean") if not constant(x[r]) else np.nan
                                       for r in batches()])[0] for y in ys.values()] for x in xs.values()])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
