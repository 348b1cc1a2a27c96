"""mpicka.export on transformers and recurrent models (issue 21): torchvision's
ViT-B/16 and Swin-T at small image sizes, nn.TransformerEncoder with and
without a padding mask and with PyTorch's inference fast path on and off, and
nn.LSTM. Every dataset written is compared with the outputs this test's own
forward hooks collect, reduced here in float64 numpy from the definition
(masked means over the valid tokens, the CLS or last valid token, every valid
token as a row)."""

import hashlib

import h5py
import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from mpicka.export import ExportError, export

RTOL, ATOL = 2e-5, 2e-6   # float32 reductions against float64 ones


def hooked(model, names, run, pick=lambda name, out: out):
    """Runs run() with hooks of this test's own on the named modules; returns
    each module's outputs (one per call, after pick) as float64 arrays, a
    nested tensor as the list of its examples."""
    mods = dict(model.named_modules())
    got = {n: [] for n in names}

    def keep(n, out):
        t = pick(n, out).detach()
        got[n].append([u.double().numpy() for u in t.unbind()] if t.is_nested else t.double().numpy())
    handles = [mods[n].register_forward_hook(lambda m, i, o, n=n: keep(n, o)) for n in names]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return got


def read(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}, dict(f.attrs)


def close(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), b, rtol=RTOL, atol=ATOL)


# ---- ViT-B/16 and Swin-T ---------------------------------------------------------

def images(n, size=32, seed=1):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def no_grad_batches(model, batches):
    def run():
        with torch.no_grad():
            for b in batches:
                model(b)
    return run


VIT = ["conv_proj", "encoder.layers.encoder_layer_0.self_attention", "encoder.layers.encoder_layer_0",
       "encoder.layers.encoder_layer_1", "encoder.ln", "heads.head"]


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return torchvision.models.vit_b_16(image_size=32).eval()   # 2x2 patches + CLS: 5 tokens of 768


def test_vit_tokens_pools_and_tuple_outputs(tmp_path, vit):
    x = images(10)
    batches = [x[:4], x[4:]]
    attn = "encoder.layers.encoder_layer_0.self_attention"
    path = export(vit, batches, tmp_path / "v.h5", VIT,
                  output={attn: 0},   # nn.MultiheadAttention returns (out, weights)
                  pool={"conv_proj": "mean", attn: "max", "encoder.layers.encoder_layer_1": "mean"},
                  pool_dims={attn: 1, "encoder.layers.encoder_layer_1": 1},
                  token={"encoder.layers.encoder_layer_0": "cls", "encoder.ln": "last"})
    got, attrs = read(path)
    own = hooked(vit, VIT, no_grad_batches(vit, batches), lambda n, o: o[0] if n == attn else o)
    cat = {n: np.concatenate(v) for n, v in own.items()}
    assert cat["encoder.layers.encoder_layer_0"].shape == (10, 5, 768)
    close(got["conv_proj"], cat["conv_proj"].mean(axis=(2, 3)))          # a conv map: (N, C, H, W)
    close(got[attn], cat[attn].max(axis=1))
    close(got["encoder.layers.encoder_layer_0"], cat["encoder.layers.encoder_layer_0"][:, 0])
    close(got["encoder.layers.encoder_layer_1"], cat["encoder.layers.encoder_layer_1"].mean(axis=1))
    close(got["encoder.ln"], cat["encoder.ln"][:, -1])
    close(got["heads.head"], cat["heads.head"])
    with h5py.File(path, "r") as f:
        assert f["encoder.layers.encoder_layer_1"].attrs["reduction"] == "mean over dims [1]"
        assert f["encoder.layers.encoder_layer_0"].attrs["output_shape"].tolist() == [5, 768]
    assert attrs["pool"] == "per layer" and attrs["n"] == 10


def test_vit_pooling_without_dims_asks(tmp_path, vit):
    with pytest.raises(ExportError, match=r"module 'encoder.layers.encoder_layer_0' \(EncoderBlock\): "
                                          r"pool='mean' on output \(N, 5, 768\), which is not obviously a conv "
                                          r"map .* tokens \(N, T, D\): pool_dims=1"):
        export(vit, [images(2)], tmp_path / "v.h5", ["encoder.layers.encoder_layer_0"], pool="mean")
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def swin():
    torch.manual_seed(0)
    return torchvision.models.swin_t().eval()


