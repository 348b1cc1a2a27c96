"""Read a ``cka.h5`` written by ``mpicka run`` (README, "Output")::

    r = mpicka.result.load("results/run1/cka.h5")
    r.cka                        # float64 (Lx, Ly), named by r.x_layers, r.y_layers
    r.stderr, r.pvalue           # None when the run made none
    r.provenance["n"], r.config  # every root attribute; the resolved config (YAML)
    r.to_pandas()                # long DataFrame, when pandas is installed
    r.models, r.block("a", "b")  # a run with `models:`: the names, one block
    r.matched("fc")              # the model-by-model matrix of one layer

Needs numpy and h5py only.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any, Optional

import h5py
import numpy as np

__all__ = ["Result", "ResultError", "load"]

_REQUIRED = ("cka", "x_layers", "y_layers")


class ResultError(ValueError):
    """A file that is not a readable mpicka result; the message names the file."""


@dataclass
class Result:
    """One CKA result.

    Attributes
    ----------
    path : str
        The file read.
    cka : ndarray, float64, (Lx, Ly)
        Row i is x layer i, column j is y layer j; NaN for a dead layer.
    x_layers, y_layers : list of str
        The layer names, in the matrix's order.
    hsic_xy : ndarray (Lx, Ly) or None; hsic_xx : (Lx,) or None; hsic_yy : (Ly,) or None
        The HSIC sums the matrix was normalised from.
    stderr : ndarray (Lx, Ly) or None
        Jackknife standard errors (``/cka_stderr``), when the run made them.
    pvalue : ndarray (Lx, Ly) or None
        Permutation p-values (``/cka_pvalue``), when the run made them.
    meta : dict
        The ``/meta`` attributes: estimator, kernel, description, ...
    provenance : dict
        Every root attribute: n, batch_size, batches, ranks, x_name, x_file,
        config, version, seconds, ... (strings as str, scalars as Python numbers).
    models : list of str
        Of a run with ``models:``: the model names (empty otherwise); model k
        is rows and columns ``model_offsets[k]`` to ``model_offsets[k+1]-1``.
    model_offsets : ndarray (N+1,) or None
    matched_layers : list of str
        The layer paths every model has; ``cka_matched[k]`` is the
        model-by-model CKA of ``matched_layers[k]``.
    cka_matched, cka_matched_stderr, cka_matched_pvalue : ndarray (K, N, N) or None
    """

    path: str
    cka: np.ndarray
    x_layers: list
    y_layers: list
    hsic_xy: Optional[np.ndarray] = None
    hsic_xx: Optional[np.ndarray] = None
    hsic_yy: Optional[np.ndarray] = None
    stderr: Optional[np.ndarray] = None
    pvalue: Optional[np.ndarray] = None
    meta: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    models: list = field(default_factory=list)
    model_offsets: Optional[np.ndarray] = None
    matched_layers: list = field(default_factory=list)
    cka_matched: Optional[np.ndarray] = None
    cka_matched_stderr: Optional[np.ndarray] = None
    cka_matched_pvalue: Optional[np.ndarray] = None

    def _need_models(self) -> None:
        if not self.models:
            raise ValueError(f"{self.path}: not a models result (a run with `models:`)")

    def _model(self, name: str) -> int:
        self._need_models()
        if name not in self.models:
            raise KeyError(f"{self.path}: no model {name!r}; the models are {', '.join(self.models)}")
        return self.models.index(name)

    def block(self, a: str, b: str, matrix: str = "cka") -> np.ndarray:
        """Of a models result: model a's layers (rows) against model b's
        (columns) of ``matrix`` ("cka", "stderr" or "pvalue")."""
        m = {"cka": self.cka, "stderr": self.stderr, "pvalue": self.pvalue}[matrix]
        if m is None:
            raise ValueError(f"{self.path}: the run made no {matrix}")
        off = self.model_offsets
        i, j = self._model(a), self._model(b)
        return m[off[i]:off[i + 1], off[j]:off[j + 1]]

    def matched(self, layer: str) -> np.ndarray:
        """Of a models result: the model-by-model CKA (N, N) of a layer every model has."""
        self._need_models()
        if layer not in self.matched_layers:
            raise KeyError(f"{self.path}: {layer!r} is not a layer every model has; those are "
                           f"{', '.join(self.matched_layers) or 'none'}")
        return self.cka_matched[self.matched_layers.index(layer)]

    @property
    def config(self) -> Optional[str]:
        """The run's resolved configuration (YAML), which ``mpicka run`` accepts as it is."""
        return self.provenance.get("config")

    @property
    def x_name(self) -> Optional[str]:
        return self.provenance.get("x_name")

    @property
    def y_name(self) -> Optional[str]:
        return self.provenance.get("y_name")

    def to_pandas(self, form: str = "long"):
        """The matrix as a pandas DataFrame.

        ``form="long"``: one row per layer pair with columns ``x_layer``,
        ``y_layer``, ``cka`` (and ``stderr``, ``pvalue`` when present), x
        layers outer, in the matrix's order. ``form="wide"``: the matrix
        itself, x layers as index, y layers as columns.
        """
        if form not in ("long", "wide"):
            raise ValueError(f"form must be 'long' or 'wide', got {form!r}")
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("Result.to_pandas() needs pandas, which is not installed (Debian: "
                              "apt-get install python3-pandas); the numbers are numpy arrays in "
                              ".cka, .stderr and .pvalue, named by .x_layers and .y_layers") from e
        if form == "wide":
            return pd.DataFrame(self.cka, index=pd.Index(self.x_layers, name="x_layer"),
                                columns=pd.Index(self.y_layers, name="y_layer"))
        lx, ly = self.cka.shape
        cols = {"x_layer": np.repeat(np.asarray(self.x_layers, dtype=object), ly),
                "y_layer": np.tile(np.asarray(self.y_layers, dtype=object), lx),
                "cka": self.cka.ravel()}
        if self.stderr is not None:
            cols["stderr"] = self.stderr.ravel()
        if self.pvalue is not None:
            cols["pvalue"] = self.pvalue.ravel()
        return pd.DataFrame(cols)


