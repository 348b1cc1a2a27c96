"""The job scripts' log names and the sweep gatherer's CSV, without Slurm
(test_slurm runs the scripts on a real cluster)."""
import csv
import io
import re

from conftest import BUILD, SOURCE, sh, user_env

JOBS = SOURCE / "jobs"


def sbatch_options(script):
    return dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)", script.read_text(), re.M))


def test_logs_are_named_by_job_and_appended_to():
    """%x-%j.out: mpicka-123.out (not mpicka-mpicka-123.log); a requeued job
    keeps its ID and appends to the same file."""
    for name in ("mpicka.sbatch", "mpicka-requeue.sbatch", "mpicka-sweep.sbatch"):
        opts = sbatch_options(JOBS / name)
        assert opts.get("open-mode") == "append", name
        assert re.fullmatch(r"%x-(%j|%A_%a)\.out", opts.get("output", "")), (name, opts.get("output"))


def test_gathered_overrides_have_no_shell_quotes_and_times_are_short(tmp_path):
    env = user_env(tmp_path)
    mpicka = str(BUILD / "mpicka")
    sh(f"'{mpicka}' synth a.h5 --n 128 --layers 2 --features 8 --seed 1", cwd=tmp_path, env=env)
    (tmp_path / "c.yaml").write_text('x: {file: a.h5, layers: ["*"]}\nbatch_size: 32\nplot: false\n')
    (tmp_path / "sweep.txt").write_text('# a comment\nbatch_size=16 seed=2\n"x.layers=[layer1, layer2]"\n')
    # the folders mpicka-sweep.sbatch names from lines 1 and 2
    for out, sets in (("sweep/01-batch_size=16_seed=2", ["batch_size=16", "seed=2"]),
                      ("sweep/02-x.layers=_layer1,_layer2", ["x.layers=[layer1, layer2]"])):
        args = " ".join(f"--set '{s}'" for s in sets)
        sh(f"'{mpicka}' run c.yaml {args} --set output={out} --quiet", cwd=tmp_path, env=env)
    p = sh([str(JOBS / "mpicka-sweep-gather.sh"), "sweep.txt"], cwd=tmp_path, env={**env, "MPICKA": mpicka})
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert [r["overrides"] for r in rows] == ["batch_size=16; seed=2", "x.layers=[layer1, layer2]"], p.stdout
    assert [r["status"] for r in rows] == ["done", "done"] and [r["batches"] for r in rows] == ["8", "4"], p.stdout
    assert '""' not in p.stdout and "'" not in p.stdout, p.stdout  # no shell quotes, none doubled
    for r in rows:  # the shortest text that reads back the same, as Python's repr
        assert repr(float(r["seconds_total"])) == r["seconds_total"], p.stdout
