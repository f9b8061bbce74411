"""LSH band buckets partitioned by band key: candidate pairs found and verified where they meet.

Pass 1's driver routes every (band, band key, ordinal) entry to one of P partitions by the key's
prefix (:func:`preprocessing.dedup.exact_partitioned.partition_of`; a band key is a hash, so
the partitions are even) and hands each partition's entries to the executor in chunks, as they
come (on Ray: into the object store). A bucket (a band and one key) is whole in one partition.
At clustering, each partition is one pure task (:func:`verify_partition`): it cuts its
entries into the blocks the in-driver tables would form (a band; past the memory budget a
band and a key range, see :mod:`preprocessing.dedup.lsh`), forms each bucket's star + chain
candidate pairs (:func:`preprocessing.dedup.lsh.bucket_pairs`), and verifies them with the
signatures (or shingle sets) of both members, read from pass 1's signature file. Block by
block it skips pairs already joined by its own verified pairs (they are joined in the global
union-find too), and returns the others with their verdict. The driver replays the blocks in
order over ONE union-find (4 bytes per file), skipping pairs joined by earlier blocks as the
in-driver loop does: the same clusters, and the same candidate and verified pair counts.

What travels: 14 bytes per file and band to the partitions (key 8, ordinal 4, band 2: 252 B
per file at 18 bands); the signature of each file that is in a bucket of two or more, once per
partition that holds such a bucket of it (4 B x num_perm: 1 KiB at 256), read by the task
from the signature file on the shared filesystem; back: 13 bytes per candidate pair the
partition could not skip (block 4, ordinals 4 + 4, verdict 1). A partition task holds its
entries (14 B each, ~30 B with the sort), its pairs (~24 B each) and a union-find over its
pair members (4 B each) plus one verification batch of signatures.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from preprocessing.dedup.exact_partitioned import CHUNK_ROWS, partition_of
from preprocessing.dedup.lsh import ENTRY_BYTES, bucket_pairs
from preprocessing.dedup.minhash import NearDedupConfig
from preprocessing.dedup.unionfind import UnionFind
from preprocessing.executors import Executor

_VERIFY_BATCH = 8192


@dataclass
class PartitionContext:
    """What every partition task needs besides its entries: the config, the block layout of the
    in-driver tables, and where pass 1's signatures (and shingle sets) are."""

    cfg: NearDedupConfig
    n: int
    bands: int
    spilled: bool
    spill_partitions: int
    sig_path: str
    shingles_path: str | None = None
    offsets_path: str | None = None


def pair_verifier(cfg: NearDedupConfig, sig: np.ndarray, shingles: np.ndarray | None = None,
                  offsets: np.ndarray | None = None):
    """``verify(a, b) -> bool[len(a)]``: whether each pair reaches the threshold, by estimated
    Jaccard of the signatures (``verify: signature``) or exact Jaccard of the shingle sets."""
    from preprocessing.dedup.minhash import estimated_jaccard, exact_jaccard

    threshold = cfg.threshold - 1e-9  # float tolerance on k/num_perm
    if cfg.verify == "signature":
        return lambda a, b: estimated_jaccard(sig[a], sig[b]) >= threshold
    assert shingles is not None and offsets is not None, "verify: exact needs the shingle sets"

    def exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.array([exact_jaccard(shingles[offsets[x] : offsets[x + 1]], shingles[offsets[y] : offsets[y + 1]])
                         >= threshold for x, y in zip(a.tolist(), b.tolist())], dtype=bool)

    return exact


def _blocks(ctx: PartitionContext, band: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The in-driver block of each entry: its band, or (spilled) band x key range."""
    if not ctx.spilled or ctx.spill_partitions == 1:
        return band.astype(np.int64)
    shift = np.uint64(64 - (ctx.spill_partitions.bit_length() - 1))
    return band.astype(np.int64) * ctx.spill_partitions + (keys >> shift).astype(np.int64)


def verify_partition(ctx: PartitionContext, chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A partition task: (block, a, b, verdict) of its candidate pairs not already joined by its
    own verified pairs of earlier blocks, sorted by block. Pure: a retried task returns the same."""
    empty = (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, bool))
    if not chunks:
        return empty
    band = np.concatenate([c[0] for c in chunks])
    keys = np.concatenate([c[1] for c in chunks])
    ords = np.concatenate([c[2] for c in chunks])
    block = _blocks(ctx, band, keys)
    order = np.argsort(block, kind="stable")  # entries came in ordinal order: members stay in it
    block, keys, ords = block[order], keys[order], ords[order]
    bounds = np.flatnonzero(np.diff(block)) + 1
    per_block = []
    for s, e in zip([0, *bounds.tolist()], [*bounds.tolist(), len(block)]):
        a, b = bucket_pairs(keys[s:e], ords[s:e])
        if len(a):
            per_block.append((int(block[s]), a, b))
    if not per_block:
        return empty
    members = np.unique(np.concatenate([np.concatenate((a, b)) for _, a, b in per_block]))
    uf = UnionFind(len(members))  # over this partition's pair members only
    sig = np.memmap(ctx.sig_path, dtype="<u4", mode="r", shape=(ctx.n, ctx.cfg.num_perm))
    shingles = offsets = None
    if ctx.cfg.verify == "exact":
        offsets = np.memmap(ctx.offsets_path, dtype="<i8", mode="r", shape=(ctx.n + 1,))  # type: ignore[arg-type]
        total = int(offsets[-1])
        shingles = np.memmap(ctx.shingles_path, dtype="<u8", mode="r", shape=(total,)) if total \
            else np.zeros(0, np.uint64)
    verify = pair_verifier(ctx.cfg, sig, shingles, offsets)
    out = []
    for blk, a, b in per_block:
        la, lb = np.searchsorted(members, a), np.searchsorted(members, b)
        open_ = uf.find(la) != uf.find(lb)
        a, b, la, lb = a[open_], b[open_], la[open_], lb[open_]
        good = np.zeros(len(a), dtype=bool)
        for s in range(0, len(a), _VERIFY_BATCH):
            sl = slice(s, s + _VERIFY_BATCH)
            good[sl] = verify(a[sl], b[sl])
            uf.union_pairs(la[sl][good[sl]], lb[sl][good[sl]])
        out.append((np.full(len(a), blk, np.int32), a.astype(np.int32), b.astype(np.int32), good))
    return tuple(np.concatenate(col) for col in zip(*out))  # type: ignore[return-value]


