"""``mpicka.compare`` (the function; this module is private): CKA between
PyTorch models while they run, with no activation files::

    r = mpicka.compare({"a": model_a, "b": model_b}, dataset, layers=["layer?.?", "fc"],
                       output="results/ab", batch_size=128, jackknife=20)
    r.cka          # the Result mpicka.result.load gives for the cka.h5 written

Every model runs once per minibatch (in eval mode, without gradients, each
on its own device), the selected modules' outputs are captured with the
exporter's selection and checks (:mod:`mpicka._capture`) and handed to a
:class:`~mpicka.session.Session`. Under ``torch.distributed`` or mpi4py,
each process runs its own minibatches (:class:`~mpicka.distributed.BatchSampler`)
and the sessions are reduced to one result (:mod:`mpicka.distributed`).
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Mapping, Optional, Union

import torch
from torch.utils.data import DataLoader, SequentialSampler

from . import _config, distributed
from ._capture import Capture
from ._ids import ExportError
from .export import _model_device, _model_input, _to_device
from .result import Result
from .session import Session

__all__ = ["compare"]

# Feed each batch beside the next forward pass (False: in the loop, for
# bench/inprocess_overlap.py to measure what it hides).
OVERLAP = True


def compare(models: Mapping[str, torch.nn.Module], data: Any, layers: Any = None, output: Optional[str] = None,
            batch_size: Optional[int] = None, *, config: _config.Config = None,
            devices: Optional[Mapping[str, Any]] = None, inputs: Union[None, int, str, Callable] = None,
            backend: Any = None, split: str = "contiguous", num_workers: int = 0, collate_fn: Optional[Callable] = None,
            everywhere: bool = True, module_output: Any = None, transform: Any = None, pool: Any = None,
            pool_dims: Any = None, token: Any = None, fastpath: bool = True, force: bool = False,
            **keys: Any) -> Optional[Result]:
    """CKA of ``models``' layers over ``data``, computed as the models run.

    Parameters
    ----------
    models : dict name -> torch.nn.Module
        One model: its layers against themselves; two: the first's (x)
        against the second's (y); three or more: every layer against every
        other, as a config's ``models:`` (``/cka_matched`` included).
    data : map-style Dataset, or a DataLoader over one
        Batches are cut by index as a file run cuts them (batch g is
        examples ``[g*m, (g+1)*m)``). A DataLoader keeps its dataset,
        ``collate_fn`` and workers; its sampler must be sequential or a
        :class:`~mpicka.distributed.BatchSampler`.
    layers : names or patterns, or a dict model name -> names or patterns
        As the exporter's ``layers`` (``["layer?.?", "fc"]``; None: every
        leaf module); the layers are in forward order.
    output : str, optional
        The result's folder (cka.h5, cka.csv, cka.png as ``mpicka run``
        writes them); None: nothing is written.
    batch_size : int, optional
        m (default: the config's, else 256).
    config : dict, YAML file or YAML text; ``**keys``
        The other keys of a run's config: ``estimator``, ``kernel``,
        ``precision``, ``jackknife``, ``permutations``, ``seed``,
        ``measures``, ``progress_seconds``, ``plot``... (``**keys`` win).
    devices : dict model name -> device, optional
        Where each model's input goes (default: its first parameter's device).
    inputs : None, int, str or callable
        The model's input in a batch, as the exporter's (default: the batch
        if a tensor, else ``batch[0]``).
    backend : None, "torch", "mpi", an mpi4py communicator
        The processes' communication (:func:`mpicka.distributed.backend`;
        None: torch.distributed when initialised, else mpi4py when imported
        with more than one process, else this process alone).
    split : "contiguous" or "strided"
        Which batches each process runs (:class:`~mpicka.distributed.BatchSampler`;
        the bits do not depend on it).
    everywhere : bool
        True: every process returns the Result; False: rank 0 only (None
        elsewhere).
    module_output, transform, pool, pool_dims, token, fastpath
        The exporter's per-layer options (``module_output`` is its
        ``output``: the tensor of a module returning a tuple or dict).
    force : bool
        Replace a result of another configuration in ``output`` (as
        ``mpicka run --force``); without it such a folder is refused before
        any batch.

    Returns
    -------
    Result
        As :func:`mpicka.result.load` gives (the cka.h5 written; without
        ``output``, one built from the matrices).
    """
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models: a dict {name: torch.nn.Module} with at least one model")
    comm = distributed.backend(backend)
    cfg = _config.load_config(config, dict(keys, output=output, batch_size=batch_size))
    loader, sampler = _loader(data, _config.batch_size(cfg), comm, split, num_workers, collate_fn,
                              _config.keeps_all(cfg))
    session = Session(cfg, n=sampler.n, rank=comm.rank, world=comm.world, force=force)
    options = dict(output=module_output, transform=transform, pool=pool, pool_dims=pool_dims, token=token,
                   fastpath=fastpath)
    failed = _run(session, comm, sampler, loader, lambda: _Runner(models, layers, devices, inputs, options, session))
    try:
        if comm.world == 1:
            if failed is not None:
                raise failed
            return session.finish()
        return distributed.reduce(session, comm, failed, everywhere)
    finally:
        session.close()


def _run(session: Session, comm: distributed.Backend, sampler: distributed.BatchSampler, loader: DataLoader,
         make: Callable[[], "_Runner"]) -> Optional[BaseException]:
    """Runs this process's batches; returns its failure instead of raising,
    so that with several processes every one still takes part in the
    exchanges (a process that raised would leave the others waiting)."""
    failed: Optional[BaseException] = None
    try:
        with contextlib.ExitStack() as stack:
            try:
                runner = stack.enter_context(make())
            except BaseException as e:
                failed = e
            batches = zip(sampler.batch_indices, loader)
            if comm.world > 1:
                def first() -> None:   # rank 0: batch 0 before anything else
                    if failed is not None:
                        raise failed
                    runner.step(*next(batches))
                    runner.wait()
                try:
                    distributed.share_probe(session, comm, first)
                except BaseException as e:
                    failed = failed or e
            if failed is None:
                for g, batch in batches:
                    runner.step(g, batch)
                runner.wait()
    except BaseException as e:
        failed = failed or e
    return failed


class _Runner:
    """The models, their captures and the session: one step per batch.

    A batch's feed runs on a thread of its own while the models compute the
    next batch (ctypes releases the GIL during the library's call, torch
    during its kernels): the time is about the larger of the two instead of
    their sum. One feed at a time, in batch order, so the session sees what
    it would see fed in the loop; memory holds one more batch."""

    def __init__(self, models: Mapping, layers: Any, devices: Optional[Mapping], inputs: Any, options: dict,
                 session: Session):
        self.models, self.inputs, self.session = dict(models), inputs, session
        per_model = isinstance(layers, Mapping)
        if per_model and set(layers) != set(self.models):
            raise ValueError(f"layers: a dict needs one entry per model ({', '.join(self.models)}), got "
                             f"{', '.join(map(str, layers))}")
        for name, model in self.models.items():
            if not isinstance(model, torch.nn.Module):
                raise TypeError(f"model '{name}': a torch.nn.Module, got {type(model).__name__}")
        self.captures = {name: _named(name, lambda: Capture(model, layers[name] if per_model else layers, name,
                                                            **options))
                         for name, model in self.models.items()}
        devices = devices or {}
        self.devices = {name: torch.device(devices[name]) if name in devices else _model_device(model)
                        for name, model in self.models.items()}
        self._stack = contextlib.ExitStack()
        self._modes: dict = {}
        self._feeder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mpicka-feed")
        self._pending: Optional[Future] = None

    def __enter__(self) -> "_Runner":
        for name, model in self.models.items():
            self._modes[name] = [(m, m.training) for m in model.modules()]
            model.eval()
        self._stack.__enter__()
        try:
            for capture in self.captures.values():
                self._stack.enter_context(capture)
        except BaseException as e:
            self.__exit__(type(e), e, e.__traceback__)
            raise
        return self

    def __exit__(self, *exc) -> bool:
        try:
            try:   # never leave a feed running into a session about to be closed
                self.wait()
            except BaseException:
                if exc[0] is None:
                    raise
            finally:
                self._feeder.shutdown(wait=True)
            return self._stack.__exit__(*exc)
        finally:
            for modes in self._modes.values():   # each module as it was (a frozen BatchNorm stays in eval)
                for m, training in modes:
                    m.training = training

    def step(self, g: int, batch: Any) -> None:
        """Batch g through every model, then into the session."""
        x = _model_input(batch, self.inputs)
        for capture in self.captures.values():
            capture.batches = g   # the exporter's messages count calls; here they name the batch of the plan
        for name, model in self.models.items():
            xi = _to_device(x, self.devices[name])
            _named(name, lambda: model(*xi) if isinstance(xi, tuple) else model(xi))
        rows = {name: capture.rows for name, capture in self.captures.items()}
        for capture in self.captures.values():
            capture.rows = {}
        self.wait()
        if OVERLAP:
            self._pending = self._feeder.submit(self.session.feed, g, rows)
        else:
            self.session.feed(g, rows)

    def wait(self) -> None:
        """Until the last batch handed over is in the session (its error, if any, raised here)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()


