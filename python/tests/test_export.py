"""mpicka.export on tiny random models: what it writes is compared with the
outputs captured by the test's own hooks, and each failure it promises is
provoked."""

import hashlib
import json
import os

import h5py
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mpicka.export import Exporter, ExportError, WithIndex, export, select_modules, shard_path

N, B = 37, 8  # a last partial batch on purpose


class Tiny(nn.Module):
    """Forward order differs from name order: conv, act, block.0, block.1,
    block, pool, flat, head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.block = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.Tanh())
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.flat = nn.Flatten()
        self.head = nn.Linear(24, 5)
        self.unused = nn.Linear(5, 5)

    def forward(self, x):
        return self.head(self.flat(self.pool(self.block(self.act(self.conv(x))))))


class Reuse(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.relu = nn.ReLU()
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.relu(self.fc(self.relu(x))))


class Pair(nn.Module):
    def forward(self, x):
        return x, x


class TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.pair = Pair()

    def forward(self, x):
        return self.pair(self.fc(x))[0]


def model(cls=Tiny, seed=0):
    torch.manual_seed(seed)
    return cls().eval()


def images(n=N, size=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g)


def loader(x, ids=None, batch_size=B):
    ids = torch.arange(100, 100 + len(x)) if ids is None else ids
    return DataLoader(TensorDataset(x, ids), batch_size=batch_size, shuffle=False)


def capture(m, x, names, batch_size=B):
    """Outputs of the named modules over x, by hooks of the test's own."""
    got = {n: [] for n in names}
    mods = dict(m.named_modules())
    handles = [mods[n].register_forward_hook(lambda mod, i, o, n=n: got[n].append(o.detach().clone()))
               for n in names]
    try:
        with torch.no_grad():
            for lo in range(0, len(x), batch_size):
                m(x[lo:lo + batch_size])
    finally:
        for h in handles:
            h.remove()
    return {n: torch.cat(v).numpy() for n, v in got.items()}


def input_hashes(x):
    """The default IDs, from their definition: 63 bits of BLAKE2b (8 bytes,
    little-endian) over each example's dtype, per-example shape and bytes."""
    head = f"{x.dtype}{tuple(x.shape[1:])}".encode()
    return [int.from_bytes(hashlib.blake2b(head + row.numpy().tobytes(), digest_size=8).digest(), "little") >> 1
            for row in x]


def creation_order(path):
    """Root links in creation order, read with HDF5's own index (as mpicka does)."""
    names = []
    with h5py.File(path, "r") as f:
        f.id.links.iterate(lambda name: names.append(name.decode()) or None,
                           idx_type=h5py.h5.INDEX_CRT_ORDER)
    return names


FORWARD = ["conv", "act", "block.0", "block.1", "block", "pool", "flat", "head"]


def test_every_layer_streamed_in_forward_order(tmp_path):
    m, x = model(), images()
    path = export(m, loader(x), tmp_path / "a.h5", layers=FORWARD[::-1])
    want = capture(m, x, FORWARD)
    with h5py.File(path, "r") as f:
        for name in FORWARD:
            d = f[name]
            assert d.dtype == np.float32 and d.maxshape[0] is None and d.chunks is not None
            assert d.chunks[0] >= 1 and d.chunks[0] * np.prod(d.shape[1:]) * 4 <= 1 << 20
            np.testing.assert_array_equal(d[()], want[name])
        assert f["ids"][()].tolist() == input_hashes(x)  # ids=None: a hash of each example's input
        assert f.attrs["ids_source"] == "input hash"
        assert json.loads(f.attrs["modules"]) == FORWARD
        assert f.attrs["model_class"].endswith("Tiny")
        assert f.attrs["input_shape"].tolist() == [3, 8, 8]
        assert f.attrs["dtype"] == "float32" and f.attrs["pool"] == "none"
        assert f.attrs["n"] == N and f.attrs["batches"] == 5
        assert f.attrs["torch_version"] == str(torch.__version__)
        assert "exporter_version" in f.attrs and "rank" not in f.attrs
    assert creation_order(path) == FORWARD + ["ids"]
    assert os.listdir(tmp_path) == ["a.h5"]  # no temporary left


