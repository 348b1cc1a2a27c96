"""The models and data of the in-process tests (issue 20, "Done when"),
shared by the tests and by inprocess_worker.py, which runs one process of a
multi-process compare: torchvision ResNet-18s with random weights (seeds 0,
1, 2) on 512 fixed random 3x32x32 images, 4 layers each."""

import torch
import torchvision
from torch.utils.data import TensorDataset

N, M = 512, 128
LAYERS = ["layer1", "layer2", "layer3", "layer4"]
# Jackknife and permutations: /cka_stderr and /cka_pvalue must match too.
CONFIG = {"batch_size": M, "jackknife": 4, "permutations": 3, "seed": 7, "plot": False, "progress_seconds": 0}
# name -> (seed, half precision)
CASES = {"two": {"s0": (0, False), "s1": (1, False)},
         "three": {"s0": (0, False), "s1": (1, True), "s2": (2, False)}}


def dataset():
    torch.set_num_threads(1)   # one thread: the forward's bits do not depend on the process
    return TensorDataset(torch.randn(N, 3, 32, 32, generator=torch.Generator().manual_seed(2020)))


class Stage(torch.nn.Module):
    """One ResNet stage giving float16 (float32 compute: CPU convolutions
    have no float16 kernels in torch 1.13)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x.float()).half()


class Half(torch.nn.Module):
    """A ResNet-18 whose stages' outputs are float16, as model.half() gives
    them on a GPU (up to the compute type), named layer1..layer4 as the
    other models' stages; it ends at layer4 (no float16 head on CPU)."""

    def __init__(self, net):
        super().__init__()
        self.stem = torch.nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        for name in LAYERS:
            setattr(self, name, Stage(getattr(net, name)))

    def forward(self, x):
        x = self.stem(x)
        for name in LAYERS:
            x = getattr(self, name)(x)
        return x


def models(case):
    out = {}
    for name, (seed, half) in CASES[case].items():
        torch.manual_seed(seed)
        net = torchvision.models.resnet18(weights=None).eval()
        out[name] = Half(net).eval() if half else net
    return out


class Poison(torch.nn.Module):
    def __init__(self, on):
        super().__init__()
        self.on = on

    def forward(self, x):
        return x * float("nan") if self.on else x


def poisoned(on):
    """Two small models; the second's last module gives NaN when on."""
    torch.manual_seed(0)
    return {"a": torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 8)),
            "b": torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 8), Poison(on))}