def _value(v: Any) -> Any:
    """An HDF5 attribute as a plain Python value."""
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray):
        if v.dtype.kind in "OS":
            return [x.decode("utf-8") if isinstance(x, bytes) else x for x in v.tolist()]
        return v
    if isinstance(v, np.generic):
        return v.item()
    return v


def _names(f: h5py.File, key: str) -> list:
    return [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in f[key][()].tolist()]


def _optional(f: h5py.File, key: str) -> Optional[np.ndarray]:
    return f[key][()] if key in f else None


def _open(path: str) -> h5py.File:
    """The file, refused unless a regular file (a FIFO would block h5py
    forever, a folder is no result) and HDF5."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except OSError as e:
        raise ResultError(f"{path}: cannot be read ({e.strerror})") from e
    if not stat.S_ISREG(st.st_mode):
        raise ResultError(f"{path}: not a regular file (a folder, FIFO or device); expected a cka.h5 "
                          f"written by mpicka run")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise ResultError(f"{path}: not an HDF5 file ({e})") from e


def load(path: str | os.PathLike) -> Result:
    """Read the ``cka.h5`` at ``path``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError``
    naming the file and what is wrong for one that is not a regular file
    (:class:`ResultError`), not HDF5, lacks
    ``/cka``, ``/x_layers`` or ``/y_layers``, or whose shapes disagree.
    """
    path = os.fspath(path)
    with _open(path) as f:
        missing = [k for k in _REQUIRED if k not in f]
        if missing:
            raise ValueError(f"{path}: not an mpicka result: no /{missing[0]}")
        r = Result(path=path, cka=np.asarray(f["cka"][()], dtype=np.float64),
                   x_layers=_names(f, "x_layers"), y_layers=_names(f, "y_layers"),
                   hsic_xy=_optional(f, "hsic_xy"), hsic_xx=_optional(f, "hsic_xx"),
                   hsic_yy=_optional(f, "hsic_yy"), stderr=_optional(f, "cka_stderr"),
                   pvalue=_optional(f, "cka_pvalue"),
                   meta={k: _value(v) for k, v in f["meta"].attrs.items()} if "meta" in f else {},
                   provenance={k: _value(v) for k, v in f.attrs.items()})
        if "model_names" in f:
            r.models = _names(f, "model_names")
            r.model_offsets = np.asarray(f["model_offsets"][()], dtype=np.int64)
            r.matched_layers = _names(f, "matched_layers")
            r.cka_matched = _optional(f, "cka_matched")
            r.cka_matched_stderr = _optional(f, "cka_matched_stderr")
            r.cka_matched_pvalue = _optional(f, "cka_matched_pvalue")
    want = (len(r.x_layers), len(r.y_layers))
    for key, m in (("cka", r.cka), ("cka_stderr", r.stderr), ("cka_pvalue", r.pvalue), ("hsic_xy", r.hsic_xy)):
        if m is not None and m.shape != want:
            raise ValueError(f"{path}: /{key} is {m.shape} but there are {want[0]} x and {want[1]} y layers")
    if r.models and (len(r.model_offsets) != len(r.models) + 1 or r.model_offsets[0] != 0
                     or r.model_offsets[-1] != want[0] or (np.diff(r.model_offsets) <= 0).any()):
        raise ValueError(f"{path}: /model_offsets {r.model_offsets.tolist()} does not split {want[0]} layers "
                         f"into {len(r.models)} models")
    return r
