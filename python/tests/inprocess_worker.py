"""One process of a multi-process mpicka.compare (test_inprocess.py):

    inprocess_worker.py torch CASE OUT STORE RANK WORLD   # torch.distributed, gloo, a FileStore
    mpirun -np W inprocess_worker.py mpi CASE OUT         # mpi4py

CASE "nan": two small models, the second giving NaN on rank 1 only.
Each process writes OUT.rank<R>.npy, the /cka its compare returned; rank 0
writes OUT/cka.h5 (inprocess_case.CONFIG, the models of CASE)."""

import sys

import numpy as np

import inprocess_case as case


def main(argv):
    kind, name, out = argv[1:4]
    if kind == "torch":
        import torch.distributed as dist
        store, rank, world = argv[4], int(argv[5]), int(argv[6])
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    else:
        from mpi4py import MPI
        rank = MPI.COMM_WORLD.Get_rank()
    import mpicka
    data = case.dataset()
    models, layers = (case.poisoned(rank == 1), {"a": ["1"], "b": ["2"]}) if name == "nan" else \
        (case.models(name), case.LAYERS)
    r = mpicka.compare(models, data, layers=layers, output=out, **case.CONFIG)
    np.save(f"{out}.rank{rank}.npy", r.cka)
    if kind == "torch":
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv)
