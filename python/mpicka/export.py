"""Export a PyTorch model's layer activations to HDF5 for ``mpicka run``.

Two ways in:

- :func:`export` runs a model over a data loader and writes one file (or one
  shard per process in a data-parallel run).
- :class:`Exporter` is the same machinery as a context manager, for a loop of
  your own: every call of ``model(...)`` inside the ``with`` block is a batch.

What is written (one HDF5 file, created with ``track_order=True``)::

    /<module name>   one dataset per layer, named exactly as in
                     model.named_modules() (dots kept: "layer1.0.conv1"),
                     shape (n, *per-example stored shape), float32 or
                     float16, created in the order the forward pass produced
                     them; attributes module_class, output_shape, reduction
    /ids             1-D, one ID per example: by default a 63-bit hash of
                     the model's input (int64), else the IDs given (int64,
                     uint64 or UTF-8 strings) or the running index
    root attributes  model_class, modules (JSON list, forward order),
                     input_shape, dtype, source_dtypes (JSON), pool, n,
                     examples, tokens_as_examples, batches, ids_source,
                     rank, world, torch_version, exporter_version

Row ``i`` of every layer and of ``/ids`` is the same input (the same token
with ``tokens_as_examples``). Memory holds one batch of the selected layers'
outputs, whatever the number of examples: each batch is appended to
resizable, chunked datasets and dropped. The file is written under a
temporary name and renamed when complete, so an export that fails leaves no
file behind.

The parts live in modules by concern: ``_select`` (which modules, which
option for which layer), ``_reduce`` (an output to stored rows: tuple
elements, transforms, pooling, tokens, masks), ``_ids`` (the IDs and the
input hash), ``_files`` (folders and datasets).
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Callable, Iterable, Optional, Union

import h5py
import numpy as np
import torch

from . import __version__
from ._files import append, create_ids, create_rows, make_folders, remove_folders, write_index
from ._ids import (INPUT_HASH, RUNNING_INDEX, ExportError, IdsSpec, WithIndex, _IdsKind, _tensors, as_ids,
                   batch_field, fit_ids, input_hashes, token_given, token_hashes, warn_random_order)
from ._reduce import Rows, Spec, describe, not_run_hint, pick, reduce_rows, unnest
from ._select import IDS, Layers, per_layer, select_modules

__all__ = ["export", "Exporter", "ExportError", "WithIndex", "shard_path", "select_modules",
           "INPUT_HASH", "RUNNING_INDEX"]

_DTYPES = {"float32": (torch.float32, np.float32), "float16": (torch.float16, np.float16)}
PerLayer = Union[Any, dict]


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


# ---- the exporter ----------------------------------------------------------

class _Layer:
    """One exported module: its options, its dataset and the shapes it must keep."""

    def __init__(self, name: str, module: torch.nn.Module, spec: Spec):
        self.name, self.module, self.spec = name, module, spec
        self.dset: Optional[h5py.Dataset] = None
        self.out_shape: Optional[list] = None      # per-example output shape, -1 where it varied
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
        call; the leaves skipped (reused within one pass, not run, not
        returning a tensor) are named in a warning. A name that does not
        exist or a pattern that matches nothing is a ``ValueError``.
    dtype : "float32" or "float16"
        Storage type. float16 halves the files; a value beyond its range
        (65504) is an error naming the module.
    output : None, int, str or callable; or a dict per layer
        The tensor of a module that returns a tuple, list or dict:
        ``output=0`` is ``out[0]`` (an LSTM's output sequence),
        ``output="last_hidden_state"`` a key, a callable ``f(out)`` anything.
        An index or key leaves tensor outputs as they are.
    transform : callable or a dict per layer
        ``f(tensor) -> tensor`` applied to the chosen tensor before the
        reduction (e.g. ``lambda t: t.transpose(0, 1)`` for a sequence-first
        output); the result must keep the batch as its first dim.
    pool : None, "mean" or "max"; or a dict per layer
        Pool outputs of more than 2 dims over ``pool_dims``. Without
        ``pool_dims`` only an output that is obviously a conv map
        ``(N, C, spatial...)`` is pooled (over the spatial dims); any other
        (a transformer's ``(N, T, D)``, Swin's ``(N, H, W, C)``) is an
        ``ExportError`` asking for the dims. CKA of pooled features is a
        different quantity from CKA of the full maps; compare pooled with
        pooled only.
    pool_dims : None, int or tuple of int; or a dict per layer
        The dims of the output to pool, batch = 0: ``1`` the tokens of
        ``(N, T, D)``, ``(1, 2)`` the map of ``(N, H, W, C)``. With a padding
        mask, the padded tokens (dim 1) are left out of the mean or max.
    token : None, "cls", "first", "last" or int; or a dict per layer
        Keep one token of an ``(N, T, D)`` output: ``"cls"``/``"first"`` is
        token 0, ``"last"`` the last token (the last one that is not padding
        with a mask), an int that position.
    tokens_as_examples : bool
        Every token of every ``(N, T, D)`` output is a row (an example for
        mpicka): ``(N, T, D)`` becomes ``(N*T, D)``, padded tokens left out
        with a mask. Every layer must then be ``(N, T, D)`` with the same
        tokens. The IDs are per token.
    ids : None, INPUT_HASH or RUNNING_INDEX
        The IDs stored when :meth:`add_ids` is not called: ``None`` or
        ``INPUT_HASH``, a 63-bit hash per example of the model's input (the
        first positional argument of each call); ``RUNNING_INDEX``,
        0..n-1 of this process.
    fastpath : bool
        ``False`` runs each call with gradients enabled (and floating inputs
        requiring grad), which turns off PyTorch's inference fast path of
        ``nn.TransformerEncoderLayer`` and ``nn.MultiheadAttention``, so that
        their submodules run and can be exported; a call then holds the
        autograd graph of one batch.
    rank, world : int, optional
        Data-parallel runs: this process writes shard ``rank`` of ``world``.
        Taken from ``torch.distributed`` when it is initialised and these are
        not given.

    The per-layer options take one value for every layer, or a dict from
    module names or patterns to values (an exact name first, else the first
    pattern that matches; others get None): ``pool={"features.*": "mean"}``.
    The reductions apply to outputs of more than 2 dims; 2-D outputs are
    stored as they are.

    Attributes
    ----------
    path : str
        The file written (the shard's name in a data-parallel run).
    n : int
        Rows written so far (examples, or tokens with ``tokens_as_examples``).
    examples : int
        Examples written so far.

    Use :meth:`add_ids` once per batch to store the examples' IDs, and
    :meth:`set_mask` before a call to give its padding mask.
    """

    def __init__(self, model: torch.nn.Module, path: Union[str, os.PathLike], layers: Layers = None, *,
                 dtype: str = "float32", pool: PerLayer = None, pool_dims: PerLayer = None,
                 token: PerLayer = None, tokens_as_examples: bool = False, output: PerLayer = None,
                 transform: PerLayer = None, ids: Optional[_IdsKind] = None, fastpath: bool = True,
                 rank: Optional[int] = None, world: Optional[int] = None):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
        if ids is not None and not isinstance(ids, _IdsKind):
            raise TypeError(f"Exporter(ids=...) takes INPUT_HASH or RUNNING_INDEX; give a batch's IDs with "
                            f"add_ids, got {ids!r}")
        self.model = model
        self.dtype = dtype
        self.pool = pool
        self.tokens = bool(tokens_as_examples)
        self.fastpath = bool(fastpath)
        self.rank, self.world = _rank_world(rank, world)
        self.path = shard_path(path, self.rank, self.world) if self.world is not None else os.fspath(path)
        if pool is None and pool_dims is not None:
            raise ValueError(f"pool_dims={pool_dims!r} without pool: give pool='mean' or 'max'")
        names, self._explicit = select_modules(model, layers)
        modules = dict(model.named_modules())
        opts = {k: per_layer(k, v, names) for k, v in (("pool", pool), ("pool_dims", pool_dims), ("token", token),
                                                      ("output", output), ("transform", transform))}
        self._candidates = {n: _Layer(n, modules[n], Spec(n, modules[n], tokens_as_examples=self.tokens,
                                                          dims_named=isinstance(pool_dims, dict),
                                                          **{k: v[n] for k, v in opts.items()}))
                            for n in names}
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
        self._ids_kind = "index" if ids is RUNNING_INDEX else "hash"   # "given" once add_ids is called
        self._ids: Optional[h5py.Dataset] = None
        self._batch_hash: Optional[np.ndarray] = None
        self._id_counts: list[int] = []     # IDs given per add_ids call: call k is batch k
        self._batch_sizes: list[int] = []   # examples per call of the model
        self._pending: dict[int, np.ndarray] = {}   # tokens as examples: given IDs of batches yet to run
        self._last_rows: Optional[Rows] = None      # and the tokens kept in the last batch
        self._mask: Optional[torch.Tensor] = None
        self._grad = None
        self.n = 0
        self.examples = 0
        self.batches = 0

    # -- context --

    def __enter__(self) -> "Exporter":
        if self.model.training:
            warnings.warn("model is in training mode: dropout is active and BatchNorm uses batch "
                          "statistics; call model.eval() before exporting", stacklevel=2)
        try:
            self._open_file()
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

    def _open_file(self) -> None:
        """The file written under its temporary name (mpicka.compare's
        in-process collector writes none)."""
        self._made = make_folders(os.path.dirname(self.path))
        self._file = h5py.File(self._tmp, "w", track_order=True)

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
        remove_folders(self._made)
        self._made = []

    # -- IDs and masks --

    def add_ids(self, ids: Any) -> None:
        """Append one batch's example IDs (a tensor, array or list of ints or
        strs, one per example, in the batch's order). Call it once per call
        of the model, before or after it, for every batch or for none: the
        k-th call holds batch k's IDs and must have as many as that batch has
        examples (with ``tokens_as_examples``: call it before the batch's call
        or right after it; each token's ID is ``'<id>#<position>'``).
        Integers are stored exactly: int64, or uint64 when the first IDs
        given are uint64 (or Python ints above 2**63-1). The given IDs replace
        the default input hash."""
        if self._file is None:
            raise ExportError("add_ids outside the exporter's with block")
        self._guard(lambda: self._add_ids(as_ids(ids)))

    def set_mask(self, mask: Optional[torch.Tensor]) -> None:
        """The padding mask of the next call of the model: a bool tensor
        ``(N, T)``, True at padding (as PyTorch's ``src_key_padding_mask``),
        or None. It is used by the reductions over tokens (``pool`` over dim
        1, ``token="last"``, ``tokens_as_examples``) of every ``(N, T, ...)``
        output, and dropped after the call."""
        def check():
            if mask is None:
                self._mask = None
                return
            if not isinstance(mask, torch.Tensor):
                raise ExportError(f"mask: a bool tensor (N, T), True at padding, got {type(mask).__name__}")
            if mask.dtype != torch.bool:
                raise ExportError(f"mask: a bool tensor (N, T), True at padding (as PyTorch's "
                                  f"src_key_padding_mask), got {mask.dtype}; for an attention mask that is 1 "
                                  f"at real tokens, give attention_mask == 0")
            if mask.dim() != 2:
                raise ExportError(f"mask: a bool tensor (N, T), True at padding, got shape {tuple(mask.shape)}")
            self._mask = mask.detach()
        self._guard(check)

    def _add_ids(self, arr: np.ndarray) -> None:
        if self._ids_kind != "given":
            if self._ids is not None:   # the input hashes of the batches before: the given IDs replace them
                del self._file[IDS]
                self._ids = None
            self._ids_kind = "given"
        k = len(self._id_counts)
        self._id_counts.append(arr.size)
        self._match_ids(k)
        if not self.tokens:
            self._store_ids(arr, k)
        elif k >= self.batches:
            self._pending[k] = arr
        elif k == self.batches - 1 and self._last_rows is not None:
            self._store_ids(token_given(arr, self._last_rows.counts, self._last_rows.positions), k)
        else:
            raise ExportError(f"batch {k}: with tokens_as_examples, call add_ids before the batch's call or "
                              f"right after it (the tokens kept in batch {k} are no longer known)")

    def _store_ids(self, arr: np.ndarray, k: int) -> None:
        if arr.size == 0:
            return
        is_str = arr.dtype == object
        if self._ids is None:
            self._ids = create_ids(self._file, IDS, h5py.string_dtype("utf-8") if is_str else arr.dtype)
        elif is_str != (self._ids.dtype.kind == "O"):
            raise ExportError(f"batch {k}: IDs mix integers and strings between batches")
        elif not is_str:
            arr = fit_ids(arr, self._ids.dtype, k)
        append(self._ids, arr)

    def _match_ids(self, k: int) -> None:
        """Batch k's IDs against its examples, once both are known."""
        if k < len(self._id_counts) and k < len(self._batch_sizes) \
                and self._id_counts[k] != self._batch_sizes[k]:
            raise ExportError(f"batch {k}: {self._id_counts[k]} IDs for {self._batch_sizes[k]} examples "
                              f"(call add_ids once per batch with that batch's IDs)")

    # -- hooks --

    def _begin_call(self, module, args):
        if self._failed is not None:
            raise ExportError(f"an earlier error ended this export: {self._failed}")
        if self._in_call:
            # The last call never returned: an exception inside forward was
            # caught by the caller. Its outputs are partial; do not guess.
            raise ExportError("the model was called again after a call that did not return (an error "
                              "inside forward?); the export cannot continue")
        self._in_call = True
        self._pass = {}
        first = next(_tensors(args[0]), None) if args else None
        self._batch_n = first.shape[0] if first is not None else None
        if self._input_shape is None and args and isinstance(args[0], torch.Tensor) and args[0].dim() > 0:
            self._input_shape = tuple(args[0].shape[1:])
        self._guard(lambda: self._begin_checks(args))
        if not self.fastpath:
            torch.set_grad_enabled(True)
            return tuple(a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point()
                         else a for a in args)
        return None

    def _begin_checks(self, args) -> None:
        if self._mask is not None and self._batch_n is not None and self._mask.shape[0] != self._batch_n:
            raise ExportError(f"batch {self.batches}: the padding mask has {self._mask.shape[0]} rows but the "
                              f"batch has {self._batch_n} examples")
        if self._ids_kind != "hash":
            return
        self._batch_hash = input_hashes(args)
        if self._batch_hash is not None:
            return
        if self.batches:
            raise ExportError(f"batch {self.batches}: the model's first positional argument holds no tensor, "
                              f"so its input cannot be hashed as the earlier batches' were; give IDs")
        warnings.warn("the model was called without a positional tensor, so the examples' IDs cannot be a "
                      "hash of its input: /ids is the running index, which cannot tell a reordered export; "
                      "give IDs (ids= or add_ids)", stacklevel=4)
        self._ids_kind = "index"

    def _end_call(self, module, args, output) -> None:
        self._in_call = False
        if not self.fastpath:
            torch.set_grad_enabled(False)
        try:
            self._guard(self._write_batch)
        finally:
            self._mask = None

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
        layer = self._candidates[name]
        t = pick(layer.spec, output)
        self._pass.setdefault(name, []).append(describe(output) if t is None else self._convert(layer, t))

    def _convert(self, layer: _Layer, t: torch.Tensor) -> tuple:
        """Detach, reduce, cast: (the rows to store, the source dtype)."""
        name, spec = layer.name, layer.spec
        t = t.detach()
        if t.is_nested:
            t = unnest(name, t, self._mask)
        if spec.transform is not None:
            t = spec.transform(t)
            if not isinstance(t, torch.Tensor):
                raise ExportError(f"module '{name}': transform gave {type(t).__name__}, not a tensor")
            t = t.detach()
        if t.dim() == 0:
            raise ExportError(f"module '{name}' returned a scalar: no example axis")
        src = str(t.dtype)
        if t.is_complex():  # a cast would keep the real part and drop the rest
            raise ExportError(f"module '{name}' returned complex values ({src}); mpicka compares real "
                              f"features: wrap the module to return torch.view_as_real(out) or out.abs()")
        if not t.is_floating_point():
            t = t.float()
        rows = reduce_rows(spec, self.model, t, self._mask, self.batches)
        stored = self._cast(rows.data)
        if not bool(torch.isfinite(stored).all()):
            if bool(torch.isfinite(rows.data).all()):
                raise ExportError(f"module '{name}': values beyond float16's range (65504) in batch "
                                  f"{self.batches}; use dtype='float32'")
            raise ExportError(f"module '{name}': NaN or Inf in its output in batch {self.batches}")
        rows.data = stored.cpu().numpy()
        return rows, src

    def _cast(self, data: torch.Tensor) -> torch.Tensor:
        """The rows in the type they are stored as."""
        return data.to(_DTYPES[self.dtype][0])

    # -- one batch --

    def _write_batch(self) -> None:
        outputs, self._pass = self._pass, {}
        if self._layers is None:
            self._layers = self._first_layers(outputs)
        for layer in self._layers:
            self._check_once(layer.name, outputs.get(layer.name))
        first: Rows = outputs[self._layers[0].name][0][0]
        n = self._batch_n if self._batch_n is not None else \
            (first.counts.size if self.tokens else first.data.shape[0])
        for layer in self._layers:
            rows, src = outputs[layer.name][0]
            self._check_rows(layer, rows, first, n)
            self._store(layer, rows, src, n)
        self._write_ids(first, n)
        self._batch_sizes.append(n)
        self._match_ids(self.batches)
        self.n += first.data.shape[0]
        self.examples += n
        self.batches += 1

    def _store(self, layer: _Layer, rows: Rows, src: str, n: int) -> None:
        """Appends one layer's rows of the batch to its dataset (made by the first batch)."""
        if layer.dset is None:
            layer.dset = create_rows(self._file, layer.name, rows.data)
            layer.dset.attrs["module_class"] = type(layer.module).__name__
            layer.dset.attrs["reduction"] = rows.reduction
            layer.out_shape, layer.source_dtype = list(rows.shape), src
        elif rows.data.shape[1:] != layer.dset.shape[1:]:
            raise ExportError(self._shape_change(layer, rows, n))
        else:
            layer.out_shape = [a if a == b else -1 for a, b in zip(layer.out_shape, rows.shape)]
        append(layer.dset, rows.data)

    def _check_rows(self, layer: _Layer, rows: Rows, first: Rows, n: int) -> None:
        if self.tokens:
            if rows.counts.size != n:
                raise ExportError(f"module '{layer.name}': output has {rows.counts.size} examples but the batch "
                                  f"has {n} (is the batch not its first dim?)")
            if not (np.array_equal(rows.counts, first.counts) and np.array_equal(rows.positions, first.positions)):
                raise ExportError(f"module '{layer.name}' keeps {rows.data.shape[0]} tokens of batch {self.batches} "
                                  f"but module '{self._layers[0].name}' keeps {first.data.shape[0]}: "
                                  f"tokens_as_examples needs the same tokens in every layer")
        elif rows.data.shape[0] != n:
            raise ExportError(f"module '{layer.name}': output has {rows.data.shape[0]} rows but the batch "
                              f"has {n} examples (is the batch not its first dim? a sequence-first (T, N, ...) "
                              f"output can be turned with transform=lambda t: t.transpose(0, 1))")

    def _shape_change(self, layer: _Layer, rows: Rows, n: int) -> str:
        before = ("n",) + tuple(layer.dset.shape[1:])
        msg = (f"module '{layer.name}': output shape {(n,) + tuple(rows.data.shape[1:])} in batch {self.batches} "
               f"differs from {before} before")
        if len(rows.shape) == 2 and rows.shape[0] != layer.out_shape[0]:
            msg += ("; tokens of variable length? pool over them (pool='mean', pool_dims=1) with the padding "
                    "mask (mask=), take one (token='cls' or 'last'), or keep them as examples "
                    "(tokens_as_examples=True)")
        return msg

    def _write_ids(self, rows: Rows, n: int) -> None:
        k = self.batches
        if self._ids_kind == "hash":
            ids = self._batch_hash
            if self.tokens:
                ids = token_hashes(ids, rows.counts, rows.positions)
            self._store_ids(ids, k)
        elif self._ids_kind == "given" and self.tokens:
            arr = self._pending.pop(k, None)
            if arr is not None:
                if arr.size != n:
                    raise ExportError(f"batch {k}: {arr.size} IDs for {n} examples "
                                      f"(call add_ids once per batch with that batch's IDs)")
                self._store_ids(token_given(arr, rows.counts, rows.positions), k)
        if self.tokens:
            self._last_rows = rows

    def _first_layers(self, outputs: dict) -> list[_Layer]:
        """The layers in the order the first forward pass produced them."""
        missing = [n for n in self._candidates if n not in outputs]
        skip = {}
        for name, got in outputs.items():
            if len(got) > 1:
                skip[name] = f"ran {len(got)} times in one forward pass (a module reused in forward)"
            elif isinstance(got[0], str):
                skip[name] = (f"returned {got[0]}, not a tensor; choose one of its tensors with output= "
                              f"(e.g. output={{'{name}': 0}})")
        if self._explicit:
            if missing:
                raise ExportError(f"module '{missing[0]}' did not run in the forward pass"
                                  + (f" (nor did {len(missing) - 1} more)" if len(missing) > 1 else "")
                                  + not_run_hint(self.model, missing, self.fastpath))
            if skip:
                name = next(iter(skip))
                raise ExportError(f"module '{name}' {skip[name]}; or select other modules")
        else:
            self._warn_skipped(missing, outputs, skip)
        layers = [self._candidates[n] for n in outputs if n not in skip]
        if not layers:
            raise ExportError("no selected module returned a tensor in the forward pass"
                              + not_run_hint(self.model, missing, self.fastpath))
        return layers

    def _warn_skipped(self, missing: list[str], outputs: dict, skip: dict) -> None:
        """layers=None: the leaves that cannot be exported are named, never dropped silently."""
        def some(names):
            return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        reused = [n for n, g in outputs.items() if len(g) > 1]
        other = [n for n, g in outputs.items() if len(g) == 1 and n in skip]
        if reused:
            warnings.warn("skipped modules reused within one forward pass: " + some(reused), stacklevel=5)
        if other:
            warnings.warn(f"skipped modules whose output is not a tensor: {some(other)} ({outputs[other[0]][0]}); "
                          f"choose a tensor of theirs with output= (e.g. output={{'{other[0]}': 0}})", stacklevel=5)
        if missing:
            warnings.warn(f"skipped modules that did not run in the forward pass: {some(missing)}"
                          + not_run_hint(self.model, missing, self.fastpath), stacklevel=5)

    def _check_once(self, name: str, got: Optional[list]) -> None:
        if got is None:
            raise ExportError(f"module '{name}' did not run in forward pass {self.batches}")
        if len(got) > 1:
            raise ExportError(f"module '{name}' ran {len(got)} times in forward pass {self.batches}")
        if isinstance(got[0], str):
            raise ExportError(f"module '{name}' returned {got[0]}, not a tensor, in batch {self.batches}")

    # -- the end --

    def _finish(self) -> None:
        if self._layers is None:
            raise ExportError("the model never ran inside the exporter: no batch to write")
        f = self._file
        if self._id_counts and len(self._id_counts) != self.batches:
            raise ExportError(f"add_ids was called for {len(self._id_counts)} batches but the model ran "
                              f"{self.batches} (/ids has {sum(self._id_counts)} entries but {self.examples} "
                              f"examples were exported; call add_ids once per batch, one ID per example)")
        if self._ids_kind == "index":
            write_index(f, IDS, self.n)
        f.attrs["ids_source"] = {"index": "running index", "hash": "input hash", "given": "given"}[self._ids_kind]
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
        f.attrs["pool"] = "per layer" if isinstance(self.pool, dict) else (self.pool or "none")
        f.attrs["n"] = np.int64(self.n)
        f.attrs["examples"] = np.int64(self.examples)
        f.attrs["tokens_as_examples"] = self.tokens
        f.attrs["batches"] = np.int64(self.batches)
        for layer in self._layers:
            layer.dset.attrs["output_shape"] = np.asarray(layer.out_shape, dtype=np.int64)
        if self.world is not None:
            f.attrs["rank"] = np.int64(self.rank)
            f.attrs["world"] = np.int64(self.world)
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["exporter_version"] = __version__


