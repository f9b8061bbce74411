"""`cp-preprocess run`: every preprocessing stage in order into one RUN directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from preprocessing.config import load_config
from preprocessing.stream import StreamConfig, run_stream


def run_pipeline(run_dir: str | Path, config_path: str | Path | None = None, workers: int | None = None,
                 limit: int | None = None, force: bool = False) -> dict[str, Any]:
    """Run the stages of the preset (default: CodeParrot's settings on this Python installation).

    Each stage reads its section of the preset (``stream:``, ...); finished stages are skipped on
    a re-run. Returns ``{stage: stats}``.
    """
    run_dir = Path(run_dir)
    results: dict[str, Any] = {}
    stream_cfg = load_config(StreamConfig, config_path, {"workers": workers, "input.limit": limit}, section="stream")
    results["stream"] = run_stream(stream_cfg, run_dir, force=force)
    return results
