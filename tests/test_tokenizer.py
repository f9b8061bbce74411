"""Tests of preprocessing.tokenizer: training, lossless round trip, HF loading, held-out report."""

from __future__ import annotations

import json

import pytest

from preprocessing.tokenizer import (
    EOS_TOKEN,
    FIM_TOKENS,
    TokenizerConfig,
    load_gpt2_tokenizer,
    resolve_inputs,
    train_tokenizer,
)
from tests._pycorpus import write_corpus, write_jsonl_zst

SMALL = {"vocab_size": 2000, "heldout_fraction": 0.15, "seed": 0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("tok")
    rows = write_corpus(base / "dedup", max_files=300)
    stats = train_tokenizer(base / "dedup", base / "tokenizer", TokenizerConfig(**SMALL))
    return base, rows, stats


def test_roundtrip_real_code_and_autotokenizer(trained):
    from transformers import AutoTokenizer

    base, rows, _ = trained
    tok = AutoTokenizer.from_pretrained(str(base / "tokenizer"))
    assert len(tok) == 2000
    assert tok.eos_token == tok.bos_token == EOS_TOKEN
    assert tok.eos_token_id == tok.convert_tokens_to_ids(EOS_TOKEN)
    texts = [r["content"] for r in rows[::7]]
    texts.append("déjà vu = '日本語' + \"\\t\\r\\n\"  # emoji 🐍\n\n\tx\r\n")  # bytes outside the training data
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    # No BOS/EOS is added silently: packing decides where EOS goes.
    assert tok("x = 1")["input_ids"] == tok("x = 1", add_special_tokens=False)["input_ids"]


def test_stats_report_heldout_and_gpt2(trained):
    base, rows, stats = trained
    on_disk = json.loads((base / "tokenizer" / "stats.json").read_text())
    assert on_disk == stats
    sample, heldout = stats["stages"]["train_sample"], stats["stages"]["heldout_eval"]
    for s in (sample, heldout):
        assert s["records_in"] == s["kept"] + sum(s["dropped"].values()) + sum(s["rejected"].values())
    assert sample["records_in"] == len(rows)
    # Held-out repositories are never trained on, and every held-out file is measured.
    assert sample["dropped"]["heldout"] == heldout["kept"] > 0
    ours, gpt2 = stats["heldout"]["ours"], stats["heldout"]["gpt2"]
    assert ours["files"] == gpt2["files"] == heldout["kept"]
    assert ours["chars"] == gpt2["chars"]
    assert ours["chars_per_token"] == pytest.approx(ours["chars"] / ours["tokens"], abs=1e-3)
    # Only the figures' consistency is asserted here; the comparison at full size is in benchmarks/.
    assert gpt2["vocab_size"] == 50257 and 0 < gpt2["vocab_used_fraction"] < 1
    assert 0 < ours["vocab_used_fraction"] <= 1
    assert "def" not in ours["keywords_not_single_token"]["after_space"]
    assert stats["totals"]["ratio_vs_gpt2"] == pytest.approx(ours["chars_per_token"] / gpt2["chars_per_token"], abs=1e-3)


def test_heldout_split_is_by_repo_and_deterministic(tmp_path, trained):
    base, _, stats = trained
    again = train_tokenizer(base / "dedup", tmp_path / "tok2", TokenizerConfig(**SMALL))
    assert (tmp_path / "tok2" / "tokenizer.json").read_bytes() == (base / "tokenizer" / "tokenizer.json").read_bytes()
    assert again["heldout"] == stats["heldout"]


def test_caps_fim_and_no_gpt2(tmp_path):
    rows = write_corpus(tmp_path / "in", max_files=60, parts=1)
    cfg = TokenizerConfig(vocab_size=600, max_files=20, fim_tokens=True, compare_gpt2=False, heldout_fraction=0.2)
    stats = train_tokenizer(tmp_path / "in", tmp_path / "tok", cfg)
    assert stats["totals"]["train_files"] == 20
    assert stats["stages"]["train_sample"]["records_in"] < len(rows)  # stopped reading at the cap
    assert stats["heldout"]["gpt2"] is None
    assert list(stats["special_tokens"]) == [EOS_TOKEN, *FIM_TOKENS]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    for t in FIM_TOKENS:
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1


def test_max_bytes_cap(tmp_path):
    write_corpus(tmp_path / "in", max_files=60, parts=1)
    cfg = TokenizerConfig(vocab_size=600, max_bytes=50_000, max_files=None, compare_gpt2=False)
    stats = train_tokenizer(tmp_path / "in", tmp_path / "tok", cfg)
    # The file that crosses the cap is used up to the cap (in exact pieces), then reading stops.
    assert 50_000 <= stats["totals"]["train_bytes"] < 50_000 + 60_000
    sample = stats["stages"]["train_sample"]
    assert sample["bytes_out"] == stats["totals"]["train_bytes"] <= sample["bytes_in"]


def test_gpt2_tokenizer_matches_known_ids():
    gpt2 = load_gpt2_tokenizer()
    assert gpt2.encode("Hello world").ids == [15496, 995]
    assert gpt2.decode(gpt2.encode("def f(x):\n    return x\n").ids) == "def f(x):\n    return x\n"


def test_missing_gpt2_files_is_a_note_not_a_failure(tmp_path):
    write_corpus(tmp_path / "in", max_files=40, parts=1)
    cfg = TokenizerConfig(vocab_size=400, heldout_fraction=0.3, gpt2_dir=str(tmp_path / "nowhere"))
    stats = train_tokenizer(tmp_path / "in", tmp_path / "tok", cfg)
    assert stats["heldout"]["gpt2"] is None and "encoder.json" in stats["gpt2_note"]


def test_empty_inputs_name_the_file_or_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty.*no .jsonl"):
        train_tokenizer(tmp_path / "empty", tmp_path / "tok")
    with pytest.raises(ValueError, match="missing.*does not exist"):
        resolve_inputs(tmp_path / "missing")
    write_jsonl_zst(tmp_path / "blank" / "part-00000.jsonl.zst", [])
    with pytest.raises(ValueError, match=r"no training text in .*part-00000\.jsonl\.zst"):
        train_tokenizer(tmp_path / "blank", tmp_path / "tok", TokenizerConfig(vocab_size=300))
    assert not (tmp_path / "tok").exists()


def test_config_validation():
    with pytest.raises(ValueError, match="vocab_size=100 must be > 256"):
        TokenizerConfig(vocab_size=100)
    with pytest.raises(ValueError, match="heldout_fraction"):
        TokenizerConfig(heldout_fraction=1.0)


def test_long_files_train_in_exact_pieces(tmp_path, monkeypatch):
    import preprocessing.tokenizer as tokenizer_module

    rows = write_corpus(tmp_path / "in", max_files=80, parts=1)
    big = "".join(r["content"] for r in rows)  # one ~1 MB file
    write_jsonl_zst(tmp_path / "big" / "part-00000.jsonl.zst", [{"repo_name": "r", "path": "big.py", "content": big}])
    cfg = TokenizerConfig(vocab_size=500, heldout_fraction=0.0, compare_gpt2=False)
    monkeypatch.setattr(tokenizer_module, "TRAIN_CHUNK_CHARS", 4096)
    pieces = train_tokenizer(tmp_path / "big", tmp_path / "pieces", cfg)
    monkeypatch.setattr(tokenizer_module, "TRAIN_CHUNK_CHARS", 1 << 30)
    whole = train_tokenizer(tmp_path / "big", tmp_path / "whole", cfg)
    # The pieces have exactly the pre-tokens of the whole file, so the trainer learns the same merges.
    assert (tmp_path / "pieces" / "tokenizer.json").read_bytes() == (tmp_path / "whole" / "tokenizer.json").read_bytes()
    assert pieces["totals"]["train_bytes"] == whole["totals"]["train_bytes"] == len(big.encode())
