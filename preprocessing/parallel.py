"""Ordered parallel map with bounded look-ahead: results in input order, memory bounded."""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

A = TypeVar("A")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[A], R],
    items: Iterable[A],
    workers: int = 1,
    window: int | None = None,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    inline: Callable[[A], bool] | None = None,
) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in input order.

    With ``workers <= 1`` everything runs inline. Otherwise a process pool runs ``fn`` and at most
    ``window`` items are in flight (``Pool.imap`` would read the whole input ahead), so memory
    stays bounded whatever the input size. Because results come back in input order, the output
    does not depend on the number of workers. Items for which ``inline(item)`` is true are run in
    this process (when shipping them to a worker and back costs more than the work), still in order.
    """
    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        for item in items:
            yield fn(item)
        return
    window = window or 2 * workers
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    if inline is not None and initializer is not None:
        initializer(*initargs)  # inline items run here, with the workers' state
    with ctx.Pool(workers, initializer=initializer, initargs=initargs) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(_Done(fn(item)) if inline is not None and inline(item) else pool.apply_async(fn, (item,)))
            if len(pending) >= window:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


class _Done:
    """The result of an item run inline, with AsyncResult's ``get``."""

    def __init__(self, value: object):
        self.value = value

    def get(self) -> object:
        return self.value

