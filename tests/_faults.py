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
    """The Ray executor, with every map (``where="map"``) or every partition task
    (``where="partitions"``) wrapped in KillOnce (the stage code is not touched)."""

    def __init__(self, inner: Executor, marker: Path, where: str = "map"):
        self.inner, self.marker, self.where = inner, str(marker), where
        self.name, self.workers, self.partitions = inner.name, inner.workers, inner.partitions

    def _wrap(self, fn, where: str):
        return KillOnce(fn, self.marker) if where == self.where else fn

    def map(self, fn, units, context, **kw):
        return self.inner.map(self._wrap(fn, "map"), units, context, **kw)

    def map_held(self, fn, units, context, **kw):
        return self.inner.map_held(self._wrap(fn, "map"), units, context, **kw)

    def fetch(self, items, select=None):
        return self.inner.fetch(items, select)

    def put(self, value):
        return self.inner.put(value)

    def map_partitions(self, fn, parts, context):
        return self.inner.map_partitions(self._wrap(fn, "partitions"), parts, context)
