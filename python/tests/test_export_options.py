"""mpicka.export's IDs and options on small models: the default input-hash
IDs (another order or other augmentations disagree, the batching does not
matter), the loader warnings, and every error message of the options
(pool, pool_dims, token, tokens_as_examples, output, transform, mask)."""

import h5py
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from mpicka.export import INPUT_HASH, RUNNING_INDEX, Exporter, ExportError, export


def ids_of(path):
    with h5py.File(path, "r") as f:
        return f["ids"][()].tolist(), f.attrs["ids_source"], list(f)


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).eval()


X = torch.randn(20, 4, generator=torch.Generator().manual_seed(1))


# ---- IDs ---------------------------------------------------------------------------

def test_hash_ids_follow_the_examples_not_the_batches(tmp_path):
    a = ids_of(export(mlp(0), DataLoader(X, batch_size=8), tmp_path / "a.h5"))
    b = ids_of(export(mlp(1), DataLoader(X, batch_size=5), tmp_path / "b.h5", ids=INPUT_HASH))
    assert a[0] == b[0] and a[1] == "input hash" and len(set(a[0])) == 20
    assert all(0 <= i < 2**63 for i in a[0])
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(2))
    c = ids_of(export(mlp(1), DataLoader(X[perm], batch_size=8), tmp_path / "c.h5"))
    assert c[0] == [a[0][i] for i in perm.tolist()]
    # The dtype and the per-example shape are part of an example's hash.
    d = ids_of(export(mlp(1), DataLoader(X.double(), batch_size=8), tmp_path / "d.h5",
                      inputs=lambda x: x.float(), layers=["0"]))
    assert d[0] == a[0]   # the hash is of what the model is given: float32 again
    flat = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).eval()
    e = ids_of(export(flat, DataLoader(X.reshape(20, 2, 2), batch_size=8), tmp_path / "e.h5"))
    assert not set(e[0]) & set(a[0])


class Augmented(Dataset):
    """Each item gets fresh random noise, as a random augmentation would."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return X[i] + 0.01 * torch.randn(4)


def test_random_augmentations_give_other_ids(tmp_path):
    ids = []
    for k, seed in enumerate([10, 11, 10]):
        m = mlp()
        torch.manual_seed(seed)   # the augmentations' random state
        ids.append(ids_of(export(m, DataLoader(Augmented(), batch_size=4), tmp_path / f"{k}.h5"))[0])
    assert not set(ids[0]) & set(ids[1])
    assert ids[0] == ids[2]   # the same augmentations: the same inputs


def test_a_random_sampler_draws_a_warning(tmp_path):
    with pytest.warns(UserWarning, match=r"the loader draws its examples in random order \(RandomSampler; "
                                         r"shuffle=True\?\).*use shuffle=False for both models"):
        export(mlp(), DataLoader(X, batch_size=8, shuffle=True), tmp_path / "a.h5")
    sampler = torch.utils.data.SubsetRandomSampler(range(10))
    with pytest.warns(UserWarning, match=r"random order \(SubsetRandomSampler.*checked by the IDs you give"):
        export(mlp(), DataLoader(TensorDataset(X, torch.arange(20)), batch_size=8, sampler=sampler),
               tmp_path / "b.h5", ids=1)
    with pytest.warns(UserWarning, match=r"checked by nothing: the running index cannot tell"):
        export(mlp(), DataLoader(X, batch_size=8, shuffle=True), tmp_path / "c.h5", ids=RUNNING_INDEX)


def test_running_index_and_given_ids(tmp_path):
    ids, source, _ = ids_of(export(mlp(), DataLoader(X, batch_size=8), tmp_path / "a.h5", ids=RUNNING_INDEX))
    assert ids == list(range(20)) and source == "running index"
    m = mlp()
    with Exporter(m, tmp_path / "b.h5") as ex:   # the hash of batch 0 is replaced by the IDs given after it
        m(X[:8])
        ex.add_ids(range(100, 108))
        m(X[8:])
        ex.add_ids(range(108, 120))
    ids, source, names = ids_of(ex.path)
    assert ids == list(range(100, 120)) and source == "given" and names[-1] == "ids"
    with pytest.raises(TypeError, match=r"Exporter\(ids=...\) takes INPUT_HASH or RUNNING_INDEX; give a batch's "
                                        r"IDs with add_ids"):
        Exporter(m, tmp_path / "c.h5", ids=1)


class Keywords(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x=None):
        return self.fc(x)


def test_a_model_called_by_keyword_falls_back_to_the_index(tmp_path):
    m = Keywords().eval()
    with pytest.warns(UserWarning, match="called without a positional tensor.*running index"):
        with Exporter(m, tmp_path / "a.h5", layers=["fc"]) as ex:
            m(x=X[:8])
            m(x=X[8:])
    assert ids_of(ex.path)[:2] == (list(range(20)), "running index")


# ---- errors of the options ------------------------------------------------------------

class Seq(nn.Module):
    """(N, T, D) and (N, D) outputs, a tuple, a dict and a 4-D map."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 6)
        self.norm = nn.LayerNorm(6)
        self.rnn = nn.GRU(6, 6, batch_first=True)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        h = self.norm(self.proj(x))
        out, _ = self.rnn(h)
        return self.head(out[:, -1])