# ---- the common case ---------------------------------------------------------

def _model_input(batch: Any, inputs: Any) -> Any:
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
           dtype: str = "float32", pool: PerLayer = None, pool_dims: PerLayer = None, token: PerLayer = None,
           tokens_as_examples: bool = False, output: PerLayer = None, transform: PerLayer = None,
           mask: Union[None, int, str, Callable[[Any], Any]] = None, ids: IdsSpec = None, fastpath: bool = True,
           rank: Optional[int] = None, world: Optional[int] = None,
           inputs: Union[None, int, str, Callable[[Any], Any]] = None,
           device: Optional[Union[str, torch.device]] = None) -> str:
    """Run ``model`` over ``loader`` and write the selected layers' outputs.

    The model runs under ``torch.no_grad()`` in the mode you set (call
    ``model.eval()`` first). See :class:`Exporter` for ``layers``, ``dtype``,
    ``pool``, ``pool_dims``, ``token``, ``tokens_as_examples``, ``output``,
    ``transform``, ``fastpath``, ``rank`` and ``world``, and the module
    docstring for the file.

    Parameters
    ----------
    loader : iterable of batches
        A ``torch.utils.data.DataLoader`` or any iterable. The model's input
        is the batch itself when it is a tensor, else ``batch[0]``; pass
        ``inputs`` otherwise. Keep its order fixed (``shuffle=False``): both
        models must see the same examples in the same order (a loader with a
        random sampler draws a warning).
    ids : None, INPUT_HASH, RUNNING_INDEX, int, str or callable
        The examples' IDs, stored as ``/ids``, which mpicka compares between
        the models (and stops, exit status 3, naming the first example that
        differs). ``None`` (``INPUT_HASH``): a 63-bit hash of each example's
        input to the model (bytes, dtype and shape), so that an export in
        another order, or of other inputs (random augmentations), disagrees;
        models given different inputs for the same example (another
        resolution or normalisation) need real IDs. A field of the batch
        (``batch[ids]``, an index into a tuple batch or a key into a dict
        batch) or a callable ``ids(batch)``: real IDs, one int or str per
        example. ``RUNNING_INDEX``: 0..n-1 of this process (checks nothing
        about the order).
    mask : None, int, str or callable
        The padding mask of each batch, ``batch[mask]`` or ``mask(batch)``: a
        bool tensor ``(N, T)``, True at padding (PyTorch's
        ``src_key_padding_mask``); see :meth:`Exporter.set_mask`.
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
    warn_random_order(loader, ids)
    given = ids is not None and not isinstance(ids, _IdsKind)
    dev = torch.device(device) if device is not None else _model_device(model)
    with Exporter(model, path, layers, dtype=dtype, pool=pool, pool_dims=pool_dims, token=token,
                  tokens_as_examples=tokens_as_examples, output=output, transform=transform,
                  ids=RUNNING_INDEX if given else ids, fastpath=fastpath, rank=rank, world=world) as ex:
        for batch in loader:
            x = _to_device(_model_input(batch, inputs), dev)
            if mask is not None:
                ex.set_mask(batch_field(batch, mask, "mask"))
            model(*x) if isinstance(x, tuple) else model(x)
            if given:
                ex.add_ids(batch_field(batch, ids, "ids"))
    return ex.path
