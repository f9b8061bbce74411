"""Exact dedup partitioned by hash prefix: the same duplicates, bytes and stats as the in-driver table."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from common.config import ConfigError
from preprocessing.dedup.exact import HashSet64, HashSetSize
from preprocessing.dedup.exact_partitioned import PartitionedExactDedup, duplicate_ordinals, partition_of
from preprocessing.executors import ExecutorConfig, LocalExecutor, make_executor
from preprocessing.readers import InputConfig
from preprocessing.stages.stream import StreamConfig, run_stream
from tests.conftest import stdlib_rows, write_jsonl
from tests.test_runner import comparable, tree_bytes


def _units(seed: int, n_units: int = 60) -> list[np.ndarray]:
    """Units of content hashes with duplicates within a unit and across units (a few hash values
    sharing a prefix, so that partitions are uneven)."""
    rng = random.Random(seed)
    pool = [rng.getrandbits(64) | 1 for _ in range(150)] + [(7 << 40) + i for i in range(20)]
    return [np.array([rng.choice(pool) for _ in range(rng.randint(0, 40))], dtype=np.uint64)
            for _ in range(n_units)]


@pytest.mark.parametrize("partitions,chunk_rows", [(1, 1 << 20), (4, 1 << 20), (7, 16), (64, 1)])
def test_partitions_find_the_first_occurrences_of_the_table(partitions, chunk_rows):
    """Any P (powers of two or not), any chunking: per unit, the rows the in-driver table calls new."""
    units = _units(partitions)
    table = HashSet64(1 << 4)
    size = HashSetSize(1 << 4)
    parts = PartitionedExactDedup(LocalExecutor(1), partitions, chunk_rows=chunk_rows)
    for u, hashes in enumerate(units):
        parts.add(u, hashes)
    parts.resolve()
    for u, hashes in enumerate(units):
        expected = table.add_batch(hashes)
        got = parts.first_occurrences(u, len(hashes))
        assert got.tolist() == expected.tolist(), u
        size.add(len(set(hashes.tolist())), int(got.sum()))
    assert (len(size), size.nbytes) == (len(table), table.nbytes)  # the memory note is the table's
    assert parts.duplicates == sum(map(len, units)) - len(table)


def test_table_in_c_answers_as_a_set_and_as_the_numpy_rounds(monkeypatch):
    """HashSet64 filled by the C hashset_add == a Python set fed the same batches (new = first
    occurrence, within the batch too), and == the numpy rounds without the kernel (a
    RuntimeWarning): the same answers, sizes and growth, on keys that share their first slots
    (the probes chain and wrap), batches as lists and arrays, growth in the middle of a batch."""
    from preprocessing.dedup import exact, native

    rng = random.Random(5)
    pool = [rng.getrandbits(64) | 1 for _ in range(300)] + [(1 << 63) + i for i in range(40)] + [i for i in range(1, 40)]
    batches = [[rng.choice(pool) for _ in range(rng.choice((0, 1, 5, 40, 300)))] for _ in range(80)]

    def fill():
        table, seen, sizes = HashSet64(1 << 4), set(), []
        for k, batch in enumerate(batches):
            got = table.add_batch(batch if k % 2 else np.array(batch, dtype=np.uint64))
            want = []
            for h in batch:
                want.append(h not in seen)
                seen.add(h)
            assert got.tolist() == want and len(table) == len(seen), k
            sizes.append(table.nbytes)
        return sizes, sorted(int(x) for x in table._table[table._table != 0])

    with_c = fill()
    assert len(set(with_c[0])) >= 3  # it grew
    insert = exact._hashset_kernel()
    monkeypatch.setattr(exact, "_HASHSET", [])
    monkeypatch.setattr(native, "kernel", lambda name: (_ for _ in ()).throw(AttributeError(name)))
    with pytest.warns(RuntimeWarning, match="hashset_add"):
        assert fill() == with_c
    flags = np.zeros(4, dtype=bool)
    for table, keys, what in ((np.zeros(6, np.uint64), [1], "power of two"), (np.zeros(4, np.uint64), [1, 0], "empty slot"),
                              (np.zeros(2, np.uint64), [1, 2, 3], "full")):
        with pytest.raises(ValueError, match=what):
            insert(table, np.array(keys, dtype=np.uint64), flags)


def test_partition_of_is_a_prefix_range():
    h = np.array([0, 1 << 62, 1 << 63, (1 << 64) - 1], dtype=np.uint64)
    assert partition_of(h, 4).tolist() == [0, 1, 2, 3]
    assert partition_of(h, 3).tolist() == [0, 0, 1, 2]
    assert duplicate_ordinals(None, []).tolist() == []


def test_partitions_config_is_checked():
    with pytest.raises(ConfigError, match="partitions must be >= 0"):
        ExecutorConfig(partitions=-1)
    assert make_executor(ExecutorConfig(workers=2))[0].partitions == 0  # local: gathered by default
    assert make_executor(ExecutorConfig(workers=2, partitions=3))[0].partitions == 3


def duplicate_dump(tmp_path: Path, parts: int = 4) -> list[str]:
    """Real stdlib files and their copies as ``parts`` .jsonl.gz files (workers read whole files):
    exact copies later in the same file and in other files, whitespace-only variants (the same
    normalised hash), copies under a dropped license (known duplicates skip the filters)."""
    rows = stdlib_rows(60)
    rng = random.Random(12)
    dump = []
    for i, r in enumerate(rows):
        dump.append(r)
        for j in rng.sample(range(i + 1), min(i + 1, 2)):  # copies of this or earlier files
            src = rows[j]
            kind = rng.randrange(3)
            if kind == 0:
                dump.append(dict(src, repo_name=f"fork{i}/x"))
            elif kind == 1:
                dump.append(dict(src, repo_name=f"ws{i}/x", content=src["content"].replace("\n", "\n\n", 3)))
            else:
                dump.append(dict(src, repo_name=f"closed{i}/x", license="proprietary"))
    rng.shuffle(dump)  # later copies may come before their first copy's file: the ordinal decides
    per = -(-len(dump) // parts)
    return [str(write_jsonl(tmp_path / f"d{k}.jsonl.gz", dump[k * per:(k + 1) * per])) for k in range(parts)]


def _cfg(paths: list[str], limit: int | None = None) -> StreamConfig:
    cfg = StreamConfig(input=InputConfig(paths=paths, limit=limit, batch_records=9))
    cfg.output.max_shard_bytes = 256 << 10
    return cfg


@pytest.fixture(scope="module")
def dup_paths(tmp_path_factory) -> list[str]:
    return duplicate_dump(tmp_path_factory.mktemp("dump"))


@pytest.fixture(scope="module")
def gathered(dup_paths, tmp_path_factory) -> tuple[Path, dict]:
    """Today's path: the table in the driver, one worker."""
    run = tmp_path_factory.mktemp("gathered") / "run"
    return run, run_stream(_cfg(dup_paths), run, executor=1)