class PartitionedBands:
    """The driver side, in place of :class:`preprocessing.dedup.lsh.BandTables`: route entries to
    P partitions as files arrive, then run the partition tasks and give the verified blocks."""

    def __init__(self, bands: int, memory_budget_bytes: int, spill_partitions: int, executor: Executor,
                 partitions: int, chunk_rows: int = CHUNK_ROWS):
        self.bands, self.budget, self.spill_partitions = bands, memory_budget_bytes, spill_partitions
        self.executor, self.partitions, self.chunk_rows = executor, partitions, chunk_rows
        self._buffers: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(partitions)]
        self._buffered = [0] * partitions
        self._chunks: list[list[Any]] = [[] for _ in range(partitions)]
        self.entries = 0  # files added (as BandTables counts them)
        self.partition_entries = [0] * partitions

    @property
    def spilled(self) -> bool:
        """Whether the in-driver tables would have spilled (their stat; it decides their blocks)."""
        return self.entries * self.bands * ENTRY_BYTES > self.budget

    def add(self, ordinals: np.ndarray, keys: np.ndarray) -> None:
        """Files (ordinals increasing across calls) with their uint64[k, bands] keys."""
        k = len(ordinals)
        if k == 0:
            return
        if keys.shape != (k, self.bands):
            raise ValueError(f"keys must have shape ({k}, {self.bands}), got {keys.shape}")
        self.entries += k
        flat_keys = np.ascontiguousarray(keys, dtype=np.uint64).ravel()
        flat_band = np.tile(np.arange(self.bands, dtype=np.uint16), k)
        flat_ords = np.repeat(np.asarray(ordinals, dtype=np.uint32), self.bands)
        part = partition_of(flat_keys, self.partitions)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.partitions + 1, dtype=np.uint64))
        for p in np.flatnonzero(np.diff(bounds)).tolist():
            sel = order[bounds[p] : bounds[p + 1]]
            self._buffers[p].append((flat_band[sel], flat_keys[sel], flat_ords[sel]))
            self._buffered[p] += len(sel)
            self.partition_entries[p] += len(sel)
            if self._buffered[p] >= self.chunk_rows:
                self._hand_over(p)

    def _hand_over(self, p: int) -> None:
        buf = self._buffers[p]
        if buf:
            self._chunks[p].append(self.executor.put(tuple(np.concatenate(col) for col in zip(*buf))))
        self._buffers[p], self._buffered[p] = [], 0

    def verified_blocks(self, ctx: PartitionContext) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(a, b, verdict) per block, blocks in the in-driver order; each block's pairs from every partition."""
        for p in range(self.partitions):
            self._hand_over(p)
        parts, self._chunks = self._chunks, []
        found = list(self.executor.map_partitions(verify_partition, parts, ctx))
        if not found:
            return
        block, a, b, good = (np.concatenate(col) for col in zip(*found))
        order = np.argsort(block, kind="stable")
        block, a, b, good = block[order], a[order].astype(np.int64), b[order].astype(np.int64), good[order]
        bounds = np.flatnonzero(np.diff(block)) + 1
        for s, e in zip([0, *bounds.tolist()], [*bounds.tolist(), len(block)]):
            if e > s:
                yield a[s:e], b[s:e], good[s:e]

    def cleanup(self) -> None:
        """Nothing on disk (the chunks are the executor's)."""


def write_offsets(path: Path, counts: np.ndarray) -> np.ndarray:
    """The shingle sets' offsets (int64[n + 1]) from their sizes, written for the partition tasks."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    offsets.astype("<i8").tofile(path)
    return offsets
