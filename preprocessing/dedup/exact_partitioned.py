"""Exact dedup partitioned by hash prefix: the kept copy of a content hash is its smallest global ordinal.

The map gives, per work unit, the content hashes of its candidate rows in order; a row's global
ordinal is ``(unit index, row)`` packed as ``unit << 32 | row``. The driver routes each
(hash, ordinal) to one of P partitions by the hash's prefix (:func:`partition_of`) and hands a
partition's entries to the executor in chunks (:meth:`Executor.put`: on Ray they go to the
object store as they are made, and from there to the partition's task). Each partition is one
pure task (:func:`duplicate_ordinals`): it sorts its entries by (hash, ordinal) and returns the
ordinals that are not the first of their hash, which are the duplicates. Equal hashes always
meet in one partition, and the smallest ordinal of a hash is its first occurrence in unit
order, so the duplicates are exactly those of the in-driver table (:class:`HashSet64` fed in
unit order), for any P, any chunking and any executor.

What travels: 16 bytes per candidate row to the partitions (hash + ordinal), 8 bytes per
duplicate back to the driver. A partition holds its entries (16 bytes each) and the sort's
temporaries (~24 bytes each) while it runs: ~40 bytes x rows / P. The driver keeps the sorted
duplicate ordinals (8 bytes per duplicate) for the write step, plus the chunks not yet handed
over (at most ``chunk_rows`` entries per partition).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from preprocessing.executors import Executor

CHUNK_ROWS = 1 << 20
"""Entries of one partition buffered in the driver before they are handed to the executor (16 MiB)."""
ROW_BITS = 32


def ordinals_of(unit: int, nrows: int) -> np.ndarray:
    """The global ordinals ``unit << 32 | row`` of a unit's rows 0..nrows-1 (uint64)."""
    return (np.uint64(unit) << np.uint64(ROW_BITS)) | np.arange(nrows, dtype=np.uint64)


def partition_of(hashes: np.ndarray, partitions: int) -> np.ndarray:
    """The partition (0..P-1) of each hash, by its prefix: the top 32 bits scaled to P (any P, not
    only powers of two; contiguous hash ranges, so a partition is a range of hash prefixes)."""
    return ((hashes >> np.uint64(32)) * np.uint64(partitions)) >> np.uint64(32)


def duplicate_ordinals(_context: Any, chunks: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """A partition task: the ordinals of the entries that are not the smallest ordinal of their
    hash (the duplicates), sorted. Pure: a retried task returns the same array."""
    if not chunks:
        return np.zeros(0, np.uint64)
    hashes = np.concatenate([h for h, _ in chunks])
    ordinals = np.concatenate([o for _, o in chunks])
    order = np.lexsort((ordinals, hashes))  # by hash, then ordinal: the first of each run is kept
    h = hashes[order]
    dup = np.zeros(len(h), dtype=bool)
    dup[1:] = h[1:] == h[:-1]
    return np.sort(ordinals[order[dup]])


class PartitionedExactDedup:
    """The driver side: route (hash, ordinal) to P partitions as units arrive, run the partition
    tasks on the executor, then say for each unit which of its rows are first occurrences."""

    def __init__(self, executor: Executor, partitions: int, chunk_rows: int = CHUNK_ROWS):
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        self.executor, self.partitions, self.chunk_rows = executor, partitions, chunk_rows
        self._buffers: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(partitions)]
        self._buffered = [0] * partitions
        self._chunks: list[list[Any]] = [[] for _ in range(partitions)]  # handed over (executor.put)
        self.entries = [0] * partitions
        self._dups: np.ndarray | None = None

    def add(self, unit: int, hashes: np.ndarray) -> None:
        """The content hashes (uint64) of unit ``unit``'s candidate rows, in row order."""
        if len(hashes) == 0:
            return
        if len(hashes) >= 1 << ROW_BITS:
            raise ValueError(f"a work unit holds at most 2**{ROW_BITS} rows for partitioned exact dedup")
        hashes = np.asarray(hashes, dtype=np.uint64)
        ordinals = ordinals_of(unit, len(hashes))
        if self.partitions == 1:
            self._append(0, hashes, ordinals)
            return
        part = partition_of(hashes, self.partitions)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.partitions + 1, dtype=np.uint64))
        for p in np.flatnonzero(np.diff(bounds)).tolist():
            sel = order[bounds[p] : bounds[p + 1]]
            self._append(p, hashes[sel], ordinals[sel])

    def _append(self, p: int, hashes: np.ndarray, ordinals: np.ndarray) -> None:
        self._buffers[p].append((hashes, ordinals))
        self._buffered[p] += len(hashes)
        self.entries[p] += len(hashes)
        if self._buffered[p] >= self.chunk_rows:
            self._hand_over(p)

    def _hand_over(self, p: int) -> None:
        buf = self._buffers[p]
        if buf:
            chunk = (np.concatenate([h for h, _ in buf]), np.concatenate([o for _, o in buf]))
            self._chunks[p].append(self.executor.put(chunk))
        self._buffers[p], self._buffered[p] = [], 0

    def resolve(self) -> None:
        """Run the P partition tasks (after the last :meth:`add`); keeps the duplicates' ordinals."""
        for p in range(self.partitions):
            self._hand_over(p)
        parts, self._chunks = self._chunks, []
        found = list(self.executor.map_partitions(duplicate_ordinals, parts, None))
        self._dups = np.sort(np.concatenate(found)) if found else np.zeros(0, np.uint64)

    @property
    def duplicates(self) -> int:
        assert self._dups is not None, "resolve() first"
        return len(self._dups)

    def first_occurrences(self, unit: int, nrows: int) -> np.ndarray:
        """bool[nrows]: which rows of ``unit`` are the kept copy of their hash (after :meth:`resolve`)."""
        assert self._dups is not None, "resolve() first"
        new = np.ones(nrows, dtype=bool)
        lo, hi = np.searchsorted(self._dups, [np.uint64(unit) << np.uint64(ROW_BITS),
                                              np.uint64(unit + 1) << np.uint64(ROW_BITS)])
        if hi > lo:
            new[(self._dups[lo:hi] & np.uint64((1 << ROW_BITS) - 1)).astype(np.int64)] = False
        return new

    def memory_note(self) -> dict[str, Any]:
        """Entries per partition and the bytes each partition task holds (see the module docstring)."""
        largest = max(self.entries) if self.entries else 0
        return {"partitions": self.partitions, "largest_partition_entries": largest,
                "partition_task_bytes_per_entry": 40, "driver_bytes_per_duplicate": 8}

