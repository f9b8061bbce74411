"""What every executor is: an ordered map of a stage's ``map(context, unit)`` over its units."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from common.config import ConfigError

C = TypeVar("C")
U = TypeVar("U")
R = TypeVar("R")

EXECUTORS = ("local", "ray")


@dataclass
class ExecutorConfig:
    """Where a stage's work units run (the `executor:` section of a preset; --executor, --workers,
    --ray-address on every command). The outputs do not depend on any of it."""

    executor: str = "local"
    """local: an ordered pool of worker processes on this machine; ray: Ray tasks (a local Ray
    started for the run, or the cluster at ray_address)."""
    workers: int | None = None
    """Units in flight at once: worker processes (local), CPUs of the local Ray or tasks in
    flight on a cluster (ray), threads of the BPE trainer (tokenizer). None: 1 worker (on a Ray
    cluster: its CPUs), and the BPE trainer on all cores."""
    ray_address: str | None = None
    """An existing Ray cluster (host:port, ray://host:port or auto); None = start one for the run."""

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.ray_address is not None and self.executor != "ray":
            raise ConfigError(f"ray_address {self.ray_address!r} is given but the executor is {self.executor!r}; "
                              "use --executor ray")


class ExecutorError(ValueError):
    """An executor that cannot run (Ray missing, a cluster that cannot be reached): one line, named."""


class Executor:
    """Runs ``fn(context, unit)`` for each unit and yields the results in unit order.

    ``context`` is the stage's worker state (reader settings, filters, configs): small and
    picklable, passed explicitly with the work (never set up in module globals at fork); a
    context builds what is costly (kernels, compressors) lazily, once per process.
    Every executor and every worker count gives the same results in the same order.
    """

    name = "executor"
    workers: int = 1
    requested: int | None = None
    """The workers asked for (None: not given, each stage's default)."""

    def map(self, fn: Callable[[C, U], R], units: Iterable[U], context: C, *, batch: int = 0,
            cost: Callable[[U], int] = len, window: int | None = None,  # type: ignore[assignment]
            inline: Callable[[U], bool] | None = None, workers: int | None = None) -> Iterator[R]:
        """``fn(context, unit)`` for each unit, in unit order; ``batch``/``cost`` group consecutive
        units into one task, ``inline`` units run in this process, at most ``window`` tasks
        (default 2 per worker) are pending; ``workers`` lowers the parallelism of this map."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor started (a local Ray)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def bind(fn: Callable[[C, U], R], context: C) -> Callable[[U], R]:
    """``fn`` with its context, in this process."""
    return functools.partial(fn, context)


_UNPICKLED: dict[int, Any] = {}
"""Per process: the contexts this process has unpickled, by the digest of their bytes (a cache
of immutable values, like pack's tokenizer cache: a context that builds an automaton or loads
kernels on unpickling does so once per worker process, not once per task)."""
_UNPICKLED_MAX = 8


class Shipped:
    """A context as every task carries it: its pickled bytes (a few KB) and their digest."""

    def __init__(self, context: Any):
        import pickle

        import xxhash

        self.data = pickle.dumps(context, protocol=pickle.HIGHEST_PROTOCOL)
        self.key = xxhash.xxh3_64_intdigest(self.data)

    def get(self) -> Any:
        ctx = _UNPICKLED.get(self.key)
        if ctx is None:
            import pickle

            if len(_UNPICKLED) >= _UNPICKLED_MAX:
                _UNPICKLED.clear()
            ctx = _UNPICKLED[self.key] = pickle.loads(self.data)
        return ctx


def _call_shipped(fn: Callable[[C, U], R], shipped: Shipped, unit: U) -> R:
    return fn(shipped.get(), unit)


def ship(fn: Callable[[C, U], R], context: C) -> Callable[[U], R]:
    """``fn`` with its context, for tasks in other processes: the context travels pickled with
    each task and is unpickled once per process."""
    return functools.partial(_call_shipped, fn, Shipped(context))


def make_executor(cfg: ExecutorConfig | Executor | int | None = None) -> tuple[Executor, bool]:
    """The executor ``cfg`` describes (an int is a worker count on the local executor), and whether
    the caller owns it (must close it)."""
    if isinstance(cfg, Executor):
        return cfg, False
    if cfg is None or isinstance(cfg, int):
        cfg = ExecutorConfig(workers=cfg)
    if cfg.executor == "ray":
        from preprocessing.executors.ray import RayExecutor

        executor: Executor = RayExecutor(cfg.workers, cfg.ray_address)
    else:
        from preprocessing.executors.local import LocalExecutor

        executor = LocalExecutor(cfg.workers or 1)
    executor.requested = cfg.workers
    return executor, True
