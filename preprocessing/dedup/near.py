"""`cp-preprocess dedup`: two streaming passes of MinHash LSH near-dedup into RUN/dedup.

Pass 1 decodes the input in worker processes and computes signatures and band keys there; the
main process appends them, in input order, to the :class:`NearDedupIndex` (band tables in RAM or
spilled, signatures in a disk memmap). Clustering verifies the candidate pairs and joins them
with a union-find. Pass 2 streams the input again and writes every record that is not a
removed near-duplicate, unchanged, plus ``clusters.jsonl.zst`` and ``stats.json``. The
outcome depends only on the input and the config: never on the number of workers.
"""

from __future__ import annotations

import resource
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from preprocessing.config import to_dict
from preprocessing.dedup.index import ClusterResult, NearDedupIndex, SketchBatch, sketch
from preprocessing.dedup.minhash import (
    MinHashSignature,
    NearDedupConfig,
    encode_content,
)
from preprocessing.io import read_json, remove_stale_tmp, write_json_atomic
from preprocessing.manifest import RunManifest
from preprocessing.parallel import ordered_map
from preprocessing.readers import InputConfig, Reader, limit_units, open_reader
from preprocessing.record import CodeFile, Rejected
from preprocessing.stats import StageStats
from preprocessing.writers import ShardedJsonlWriter

STATS_FORMAT_VERSION = 1
STAGE = "near_dedup"
DROP_REASON = "near_duplicate"


@dataclass
class UnitSketch:
    """Pass-1 result of one work unit: its rejected items and the sketch of its records."""

    rejected: list[tuple[str, int]]
    batch: SketchBatch


@dataclass
class UnitRows:
    """Pass-2 result of one work unit: serialised records (or rejections) in input order."""

    items: list[tuple[bytes, str, str] | tuple[None, str, int]] = field(default_factory=list)


class _Worker:
    reader: Reader
    hasher: MinHashSignature


_STATE = _Worker()


def _init_worker(reader: Reader, cfg: NearDedupConfig) -> None:
    _STATE.reader = reader
    _STATE.hasher = MinHashSignature(cfg)


def keep_score(record: CodeFile, data: bytes, cfg: NearDedupConfig) -> int:
    """The keep-rule score of a record: the cluster keeps its highest score (ties: first)."""
    if cfg.keep == "longest":
        return len(data)
    if cfg.keep == "license":
        prefs = [p.lower() for p in cfg.preferred_licenses]
        lic = (record.license or "").lower()
        return len(prefs) - prefs.index(lic) if lic in prefs else 0
    if cfg.keep == "stars":
        value = record.extra.get(cfg.stars_field)
        try:
            return int(float(value)) if value is not None else 0
        except (TypeError, ValueError):
            return 0
    return 0


def _sketch_unit(unit: Any) -> UnitSketch:
    rejected: list[tuple[str, int]] = []
    contents: list[bytes] = []
    scores: list[int] = []
    cfg = _STATE.hasher.cfg
    for item in _STATE.reader.decode(unit):
        if isinstance(item, Rejected):
            rejected.append((item.reason, item.nbytes))
            continue
        data = encode_content(item.content)
        contents.append(data)
        scores.append(keep_score(item, data, cfg))
    return UnitSketch(rejected, sketch(contents, scores, _STATE.hasher))


def _rows_unit(unit: Any) -> UnitRows:
    out = UnitRows()
    for item in _STATE.reader.decode(unit):
        if isinstance(item, Rejected):
            out.items.append((None, item.reason, item.nbytes))
        else:
            out.items.append((orjson.dumps(item.to_json_dict()) + b"\n", item.repo_name, item.path))
    return out


def _units(reader: Reader, limit: int | None) -> Iterator[Any]:
    units = reader.units()
    return units if limit is None else limit_units(units, limit)


def _peak_rss_mb() -> dict[str, float]:
    # ru_maxrss is in KiB on Linux; children = the largest worker process.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"main": round(own, 1), "largest_worker": round(kids, 1)}


