"""Read a ``cka.h5`` written by ``mpicka run`` (docs/output.md)::

    r = mpicka.result.load("results/run1/cka.h5")
    r.cka                        # float64 (Lx, Ly), named by r.x_layers, r.y_layers
    r.stderr, r.pvalue           # None when the run made none
    r.provenance["n"], r.config  # every root attribute; the resolved config (YAML)
    r.to_pandas()                # long DataFrame, when pandas is installed
    r.long_form()                # the same columns as a dict of numpy arrays
    r.models, r.block("a", "b")  # a run with `models:`: the names, one block
    r.matched("fc")              # the model-by-model matrix of one layer
    # (its long form has model_a, layer_a, model_b, layer_b columns, as cka.csv)
    mpicka.result.measures(path) # {"cca_mean": (Lx, Ly), ...}: the measures beyond CKA

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

__all__ = ["Result", "ResultError", "load", "measures", "measures_matched", "measure_params"]

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
        """Of a models result: model ``a``'s layers (rows) against model
        ``b``'s (columns).

        Parameters
        ----------
        a, b : str
            Model names, as in :attr:`models` (``a == b``: a model against itself).
        matrix : {"cka", "stderr", "pvalue"}
            Which matrix the block is cut from.

        Returns
        -------
        ndarray, float64, (layers of a, layers of b)
            A view into the matrix; rows named by ``x_layers[model_offsets[i]:model_offsets[i+1]]``.

        Raises
        ------
        ValueError
            Not a models result, an unknown ``matrix``, or one the run did not make.
        KeyError
            An unknown model name (the message lists the models).
        """
        known = {"cka": self.cka, "stderr": self.stderr, "pvalue": self.pvalue}
        if matrix not in known:
            raise ValueError(f"matrix must be 'cka', 'stderr' or 'pvalue', got {matrix!r}")
        m = known[matrix]
        if m is None:
            raise ValueError(f"{self.path}: the run made no {matrix}")
        off = self.model_offsets
        i, j = self._model(a), self._model(b)
        return m[off[i]:off[i + 1], off[j]:off[j + 1]]

    def matched(self, layer: str) -> np.ndarray:
        """Of a models result: the model-by-model CKA of one layer path
        every model has (one of :attr:`matched_layers`), the "same layer
        across seeds" view.

        Returns
        -------
        ndarray, float64, (N, N)
            Entry [i, j]: model i's ``layer`` against model j's; 1 on the diagonal.

        Raises
        ------
        ValueError
            Not a models result. KeyError: not a layer every model has (the
            message lists those).
        """
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
        """The x model's name (of a models result: every model's, joined by ", ")."""
        return self.provenance.get("x_name")

    @property
    def y_name(self) -> Optional[str]:
        """The y model's name (x's for a self comparison)."""
        return self.provenance.get("y_name")

    def _model_of_rows(self) -> np.ndarray:
        """The model name of each row (= column) of a models result."""
        counts = np.diff(self.model_offsets)
        return np.repeat(np.asarray(self.models, dtype=object), counts)

    def long_form(self) -> dict:
        """The matrix as columns of a long table, one row per cell, x layers
        outer, in the matrix's order; what :meth:`to_pandas` wraps, without
        pandas.

        Two-model result: ``x_layer``, ``y_layer``, ``cka``. Models result
        (a run with ``models:``): ``model_a``, ``layer_a``, ``model_b``,
        ``layer_b``, ``cka``, as the run's ``cka.csv`` (a layer path such as
        ``fc`` is in every model, so the model columns are what tell the rows
        apart). Then ``stderr`` and ``pvalue`` when the run made them.

        Returns
        -------
        dict of str to ndarray
            Names: object arrays of str; numbers: float64; each Lx * Ly long.
        """
        lx, ly = self.cka.shape
        if self.models:
            rows = self._model_of_rows()
            layers = np.asarray(self.x_layers, dtype=object)
            cols = {"model_a": np.repeat(rows, ly), "layer_a": np.repeat(layers, ly),
                    "model_b": np.tile(rows, lx), "layer_b": np.tile(layers, lx)}
        else:
            cols = {"x_layer": np.repeat(np.asarray(self.x_layers, dtype=object), ly),
                    "y_layer": np.tile(np.asarray(self.y_layers, dtype=object), lx)}
        cols["cka"] = self.cka.ravel()
        if self.stderr is not None:
            cols["stderr"] = self.stderr.ravel()
        if self.pvalue is not None:
            cols["pvalue"] = self.pvalue.ravel()
        return cols

    def to_pandas(self, form: str = "long"):
        """The matrix as a pandas DataFrame (needs pandas: ``python3-pandas``).

        ``form="long"``: one row per cell, the columns of :meth:`long_form`
        (``x_layer``, ``y_layer``, ``cka``, and ``stderr``, ``pvalue`` when
        present; of a models result ``model_a``, ``layer_a``, ``model_b``,
        ``layer_b`` first, as ``cka.csv``). ``form="wide"``: the matrix
        itself, x layers as index, y layers as columns; of a models result
        both are (model, layer) MultiIndexes, so ``df.loc["a", "b"]`` is the
        block of model a against model b.
        """
        if form not in ("long", "wide"):
            raise ValueError(f"form must be 'long' or 'wide', got {form!r}")
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("Result.to_pandas() needs pandas, which is not installed (Debian: "
                              "apt-get install python3-pandas); the numbers are numpy arrays in "
                              ".cka, .stderr and .pvalue, named by .x_layers and .y_layers, and "
                              ".long_form() gives the long table as a dict of arrays") from e
        if form == "long":
            return pd.DataFrame(self.long_form())
        if self.models:
            index = pd.MultiIndex.from_arrays([self._model_of_rows(), self.x_layers], names=["model", "layer"])
            return pd.DataFrame(self.cka, index=index, columns=index.copy())
        return pd.DataFrame(self.cka, index=pd.Index(self.x_layers, name="x_layer"),
                            columns=pd.Index(self.y_layers, name="y_layer"))


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


def _matched_name(name: str) -> bool:
    return name.endswith("_matched") or name.endswith("_matched_stderr")


def measures(path: str | os.PathLike) -> dict:
    """The measures beyond CKA of the ``cka.h5`` at ``path`` (``measures:``
    in the config, docs/maths.md): ``{name: float64 (Lx, Ly)}`` in name order, e.g. ``cca_mean``, ``cca_r2``, ``svcca``, ``pwcca``,
    ``procrustes``, ``shape``, ``regression_y_from_x``,
    ``regression_x_from_y``, ``rsa``, ``mutual_knn``, ``cknna``, ``jaccard``,
    and ``NAME_stderr`` (the jackknife standard errors of the measures from
    the minibatch Grams); ``{}`` for a run that asked for none. A models
    result's matched views are in :func:`measures_matched`. Errors as
    :func:`load`."""
    path = os.fspath(path)
    with _open(path) as f:
        r = _Reader(f, path)
        want = (len(r.names("x_layers")), len(r.names("y_layers")))
        group = f.get("measures")
        if group is None:
            return {}
        if not isinstance(group, h5py.Group):
            raise r.fail("measures", "is not a group")
        return {name: r.floats(f"measures/{name}", want, "/x_layers and /y_layers", required=True)
                for name in group if not _matched_name(name)}


def measures_matched(path: str | os.PathLike) -> dict:
    """A models result's measures, each layer every model has across the
    models: ``{NAME_matched: float64 (K, N, N)}`` (and
    ``NAME_matched_stderr``) as ``Result.cka_matched``, ``K`` the matched
    layers and ``N`` the models; ``{}`` for a two-model result or a run
    without measures. Errors as :func:`load`."""
    path = os.fspath(path)
    with _open(path) as f:
        r = _Reader(f, path)
        group = f.get("measures")
        if group is None or "model_names" not in f:
            return {}
        if not isinstance(group, h5py.Group):
            raise r.fail("measures", "is not a group")
        cube = (len(r.names("matched_layers", lo=0)), len(r.names("model_names")), len(r.names("model_names")))
        return {name: r.floats(f"measures/{name}", cube, "/matched_layers and /model_names", required=True)
                for name in group if _matched_name(name)}


def measure_params(path: str | os.PathLike, name: str) -> dict:
    """The attributes of measure ``name`` of the ``cka.h5`` at ``path``: the
    config's measure, its description and parameters (``keep``, ``k``,
    ``alpha``)."""
    path = os.fspath(path)
    with _open(path) as f:
        r = _Reader(f, path)
        key = f"measures/{name}"
        return _attrs(r, r.dataset(key, " (a measure the run did not compute?)"), "/" + key)