def seqs(n=4, t=5, seed=3):
    return torch.randn(n, t, 4, generator=torch.Generator().manual_seed(seed))


def refused(tmp_path, match, batches=None, exc=ExportError, **kw):
    torch.manual_seed(0)
    with pytest.raises(exc, match=match):
        export(Seq().eval(), batches if batches is not None else [seqs()], tmp_path / "a.h5", **kw)
    assert not list(tmp_path.iterdir())


def test_bad_option_values(tmp_path):
    refused(tmp_path, r"pool must be None, 'mean' or 'max', got 'avg' \(layer 'norm'\)", exc=ValueError,
            layers=["norm"], pool={"norm": "avg"})
    refused(tmp_path, r"pool_dims=1 without pool", exc=ValueError, layers=["norm"], pool_dims=1)
    refused(tmp_path, r"pool_dims=1 without pool: give pool='mean' or 'max' \(layer 'norm'\)", exc=ValueError,
            layers=["norm", "proj"], pool={"proj": "mean"}, pool_dims={"norm": 1, "proj": 1})
    refused(tmp_path, r"pool_dims: a dim or a tuple of dims \(ints\), got 'tokens'", exc=TypeError,
            layers=["norm"], pool="mean", pool_dims="tokens")
    refused(tmp_path, r"token must be 'cls', 'first', 'last' or an index, got 'end'", exc=ValueError,
            layers=["norm"], token="end")
    refused(tmp_path, r"token='cls' and pool='mean' both reduce the tokens", exc=ValueError,
            layers=["norm"], token="cls", pool="mean")
    refused(tmp_path, r"tokens_as_examples keeps every token: it takes neither pool nor token", exc=ValueError,
            layers=["norm"], tokens_as_examples=True, pool="mean")
    refused(tmp_path, r"output: an index, a key or a callable, got 1.5", exc=TypeError, layers=["rnn"], output=1.5)
    refused(tmp_path, r"transform: a callable \(tensor -> tensor\), got 3", exc=TypeError, layers=["rnn"],
            transform=3)
    refused(tmp_path, r"token: 'nrom' names none of the exported layers; closest: norm", exc=ValueError,
            layers=["norm"], token={"nrom": "cls"})