@pytest.mark.parametrize("workers,partitions", [(1, 1), (2, 4), (2, 1)])
def test_partitioned_stream_gives_the_gathered_bytes_and_stats(dup_paths, gathered, tmp_path, workers, partitions):
    ref_run, ref = gathered
    assert ref["stages"]["exact_dedup"]["dropped"]["exact_duplicate"] >= 60
    stats = run_stream(_cfg(dup_paths), tmp_path / "run",
                       executor=ExecutorConfig(workers=workers, partitions=partitions))
    assert tree_bytes(tmp_path / "run" / "clean") == tree_bytes(ref_run / "clean")
    assert comparable(stats) == comparable(ref)
    assert not list((tmp_path / "run" / "clean").glob(".work*")) and not list((tmp_path / "run").glob("*.tmp-*"))


def test_partitioned_stream_with_driver_units_and_the_real_corpus(tmp_path):
    """Units the driver cuts (a limit) over the local Python installation, and the fused near-dedup."""
    from preprocessing.dedup.minhash import NearDedupConfig
    from preprocessing.stages.stream import run_stream_and_dedup

    cfg = StreamConfig(input=InputConfig(limit=300, include_site_packages=False, batch_records=32))
    cfg.output.max_shard_bytes = 256 << 10
    a = run_stream_and_dedup(cfg, NearDedupConfig(), tmp_path / "a", executor=ExecutorConfig(workers=1))
    b = run_stream_and_dedup(cfg, NearDedupConfig(), tmp_path / "b", executor=ExecutorConfig(workers=2, partitions=3))
    for out in ("clean", "dedup"):
        assert tree_bytes(tmp_path / "a" / out) == tree_bytes(tmp_path / "b" / out), out
    for stage in ("stream", "dedup"):
        assert comparable(a[stage]) == comparable(b[stage]), stage
