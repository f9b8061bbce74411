"""Exact dedup: a 64-bit hash of the whitespace-normalised content, first occurrence kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xxhash


@dataclass
class ExactDedupConfig:
    """Exact dedup after the filters."""

    enabled: bool = True
    """Drop files whose normalised content was seen before (reason 'exact_duplicate')."""
    normalize_whitespace: bool = True
    """Hash the content with all whitespace runs removed (CodeParrot hashes stripped content)."""


_WS = b" \t\n\r\f\v"


def content_hash(content: str, normalize_whitespace: bool = True) -> int:
    """xxh3-64 of the UTF-8 content with all ASCII whitespace removed (bytes.translate runs at
    GB/s, str.translate at tens of MB/s); 0 is reserved for empty slots, so it maps to 1."""
    data = content.encode("utf-8", "surrogatepass")
    if normalize_whitespace:
        data = data.translate(None, _WS)
    return xxhash.xxh3_64_intdigest(data) or 1


def initial_slots(capacity: int) -> int:
    """Slots of a new :class:`HashSet64` for ``capacity`` keys (a power of two, at least 16)."""
    return 1 << max(4, int(capacity - 1).bit_length())


def must_grow(slots: int, count: int, distinct: int) -> bool:
    """Whether a :class:`HashSet64` of ``slots`` holding ``count`` keys doubles before a batch of
    ``distinct`` distinct keys (its load stays <= 0.5)."""
    return (count + distinct) * 2 > slots


class HashSetSize:
    """The size a :class:`HashSet64` fed the same batches would have, without its table: the
    in-driver table's memory note (``exact_dedup_memory`` in stats.json) for a run whose exact
    dedup is partitioned, so that its stats equal the gathered run's."""

    def __init__(self, capacity: int = 1 << 16):
        self.slots, self.count = initial_slots(capacity), 0

    def __len__(self) -> int:
        return self.count

    @property
    def nbytes(self) -> int:
        return self.slots * 8

    def add(self, distinct: int, new: int) -> None:
        """A batch of ``distinct`` distinct keys, ``new`` of them not seen before."""
        if distinct == 0:
            return
        while must_grow(self.slots, self.count, distinct):
            self.slots *= 2
        self.count += new


_HASHSET: list[Any] = []


def _hashset_kernel() -> Any:
    """The C ``hashset_add`` (preprocessing/dedup/_cminhash.c), or None: then a RuntimeWarning,
    once, and the numpy rounds (the same answers, slower on the small batches of a unit)."""
    if not _HASHSET:
        from preprocessing.dedup import native

        _HASHSET.append(native.optional_kernel("hashset_add", "exact dedup's table is filled by numpy "
                                               "(the same answers, slower)"))
    return _HASHSET[0]


class HashSet64:
    """An open-addressing set of uint64 in one numpy array: 8 bytes per slot, load <= 0.5,
    so 16-32 bytes per unique file (a Python set of ints costs about 70).

    ``add_batch`` returns, for a batch of hashes in input order, which ones were new (first
    occurrence, also within the batch), and inserts them: one C pass (``hashset_add`` in
    preprocessing/dedup/_cminhash.c, linear probing key by key), else (a RuntimeWarning, once)
    the numpy rounds of :meth:`_insert_unique` (:meth:`_insert` takes one or the other). The two may place a key in different slots (the
    rounds probe all keys at once) but hold the same keys and answer the same; the table grows at
    the same counts, so its size (stats.json's ``table_bytes``) is the same too.
    """

    def __init__(self, capacity: int = 1 << 16):
        self._table = np.zeros(initial_slots(capacity), dtype=np.uint64)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._table.nbytes

    def _grow(self) -> None:
        old = self._table[self._table != 0]
        self._table = np.zeros(self._table.size * 2, dtype=np.uint64)
        self._count = 0
        self._insert(old)

    def _insert(self, keys: np.ndarray) -> np.ndarray:
        """Insert ``keys`` (contiguous uint64, in order, repeats allowed; the table grown for them
        already); returns the mask of those absent before (a repeat finds its first)."""
        insert = _hashset_kernel()
        if insert is not None:
            out = np.zeros(keys.size, dtype=bool)
            self._count += insert(self._table, keys, out)
            return out
        uniq, first_idx = np.unique(keys, return_index=True)
        out = np.zeros(keys.size, dtype=bool)
        out[first_idx[self._insert_unique(uniq)]] = True
        return out

    def _insert_unique(self, keys: np.ndarray) -> np.ndarray:
        """Insert distinct keys; returns a bool mask of which were absent before."""
        table = self._table
        mask = np.uint64(table.size - 1)
        slots = (keys * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - int(table.size).bit_length() + 1)
        slots &= mask
        new = np.zeros(keys.size, dtype=bool)
        todo = np.arange(keys.size)
        while todo.size:
            s = slots[todo]
            cur = table[s]
            found = cur == keys[todo]
            empty = cur == 0
            # among pending keys that hit the same empty slot, the first claims it
            claim = todo[empty]
            if claim.size:
                _, first = np.unique(slots[claim], return_index=True)
                winners = claim[first]
                table[slots[winners]] = keys[winners]
                new[winners] = True
                self._count += winners.size
                done = np.zeros(keys.size, dtype=bool)
                done[winners] = True
                done[todo[found]] = True
            else:
                done = np.zeros(keys.size, dtype=bool)
                done[todo[found]] = True
            todo = todo[~done[todo]]
            slots[todo] = (slots[todo] + np.uint64(1)) & mask
        return new

    def add_batch(self, hashes: np.ndarray | list[int]) -> np.ndarray:
        """Insert ``hashes`` (nonzero uint64) in order; returns the mask of first occurrences."""
        keys = np.ascontiguousarray(hashes, dtype=np.uint64)
        if keys.size == 0:
            return np.zeros(0, dtype=bool)
        distinct = len(set(hashes)) if type(hashes) is list else int(np.unique(keys).size)
        while must_grow(self._table.size, self._count, distinct):
            self._grow()
        return self._insert(keys)