def test_ambiguous_or_impossible_reductions(tmp_path):
    refused(tmp_path, r"module 'norm' \(LayerNorm\): pool='mean' on output \(N, 5, 6\), which is not obviously a "
                      r"conv map", layers=["norm"], pool="mean")
    refused(tmp_path, r"module 'proj' \(Linear\): pool='max' on output \(N, 5, 6\)", layers=["proj"], pool="max")
    refused(tmp_path, r"module 'norm': pool_dims=\(3,\) do not fit its 3-D output \(dims 1..2; dim 0 is the batch\)",
            layers=["norm"], pool="mean", pool_dims=3)
    refused(tmp_path, r"module 'norm': pool_dims=\(0,\) do not fit", layers=["norm"], pool="mean", pool_dims=0)
    refused(tmp_path, r"module 'norm': pool_dims=\(1, -2\) names a dim twice", layers=["norm"], pool="mean",
            pool_dims=(1, -2))
    refused(tmp_path, r"module 'norm': token=7 is beyond its 5 tokens", layers=["norm"], token=7)
    refused(tmp_path, r"module 'norm': token='cls' takes a token of an \(N, T, D\) output, got \(N, 5, 2, 3\)",
            layers=["norm"], token="cls", transform=lambda t: t.reshape(4, 5, 2, 3))
    refused(tmp_path, r"module 'head': tokens_as_examples needs \(N, T, D\) outputs, got \(N, 2\)",
            layers=["norm", "head"], tokens_as_examples=True)


def test_tuple_outputs_and_transforms(tmp_path):
    refused(tmp_path, r"module 'rnn' returned tuple \(0: Tensor \(4, 5, 6\), 1: Tensor \(1, 4, 6\)\), not a tensor; "
                      r"choose one of its tensors with output=", layers=["rnn"])
    refused(tmp_path, r"module 'rnn': output=2 is beyond its tuple \(0: Tensor", layers=["rnn"], output=2)
    refused(tmp_path, r"module 'rnn': output='h' cannot choose from its tuple .*an index for a tuple or list, a key "
                      r"for a dict", layers=["rnn"], output="h")
    refused(tmp_path, r"module 'rnn': output='<lambda>' gave list, not a tensor", layers=["rnn"],
            output=lambda out: list(out))
    refused(tmp_path, r"module 'norm': transform gave tuple, not a tensor", layers=["norm"],
            transform=lambda t: (t,))
    refused(tmp_path, r"module 'norm': output has 5 rows but the batch has 4 examples .*transform=lambda t: "
                      r"t.transpose\(0, 1\)", layers=["norm"], transform=lambda t: t.transpose(0, 1))


