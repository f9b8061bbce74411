"""ordered_map: results in input order whatever the workers, batches and inline items."""

from __future__ import annotations

import os

import pytest

from preprocessing.executors.pool import ordered_map


def square_and_pid(x: list[int]) -> tuple[int, int]:
    return sum(v * v for v in x), os.getpid()


def is_inline(x: list[int]) -> bool:
    return len(x) == 1


@pytest.mark.parametrize("workers,batch,inline", [(1, 0, None), (2, 0, None), (2, 7, None), (2, 7, is_inline),
                                                  (3, 1000, is_inline)])
def test_results_in_input_order(workers, batch, inline):
    items = [list(range(i % 5 + 1)) for i in range(200)]  # len 1..5: the cost of each item
    out = list(ordered_map(square_and_pid, items, workers=workers, window=3, inline=inline, batch=batch))
    assert [r for r, _ in out] == [sum(v * v for v in x) for x in items]
    pids = {pid for (_, pid), x in zip(out, items) if not (inline and inline(x))}
    if workers > 1:
        assert os.getpid() not in pids  # the others ran in the pool
        inline_pids = {pid for (_, pid), x in zip(out, items) if inline and inline(x)}
        assert inline_pids <= {os.getpid()}


def slow_first(x: int) -> int:
    if x == 0:
        import time

        time.sleep(0.3)
    return x


def test_inline_items_do_not_run_ahead_of_the_window():
    """A run of inline items behind a slow pool task waits for it: at most ``window`` results are held."""
    consumed = []

    def items():
        for i in range(200):
            consumed.append(i)
            yield i

    out = ordered_map(slow_first, items(), workers=2, window=4, inline=lambda x: x > 0)
    assert next(out) == 0
    assert len(consumed) <= 5
    assert list(out) == list(range(1, 200))
