"""Tests for shards/: the shard format (writer, reader, errors) and ShardDataset's order, slicing and resume."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from shards import FORMAT_VERSION, ShardDataset, ShardError, ShardReader, ShardWriter, tokenizer_hash

TOK = "sha256:" + "ab" * 32


def _samples(n: int, seq: int, vocab: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, size=(n, seq))


def _write(path: Path, samples: np.ndarray, vocab: int = 50257, **kw) -> dict:
    with ShardWriter(path, seq_length=samples.shape[1], vocab_size=vocab, tokenizer_hash=TOK, **kw) as w:
        w.write_many(samples)
    return json.loads((path / "index.json").read_text())


# -- format: round trip, rollover, atomicity ------------------------------------------------------
@pytest.mark.parametrize("vocab, dtype", [(50257, np.uint16), (70000, np.uint32)])
def test_round_trip(tmp_path, vocab, dtype):
    a = _samples(203, 16, vocab)
    a[0, 0] = vocab - 1  # the largest id survives (> 65535 for the uint32 case)
    with ShardWriter(tmp_path, 16, vocab, TOK, extra_index={"packing": {"eos": 0}}, samples_per_block=4) as w:
        w.write_many(a[:100])
        for row in a[100:150]:
            w.write(row)
        w.write_many(a[150:].tolist())
    assert w.summary == {
        "num_samples": 203, "num_tokens": 203 * 16, "num_shards": 1,
        "raw_bytes": 203 * 16 * np.dtype(dtype).itemsize, "compressed_bytes": w.summary["compressed_bytes"],
    }
    r = ShardReader(tmp_path, verify=True, expected_tokenizer_hash=TOK, expected_seq_length=16)
    assert (len(r), r.num_samples, r.seq_length, r.vocab_size, r.dtype) == (203, 203, 16, vocab, np.dtype(dtype))
    assert r.index["version"] == FORMAT_VERSION and r.index["packing"] == {"eos": 0}
    assert r.index["dtype"] == np.dtype(dtype).name
    got = np.stack([r[i] for i in range(len(r))])
    assert got.dtype == dtype and np.array_equal(got, a)
    assert np.array_equal(r[-1], a[-1]) and np.array_equal(r[57], a[57])  # random access after sequential
    with pytest.raises(IndexError):
        r[203]


def test_rollover_into_several_shards(tmp_path):
    a = _samples(500, 64, 50257)
    index = _write(tmp_path, a, max_shard_bytes=8 << 10, samples_per_block=4)
    shards = index["shards"]
    assert len(shards) > 3
    assert [s["file"] for s in shards] == [f"shard.{i:05d}.zst" for i in range(len(shards))]
    assert all(s["compressed_bytes"] <= 8 << 10 for s in shards)
    assert sum(s["num_samples"] for s in shards) == index["num_samples"] == 500
    assert all(s["num_samples"] % 4 == 0 for s in shards[:-1])  # only the last block may be short
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([s["file"] for s in shards] + ["index.json"])
    r = ShardReader(tmp_path, verify=True)
    assert np.array_equal(np.stack([r[i] for i in range(500)]), a)


def test_writes_are_atomic_and_index_is_last(tmp_path, monkeypatch):
    renames: list[str] = []
    real_replace = os.replace

    def recording_replace(src, dst):
        assert Path(src).name == Path(dst).name + ".tmp"
        renames.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    a = _samples(100, 32, 1000)
    with ShardWriter(tmp_path, 32, 1000, TOK, max_shard_bytes=2000, samples_per_block=2) as w:
        w.write_many(a[:10])
        assert {p.name for p in tmp_path.iterdir()} == {"shard.00000.zst.tmp"}  # open shard: temp name only
        w.write_many(a[10:])
    shards = json.loads((tmp_path / "index.json").read_text())["shards"]
    assert len(shards) > 1 and renames == [s["file"] for s in shards] + ["index.json"]


def test_error_inside_with_leaves_no_index_and_no_temp(tmp_path):
    (tmp_path / "index.json").write_text("{}")  # an older, finished write into the same directory
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path, 8, 100, TOK, max_shard_bytes=1, samples_per_block=2) as w:
            w.write_many(np.ones((7, 8), dtype=np.int64))  # two finished shards, the third still open
            raise RuntimeError("packer failed")
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"shard.00000.zst", "shard.00001.zst"}
    with pytest.raises(ShardError, match="unfinished"):
        ShardReader(tmp_path)


def test_rewrite_removes_stale_shards(tmp_path):
    _write(tmp_path, _samples(300, 32, 1000), max_shard_bytes=1000, samples_per_block=2)
    index = _write(tmp_path, _samples(4, 32, 1000))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json", "shard.00000.zst"]
    assert len(ShardReader(tmp_path, verify=True)) == index["num_samples"] == 4


def test_writer_rejects_bad_samples(tmp_path):
    with ShardWriter(tmp_path, 8, 100, TOK) as w:
        with pytest.raises(ValueError, match="shape"):
            w.write(np.zeros(7, dtype=np.int64))
        with pytest.raises(ValueError, match=r"\[0, vocab_size=100\)"):
            w.write(np.full(8, 100))
        with pytest.raises(ValueError, match="integers"):
            w.write(np.zeros(8, dtype=np.float32))
        w.write(np.zeros(8, dtype=np.int64))
    with pytest.raises(ValueError, match="extra_index may not set"):
        ShardWriter(tmp_path, 8, 100, TOK, extra_index={"version": 2})


def test_tokenizer_hash(tmp_path):
    (tmp_path / "tokenizer.json").write_bytes(b'{"model": {}}')
    expected = "sha256:" + hashlib.sha256(b'{"model": {}}').hexdigest()
    assert tokenizer_hash(tmp_path) == tokenizer_hash(tmp_path / "tokenizer.json") == expected
    with pytest.raises(ValueError, match="no tokenizer.json"):
        tokenizer_hash(tmp_path / "nowhere")


# -- format: errors name the file -----------------------------------------------------------------
@pytest.fixture
def three_shards(tmp_path) -> Path:
    _write(tmp_path, _samples(120, 32, 1000), vocab=1000, max_shard_bytes=1500, samples_per_block=4)
    return tmp_path


def test_corrupted_shard_detected(three_shards):
    shard = three_shards / "shard.00001.zst"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x40
    shard.write_bytes(bytes(data))
    r = ShardReader(three_shards)  # same size: only the hash or the block checksum can tell
    with pytest.raises(ShardError, match=r"shard\.00001\.zst.*hash mismatch"):
        ShardReader(three_shards, verify=True)
    start = r._starts[1]
    with pytest.raises(ShardError, match=r"shard\.00001\.zst: block \d+ .*corrupt"):
        for i in range(start, r._starts[2]):
            r[i]


def test_truncated_shard(three_shards):
    shard = three_shards / "shard.00002.zst"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(ShardError, match=r"shard\.00002\.zst: truncated"):
        ShardReader(three_shards)


def test_missing_shard(three_shards):
    (three_shards / "shard.00000.zst").unlink()
    with pytest.raises(ShardError, match=r"shard\.00000\.zst: shard listed in index.json is missing"):
        ShardReader(three_shards)


def _edit_index(path: Path, edit) -> None:
    index = json.loads((path / "index.json").read_text())
    edit(index)
    (path / "index.json").write_text(json.dumps(index))


def test_index_not_matching_shards(three_shards):
    a, b = three_shards / "shard.00000.zst", three_shards / "shard.00001.zst"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)  # swapped files: sizes (or hashes) no longer match the index
    with pytest.raises(ShardError, match=r"shard\.0000[01]\.zst"):
        ShardReader(three_shards, verify=True)
    a.write_bytes(data_a)
    b.write_bytes(data_b)
    _edit_index(three_shards, lambda ix: ix["shards"][1].update(num_samples=ix["shards"][1]["num_samples"] + 1))
    with pytest.raises(ShardError, match=r"index.json: shard shard\.00001\.zst: num_tokens"):
        ShardReader(three_shards)
    _edit_index(three_shards, lambda ix: ix["shards"][1].update(num_samples=ix["shards"][1]["num_samples"] - 1))
    _edit_index(three_shards, lambda ix: ix["shards"][0]["block_offsets"].__setitem__(1, 0))
    with pytest.raises(ShardError, match=r"shard\.00000\.zst: block offsets are not strictly increasing"):
        ShardReader(three_shards)


def test_unsupported_version(three_shards):
    _edit_index(three_shards, lambda ix: ix.update(version=FORMAT_VERSION + 1))
    with pytest.raises(ShardError, match=r"index.json: unsupported format version 2"):
        ShardReader(three_shards)


def test_tokenizer_hash_and_seq_length_mismatch(three_shards):
    with pytest.raises(ShardError, match=r"index.json: tokenizer hash .* another tokenizer"):
        ShardReader(three_shards, expected_tokenizer_hash="sha256:" + "00" * 32)
    with pytest.raises(ShardError, match=r"index.json: seq_length is 32 but 1024 was expected"):
        ShardDataset(three_shards, 8, 8, expected_seq_length=1024)


def test_empty_input(tmp_path):
    with ShardWriter(tmp_path, 8, 100, TOK) as w:
        pass
    assert w.summary["num_samples"] == 0
    assert json.loads((tmp_path / "index.json").read_text())["shards"] == []
    with pytest.raises(ShardError, match=r"index.json: empty dataset"):
        ShardReader(tmp_path)


# -- ShardDataset ---------------------------------------------------------------------------------
N, SEQ = 120, 8


@pytest.fixture(scope="module")
def numbered(tmp_path_factory) -> Path:
    """120 samples over several shards; sample i is [8i, 8i+1, ...], so row[0] // 8 names it."""
    path = tmp_path_factory.mktemp("numbered")
    a = np.arange(N * SEQ).reshape(N, SEQ)
    index = _write(path, a, vocab=N * SEQ, max_shard_bytes=300, samples_per_block=4)
    assert len(index["shards"]) >= 3
    return path


