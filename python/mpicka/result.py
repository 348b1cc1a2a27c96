"""Read a ``cka.h5`` written by ``mpicka run`` (docs/output.md)::

    r = mpicka.result.load("results/run1/cka.h5")
    r.cka                        # float64 (Lx, Ly), named by r.x_layers, r.y_layers
    r.stderr, r.pvalue           # None when the run made none
    r.provenance["n"], r.config  # every root attribute; the resolved config (YAML)
    r.to_pandas()                # long DataFrame, when pandas is installed
    r.models, r.block("a", "b")  # a run with `models:`: the names, one block
    r.matched("fc")              # the model-by-model matrix of one layer

A file that is not a whole, consistent result is a ResultError (a
ValueError) naming the file and the dataset. Needs numpy and h5py only.
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
    """A file that is not a readable mpicka result: not a regular file, not
    HDF5, or a dataset missing, of the wrong kind or shape, or at odds with
    another. The message names the file and the dataset."""


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


_MAX_LAYERS = 10_000_000  # as mpicka's own reader: a bound before any name is read


class _Reader:
    """Checked access to the datasets of one open result: every failure is a
    ResultError naming the file and the dataset. Kinds and shapes are checked
    from the metadata before anything is read."""

    def __init__(self, f: h5py.File, path: str):
        self.f, self.path = f, path

    def fail(self, key: str, what: str) -> ResultError:
        return ResultError(f"{self.path}: /{key} {what}")

    def dataset(self, key: str, why: str = "") -> h5py.Dataset:
        if key not in self.f:
            raise ResultError(f"{self.path}: not an mpicka result: no /{key}{why}")
        d = self.f.get(key)
        if not isinstance(d, h5py.Dataset):
            raise self.fail(key, "is not a dataset")
        return d

    def read(self, key: str, d: h5py.Dataset, how) -> Any:
        try:
            return how(d)
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as e:
            raise self.fail(key, f"cannot be read (damaged file?): {e}") from e

    def names(self, key: str, lo: int = 1, why: str = "") -> list:
        """A 1-D dataset of at least lo UTF-8 strings."""
        d = self.dataset(key, why)
        if h5py.check_string_dtype(d.dtype) is None:
            raise self.fail(key, f"is not a dataset of strings ({d.dtype})")
        self.shape(key, d, 1, lo)
        return self.read(key, d, lambda d: [str(s) for s in d.asstr(errors="strict")[()].tolist()])

    def shape(self, key: str, d: h5py.Dataset, ndim: int, lo: int = 1) -> tuple:
        if d.ndim != ndim:
            raise self.fail(key, f"has {d.ndim} dimension(s) (shape {d.shape}), expected {ndim}")
        if any(not lo <= k <= _MAX_LAYERS for k in d.shape):
            raise self.fail(key, f"has shape {d.shape}, expected {lo} to {_MAX_LAYERS} along every dimension")
        return d.shape

    def floats(self, key: str, want: tuple, of: str, required: bool = False, why: str = "") \
            -> Optional[np.ndarray]:
        """A float dataset of shape want (``of`` says where want comes from), as float64."""
        if not required and key not in self.f:
            return None
        d = self.dataset(key, why)
        if d.dtype.kind != "f":
            raise self.fail(key, f"is not a floating-point dataset ({d.dtype})")
        if d.shape != want:
            raise self.fail(key, f"is {d.shape} but {of} make it {want}")
        return self.read(key, d, lambda d: np.asarray(d[()], dtype=np.float64))

    def ints(self, key: str, n: int, of: str, why: str) -> list:
        """A 1-D integer dataset of n values, as Python ints (exact, whatever the stored type)."""
        d = self.dataset(key, why)
        if d.dtype.kind not in "iu":
            raise self.fail(key, f"is not an integer dataset ({d.dtype})")
        if d.shape != (n,):
            raise self.fail(key, f"is {d.shape} but {of} make it ({n},)")
        return self.read(key, d, lambda d: [int(v) for v in d[()].tolist()])


def _attrs(r: _Reader, obj, where: str) -> dict:
    """Every attribute of obj as a plain value; one HDF5 cannot convert is
    named (where: "" for the root, "/meta")."""
    out = {}
    for k in obj.attrs:
        try:
            out[k] = _value(obj.attrs[k])
        except (OSError, TypeError, ValueError, UnicodeDecodeError) as e:
            raise ResultError(f"{r.path}: attribute '{k}' of {where or 'the root'} cannot be read: {e}") from e
    return out


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

    Raises ``FileNotFoundError`` for a missing file and :class:`ResultError`
    (a ``ValueError``) naming the file and the dataset for one that is not a
    regular file, not HDF5, or not a whole, consistent result: a dataset
    missing, not a dataset, of the wrong type (names that are not a 1-D list
    of strings, matrices that are not floats), or whose shape disagrees with
    the layer names; of a models result, also /model_offsets, /model_names,
    /matched_layers and /cka_matched.
    """
    path = os.fspath(path)
    with _open(path) as f:
        r = _Reader(f, path)
        return _read(r)


