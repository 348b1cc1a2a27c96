"""The small multiples a run with measures draws beside its heatmap (real
mpicka runs on real HDF5 files): cka_measures.png for plot.file cka.png, one
panel per measure, for two models and for a models result; none without
measures besides cka, or with plot off."""

import struct

import mkt
from mkt import write_yaml

MEASURES = ["cka", "cca", {"svcca": {"keep": 0.9}}, "procrustes", {"shape": {"alpha": 0.5}}]


def synth(mpicka, path, seed):
    p = mpicka.run(["synth", str(path), "--n", "256", "--layers", "3", "--features", "8", "--seed", str(seed)],
                   ranks=1)
    assert p.returncode == 0, p.stdout + p.stderr


def run(mpicka, d, name, **cfg):
    cfg = dict({"batch_size": 64, "estimator": "exact", "output": str(d / name)}, **cfg)
    p = mpicka.run(["run", write_yaml(d / f"{name}.yaml", cfg), "--quiet", "--force"], ranks=2)
    assert p.returncode == 0, p.stdout + p.stderr
    return d / name, p.stdout + p.stderr


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def test_a_run_draws_the_measures_beside_its_heatmap(mpicka, tmp_path):
    synth(mpicka, tmp_path / "a.h5", 1)
    synth(mpicka, tmp_path / "b.h5", 2)
    x = {"file": str(tmp_path / "a.h5"), "layers": ["layer*"]}
    y = {"file": str(tmp_path / "b.h5"), "layers": ["layer*"]}
    out, log = run(mpicka, tmp_path, "two", x=x, y=y, measures=MEASURES)
    w, h = png_size(out / "cka_measures.png")
    w1, h1 = png_size(out / "cka.png")
    # six panels (cka, cca_mean, cca_r2, svcca, procrustes, shape): three
    # columns by two rows of panels about cka.png's size less its subtitle
    assert 2.5 * (w1 - 60) < w < 3.5 * w1 and 1.8 * (h1 - 60) < h < 2.6 * h1, (w, h, w1, h1)
    svg, _ = run(mpicka, tmp_path, "svg", x=x, y=y, measures=MEASURES, plot={"file": "fig.svg"})
    text = (svg / "fig_measures.svg").read_text()
    for panel in ("cka | cka (similarity, 0 to 1)", "svcca (keep 0.9) | svcca",
                  "procrustes | procrustes (distance, 0 to 2)", "shape (alpha 0.5) | shape (distance"):
        assert "panel: " + panel in text, text[:2000]
    models, _ = run(mpicka, tmp_path, "models", models=[dict(x, name="a"), dict(y, name="b")],
                    measures=["procrustes"])
    assert png_size(models / "cka_measures.png")[0] > png_size(models / "cka.png")[0]
    again, _ = run(mpicka, tmp_path, "two", x=x, y=y)  # the folder of "two", now without measures
    assert not (again / "cka_measures.png").exists() and not (again / "measures.csv").exists()
    only, _ = run(mpicka, tmp_path, "only", x=x, y=y, measures=["cka"])
    off, _ = run(mpicka, tmp_path, "off", x=x, y=y, measures=MEASURES, plot=False)
    assert not (only / "cka_measures.png").exists() and not (off / "cka_measures.png").exists()
    assert "warn" not in log.lower(), log