def _ids(batch: torch.Tensor) -> list[int]:
    assert batch.dtype == torch.long and batch.shape[1] == SEQ
    return (batch[:, 0] // SEQ).tolist()


def _global_steps(path, steps, world, G, m, workers=0, state=None, **kw) -> list[list[int]]:
    """Run `world` ranks for `steps` steps and reassemble each step's global batch (rank order)."""
    per_rank: list[list[int]] = []
    for rank in range(world):
        ds = ShardDataset(path, G, m, rank=rank, world_size=world, **kw)
        if state is not None:
            ds.load_state_dict(state)
        it = iter(DataLoader(ds, batch_size=m, num_workers=workers))
        per_rank.append([i for _ in range(steps * G // (world * m)) for i in _ids(next(it))])
    n = G // world
    return [[i for r in range(world) for i in per_rank[r][s * n : (s + 1) * n]] for s in range(steps)]


def test_order_is_a_pure_function_of_seed_and_epoch(numbered):
    ds = ShardDataset(numbered, 12, 3, seed=7)
    e0, e1 = ds.epoch_order(0), ds.epoch_order(1)
    assert np.array_equal(e0, ShardDataset(numbered, 24, 4, seed=7).epoch_order(0))
    assert sorted(e0.tolist()) == sorted(e1.tolist()) == list(range(N))
    assert not np.array_equal(e0, e1) and not np.array_equal(e0, ShardDataset(numbered, 12, 3, seed=8).epoch_order(0))
    it = iter(DataLoader(ds, batch_size=3))
    stream = [i for _ in range(2 * N // 3) for i in _ids(next(it))]
    assert stream == e0.tolist() + e1.tolist()  # epochs are concatenated
    starts = ds.reader._starts
    shards_in_first_batch = {int(np.searchsorted(starts, i, side="right")) for i in stream[:12]}
    assert len(shards_in_first_batch) > 1  # shuffled across shards, not within one
    plain = ShardDataset(numbered, 12, 3, shuffle=False)
    it = iter(DataLoader(plain, batch_size=3))
    assert [i for _ in range(N // 3) for i in _ids(next(it))] == list(range(N))


def test_two_ranks_two_workers_one_epoch_no_duplicates_no_gaps(numbered):
    G, m = 24, 3
    seen: list[int] = []
    order = ShardDataset(numbered, G, m, seed=3).epoch_order(0).tolist()
    for rank in range(2):
        ds = ShardDataset(numbered, G, m, rank=rank, world_size=2, seed=3, num_epochs=1)
        got = [i for b in DataLoader(ds, batch_size=m, num_workers=2) for i in _ids(b)]
        assert got == [order[s * G + rank * 12 + k] for s in range(N // G) for k in range(12)]
        seen += got
    assert sorted(seen) == list(range(N))


def test_resume_equals_uninterrupted_across_world_sizes(numbered):
    G, m, kw = 24, 2, {"seed": 5}
    reference = _global_steps(numbered, 9, 1, G, m, **kw)  # 9 steps = 1.8 epochs
    flat = [i for step in reference for i in step]
    assert sorted(flat[:N]) == list(range(N)) and flat[:N] != flat[N : 2 * N]
    ds = ShardDataset(numbered, G, m, **kw)
    for world_before, world_after, at in [(2, 1, 3), (1, 4, 6), (3, 2, 4)]:
        state = ds.state_dict(consumed_samples=at * G)
        assert state == {"seed": 5, "epoch": at * G // N, "consumed_samples": at * G}
        assert _global_steps(numbered, at, world_before, G, m, **kw) == reference[:at]
        resumed = _global_steps(numbered, 9 - at, world_after, G, m, state=state, **kw)
        assert resumed == reference[at:], (world_before, world_after, at)


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # 3 workers on a 2-core machine
def test_num_workers_zero_equals_three(numbered):
    assert _global_steps(numbered, 4, 1, 12, 2, workers=0, seed=1) == _global_steps(
        numbered, 4, 1, 12, 2, workers=3, seed=1
    )


def test_batch_sizes_must_divide(numbered):
    with pytest.raises(ValueError, match=r"global_batch_size 20 must be divisible by world_size \* micro_batch_size"):
        ShardDataset(numbered, 20, 3, world_size=2)
    with pytest.raises(ValueError, match="rank must be in"):
        ShardDataset(numbered, 24, 3, rank=2, world_size=2)


def test_load_state_dict_derives_the_epoch(numbered):
    ds = ShardDataset(numbered, 12, 3)
    # the trainer's idiom: only consumed_samples updated, epoch left stale
    ds.load_state_dict({**ds.state_dict(), "seed": 9, "consumed_samples": 2 * N + 12})
    assert ds.state_dict() == {"seed": 9, "epoch": 2, "consumed_samples": 2 * N + 12}
    first = next(iter(DataLoader(ds, batch_size=3)))
    assert _ids(first) == ds.epoch_order(2)[12:15].tolist()
    with pytest.raises(ValueError, match="missing"):
        ds.load_state_dict({"epoch": 0})


def test_finite_epochs_drop_the_incomplete_last_batch(numbered):
    G, m = 36, 6  # 2 epochs = 240 samples = 6 whole steps + 24 dropped
    ds = ShardDataset(numbered, G, m, seed=2, num_epochs=2)
    got = [i for b in DataLoader(ds, batch_size=m) for i in _ids(b)]
    assert got == (ds.epoch_order(0).tolist() + ds.epoch_order(1).tolist())[: 6 * G]
    with pytest.raises(ValueError, match="no whole global batch"):
        ShardDataset(numbered, 2 * N, 4, num_epochs=1)


def test_reader_survives_pickling(numbered):
    r = ShardReader(numbered)
    first = r[0].copy()
    clone = pickle.loads(pickle.dumps(r))
    assert np.array_equal(clone[0], first) and np.array_equal(clone[N - 1], r[N - 1])


def test_reader_bounds_open_files(three_shards, monkeypatch):
    monkeypatch.setattr("shards.reader.MAX_OPEN_SHARDS", 2)
    r = ShardReader(three_shards)
    expected = np.stack([r[i] for i in range(len(r))])
    order = np.random.default_rng(0).permutation(len(r))
    assert np.array_equal(np.stack([r[i] for i in order]), expected[order])
    assert len(r._fds) <= 2 and len(r._cache) <= 2
