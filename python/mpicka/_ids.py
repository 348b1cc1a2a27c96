"""The examples' IDs an export stores as ``/ids``, which ``mpicka run``
compares between the models batch by batch (exit status 3 on the first
example that differs).

By default each example's ID is a 63-bit hash of the model's input for it
(its bytes, dtype and shape): two exports of the same data in the same order
agree, and an export that saw the examples in another order (a shuffling
loader) or other inputs (random augmentations) disagrees, so ``run`` stops
instead of computing a plausible wrong matrix. Real IDs (``ids=``) are
stored as given; ``RUNNING_INDEX`` stores 0..n-1.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch


class ExportError(RuntimeError):
    """A module did not behave as an exported layer must (it never ran, ran
    twice in one forward pass, returned something that is not a tensor,
    changed its output shape between batches, produced NaN/Inf, had an
    ambiguous layout for pooling), or the IDs do not fit the examples. The
    message names the module."""


class _IdsKind:
    """A kind of default IDs (a marker, not a batch field)."""

    def __init__(self, name: str, label: str):
        self.name, self.label = name, label

    def __repr__(self) -> str:
        return f"mpicka.export.{self.name}"


INPUT_HASH = _IdsKind("INPUT_HASH", "input hash")
RUNNING_INDEX = _IdsKind("RUNNING_INDEX", "running index")

IdsSpec = Union[None, int, str, Callable[[Any], Any], _IdsKind]

_I64 = np.iinfo(np.int64)
_U64 = np.iinfo(np.uint64)
_RANDOM_SAMPLERS = (torch.utils.data.RandomSampler, torch.utils.data.SubsetRandomSampler,
                    torch.utils.data.WeightedRandomSampler)


# ---- the input hash --------------------------------------------------------

def input_hashes(args: tuple) -> Optional[np.ndarray]:
    """One 63-bit ID per example of a call's first positional argument: a
    hash of every tensor in it (a tensor, or the tensors of a tuple, list or
    dict, in order; dict keys sorted) that has the batch as first dim, over
    each example's bytes, dtype and per-example shape. None when the call has
    no such tensor (a model called with keywords only)."""
    tensors = list(_tensors(args[0])) if args else []
    if not tensors:
        return None
    n = tensors[0].shape[0]
    parts = []
    for t in tensors:
        if t.shape[0] != n:
            continue
        head = f"{t.dtype}{tuple(t.shape[1:])}".encode()
        b = t.detach().to("cpu").contiguous()
        b = b.to(torch.uint8) if b.dtype == torch.bool else b
        raw = b.reshape(n, -1)
        raw = raw.view(torch.uint8).numpy() if raw.shape[1] else np.zeros((n, 0), np.uint8)
        parts.append((head, raw))
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        h = hashlib.blake2b(digest_size=8)
        for head, raw in parts:
            h.update(head)
            h.update(raw[i].tobytes())
        out[i] = int.from_bytes(h.digest(), "little") >> 1  # 63 bits: a non-negative int64
    return out


def _tensors(x: Any):
    if isinstance(x, torch.Tensor):
        if x.dim() > 0 and not x.is_nested:
            yield x
    elif isinstance(x, (tuple, list)):
        for v in x:
            yield from _tensors(v)
    elif isinstance(x, dict):
        for k in sorted(x, key=str):
            yield from _tensors(x[k])


def token_hashes(example: np.ndarray, counts: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """IDs of tokens kept as examples: a hash of their example's ID and
    their position in it (``positions``, one per token row; ``counts``:
    tokens kept per example)."""
    out = np.empty(positions.size, dtype=np.int64)
    owners = np.repeat(example, counts)
    for i, (e, t) in enumerate(zip(owners.tolist(), positions.tolist())):
        h = hashlib.blake2b(int(e).to_bytes(8, "little") + int(t).to_bytes(8, "little", signed=True),
                            digest_size=8)
        out[i] = int.from_bytes(h.digest(), "little") >> 1
    return out


def token_given(ids: np.ndarray, counts: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Given IDs expanded to the tokens kept as examples: '<id>#<position>'."""
    owners = np.repeat(ids, counts)
    return np.asarray([f"{e}#{t}" for e, t in zip(owners.tolist(), positions.tolist())], dtype=object)