def test_dict_outputs(tmp_path):
    class Dicts(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return {"hidden": self.fc(x), "extra": [x]}

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = Dicts()

        def forward(self, x):
            return self.body(x)["hidden"]

    m = Wrap().eval()
    path = export(m, [X[:8], X[8:]], tmp_path / "d.h5", ["body"], output="hidden")
    with h5py.File(path, "r") as f, torch.no_grad():
        np.testing.assert_array_equal(f["body"][()], m.body.fc(X).numpy())
    with pytest.raises(ExportError, match=r"module 'body': output='hid' is not a key of its dict \('hidden': "
                                          r"Tensor \(8, 3\), 'extra': list\)"):
        export(m, [X[:8]], tmp_path / "e.h5", ["body"], output="hid")
    with pytest.raises(ExportError, match=r"module 'body': output='extra' is list \(0: Tensor \(8, 4\)\), not a "
                                          r"tensor; choose deeper with a callable"):
        export(m, [X[:8]], tmp_path / "e.h5", ["body"], output="extra")


def padded(lengths, t=5):
    return torch.arange(t)[None, :] >= torch.tensor(lengths)[:, None]


def test_masks(tmp_path):
    x = seqs()
    mask = padded([5, 2, 3, 1])
    refused(tmp_path, r"mask: a bool tensor \(N, T\), True at padding \(as PyTorch's src_key_padding_mask\), got "
                      r"torch.int64; for an attention mask that is 1 at real tokens, give attention_mask == 0",
            batches=[(x, (~mask).long())], mask=1, layers=["norm"], pool="mean", pool_dims=1)
    refused(tmp_path, r"mask: a bool tensor \(N, T\), True at padding, got shape \(4,\)",
            batches=[(x, mask[:, 0])], mask=1, layers=["norm"], pool="mean", pool_dims=1)
    refused(tmp_path, r"batch 0: the padding mask has 3 rows but the batch has 4 examples",
            batches=[(x, mask[:3])], mask=1, layers=["norm"], pool="mean", pool_dims=1)
    refused(tmp_path, r"module 'norm': output \(4, 5, 6\) does not fit the padding mask \(4, 4\)",
            batches=[(x, mask[:, :4])], mask=1, layers=["norm"], pool="mean", pool_dims=1)
    refused(tmp_path, r"module 'norm': output \(N, 5, 6\) would be stored whole, its padded positions included, "
                      r"but mask= marks padding", batches=[(x, mask)], mask=1, layers=["norm"])
    refused(tmp_path, r"module 'norm': mask= marks padding tokens on dim 1, but pool_dims \[2\] leaves dim 1 whole",
            batches=[(x, mask)], mask=1, layers=["norm"], pool="mean", pool_dims=2)
    refused(tmp_path, r"module 'norm': token=3 is padding in example 1 of batch 0; take token='last'",
            batches=[(x, mask)], mask=1, layers=["norm"], token=3)
    refused(tmp_path, r"module 'norm': batch 0 has an example that is all padding",
            batches=[(x, padded([5, 0, 3, 1]))], mask=1, layers=["norm"], pool="max", pool_dims=1)
    refused(tmp_path, r"mask=2: the batch \(tuple\) has no such field", batches=[(x, mask)], mask=2,
            layers=["norm"], pool="mean", pool_dims=1)


def test_variable_length_without_a_mask_says_what_to_do(tmp_path):
    refused(tmp_path, r"module 'norm': output shape \(4, 7, 6\) in batch 1 differs from \('n', 5, 6\) before; "
                      r"tokens of variable length\? pool over them \(pool='mean', pool_dims=1\) with the padding "
                      r"mask \(mask=\)", batches=[seqs(t=5), seqs(t=7)], layers=["norm"])


def test_a_nested_tensor_needs_the_mask(tmp_path):
    class Nested(nn.Module):
        def forward(self, x):
            return torch.nested.nested_tensor([r for r in x])

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Nested()

        def forward(self, x):
            self.inner(x)
            return x

    with pytest.raises(ExportError, match=r"module 'inner' returned a nested tensor .*pass the padding mask with "
                                          r"mask="):
        export(Outer().eval(), [seqs()], tmp_path / "n.h5", ["inner"], pool="mean", pool_dims=1)


def test_conv1d_maps_pool_without_dims(tmp_path):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv1d(4, 6, 3), nn.ReLU()).eval()
    x = torch.randn(5, 4, 10)
    path = export(m, [x], tmp_path / "c.h5", pool="mean")
    with h5py.File(path, "r") as f, torch.no_grad():
        ref = torch.relu(m[0](x)).double().numpy()
        np.testing.assert_allclose(f["1"][()], ref.mean(axis=2), rtol=2e-6, atol=1e-7)
        assert f["0"].attrs["reduction"] == "mean over dims [2]"


def test_token_and_id_errors_of_tokens(tmp_path):
    x = seqs()
    refused(tmp_path, r"module 'norm': batch 0 has an example that is all padding",
            batches=[(x, padded([5, 0, 3, 1]))], mask=1, layers=["norm"], token="last")
    torch.manual_seed(0)
    m = Seq().eval()
    with pytest.raises(ExportError, match=r"batch 0: with tokens_as_examples, call add_ids before the batch's "
                                          r"call or right after it"):
        with Exporter(m, tmp_path / "a.h5", ["norm"], tokens_as_examples=True) as ex:
            m(x)
            m(x)
            ex.add_ids(range(4))
    assert not list(tmp_path.iterdir())


def test_a_later_call_by_keyword_cannot_be_hashed(tmp_path):
    m = Keywords().eval()
    with pytest.raises(ExportError, match=r"batch 1: the model's first positional argument holds no tensor, so its "
                                          r"input cannot be hashed as the earlier batches' were; give IDs"):
        with Exporter(m, tmp_path / "a.h5", layers=["fc"]):
            m(X[:8])
            m(x=X[8:])
    assert not list(tmp_path.iterdir())
