"""Pass 1 state of near-dedup and the clustering: signatures on disk, band tables, verified union-find.

Files are added in input order (their ordinal is their position among the readable records).
Per file the index holds in RAM: 12 bytes per LSH band in the band tables (18 bands at the
default threshold 0.85: 216 bytes; spilled to disk past the memory budget), 1 byte of status
and, unless keep=first, 8 bytes of keep-rule score; on disk, the signature (4 bytes per
permutation: 1 KiB at 256) in a memmap, the UTF-8 content size (8 bytes, counted by pass 2)
and with ``verify: exact`` the shingle hashes (8 bytes per distinct shingle). Clustering adds at
most 30 bytes per file (union-find 4, cluster sizes 8, cluster id 4, kept 4, similarity 4,
flags 2, sort temporaries for members only); pass 2 keeps the 13 bytes of cluster id, kept,
similarity and drop flag plus 8 bytes of countdown per file.

Given an executor with ``partitions`` > 0, the band tables are not in this process: their
entries go to P partition tasks (:mod:`preprocessing.dedup.lsh_partitioned`), which find and
verify the candidate pairs; the union-find here replays their verdicts (same clusters, same stats)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from preprocessing.dedup.lsh import ENTRY_BYTES, BandTables
from preprocessing.dedup.lsh_partitioned import PartitionContext, PartitionedBands, pair_verifier, write_offsets
from preprocessing.dedup.minhash import (
    MinHashSignature,
    NearDedupConfig,
    SignatureBatch,
    estimated_jaccard,
)
from preprocessing.dedup.unionfind import UnionFind
from preprocessing.executors import Executor

_VERIFY_BATCH = 8192


@dataclass
class SketchBatch:
    """What pass 1 computes for consecutive files (in a worker): signatures, band keys, scores."""

    sig: np.ndarray  # uint32[k, num_perm]
    keys: np.ndarray  # uint64[k, bands]
    ntokens: np.ndarray  # int64[k]
    scores: np.ndarray  # int64[k], keep-rule score (higher is kept first)
    nbytes: np.ndarray  # int64[k], UTF-8 size
    shingles: np.ndarray | None = None  # uint64 concatenated distinct shingles (verify: exact)
    shingle_counts: np.ndarray | None = None  # int64[k]

    def __len__(self) -> int:
        return len(self.ntokens)

    def take(self, mask: np.ndarray) -> SketchBatch:
        """The files where ``mask`` (bool[k]) is set, in order."""
        out = SketchBatch(self.sig[mask], self.keys[mask], self.ntokens[mask], self.scores[mask], self.nbytes[mask])
        if self.shingles is not None and self.shingle_counts is not None:
            ends = np.cumsum(self.shingle_counts)
            parts = [self.shingles[e - c : e] for e, c in zip(ends[mask].tolist(), self.shingle_counts[mask].tolist())]
            out.shingle_counts = self.shingle_counts[mask]
            out.shingles = np.concatenate(parts) if parts else np.empty(0, np.uint64)
        return out


def sketch(contents: list[bytes], scores: list[int], hasher: MinHashSignature) -> SketchBatch:
    """Signatures and band keys of UTF-8 contents (pure: the same bytes give the same sketch)."""
    nbytes = np.fromiter(map(len, contents), dtype=np.int64, count=len(contents))
    return sketch_of(hasher.signatures(contents), nbytes, scores, hasher, contents)


def sketch_of(sb: SignatureBatch, nbytes: np.ndarray, scores: list[int], hasher: MinHashSignature,
              contents: list[bytes] | None = None) -> SketchBatch:
    """The sketch of files whose signatures are computed: band keys added (and with ``verify:
    exact`` the shingle sets, from ``contents``)."""
    n = len(sb.ntokens)
    batch = SketchBatch(
        sig=sb.sig,
        keys=hasher.band_keys(sb.sig),
        ntokens=sb.ntokens,
        scores=np.asarray(scores, dtype=np.int64).reshape(n),
        nbytes=np.asarray(nbytes, dtype=np.int64).reshape(n),
    )
    if hasher.cfg.verify == "exact":
        assert contents is not None, "verify: exact needs the contents"
        sets = [hasher.shingles(c) for c in contents]
        batch.shingle_counts = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
        batch.shingles = np.concatenate(sets) if sets else np.empty(0, np.uint64)
    return batch


@dataclass
class ClusterResult:
    """The outcome of clustering ``n`` files: which are dropped, and their clusters."""

    n: int
    cluster: np.ndarray  # int32[n]: cluster id = smallest ordinal of the cluster; -1 = not in a cluster
    kept: np.ndarray  # int32[n]: ordinal kept for the file's cluster; -1 = not in a cluster
    similarity: np.ndarray  # float32[n]: estimated Jaccard to the kept file (members only)
    drop: np.ndarray  # bool[n]
    too_short: int
    nbytes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # int64[n] UTF-8 content size (disk)
    stats: dict[str, Any] = field(default_factory=dict)


class NearDedupIndex:
    """Accumulates sketches in ordinal order (pass 1), then clusters them."""

    def __init__(self, cfg: NearDedupConfig, work_dir: Path | str, executor: Executor | None = None):
        self.cfg = cfg
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.hasher = MinHashSignature(cfg)
        self.bands, self.rows = self.hasher.bands, self.hasher.rows
        budget = int(cfg.memory_budget_mb * (1 << 20))
        self.tables: BandTables | PartitionedBands
        if executor is not None and executor.partitions > 0:
            # band buckets partitioned by band key, verified in the partition tasks (same clusters and stats)
            self.tables = PartitionedBands(self.bands, budget, cfg.spill_partitions, executor, executor.partitions)
        else:
            self.tables = BandTables(self.bands, budget, self.work_dir / "spill", cfg.spill_partitions)
        self._sig_path = self.work_dir / "signatures.u32"
        self._sig_out = open(self._sig_path, "wb")  # noqa: SIM115 - appended to across add() calls
        self._size_path = self.work_dir / "sizes.i64"
        self._size_out = open(self._size_path, "wb")  # noqa: SIM115
        self._sh_path = self.work_dir / "shingles.u64"
        self._sh_out = open(self._sh_path, "wb") if cfg.verify == "exact" else None  # noqa: SIM115
        self._offsets_path = self.work_dir / "shingle_offsets.i64"  # for partition tasks (verify: exact)
        self._sh_counts: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []
        self._clusterable: list[np.ndarray] = []
        self.n = 0

    def add(self, batch: SketchBatch) -> None:
        """Append the next files (their ordinals are ``self.n ..``)."""
        k = len(batch)
        if k == 0:
            return
        ordinals = np.arange(self.n, self.n + k, dtype=np.int64)
        if self.n + k >= 2**31:
            raise ValueError("near-dedup handles at most 2**31 - 1 files per run (int32 ordinals)")
        ok = batch.ntokens >= max(self.cfg.min_tokens, 1)
        self._sig_out.write(np.ascontiguousarray(batch.sig, dtype="<u4").tobytes())
        self._size_out.write(np.ascontiguousarray(batch.nbytes, dtype="<i8").tobytes())
        if self._sh_out is not None:
            self._sh_out.write(np.ascontiguousarray(batch.shingles, dtype="<u8").tobytes())
            self._sh_counts.append(batch.shingle_counts)
        self.tables.add(ordinals[ok], batch.keys[ok])
        if self.cfg.keep != "first":
            self._scores.append(batch.scores)
        self._clusterable.append(ok)
        self.n += k

    def cluster(self) -> ClusterResult:
        """Verify candidate pairs, join them transitively and pick the kept file per cluster."""
        self._sig_out.close()
        self._size_out.close()
        n, cfg = self.n, self.cfg
        clusterable = np.concatenate(self._clusterable) if self._clusterable else np.zeros(0, bool)
        sig = (
            np.memmap(self._sig_path, dtype="<u4", mode="r", shape=(n, cfg.num_perm))
            if n
            else np.zeros((0, cfg.num_perm), np.uint32)
        )
        uf = UnionFind(n)
        candidates = verified = 0
        if isinstance(self.tables, PartitionedBands):
            # Verified in the partition tasks, replayed here in block order over the one union-find:
            # the same skips, counts and components as the loop below.
            for a, b, good in self.tables.verified_blocks(self._partition_context()):
                open_ = uf.find(a) != uf.find(b)
                a, b, good = a[open_], b[open_], good[open_]
                candidates += len(a)
                verified += int(good.sum())
                uf.union_pairs(a[good], b[good])
        else:
            verifier = self._verifier(sig)
            for _band, a, b in self.tables.candidate_pairs():
                # Pairs already joined need no verification: skipping them changes no component.
                open_ = uf.find(a) != uf.find(b)
                a, b = a[open_], b[open_]
                candidates += len(a)
                for s in range(0, len(a), _VERIFY_BATCH):
                    pa, pb = a[s : s + _VERIFY_BATCH], b[s : s + _VERIFY_BATCH]
                    good = verifier(pa, pb)
                    verified += int(good.sum())
                    uf.union_pairs(pa[good], pb[good])
        self.tables.cleanup()

        roots = uf.roots()
        del uf
        sizes = np.bincount(roots, minlength=n) if n else np.zeros(0, np.int64)
        member = sizes[roots] > 1
        cluster = np.where(member, roots, -1).astype(np.int32)
        kept = self._kept(cluster, member)
        idx = np.flatnonzero(member)
        drop = np.zeros(n, dtype=bool)
        drop[idx] = kept[idx] != idx
        similarity = np.zeros(n, dtype=np.float32)
        for s in range(0, len(idx), _VERIFY_BATCH):
            i = idx[s : s + _VERIFY_BATCH]
            similarity[i] = estimated_jaccard(sig[i], sig[kept[i]])
        cluster_sizes = sizes[sizes > 1]
        stats = {
            "files": n,
            "too_short_to_cluster": int((~clusterable).sum()),
            "files_in_clusters": int(member.sum()),
            "clusters": len(cluster_sizes),
            "removed": int(drop.sum()),
            "largest_cluster": int(cluster_sizes.max()) if len(cluster_sizes) else 0,
            "cluster_size_histogram": size_histogram(cluster_sizes),
            "candidate_pairs": candidates,
            "verified_pairs": verified,
            "lsh": {"bands": self.bands, "rows": self.rows, "threshold": cfg.threshold, "num_perm": cfg.num_perm},
            "verify": cfg.verify,
            "keep": cfg.keep,
            "spilled_to_disk": self.tables.spilled,
            "memory": self.memory_note(),
        }
        return ClusterResult(
            n=n,
            cluster=cluster,
            kept=kept,
            similarity=similarity,
            drop=drop,
            too_short=stats["too_short_to_cluster"],
            stats=stats,
            nbytes=np.memmap(self._size_path, dtype="<i8", mode="r", shape=(n,)) if n else np.zeros(0, np.int64),
        )

    def _verifier(self, sig: np.ndarray):
        if self.cfg.verify == "signature":
            return pair_verifier(self.cfg, sig)
        self._sh_out.close()  # type: ignore[union-attr]
        counts = np.concatenate(self._sh_counts) if self._sh_counts else np.zeros(0, np.int64)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        total = int(offsets[-1])
        sh = np.memmap(self._sh_path, dtype="<u8", mode="r", shape=(total,)) if total else np.zeros(0, np.uint64)
        return pair_verifier(self.cfg, sig, sh, offsets)

    def _partition_context(self) -> PartitionContext:
        """Where the partition tasks find the signatures (and shingle sets with offsets): the work dir."""
        ctx = PartitionContext(self.cfg, self.n, self.bands, self.tables.spilled, self.cfg.spill_partitions,
                               str(self._sig_path))
        if self.cfg.verify == "exact":
            self._sh_out.close()  # type: ignore[union-attr]
            counts = np.concatenate(self._sh_counts) if self._sh_counts else np.zeros(0, np.int64)
            write_offsets(self._offsets_path, counts)
            ctx.shingles_path, ctx.offsets_path = str(self._sh_path), str(self._offsets_path)
        return ctx

    def _kept(self, cluster: np.ndarray, member: np.ndarray) -> np.ndarray:
        """Kept ordinal per file of a cluster: highest score, then smallest ordinal (input order)."""
        n = len(cluster)
        kept = np.full(n, -1, dtype=np.int32)
        idx = np.flatnonzero(member)
        if not len(idx):
            return kept
        if self.cfg.keep == "first":
            kept[idx] = cluster[idx]  # the root is the smallest ordinal of the cluster
            return kept
        scores = np.concatenate(self._scores)
        order = idx[np.lexsort((idx, -scores[idx], cluster[idx]))]  # by cluster, score desc, ordinal
        head = np.concatenate(([True], cluster[order][1:] != cluster[order][:-1]))
        best = np.zeros(n, dtype=np.int32)
        best[cluster[order[head]]] = order[head]
        kept[idx] = best[cluster[idx]]
        return kept

    def memory_note(self) -> dict[str, Any]:
        """Bytes per file held by this index (RAM and disk), as stated in the module docstring."""
        score = 0 if self.cfg.keep == "first" else 8
        return {
            "band_table_bytes_per_file": self.bands * ENTRY_BYTES,
            "ram_bytes_per_file_pass1": self.bands * ENTRY_BYTES + 1 + score,
            "ram_bytes_per_file_clustering": self.bands * ENTRY_BYTES + 1 + score + 30,
            "ram_bytes_per_file_pass2": 13 + 8,
            "disk_signature_bytes_per_file": 4 * self.cfg.num_perm,
            "disk_size_bytes_per_file": 8,
            "memory_budget_mb": self.cfg.memory_budget_mb,
        }

    def close(self) -> None:
        """Delete the work files (signatures, shingles, spill partitions)."""
        for f in (self._sig_out, self._size_out, self._sh_out):
            if f is not None and not f.closed:
                f.close()
        self.tables.cleanup()
        for p in (self._sig_path, self._size_path, self._sh_path, self._offsets_path):
            p.unlink(missing_ok=True)


def size_histogram(sizes: np.ndarray) -> dict[str, int]:
    """Cluster sizes (each >= 2) in power-of-two bins: "2", "3-4", "5-8", ... (in numpy: a Python
    step per bin, not per cluster)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    # bin e holds the sizes s with 2**(e-1) < s <= 2**e: e = ceil(log2 s) = the bit length of s - 1
    # (frexp's exponent, exact for integers below 2**53); e = 1 is the size 2
    exps, counts = np.unique(np.frexp((sizes - 1).astype(np.float64))[1], return_counts=True)
    return {("2" if e == 1 else f"{(1 << (e - 1)) + 1}-{1 << e}"): c
            for e, c in zip(exps.tolist(), counts.tolist())}


def cluster_contents(
    contents: list[str], cfg: NearDedupConfig, work_dir: Path | str, scores: list[int] | None = None, batch: int = 512,
    executor: Executor | None = None,
) -> ClusterResult:
    """Cluster in-memory texts (tests, benchmarks); ``run_near_dedup`` is the streaming form. With
    an ``executor`` of ``partitions`` > 0, the band buckets are partitioned (the same result)."""
    index = NearDedupIndex(cfg, work_dir, executor)
    try:
        scores = scores if scores is not None else [0] * len(contents)
        for s in range(0, len(contents), batch):
            data = [c.encode("utf-8", "surrogatepass") for c in contents[s : s + batch]]
            index.add(sketch(data, scores[s : s + batch], index.hasher))
        return index.cluster()
    finally:
        index.close()