def warn_random_order(loader: Any, ids: IdsSpec) -> None:
    """A loader that draws its examples at random gives every export another
    order: say so before the run stops on the IDs (or, with the check off,
    computes nonsense)."""
    samplers = [getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)]
    hit = next((s for s in samplers if isinstance(s, _RANDOM_SAMPLERS)), None)
    if hit is None:
        return
    if ids is None or ids is INPUT_HASH:
        by = "its input-hash IDs: mpicka run will stop on it unless both orders agree"
    elif ids is RUNNING_INDEX:
        by = "nothing: the running index cannot tell"
    else:
        by = "the IDs you give"
    warnings.warn(f"the loader draws its examples in random order ({type(hit).__name__}; shuffle=True?): "
                  f"another export of the same data sees them in another order, and mpicka compares "
                  f"example i with example i; use shuffle=False for both models (this export's order is "
                  f"checked by {by})", stacklevel=3)


# ---- given IDs ---------------------------------------------------------------

def as_ids(values: Any) -> np.ndarray:
    """One batch of IDs as a 1-D int64, uint64 or str (object) array, every
    value exactly as given (uint64 input stays uint64: its values above
    2**63-1 have no int64)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if isinstance(values, (int, np.integer, str)):
        values = [values]
    if isinstance(values, (list, tuple, range)) and values and all(_is_int(v) for v in values):
        return _python_ints(values)
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ExportError(f"IDs must be one per example (1-D), got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        return arr if arr.dtype == np.uint64 else arr.astype(np.int64)  # every other fits int64
    if arr.dtype.kind == "U" or arr.size == 0:
        return arr.astype(object)
    if arr.dtype.kind == "O" and all(isinstance(v, str) for v in arr):
        return arr
    raise ExportError(f"IDs must be integers or strings, got {arr.dtype} values")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _python_ints(values: Sequence) -> np.ndarray:
    """Python ints exactly: numpy would turn [2**63, 1] into float64. int64
    when they fit, uint64 when they are all >= 0 and some above int64."""
    ints = [int(v) for v in values]
    lo, hi = min(ints), max(ints)
    if _I64.min <= lo and hi <= _I64.max:
        return np.asarray(ints, dtype=np.int64)
    if lo >= 0 and hi <= _U64.max:
        return np.asarray(ints, dtype=np.uint64)
    if lo < _I64.min or hi > _U64.max:
        raise ExportError(f"ID {lo if lo < _I64.min else hi} is beyond both int64 and uint64")
    raise ExportError(f"IDs {lo} and {hi} in one batch: int64 cannot hold {hi}, uint64 cannot hold {lo}")


def fit_ids(arr: np.ndarray, stored: np.dtype, k: int) -> np.ndarray:
    """Batch k's integer IDs in the type of the earlier batches' (int64 or
    uint64), refused where a value has none there."""
    if arr.dtype == stored or arr.size == 0:
        return arr
    if stored == np.int64 and int(arr.max()) > _I64.max:
        first = next(int(v) for v in arr.tolist() if v > _I64.max)
        raise ExportError(f"batch {k}: ID {first} is above int64, but earlier batches' IDs were stored "
                          f"as int64: give the IDs as uint64 (numpy.uint64) from the first batch")
    if stored == np.uint64 and int(arr.min()) < 0:
        first = next(v for v in arr.tolist() if v < 0)
        raise ExportError(f"batch {k}: negative ID {first}, but earlier batches' IDs were stored as uint64")
    return arr.astype(stored)


def batch_field(batch: Any, spec: Any, what: str) -> Any:
    """``spec(batch)`` or ``batch[spec]``, the error naming the argument."""
    if callable(spec):
        return spec(batch)
    try:
        return batch[spec]
    except (KeyError, IndexError, TypeError) as e:
        raise ExportError(f"{what}={spec!r}: the batch ({type(batch).__name__}) has no such field") from e


class WithIndex(torch.utils.data.Dataset):
    """``dataset`` with each item's index appended: ``(x, y)`` becomes
    ``(x, y, i)`` and a non-tuple ``x`` becomes ``(x, i)``.

    Its loader's batches end with the examples' indices in ``dataset``, so
    ``export(..., ids=-1)`` stores them as ``/ids``; with a
    ``torch.utils.data.Subset`` of it per process, every shard holds global
    indices and mpicka can check that x and y saw the same examples.
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        item = self.dataset[i]
        return (*item, i) if isinstance(item, tuple) else (item, i)
