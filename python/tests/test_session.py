"""mpicka.Session fed numpy arrays and tensors in this process (libmpicka
through ctypes), against the float64 reference written from the formula;
split over sessions with export/merge; and every error it promises.
The batch sampler of mpicka.distributed against the file run's plan."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mpicka import MpickaError, Session
from mpicka.distributed import BatchSampler
from reference import batches, minibatch_cka

N, M = 200, 48          # 4 full batches and a tail of 8


def layers(seed=0):
    """Two related models: x with 2 layers (float64, float32), y with 3 (one 3-D)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((N, 6))
    x = [z @ rng.standard_normal((6, 10)) + 0.3 * rng.standard_normal((N, 10)),
         (np.tanh(z @ rng.standard_normal((6, 7)))).astype(np.float32)]
    y = [(z @ rng.standard_normal((6, 24))).reshape(N, 2, 3, 4).astype(np.float32),
         rng.standard_normal((N, 5)), np.abs(z @ rng.standard_normal((6, 9)))]
    return x, y


def feed_all(s, x, y, only=None):
    for g, (lo, hi) in enumerate(batches(N, M)):
        if only is None or g in only:
            s.feed(g, {"a": {f"l{i}": a[lo:hi] for i, a in enumerate(x)},
                       "b": {f"m{i}": b[lo:hi] for i, b in enumerate(y)}})


def test_numpy_batches_give_the_reference_matrix():
    x, y = layers()
    with Session({"batch_size": M, "jackknife": 0, "plot": False}, n=N) as s:
        feed_all(s, x, y)
        r = s.finish()
    assert r.x_layers == ["l0", "l1"] and r.y_layers == ["m0", "m1", "m2"]
    np.testing.assert_allclose(r.cka, minibatch_cka(x, y, M), rtol=0, atol=1e-9)
    assert r.path == "" and r.stderr is None


def test_tensors_and_arrays_give_the_same_bits_and_the_output_folder(tmp_path):
    x, y = layers(1)
    with Session(batch_size=M, output=str(tmp_path / "np"), plot=False, n=N) as s:
        feed_all(s, x, y)
        a = s.finish()
    with Session(batch_size=M, output=str(tmp_path / "pt"), plot=False, n=N) as s:
        feed_all(s, [torch.from_numpy(v) for v in x], [torch.from_numpy(v) for v in y])
        b = s.finish()
    assert a.path == str(tmp_path / "np" / "cka.h5")
    assert a.cka.tobytes() == b.cka.tobytes() and a.stderr.tobytes() == b.stderr.tobytes()
    assert sorted(os.listdir(tmp_path / "np")) == ["cka.csv", "cka.h5"]


def test_a_result_of_another_configuration_is_kept_unless_forced(tmp_path):
    x, y = layers(2)
    out = str(tmp_path / "out")
    for _ in range(2):  # the second: a rerun of the same configuration replaces it
        with Session(batch_size=M, output=out, plot=False, n=N) as s:
            feed_all(s, x, y)
            first = s.finish()
    with Session(batch_size=M, jackknife=3, output=out, plot=False, n=N) as s:
        with pytest.raises(MpickaError, match="holds the results of another configuration"):
            feed_all(s, x, y)
    with Session(batch_size=M, jackknife=3, output=out, plot=False, n=N, force=True) as s:
        feed_all(s, x, y)
        forced = s.finish()
    assert forced.cka.tobytes() == first.cka.tobytes() and forced.stderr.tobytes() != first.stderr.tobytes()


