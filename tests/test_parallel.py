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


def test_inline_items_run_ahead_of_a_slow_task_within_the_tasks_budget():
    """With batches, inline results do not take the pool tasks' places in the window: behind a
    slow task the loop reads on until the inline results held cost what ``window`` tasks may
    (window * batch), and no further."""
    consumed = []

    def items():
        for i in range(400):
            consumed.append(i)
            yield i

    out = ordered_map(slow_first, items(), workers=2, window=4, inline=lambda x: x > 0, batch=10,
                      cost=lambda x: 1)
    assert next(out) == 0
    assert 5 < len(consumed) <= 1 + 4 * 10 + 1  # (the slow task, the budget, the item that filled it)
    assert list(out) == list(range(1, 400))


def _sum_known(ctx: None, unit: tuple[int, tuple]) -> tuple[int, int]:
    """A unit that reads the shared arrays it carries: (its value, the sum of what it was shown)."""
    value, handles = unit
    return value, int(sum(int(h.get().sum()) for h in handles))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_barrier_drains_the_pipeline_and_shared_values_reach_the_workers(workers):
    """At a BARRIER every earlier result is consumed before the next unit is read, so a reduce can
    share what it learnt (Executor.share) with the units after it, whatever the workers."""
    import numpy as np

    from preprocessing.executors import LocalExecutor
    from preprocessing.executors.pool import BARRIER

    ex = LocalExecutor(workers)
    seen: list[int] = []
    handles: list = []

    def units():
        for u in range(40):
            if u in (1, 2, 4, 8, 16, 32):
                yield BARRIER
                assert seen == list(range(u))  # every unit before this one is reduced
                handles.append(ex.share(np.array(seen[-(len(seen) + 1) // 2:], np.uint64)))
            yield u, tuple(handles)

    try:
        out = []
        for value, shown in ex.map(_sum_known, units(), None, window=8):
            seen.append(value)
            out.append(shown)
    finally:
        for h in handles:
            h.release()
    expect, shared = [], []
    for u in range(40):
        if u in (1, 2, 4, 8, 16, 32):
            shared.append(sum(list(range(u))[-(u + 1) // 2:]))
        expect.append(sum(shared))
    assert seen == list(range(40)) and out == expect


@pytest.mark.parametrize("workers", [1, 3])
def test_a_barrier_on_older_units_waits_only_for_them(workers):
    """Barrier(n) yields the results of the first n units before the next one is read, and no more
    than the window needs: the units after n stay in flight."""
    from preprocessing.executors import LocalExecutor
    from preprocessing.executors.pool import Barrier

    seen: list[int] = []
    ahead = []

    def units():
        for u in range(200):
            if u and u % 20 == 0:
                yield Barrier(u - 10)
                assert len(seen) >= u - 10 and seen == list(range(len(seen)))
                ahead.append(u - len(seen))  # units read but not yet consumed here
            yield u, ()

    for value, _ in LocalExecutor(workers).map(_sum_known, units(), None, window=4):
        seen.append(value)
    assert seen == list(range(200))
    if workers > 1:
        assert max(ahead) > 0  # the barrier did not drain the window


def dies_at_seven(x: int) -> int:
    if x == 7:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)  # (a worker killed by the OOM killer or a user)
    return x


def test_a_worker_that_dies_stops_the_map_with_one_line(tmp_path):
    """A local worker killed in a task: the map raises WorkerDied (it does not wait forever for the
    lost task), and a stage command says so in one line, exit code 2."""
    from click.testing import CliRunner

    from preprocessing.cli.common import clean_errors
    from preprocessing.executors.pool import WorkerDied

    with pytest.raises(WorkerDied, match="a worker process died"):
        list(ordered_map(dies_at_seven, range(40), workers=2, window=4))

    import click

    @click.command()
    @clean_errors
    def command() -> None:
        list(ordered_map(dies_at_seven, range(40), workers=2, window=4))

    res = CliRunner().invoke(command, [])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "a worker process died" in res.output
