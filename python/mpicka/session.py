"""CKA while the model runs: a :class:`Session` of libmpicka, fed minibatches
of activations in this process, with nothing written but the result.

    s = Session({"jackknife": 20, "output": "results/ab"}, n=len(data))
    for g, batch in enumerate(batches):            # batch g: examples [g*m, (g+1)*m)
        s.feed(g, {"a": {"fc": fa(batch)}, "b": {"fc": fb(batch)}})
    r = s.finish()                                  # an mpicka.result.Result

The library computes exactly what ``mpicka run`` computes from files holding
the same activations, with the same config: the same bits, whatever the
split of the batches over sessions (export + merge, :mod:`mpicka.distributed`).
"""

from __future__ import annotations

import ctypes
import os
from typing import Any, Mapping, Optional

import numpy as np

from . import _config
from ._lib import DTYPES, MpickaError, call, library, take_bytes
from .result import Result, load

__all__ = ["Session", "MpickaError"]


def as_array(x: Any, model: str, layer: str, g: int) -> np.ndarray:
    """A numpy array or torch tensor as a C-contiguous host array of the
    same dtype (float16, float32 or float64; anything else is refused)."""
    if type(x).__module__.startswith("torch"):
        x = x.detach()
        name = str(x.dtype).replace("torch.", "")
        if name not in DTYPES:
            raise TypeError(f"model '{model}', layer '{layer}', batch {g}: a tensor of {x.dtype}; mpicka takes "
                            f"float16, float32 or float64 (cast it, e.g. t.float())")
        x = x.cpu().contiguous().numpy()
    elif not isinstance(x, np.ndarray):
        raise TypeError(f"model '{model}', layer '{layer}', batch {g}: expected a numpy array or a torch tensor, "
                        f"got {type(x).__name__}")
    if x.dtype.name not in DTYPES or x.dtype.byteorder == ">":
        raise TypeError(f"model '{model}', layer '{layer}', batch {g}: an array of {x.dtype}; mpicka takes "
                        f"float16, float32 or float64")
    if x.ndim == 0:
        raise ValueError(f"model '{model}', layer '{layer}', batch {g}: a scalar, with no example axis")
    return np.ascontiguousarray(x)


class _Layer:
    def __init__(self, model: str, name: str, shape: tuple, dtype: Optional[str]):
        self.model, self.name, self.shape, self.dtype = model, name, tuple(int(d) for d in shape), dtype


def _declared(models: Optional[Mapping]) -> Optional[list]:
    """``{"model": {"layer": shape or (shape, dtype)}}`` -> the flat layers."""
    if models is None:
        return None
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models: a dict {model name: {layer name: shape or (shape, dtype)}} with a model at least")
    out = []
    for model, layers in models.items():
        if not isinstance(layers, Mapping) or not layers:
            raise TypeError(f"models['{model}']: a dict {{layer name: shape or (shape, dtype)}} with a layer at least")
        for layer, spec in layers.items():
            dtype = None
            if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], (str, np.dtype, type)):
                spec, dtype = spec
                dtype = np.dtype(dtype).name
                if dtype not in DTYPES:
                    raise TypeError(f"models['{model}']['{layer}']: dtype {dtype}; float16, float32 or float64")
            shape = (spec,) if isinstance(spec, int) else tuple(spec)
            out.append(_Layer(str(model), str(layer), shape, dtype))
    return out


