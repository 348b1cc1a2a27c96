"""From a module's output to the rows an export stores: the element of a
tuple or dict output, a transform, then at most one reduction (pooling over
chosen dims, one token, or every token as an example), with padding masks.

Nothing about the layout is guessed where it is ambiguous: ``pool`` without
``pool_dims`` pools a conv map's spatial dims only where the output is
obviously ``(N, C, spatial...)`` (the module is a convolution, norm or
pooling layer, or a container of those without attention, LayerNorm,
Linear or a permute; or an activation in a model of convolutions); any other
output of more than two dims, such as a transformer's ``(N, T, D)`` or
Swin's channels-last ``(N, H, W, C)``, needs its dims named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch import nn

from ._ids import ExportError

POOLS = (None, "mean", "max")
TOKENS = ("cls", "first", "last")

Output = Union[None, int, str, Callable[[Any], torch.Tensor]]
Dims = Union[None, int, tuple]
Token = Union[None, str, int]

_CHANNELS_FIRST = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
                   nn.GroupNorm, nn.LocalResponseNorm, nn.modules.pooling._MaxPoolNd,
                   nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
                   nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.pooling._LPPoolNd, nn.Upsample,
                   nn.PixelShuffle, nn.PixelUnshuffle)
_TOKEN_SIGNS = (nn.LayerNorm, nn.MultiheadAttention, nn.modules.rnn.RNNBase, nn.Embedding, nn.EmbeddingBag)
_TOKEN_WORDS = ("Permute", "Attention", "Transformer", "LayerNorm")
_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU,
                nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus,
                nn.Threshold, nn.modules.dropout._DropoutNd, nn.Identity)


class Spec:
    """One layer's options, checked when the exporter is made."""

    def __init__(self, name: str, module: nn.Module, *, output: Output = None,
                 transform: Optional[Callable] = None, pool: Optional[str] = None, pool_dims: Dims = None,
                 token: Token = None, tokens_as_examples: bool = False, dims_named: bool = True):
        self.name, self.module = name, module
        where = f" (layer '{name}')"
        if output is not None and not (callable(output) or _is_int(output) or isinstance(output, str)):
            raise TypeError(f"output: an index, a key or a callable, got {output!r}{where}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform: a callable (tensor -> tensor), got {transform!r}{where}")
        if pool not in POOLS:
            raise ValueError(f"pool must be None, 'mean' or 'max', got {pool!r}{where}")
        if pool_dims is not None and pool is None and not dims_named:
            pool_dims = None    # pool_dims for every layer: the dims of the layers that pool
        if pool_dims is not None:
            if pool is None:
                raise ValueError(f"pool_dims={pool_dims!r} without pool: give pool='mean' or 'max'{where}")
            pool_dims = (pool_dims,) if _is_int(pool_dims) else pool_dims
            if not (isinstance(pool_dims, (tuple, list)) and pool_dims and all(_is_int(d) for d in pool_dims)):
                raise TypeError(f"pool_dims: a dim or a tuple of dims (ints), got {pool_dims!r}{where}")
            pool_dims = tuple(pool_dims)
        if token is not None and token not in TOKENS and not _is_int(token):
            raise ValueError(f"token must be 'cls', 'first', 'last' or an index, got {token!r}{where}")
        if token is not None and pool is not None:
            raise ValueError(f"token={token!r} and pool={pool!r} both reduce the tokens: choose one{where}")
        if tokens_as_examples and (pool is not None or token is not None):
            raise ValueError(f"tokens_as_examples keeps every token: it takes neither pool nor token{where}")
        self.output, self.transform, self.pool, self.pool_dims = output, transform, pool, pool_dims
        self.token, self.tokens = token, bool(tokens_as_examples)
        self.conv_map: Optional[bool] = None   # the layout verdict, decided once


class Rows:
    """A layer's stored rows for one batch, and what they came from."""

    def __init__(self, data: torch.Tensor, shape: tuple, reduction: str,
                 counts: Optional[np.ndarray] = None, positions: Optional[np.ndarray] = None):
        self.data = data            # (rows, *stored per-row shape)
        self.shape = shape          # the per-example output shape before the reduction
        self.reduction = reduction  # for the dataset's attribute
        self.counts = counts        # tokens as examples: tokens kept per example
        self.positions = positions  # and each row's position in its example


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


# ---- the tensor of an output ---------------------------------------------------

