"""The local executor: an ordered pool of worker processes on this machine (the default)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from typing import Any

from preprocessing.executors.base import C, Executor, R, Shared, U, share_in_file, ship
from preprocessing.executors.pool import Barrier, ordered_map


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
            return (fn(context, unit) for unit in units if type(unit) is not Barrier)
        # tasks carry the context pickled (unpickled once per process; inline units too)
        return ordered_map(ship(fn, context), units, workers=n, window=window or 2 * n, inline=inline,
                           batch=batch, cost=cost)

    def share(self, value: Any) -> Shared:
        """Inline: the value itself; with worker processes: a file under the temporary directory
        (``.npy`` for an array, mapped read-only by each worker: the page cache holds it once)."""
        return super().share(value) if self.workers <= 1 else share_in_file(value)
