"""The local executor: an ordered pool of worker processes on this machine (the default)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from preprocessing.executors.base import C, Executor, R, U, ship
from preprocessing.executors.pool import ordered_map


class LocalExecutor(Executor):
    """:func:`preprocessing.executors.pool.ordered_map` over a process pool; ``workers=1`` runs inline."""

    name = "local"

    def __init__(self, workers: int = 1):
        self.workers = workers

    def map(self, fn: Callable[[C, U], R], units: Iterable[U], context: C, *, batch: int = 0,
            cost: Callable[[U], int] = len, window: int | None = None,  # type: ignore[assignment]
            inline: Callable[[U], bool] | None = None, workers: int | None = None) -> Iterator[R]:
        n = min(workers or self.workers, self.workers)
        if n <= 1:
            return (fn(context, unit) for unit in units)
        # tasks carry the context pickled (unpickled once per process; inline units too)
        return ordered_map(ship(fn, context), units, workers=n, window=window or 2 * n, inline=inline,
                           batch=batch, cost=cost)
