"""Near-dedup with band buckets partitioned by band key: the clusters, files and stats of the in-driver tables."""

from __future__ import annotations

import random

import numpy as np
import pytest

from preprocessing.dedup.index import cluster_contents
from preprocessing.dedup.minhash import NearDedupConfig
from preprocessing.executors import ExecutorConfig, make_executor
from preprocessing.readers import InputConfig
from preprocessing.stages.stream import StreamConfig
from tests.test_dedup_index import near_duplicate_corpus
from tests.test_runner import comparable, tree_bytes


def drifting_corpus(seed: int = 5, bases: int = 40) -> list[str]:
    """Random-token documents, each with a chain of copies that drift a few tokens per step (so
    A~B and B~C but not always A~C: clusters form through the chain), unrelated fillers, in a
    shuffled order (a cluster's members arrive in any order)."""
    rng = random.Random(seed)
    vocab = [f"tok{i}" for i in range(5000)]
    texts = []
    for _ in range(bases):
        doc = [rng.choice(vocab) for _ in range(rng.randint(60, 240))]
        texts.append(" ".join(doc))
        for _ in range(rng.choice([0, 0, 1, 2, 4, 7])):
            doc = list(doc)
            for _ in range(max(1, len(doc) // rng.choice([12, 20, 40]))):
                doc[rng.randrange(len(doc))] = rng.choice(vocab)
            texts.append(" ".join(doc))
    rng.shuffle(texts)
    return texts


def _same(a, b) -> None:
    for field in ("cluster", "kept", "similarity", "drop", "nbytes"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert a.stats == b.stats  # candidate and verified pair counts included


CONFIGS = {
    "default": NearDedupConfig(),
    "chains": NearDedupConfig(threshold=0.7, bands=32, rows=4),
    "exact-longest": NearDedupConfig(threshold=0.7, bands=32, rows=4, verify="exact", keep="longest"),
    "spilled": NearDedupConfig(threshold=0.7, bands=32, rows=4, memory_budget_mb=0.02, spill_partitions=4),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("partitions", [1, 4, 7])
def test_partitioned_buckets_give_the_in_driver_clusters(tmp_path, name, partitions):
    cfg = CONFIGS[name]
    texts = drifting_corpus() + near_duplicate_corpus()[0] * 3
    scores = [len(t) for t in texts]
    ref = cluster_contents(texts, cfg, tmp_path / "ref", scores=scores, batch=37)
    assert ref.stats["removed"] > 50 and ref.stats["candidate_pairs"] > ref.stats["clusters"]
    assert ref.stats["spilled_to_disk"] == (name == "spilled")
    ex = make_executor(ExecutorConfig(workers=1, partitions=partitions))[0]
    got = cluster_contents(texts, cfg, tmp_path / "p", scores=scores, batch=37, executor=ex)
    _same(ref, got)


def test_partitioned_buckets_with_worker_processes(tmp_path):
    """Partition tasks in the local pool (pickled entries, signatures read from the work dir)."""
    texts = drifting_corpus(seed=9)
    cfg = CONFIGS["chains"]
    ref = cluster_contents(texts, cfg, tmp_path / "ref")
    got = cluster_contents(texts, cfg, tmp_path / "p", executor=make_executor(ExecutorConfig(workers=2, partitions=3))[0])
    _same(ref, got)


def test_partitioned_dedup_and_fused_on_the_real_corpus(tmp_path):
    """`dedup` and `stream --near-dedup` over the local Python installation (with edited copies):
    partitioned (P=3, 2 workers; exact dedup partitioned too) vs the in-driver tables (1 worker)."""
    from preprocessing.stages.dedup import run_dedup
    from preprocessing.stages.stream import run_stream, run_stream_and_dedup
    from tests.test_stream import _near_dup_dump

    dump = _near_dup_dump(tmp_path)
    cfg = StreamConfig(input=InputConfig(paths=[str(dump)], batch_records=7))
    cfg.output.max_shard_bytes = 64 << 10
    real = StreamConfig(input=InputConfig(limit=300, include_site_packages=False))
    near = NearDedupConfig(verify="exact", keep="longest")
    part = ExecutorConfig(workers=2, partitions=3)
    for c, tag in ((cfg, "dups"), (real, "real")):
        run_stream(c, tmp_path / tag / "a", executor=1)
        run_stream(c, tmp_path / tag / "b", executor=part)
        a = run_dedup(near, tmp_path / tag / "a", 1)
        b = run_dedup(near, tmp_path / tag / "b", part)
        assert tree_bytes(tmp_path / tag / "a" / "dedup") == tree_bytes(tmp_path / tag / "b" / "dedup"), tag
        assert comparable(a) == comparable(b), tag
        if tag == "dups":
            assert a["near_dedup"]["removed"] >= 5
            fused = run_stream_and_dedup(c, near, tmp_path / tag / "f", executor=part)
            assert tree_bytes(tmp_path / tag / "f" / "dedup") == tree_bytes(tmp_path / tag / "a" / "dedup")
            assert fused["dedup"]["near_dedup"] == a["near_dedup"]
            assert not (tmp_path / tag / "f" / "dedup" / ".work").exists()

