"""Several processes feeding one CKA computation: whole minibatches by batch
index, and the reduction of their sessions to one result.

The result is bitwise the file run of the same examples in the same order
whatever the number of processes and whichever process feeds which batch,
because the library sums every batch into the same fixed tree on its index
(``mk_session_export``/``mk_session_merge``). Two things must hold:

- every process feeds whole batches of the plan (batch g is examples
  ``[g*m, min((g+1)*m, n))``): :class:`BatchSampler` gives them;
- batch 0 is fed first, by rank 0, whose session's probe (the layers'
  scales) every other process takes before its first feed.

The processes talk through a :class:`Backend`: ``torch.distributed`` (any
backend; gloo is enough) or mpi4py, found by :func:`backend`.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

from ._lib import MpickaError
from .session import Session, batch_range, plan_batches

__all__ = ["BatchSampler", "Backend", "backend", "share_probe", "reduce"]


class BatchSampler:
    """A batch sampler (``DataLoader(data, batch_sampler=...)``) giving this
    process whole minibatches of the plan, as lists of example indices.

    Parameters
    ----------
    n : int
        Examples in the data set.
    batch_size : int
        m: batch g holds ``[g*m, min((g+1)*m, n))``; a tail under 4
        examples is left out, as in a file run (``keep_all=True``: kept, as
        the exact estimator does).
    rank, world : int
        This process among ``world``.
    split : "contiguous" or "strided"
        Which batches: one contiguous range per rank, in rank order, as the
        file run's ranks share them (the default), or g = rank, rank +
        world, ... Any split gives the same bits, but a session keeps one
        partial sum (as long as a batch's sums) per gap in the batches it was
        fed: strided costs batches/world of them, contiguous about
        log2(batches).

    Attributes
    ----------
    batch_indices : list of int
        The g of each batch this process yields, in order.
    """

    def __init__(self, n: int, batch_size: int, rank: int = 0, world: int = 1, *, split: str = "contiguous",
                 keep_all: bool = False):
        if not (isinstance(rank, int) and isinstance(world, int) and 0 <= rank < world):
            raise ValueError(f"need 0 <= rank < world, got rank={rank!r}, world={world!r}")
        if split not in ("strided", "contiguous"):
            raise ValueError(f"split: 'strided' or 'contiguous', got {split!r}")
        self.n, self.batch_size, self.rank, self.world = n, batch_size, rank, world
        total = plan_batches(n, batch_size, keep_all)
        if split == "strided":
            self.batch_indices = list(range(rank, total, world))
        else:
            # as the file run's ranks share them: the first total % world ranks one more
            q, r = divmod(total, world)
            lo = rank * q + min(rank, r)
            self.batch_indices = list(range(lo, lo + q + (1 if rank < r else 0)))

    def __iter__(self) -> Iterator[list]:
        for g in self.batch_indices:
            yield list(batch_range(self.n, self.batch_size, g))

    def __len__(self) -> int:
        return len(self.batch_indices)


class Backend:
    """How the processes talk: ``bcast(obj)`` from rank 0 to all, and
    ``gather(obj)`` to rank 0 (a list there, None elsewhere)."""

    rank = 0
    world = 1

    def bcast(self, obj: Any) -> Any:
        return obj

    def gather(self, obj: Any) -> Optional[list]:
        return [obj]


class _Torch(Backend):
    def __init__(self, group=None):
        import torch.distributed as dist
        self.dist, self.group = dist, group
        self.rank, self.world = dist.get_rank(group), dist.get_world_size(group)

    def bcast(self, obj: Any) -> Any:
        box = [obj]
        self.dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def gather(self, obj: Any) -> Optional[list]:
        out = [None] * self.world if self.rank == 0 else None
        self.dist.gather_object(obj, out, dst=0, group=self.group)
        return out


class _Mpi(Backend):
    def __init__(self, comm):
        self.comm, self.rank, self.world = comm, comm.Get_rank(), comm.Get_size()

    def bcast(self, obj: Any) -> Any:
        return self.comm.bcast(obj, root=0)

    def gather(self, obj: Any) -> Optional[list]:
        return self.comm.gather(obj, root=0)


def backend(kind: Any = None) -> Backend:
    """The backend: ``"torch"`` (torch.distributed's default group), ``"mpi"``
    (mpi4py's COMM_WORLD), an mpi4py communicator, a Backend, or None:
    torch.distributed when it is initialised, else mpi4py when it was
    imported and its world has more than one process, else one process."""
    import sys
    if isinstance(kind, Backend):
        return kind
    if kind == "torch":
        return _Torch()
    if kind == "mpi":
        from mpi4py import MPI
        return _Mpi(MPI.COMM_WORLD)
    if kind is not None:
        if hasattr(kind, "Get_rank") and hasattr(kind, "bcast"):
            return _Mpi(kind)
        raise ValueError(f"backend: 'torch', 'mpi', an mpi4py communicator or None, got {kind!r}")
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        return _Torch()
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and mpi.COMM_WORLD.Get_size() > 1:
        return _Mpi(mpi.COMM_WORLD)
    return Backend()


# Every exchange carries ("ok", payload) or ("error", message), so that a
# process that failed does not leave the others waiting forever.

def _error(rank: int, err: BaseException) -> tuple:
    return ("error", f"rank {rank}: {type(err).__name__}: {err}")


def share_probe(session: Session, comm: Backend, feed_first=None) -> None:
    """Rank 0 calls ``feed_first()`` (which feeds batch 0) and sends its
    session's probe; every other rank waits for it and sets it. A failure on
    rank 0 raises on every rank."""
    msg: tuple = ("ok", None)
    if comm.rank == 0:
        try:
            if feed_first is not None:
                feed_first()
            msg = ("ok", session.probe())
        except BaseException as e:
            comm.bcast(_error(0, e))
            raise
    msg = comm.bcast(msg)
    if msg[0] != "ok":
        raise MpickaError(f"the first batch failed on {msg[1]}", "MK_EUSAGE")
    if comm.rank != 0:
        session.set_probe(msg[1])


def reduce(session: Session, comm: Backend, failed: Optional[BaseException] = None, everywhere: bool = True):
    """Every process exports its session; rank 0 merges them all and
    finishes. Returns the Result on every rank (``everywhere``; else on rank
    0 and None elsewhere). ``failed``: this process's own failure, passed
    on so that every rank raises instead of waiting."""
    mine = _error(comm.rank, failed) if failed is not None else None
    if mine is None:
        try:
            mine = ("ok", session.export())
        except BaseException as e:
            mine = _error(comm.rank, e)
    states = comm.gather(mine)
    verdict: tuple = ("ok", None)
    if comm.rank == 0:
        verdict = _finish(session, states)
    if comm.world > 1:   # every rank takes part, whatever rank 0's verdict
        sent = comm.bcast(verdict if (everywhere or verdict[0] != "ok") else ("ok", None))
        verdict = verdict if comm.rank == 0 else sent
    if verdict[0] != "ok":   # the same message on every rank, naming the rank at fault
        raise MpickaError(verdict[1], getattr(failed, "code", "MK_EUSAGE")) from failed
    return verdict[1] if (everywhere or comm.rank == 0) else None


def _finish(session: Session, states: Sequence) -> tuple:
    bad = [s[1] for s in states if s[0] != "ok"]
    if bad:
        return ("error", "; ".join(bad))
    try:
        for rank, (_, state) in enumerate(states):
            if rank != 0:
                session.merge(state)
        return ("ok", session.finish())
    except BaseException as e:
        return _error(0, e)