def describe(out: Any) -> str:
    """A short description of a non-tensor output for messages."""
    def one(v):
        return f"Tensor {tuple(v.shape)}" if isinstance(v, torch.Tensor) else type(v).__name__
    if isinstance(out, (tuple, list)):
        return f"{type(out).__name__} (" + ", ".join(f"{i}: {one(v)}" for i, v in enumerate(out[:6])) + \
            (", ..." if len(out) > 6 else "") + ")"
    if isinstance(out, Mapping):
        return f"{type(out).__name__} (" + ", ".join(f"'{k}': {one(v)}" for k, v in list(out.items())[:6]) + ")"
    return type(out).__name__


def pick(spec: Spec, out: Any) -> Optional[torch.Tensor]:
    """The tensor ``output=`` chooses from a module's output; None when the
    output is not a tensor and nothing chooses one."""
    sel, name = spec.output, spec.name
    if callable(sel):
        got = sel(out)
        if not isinstance(got, torch.Tensor):
            raise ExportError(f"module '{name}': output={getattr(sel, '__name__', sel)!r} gave "
                              f"{type(got).__name__}, not a tensor")
        return got
    if isinstance(out, torch.Tensor) or sel is None:
        return out if isinstance(out, torch.Tensor) else None
    if isinstance(out, (tuple, list)) and _is_int(sel):
        if not -len(out) <= sel < len(out):
            raise ExportError(f"module '{name}': output={sel} is beyond its {describe(out)}")
        got = out[sel]
    elif isinstance(out, Mapping) and isinstance(sel, str):
        if sel not in out:
            raise ExportError(f"module '{name}': output='{sel}' is not a key of its {describe(out)}")
        got = out[sel]
    else:
        raise ExportError(f"module '{name}': output={sel!r} cannot choose from its {describe(out)} "
                          f"(an index for a tuple or list, a key for a dict, or a callable)")
    if not isinstance(got, torch.Tensor):
        raise ExportError(f"module '{name}': output={sel!r} is {describe(got)}, not a tensor; "
                          f"choose deeper with a callable, e.g. output=lambda out: out[{sel!r}][0]")
    return got