def test_memory_is_one_batch_chunks_sized(tmp_path):
    # A row of 300 KiB: one row per chunk, not a guess past HDF5's cache.
    m = nn.Sequential(nn.Conv2d(3, 1200, 1)).eval()
    path = export(m, loader(images(6, size=8)), tmp_path / "w.h5", layers=["0"])
    with h5py.File(path, "r") as f:
        assert f["0"].chunks == (3, 1200, 8, 8)


def test_default_layers_are_tensor_leaves_run_once(tmp_path):
    m = model()
    path = export(m, loader(images()), tmp_path / "d.h5")
    assert creation_order(path) == ["conv", "act", "block.0", "block.1", "pool", "flat", "head", "ids"]
    with pytest.warns(UserWarning, match="reused within one forward pass: relu"):
        path = export(model(Reuse), loader(torch.randn(8, 4)), tmp_path / "r.h5")
    assert creation_order(path) == ["fc", "out", "ids"]
    path = export(model(TupleOut), loader(torch.randn(8, 4)), tmp_path / "t.h5")
    assert creation_order(path) == ["fc", "ids"]


def test_float16_is_the_rounded_float32(tmp_path):
    m, x = model(), images()
    path = export(m, loader(x), tmp_path / "h.h5", layers=["block.?", "head"], dtype="float16")
    want = capture(m, x, ["block.0", "block.1", "head"])
    with h5py.File(path, "r") as f:
        assert f.attrs["dtype"] == "float16"
        for name, a in want.items():
            assert f[name].dtype == np.float16
            np.testing.assert_array_equal(f[name][()], a.astype(np.float16))
            assert not np.array_equal(f[name][()].astype(np.float32), a)  # it did round


