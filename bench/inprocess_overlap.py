"""What feeding a batch beside the next forward pass hides (mpicka.compare),
in one run: two models whose forward waits 0.25 s per batch, as a process
waits for a GPU, then gives 20,000 features (2,048 examples, batch_size
256), compared with the feed beside the forward (mpicka._compare.OVERLAP)
and in the loop, alternating REPEAT times; median wall times.

    PYTHONPATH=python MPICKA_BUILD=build /usr/bin/python3 bench/inprocess_overlap.py [REPEAT]
"""

import statistics
import sys
import time

import torch
from torch.utils.data import TensorDataset

import mpicka
from mpicka import _compare

WAIT = 0.25


class Waits(torch.nn.Module):
    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.w = torch.randn(32, 20000)
        self.out = torch.nn.Identity()

    def forward(self, x):
        time.sleep(WAIT)   # the GPU's time: this process's CPU is free meanwhile
        return self.out(x @ self.w)


def once(overlap, data):
    _compare.OVERLAP = overlap
    t = time.perf_counter()
    mpicka.compare({"a": Waits(0), "b": Waits(1)}, data, layers=["out"], batch_size=256, plot=False,
                   progress_seconds=0)
    return time.perf_counter() - t


def main(repeat):
    torch.set_num_threads(1)
    data = TensorDataset(torch.randn(2048, 32, generator=torch.Generator().manual_seed(0)))
    walls = {True: [], False: []}
    for _ in range(repeat):
        for overlap in (False, True):
            walls[overlap].append(once(overlap, data))
    waiting = 2 * 8 * WAIT
    for overlap, label in ((False, "feed in the loop"), (True, "feed beside the forward")):
        w = walls[overlap]
        print(f"{label:26s} median {statistics.median(w):.2f} s  ({' '.join(f'{x:.2f}' for x in w)})")
    print(f"the forward passes wait {waiting:.2f} s in all; ratio {statistics.median(walls[True]) / statistics.median(walls[False]):.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
