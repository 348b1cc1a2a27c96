"""The exporter's machinery with memory instead of a file: for
:func:`mpicka.compare`, each call of the model leaves its selected modules'
rows in :attr:`Capture.rows` (forward order) instead of appending them to
HDF5 datasets.

Everything else is the exporter's own (:class:`mpicka.export.Exporter`):
the module selection (names, patterns, forward order fixed by the first
call, modules that did not run, ran twice or returned no tensor), the
per-layer options (output, transform, pool, pool_dims, token), the checks
on each tensor (rows against the batch, NaN/Inf, complex values) and the
shape that must not change between batches. What differs: the rows keep
their floating dtype (float16, float32 or float64; bfloat16 becomes
float32, integers float32 as in the exporter) instead of being cast to
the file's.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ._ids import RUNNING_INDEX, ExportError
from .export import Exporter

_KEPT = (torch.float16, torch.float32, torch.float64)


class Capture(Exporter):
    """Hooks on ``model``'s selected modules; :attr:`rows` holds the last
    call's outputs, ``{module name: ndarray (rows, ...)}`` in forward order.
    The options are the exporter's (see :class:`~mpicka.export.Exporter`)
    but for ``dtype``, ``ids``, ``rank``, ``world``, ``tokens_as_examples``
    (one row per example here)."""

    def __init__(self, model: torch.nn.Module, layers, name: str, **options):
        super().__init__(model, "", layers, ids=RUNNING_INDEX, rank=0, world=1, **options)
        self.label = name
        self.rows: dict[str, np.ndarray] = {}
        self._shapes: dict[str, tuple] = {}

    def _open_file(self) -> None:
        self._file = None   # nothing is written

    def _cast(self, data: torch.Tensor) -> torch.Tensor:
        return data if data.dtype in _KEPT else data.to(torch.float32)

    def _begin_call(self, module, args):
        self.rows = {}
        return super()._begin_call(module, args)

    def _store(self, layer, rows, src: str, n: int) -> None:
        shape = tuple(rows.data.shape[1:])
        before: Optional[tuple] = self._shapes.setdefault(layer.name, shape)
        if shape != before:
            raise ExportError(f"model '{self.label}', module '{layer.name}': output shape "
                              f"{(n,) + shape} in batch {self.batches} differs from "
                              f"{('n',) + before} before")
        self.rows[layer.name] = rows.data

    def _finish(self) -> None:
        pass   # a process may have no batch of its own: nothing to check or close
