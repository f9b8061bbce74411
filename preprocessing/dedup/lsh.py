"""LSH band tables as sorted (key, ordinal) arrays, spilled to disk partitions past a memory budget.

Each band keeps flat uint64 keys and uint32 ordinals (12 bytes per file and band) instead of
Python dicts. Grouping is a stable sort by key: a bucket is a run of equal keys, its members in
input order. Candidate pairs of a bucket link every member to the bucket's first member (star)
and to the previous member (chain): 2(k-1) pairs for k members, never k^2, so 100k identical
files cost 200k pairs, yet a member that fails verification against the first one can still
join through its neighbour.

Past ``memory_budget_bytes`` the tables are written to ``spill_dir`` as ``.npy`` chunks, split
by key range (the top bits of the key) into ``partitions`` files per band; at the end each
(band, partition) is loaded alone, so equal keys always meet and peak memory is one partition.
Chunks are appended in ordinal order and sorts are stable, so the in-memory and the spilled
paths yield the same buckets with the same member order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

ENTRY_BYTES = 12
"""Bytes per file and band in the tables: uint64 key + uint32 ordinal."""


class BandTables:
    """Append (ordinal, band keys) in ordinal order; iterate candidate pairs at the end."""

    def __init__(self, bands: int, memory_budget_bytes: int, spill_dir: Path | str, partitions: int = 16):
        if partitions < 1 or partitions & (partitions - 1):
            raise ValueError(f"partitions must be a power of two, got {partitions}")
        self.bands = bands
        self.budget = memory_budget_bytes
        self.spill_dir = Path(spill_dir)
        self.partitions = partitions
        self._shift = np.uint64(64 - (partitions.bit_length() - 1)) if partitions > 1 else None
        self._keys: list[np.ndarray] = []  # chunks of uint64[k, bands]
        self._ords: list[np.ndarray] = []  # chunks of uint32[k]
        self._mem = 0
        self._spilled_chunks = 0
        self.entries = 0

    @property
    def spilled(self) -> bool:
        return self._spilled_chunks > 0

    def add(self, ordinals: np.ndarray, keys: np.ndarray) -> None:
        """Add files (ordinals increasing across calls) with their uint64[k, bands] keys."""
        if len(ordinals) == 0:
            return
        if keys.shape != (len(ordinals), self.bands):
            raise ValueError(f"keys must have shape ({len(ordinals)}, {self.bands}), got {keys.shape}")
        self._keys.append(np.ascontiguousarray(keys, dtype=np.uint64))
        self._ords.append(np.asarray(ordinals, dtype=np.uint32))
        self._mem += len(ordinals) * self.bands * ENTRY_BYTES
        self.entries += len(ordinals)
        if self._mem > self.budget:
            self._spill()

    def _spill(self) -> None:
        if not self._ords:
            return
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        ords = np.concatenate(self._ords)
        c = self._spilled_chunks
        for band in range(self.bands):  # one band column at a time: the extra memory is 1/bands
            k = np.concatenate([chunk[:, band] for chunk in self._keys])
            part = k >> self._shift if self._shift is not None else np.zeros(len(k), np.uint64)
            for p in range(self.partitions):
                sel = part == p
                if sel.any():
                    np.save(self.spill_dir / f"b{band:03d}-p{p:04d}-c{c:06d}-keys.npy", k[sel])
                    np.save(self.spill_dir / f"b{band:03d}-p{p:04d}-c{c:06d}-ords.npy", ords[sel])
        self._spilled_chunks += 1
        self._keys, self._ords, self._mem = [], [], 0

    def _band_arrays(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(band, keys, ordinals) blocks such that equal keys of a band share one block."""
        if not self.spilled:
            if not self._ords:
                return
            ords = np.concatenate(self._ords)
            for band in range(self.bands):
                yield band, np.concatenate([chunk[:, band] for chunk in self._keys]), ords
            return
        self._spill()  # the tail joins the partitions
        for band in range(self.bands):
            for p in range(self.partitions):
                ks, os_ = [], []
                for c in range(self._spilled_chunks):
                    f = self.spill_dir / f"b{band:03d}-p{p:04d}-c{c:06d}-keys.npy"
                    if f.exists():
                        ks.append(np.load(f))
                        os_.append(np.load(f.with_name(f.name.replace("-keys", "-ords"))))
                if ks:
                    yield band, np.concatenate(ks), np.concatenate(os_)

    def candidate_pairs(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(band, a, b) int64 arrays of candidate pairs (a < b) per band block, deduplicated."""
        for band, keys, ords in self._band_arrays():
            a, b = bucket_pairs(keys, ords)
            if len(a):
                yield band, a, b

    def cleanup(self) -> None:
        """Remove the spill files."""
        if self.spill_dir.exists():
            for f in self.spill_dir.glob("b*-p*-c*-*.npy"):
                f.unlink()


def bucket_pairs(keys: np.ndarray, ords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Star + chain pairs of every bucket (run of equal keys), members in input order."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    o = ords[order].astype(np.int64)
    same = k[1:] == k[:-1]  # position i+1 is in the bucket of position i
    if not same.any():
        return np.empty(0, np.int64), np.empty(0, np.int64)
    new_group = np.concatenate(([True], ~same))
    first = o[np.flatnonzero(new_group)][np.cumsum(new_group) - 1]
    member = np.flatnonzero(~new_group)
    a = np.concatenate((first[member], o[member - 1]))
    b = np.concatenate((o[member], o[member]))
    pairs = np.sort((a << 32) | b)  # star and chain share (first, second): count it once
    pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))]  # (np.unique would import numpy.ma: 10 ms)
    return pairs >> 32, pairs & 0xFFFFFFFF
