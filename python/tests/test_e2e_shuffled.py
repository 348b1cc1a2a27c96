"""The README's quick start with a shuffling loader for model b (issue 21):
its default IDs (a hash of each example's input) must make `mpicka run`
stop with exit status 3 naming the first example that differs, where the
running index used to let it compute a plausible wrong matrix. The same code
as written (both loaders in order) must run. The quick start's own code is
read from README.md and run as it is, but for the loader of model b and the
number of examples."""

import re
import warnings

import h5py

import mkt

README = mkt.os.path.join(mkt.os.path.dirname(__file__), "..", "..", "README.md")
LOADER = "loader = torch.utils.data.DataLoader(data, batch_size=128)"
EXPORT = "    export(model, loader, "
SHUFFLED = "    export(model, loader if name == 'a' else torch.utils.data.DataLoader(data, batch_size=128, " \
           "shuffle=True), "


def quick_start():
    """The Python block of the README's export from PyTorch."""
    text = open(README, encoding="utf-8").read()
    section = text[text.index("### From a PyTorch model"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def run_quick_start(folder, shuffle_b):
    code = quick_start()
    assert LOADER in code and EXPORT in code and "FakeData(512," in code, code  # the test edits these
    code = code.replace("FakeData(512,", "FakeData(320,")    # fewer examples: the same code path
    if shuffle_b:
        code = code.replace(EXPORT, SHUFFLED)
    cwd = mkt.os.getcwd()
    mkt.os.chdir(folder)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exec(compile(code, "README.md quick start", "exec"), {})
    finally:
        mkt.os.chdir(cwd)
    return [str(w.message) for w in caught]


def test_quick_start_in_order_runs(mpicka, tmp_path):
    said = run_quick_start(tmp_path, shuffle_b=False)
    assert not [w for w in said if "random order" in w], said
    status, out = mkt.run(["run", "resnets.yaml", "--quiet"], cwd=tmp_path, np_=2)
    assert status == 0, out
    assert (tmp_path / "results" / "resnets" / "cka.h5").exists()


def test_quick_start_with_a_shuffled_loader_stops_the_run(mpicka, tmp_path):
    said = run_quick_start(tmp_path, shuffle_b=True)
    assert [w for w in said if "random order (RandomSampler" in w], said
    with h5py.File(tmp_path / "acts" / "a.h5", "r") as fa, h5py.File(tmp_path / "acts" / "b.h5", "r") as fb:
        a, b = fa["ids"][()].tolist(), fb["ids"][()].tolist()
        assert fa.attrs["ids_source"] == fb.attrs["ids_source"] == "input hash"
    assert sorted(a) == sorted(b) and a != b  # the same examples, in another order
    first = next(i for i, (u, v) in enumerate(zip(a, b)) if u != v)
    status, out = mkt.run(["run", "resnets.yaml", "--quiet"], cwd=tmp_path, np_=2)
    assert status == 3, out
    assert f"example {first} is '{a[first]}' in acts/a.h5 but '{b[first]}' in acts/b.h5" in out, out
    assert not (tmp_path / "results" / "resnets").exists(), out
