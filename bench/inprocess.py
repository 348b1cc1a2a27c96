"""One route of bench/inprocess.sh: two ResNet-18s (seeds 0 and 1, random
weights) on N random images of PX x PX, the quick start's nine layers
(layer?.? and fc), batch_size 256, jackknife on.

    inprocess.py compare WORK N PX    # mpicka.compare: WORK/out/cka.h5
    inprocess.py export WORK N PX     # the exporter: WORK/acts/{a,b}.h5 and WORK/run.yaml for mpicka run
"""

import os
import sys

import torch
import torchvision
from torch.utils.data import DataLoader, TensorDataset

LAYERS = ["layer?.?", "fc"]
M = 256


def models():
    out = {}
    for name, seed in (("a", 0), ("b", 1)):
        torch.manual_seed(seed)
        out[name] = torchvision.models.resnet18(weights=None).eval()
    return out


def main(route, work, n, px):
    data = TensorDataset(torch.randn(n, 3, px, px, generator=torch.Generator().manual_seed(1)))
    os.makedirs(work, exist_ok=True)
    if route == "compare":
        import mpicka
        mpicka.compare(models(), data, layers=LAYERS, output=os.path.join(work, "out"), batch_size=M, plot=False)
        return
    from mpicka.export import export
    for name, model in models().items():
        export(model, DataLoader(data, batch_size=M), os.path.join(work, "acts", f"{name}.h5"), LAYERS)
    with open(os.path.join(work, "run.yaml"), "w") as f:
        f.write(f'x: {{file: {work}/acts/a.h5, layers: ["*"]}}\ny: {{file: {work}/acts/b.h5, layers: ["*"]}}\n'
                f'batch_size: {M}\nplot: false\noutput: {work}/out\n')


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
