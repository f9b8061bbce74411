"""Faults for the executor tests: a map that kills its worker process once (importable by Ray workers)."""

from __future__ import annotations

import os
from pathlib import Path

from preprocessing.executors import Executor


class KillOnce:
    """The map of a stage wrapped so that the first task to run kills its worker process."""

    def __init__(self, fn, marker: str):
        self.fn, self.marker = fn, marker

    def __call__(self, context, unit):
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)  # the worker dies mid-task, as if killed: Ray retries the task elsewhere
        return self.fn(context, unit)


class KillingExecutor(Executor):
    """The Ray executor, with every map wrapped in KillOnce (the stage code is not touched)."""

    def __init__(self, inner: Executor, marker: Path):
        self.inner, self.marker = inner, str(marker)
        self.name, self.workers = inner.name, inner.workers

    def map(self, fn, units, context, **kw):
        return self.inner.map(KillOnce(fn, self.marker), units, context, **kw)
