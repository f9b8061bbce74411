"""`cp-preprocess run`: every stage end to end on the embedded default, then a re-run that skips."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from preprocessing.cli import main

PRESET = """
stream:
  input: {limit: 400, include_stdlib: false}
tokenizer: {vocab_size: 1000, heldout_fraction: 0.2, compare_gpt2: false}
pack: {seq_length: 128, valid_fraction: 0.3}
"""


def test_run_all_stages_then_skip(tmp_path: Path):
    preset = tmp_path / "small.yaml"
    preset.write_text(PRESET)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(preset), "-o", str(run), "--workers", "2"])
    assert result.exit_code == 0, result.output
    for line in ("stream: read 400 records", "dedup: read", "tokenizer: vocab 1,000", "pack:", "report:"):
        assert line in result.output
    manifest = json.loads((run / "manifest.json").read_text())
    assert {"stream", "dedup", "tokenizer", "pack"} <= set(manifest["stages"])
    assert all(stage["finished"] for stage in manifest["stages"].values())
    clean = json.loads((run / "clean" / "stats.json").read_text())
    dedup = json.loads((run / "dedup" / "stats.json").read_text())
    assert dedup["totals"]["records_read"] == clean["totals"]["kept"]
    train_index = json.loads((run / "shards" / "train" / "index.json").read_text())
    assert train_index["seq_length"] == 128 and train_index["vocab_size"] >= 1000
    assert (run / "tokenizer" / "tokenizer.json").exists()
    report = json.loads((run / "report" / "report.json").read_text())
    assert (run / "report" / "report.html").stat().st_size > 10_000
    assert not [c for c in report.get("checks", []) if not c["ok"]]

    again = CliRunner().invoke(main, ["run", str(preset), "-o", str(run)])
    assert again.exit_code == 0, again.output
    assert "stream (already done: skipped)" in again.output
    assert "dedup (already done: skipped)" in again.output
