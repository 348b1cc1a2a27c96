"""Export a PyTorch model's layer activations to HDF5 for ``mpicka run``.

Two ways in:

- :func:`export` runs a model over a data loader and writes one file (or one
  shard per process in a data-parallel run).
- :class:`Exporter` is the same machinery as a context manager, for a loop of
  your own: every call of ``model(...)`` inside the ``with`` block is a batch.

What is written (one HDF5 file, created with ``track_order=True``)::

    /<module name>   one dataset per layer, named exactly as in
                     model.named_modules() (dots kept: "layer1.0.conv1"),
                     shape (n, *per-example output shape), float32 or float16,
                     created in the order the forward pass produced them
    /ids             1-D, one ID per example: int64 or UTF-8 strings
    root attributes  model_class, modules (JSON list, forward order),
                     input_shape, dtype, source_dtypes (JSON), pool, n,
                     batches, ids, rank, world, torch_version,
                     exporter_version

Example ``i`` of every layer and of ``/ids`` is the same input. Memory holds one
batch of the selected layers' outputs, whatever the number of examples: each
batch is appended to resizable, chunked datasets and dropped. The file is
written under a temporary name and renamed when complete, so an export that
fails leaves no file behind.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import warnings
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import h5py
import numpy as np
import torch

from . import __version__

__all__ = ["export", "Exporter", "ExportError", "WithIndex", "shard_path", "select_modules"]

IDS = "ids"
CHUNK_BYTES = 1 << 20  # fits HDF5's default 1 MiB chunk cache: mpicka reads a chunk once
_DTYPES = {"float32": (torch.float32, np.float32), "float16": (torch.float16, np.float16)}
_POOLS = (None, "mean", "max")

Layers = Union[None, str, Sequence[str]]
IdsSpec = Union[None, int, str, Callable[[Any], Any]]


class ExportError(RuntimeError):
    """A module did not behave as an exported layer must (it never ran, ran
    twice in one forward pass, returned a non-tensor, changed its output shape
    between batches, produced NaN/Inf), or the IDs do not fit the examples.
    The message names the module."""


# ---- module selection ----------------------------------------------------

def _pattern_regex(pattern: str) -> "re.Pattern[str]":
    """Glob over dotted module names: ``*`` and ``?`` stay within one name
    part (as mpicka's ``*`` stays within one path level), ``**`` crosses dots,
    ``[...]`` is a character class (``[!...]`` negated)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append(r"[^.]*")
        elif c == "?":
            out.append(r"[^.]")
        elif c == "[" and _class_end(pattern, i) > 0:
            end = _class_end(pattern, i)
            body = pattern[i + 1:end]
            neg = body.startswith("!")
            body = re.escape(body[1:] if neg else body).replace(r"\-", "-")
            out.append(f"[^.{body}]" if neg else f"[{body}]")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _class_end(pattern: str, i: int) -> int:
    """Index of the ']' closing the class opened at i, or -1 (a literal '[')."""
    j = i + 1
    if pattern[j:j + 1] == "!":
        j += 1
    if pattern[j:j + 1] == "]":
        j += 1
    return pattern.find("]", j)


def _is_pattern(s: str) -> bool:
    return any(c in s for c in "*?[")


def select_modules(model: torch.nn.Module, layers: Layers) -> tuple[list[str], bool]:
    """Resolve ``layers`` to module names of ``model``.

    Returns the selected names (in ``named_modules()`` order; the file's order
    is the forward order, decided when the model runs) and whether they were
    chosen explicitly (names or patterns) rather than by default (``None``:
    every leaf module). A name that does not exist or a pattern that matches
    nothing raises ``ValueError`` listing the closest names that do exist.
    """
    names = [n for n, _ in model.named_modules() if n]
    if layers is None:
        leaves = [n for n, m in model.named_modules() if n and next(m.children(), None) is None]
        if not leaves:
            raise ValueError(f"{type(model).__name__} has no submodules to export; name the layers")
        return _storable(leaves), False
    if isinstance(layers, str):
        layers = [layers]
    chosen: set[str] = set()
    for entry in layers:
        if not isinstance(entry, str):
            raise TypeError(f"layers: expected module names or patterns (str), got {entry!r}")
        if not _is_pattern(entry):
            if entry not in names:
                raise ValueError(f"layers: the model has no module '{entry}'" + _closest(entry, names))
            chosen.add(entry)
            continue
        rx = _pattern_regex(entry)
        hits = [n for n in names if rx.match(n)]
        if not hits:
            raise ValueError(f"layers: pattern '{entry}' matches no module name ('*' does not cross "
                             f"dots; '**' does)" + _closest(entry, names))
        chosen.update(hits)
    if IDS in chosen:
        raise ValueError(f"layers: a module named '{IDS}' would collide with the /{IDS} dataset")
    return _storable([n for n in names if n in chosen]), True


def _storable(names: list[str]) -> list[str]:
    """Refuses names that cannot be one HDF5 dataset at the root: '/' nests
    groups (and collides with a module of the prefix's name), NUL ends the
    name early. Not escaped: the file promises named_modules()'s names, and
    mpicka's layer patterns would have to spell the escape."""
    for name in names:
        bad = "/" if "/" in name else "NUL" if "\0" in name else None
        if bad:
            raise ValueError(f"layers: module '{name}' has a {bad} in its name, which an HDF5 dataset name "
                             f"cannot hold; rename it (the key of its ModuleDict or add_module name) or "
                             f"select other modules")
    return names


def _closest(name: str, names: list[str]) -> str:
    stem = name.replace("*", "").replace("?", "")
    close = difflib.get_close_matches(stem, names, n=5, cutoff=0.5)
    if close:
        return "; closest: " + ", ".join(close)
    return "; modules: " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")


# ---- shards --------------------------------------------------------------

def shard_path(path: Union[str, os.PathLike], rank: int, world: int) -> str:
    """``acts/x.h5`` -> ``acts/x-<rank>-of-<world>.h5`` (the name each process
    of a data-parallel export writes; mpicka reads them back with the glob
    ``acts/x-*-of-<world>.h5``, in natural order = rank order)."""
    path = os.fspath(path)
    stem = path[:-3] if path.endswith(".h5") else path
    return f"{stem}-{rank}-of-{world}.h5"


def _rank_world(rank: Optional[int], world: Optional[int]) -> tuple[Optional[int], Optional[int]]:
    if rank is None and world is None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return None, None
    if rank is None or world is None:
        raise ValueError("rank and world go together: give both or neither")
    if not (isinstance(rank, int) and isinstance(world, int)) or world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= rank < world, got rank={rank!r}, world={world!r}")
    return rank, world


# ---- IDs -------------------------------------------------------------------

_I64 = np.iinfo(np.int64)
_U64 = np.iinfo(np.uint64)


def _as_ids(values: Any) -> np.ndarray:
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


def _batch_ids(batch: Any, ids: IdsSpec) -> Any:
    if callable(ids):
        return ids(batch)
    try:
        return batch[ids]
    except (KeyError, IndexError, TypeError) as e:
        raise ExportError(f"ids={ids!r}: the batch ({type(batch).__name__}) has no such field") from e


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


# ---- the exporter ----------------------------------------------------------

class _Layer:
    """One exported module: its dataset and the shapes it must keep."""

    def __init__(self, name: str, module: torch.nn.Module):
        self.name = name
        self.module = module
        self.dset: Optional[h5py.Dataset] = None
        self.out_shape: Optional[tuple] = None     # per-example model output shape
        self.source_dtype: Optional[str] = None


class Exporter:
    """Context manager writing the activations of ``model``'s calls to ``path``.

    Every call of ``model(...)`` inside the ``with`` block is one batch: the
    selected modules' outputs are appended to their datasets when the call
    returns. Each selected module must run exactly once per call. Gradients
    are off inside the block (``torch.no_grad``); the model's train/eval mode
    is left as you set it, so call ``model.eval()`` first (in training mode,
    dropout is active and BatchNorm uses, and updates, batch statistics; a
    warning says so).

    Parameters
    ----------
    model : torch.nn.Module
    path : str or os.PathLike
        The HDF5 file to write (replaced if it exists); in a data-parallel
        run, the shard ``shard_path(path, rank, world)`` is written instead.
    layers : None, str or sequence of str
        Module names as in ``model.named_modules()``, or glob patterns over
        them (``*`` and ``?`` do not cross dots, ``**`` does, ``[...]``
        classes): ``["layer?.?", "fc"]`` are ResNet's blocks and its head.
        ``None``: every leaf module that returns a tensor and runs once per
        call (a leaf reused within one forward pass, like torchvision's
        BasicBlock ``relu``, is skipped with a warning). A name that does not
        exist or a pattern that matches nothing is a ``ValueError``.
    dtype : "float32" or "float16"
        Storage type. float16 halves the files; a value beyond its range
        (65504) is an error naming the module.
    pool : None, "mean" or "max"
        Pool outputs of more than 2 dims, taken as (N, C, spatial...), over
        the spatial dims, keeping C features. CKA of pooled features is a
        different quantity from CKA of the full maps (it ignores where in
        the map a feature fired); compare pooled with pooled only.
    rank, world : int, optional
        Data-parallel runs: this process writes shard ``rank`` of ``world``.
        Taken from ``torch.distributed`` when it is initialised and these are
        not given.

    Attributes
    ----------
    path : str
        The file written (the shard's name in a data-parallel run).
    n : int
        Examples written so far.

    Use :meth:`add_ids` once per batch to store the examples' IDs; without
    it, ``/ids`` is the running index 0..n-1 of this process's examples.
    """

    def __init__(self, model: torch.nn.Module, path: Union[str, os.PathLike], layers: Layers = None, *,
                 dtype: str = "float32", pool: Optional[str] = None,
                 rank: Optional[int] = None, world: Optional[int] = None):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
        if pool not in _POOLS:
            raise ValueError(f"pool must be None, 'mean' or 'max', got {pool!r}")
        self.model = model
        self.dtype = dtype
        self.pool = pool
        self.rank, self.world = _rank_world(rank, world)
        self.path = shard_path(path, self.rank, self.world) if self.world is not None else os.fspath(path)
        names, self._explicit = select_modules(model, layers)
        modules = dict(model.named_modules())
        self._candidates = {n: _Layer(n, modules[n]) for n in names}
        self._layers: Optional[list[_Layer]] = None   # forward order, fixed by the first batch
        self._pass: dict[str, list] = {}
        self._in_call = False
        self._tmp = f"{self.path}.tmp{os.getpid()}"  # renamed to path when complete
        self._batch_n: Optional[int] = None
        self._input_shape: Optional[tuple] = None
        self._failed: Optional[BaseException] = None
        self._handles: list = []
        self._made: list[str] = []   # folders this export created, removed again if it fails
        self._file: Optional[h5py.File] = None
        self._ids: Optional[h5py.Dataset] = None
        self._id_counts: list[int] = []     # IDs given per add_ids call: call k is batch k
        self._batch_sizes: list[int] = []   # examples per call of the model
        self._grad = None
        self.n = 0
        self.batches = 0

    # -- context --

    def __enter__(self) -> "Exporter":
        if self.model.training:
            warnings.warn("model is in training mode: dropout is active and BatchNorm uses batch "
                          "statistics; call model.eval() before exporting", stacklevel=2)
        self._made = _make_folders(os.path.dirname(self.path))
        try:
            self._file = h5py.File(self._tmp, "w", track_order=True)
            self._handles.append(self.model.register_forward_pre_hook(self._begin_call))
            self._handles.append(self.model.register_forward_hook(self._end_call))
            for layer in self._candidates.values():
                self._handles.append(layer.module.register_forward_hook(self._hook(layer.name)))
        except BaseException:
            for h in self._handles:
                h.remove()
            self._handles.clear()
            self._abort()
            raise
        self._grad = torch.is_grad_enabled()
        torch.set_grad_enabled(False)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            for h in self._handles:
                h.remove()
            self._handles.clear()
        finally:
            if self._grad is not None:
                torch.set_grad_enabled(self._grad)
        if exc_type is not None or self._failed is not None:
            self._abort()
            if exc_type is None:
                raise ExportError(str(self._failed)) from self._failed
            return False
        try:
            self._finish()
        except BaseException:
            self._abort()
            raise
        return False

    def _abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)
        _remove_folders(self._made)
        self._made = []

    # -- IDs --

    def add_ids(self, ids: Any) -> None:
        """Append one batch's example IDs (a tensor, array or list of ints or
        strs, one per example, in the batch's order). Call it once per call
        of the model, before or after it, for every batch or for none: the
        k-th call holds batch k's IDs and must have as many as that batch has
        examples. Integers are stored exactly: int64, or uint64 when the first
        IDs given are uint64 (or Python ints above 2**63-1)."""
        if self._file is None:
            raise ExportError("add_ids outside the exporter's with block")
        self._guard(lambda: self._add_ids(_as_ids(ids)))

    def _add_ids(self, arr: np.ndarray) -> None:
        k = len(self._id_counts)
        self._id_counts.append(arr.size)
        self._match_ids(k)
        if arr.size == 0:
            return
        is_str = arr.dtype == object
        if self._ids is None:
            dt = h5py.string_dtype("utf-8") if is_str else arr.dtype
            self._ids = self._file.create_dataset(IDS, shape=(0,), maxshape=(None,), dtype=dt,
                                                  chunks=(CHUNK_BYTES // (16 if is_str else 8),))
        elif is_str != (self._ids.dtype.kind == "O"):
            raise ExportError(f"batch {k}: IDs mix integers and strings between batches")
        elif not is_str:
            arr = _fit_ids(arr, self._ids.dtype, k)
        _append(self._ids, arr)

    def _match_ids(self, k: int) -> None:
        """Batch k's IDs against its examples, once both are known."""
        if k < len(self._id_counts) and k < len(self._batch_sizes) \
                and self._id_counts[k] != self._batch_sizes[k]:
            raise ExportError(f"batch {k}: {self._id_counts[k]} IDs for {self._batch_sizes[k]} examples "
                              f"(call add_ids once per batch with that batch's IDs)")

    # -- hooks --

    def _begin_call(self, module, args) -> None:
        if self._failed is not None:
            raise ExportError(f"an earlier error ended this export: {self._failed}")
        if self._in_call:
            # The last call never returned: an exception inside forward was
            # caught by the caller. Its outputs are partial; do not guess.
            raise ExportError("the model was called again after a call that did not return (an error "
                              "inside forward?); the export cannot continue")
        self._in_call = True
        self._pass = {}
        first = args[0] if args else None
        tensor = isinstance(first, torch.Tensor) and first.dim() > 0
        self._batch_n = first.shape[0] if tensor else None
        if self._input_shape is None and tensor:
            self._input_shape = tuple(first.shape[1:])

    def _end_call(self, module, args, output) -> None:
        self._in_call = False
        self._guard(self._write_batch)

    def _hook(self, name: str):
        def hook(module, args, output):
            self._guard(lambda: self._capture(name, output))
        return hook

    def _guard(self, fn) -> None:
        # An error inside a forward pass ends the export: the pass is half
        # done, so nothing after it could be trusted.
        try:
            fn()
        except BaseException as e:
            self._failed = e
            raise

    def _capture(self, name: str, output: Any) -> None:
        if not self._in_call:
            raise ExportError(f"module '{name}' ran outside a call of the model; the exporter counts "
                              f"a batch per call of the model it was given")
        if not isinstance(output, torch.Tensor):
            self._pass.setdefault(name, []).append(type(output).__name__)
            return
        self._pass.setdefault(name, []).append(self._convert(name, output))

    def _convert(self, name: str, t: torch.Tensor) -> tuple:
        """Detach, pool, cast: (stored array, per-example output shape, source dtype)."""
        t = t.detach()
        if t.dim() == 0:
            raise ExportError(f"module '{name}' returned a scalar: no example axis")
        shape, src = tuple(t.shape[1:]), str(t.dtype)
        if t.is_complex():  # a cast would keep the real part and drop the rest
            raise ExportError(f"module '{name}' returned complex values ({src}); mpicka compares real "
                              f"features: wrap the module to return torch.view_as_real(out) or out.abs()")
        if not t.is_floating_point():
            t = t.float()
        if self.pool and t.dim() > 2:
            dims = tuple(range(2, t.dim()))
            t = t.mean(dim=dims) if self.pool == "mean" else t.amax(dim=dims)
        stored = t.to(_DTYPES[self.dtype][0])
        if not bool(torch.isfinite(stored).all()):
            if bool(torch.isfinite(t).all()):
                raise ExportError(f"module '{name}': values beyond float16's range (65504) in batch "
                                  f"{self.batches}; use dtype='float32'")
            raise ExportError(f"module '{name}': NaN or Inf in its output in batch {self.batches}")
        return stored.cpu().numpy(), shape, src

    # -- one batch --

    def _write_batch(self) -> None:
        outputs, self._pass = self._pass, {}
        if self._layers is None:
            self._layers = self._first_layers(outputs)
        for layer in self._layers:
            self._check_once(layer.name, outputs.get(layer.name))
        n = self._batch_n if self._batch_n is not None else outputs[self._layers[0].name][0][0].shape[0]
        for layer in self._layers:
            arr, shape, src = outputs[layer.name][0]
            if arr.shape[0] != n:
                raise ExportError(f"module '{layer.name}': output has {arr.shape[0]} rows but the batch "
                                  f"has {n} examples (is the batch not its first dim?)")
            if layer.dset is None:
                self._create(layer, arr, shape, src)
            elif shape != layer.out_shape:
                raise ExportError(f"module '{layer.name}': output shape {(n,) + shape} in batch "
                                  f"{self.batches} differs from {('n',) + layer.out_shape} before")
            _append(layer.dset, arr)
        self._batch_sizes.append(n)
        self._match_ids(self.batches)
        self.n += n
        self.batches += 1

    def _first_layers(self, outputs: dict) -> list[_Layer]:
        """The layers in the order the first forward pass produced them."""
        missing = [n for n in self._candidates if n not in outputs]
        skip = {}
        for name, got in outputs.items():
            if len(got) > 1:
                skip[name] = f"ran {len(got)} times in one forward pass (a module reused in forward)"
            elif isinstance(got[0], str):
                skip[name] = f"returned {got[0]}, not a tensor"
        if self._explicit:
            if missing:
                raise ExportError(f"module '{missing[0]}' did not run in the forward pass"
                                  + (f" (nor did {len(missing) - 1} more)" if len(missing) > 1 else ""))
            if skip:
                name = next(iter(skip))
                raise ExportError(f"module '{name}' {skip[name]}; select other modules")
        elif any(len(g) > 1 for g in outputs.values()):
            warnings.warn("skipped modules reused within one forward pass: "
                          + ", ".join(n for n, g in outputs.items() if len(g) > 1), stacklevel=4)
        layers = [self._candidates[n] for n in outputs if n not in skip]
        if not layers:
            raise ExportError("no selected module returned a tensor in the forward pass")
        return layers

    def _check_once(self, name: str, got: Optional[list]) -> None:
        if got is None:
            raise ExportError(f"module '{name}' did not run in forward pass {self.batches}")
        if len(got) > 1:
            raise ExportError(f"module '{name}' ran {len(got)} times in forward pass {self.batches}")
        if isinstance(got[0], str):
            raise ExportError(f"module '{name}' returned {got[0]}, not a tensor, in batch {self.batches}")

    def _create(self, layer: _Layer, arr: np.ndarray, shape: tuple, src: str) -> None:
        trailing = arr.shape[1:]
        row_bytes = max(1, int(np.prod(trailing, dtype=np.int64)) * arr.itemsize)
        rows = max(1, CHUNK_BYTES // row_bytes)
        layer.dset = self._file.create_dataset(layer.name, shape=(0,) + trailing, maxshape=(None,) + trailing,
                                               dtype=arr.dtype, chunks=(rows,) + trailing)
        layer.dset.attrs["module_class"] = type(layer.module).__name__
        layer.dset.attrs["output_shape"] = np.asarray(shape, dtype=np.int64)
        layer.out_shape, layer.source_dtype = shape, src

    # -- the end --

    def _finish(self) -> None:
        if self._layers is None:
            raise ExportError("the model never ran inside the exporter: no batch to write")
        f = self._file
        if self._id_counts and len(self._id_counts) != self.batches:
            raise ExportError(f"add_ids was called for {len(self._id_counts)} batches but the model ran "
                              f"{self.batches} (/ids has {sum(self._id_counts)} entries but {self.n} examples "
                              f"were exported; call add_ids once per batch, one ID per example)")
        if self._ids is None:
            ids = f.create_dataset(IDS, shape=(self.n,), dtype=np.int64,
                                   chunks=(max(1, min(self.n, CHUNK_BYTES // 8)),))
            step = CHUNK_BYTES // 8
            for lo in range(0, self.n, step):  # a chunk at a time: no n-sized array
                ids[lo:lo + step] = np.arange(lo, min(self.n, lo + step), dtype=np.int64)
            f.attrs["ids_source"] = "running index"
        else:
            f.attrs["ids_source"] = "given"
        self._write_attrs(f)
        f.close()
        self._file = None
        os.replace(self._tmp, self.path)

    def _write_attrs(self, f: h5py.File) -> None:
        cls = type(self.model)
        f.attrs["model_class"] = f"{cls.__module__}.{cls.__qualname__}"
        f.attrs["modules"] = json.dumps([layer.name for layer in self._layers])
        if self._input_shape is not None:
            f.attrs["input_shape"] = np.asarray(self._input_shape, dtype=np.int64)
        f.attrs["dtype"] = self.dtype
        f.attrs["source_dtypes"] = json.dumps({layer.name: layer.source_dtype for layer in self._layers})
        f.attrs["pool"] = self.pool or "none"
        f.attrs["n"] = np.int64(self.n)
        f.attrs["batches"] = np.int64(self.batches)
        if self.world is not None:
            f.attrs["rank"] = np.int64(self.rank)
            f.attrs["world"] = np.int64(self.world)
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["exporter_version"] = __version__


def _fit_ids(arr: np.ndarray, stored: np.dtype, k: int) -> np.ndarray:
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


def _make_folders(parent: str) -> list[str]:
    """Creates parent and the folders above it that are missing; returns
    those it created, outermost first (another process may create one at the
    same time: that one is not ours to remove)."""
    missing = []
    while parent and not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    made: list[str] = []
    try:
        for folder in reversed(missing):
            try:
                os.mkdir(folder)
                made.append(folder)
            except FileExistsError:
                if not os.path.isdir(folder):
                    raise
    except BaseException:
        _remove_folders(made)
        raise
    return made


def _remove_folders(made: list[str]) -> None:
    """Removes the folders an export created, innermost first, each only
    while empty: a file another process wrote there meanwhile stays."""
    for folder in reversed(made):
        try:
            os.rmdir(folder)
        except OSError:
            return


def _append(dset: h5py.Dataset, arr: np.ndarray) -> None:
    n0 = dset.shape[0]
    dset.resize(n0 + arr.shape[0], axis=0)
    dset[n0:] = arr


# ---- the common case ---------------------------------------------------------

def _model_input(batch: Any, inputs: IdsSpec) -> Any:
    if inputs is not None:
        return inputs(batch) if callable(inputs) else batch[inputs]
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch:
        return batch[0]
    raise TypeError(f"cannot tell the model's input in a {type(batch).__name__} batch; pass inputs= "
                    f"(a key, an index or a callable)")


def _to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (tuple, list)):
        return type(x)(_to_device(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    return x


def _model_device(model: torch.nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def export(model: torch.nn.Module, loader: Iterable, path: Union[str, os.PathLike], layers: Layers = None, *,
           dtype: str = "float32", pool: Optional[str] = None, ids: IdsSpec = None,
           rank: Optional[int] = None, world: Optional[int] = None,
           inputs: IdsSpec = None, device: Optional[Union[str, torch.device]] = None) -> str:
    """Run ``model`` over ``loader`` and write the selected layers' outputs.

    The model runs under ``torch.no_grad()`` in the mode you set (call
    ``model.eval()`` first). See :class:`Exporter` for ``layers``, ``dtype``,
    ``pool``, ``rank`` and ``world``, and the module docstring for the file.

    Parameters
    ----------
    loader : iterable of batches
        A ``torch.utils.data.DataLoader`` or any iterable. The model's input
        is the batch itself when it is a tensor, else ``batch[0]``; pass
        ``inputs`` otherwise. Keep its order fixed (``shuffle=False``):
        both models must see the same examples in the same order.
    ids : None, int, str or callable
        The examples' IDs, stored as ``/ids``: a field of the batch
        (``batch[ids]``, an index into a tuple batch or a key into a dict
        batch) or a callable ``ids(batch)``, giving one int or str per
        example. ``None``: the running index 0..n-1 of this process's
        examples. mpicka checks that x and y hold the same IDs in the same
        order; in a data-parallel run the running index restarts at 0 in
        every shard, so pass real IDs there.
    inputs : None, int, str or callable
        How to get the model's input from a batch: ``batch[inputs]`` or
        ``inputs(batch)``; a tuple result is passed as positional arguments.
    device : optional
        Where inputs are moved; default: the device of the model's first
        parameter (CPU for a model without any).

    Returns
    -------
    str
        The file written (the shard's name in a data-parallel run).
    """
    dev = torch.device(device) if device is not None else _model_device(model)
    with Exporter(model, path, layers, dtype=dtype, pool=pool, rank=rank, world=world) as ex:
        for batch in loader:
            x = _to_device(_model_input(batch, inputs), dev)
            model(*x) if isinstance(x, tuple) else model(x)
            if ids is not None:
                ex.add_ids(_batch_ids(batch, ids))
    return ex.path
