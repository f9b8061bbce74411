"""The Ray executor: each task is a Ray task over consecutive units, results consumed in unit order.

Ray tasks (not Ray Data): a stage's reduce needs its map results in unit order, one unit's
results at a time, with bounded look-ahead; ``ray.data`` orders blocks only with
``preserve_order`` and re-batches rows by its own block sizes, so the units (zstd frames a
writer copies whole, frame notes of near-dedup) would not survive as units. Tasks keep the
unit as the unit of work and of retry: a worker that dies is retried by Ray (``max_retries``),
and since a map is pure, its retry returns the same result; the driver consumes each result
exactly once, in order, so nothing is duplicated or lost. The stage's context is put in the
object store once per map and resolved by Ray in each task.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from preprocessing.executors.base import C, Executor, ExecutorError, Held, R, Shared, Shipped, U, bind, cached_shared
from preprocessing.executors.pool import Barrier, apply_each, windowed_map

MAX_RETRIES = 3
"""Ray retries a task whose worker process died this many times (a map is pure: same result)."""
CONNECT_TIMEOUT_S = 5.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError("--executor ray needs Ray, which is not installed: pip install .[ray]") from None
    return ray


def _check_reachable(address: str) -> None:
    """ray.init(address=...) waits minutes on an address where nothing listens: fail fast, naming it."""
    if address == "auto" or address.startswith("local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError(f"Ray address {address!r} is not host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ExecutorError(f"cannot reach the Ray cluster at {address!r} ({exc.strerror or exc})") from None


def _package_path() -> str:
    """PYTHONPATH for the workers of a local Ray: this toolkit's checkout first (it may not be installed)."""
    import preprocessing

    root = os.path.dirname(os.path.dirname(os.path.abspath(preprocessing.__file__)))
    return os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))


def _run_task(fn: Callable[[C, U], R], shipped: Shipped, units: list[U]) -> list[R]:
    return apply_each(bind(fn, shipped.get()), units)


def _run_held_task(fn: Callable[[C, U], tuple[Any, Any]], shipped: Shipped, units: list[U]) -> tuple[list, list]:
    """A task of :meth:`RayExecutor.map_held`: its two returns are the heads and the bodies."""
    out = apply_each(bind(fn, shipped.get()), units)
    return [head for head, _ in out], [body for _, body in out]


def _run_select(select: Callable[[Any, Any], Any], bodies: list, idx: list[int], args: list) -> list:
    """A task of :meth:`RayExecutor.fetch`: ``select`` over the wanted bodies of one map task."""
    return [select(bodies[i], arg) for i, arg in zip(idx, args)]


def _run_partition(fn: Callable[[C, list[Any]], R], shipped: Shipped, *chunks: Any) -> R:
    """A partition task: its chunks are ObjectRefs given as top-level arguments, which Ray
    resolves on the node that runs the task (they never pass through the driver again)."""
    return fn(shipped.get(), list(chunks))


class _RayShared(Shared):
    """A value in the object store: a task that gets it reads it from its node's store (an array
    without a copy), once per worker process."""

    __slots__ = ("ref",)

    def __init__(self, ref: Any):
        self.ref = ref

    def get(self) -> Any:
        import ray

        return cached_shared(self.ref.hex(), lambda: ray.get(self.ref))


class _RayHeld(Held):
    """Body ``i`` of a task's second return (an ObjectRef of the list of its units' bodies); it is
    fetched by :meth:`RayExecutor.fetch`, one task's bodies at a time."""

    __slots__ = ("ref", "i")

    def __init__(self, ref: Any, i: int):
        self.ref, self.i = ref, i


class _PendingHeld:
    def __init__(self, pending: _Pending, bodies: Any):
        self.pending, self.bodies = pending, bodies

    def get(self) -> list:
        return [(head, _RayHeld(self.bodies, i)) for i, head in enumerate(self.pending.get())]


class _Pending:
    """A submitted Ray task, with the ``get`` the scheduling loop calls (in unit order)."""

    def __init__(self, ray: Any, ref: Any):
        self.ray, self.ref = ray, ref

    def get(self) -> list:
        try:
            return self.ray.get(self.ref)
        except self.ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, (ValueError, OSError)):  # the toolkit's own one-line errors (InputError, ...)
                raise cause from None
            raise