@pytest.mark.parametrize("shares", [({0}, {1, 2}, {3, 4}), ({0, 3}, {1, 4}, {2})], ids=["contiguous", "strided"])
def test_sessions_merged_in_any_order_give_one_sessions_bits(shares):
    x, y = layers(2)
    cfg = {"batch_size": M, "jackknife": 5, "permutations": 3, "plot": False}
    with Session(cfg, n=N) as one:
        feed_all(one, x, y)
        whole = one.finish()
    # Session 2 is declared up front (started at once, the probe set directly), 1 from its first batch.
    declared = {"a": {f"l{i}": (v.shape[1:], v.dtype) for i, v in enumerate(x)},
                "b": {f"m{i}": (v.shape[1:], v.dtype) for i, v in enumerate(y)}}
    parts = [Session(cfg, n=N, rank=r, world=3, models=declared if r == 2 else None) for r in range(3)]
    feed_all(parts[0], x, y, only=shares[0])
    probe = parts[0].probe()
    for r, share in ((1, shares[1]), (2, shares[2])):
        parts[r].set_probe(probe)
        feed_all(parts[r], x, y, only=share)
    parts[0].merge(parts[2].export())   # out of rank order on purpose
    parts[0].merge(parts[1].export())
    merged = parts[0].finish()
    for name in ("cka", "hsic_xy", "hsic_xx", "hsic_yy", "stderr", "pvalue"):
        assert getattr(merged, name).tobytes() == getattr(whole, name).tobytes(), name
    for p in parts:
        p.close()


def test_declared_models_are_checked_against_the_batches():
    x, y = layers()
    models = {"a": {"l0": (10,), "l1": (7,)}, "b": {"m0": (2, 3, 4), "m1": 5, "m2": ((9,), "float64")}}
    with Session(models=models, n=N, batch_size=M) as s:
        feed_all(s, x, y)
        assert s.finish().cka.shape == (2, 3)
    bad = {"a": {"l0": (10,), "l1": (8,)}, "b": models["b"]}
    with Session(models=bad, n=N, batch_size=M) as s, pytest.raises(ValueError, match=r"model 'a', layer 'l1', "
                                                                                       r"batch 0: shape \(48, 7\)"):
        feed_all(s, x, y)


def one_batch(g, x0, y0):
    return {"a": {"h": x0}, "b": {"h": y0}}


def rows(g, k=5, dtype=np.float32, seed=0):
    lo, hi = batches(N, M)[g]
    return np.random.default_rng(seed + g).standard_normal((hi - lo, k)).astype(dtype)


def test_a_shape_that_changes_names_model_layer_and_batch():
    with Session(n=N, batch_size=M) as s:
        s.feed(0, one_batch(0, rows(0), rows(0, 3)))
        with pytest.raises(ValueError, match=r"model 'b', layer 'h', batch 1: shape \(48, 4\).*\(n, 3\) before"):
            s.feed(1, one_batch(1, rows(1), rows(1, 4)))


def test_models_that_disagree_on_the_batch_size_are_named():
    with Session(n=N, batch_size=M) as s:
        with pytest.raises(ValueError, match=r"batch 0: the models disagree on the batch size: model 'a', layer "
                                             r"'h' has 48 examples, model 'b', layer 'h' 40"):
            s.feed(0, one_batch(0, rows(0), rows(0)[:40]))


def test_a_batch_of_the_wrong_size_names_the_plan():
    with Session(n=N, batch_size=M) as s:
        with pytest.raises(ValueError, match=r"batch 0: 40 examples, but batch 0 of the plan holds 48"):
            s.feed(0, one_batch(0, rows(0)[:40], rows(0)[:40]))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_is_the_librarys_error_naming_model_layer_and_batch(bad):
    with Session(n=N, batch_size=M) as s:
        s.feed(0, one_batch(0, rows(0), rows(0)))
        y = rows(1)
        y[7, 2] = bad
        with pytest.raises(MpickaError) as e:
            s.feed(1, one_batch(1, rows(1), y))
    assert e.value.code == "MK_EDATA"
    assert "'b'" in str(e.value) and "'h'" in str(e.value) and "batch 1" in str(e.value), str(e.value)


def test_other_dtypes_are_refused_naming_model_and_layer():
    with Session(n=N, batch_size=M) as s:
        with pytest.raises(TypeError, match=r"model 'b', layer 'h', batch 0: an array of int64"):
            s.feed(0, one_batch(0, rows(0), rows(0).astype(np.int64)))
        with pytest.raises(TypeError, match=r"model 'a', layer 'h', batch 0: a tensor of torch.bfloat16"):
            s.feed(0, one_batch(0, torch.zeros(48, 5, dtype=torch.bfloat16), rows(0)))