def test_swin_channels_last_maps(tmp_path, swin):
    x = images(6)
    names = ["features.0", "features.1", "features.3", "norm", "permute", "avgpool", "head"]
    path = export(swin, [x[:3], x[3:]], tmp_path / "s.h5", names, pool="mean",
                  pool_dims={"features.*": (1, 2), "norm": (1, 2), "permute": (2, 3)})
    got, _ = read(path)
    own = {n: np.concatenate(v) for n, v in hooked(swin, names, no_grad_batches(swin, [x[:3], x[3:]])).items()}
    assert own["features.1"].shape == (6, 8, 8, 96)   # (N, H, W, C)
    for n in ["features.0", "features.1", "features.3", "norm"]:
        close(got[n], own[n].mean(axis=(1, 2)))
    close(got["permute"], own["permute"].mean(axis=(2, 3)))
    close(got["avgpool"], own["avgpool"].mean(axis=(2, 3)))   # AdaptiveAvgPool2d: obviously (N, C, H, W)
    close(got["head"], own["head"])


def test_swin_tokens_as_examples(tmp_path, swin):
    x = images(4)
    path = export(swin, [x[:2], x[2:]], tmp_path / "t.h5", ["features.1"], tokens_as_examples=True,
                  transform=lambda t: t.flatten(1, 2))        # (N, 8, 8, 96) -> (N, 64, 96)
    got, attrs = read(path)
    own = np.concatenate(hooked(swin, ["features.1"], no_grad_batches(swin, [x[:2], x[2:]]))["features.1"])
    close(got["features.1"], own.reshape(4 * 64, 96))
    assert attrs["n"] == 256 and attrs["examples"] == 4 and attrs["tokens_as_examples"]
    assert got["ids"].tolist() == [token_hash(e, t) for e in input_hash(x) for t in range(64)]


def test_swin_pooling_without_dims_asks(tmp_path, swin):
    with pytest.raises(ExportError, match=r"module 'features.1' \(Sequential\): pool='max' on output "
                                          r"\(N, 8, 8, 96\), which is not obviously a conv map.*channels last "
                                          r"\(N, H, W, C\): pool_dims=\(1, 2\)"):
        export(swin, [images(2)], tmp_path / "s.h5", ["features.1", "avgpool"], pool="max")


def test_tokens_as_examples_needs_the_same_tokens(tmp_path, swin):
    with pytest.raises(ExportError, match=r"module 'features.3' keeps 32 tokens of batch 0 but module "
                                          r"'features.1' keeps 128: tokens_as_examples needs the same tokens"):
        export(swin, [images(2)], tmp_path / "s.h5", ["features.1", "features.3"], tokens_as_examples=True,
               transform=lambda t: t.flatten(1, 2))


def test_cnn_pooling_is_as_before(tmp_path):
    """A ResNet's (N, C, H, W) outputs are pooled without pool_dims, every
    leaf included (ReLU and max pooling in a model of convolutions)."""
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=4).eval()
    x = images(6, size=16)
    with pytest.warns(UserWarning, match="reused within one forward pass: layer1.0.relu"):
        path = export(m, [x], tmp_path / "r.h5", pool="mean")
    got, _ = read(path)
    names = [k for k in got if k != "ids"]
    assert {"relu", "maxpool", "layer4.1.bn2", "avgpool", "fc"} <= set(names)
    own = hooked(m, names, no_grad_batches(m, [x]))
    for n in names:
        a = own[n][0]
        close(got[n], a.mean(axis=tuple(range(2, a.ndim))) if a.ndim > 2 else a)


# ---- nn.TransformerEncoder, padding masks, the fast path ---------------------------------

class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Linear(8, 16)
        layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.1, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(16, 3)

    def forward(self, x, pad=None):
        return self.head(self.enc(self.emb(x), src_key_padding_mask=pad)[:, 0])


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return Encoder().eval()


def sequences(lengths, width, seed):
    """A batch of sequences padded at the end to `width`, with its mask."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), width, 8, generator=g)
    pad = torch.arange(width)[None, :] >= torch.tensor(lengths)[:, None]
    return x, pad


BATCHES = [sequences([5, 3, 6, 2], 6, 1), sequences([9, 4, 7], 9, 2), sequences([1, 8, 8, 3, 2], 8, 3)]
LAYERS = ["enc.layers.0", "enc.layers.1", "enc.layers.0.linear1"]


def own_encoder(model, names, masked, fast):
    """This test's own hooks over BATCHES; the slow path with gradients on."""
    def run():
        with torch.set_grad_enabled(not fast):
            for x, pad in BATCHES:
                model(x.detach().requires_grad_(not fast), pad if masked else None)
    return hooked(model, names, run)


def masked_mean(batches, masks):
    return np.concatenate([[a[i][~m[i]].mean(axis=0) for i in range(len(m))] for a, m in zip(batches, masks)])


