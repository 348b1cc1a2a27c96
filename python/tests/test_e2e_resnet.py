"""From PyTorch models to mpicka's matrix, end to end (issue 10, "Done when").

Two torchvision ResNet-18s with random weights (seeds 0 and 1) are exported
over 512 generated 3x32x32 images, in two shards each (rank/world = 2, the
image set split in halves), x in float32 and y in float16, with the layers
given only as patterns. `mpirun -np 2 mpicka run` on the shards (x by a glob,
y by a list; layers "*" listed in the files' creation order) must give the
float64 minibatch CKA computed here from activations captured by this test's
own hooks (y rounded to float16, as stored), to 1e-9, with the layers in
forward order. With y's IDs permuted it must stop with exit status 3 naming
the first differing example, and leave no output.
"""

import re
import shutil

import h5py
import numpy as np
import pytest
import torch
import torchvision
from torch.utils.data import DataLoader, TensorDataset

from mkt import write_yaml as write_config
from mpicka.export import export
from mpicka.result import load
from reference import minibatch_cka

pytestmark = pytest.mark.e2e

N, WORLD, M = 512, 2, 96  # batches of 96 straddle the shards' boundary at 256
X_PATTERNS = ["layer?.?", "f?"]             # the residual blocks and the head
Y_PATTERNS = ["f?", "layer?", "*pool"]      # listed out of forward order on purpose
X_FORWARD = [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)] + ["fc"]
Y_FORWARD = ["maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]


def resnet(seed):
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None).eval()


def own_capture(model, images, names):
    """The reference's activations: hooks of this test's own, all in memory."""
    mods = dict(model.named_modules())
    got = {n: [] for n in names}
    handles = [mods[n].register_forward_hook(lambda m, i, o, n=n: got[n].append(o.detach().clone()))
               for n in names]
    try:
        with torch.no_grad():
            for lo in range(0, len(images), 64):
                model(images[lo:lo + 64])
    finally:
        for h in handles:
            h.remove()
    return [torch.cat(got[n]).numpy() for n in names]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    images = torch.randn(N, 3, 32, 32, generator=torch.Generator().manual_seed(2020))
    ids = 1000 + 7 * torch.arange(N)  # not the running index: the shards must carry these
    acts = {}
    for tag, seed, dtype, patterns, forward in (("x", 0, "float32", X_PATTERNS, X_FORWARD),
                                                ("y", 1, "float16", Y_PATTERNS, Y_FORWARD)):
        model = resnet(seed)
        for rank in range(WORLD):
            part = slice(rank * N // WORLD, (rank + 1) * N // WORLD)
            loader = DataLoader(TensorDataset(images[part], ids[part]), batch_size=64, shuffle=False)
            export(model, loader, d / f"{tag}.h5", patterns, dtype=dtype, ids=1, rank=rank, world=WORLD)
        acts[tag] = own_capture(model, images, forward)
    rounded = [a.astype(np.float16) for a in acts["y"]]
    ref = minibatch_cka(acts["x"], rounded, M)
    unrounded = minibatch_cka(acts["x"], acts["y"], M)
    return d, ids.numpy(), ref, unrounded


def config(d, y_dir, out, **extra):
    return write_config(d / f"{out}.yaml", {
        "x": {"file": str(d / "x-*-of-2.h5"), "name": "resnet18_s0", "layers": ["*"]},
        "y": {"file": [str(y_dir / "y-0-of-2.h5"), str(y_dir / "y-1-of-2.h5")], "name": "resnet18_s1",
              "layers": ["*"]},
        "batch_size": M, "plot": False, "output": str(d / out), **extra})


def test_shards_give_the_reference_matrix_in_forward_order(mpicka, shards):
    d, _, ref, unrounded = shards
    p = mpicka.run(["run", config(d, d, "out"), "--quiet"])
    assert p.returncode == 0, p.stderr
    r = load(d / "out" / "cka.h5")
    assert r.x_layers == X_FORWARD and r.y_layers == Y_FORWARD
    assert r.provenance["n"] == N
    np.testing.assert_allclose(r.cka, ref, rtol=0, atol=1e-9)
    # The float16 rounding is visible at this tolerance: the test would see it ignored.
    assert np.max(np.abs(r.cka - unrounded)) > 1e-9


def permuted_y(d, ids, keep=300, seed=3):
    """Copies of y's shards whose IDs past `keep` are permuted; returns the
    folder and the first example (global index) where x and y now differ."""
    p = d / "perm"
    p.mkdir()
    perm = np.arange(N)
    perm[keep:] = keep + np.random.default_rng(seed).permutation(N - keep)
    first = int(np.flatnonzero(perm != np.arange(N))[0])
    for rank in range(WORLD):
        shutil.copy(d / f"y-{rank}-of-2.h5", p)
        with h5py.File(p / f"y-{rank}-of-2.h5", "r+") as f:
            lo = rank * N // WORLD
            f["ids"][...] = ids[perm[lo:lo + N // WORLD]]
    return p, first


def test_permuted_ids_stop_the_run_naming_the_example(mpicka, shards):
    d, ids, ref, _ = shards
    y_dir, first = permuted_y(d, ids)
    shard, local = divmod(first, N // WORLD)
    p = mpicka.run(["run", config(d, y_dir, "bad"), "--quiet"])
    assert p.returncode == 3, p.stderr
    assert f"x-{shard}-of-2.h5" in p.stderr and f"y-{shard}-of-2.h5" in p.stderr, p.stderr
    assert re.search(rf"\b({first}|{local})\b", p.stderr), p.stderr
    assert not (d / "bad").exists()
    # The IDs are all that differ: with the check off, the same matrix.
    p = mpicka.run(["run", config(d, y_dir, "unchecked", ids=False), "--quiet"])
    assert p.returncode == 0, p.stderr
    np.testing.assert_allclose(load(d / "unchecked" / "cka.h5").cka, ref, rtol=0, atol=1e-9)
