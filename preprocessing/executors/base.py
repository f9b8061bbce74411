"""What every executor is: an ordered map of a stage's ``map(context, unit)`` over its units."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
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
    partitions: int | None = None
    """Partitions of the global state that must scale (the exact-dedup table, by hash prefix): each
    partition is one task. 0: the table is gathered in the driver (fastest on one machine); None:
    0 on the local executor, ``workers`` on Ray."""

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.partitions is not None and self.partitions < 0:
            raise ConfigError(f"partitions must be >= 0 (0: gathered in the driver), got {self.partitions}")
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
    partitions: int = 0
    """Partitions of the global state (exact dedup by hash prefix); 0: gathered in the driver."""
    local_disk: bool = True
    """Whether the workers run on this machine and read its local files (a unit may then name a
    file the driver wrote, :mod:`preprocessing.dedup.linespool`); False on a Ray cluster."""

    def map(self, fn: Callable[[C, U], R], units: Iterable[U], context: C, *, batch: int = 0,
            cost: Callable[[U], int] = len, window: int | None = None,  # type: ignore[assignment]
            inline: Callable[[U], bool] | None = None, workers: int | None = None) -> Iterator[R]:
        """``fn(context, unit)`` for each unit, in unit order; ``batch``/``cost`` group consecutive
        units into one task, ``inline`` units run in this process, at most ``window`` tasks
        (default 2 per worker) are pending; ``workers`` lowers the parallelism of this map."""
        raise NotImplementedError

    def map_held(self, fn: Callable[[C, U], tuple[Any, Any]], units: Iterable[U], context: C, *,
                 spool: Path, **kw: Any) -> Iterator[tuple[Any, Held]]:
        """:meth:`map` of a ``fn`` that returns ``(head, body)``: the heads come back in unit order,
        each with a handle on its body, which stays where the executor holds it until
        :meth:`fetch` (here: pickled into a file under ``spool``, on this machine's disk; Ray: in
        the object store of the node that ran the task). For a reduce that must see every unit's
        head before it consumes the first body (a partitioned exact-dedup table)."""
        held = Spool(spool)
        for head, body in self.map(fn, units, context, **kw):
            yield head, held.put(body)
        held.done()

    def fetch(self, items: Iterable[tuple[Held, Any]], select: Callable[[Any, Any], Any] | None = None
              ) -> Iterator[Any]:
        """The bodies of :meth:`map_held`'s handles, each with an argument, in the order given (each
        fetched once); with ``select``, ``select(body, arg)`` instead of the body, computed where
        the body is held (here: in this process; Ray: a task next to it), so that only what it
        keeps travels."""
        for handle, arg in items:
            body = handle.get()
            yield body if select is None else select(body, arg)

    def put(self, value: Any) -> Any:
        """``value`` as a partition task's input: here the value itself; Ray: an ObjectRef (the value
        leaves the driver for the object store and goes to the task without passing through it again)."""
        return value

    def share(self, value: Any) -> Shared:
        """``value`` for the units of later maps and of later units of this one to carry: a small
        handle whose ``get()`` gives the value in any process of this executor, read once per
        process (here: the value itself; local worker processes: a file; Ray: the object store).
        ``release()`` when no unit needs it any more."""
        return _Here(value)

    def map_partitions(self, fn: Callable[[C, list[Any]], R], parts: list[list[Any]], context: C) -> Iterator[R]:
        """``fn(context, chunks)`` for each partition (its chunks as :meth:`put` gave them), one task
        each, results in partition order. A partition task is pure: a retried one returns the same."""
        return self.map(fn, parts, context, workers=max(1, min(len(parts), self.workers)), window=2 * self.workers)

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


MMAP_THRESHOLD = 32 << 20
"""glibc's M_MMAP_THRESHOLD in a process that runs stage work (its largest value on 64 bits)."""
TRIM_THRESHOLD = 64 << 20
"""glibc's M_TRIM_THRESHOLD there: free memory a process may keep at its heap's top."""
_MALLOC_TUNED = False


