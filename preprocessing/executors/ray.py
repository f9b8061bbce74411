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
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from preprocessing.executors.base import C, Executor, ExecutorError, R, Shipped, U, bind
from preprocessing.executors.pool import apply_each, windowed_map

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
            self._task = ray.remote(max_retries=self.max_retries, retry_exceptions=False)(_run_task)
        return ray

    def map(self, fn: Callable[[C, U], R], units: Iterable[U], context: C, *, batch: int = 0,
            cost: Callable[[U], int] = len, window: int | None = None,  # type: ignore[assignment]
            inline: Callable[[U], bool] | None = None, workers: int | None = None) -> Iterator[R]:
        n = min(workers or self.workers, self.workers)
        if workers is not None and n <= 1:  # a pass the stage keeps in one process (copying, not computing)
            return (fn(context, unit) for unit in units)
        ray = self._connect()
        ref = ray.put(Shipped(context))  # once per map; Ray resolves it in each task, unpickled once per worker

        def submit(group: list[U]) -> _Pending:
            return _Pending(ray, self._task.remote(fn, ref, group))

        return windowed_map(submit, bind(fn, context), units, window or 2 * n, inline, batch, cost)

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False