def test_float16_overflow_names_the_module(tmp_path):
    m = nn.Sequential(nn.Linear(4, 4)).eval()
    with torch.no_grad():
        m[0].weight.fill_(1.0)  # each output 4e5: finite in float32, not in float16
    with pytest.raises(ExportError, match=r"module '0': values beyond float16's range"):
        export(m, loader(torch.full((4, 4), 1e5)), tmp_path / "o.h5", layers=["0"], dtype="float16")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_pooling_over_spatial_axes(tmp_path, pool):
    m, x = model(), images()
    path = export(m, loader(x), tmp_path / "p.h5", layers=["conv", "head"], pool=pool)
    want = capture(m, x, ["conv", "head"])
    with h5py.File(path, "r") as f:
        assert f.attrs["pool"] == pool and f["conv"].shape == (N, 4)
        assert f["conv"].attrs["output_shape"].tolist() == [4, 8, 8]
        ref = want["conv"].mean(axis=(2, 3)) if pool == "mean" else want["conv"].max(axis=(2, 3))
        np.testing.assert_allclose(f["conv"][()], ref, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(f["head"][()], want["head"])  # 2-D: untouched


def test_patterns_stay_within_a_name_part():
    m = model()
    assert select_modules(m, ["block*"]) == (["block"], True)
    assert select_modules(m, ["block.*", "h?ad"]) == (["block.0", "block.1", "head"], True)
    assert select_modules(m, ["**"])[0] == [n for n, _ in m.named_modules() if n]
    assert select_modules(m, ["block.[!0]"])[0] == ["block.1"]
    assert select_modules(m, None) == (["conv", "act", "block.0", "block.1", "pool", "flat", "head",
                                        "unused"], False)


def test_bad_names_and_patterns_name_what_exists(tmp_path):
    m = model()
    with pytest.raises(ValueError, match=r"pattern 'layer\*' matches no module name.*; modules: conv, act,"):
        export(m, loader(images()), tmp_path / "a.h5", layers=["head", "layer*"])
    with pytest.raises(ValueError, match=r"pattern 'blok.\*' matches no module name.*; closest: block"):
        export(m, loader(images()), tmp_path / "a.h5", layers=["blok.*"])
    with pytest.raises(ValueError, match=r"no module 'hed'; closest: head"):
        export(m, loader(images()), tmp_path / "a.h5", layers=["hed"])
    assert not os.listdir(tmp_path)


def test_module_that_never_ran(tmp_path):
    with pytest.raises(ExportError, match=r"module 'unused' did not run in the forward pass"):
        export(model(), loader(images()), tmp_path / "a.h5", layers=["head", "unused"])
    assert not os.listdir(tmp_path)


def test_non_tensor_output(tmp_path):
    with pytest.raises(ExportError, match=r"module 'pair' returned tuple \(0: Tensor \(8, 4\), 1: Tensor "
                                          r"\(8, 4\)\), not a tensor; choose one of its tensors with output="):
        export(model(TupleOut), loader(torch.randn(8, 4)), tmp_path / "a.h5", layers=["pair"])
    assert not os.listdir(tmp_path)


def test_module_run_twice_when_named(tmp_path):
    with pytest.raises(ExportError, match=r"module 'relu' ran 2 times in one forward pass"):
        export(model(Reuse), loader(torch.randn(8, 4)), tmp_path / "a.h5", layers=["relu", "out"])


def test_shape_change_between_batches(tmp_path):
    m = model()
    batches = [images(4, size=8), images(4, size=6)]
    with pytest.raises(ExportError, match=r"module 'conv': output shape \(4, 4, 6, 6\) in batch 1 differs"):
        export(m, batches, tmp_path / "a.h5", layers=["conv", "head"])
    assert not os.listdir(tmp_path)


def test_ids_from_a_field_a_key_or_a_callable(tmp_path):
    m, x = model(), images()
    ids = torch.arange(1000, 1000 + N)
    path = export(m, loader(x, ids), tmp_path / "f.h5", layers=["head"], ids=1)
    with h5py.File(path, "r") as f:
        assert f["ids"].dtype == np.int64 and f["ids"][()].tolist() == ids.tolist()
        assert f.attrs["ids_source"] == "given"
    dicts = [{"img": x[i:i + B], "key": ids[i:i + B]} for i in range(0, N, B)]
    path = export(m, dicts, tmp_path / "k.h5", layers=["head"], ids="key", inputs="img")
    with h5py.File(path, "r") as f:
        assert f["ids"][()].tolist() == ids.tolist()
    names = [f"img-{i:04d}.png" for i in range(N)]
    path = export(m, loader(x), tmp_path / "c.h5", layers=["head"],
                  ids=lambda batch: [names[int(i) - 100] for i in batch[1]])
    with h5py.File(path, "r") as f:
        assert h5py.check_string_dtype(f["ids"].dtype).encoding == "utf-8"
        assert f["ids"].asstr()[()].tolist() == names


def test_bad_ids(tmp_path):
    m, x = model(), images()
    with pytest.raises(ExportError, match="IDs must be integers or strings, got float32"):
        export(m, loader(x, torch.rand(N)), tmp_path / "a.h5", layers=["head"], ids=1)
    with pytest.raises(ExportError, match=r"ids=5: the batch \(list\) has no such field"):
        export(m, loader(x), tmp_path / "a.h5", layers=["head"], ids=5)
    assert not os.listdir(tmp_path)


def test_context_manager_for_a_custom_loop(tmp_path):
    m, x = model(), images()
    with Exporter(m, tmp_path / "cm.h5", layers=["act", "head"]) as ex:
        assert not torch.is_grad_enabled()
        for lo in range(0, N, B):
            m(x[lo:lo + B])
            ex.add_ids([f"s{i}" for i in range(lo, min(N, lo + B))])
    assert torch.is_grad_enabled()
    assert ex.n == N and ex.path == str(tmp_path / "cm.h5")
    assert [h for mod in m.modules() for h in mod._forward_hooks.values()] == []
    with h5py.File(ex.path, "r") as f:
        np.testing.assert_array_equal(f["head"][()], capture(m, x, ["head"])["head"])
        assert f["ids"].asstr()[-1] == f"s{N - 1}"


def test_context_manager_failures_leave_nothing(tmp_path):
    m, x = model(), images()
    with pytest.raises(ExportError, match=r"/ids has 8 entries but 16 examples"):
        with Exporter(m, tmp_path / "a.h5", layers=["head"]) as ex:
            m(x[:8])
            ex.add_ids(range(8))
            m(x[8:16])
    with pytest.raises(ExportError, match="never ran"):
        with Exporter(m, tmp_path / "a.h5", layers=["head"]):
            pass
    with pytest.raises(KeyboardInterrupt):
        with Exporter(m, tmp_path / "a.h5", layers=["head"]):
            m(x)
            raise KeyboardInterrupt
    assert not os.listdir(tmp_path)
    assert [h for mod in m.modules() for h in mod._forward_hooks.values()] == []
    assert not m._forward_pre_hooks


def test_training_mode_warns_and_is_kept(tmp_path):
    m = model().train()
    with pytest.warns(UserWarning, match="training mode"):
        export(m, loader(images()), tmp_path / "a.h5", layers=["head"])
    assert m.training


def test_shards_by_rank_and_world(tmp_path):
    m, x = model(), images()
    assert shard_path("acts/x.h5", 1, 4) == "acts/x-1-of-4.h5"
    assert shard_path("acts/x", 0, 2) == "acts/x-0-of-2.h5"
    paths = [export(m, loader(x[r::2]), tmp_path / "x.h5", layers=["head"], rank=r, world=2) for r in (0, 1)]
    assert sorted(os.listdir(tmp_path)) == ["x-0-of-2.h5", "x-1-of-2.h5"]
    for r, p in enumerate(paths):
        with h5py.File(p, "r") as f:
            assert (f.attrs["rank"], f.attrs["world"]) == (r, 2)
            assert f["head"].shape[0] == len(x[r::2])
    # Contiguous parts of a WithIndex dataset: the shards hold global indices.
    data = WithIndex(TensorDataset(x))
    for r in (0, 1):
        part = torch.utils.data.Subset(data, range(r * 20, min(N, (r + 1) * 20)))
        export(m, DataLoader(part, batch_size=B), tmp_path / "g.h5", layers=["head"], ids=-1, rank=r, world=2)
    got = []
    for r in (0, 1):
        with h5py.File(tmp_path / f"g-{r}-of-2.h5", "r") as f:
            got += f["ids"][()].tolist()
    assert got == list(range(N))
    with pytest.raises(ValueError, match="rank and world go together"):
        export(m, loader(x), tmp_path / "x.h5", rank=0)
    with pytest.raises(ValueError, match="0 <= rank < world"):
        export(m, loader(x), tmp_path / "x.h5", rank=2, world=2)


def test_shard_from_torch_distributed(tmp_path):
    dist = torch.distributed
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        path = export(model(), loader(images()), tmp_path / "out" / "d.h5", layers=["head"])
    finally:
        dist.destroy_process_group()
    assert path == str(tmp_path / "out" / "d-0-of-1.h5") and os.path.exists(path)


def test_bad_arguments(tmp_path):
    m = model()
    with pytest.raises(ValueError, match="dtype must be"):
        Exporter(m, tmp_path / "a.h5", dtype="float64")
    with pytest.raises(ValueError, match="pool must be"):
        Exporter(m, tmp_path / "a.h5", pool="avg")
    with pytest.raises(TypeError, match="pass inputs="):
        export(m, [{"x": images()}], tmp_path / "a.h5")


def test_a_call_that_did_not_return_ends_the_export(tmp_path):
    m, x = model(), images()
    with pytest.raises(ExportError, match="after a call that did not return"):
        with Exporter(m, tmp_path / "a.h5", layers=["head"]):
            m(x[:8])
            try:
                m(x[:8, :2])  # conv wants 3 channels: raises inside forward
            except RuntimeError:
                pass
            m(x[:8])
    assert not os.listdir(tmp_path)


def test_submodule_called_on_its_own(tmp_path):
    m, x = model(), images()
    with pytest.raises(ExportError, match="module 'head' ran outside a call of the model"):
        with Exporter(m, tmp_path / "a.h5", layers=["head"]):
            m.head(torch.randn(2, 24))
    assert not os.listdir(tmp_path)
