"""Tests of preprocessing.stages.pack: every token kept in order, exact chunking, determinism, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from preprocessing.stages.pack import PackConfig, pack, split_of
from preprocessing.record import CodeFile
from preprocessing.stages.tokenizer import TokenizerConfig, pretokenizer_of, safe_chunks, train_tokenizer
from tests._pycorpus import write_corpus, write_jsonl_zst


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("pack")
    rows = write_corpus(base / "dedup", max_files=200, parts=3)
    train_tokenizer(base / "dedup", base / "tokenizer", TokenizerConfig(vocab_size=1500, compare_gpt2=False))
    from tokenizers import Tokenizer

    return base, rows, Tokenizer.from_file(str(base / "tokenizer" / "tokenizer.json"))


def read_split(path: Path) -> np.ndarray:
    from shards import ShardReader

    r = ShardReader(path, verify=True)
    return np.concatenate([np.asarray(r[i]) for i in range(len(r))]) if len(r) else np.zeros(0, np.int64)


def tree_bytes(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file() and p.name != "stats.json"}


def test_every_token_of_every_file_in_order(corpus, tmp_path):
    base, rows, tok = corpus
    eos = tok.token_to_id("<|endoftext|>")
    cfg = PackConfig(seq_length=128, valid_fraction=0.2, batch_chars=50_000, chunk_chars=4096)
    stats = pack(base / "dedup", base / "tokenizer", tmp_path / "shards", cfg)
    for split in ("train", "valid"):
        expected = []
        for row in rows:
            if split_of(CodeFile(row["content"], row["repo_name"], row["path"]), cfg) == split:
                expected.extend(tok.encode(row["content"], add_special_tokens=False).ids + [eos])
        got = read_split(tmp_path / "shards" / split)
        s = stats["splits"][split]
        assert len(got) == s["samples"] * 128 == s["packed_tokens"] > 0
        assert got.tolist() == expected[: len(got)]
        assert s["dropped_tail_tokens"] == len(expected) - len(got) < 128
        assert s["tokens"] + s["eos_tokens"] == len(expected)
    st = stats["stages"]["pack"]
    assert st["records_in"] == st["kept"] == len(rows) == sum(stats["splits"][s]["files"] for s in ("train", "valid"))
    assert json.loads((tmp_path / "shards" / "stats.json").read_text()) == stats
    assert not list(tmp_path.glob("*.tmp-*"))


def test_deterministic_for_1_and_2_workers_and_chunk_sizes(corpus, tmp_path):
    base, _, _ = corpus
    cfg = PackConfig(seq_length=256, valid_fraction=0.1, batch_chars=100_000)
    pack(base / "dedup", base / "tokenizer", tmp_path / "w1", cfg, executor=1)
    pack(base / "dedup", base / "tokenizer", tmp_path / "w2", cfg, executor=2)
    one = tree_bytes(tmp_path / "w1")
    assert one == tree_bytes(tmp_path / "w2")
    assert any(k.startswith("train/") for k in one) and any(k.startswith("valid/") for k in one)
    # Huge-file chunking (here of every file bigger than 1 KiB) does not change a single id.
    chunked = PackConfig(seq_length=256, valid_fraction=0.1, batch_chars=100_000, chunk_chars=1024)
    stats = pack(base / "dedup", base / "tokenizer", tmp_path / "chunked", chunked, executor=2)
    assert stats["totals"]["inexact_cuts"] == 0
    assert tree_bytes(tmp_path / "chunked") == one
    # A re-run replaces the output whole, and clears what a killed run left behind.
    (tmp_path / "w1.tmp-99999" / "train").mkdir(parents=True)
    pack(base / "dedup", base / "tokenizer", tmp_path / "w1", cfg, executor=1)
    assert tree_bytes(tmp_path / "w1") == one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunked", "w1", "w2"]


def test_safe_chunks_encode_exactly(corpus):
    _, rows, tok = corpus
    kind = pretokenizer_of(tok)  # the default tokenizer's; every option: tests/test_tokenizer.py
    texts = [r["content"] for r in rows[::5]]
    texts.append("    x = [" + ", ".join(f"'{i}s'" for i in range(3000)) + "]\n")  # one long indented line
    texts.append("a" * 500 + "  \n\n   \t" * 200 + "ß" * 500)  # no exact place at all
    texts.append("tok<|endoftext|>x(<fim_prefix>1," * 300)  # special tokens in the text are never cut
    for text in texts:
        whole = tok.encode(text, add_special_tokens=False).ids
        for size in (64, 300, 2048):
            pieces, inexact = safe_chunks(text, size, kind)
            assert "".join(pieces) == text
            assert all(len(p) <= size for p in pieces)
            if inexact == 0:
                parts = [i for p in pieces for i in tok.encode(p, add_special_tokens=False).ids]
                assert parts == whole, (size, text[:80])
    # one long line of '0s', '1s', ...: exact places only between gpt2's letters and digits
    assert (safe_chunks(texts[-3], 300, kind)[1] == 0) == (kind == "gpt2")
    assert safe_chunks(texts[-2], 300, kind)[1] > 0
    assert (safe_chunks(texts[-1], 64, kind)[1] == 0) == (kind != "superword")


def test_accounting_with_bad_and_empty_records(corpus, tmp_path):
    base, rows, _ = corpus
    good = [{"repo_name": r["repo_name"], "path": r["path"], "content": r["content"]} for r in rows[:40]]
    path = write_jsonl_zst(tmp_path / "in" / "part-00000.jsonl.zst", good + [{"repo_name": "x", "path": "e.py", "content": ""}])
    import zstandard

    with open(path, "ab") as fh:  # a second zstd frame holding a broken line
        fh.write(zstandard.ZstdCompressor().compress(b'{"repo_name": "x", "content": \n'))
    stats = pack(tmp_path / "in", base / "tokenizer", tmp_path / "out", PackConfig(seq_length=64, valid_fraction=0.0))
    st = stats["stages"]["pack"]
    assert st["kept"] == 40 and st["rejected"] == {"empty_content": 1, "invalid_json": 1}
    assert st["records_in"] == st["kept"] + sum(st["dropped"].values()) + sum(st["rejected"].values()) == 42
    assert stats["splits"]["valid"]["files"] == 0 and stats["warnings"] == []


def test_bad_inputs_are_clear_errors(corpus, tmp_path):
    base, _, _ = corpus
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty holds no .jsonl"):
        pack(tmp_path / "empty", base / "tokenizer", tmp_path / "out")
    with pytest.raises(ValueError, match="nowhere has no tokenizer.json"):
        pack(base / "dedup", tmp_path / "nowhere", tmp_path / "out")
    write_jsonl_zst(tmp_path / "blank" / "part-00000.jsonl.zst", [])
    with pytest.raises(ValueError, match=r"no content to pack in .*blank/part-00000\.jsonl\.zst"):
        pack(tmp_path / "blank", base / "tokenizer", tmp_path / "out")
    write_jsonl_zst(tmp_path / "tiny" / "part-00000.jsonl.zst", [{"repo_name": "r", "path": "a.py", "content": "x = 1\n"}])
    with pytest.raises(ValueError, match="fewer than seq_length=1024"):
        pack(tmp_path / "tiny", base / "tokenizer", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.tmp-*"))
    with pytest.raises(ValueError, match="seq_length=1 must be >= 2"):
        PackConfig(seq_length=1)


def test_valid_split_is_by_repository():
    cfg = PackConfig(valid_fraction=0.3, seed=1)
    repos = [f"org/repo{i}" for i in range(200)]
    for repo in repos:
        assert len({split_of(CodeFile("x", repo, f"f{j}.py"), cfg) for j in range(5)}) == 1
    share = sum(split_of(CodeFile("x", r, "a.py"), cfg) == "valid" for r in repos) / len(repos)
    assert 0.15 < share < 0.45


HUGE_SCRIPT = """
import resource, sys
from pathlib import Path
from preprocessing.stages.pack import PackConfig, pack
stats = pack(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), PackConfig(), executor=2)
# VmHWM: this address space's own peak (ru_maxrss of SELF would carry the forking pytest's peak over exec)
own = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
peak = max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(stats["splits"]["train"]["tokens"], stats["splits"]["train"]["samples"], stats["totals"]["inexact_cuts"], peak // 1024)
"""


@pytest.mark.slow
def test_a_50mb_file_packs_in_bounded_memory(corpus, tmp_path):
    import subprocess
    import sys

    base, rows, tok = corpus
    text = "".join(r["content"] for r in rows)
    big = (text * (50_000_000 // len(text) + 1))[:50_000_000]
    write_jsonl_zst(tmp_path / "in" / "part-00000.jsonl.zst", [{"repo_name": "r", "path": "big.py", "content": big}])
    expected_tokens = len(tok.encode(text, add_special_tokens=False).ids) * (50_000_000 // len(text))
    del big, text
    out = subprocess.run(
        [sys.executable, "-c", HUGE_SCRIPT, str(tmp_path / "in"), str(base / "tokenizer"), str(tmp_path / "out")],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent,
    )
    tokens, samples, inexact, peak_mb = map(int, out.stdout.split())
    assert inexact == 0
    assert samples == (tokens + 1) // 1024
    assert tokens >= expected_tokens  # whole copies of the corpus, plus the cut-off copy
    # The 50 MB string, its JSON line and compressed input are held once; tokens are not all in memory at once.
    assert peak_mb < 1000, f"peak RSS {peak_mb} MB"
