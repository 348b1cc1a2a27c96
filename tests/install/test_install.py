"""What `cmake --install` and `pip install ./python` put in place works from
there, away from the source tree."""
import os
import subprocess

import h5py
import numpy as np

from conftest import PYTHON, SOURCE, copy_python, sh, user_env


def test_cmake_install_puts_everything_under_the_prefix(installed):
    expected = ["bin/mpicka", "share/man/man1/mpicka.1", "share/mpicka/jobs/mpicka.sbatch",
                "share/mpicka/jobs/mpicka-requeue.sbatch", "share/mpicka/jobs/mpicka-sweep.sbatch",
                "share/mpicka/jobs/mpicka-sweep-gather.sh", "share/mpicka/configs/reference.yaml",
                "share/mpicka/python/pyproject.toml", "share/mpicka/python/mpicka/py.typed",
                "share/doc/mpicka/README.md", "share/doc/mpicka/docs/config.md",
                "share/doc/mpicka/python/README.md"]
    missing = [e for e in expected if not (installed / e).is_file()]
    assert not missing, f"not installed: {missing}"
    for e in ("bin/mpicka", "share/mpicka/jobs/mpicka.sbatch", "share/mpicka/jobs/mpicka-sweep-gather.sh"):
        assert os.access(installed / e, os.X_OK), e
    man = (installed / "share/man/man1/mpicka.1").read_text()
    assert man.startswith(".TH MPICKA 1")
    for cmd in ("run", "check", "synth", "plot", "show"):
        assert f".SS {cmd}\n.nf\nusage: " in man, f"no section for {cmd}"
    p = subprocess.run(["man", "--warnings", "-l", str(installed / "share/man/man1/mpicka.1")],
                       capture_output=True, text=True, env={**os.environ, "MANWIDTH": "100"})
    if p.returncode == 0:  # man-db is optional on a build machine
        assert "mpicka check CONFIG" in p.stdout and not p.stderr.strip(), p.stderr


def test_installed_mpicka_runs_a_small_synth_config(installed, tmp_path):
    env = user_env(tmp_path, [installed / "bin"])
    sh("mkdir -p acts && mpicka synth acts/a.h5 --n 256 --layers 3 --features 16 --seed 3 "
       "&& mpicka synth acts/b.h5 --n 256 --layers 2 --features 8 --seed 3", cwd=tmp_path, env=env)
    (tmp_path / "ab.yaml").write_text('x: {file: acts/a.h5, layers: ["*"]}\ny: {file: acts/b.h5, layers: ["*"]}\n'
                                      "batch_size: 32\noutput: results/ab\n")
    p = sh("mpirun -np 2 --oversubscribe mpicka run ab.yaml --quiet", cwd=tmp_path, env=env)
    assert "mpicka: CKA of a (3 layers) vs b (2 layers)" in p.stdout, p.stdout
    assert sh("command -v mpicka", cwd=tmp_path, env=env).stdout.strip() == str(installed / "bin/mpicka")
    with h5py.File(tmp_path / "results/ab/cka.h5") as f:
        cka = f["cka"][()]
    assert cka.shape == (3, 2) and np.isfinite(cka).all() and cka[0, 0] > 0.5
    assert (tmp_path / "results/ab/cka.png").stat().st_size > 1000
    p = sh("mpicka show results/ab/cka.h5 --format csv", cwd=tmp_path, env=env)
    assert p.stdout == (tmp_path / "results/ab/cka.csv").read_text()


def test_pip_install_into_a_target_imports_from_there(tmp_path):
    src = copy_python(tmp_path / "src")
    target = tmp_path / "site"
    sh([PYTHON, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index", "--quiet",
        "--target", str(target), str(src)], cwd=tmp_path, env=user_env(tmp_path))
    assert (target / "mpicka" / "py.typed").is_file()
    env = {**user_env(tmp_path), "PYTHONPATH": str(target)}
    p = sh([PYTHON, "-c", "import mpicka, mpicka.result, mpicka.export; print(mpicka.__file__, mpicka.__version__)"],
           cwd=tmp_path, env=env)
    path, version = p.stdout.split()
    assert path == str(target / "mpicka" / "__init__.py") and version == "0.1.0", p.stdout
    pyproject = (SOURCE / "python" / "pyproject.toml").read_text()
    assert f'version = "{version}"' in pyproject


def test_a_c_program_links_the_installed_library_with_pkg_config(installed, tmp_path):
    """The library, its header and mpicka.pc as a user finds them: a tiny
    client compiled with `pkg-config --cflags --libs mpicka`, against the
    shared library and against the static one, runs and gets CKA 1 for
    y = 2x."""
    for e in ("lib/libmpicka.so", "lib/libmpicka.a", "include/mpicka/session.h", "include/mpicka/error.h",
              "lib/pkgconfig/mpicka.pc"):
        assert (installed / e).is_file(), e
    env = {**user_env(tmp_path), "PKG_CONFIG_PATH": str(installed / "lib/pkgconfig")}
    src = SOURCE / "tests/install/lib/tiny.c"
    sh(f"cc -std=c11 -Wall -Werror {src} $(pkg-config --cflags --libs mpicka) -lm -o tiny", cwd=tmp_path, env=env)
    sh(f"cc -std=c11 {src} $(pkg-config --cflags mpicka) {installed}/lib/libmpicka.a "
       "$(pkg-config --static --libs mpicka | sed 's/-lmpicka//') -lm -o tiny_static", cwd=tmp_path, env=env)
    assert "libmpicka" not in sh("ldd tiny_static", cwd=tmp_path, env=env).stdout
    for exe, extra in (("./tiny", {"LD_LIBRARY_PATH": str(installed / "lib")}), ("./tiny_static", {})):
        p = sh(exe, cwd=tmp_path, env={**env, **extra})
        assert "cka 1 x 1: 1.000000000000000" in p.stdout, p.stdout
        assert "usage error: mk_session_feed is called after mk_session_start" in p.stdout, p.stdout
    exported = sh(f"nm -D --defined-only {installed}/lib/libmpicka.so", cwd=tmp_path, env=env).stdout.split()
    names = [w for w in exported if w.startswith("mk")]
    assert "mk_session_open" in names and "mk_errmsg" in names and "mk_errname" in names
    assert not [n for n in names if n.startswith("mk__")], "private names exported"