def _named(name: str, fn: Callable) -> Any:
    """The exporter's errors name the module; here they name the model too."""
    try:
        return fn()
    except ExportError as e:
        if str(e).startswith(f"model '{name}'"):
            raise
        raise ExportError(f"model '{name}': {e}") from e


def _loader(data: Any, m: int, comm: distributed.Backend, split: str, num_workers: int,
            collate_fn: Optional[Callable], keep_all: bool) -> tuple:
    """The DataLoader giving this process its batches, and its sampler."""
    kw: dict = {"num_workers": num_workers}
    if collate_fn is not None:
        kw["collate_fn"] = collate_fn
    if isinstance(data, DataLoader):
        ours = data.batch_sampler
        if isinstance(ours, distributed.BatchSampler):
            if (ours.batch_size, ours.rank, ours.world) != (m, comm.rank, comm.world):
                raise ValueError(f"the DataLoader's BatchSampler has batch_size={ours.batch_size}, rank={ours.rank}, "
                                 f"world={ours.world}; this run has batch_size={m}, rank={comm.rank}, "
                                 f"world={comm.world}")
            return data, ours
        if not isinstance(data.sampler, SequentialSampler):
            raise ValueError(f"the DataLoader draws its examples with a {type(data.sampler).__name__}: mpicka cuts "
                             f"the data into batches by index (batch g: examples g*m to (g+1)*m-1); pass the dataset, "
                             f"or a DataLoader with shuffle=False or batch_sampler=mpicka.distributed.BatchSampler"
                             f"(...); a shuffled analysis reads exported files (shuffle: true)")
        kw = dict(num_workers=data.num_workers, pin_memory=data.pin_memory,
                  collate_fn=collate_fn if collate_fn is not None else data.collate_fn)
        data = data.dataset
    if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        raise TypeError(f"data: a map-style Dataset (with __len__ and __getitem__) or a DataLoader over one, got "
                        f"{type(data).__name__}")
    sampler = distributed.BatchSampler(len(data), m, comm.rank, comm.world, split=split, keep_all=keep_all)
    return DataLoader(data, batch_sampler=sampler, **kw), sampler