class RayExecutor(Executor):
    """Ray tasks over the units; ``workers`` tasks run at once (2 per worker pending)."""

    name = "ray"

    def __init__(self, workers: int | None = 1, address: str | None = None, max_retries: int = MAX_RETRIES):
        self._ray = _import_ray()
        self.workers, self.address, self.max_retries = workers or 1, address, max_retries
        self.local_disk = address is None  # a local Ray for the run: its workers run here
        self._started = False
        self._task: Any = None
        if address is not None:
            _check_reachable(address)
            if workers is None:  # a cluster without --workers: as many tasks in flight as it has CPUs
                self.workers = max(1, int(self._connect().cluster_resources().get("CPU", 1)))

    def _connect(self) -> Any:
        """Ray is started (or joined) on the first map: stages without a map never pay for it."""
        ray = self._ray
        if self._task is None:
            if not ray.is_initialized():  # a Ray the caller started (a notebook, a test) is used as it is
                try:
                    if self.address is not None:
                        ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                                 logging_level=logging.ERROR)
                    else:
                        # address="local": a new Ray for this run, even where another one runs here
                        ray.init(address="local", num_cpus=self.workers, include_dashboard=False,
                                 log_to_driver=False, logging_level=logging.ERROR,
                                 runtime_env={"env_vars": {"PYTHONPATH": _package_path()}})
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    where = f"the Ray cluster at {self.address!r}" if self.address else "a local Ray"
                    raise ExecutorError(f"cannot start or reach {where} ({str(exc).splitlines()[0]})") from None
                self._started = True
            remote = ray.remote(max_retries=self.max_retries, retry_exceptions=False)
            self._task = remote(_run_task)
            self._partition_task = remote(_run_partition)
            self._select_task = remote(_run_select)
            self._held_task = ray.remote(num_returns=2, max_retries=self.max_retries,
                                         retry_exceptions=False)(_run_held_task)
        return ray

    def map(self, fn: Callable[[C, U], R], units: Iterable[U], context: C, *, batch: int = 0,
            cost: Callable[[U], int] = len, window: int | None = None,  # type: ignore[assignment]
            inline: Callable[[U], bool] | None = None, workers: int | None = None) -> Iterator[R]:
        n = min(workers or self.workers, self.workers)
        if workers is not None and n <= 1:  # a pass the stage keeps in one process (copying, not computing)
            return (fn(context, unit) for unit in units if type(unit) is not Barrier)
        ray = self._connect()
        ref = ray.put(Shipped(context))  # once per map; Ray resolves it in each task, unpickled once per worker

        def submit(group: list[U]) -> _Pending:
            return _Pending(ray, self._task.remote(fn, ref, group))

        return windowed_map(submit, bind(fn, context), units, window or 2 * n, inline, batch, cost)

    def map_held(self, fn: Callable[[C, U], tuple[Any, Any]], units: Iterable[U], context: C, *,
                 spool: Any = None, batch: int = 0, cost: Callable[[U], int] = len,  # type: ignore[assignment]
                 window: int | None = None, inline: Callable[[U], bool] | None = None,
                 workers: int | None = None) -> Iterator[tuple[Any, Held]]:
        """Each task has two returns (``num_returns=2``): its heads, which the driver gets in unit
        order, and its bodies, which stay in the object store where the task ran (Ray spills
        them to disk under memory pressure and rebuilds a lost one from its task) until
        :meth:`fetch`; ``spool`` is not used."""
        n = min(workers or self.workers, self.workers)
        ray = self._connect()
        ref = ray.put(Shipped(context))

        def submit(group: list[U]) -> _PendingHeld:
            heads, bodies = self._held_task.remote(fn, ref, group)
            return _PendingHeld(_Pending(ray, heads), bodies)

        def here(unit: U) -> tuple[Any, Held]:
            head, body = fn(context, unit)
            return head, _RayHeld(ray.put([body]), 0)

        return windowed_map(submit, here, units, window or 2 * n, inline, batch, cost)

    def fetch(self, items: Iterable[tuple[Held, Any]], select: Callable[[Any, Any], Any] | None = None,
              ahead: int = 8) -> Iterator[Any]:
        """Bodies in the order given, ``ahead`` tasks' bodies in flight. With ``select``, each task's
        bodies go through a Ray task, ``select(body, arg)``, that Ray schedules where they are held
        (its argument is their ObjectRef): only what it returns travels to the driver."""
        ray = self._ray
        pending: deque[tuple[list[int], Any]] = deque()  # per task: the bodies wanted, their ref (or select's)

        def groups() -> Iterator[tuple[Any, list[int], list[Any]]]:
            ref, idx, args = None, [], []
            for handle, arg in items:
                if handle.ref is not ref and idx:  # type: ignore[attr-defined]
                    yield ref, idx, args
                    idx, args = [], []
                ref = handle.ref  # type: ignore[attr-defined]
                idx.append(handle.i)  # type: ignore[attr-defined]
                args.append(arg)
            if idx:
                yield ref, idx, args

        def drain() -> Iterator[Any]:
            idx, ref = pending.popleft()
            bodies = _Pending(ray, ref).get()
            if select is None:
                yield from (bodies[i] for i in idx)
            else:
                yield from bodies

        for ref, idx, args in groups():
            if select is not None:
                ref = self._select_task.remote(select, ref, idx, args)
            pending.append((idx, ref))
            while len(pending) >= ahead:
                yield from drain()
        while pending:
            yield from drain()

    def put(self, value: Any) -> Any:
        return self._connect().put(value)

    def share(self, value: Any) -> Shared:
        return _RayShared(self._connect().put(value))

    def map_partitions(self, fn: Callable[[C, list[Any]], R], parts: list[list[Any]], context: C) -> Iterator[R]:
        """One Ray task per partition (``max_retries``), its chunks passed as ObjectRefs; results
        ``ray.get`` in partition order, at most 2 tasks per worker pending."""
        ray = self._connect()
        ref = ray.put(Shipped(context))

        def submit(group: list[list[Any]]) -> _Pending:
            return _Pending(ray, [self._partition_task.remote(fn, ref, *part) for part in group])

        return windowed_map(submit, bind(fn, context), parts, 2 * self.workers)

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False