@pytest.mark.parametrize("fast", [True, False], ids=["fastpath", "slowpath"])
def test_encoder_with_a_padding_mask(tmp_path, encoder, fast):
    names = LAYERS if not fast else LAYERS[:2]   # the fast path never runs linear1
    pool = {"enc.layers.0": "mean", "enc.layers.0.linear1": "max"} if not fast else {"enc.layers.0": "mean"}
    path = export(encoder, BATCHES, tmp_path / "e.h5", names, inputs=lambda b: (b[0], b[1]), mask=1,
                  pool=pool, pool_dims=1,
                  token={"enc.layers.1": "last"}, fastpath=fast)
    got, _ = read(path)
    own = own_encoder(encoder, LAYERS, masked=True, fast=fast)
    assert bool(own["enc.layers.0.linear1"]) != fast       # the fast path skips the submodules
    masks = [pad.numpy() for _, pad in BATCHES]
    if fast:   # nested tensors: one (length, 16) array per example
        own = {n: [np.stack([np.pad(e, ((0, m.shape[1] - len(e)), (0, 0))) for e in b]) for b, m in zip(v, masks)]
               for n, v in own.items() if v}
    close(got["enc.layers.0"], masked_mean(own["enc.layers.0"], masks))
    last = [(~m).sum(axis=1) - 1 for m in masks]
    close(got["enc.layers.1"], np.concatenate([a[np.arange(len(i)), i] for a, i in zip(own["enc.layers.1"], last)]))
    if not fast:
        close(got["enc.layers.0.linear1"], np.concatenate(
            [[a[i][~m[i]].max(axis=0) for i in range(len(m))] for a, m in zip(own["enc.layers.0.linear1"], masks)]))
    with h5py.File(path, "r") as f:
        assert f["enc.layers.0"].attrs["output_shape"].tolist() == [-1, 16]   # 6, 9 and 8 tokens
        assert f["enc.layers.0"].attrs["reduction"] == "mean over dims [1], padding masked"


@pytest.mark.parametrize("fast", [True, False], ids=["fastpath", "slowpath"])
def test_encoder_without_a_mask(tmp_path, encoder, fast):
    x = torch.randn(7, 5, 8, generator=torch.Generator().manual_seed(4))
    names = LAYERS[:2] if fast else LAYERS
    path = export(encoder, [x[:4], x[4:]], tmp_path / "e.h5", names, pool="mean", pool_dims=1, fastpath=fast)
    got, _ = read(path)

    def run():
        with torch.set_grad_enabled(not fast):
            encoder(x[:4].detach().requires_grad_(not fast))
            encoder(x[4:].detach().requires_grad_(not fast))
    own = {n: np.concatenate(v) for n, v in hooked(encoder, names, run).items()}
    for n in names:
        close(got[n], own[n].mean(axis=1))


def test_fast_path_named_when_a_submodule_did_not_run(tmp_path, encoder):
    with pytest.raises(ExportError, match=r"module 'enc.layers.0.linear1' did not run in the forward pass; "
                                          r"it is inside 'enc.layers.0' \(TransformerEncoderLayer\), which "
                                          r"PyTorch's inference fast path .* fastpath=False"):
        export(encoder, [torch.randn(2, 5, 8)], tmp_path / "f.h5", LAYERS)
    assert not list(tmp_path.iterdir())


def test_fast_path_kept_by_frozen_weights_and_integer_inputs(tmp_path):
    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 16)
            self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 1)

        def forward(self, ids):
            return self.enc(self.emb(ids))

    torch.manual_seed(0)
    m = Tokens().eval().requires_grad_(False)
    ids = torch.randint(0, 10, (3, 4))
    with pytest.raises(ExportError, match=r"module 'enc.layers.0.linear1' did not run .*fast path ran although "
                                          r"fastpath=False: .*call model.requires_grad_\(True\)"):
        export(m, [ids], tmp_path / "f.h5", ["enc.layers.0.linear1"], fastpath=False)
    path = export(m.requires_grad_(True), [ids], tmp_path / "g.h5", ["enc.layers.0.linear1"], fastpath=False,
                  pool="mean", pool_dims=1)
    own = hooked(m, ["enc.layers.0.linear1"], lambda: m(ids))["enc.layers.0.linear1"][0]   # gradients on
    close(read(path)[0]["enc.layers.0.linear1"], own.mean(axis=1))


