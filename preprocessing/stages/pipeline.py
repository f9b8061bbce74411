"""`cp-preprocess run`: every preprocessing stage in order into one RUN directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.config import load_config
from preprocessing.runner import ExecutorSpec


def run_pipeline(run_dir: str | Path, config_path: str | Path | None = None, executor: ExecutorSpec = None,
                 limit: int | None = None, force: bool = False) -> dict[str, Any]:
    """stream + dedup (one pass over the input) -> tokenizer -> pack -> report, each reading its section of the preset.

    With no preset the defaults are used (CodeParrot's settings, the local Python installation as
    input). Finished stages are skipped on a re-run; a stage whose config changed refuses to mix
    outputs unless ``force``. One executor (a local Ray started once) runs every stage. Returns
    ``{stage: stats}`` (the report entry holds its file paths).
    """
    from preprocessing.dedup.minhash import NearDedupConfig
    from preprocessing.stages.pack import PackConfig, run_pack
    from preprocessing.executors import make_executor
    from common.io import join
    from preprocessing.stages.report import run_report
    from preprocessing.stages.stream import StreamConfig, run_stream_and_dedup
    from preprocessing.stages.tokenizer import TokenizerConfig, run_tokenizer

    run_dir = join(run_dir)  # a local Path or a URL
    results: dict[str, Any] = {}
    stream_cfg = load_config(StreamConfig, config_path, {"input.limit": limit}, section="stream")
    dedup_cfg = load_config(NearDedupConfig, config_path, section="near_dedup")
    tok_cfg = load_config(TokenizerConfig, config_path, section="tokenizer")
    pack_cfg = load_config(PackConfig, config_path, section="pack")
    ex, owned = make_executor(executor)
    try:
        results.update(run_stream_and_dedup(stream_cfg, dedup_cfg, run_dir, force, ex))  # one pass over the input
        results["tokenizer"] = run_tokenizer(tok_cfg, run_dir, force=force, executor=ex)
        results["pack"] = run_pack(pack_cfg, run_dir, ex, force=force)
        results["report"] = {k: str(v) for k, v in run_report(run_dir, executor=ex).items()}
    finally:
        if owned:
            ex.close()
    return results
