"""`cp-preprocess`: the Click toolkit. Each command parses options and calls one library function."""

from __future__ import annotations

import atexit
import gc
from pathlib import Path
from typing import Any

import click

from preprocessing.cli.common import DEFAULT_RUN, clean_errors, executor_config, executor_options, stage_config
from common.io import join


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="codeparrot-toolkit")
def main() -> None:
    """Turn raw GitHub code dumps into a clean, deduplicated, tokenized corpus."""
    # The process exits after the command: at exit, every object goes to the collector's
    # permanent generation (gc.freeze), so the interpreter's shutdown does not run a full cyclic
    # collection over all the modules' objects (~40 ms of a 2 s `dedup` run, docs/benchmarks.md).
    # Nothing is left unwritten: every output is closed by the command. Registered once.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


@main.command("stream")
@click.argument("inputs", nargs=-1)
@click.option("-o", "--output", "run_dir", default=DEFAULT_RUN, show_default=True, help="Run directory (RUN/clean is written).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML preset (configs/preprocess/*.yaml).")
@click.option("--format", "fmt", help="Input format: auto, jsonl, parquet, hf, local, pyenv.")
@click.option("--hf-dataset", help="Stream a Hugging Face dataset (hub name, or a builder like 'json').")
@click.option("--limit", type=int, help="Stop after this many input records.")
@click.option("--near-dedup/--no-near-dedup", default=None, help="Also MinHash near-dedup into RUN/dedup, in the same pass.")
@click.option("--strict/--no-strict", default=None, help="A truncated or corrupt input file is an error (exit 2), not a warning.")
@click.option("--secrets", type=click.Choice(["redact", "drop", "off"]),
              help="Secrets and PII: redact them, drop files holding them, or off (filters.secrets.mode).")
@executor_options
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@clean_errors
def stream_cmd(inputs: tuple[str, ...], run_dir: str, config_path: str | None, fmt: str | None,
               hf_dataset: str | None, limit: int | None, near_dedup: bool | None, strict: bool | None,
               secrets: str | None, workers: int | None, executor: str | None, ray_address: str | None,
               partitions: int | None, force: bool, dry_run: bool) -> None:
    """Stream a dump (default: this Python installation) through the filters and exact dedup."""
    from common.config import load_config
    from preprocessing.stages.stream import StreamConfig, run_stream

    overrides = {
        "input.paths": list(inputs) or None,
        "input.format": fmt,
        "input.hf_dataset": hf_dataset,
        "input.limit": limit,
        "input.strict": strict,
        "filters.secrets.mode": secrets,
    }
    ex = executor_config(config_path, workers, executor, ray_address, partitions)
    cfg = stage_config(StreamConfig, config_path, overrides, "stream", dry_run, ex)
    if cfg is None:
        return
    if not near_dedup:
        _summary(run_stream(cfg, run_dir, force=force, executor=ex), join(run_dir, "clean"))
        return
    from preprocessing.cli.dedup import dedup_summary
    from preprocessing.dedup.minhash import NearDedupConfig
    from preprocessing.stages.stream import run_stream_and_dedup

    near_cfg = load_config(NearDedupConfig, config_path, section="near_dedup")
    results = run_stream_and_dedup(cfg, near_cfg, run_dir, force=force, executor=ex)
    _summary(results["stream"], join(run_dir, "clean"))
    dedup_summary(results["dedup"], join(run_dir, "dedup"))


@main.command("run")
@click.argument("config_path", required=False, type=click.Path(dir_okay=False))
@click.option("-o", "--output", "run_dir", default=DEFAULT_RUN, show_default=True, help="Run directory.")
@click.option("--limit", type=int, help="Stop reading after this many input records.")
@executor_options
@clean_errors
def run_cmd(config_path: str | None, run_dir: str, limit: int | None, workers: int | None, executor: str | None,
            ray_address: str | None, partitions: int | None, force: bool) -> None:
    """Run every preprocessing stage of a preset (default: CodeParrot's, on this Python installation)."""
    from preprocessing.stages.pipeline import run_pipeline

    ex = executor_config(config_path, workers, executor, ray_address, partitions)
    results = run_pipeline(run_dir, config_path, executor=ex, limit=limit, force=force)
    _summary(results["stream"], join(run_dir, "clean"))
    from preprocessing.cli.dedup import dedup_summary

    dedup_summary(results["dedup"], join(run_dir, "dedup"))
    from preprocessing.cli.tokpack import pack_summary, tokenizer_summary

    tokenizer_summary(results["tokenizer"], str(join(run_dir, "tokenizer")))
    pack_summary(results["pack"], str(join(run_dir, "shards")))
    click.echo(f"report: {results['report']['html']}  (open it in a browser)")


def _summary(stats: dict[str, Any], out_dir: Path) -> None:
    t = stats["totals"]
    skipped = " (already done: skipped)" if stats.get("skipped") else ""
    click.echo(
        f"stream{skipped}: read {t['records_read']:,} records, kept {t['kept']:,}, "
        f"dropped {sum(t['dropped'].values()):,}, rejected {sum(t['rejected'].values()):,} "
        f"in {stats['wall_time_s']:.1f}s ({stats['throughput_mb_s']:.1f} MB/s) -> {out_dir}"
    )
    decontam = (stats.get("filters") or {}).get("decontaminated")
    if decontam:  # zero said too: that is the assurance the filter ran
        counts = ", ".join(f"{name} {t['dropped'].get(f'decontaminated:{name}', 0):,}" for name in decontam["benchmarks"])
        click.echo(f"decontamination: files dropped per benchmark: {counts or 'no benchmark pattern loaded'}")
    for w in stats.get("warnings", [])[:10]:
        click.echo(f"warning: {w}", err=True)


def _register_stage_commands() -> None:
    """The other stages keep their Click commands next to their library code."""
    from preprocessing.cli.dedup import dedup_command
    from preprocessing.cli.report import report_command
    from preprocessing.cli.tokpack import pack_command, tokenizer_command

    for command in (dedup_command, tokenizer_command, pack_command, report_command):
        main.add_command(command)


_register_stage_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
