"""Every shell and Python block of the README runs as written, in order, as
a user on Debian 12 would after the set-up (HOME and the working folder in
tmp_path; `build` is the build folder, `python` a copy of the package). A
block just after `<!-- not run: why -->` is skipped; the ```text block after
the quick start's run is its expected output (times aside)."""
import re
import shutil

from conftest import BUILD, SOURCE, copy_python, sh, user_env

FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.S | re.M)
SKIP = re.compile(r"<!-- not run: [^>]+-->\s*$")


def blocks(text):
    """(language, code, skipped, line) of every fenced block, in order."""
    out = []
    for m in FENCE.finditer(text):
        indent = len(m.group(1))
        code = "".join(line[indent:] + "\n" for line in m.group(3).splitlines())
        out.append((m.group(2), code, bool(SKIP.search(text[:m.start()])), text.count("\n", 0, m.start()) + 1))
    return out


def masked(out):
    """A run's summary with its times and memory masked."""
    out = re.sub(r"\d+\.\d+ s\b", "T s", out)
    return re.sub(r"peak memory per rank \d+\.\d+ MiB", "peak memory per rank M MiB", out)


def test_readme_blocks_parse():
    found = blocks((SOURCE / "README.md").read_text())
    langs = [b[0] for b in found if not b[2]]
    assert langs.count("sh") >= 3 and langs.count("python") >= 1 and "text" in langs, found
    skipped = [b for b in found if b[2]]
    assert 1 <= len(skipped) <= 4, [(b[0], b[3]) for b in skipped]  # exceptions stay rare


def test_readme_runs_as_written(tmp_path):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir(), home.mkdir()
    (work / "build").symlink_to(BUILD)
    copy_python(work / "python")
    for d in ("configs", "jobs", "scripts"):
        (work / d).symlink_to(SOURCE / d)
    env = user_env(home, [home / ".local" / "bin"])
    venv_python = home / ".venvs" / "mpicka" / "bin" / "python"
    last = None
    for lang, code, skipped, line in blocks((SOURCE / "README.md").read_text()):
        if skipped or lang not in ("sh", "python", "text"):
            continue
        where = f"README.md, the {lang} block at line {line}"
        if lang == "text":
            assert last is not None, f"{where}: expected output with no run before it"
            assert masked(last.stdout) == masked(code), f"{where}: the run printed\n{last.stdout}"
            continue
        cmd = code if lang == "sh" else [str(venv_python), "-c", code]
        last = sh(cmd, cwd=work, env=env, timeout=600, check=False)
        assert last.returncode == 0, (f"{where} failed (exit {last.returncode}):\n{code}\n--- stdout\n{last.stdout}"
                                      f"\n--- stderr\n{last.stderr}")
    assert (work / "results" / "ab" / "cka.png").is_file() and (work / "results" / "resnets" / "cka.h5").is_file()
    assert shutil.which("mpicka", path=env["PATH"]) == str(home / ".local" / "bin" / "mpicka")