def test_a_dtype_that_changes_is_refused():
    with Session(n=N, batch_size=M) as s:
        s.feed(0, one_batch(0, rows(0), rows(0)))
        with pytest.raises(TypeError, match=r"model 'a', layer 'h', batch 1: float64, but the layer is float32"):
            s.feed(1, one_batch(1, rows(1, dtype=np.float64), rows(1)))


def test_missing_or_unknown_layers_and_order():
    with Session(n=N, batch_size=M) as s:
        s.feed(0, one_batch(0, rows(0), rows(0)))
        with pytest.raises(KeyError, match=r"batch 1: model 'b', layer 'h' is missing"):
            s.feed(1, {"a": {"h": rows(1)}, "b": {}})
        with pytest.raises(KeyError, match=r"model 'c' is not one of the session's"):
            s.feed(1, {"a": {"h": rows(1)}, "b": {"h": rows(1)}, "c": {"h": rows(1)}})
        with pytest.raises(ValueError, match=r"batch 0: batches are fed in ascending order"):
            s.feed(0, one_batch(0, rows(0), rows(0)))


def test_a_missing_batch_is_named_at_finish():
    with Session(n=N, batch_size=M) as s:
        for g in (0, 1, 3):
            s.feed(g, one_batch(g, rows(g), rows(g, seed=9)))
        with pytest.raises(MpickaError, match=r"batch 2"):
            s.finish()


def test_file_only_keys_are_refused_by_the_library():
    with pytest.raises(MpickaError, match=r"shuffle.*export|export.*shuffle"):
        Session({"shuffle": True}, n=N)


def test_a_missing_library_says_how_to_get_one(tmp_path):
    code = "import mpicka; mpicka.Session(n=100)"
    env = dict(os.environ, MPICKA_LIBRARY=str(tmp_path / "nowhere" / "libmpicka.so"))
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "LibraryNotFound" in p.stderr and "nowhere/libmpicka.so: no such file" in p.stderr, p.stderr
    env = {k: v for k, v in os.environ.items() if k != "MPICKA_LIBRARY"}
    env["MPICKA_BUILD"] = str(tmp_path)
    # From a copy of the package outside any source tree or prefix with a library.
    pkg = tmp_path / "site"
    pkg.mkdir()
    subprocess.run(["cp", "-r", os.path.dirname(__import__("mpicka").__file__), str(pkg)], check=True)
    env["PYTHONPATH"] = str(pkg)
    env["PATH"] = "/usr/bin:/bin"   # no mpicka program whose prefix holds a library
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "libmpicka.so not found" in p.stderr and "cmake --install" in p.stderr, p.stderr


# ---- the sampler -------------------------------------------------------------

@pytest.mark.parametrize("n,m", [(200, 48), (203, 48), (196, 49), (7, 4)])
@pytest.mark.parametrize("split", ["contiguous", "strided"])
def test_the_sampler_covers_the_plan_once_in_whole_batches(n, m, split):
    plan = [list(range(lo, hi)) for lo, hi in batches(n, m)]
    for world in (1, 2, 3, 5):
        got = {}
        for rank in range(world):
            s = BatchSampler(n, m, rank, world, split=split)
            assert len(s) == len(s.batch_indices) and s.batch_indices == sorted(s.batch_indices)
            for g, idx in zip(s.batch_indices, s):
                assert g not in got
                got[g] = idx
        assert [got[g] for g in sorted(got)] == plan and sorted(got) == list(range(len(plan)))
        assert BatchSampler(n, m, 0, world, split=split).batch_indices[:1] == [0]


def test_the_exact_estimators_plan_keeps_the_tail():
    s = BatchSampler(203, 50, keep_all=True)
    assert list(s)[-1] == [200, 201, 202]
    assert len(BatchSampler(203, 50)) == 4
    with Session(estimator="exact", batch_size=50, n=203) as sess:
        assert sess.batches == 5