def run_near_dedup(
    cfg: NearDedupConfig,
    source: InputConfig | Reader,
    out_dir: str | Path,
    workers: int = 1,
    limit: int | None = None,
) -> dict[str, Any]:
    """Near-dedup ``source`` into ``out_dir`` (part-*.jsonl.zst, clusters.jsonl.zst, stats.json).

    Returns the stats dict that is also written to ``out_dir/stats.json``.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    reader = open_reader(source) if isinstance(source, InputConfig) else source
    if isinstance(source, InputConfig) and limit is None:
        limit = source.limit
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(out_dir)
    for old in [*out_dir.glob("part-*.jsonl.zst"), *out_dir.glob("clusters*.jsonl.zst"), out_dir / "stats.json"]:
        old.unlink(missing_ok=True)
    work_dir = out_dir / ".work"
    shutil.rmtree(work_dir, ignore_errors=True)
    stats = StageStats(STAGE)  # counted in pass 2; pass 1 counts rejections only to check the input
    pass1_rejected: Counter = Counter()
    t0 = time.perf_counter()
    index = NearDedupIndex(cfg, work_dir)
    try:
        # Pass 1: signatures and band keys, in parallel, appended in input order.
        for res in ordered_map(_sketch_unit, _units(reader, limit), workers=workers, window=2 * workers,
                               initializer=_init_worker, initargs=(reader, cfg)):
            for reason, _nbytes in res.rejected:
                pass1_rejected[reason] += 1
            index.add(res.batch)
        t1 = time.perf_counter()
        result = index.cluster()
        t2 = time.perf_counter()
        # Pass 2: stream the input again, keep what is not a removed near-duplicate.
        with ShardedJsonlWriter(out_dir, "part", cfg.shard_max_bytes, cfg.compression_level) as writer, \
                ShardedJsonlWriter(out_dir, "clusters", 1 << 62, cfg.compression_level) as cluster_writer:
            _filter_pass(cfg, reader, limit, workers, result, stats, writer, cluster_writer)
        t3 = time.perf_counter()
        if pass1_rejected != stats.rejected:
            raise ValueError("the input changed between the two passes of near-dedup (rejections differ); re-run")
    finally:
        index.close()
        shutil.rmtree(work_dir, ignore_errors=True)
    (out_dir / "clusters-00000.jsonl.zst").replace(out_dir / "clusters.jsonl.zst")
    assert stats.balanced, f"accounting broken in {STAGE}: {stats.to_dict()}"
    wall = t3 - t0
    out = {
        "format_version": STATS_FORMAT_VERSION,
        "stage": "dedup",
        "stages": {STAGE: stats.to_dict()},
        "totals": {
            "records_read": stats.records_in,
            "kept": stats.kept,
            "dropped": dict(sorted(stats.dropped.items())),
            "rejected": dict(sorted(stats.rejected.items())),
            "bytes_read": stats.bytes_in,
            "bytes_kept": stats.bytes_out,
        },
        STAGE: result.stats,
        "outputs": [p.name for p in writer.paths] + ["clusters.jsonl.zst"],
        "warnings": reader.warnings,
        "workers": workers,
        "wall_time_s": round(wall, 3),
        "pass1_s": round(t1 - t0, 3),
        "cluster_s": round(t2 - t1, 3),
        "pass2_s": round(t3 - t2, 3),
        "throughput_mb_s": round(stats.bytes_in / 1e6 / max(wall, 1e-9), 2),
        "peak_rss_mb": _peak_rss_mb(),
        "config": to_dict(cfg),
    }
    write_json_atomic(out_dir / "stats.json", out)
    return out


def _filter_pass(
    cfg: NearDedupConfig,
    reader: Reader,
    limit: int | None,
    workers: int,
    result: ClusterResult,
    stats: StageStats,
    writer: ShardedJsonlWriter,
    cluster_writer: ShardedJsonlWriter,
) -> None:
    """Write the kept records and, as each cluster's last member passes, its clusters.jsonl row."""
    cluster, kept, sim, drop = result.cluster, result.kept, result.similarity, result.drop
    left = np.bincount(cluster[cluster >= 0], minlength=result.n) if result.n else np.zeros(0, np.int64)
    open_clusters: dict[int, list[dict[str, Any]]] = {}
    ordinal = 0
    for res in ordered_map(_rows_unit, _units(reader, limit), workers=workers, window=2 * workers,
                           initializer=_init_worker, initargs=(reader, cfg)):
        for line, a, b in res.items:
            if line is None:
                stats.reject(a, b)
                continue
            if ordinal >= result.n:
                raise ValueError("the input changed between the two passes of near-dedup (more records); re-run")
            if drop[ordinal]:
                stats.drop(DROP_REASON, len(line))
            else:
                stats.keep(len(line))
                writer.write_line(line)
            c = int(cluster[ordinal])
            if c >= 0:
                members = open_clusters.setdefault(c, [])
                members.append({"ordinal": ordinal, "repo_name": a, "path": b,
                                "similarity": round(float(sim[ordinal]), 4)})
                left[c] -= 1
                if left[c] == 0:
                    cluster_writer.write_row({"cluster": c, "size": len(members), "kept": int(kept[ordinal]),
                                              "members": members})
                    del open_clusters[c]
            ordinal += 1
    if ordinal != result.n:
        raise ValueError("the input changed between the two passes of near-dedup (fewer records); re-run")
    if cluster_writer.rows == 0:
        cluster_writer.write_line(b"")  # an empty (but valid) clusters file


def run_dedup(
    cfg: NearDedupConfig,
    run_dir: str | Path | None = None,
    workers: int = 1,
    inputs: InputConfig | None = None,
    out_dir: str | Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """The `dedup` stage: RUN/clean -> RUN/dedup (or ``inputs`` -> ``out_dir``), recorded in the manifest.

    A finished stage with the same config and input is skipped (its stats are returned with
    ``skipped: true``); a run directory holding dedup outputs of another config is refused.
    """
    if run_dir is None and out_dir is None:
        raise ValueError("give a run directory or an output directory for near-dedup")
    if inputs is None:
        if run_dir is None:
            raise ValueError("give input paths (--input) when no run directory is given")
        clean = Path(run_dir) / "clean"
        if not any(clean.glob("part-*.jsonl.zst")):
            raise ValueError(f"{clean} holds no part-*.jsonl.zst shards: run `cp-preprocess stream` first")
        inputs = InputConfig(paths=[str(clean / "part-*.jsonl.zst")], format="jsonl")
    out_dir = Path(out_dir) if out_dir is not None else Path(run_dir) / "dedup"  # type: ignore[arg-type]
    if run_dir is None:
        return run_near_dedup(cfg, inputs, out_dir, workers)
    manifest = RunManifest(run_dir)
    identity = {"near_dedup": to_dict(cfg), "input": to_dict(inputs), "out_dir": str(out_dir)}
    manifest.check("dedup", identity, force=force)
    reader = open_reader(inputs)
    fingerprint = reader.fingerprint()
    if manifest.is_done("dedup", identity, fingerprint) and (out_dir / "stats.json").exists():
        stats = read_json(out_dir / "stats.json")
        stats["skipped"] = True
        return stats
    manifest.mark_started("dedup", identity, fingerprint)
    stats = run_near_dedup(cfg, reader, out_dir, workers, limit=inputs.limit)
    manifest.mark_done("dedup", identity, fingerprint, outputs=[str(out_dir / o) for o in stats["outputs"]],
                       wall_time_s=stats["wall_time_s"])
    return stats