def test_encoder_default_layers_say_what_the_fast_path_skipped(tmp_path, encoder):
    x = torch.randn(4, 5, 8)
    with pytest.warns(UserWarning, match=r"skipped modules that did not run in the forward pass: "
                                         r"enc.layers.0.self_attn.out_proj, .*inside 'enc.layers.0' "
                                         r"\(TransformerEncoderLayer\), which PyTorch's inference fast path"):
        path = export(encoder, [x], tmp_path / "e.h5", token="cls")
    assert set(read(path)[0]) == {"emb", "head", "ids"}
    with pytest.warns(UserWarning, match=r"'enc.layers.0.self_attn.out_proj' is never called: "
                                         r"nn.MultiheadAttention uses its weights directly; export the attention "
                                         r"module 'enc.layers.0.self_attn' with output="):
        path = export(encoder, [x], tmp_path / "s.h5", token="cls", fastpath=False)
    assert "enc.layers.1.linear2" in read(path)[0]


def test_encoder_tokens_as_examples_with_a_mask(tmp_path, encoder):
    names = ["emb", "enc.layers.1"]
    path = export(encoder, BATCHES, tmp_path / "t.h5", names, inputs=lambda b: (b[0], b[1]), mask=1,
                  tokens_as_examples=True, fastpath=False)
    given = export(encoder, [(x, pad, torch.arange(len(x)) + 10 * k) for k, (x, pad) in enumerate(BATCHES)],
                   tmp_path / "g.h5", names, inputs=lambda b: (b[0], b[1]), mask=1, ids=2,
                   tokens_as_examples=True, fastpath=False)
    got, attrs = read(path)
    own = own_encoder(encoder, names, masked=True, fast=False)
    masks = [pad.numpy() for _, pad in BATCHES]
    for n in names:
        close(got[n], np.concatenate([a[~m] for a, m in zip(own[n], masks)]))
    lengths = [len(r) - r.sum() for m in masks for r in m]
    assert attrs["n"] == sum(lengths) == 58 and attrs["examples"] == 12
    hashes = [h for x, _ in BATCHES for h in input_hash(x)]
    assert got["ids"].tolist() == [token_hash(h, t) for h, n in zip(hashes, lengths) for t in range(n)]
    with h5py.File(given, "r") as f:
        keys = [10 * k + i for k, (x, _) in enumerate(BATCHES) for i in range(len(x))]
        assert f["ids"].asstr()[()].tolist() == [f"{e}#{t}" for e, n in zip(keys, lengths) for t in range(n)]


# ---- nn.LSTM: a tuple output ---------------------------------------------------

class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Linear(4, 8)
        self.lstm = nn.LSTM(8, 12, num_layers=2, batch_first=True)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        out, (h, c) = self.lstm(self.emb(x))
        return self.head(out[:, -1])


def test_lstm_output_element(tmp_path):
    torch.manual_seed(0)
    m = Recurrent().eval()
    x = torch.randn(9, 7, 4, generator=torch.Generator().manual_seed(5))
    batches = [x[:5], x[5:]]
    path = export(m, batches, tmp_path / "l.h5", ["lstm", "head"], output={"lstm": 0}, token="last")
    got, _ = read(path)
    own = {n: np.concatenate(v) for n, v in hooked(m, ["lstm", "head"], no_grad_batches(m, batches),
                                                   lambda n, o: o[0] if n == "lstm" else o).items()}
    close(got["lstm"], own["lstm"][:, -1])
    close(got["head"], own["head"])
    path = export(m, batches, tmp_path / "h.h5", ["lstm"], output=lambda out: out[1][0][-1])   # h_n, last layer
    hn = np.concatenate(hooked(m, ["lstm"], no_grad_batches(m, batches), lambda n, o: o[1][0][-1])["lstm"])
    close(read(path)[0]["lstm"], hn)


def test_lstm_default_layers_name_the_tuple(tmp_path):
    torch.manual_seed(0)
    m = Recurrent().eval()
    with pytest.warns(UserWarning, match=r"skipped modules whose output is not a tensor: lstm \(tuple \(0: Tensor "
                                         r"\(2, 7, 12\), 1: tuple\)\); choose a tensor of theirs with output="):
        path = export(m, [torch.randn(2, 7, 4)], tmp_path / "l.h5", token="last")
    assert set(read(path)[0]) == {"emb", "head", "ids"}
    path = export(m, [torch.randn(2, 7, 4)], tmp_path / "o.h5", output=0, token="last")
    assert set(read(path)[0]) == {"emb", "lstm", "head", "ids"}


# ---- the IDs of tokens ------------------------------------------------------------

def input_hash(x):
    head = f"{x.dtype}{tuple(x.shape[1:])}".encode()
    return [int.from_bytes(hashlib.blake2b(head + r.numpy().tobytes(), digest_size=8).digest(), "little") >> 1
            for r in x]


def token_hash(example, position):
    raw = example.to_bytes(8, "little") + position.to_bytes(8, "little")
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little") >> 1