def _read(r: _Reader) -> Result:
    for key in _REQUIRED:
        r.dataset(key)
    x, y = r.names("x_layers"), r.names("y_layers")
    want, of = (len(x), len(y)), "/x_layers and /y_layers"
    meta = r.f.get("meta")
    if meta is not None and not isinstance(meta, h5py.Group):
        raise r.fail("meta", "is not a group")
    res = Result(path=r.path, cka=r.floats("cka", want, of, required=True), x_layers=x, y_layers=y,
                 hsic_xy=r.floats("hsic_xy", want, of), hsic_xx=r.floats("hsic_xx", want[:1], "/x_layers"),
                 hsic_yy=r.floats("hsic_yy", want[1:], "/y_layers"), stderr=r.floats("cka_stderr", want, of),
                 pvalue=r.floats("cka_pvalue", want, of),
                 meta=_attrs(r, meta, "/meta") if meta is not None else {}, provenance=_attrs(r, r.f, ""))
    if "model_names" in r.f or "models" in r.f.attrs:
        _read_models(r, res)
    return res


def _brief(values: list) -> str:
    """A list for a message: a hostile file's may hold millions."""
    return str(values) if len(values) <= 8 else f"[{', '.join(map(str, values[:8]))}, ...]"


def _check_model_names(r: _Reader, names: list, count: Any) -> None:
    """Names pick blocks: none empty, none twice, as many as attribute 'models' says."""
    if count is not None and (not isinstance(count, int) or count != len(names)):
        raise r.fail("model_names", f"has {len(names)} names but attribute 'models' is {count!r}")
    seen = set()
    for name in names:
        if not name or name in seen:
            raise r.fail("model_names", f"holds {'an empty name' if not name else repr(name) + ' twice'} "
                                        f"(names must be unique)")
        seen.add(name)


def _read_models(r: _Reader, res: Result) -> None:
    """The parts of a models result, each checked against the others."""
    why = " (a models result: it has /model_names or attribute 'models')"
    if len(res.x_layers) != len(res.y_layers):
        raise r.fail("cka", f"is {res.cka.shape}, but a models result is square{why}")
    res.models = r.names("model_names", why=why)
    _check_model_names(r, res.models, res.provenance.get("models"))
    nm, layers = len(res.models), len(res.x_layers)
    off = r.ints("model_offsets", nm + 1, "/model_names", why)
    if off[0] != 0 or off[-1] != layers or any(b <= a for a, b in zip(off, off[1:])):
        raise r.fail("model_offsets", f"{_brief(off)} does not split the {layers} layers of /cka into {nm} "
                                      f"models (from 0, increasing: every model at least one layer)")
    res.model_offsets = np.asarray(off, dtype=np.int64)
    res.matched_layers = r.names("matched_layers", lo=0, why=why)
    smallest = min(b - a for a, b in zip(off, off[1:]))
    if len(res.matched_layers) > smallest:
        raise r.fail("matched_layers", f"has {len(res.matched_layers)} layers, more than the smallest "
                                       f"model has ({smallest})")
    cube, of = (len(res.matched_layers), nm, nm), "/matched_layers and /model_names"
    required = len(res.matched_layers) > 0
    res.cka_matched = r.floats("cka_matched", cube, of, required=required, why=why)
    res.cka_matched_stderr = r.floats("cka_matched_stderr", cube, of)
    res.cka_matched_pvalue = r.floats("cka_matched_pvalue", cube, of)