def test_the_library_agrees_with_the_sampler():
    for n, m, est in ((203, 48, "hsic1"), (200, 50, "hsic1"), (203, 50, "exact")):
        with Session(estimator=est, batch_size=m, n=n) as s:
            g = s.batches - 1
            s.feed(0, one_batch(0, np.ones((m, 2), np.float32) + np.arange(m)[:, None], np.ones((m, 2), np.float32)
                                * np.arange(m)[:, None] ** 2))
            from mpicka._lib import library
            lib = library()
            assert lib.mk_session_batches(s._ptr) == s.batches
            assert lib.mk_session_batch_rows(s._ptr, g) == len(s.batch_range(g))


def test_the_result_without_output_is_the_written_one(tmp_path):
    """Built from the library's matrices, it holds what load() reads from the
    cka.h5 of the same session written: two models, and three (models:)."""
    x, y = layers(3)
    z = [x[1] * 2 + 1, y[1]]
    for models in ({"a": x, "b": y}, {"a": x, "b": y, "c": z}):
        got = []
        for out in (None, str(tmp_path / f"out{len(models)}")):
            with Session(batch_size=M, jackknife=4, permutations=2, plot=False, output=out, n=N) as s:
                for g, (lo, hi) in enumerate(batches(N, M)):
                    s.feed(g, {m: {f"l{i}" if m != "c" else f"l{i + 1}": v[lo:hi] for i, v in enumerate(vs)}
                               for m, vs in models.items()})
                got.append(s.finish())
        built, read = got
        assert read.path and not built.path
        for name in ("cka", "hsic_xy", "hsic_xx", "hsic_yy", "stderr", "pvalue", "model_offsets", "cka_matched",
                     "cka_matched_stderr", "cka_matched_pvalue"):
            a, b = getattr(built, name), getattr(read, name)
            assert (a is None) == (b is None), name
            if a is not None:
                assert a.shape == b.shape and a.tobytes() == b.tobytes(), name
        for name in ("x_layers", "y_layers", "models", "matched_layers"):
            assert getattr(built, name) == getattr(read, name), name
    assert read.models == ["a", "b", "c"] and read.matched_layers == ["l1"]


def test_a_config_as_yaml_text_or_file_with_keys_that_win(tmp_path):
    x, y = layers(4)
    (tmp_path / "c.yaml").write_text("batch_size: 48\njackknife: 0\nplot: false\n")
    got = []
    for config in ("batch_size: 48\njackknife: 0\nplot: false\n", tmp_path / "c.yaml", str(tmp_path / "c.yaml")):
        with Session(config, n=N, jackknife=3) as s:   # the keyword wins over the text
            assert s.batch_size == M and s.config["jackknife"] == 3
            feed_all(s, x, y)
            got.append(s.finish())
    assert all(r.stderr is not None and r.cka.tobytes() == got[0].cka.tobytes() for r in got)


def test_damaged_states_and_probes_are_refused_and_change_nothing():
    x, y = layers(5)
    cfg = {"batch_size": M, "jackknife": 0, "plot": False}
    declared = {"a": {f"l{i}": (v.shape[1:], v.dtype) for i, v in enumerate(x)},
                "b": {f"m{i}": (v.shape[1:], v.dtype) for i, v in enumerate(y)}}
    with Session(cfg, n=N) as whole, Session(cfg, n=N) as a, \
            Session(cfg, n=N, rank=1, world=2, models=declared) as b, Session(cfg, n=N, rank=1, world=2) as lazy:
        feed_all(whole, x, y)
        feed_all(a, x, y, only={0, 1, 2})
        probe = a.probe()
        with pytest.raises(MpickaError):
            b.set_probe(probe[:-3])
        lazy.set_probe(probe[:-3])   # kept until the models are known: refused at the first feed
        with pytest.raises(MpickaError):
            feed_all(lazy, x, y, only={3})
        b.set_probe(probe)
        feed_all(b, x, y, only={3, 4})
        state = b.export()
        for bad in (b"", b"garbage", state[:len(state) // 2], state[:-1] + bytes([state[-1] ^ 1])):
            with pytest.raises(MpickaError):
                a.merge(bad)
        a.merge(state)
        with pytest.raises(MpickaError, match=r"batch 3|twice|already"):
            a.merge(state)
        assert a.finish().cka.tobytes() == whole.finish().cka.tobytes()
