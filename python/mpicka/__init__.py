"""mpicka's Python side: CKA between PyTorch models while they run, export
of their activations for ``mpicka run``, and reading results back.

- :func:`mpicka.compare`: models + data -> a Result, in this process (or
  several, under torch.distributed or mpi4py), writing only the result.
- :class:`mpicka.Session` (:mod:`mpicka.session`): the same for a loop of
  your own, fed numpy arrays or tensors batch by batch.
- :mod:`mpicka.distributed`: the batch sampler of a multi-process run and
  the reduction of its sessions.
- :mod:`mpicka.export`: :func:`~mpicka.export.export` (model + loader -> HDF5)
  and :class:`~mpicka.export.Exporter`, for data read many times.
- :mod:`mpicka.result`: :func:`~mpicka.result.load` reads a ``cka.h5``.

The submodules are imported on first use, so ``mpicka.result`` works without
torch installed and without libmpicka.so (which only the sessions need).
"""

import importlib

__version__ = "0.1.0"
__all__ = ["compare", "Session", "MpickaError", "distributed", "export", "result", "session", "__version__"]

_MODULES = ("export", "result", "session", "distributed")
_NAMES = {"compare": "._compare", "Session": ".session", "MpickaError": "._lib"}


def __getattr__(name):
    # Lazy submodules: `import mpicka; mpicka.export.export(...)` works, and
    # reading results does not pay for importing torch or loading the library.
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name], __name__), name)
    raise AttributeError(f"module 'mpicka' has no attribute '{name}'")
