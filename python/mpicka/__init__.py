"""mpicka's Python side: export a PyTorch model's activations for ``mpicka run``
and read its results back.

- :mod:`mpicka.export`: :func:`~mpicka.export.export` (model + loader -> HDF5)
  and :class:`~mpicka.export.Exporter` (the same for a loop of your own).
- :mod:`mpicka.result`: :func:`~mpicka.result.load` reads a ``cka.h5``.

The submodules are imported on first use, so ``mpicka.result`` works without
torch installed.
"""

import importlib

__version__ = "0.1.0"
__all__ = ["export", "result", "__version__"]


def __getattr__(name):
    # Lazy submodules: `import mpicka; mpicka.export.export(...)` works, and
    # reading results does not pay for importing torch.
    if name in ("export", "result"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'mpicka' has no attribute '{name}'")
