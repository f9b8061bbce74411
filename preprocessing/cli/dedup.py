"""`cp-preprocess dedup`: thin Click command over :func:`preprocessing.stages.dedup.run_dedup`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from preprocessing.cli.common import (clean_errors, executor_config, executor_options, frozen_imports, resolve_run_dir,
                                      stage_config)
from common.io import join


def dedup_summary(stats: dict[str, Any], out_dir: Path) -> None:
    t, nd = stats["totals"], stats["near_dedup"]
    skipped = " (already done: skipped)" if stats.get("skipped") else ""
    click.echo(
        f"dedup{skipped}: read {t['records_read']:,} records, kept {t['kept']:,}, "
        f"removed {nd['removed']:,} near-duplicates in {nd['clusters']:,} clusters "
        f"({nd['files_in_clusters']:,} files), {nd['too_short_to_cluster']:,} too short to cluster, "
        f"rejected {sum(t['rejected'].values()):,} in {stats['wall_time_s']:.1f}s "
        f"({stats['throughput_mb_s']:.1f} MB/s) -> {out_dir}"
    )


@click.command("dedup")
@click.argument("run_dir", required=False)
@click.option("-i", "--input", "inputs", multiple=True, help="Input files/globs instead of RUN/clean (repeatable).")
@click.option("-o", "--output", "output", help="Output directory (default: RUN/dedup).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML preset; its near_dedup: section is used.")
@click.option("--threshold", type=float, help="Jaccard threshold of a near-duplicate.")
@click.option("--num-perm", type=int, help="MinHash permutations.")
@click.option("--memory-budget", "memory_budget", type=float, help="MB of band tables before they spill to disk.")
@click.option("--keep", type=click.Choice(["first", "longest", "license", "stars"]), help="Which file of a cluster is kept.")
@click.option("--verify", type=click.Choice(["signature", "exact"]), help="How candidate pairs are verified.")
@click.option("--strict/--no-strict", default=None, help="A truncated or corrupt input file is an error (exit 2), not a warning.")
@executor_options
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@clean_errors
def dedup_command(run_dir: str | None, inputs: tuple[str, ...], output: str | None, config_path: str | None,
                  threshold: float | None, num_perm: int | None, memory_budget: float | None, keep: str | None,
                  verify: str | None, strict: bool | None, workers: int | None, executor: str | None,
                  ray_address: str | None, partitions: int | None, force: bool, dry_run: bool) -> None:
    """MinHash LSH near-dedup of RUN/clean (or --input files) into RUN/dedup (or --output)."""
    with frozen_imports():
        from preprocessing.dedup.minhash import NearDedupConfig
        from preprocessing.readers import InputConfig
        from preprocessing.stages.dedup import run_dedup

    overrides = {"threshold": threshold, "num_perm": num_perm, "memory_budget_mb": memory_budget,
                 "keep": keep, "verify": verify}
    ex = executor_config(config_path, workers, executor, ray_address, partitions)
    cfg = stage_config(NearDedupConfig, config_path, overrides, "near_dedup", dry_run, ex)
    if cfg is None:
        return
    run_dir = resolve_run_dir(run_dir, inputs, output)
    source = InputConfig(paths=list(inputs)) if inputs else None
    stats = run_dedup(cfg, run_dir, ex, inputs=source, out_dir=output, force=force, strict=strict)
    dedup_summary(stats, join(output) if output else join(run_dir, "dedup"))  # type: ignore[arg-type]