def keep_freed_memory() -> None:
    """Once per process that runs stage work (the driver; each worker, as its first task's context
    arrives): glibc's ``malloc`` keeps freed buffers for the next ones (``mallopt(3)``:
    :data:`MMAP_THRESHOLD`, :data:`TRIM_THRESHOLD`). A stage allocates and frees buffers of
    megabytes per work unit (decompressed pieces, a unit's lines, compressed frames); glibc's
    defaults serve many of them by ``mmap`` or hand the heap's top back to the kernel when they are
    freed, so the next unit's buffers are fresh pages: a minor page fault per 4 KiB, ~4.5 µs each on
    the benchmark VM with the page zeroed. Measured on `dedup -i` of a 642 MB dump of .gz files with
    2 workers: 122 k -> 66 k minor faults, ~0.3-0.5 s less system CPU, peak RSS of the driver +10 MB
    (docs/benchmarks.md). Nothing is done off glibc, or where the user set malloc's own settings
    (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``); a refused setting
    is a RuntimeWarning."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):  # (not a name this platform knows)
        libc = ""
    if not libc.startswith("glibc") or any(k in os.environ for k in (
            "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")):
        return
    import ctypes

    mallopt = ctypes.CDLL(None).mallopt
    m_trim_threshold, m_mmap_threshold = -1, -3  # (malloc.h)
    if not (mallopt(m_mmap_threshold, MMAP_THRESHOLD) and mallopt(m_trim_threshold, TRIM_THRESHOLD)):
        import warnings

        warnings.warn("mallopt refused the stage's malloc settings: buffers freed per work unit go back to the "
                      "kernel (the same output, more page faults)", RuntimeWarning, stacklevel=2)


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

            keep_freed_memory()  # (a worker's first task: see there)
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


class Shared:
    """A value shared with the workers (:meth:`Executor.share`); units carry the handle, not the value."""

    __slots__ = ()

    def get(self) -> Any:
        raise NotImplementedError

    def release(self) -> None:
        """The value is no longer needed (nothing: the executor frees it with the last reference)."""


class _Here(Shared):
    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def get(self) -> Any:
        return self.value


_SHARED: dict[str, Any] = {}
"""Per process: the shared values this process has read, by the handle's key (immutable values)."""
_SHARED_MAX = 64


def cached_shared(key: str, load: Callable[[], Any]) -> Any:
    """The value of a shared handle ``key`` in this process, ``load()``-ed the first time."""
    value = _SHARED.get(key)
    if value is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        value = _SHARED[key] = load()
    return value


class _Filed(Shared):
    """A value in a file of this machine's temporary directory (the local executor's workers)."""

    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path

    def get(self) -> Any:
        return cached_shared(self.path, self._load)

    def _load(self) -> Any:
        if self.path.endswith(".npy"):
            import numpy as np

            return np.load(self.path, mmap_mode="r")
        import pickle

        with open(self.path, "rb") as f:
            return pickle.load(f)

    def release(self) -> None:
        _SHARED.pop(self.path, None)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def share_in_file(value: Any) -> Shared:
    """``value`` written to a new file in the temporary directory: an array as ``.npy`` (each worker
    maps it read-only, so the page cache holds it once per machine), anything else pickled."""
    import tempfile

    import numpy as np

    if isinstance(value, np.ndarray):
        fd, path = tempfile.mkstemp(prefix="cp-shared-", suffix=".npy")
        with os.fdopen(fd, "wb") as f:
            np.save(f, value, allow_pickle=False)
    else:
        import pickle

        fd, path = tempfile.mkstemp(prefix="cp-shared-", suffix=".pkl")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
    return _Filed(path)


class Held:
    """A handle on a body that :meth:`Executor.map_held` holds until it is fetched."""

    def get(self) -> Any:
        raise NotImplementedError


class Spool:
    """Bodies held on this machine's disk: pickled one after the other into ``directory/spool-<n>.bin``,
    read back once each (the file goes when its last body is read)."""

    def __init__(self, directory: Path):
        import pickle
        import tempfile

        self._pickle = pickle
        Path(directory).mkdir(parents=True, exist_ok=True)
        fd, self.path = tempfile.mkstemp(prefix="spool-", suffix=".bin", dir=directory)
        self._out = os.fdopen(fd, "wb")
        self._in: Any = None
        self._pos = self._pending = 0

    def put(self, body: Any) -> _Spooled:
        data = self._pickle.dumps(body, protocol=self._pickle.HIGHEST_PROTOCOL)
        self._out.write(data)
        handle = _Spooled(self, self._pos, len(data))
        self._pos += len(data)
        self._pending += 1
        return handle

    def done(self) -> None:
        """Every body is put: the file is complete (and goes now if it holds none)."""
        self._out.close()
        if self._pending == 0:
            os.unlink(self.path)

    def read(self, offset: int, length: int) -> Any:
        if self._in is None:
            self._in = open(self.path, "rb")  # noqa: SIM115 - closed with the last body
        self._in.seek(offset)
        body = self._pickle.loads(self._in.read(length))
        self._pending -= 1
        if self._pending == 0:
            self._in.close()
            os.unlink(self.path)
        return body


class _Spooled(Held):
    __slots__ = ("spool", "offset", "length")

    def __init__(self, spool: Spool, offset: int, length: int):
        self.spool, self.offset, self.length = spool, offset, length

    def get(self) -> Any:
        return self.spool.read(self.offset, self.length)


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
    executor.partitions = cfg.partitions if cfg.partitions is not None else \
        (executor.workers if cfg.executor == "ray" else 0)
    return executor, True