def unnest(name: str, t: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """A nested tensor (PyTorch's fast path turns a padded batch into one
    inside nn.TransformerEncoder) as the padded batch it stands for: zeros at
    the padding, as long as the mask."""
    parts = t.unbind()
    if mask is None:
        raise ExportError(f"module '{name}' returned a nested tensor (PyTorch's TransformerEncoder fast path "
                          f"with a padding mask): pass the padding mask with mask= so that it is padded back "
                          f"to the batch's length")
    size = (mask.shape[0], mask.shape[1]) + tuple(parts[0].shape[1:])
    return t.to_padded_tensor(0.0, size)


# ---- the reduction -------------------------------------------------------------

def reduce_rows(spec: Spec, root: nn.Module, t: torch.Tensor, mask: Optional[torch.Tensor], k: int) -> Rows:
    """``t`` (float, batch first) reduced as ``spec`` says; ``mask``: this
    batch's padding (bool (N, T), True at padding) or None; k: the batch."""
    shape, nd = tuple(t.shape[1:]), t.dim()
    if spec.tokens:
        return _tokens(spec, t, mask, shape)
    if nd <= 2:
        return Rows(t, shape, "none")
    if spec.token is not None:
        return _token(spec, t, mask, k, shape)
    if spec.pool is not None:
        return _pool(spec, root, t, mask, k, shape)
    if mask is not None:
        raise ExportError(f"module '{spec.name}': output {_shape(t)} would be stored whole, its padded positions "
                          f"included, but mask= marks padding: pool over the tokens (pool='mean', pool_dims=1), "
                          f"take a token (token='cls') or keep tokens as examples (tokens_as_examples=True)")
    return Rows(t, shape, "none")


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(["N"] + [str(s) for s in t.shape[1:]]) + ")"


def _check_mask(spec: Spec, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mask on t's device, after checking it fits t's (N, T)."""
    if t.shape[0] != mask.shape[0] or t.dim() < 2 or t.shape[1] != mask.shape[1]:
        raise ExportError(f"module '{spec.name}': output {tuple(t.shape)} does not fit the padding mask "
                          f"{tuple(mask.shape)} (N, T): the mask marks tokens on dim 1")
    return mask.to(t.device)


def _tokens(spec: Spec, t: torch.Tensor, mask: Optional[torch.Tensor], shape: tuple) -> Rows:
    if t.dim() != 3:
        raise ExportError(f"module '{spec.name}': tokens_as_examples needs (N, T, D) outputs, got {_shape(t)}; "
                          f"reshape it with transform= (e.g. lambda t: t.flatten(1, -2) for (N, H, W, C)) "
                          f"or export this layer separately")
    n, length = t.shape[0], t.shape[1]
    if mask is None:
        keep = torch.ones(n, length, dtype=torch.bool, device=t.device)
    else:
        keep = ~_check_mask(spec, t, mask)
    counts = keep.sum(1).cpu().numpy().astype(np.int64)
    positions = keep.nonzero()[:, 1].cpu().numpy().astype(np.int64)
    return Rows(t[keep], shape, "tokens as examples", counts, positions)


def _token(spec: Spec, t: torch.Tensor, mask: Optional[torch.Tensor], k: int, shape: tuple) -> Rows:
    if t.dim() != 3:
        raise ExportError(f"module '{spec.name}': token={spec.token!r} takes a token of an (N, T, D) output, "
                          f"got {_shape(t)}; pool it with pool_dims, or reshape it with transform=")
    n, length = t.shape[0], t.shape[1]
    valid = None if mask is None else ~_check_mask(spec, t, mask)
    if spec.token == "last" and valid is not None:
        if not bool(valid.any(1).all()):
            raise ExportError(f"module '{spec.name}': batch {k} has an example that is all padding")
        idx = length - 1 - valid.flip(1).int().argmax(1)
    else:
        i = {"cls": 0, "first": 0, "last": length - 1}.get(spec.token, spec.token)
        if not -length <= i < length:
            raise ExportError(f"module '{spec.name}': token={spec.token} is beyond its {length} tokens")
        idx = torch.full((n,), i % length, dtype=torch.long, device=t.device)
        if valid is not None and not bool(valid[torch.arange(n, device=t.device), idx].all()):
            bad = int((~valid[torch.arange(n, device=t.device), idx]).nonzero()[0])
            raise ExportError(f"module '{spec.name}': token={spec.token!r} is padding in example {bad} of batch "
                              f"{k}; take token='last' (the last token that is not padding) or pool")
    return Rows(t[torch.arange(n, device=t.device), idx], shape, f"token {spec.token}")


def _pool(spec: Spec, root: nn.Module, t: torch.Tensor, mask: Optional[torch.Tensor], k: int,
          shape: tuple) -> Rows:
    nd = t.dim()
    if spec.pool_dims is None:
        if spec.conv_map is None:
            spec.conv_map = conv_map(root, spec.module, nd)
        if not spec.conv_map:
            raise ExportError(_ambiguous(spec, t))
        dims = tuple(range(2, nd))
    else:
        dims = _dims(spec, nd)
    what = f"{spec.pool} over dims {list(dims)}"
    if mask is None:
        return Rows(t.mean(dim=dims) if spec.pool == "mean" else t.amax(dim=dims), shape, what)
    if 1 not in dims:
        raise ExportError(f"module '{spec.name}': mask= marks padding tokens on dim 1, but pool_dims "
                          f"{list(dims)} leaves dim 1 whole, its padded positions included; pool over dim 1")
    valid = ~_check_mask(spec, t, mask)
    count = valid.sum(1)
    if not bool((count > 0).all()):
        raise ExportError(f"module '{spec.name}': batch {k} has an example that is all padding")
    keep = valid.reshape(valid.shape + (1,) * (nd - 2))
    if spec.pool == "max":
        pooled = t.masked_fill(~keep, float("-inf")).amax(dim=dims)
    else:
        other = int(np.prod([t.shape[d] for d in dims if d != 1], dtype=np.int64))
        total = torch.where(keep, t, torch.zeros((), dtype=t.dtype, device=t.device)).sum(dim=dims)
        pooled = total / (count.to(t.dtype) * other).reshape((-1,) + (1,) * (total.dim() - 1))
    return Rows(pooled, shape, what + ", padding masked")


def _dims(spec: Spec, nd: int) -> tuple:
    dims = []
    for d in spec.pool_dims:
        if not -nd <= d < nd or d % nd == 0:
            raise ExportError(f"module '{spec.name}': pool_dims={spec.pool_dims} do not fit its {nd}-D output "
                              f"(dims 1..{nd - 1}; dim 0 is the batch)")
        dims.append(d % nd)
    if len(set(dims)) != len(dims):
        raise ExportError(f"module '{spec.name}': pool_dims={spec.pool_dims} names a dim twice")
    return tuple(sorted(dims))


def _ambiguous(spec: Spec, t: torch.Tensor) -> str:
    nd = t.dim()
    guess = {3: "tokens (N, T, D): pool_dims=1; a conv map (N, C, L): pool_dims=2",
             4: "channels first (N, C, H, W): pool_dims=(2, 3); channels last (N, H, W, C): pool_dims=(1, 2)"}
    hint = guess.get(nd, f"the dims to pool, e.g. pool_dims={tuple(range(2, nd))} for (N, C, spatial...)")
    return (f"module '{spec.name}' ({type(spec.module).__name__}): pool={spec.pool!r} on output {_shape(t)}, "
            f"which is not obviously a conv map (N, C, spatial...): say which dims to pool with pool_dims "
            f"(dims of the output, batch = 0): {hint}; for one layer only: pool_dims={{'{spec.name}': ...}}; "
            f"or take a token with token='cls'")


def conv_map(root: nn.Module, module: nn.Module, nd: int) -> bool:
    """Whether an output of ``module`` is obviously ``(N, C, spatial...)``."""
    if isinstance(module, _CHANNELS_FIRST):
        return True
    inside = list(module.modules())
    if len(inside) > 1:
        return _convs_only(inside, linear_ok=False)
    if isinstance(module, _ELEMENTWISE):
        return _convs_only(list(root.modules()), linear_ok=nd >= 4)  # a CNN's head is Linear on (N, C)
    return False


def _convs_only(mods: list, linear_ok: bool) -> bool:
    def sign(m):
        name = type(m).__name__
        return isinstance(m, _TOKEN_SIGNS) or any(w in name for w in _TOKEN_WORDS) or \
            (not linear_ok and isinstance(m, nn.Linear))
    return any(isinstance(m, _CHANNELS_FIRST) for m in mods) and not any(sign(m) for m in mods)


# ---- modules that did not run ----------------------------------------------------

def _owner(mods: dict, name: str, cls) -> Optional[str]:
    """The nearest module above ``name`` that is a ``cls``, if any."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        owner = ".".join(parts[:i])
        if isinstance(mods.get(owner), cls):
            return owner
    return None


def not_run_hint(model: nn.Module, names: list[str], fastpath: bool) -> str:
    """Why modules of PyTorch's transformers did not run: in eval mode
    without gradients PyTorch's inference fast path computes a
    TransformerEncoderLayer in one fused kernel without calling its
    submodules, and nn.MultiheadAttention never calls its out_proj (it uses
    its weights)."""
    mods = dict(model.named_modules())
    hints = []
    attn = [n for n in names if n.endswith(".out_proj") and _owner(mods, n, nn.MultiheadAttention)]
    if attn:
        owner = _owner(mods, attn[0], nn.MultiheadAttention)
        hints.append(f"'{attn[0]}' is never called: nn.MultiheadAttention uses its weights directly; export "
                     f"the attention module '{owner}' with output={{'{owner}': 0}} (its output, before the weights)")
    layers = {o for o in (_owner(mods, n, nn.TransformerEncoderLayer) for n in names if n not in attn) if o}
    if layers and fastpath:
        owner = sorted(layers)[0]
        off = "export(..., fastpath=False) (or Exporter(..., fastpath=False))"
        if hasattr(getattr(torch.backends, "mha", None), "set_fastpath_enabled"):
            off += " or torch.backends.mha.set_fastpath_enabled(False)"
        hints.append(f"it is inside '{owner}' (TransformerEncoderLayer), which PyTorch's inference fast path "
                     f"(eval mode without gradients) runs as one fused kernel without calling its submodules: "
                     f"select '{owner}' itself, or turn the fast path off with {off}")
    elif layers:
        owner = sorted(layers)[0]
        hints.append(f"it is inside '{owner}' (TransformerEncoderLayer), which PyTorch's inference fast path ran "
                     f"although fastpath=False: the fast path stays on where neither the input nor the layer's "
                     f"weights require grad (frozen weights and integer inputs); call model.requires_grad_(True)")
    return "".join("; " + h for h in hints)
