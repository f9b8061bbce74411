"""Tests of the `tokenizer` and `pack` commands (preprocessing.cli.tokpack) end to end on a RUN directory."""

from __future__ import annotations

import json

from click.testing import CliRunner

from preprocessing.cli.tokpack import pack_command, tokenizer_command
from tests._pycorpus import write_corpus

PRESET = """
tokenizer:
  vocab_size: 1000
  compare_gpt2: false
  heldout_fraction: 0.1
pack:
  seq_length: 256
  valid_fraction: 0.2
"""


def test_tokenizer_then_pack_on_a_run_dir(tmp_path):
    run = tmp_path / "run"
    write_corpus(run / "dedup", max_files=120)
    (run / "dedup" / "clusters.jsonl.zst").write_bytes(b"not read: part-* files win")
    preset = tmp_path / "preset.yaml"
    preset.write_text(PRESET)
    runner = CliRunner()

    res = runner.invoke(tokenizer_command, [str(run), "--config", str(preset), "--vocab-size", "800"])
    assert res.exit_code == 0, res.output
    assert "vocab 800" in res.output and "held-out chars/token" in res.output
    assert json.loads((run / "tokenizer" / "stats.json").read_text())["config"]["vocab_size"] == 800

    res = runner.invoke(pack_command, [str(run), "--config", str(preset), "--workers", "2"])
    assert res.exit_code == 0, res.output
    stats = json.loads((run / "shards" / "stats.json").read_text())
    assert stats["seq_length"] == 256 and stats["splits"]["train"]["samples"] > 0
    assert (run / "shards" / "train" / "index.json").exists() and (run / "shards" / "valid" / "index.json").exists()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["tokenizer"]["finished"] and manifest["stages"]["pack"]["finished"]

    res = runner.invoke(pack_command, [str(run), "--config", str(preset)])
    assert res.exit_code == 0 and "already done: skipped" in res.output
    res = runner.invoke(pack_command, [str(run), "--config", str(preset), "--seq-length", "128"])
    assert res.exit_code == 2 and "another config" in res.output
    res = runner.invoke(pack_command, [str(run), "--config", str(preset), "--seq-length", "128", "--force"])
    assert res.exit_code == 0, res.output
    assert json.loads((run / "shards" / "stats.json").read_text())["seq_length"] == 128


def test_dry_run_and_errors(tmp_path):
    runner = CliRunner()
    res = runner.invoke(pack_command, ["--dry-run", "--seq-length", "2048"])
    assert res.exit_code == 0 and json.loads(res.output)["seq_length"] == 2048
    res = runner.invoke(tokenizer_command, ["--dry-run"])
    assert json.loads(res.output)["vocab_size"] == 32768
    (tmp_path / "run" / "dedup").mkdir(parents=True)
    res = runner.invoke(tokenizer_command, [str(tmp_path / "run")])
    assert res.exit_code == 2 and "dedup holds no .jsonl" in res.output
    res = runner.invoke(pack_command, [str(tmp_path / "run"), "--input", str(tmp_path / "run" / "dedup")])
    assert res.exit_code == 2 and "dedup holds no .jsonl" in res.output
    write_corpus(tmp_path / "run" / "dedup", max_files=5, parts=1)
    res = runner.invoke(pack_command, [str(tmp_path / "run")])
    assert res.exit_code == 2 and "tokenizer has no tokenizer.json" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("pack:\n  seq_len: 10\n")
    res = runner.invoke(pack_command, [str(tmp_path / "run"), "--config", str(bad)])
    assert res.exit_code == 2 and "seq_len" in res.output


def test_pretokenizer_flag_overrides_the_preset(tmp_path):
    runner = CliRunner()
    preset = tmp_path / "preset.yaml"
    preset.write_text(PRESET.replace("  vocab_size: 1000\n", "  vocab_size: 1000\n  pretokenizer: code\n"))
    res = runner.invoke(tokenizer_command, ["--dry-run", "--config", str(preset)])
    assert res.exit_code == 0 and json.loads(res.output)["pretokenizer"] == "code"
    res = runner.invoke(tokenizer_command, ["--dry-run", "--config", str(preset), "--pretokenizer", "superword"])
    assert res.exit_code == 0 and json.loads(res.output)["pretokenizer"] == "superword"
    res = runner.invoke(tokenizer_command, ["--dry-run", "--pretokenizer", "bpe"])
    assert res.exit_code == 2 and "pretokenizer='bpe' must be one of gpt2, code, superword, superword-curriculum" in res.output
    assert "Traceback" not in res.output

    # a real run: the summary line names the pre-tokenizer and compares it with plain BPE on the same sample
    run = tmp_path / "run"
    write_corpus(run / "dedup", max_files=120)
    res = runner.invoke(tokenizer_command, [str(run), "--config", str(preset), "--pretokenizer", "superword"])
    assert res.exit_code == 0, res.output
    assert "superword held-out chars/token" in res.output and "(plain BPE " in res.output
    stats = json.loads((run / "tokenizer" / "stats.json").read_text())
    assert stats["config"]["pretokenizer"] == stats["totals"]["pretokenizer"] == "superword"
