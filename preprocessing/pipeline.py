"""`cp-preprocess run`: every preprocessing stage in order into one RUN directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from preprocessing.config import load_config


def run_pipeline(run_dir: str | Path, config_path: str | Path | None = None, workers: int | None = None,
                 limit: int | None = None, force: bool = False) -> dict[str, Any]:
    """stream + dedup (one pass over the input) -> tokenizer -> pack -> report, each reading its section of the preset.

    With no preset the defaults are used (CodeParrot's settings, the local Python installation as
    input). Finished stages are skipped on a re-run; a stage whose config changed refuses to mix
    outputs unless ``force``. Returns ``{stage: stats}`` (the report entry holds its file paths).
    """
    from preprocessing.dedup.minhash import NearDedupConfig
    from preprocessing.pack import PackConfig, run_pack
    from preprocessing.report import write_report
    from preprocessing.stream import StreamConfig, run_stream_and_dedup
    from preprocessing.tokenizer import TokenizerConfig, run_tokenizer

    run_dir = Path(run_dir)
    results: dict[str, Any] = {}
    stream_cfg = load_config(StreamConfig, config_path, {"workers": workers, "input.limit": limit}, section="stream")
    dedup_cfg = load_config(NearDedupConfig, config_path, section="near_dedup")
    results.update(run_stream_and_dedup(stream_cfg, dedup_cfg, run_dir, force=force))  # one pass over the input
    tok_cfg = load_config(TokenizerConfig, config_path, section="tokenizer")
    results["tokenizer"] = run_tokenizer(tok_cfg, run_dir, force=force)
    pack_cfg = load_config(PackConfig, config_path, section="pack")
    results["pack"] = run_pack(pack_cfg, run_dir, workers=stream_cfg.workers, force=force)
    results["report"] = {k: str(v) for k, v in write_report(run_dir).items()}
    return results