class Session:
    """One CKA computation fed in this process (``include/mpicka/session.h``).

    Parameters
    ----------
    config : dict, path or YAML text, optional
        The keys of a run's config (estimator, kernel, batch_size, precision,
        jackknife, permutations, seed, output, plot, threads,
        progress_seconds, measures, ...) without inputs; ``**keys`` override
        them (``jackknife=True``). Keys that only make sense for files
        (epochs > 1, shuffle, checkpoint, ids, layer_order) are refused by
        the library, saying to export instead. Without ``output`` nothing
        is written and :meth:`finish` returns the matrices.
    models : dict, optional
        ``{"model": {"layer": shape or (shape, dtype)}}`` in feeding order;
        shape is one example's (without the example axis). Default: the
        models, layers, shapes and dtypes of the first batch fed (in its
        dicts' order). One model: against itself; two: x against y; three
        or more: as ``models:`` (every layer against every other).
    n : int
        Examples in all; batch g holds ``[g*m, min((g+1)*m, n))``, m the
        batch size (a tail under 4 examples is left out, as in a file run,
        except with the exact estimator).
    rank, world : int
        This process among those feeding (progress is shown by rank 0).
    force : bool
        As ``mpicka run --force``: replace a result of another configuration
        in the output folder (without it, such a folder is refused before
        any work; a result of the same configuration is replaced).
    """

    def __init__(self, config: _config.Config = None, models: Optional[Mapping] = None, *, n: int,
                 rank: int = 0, world: int = 1, force: bool = False, **keys: Any):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n: the number of examples, a positive int, got {n!r}")
        if not (isinstance(rank, int) and isinstance(world, int) and 0 <= rank < world):
            raise ValueError(f"need 0 <= rank < world, got rank={rank!r}, world={world!r}")
        self.config = _config.load_config(config, keys)
        self.n, self.rank, self.world = n, rank, world
        self.batch_size = _config.batch_size(self.config)
        self._layers = _declared(models)
        self._ptr = ctypes.c_void_p()
        self._started = False
        self._probe: Optional[bytes] = None     # set before the session could start
        self._last_g = -1
        self._finished: Optional[Result] = None
        call("mk_session_open", _config.to_yaml(self.config).encode(), None, ctypes.byref(self._ptr))
        call("mk_session_set_force", self._ptr, int(bool(force)))
        if self._layers is not None and all(layer.dtype for layer in self._layers):
            self._start()

    # -- life --

    def close(self) -> None:
        """Frees the library's session (also on garbage collection)."""
        if getattr(self, "_ptr", None) and self._ptr.value:
            library().mk_session_close(self._ptr)
            self._ptr = ctypes.c_void_p()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _handle(self) -> ctypes.c_void_p:
        if not self._ptr.value:
            raise MpickaError("the session is closed", "MK_EUSAGE")
        return self._ptr

    # -- the plan --

    @property
    def models(self) -> list:
        """The model names in feeding order (once known)."""
        return list(dict.fromkeys(layer.model for layer in self._layers or []))

    @property
    def batches(self) -> int:
        """The batches of the plan (known before the first feed)."""
        return plan_batches(self.n, self.batch_size, _config.keeps_all(self.config))

    def batch_range(self, g: int) -> range:
        """The examples of batch g."""
        return batch_range(self.n, self.batch_size, g)

    def _start(self) -> None:
        h = self._handle()
        index: dict[str, int] = {}
        for layer in self._layers:
            if layer.model not in index:
                m = ctypes.c_int()
                call("mk_session_add_model", h, layer.model.encode(), ctypes.byref(m))
                index[layer.model] = m.value
            dims = (ctypes.c_int64 * max(len(layer.shape), 1))(*layer.shape)
            call("mk_session_add_layer", h, index[layer.model], layer.name.encode(), len(layer.shape), dims,
                 DTYPES[layer.dtype])
        call("mk_session_start", h, self.n, self.rank, self.world)
        self._started = True
        lib, last = library(), self.batches - 1
        theirs = (lib.mk_session_batches(h), lib.mk_session_batch_rows(h, 0), lib.mk_session_batch_rows(h, last))
        ours = (self.batches, len(self.batch_range(0)), len(self.batch_range(last)))
        if theirs != ours:   # the sampler's plan must be the library's
            raise MpickaError(f"the library's batch plan (batches, first and last sizes {theirs}) differs from "
                              f"the Python side's {ours}: a libmpicka.so of another version?", "MK_EINTERNAL")
        if self._probe is not None:
            call("mk_session_set_probe", h, self._probe, len(self._probe))

    # -- feeding --

    def feed(self, g: int, activations: Mapping[str, Mapping[str, Any]]) -> None:
        """Feeds batch g: ``{"model": {"layer": array}}``, every declared
        layer of every model, each ``(rows, *shape)`` with rows the examples
        of batch g (numpy arrays or torch tensors of float16, float32 or
        float64, on any device: copied to host memory when not there, never
        cast). Batches come in ascending g. Errors name the model, layer and
        batch: a layer missing or unknown, a shape or dtype that changed,
        models that disagree on the batch size, NaN or Inf (the library's
        check, naming the example too)."""
        if isinstance(g, np.integer):
            g = int(g)
        if not isinstance(g, int) or not 0 <= g < self.batches:
            raise ValueError(f"batch {g!r}: outside the plan's {self.batches} batches (n={self.n}, "
                             f"batch_size={self.batch_size})")
        if g <= self._last_g:
            raise ValueError(f"batch {g}: batches are fed in ascending order, and batch {self._last_g} was fed")
        arrays = self._arrays(g, activations)
        if not self._started:
            self._start()
        ptrs = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        call("mk_session_feed", self._handle(), g, ptrs, arrays[0].shape[0])
        self._last_g = g

    def _arrays(self, g: int, activations: Mapping) -> list:
        if not isinstance(activations, Mapping) or not all(isinstance(v, Mapping) for v in activations.values()):
            raise TypeError(f"batch {g}: activations are a dict {{model: {{layer: array}}}}")
        if self._layers is None or not all(layer.dtype for layer in self._layers):
            self._layers = self._first(g, activations)
        self._match_names(g, activations)
        want = len(self.batch_range(g))
        arrays, first = [], None
        for layer in self._layers:
            a = as_array(activations[layer.model][layer.name], layer.model, layer.name, g)
            where = f"model '{layer.model}', layer '{layer.name}', batch {g}"
            if first is None:
                first = (layer, a.shape[0])
            if a.shape[0] != first[1]:
                raise ValueError(f"batch {g}: the models disagree on the batch size: model '{first[0].model}', "
                                 f"layer '{first[0].name}' has {first[1]} examples, model '{layer.model}', layer "
                                 f"'{layer.name}' {a.shape[0]}")
            if a.shape[1:] != layer.shape:
                raise ValueError(f"{where}: shape {a.shape} (examples, ...); it was (n, "
                                 f"{', '.join(map(str, layer.shape))}) before (declared or in the first batch)")
            if a.dtype.name != layer.dtype:
                raise TypeError(f"{where}: {a.dtype}, but the layer is {layer.dtype} (declared or in the "
                                f"first batch)")
            arrays.append(a)
        if first[1] != want:
            raise ValueError(f"batch {g}: {first[1]} examples, but batch {g} of the plan holds {want} "
                             f"(examples {self.batch_range(g).start} to {self.batch_range(g).stop - 1}; n={self.n}, "
                             f"batch_size={self.batch_size})")
        return arrays

    def _first(self, g: int, activations: Mapping) -> list:
        """The declaration from the first batch (checked against ``models=``)."""
        got = []
        for m, layers in activations.items():
            for layer, a in layers.items():
                a = as_array(a, m, layer, g)
                got.append(_Layer(m, layer, a.shape[1:], a.dtype.name))
        if not got:
            raise ValueError(f"batch {g}: no activations")
        if self._layers is None:
            return got
        found = {(x.model, x.name): x for x in got}
        for layer in self._layers:
            have = found.get((layer.model, layer.name))
            if have is not None:
                layer.dtype = have.dtype
        return self._layers

    def _match_names(self, g: int, activations: Mapping) -> None:
        known = {}
        for layer in self._layers:
            known.setdefault(layer.model, []).append(layer.name)
        for model, layers in activations.items():
            if model not in known:
                raise KeyError(f"batch {g}: model '{model}' is not one of the session's ({', '.join(known)})")
            extra = [x for x in layers if x not in known[model]]
            if extra:
                raise KeyError(f"batch {g}: model '{model}' has no layer '{extra[0]}' (its layers: "
                               f"{', '.join(known[model])})")
        for model, names in known.items():
            missing = [x for x in names if x not in activations.get(model, {})]
            if missing:
                raise KeyError(f"batch {g}: model '{model}', layer '{missing[0]}' is missing")

    # -- between processes --

    def probe(self) -> bytes:
        """After batch 0 was fed here: the layers' scales (and the exact
        estimator's shift) that every other process needs before its first
        feed (:meth:`set_probe`)."""
        buf, n = ctypes.c_void_p(), ctypes.c_int64()
        call("mk_session_probe", self._handle(), ctypes.byref(buf), ctypes.byref(n))
        return take_bytes(buf, n.value)

    def set_probe(self, probe: bytes) -> None:
        """Takes :meth:`probe`'s bytes from the process that fed batch 0
        (before this session's first feed). Until the models are known
        (``models=`` or the first batch) they are kept, and checked by the
        library at the first feed."""
        self._probe = bytes(probe)
        if self._started:
            call("mk_session_set_probe", self._handle(), self._probe, len(self._probe))

    def export(self) -> Optional[bytes]:
        """The partial sums of what this session was fed, for another
        process's :meth:`merge`; None when it was fed nothing."""
        if not self._started:
            return None
        buf, n = ctypes.c_void_p(), ctypes.c_int64()
        call("mk_session_export", self._handle(), ctypes.byref(buf), ctypes.byref(n))
        return take_bytes(buf, n.value)

    def merge(self, state: Optional[bytes]) -> None:
        """Adds another session's :meth:`export` (None: it was fed nothing)."""
        if state is not None:
            call("mk_session_merge", self._handle(), bytes(state), len(state))

    # -- the end --

    def finish(self) -> Result:
        """Reduces (every batch must have been fed here or merged), computes
        and, with ``output`` in the config, writes cka.h5, cka.csv and the
        heatmap as ``mpicka run`` does. Returns the result: the cka.h5
        written, read with :func:`mpicka.result.load`, else one built from
        the matrices (``path`` empty, no provenance)."""
        if self._finished is not None:
            return self._finished
        if not self._started:
            raise MpickaError("finish: no batch was fed to or merged into this session", "MK_EUSAGE")
        call("mk_session_finish", self._handle())
        out = _config.output(self.config)
        self._finished = load(os.path.join(out, "cka.h5")) if out is not None else self._matrices()
        return self._finished

    def matrix(self, name: str) -> Optional[np.ndarray]:
        """A matrix by its cka.h5 dataset name after :meth:`finish` (a copy),
        None when this run made none of that name."""
        data, rows, cols = ctypes.POINTER(ctypes.c_double)(), ctypes.c_int64(), ctypes.c_int64()
        lib = library()
        rc = lib.mk_session_matrix(self._handle(), name.encode(), ctypes.byref(data), ctypes.byref(rows),
                                   ctypes.byref(cols))
        if rc != 0:
            return None
        return np.ctypeslib.as_array(data, shape=(rows.value * cols.value,)).copy().reshape(rows.value, cols.value)

    def _matrices(self) -> Result:
        names = self.models
        per = {m: [x.name for x in self._layers if x.model == m] for m in names}
        flat = [x.name for x in self._layers]
        x, y = (per[names[0]], per[names[-1]]) if len(names) <= 2 else (flat, flat)

        def col(name):
            a = self.matrix(name)
            return None if a is None else a.reshape(-1)
        res = Result(path="", cka=self.matrix("cka"), x_layers=x, y_layers=y, hsic_xy=self.matrix("hsic_xy"),
                     hsic_xx=col("hsic_xx"), hsic_yy=col("hsic_yy"), stderr=self.matrix("cka_stderr"),
                     pvalue=self.matrix("cka_pvalue"), provenance={"n": self.n})
        if len(names) > 2:
            res.models = names
            res.model_offsets = np.cumsum([0] + [len(per[m]) for m in names]).astype(np.int64)
            res.matched_layers = [x for x in per[names[0]] if all(x in per[m] for m in names)]
            # /cka_matched* are cells of the whole matrices, as the file holds them
            rows = np.array([[res.model_offsets[k] + per[m].index(layer) for k, m in enumerate(names)]
                             for layer in res.matched_layers], dtype=np.int64).reshape(-1, len(names))
            for attr, full in (("cka_matched", res.cka), ("cka_matched_stderr", res.stderr),
                               ("cka_matched_pvalue", res.pvalue)):
                if full is not None and res.matched_layers:   # none in common: none, as in the file
                    setattr(res, attr, full[rows[:, :, None], rows[:, None, :]])
        return res


def plan_batches(n: int, m: int, keep_all: bool) -> int:
    """The batches ``mpicka run`` cuts a file of n examples into without
    shuffle: batch g is ``[g*m, min((g+1)*m, n))``; a tail of fewer than 4
    examples is left out (a batch of its own for the exact estimator)."""
    full, rest = divmod(n, m)
    return full + (1 if rest >= _config.MIN_BATCH or (rest and keep_all) else 0)


def batch_range(n: int, m: int, g: int) -> range:
    """The examples of batch g."""
    return range(g * m, min((g + 1) * m, n))
