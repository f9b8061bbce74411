"""Ordered parallel map with bounded look-ahead: results in input order, memory bounded."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

RECORDS_PER_TASK = 128
"""``batch`` for streams of small work units (e.g. the ~15 files of one 256 KiB frame of a
toolkit-written dump): one pool task per unit costs the main process ~1 ms each."""


class Barrier:
    """An item of a map's units that is no unit: the results of the first ``upto`` units (default:
    every unit before it) are yielded before the next unit is read from the units iterable. For a
    reduce that hands later units what it learnt from earlier ones, at points that do not depend on
    the executor or the number of workers, so neither do the results. A barrier on units already
    out of the window of pending tasks costs nothing; one on the last units drains the pipeline."""

    __slots__ = ("upto",)

    def __init__(self, upto: int | None = None):
        self.upto = upto

    def __repr__(self) -> str:
        return f"Barrier({self.upto})"


BARRIER = Barrier()
"""A barrier on every unit before it."""


class WorkerDied(RuntimeError):
    """A worker process of the local pool died in a task (killed, out of memory): the map stops."""


A = TypeVar("A")
R = TypeVar("R")


class Pending(Protocol):
    """A submitted task: ``get()`` waits for it and returns the results of its items, in order."""

    def get(self) -> list: ...


def ordered_map(
    fn: Callable[[A], R],
    items: Iterable[A],
    workers: int = 1,
    window: int | None = None,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    inline: Callable[[A], bool] | None = None,
    batch: int = 0,
    cost: Callable[[A], int] = len,  # type: ignore[assignment]
) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in input order.

    With ``workers <= 1`` everything runs inline. Otherwise a process pool runs ``fn`` and at most
    ``window`` tasks are in flight (``Pool.imap`` would read the whole input ahead), so memory
    stays bounded whatever the input size. A task is one item, or with ``batch > 0`` consecutive
    items up to a summed ``cost(item)`` (default ``len``: records of a work unit) of ``batch``: a
    pool task costs the main process about a millisecond (its threads hand the task over and
    back), which small items do not pay for (dedup pass 1 on 256 KiB frames of ~15 files: 2
    workers 1.47 s -> 1.01 s with batches of 128 records). Because results come back in input order,
    the output does not depend on the number of workers. Items for which ``inline(item)`` is true
    are run in this process (when shipping them to a worker and back costs more than the work),
    still in order. The stages pass their worker state inside ``fn`` (a ``functools.partial`` of
    a picklable context, see :mod:`preprocessing.executors`); ``initializer`` is for scripts.
    """
    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        for item in items:
            if type(item) is not Barrier:
                yield fn(item)
        return
    window = window or 2 * workers
    import multiprocessing as mp  # here: a run with one worker never needs them (5 ms to import)
    from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    if inline is not None and initializer is not None:
        initializer(*initargs)  # inline items run here, with the workers' state
    # (concurrent.futures' pool, not multiprocessing.Pool: the latter's worker-handler thread wakes
    # whenever the results pipe is readable and spins while a large result is read from it, ~0.5 s
    # of the driver's CPU per 70 MB of results, taking the GIL from the thread that reads them)
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=initargs)
    finished = False
    try:
        yield from windowed_map(lambda group: _Future(pool.submit(apply_each, fn, group)), fn, items, window,
                                inline, batch, cost)
        finished = True
    except BrokenProcessPool as exc:
        raise WorkerDied(f"a worker process died while running a task ({exc}): killed, or out of memory? "
                         "Nothing was published; a re-run resumes from the run's manifest") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=not finished)  # (tasks not started are dropped)


def windowed_map(
    submit: Callable[[list[A]], Pending],
    fn: Callable[[A], R],
    items: Iterable[A],
    window: int,
    inline: Callable[[A], bool] | None = None,
    batch: int = 0,
    cost: Callable[[A], int] = len,  # type: ignore[assignment]
) -> Iterator[R]:
    """The scheduling loop of every executor: ``submit(group)`` starts a task over consecutive
    items (grouped as :func:`ordered_map` says), at most ``window`` tasks are pending, and results
    are yielded in input order; ``inline`` items run here through ``fn``; at a :data:`BARRIER`
    the results of the items it names are yielded before the next item is read.

    Inline results wait behind the pending tasks before them (results are yielded in order), but
    they do not take the tasks' places: the loop reads on while fewer than ``window`` tasks are
    pending and the inline results held add up to less than the tasks may hold, ``window * batch``
    of ``cost`` (``window`` results without ``batch``), so memory stays bounded. (`dedup` pass 2
    over RUN/clean, ~4 untouched frames copied here per frame a worker rewrites: with the inline
    results counted in the window, the driver waited for nearly every task, 2 workers no faster
    than 1.)"""
    pending: deque[Pending] = deque()  # per task: a handle or a _Done, each giving a list of results
    group: list = []
    group_cost = 0
    given = submitted = 0  # items whose results were yielded; items read
    tasks = 0  # pending tasks that are not inline results
    held = 0  # the summed cost of the inline results pending
    budget = window * batch if batch > 0 else window

    def flush() -> None:
        nonlocal group_cost, tasks
        if group:
            pending.append(submit(list(group)))
            tasks += 1
            group.clear()
            group_cost = 0

    def oldest() -> list:
        nonlocal tasks, held
        task = pending.popleft()
        if type(task) is _Done:
            held -= task.cost
        else:
            tasks -= 1
        return task.get()

    for item in items:
        if type(item) is Barrier:
            upto = submitted if item.upto is None else item.upto
            if given < upto:
                flush()
                while pending and given < upto:
                    results = oldest()
                    given += len(results)
                    yield from results
            continue
        submitted += 1
        if inline is not None and inline(item):
            flush()
            weight = max(cost(item), 1) if batch > 0 else 1
            pending.append(_Done([fn(item)], weight))
            held += weight
        else:
            group.append(item)
            if batch > 0:
                group_cost += cost(item)
            if group_cost >= batch:
                flush()
        while tasks >= window or held >= budget:
            results = oldest()
            given += len(results)
            yield from results
    flush()
    while pending:
        yield from oldest()


def apply_each(fn: Callable[[A], R], items: list[A]) -> list[R]:
    """``[fn(item) for item in items]``: the body of one task, on any executor."""
    return [fn(item) for item in items]


class _Future:
    """A submitted task of :func:`ordered_map`'s pool, as :class:`Pending`."""

    __slots__ = ("future",)

    def __init__(self, future: Any):
        self.future = future

    def get(self) -> list:
        return self.future.result()


class _Done:
    """The results of items run inline, with AsyncResult's ``get``; ``cost``: what they hold
    (:func:`windowed_map`)."""

    __slots__ = ("value", "cost")

    def __init__(self, value: list[Any], cost: int = 1):
        self.value = value
        self.cost = cost

    def get(self) -> list:
        return self.value
