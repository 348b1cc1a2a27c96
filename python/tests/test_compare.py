"""mpicka.compare on tiny models in one process (no launcher): the matrix
against the float64 reference from the test's own hooks, the exporter's
module selection, and its errors naming the model, module and batch."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import mpicka
from mpicka import MpickaError
from reference import minibatch_cka

N, M = 100, 24


class To(torch.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, x):
        return x.to(self.dtype)


def mlp(seed, dtype=torch.float32):
    """Modules 1..5; module 0 casts the input to the model's dtype."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(To(dtype), torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8),
                               torch.nn.ReLU(), torch.nn.Linear(8, 3)).to(dtype)


def data(dtype=torch.float32):
    return TensorDataset(torch.randn(N, 6, generator=torch.Generator().manual_seed(5), dtype=dtype))


def captured(model, x, names):
    mods = dict(model.named_modules())
    got = {n: [] for n in names}
    hooks = [mods[n].register_forward_hook(lambda m, i, o, n=n: got[n].append(o.detach().numpy())) for n in names]
    try:
        with torch.no_grad():
            for lo in range(0, N, M):
                model(x[lo:lo + M])
    finally:
        for h in hooks:
            h.remove()
    return [np.concatenate(got[n]) for n in names]


def test_two_models_give_the_reference_in_forward_order():
    a, b = mlp(0), mlp(1, torch.float64)
    r = mpicka.compare({"a": a, "b": b}, data(), layers={"a": ["[1-3]", "5"], "b": "[35]"}, batch_size=M,
                       jackknife=0, plot=False)
    assert r.x_layers == ["1", "2", "3", "5"] and r.y_layers == ["3", "5"]
    x = data().tensors[0]
    ref = minibatch_cka(captured(a, x, ["1", "2", "3", "5"]), captured(b, x, ["3", "5"]), M)
    np.testing.assert_allclose(r.cka, ref, rtol=0, atol=1e-9)


def test_one_model_against_itself_from_a_sequential_dataloader():
    a = mlp(2)
    r = mpicka.compare({"a": a}, DataLoader(data(), batch_size=7), layers=["1", "4"], batch_size=M, plot=False)
    x = data().tensors[0]
    acts = captured(a, x, ["1", "4"])
    np.testing.assert_allclose(r.cka, minibatch_cka(acts, acts, M), rtol=0, atol=1e-9)
    assert r.stderr is not None and r.path == ""


def test_the_models_are_left_in_their_modes():
    a = mlp(0).train()
    a[2].eval()
    mpicka.compare({"a": a}, data(), layers=["1"], batch_size=M, plot=False, jackknife=0)
    assert [m.training for m in a] == [True, True, False, True, True, True]


class Grows(torch.nn.Module):
    """Its output widens from the third call on."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x if self.calls < 3 else torch.cat([x, x], 1)


def test_a_shape_that_changes_names_model_module_and_batch():
    g = torch.nn.Sequential(torch.nn.Linear(6, 3), Grows())
    with pytest.raises(Exception, match=r"model 'g', module '1': output shape \(24, 6\) in batch 2 differs"):
        mpicka.compare({"a": mlp(0), "g": g}, data(), layers={"a": ["0"], "g": ["1"]}, batch_size=M)


def test_a_module_that_does_not_exist_is_the_exporters_error():
    with pytest.raises(ValueError, match=r"the model has no module 'fc'"):
        mpicka.compare({"a": mlp(0)}, data(), layers=["fc"], batch_size=M)


def test_nan_in_a_batch_names_model_module_and_batch():
    class NaNAt(torch.nn.Module):
        calls = 0

        def forward(self, x):
            NaNAt.calls += 1
            return x if NaNAt.calls != 2 else x * float("nan")
    m = torch.nn.Sequential(torch.nn.Linear(6, 3), NaNAt())
    with pytest.raises(Exception, match=r"model 'b'.*module '1'.*NaN or Inf.*batch 1"):
        mpicka.compare({"a": mlp(0), "b": m}, data(), layers={"a": ["0"], "b": ["1"]}, batch_size=M)


def test_a_shuffled_loader_is_refused():
    with pytest.raises(ValueError, match=r"RandomSampler.*by index"):
        mpicka.compare({"a": mlp(0)}, DataLoader(data(), shuffle=True), layers=["0"], batch_size=M)


def test_config_errors_come_from_the_library():
    with pytest.raises(MpickaError, match=r"estimator"):
        mpicka.compare({"a": mlp(0)}, data(), layers=["0"], batch_size=M, estimator="cubic")
