"""The `cp-preprocess tokenizer` and `cp-preprocess pack` commands (thin wrappers over the library)."""

from __future__ import annotations

import os
from typing import Any

import click

from preprocessing.cli.common import clean_errors, executor_config, executor_options, resolve_run_dir, stage_config


def tokenizer_summary(stats: dict[str, Any], out_dir: str) -> None:
    t = stats["totals"]
    skipped = " (already done: skipped)" if stats.get("skipped") else ""
    line = (f"tokenizer{skipped}: vocab {t['vocab_size']:,}, trained on {t['train_files']:,} files "
            f"({t['train_bytes'] / 1e6:.1f} MB) in {stats['train_time_s']:.1f}s")
    if t["chars_per_token"]:
        line += f"; {t['pretokenizer']} held-out chars/token {t['chars_per_token']:.3f}"
        if t.get("plain_bpe_chars_per_token"):
            line += f" (plain BPE {t['plain_bpe_chars_per_token']:.3f}: {t['tokens_vs_plain_bpe']:+.1%} tokens)"
        if t["gpt2_chars_per_token"]:
            line += f" (GPT-2 {t['gpt2_chars_per_token']:.3f}, x{t['ratio_vs_gpt2']:.2f})"
        kw = stats["heldout"]["ours"]["keywords_not_single_token"]["after_space"]
        line += f"; keywords not one token after a space: {', '.join(kw) if kw else 'none'}"
    click.echo(f"{line} -> {out_dir}")
    for note in [stats.get("gpt2_note"), stats.get("heldout_note"), *stats.get("warnings", [])]:
        if note:
            click.echo(f"warning: {note}", err=True)


def pack_summary(stats: dict[str, Any], out_dir: str) -> None:
    sp, t = stats["splits"], stats["totals"]
    skipped = " (already done: skipped)" if stats.get("skipped") else ""
    click.echo(
        f"pack{skipped}: {t['files']:,} files, {t['tokens']:,} tokens -> train {sp['train']['samples']:,} / "
        f"valid {sp['valid']['samples']:,} samples of {stats['seq_length']} tokens "
        f"(dropped tails: {t['dropped_tail_tokens']:,} tokens) in {stats['wall_time_s']:.1f}s "
        f"({stats['throughput']['mb_per_s']:.2f} MB/s) -> {out_dir}"
    )
    for warning in stats.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)


@click.command("tokenizer")
@click.argument("run_dir", required=False)
@click.option("-i", "--input", "inputs", multiple=True, help="JSONL shards or directories instead of RUN/dedup (repeatable).")
@click.option("-o", "--output", "output", help="Tokenizer directory (default: RUN/tokenizer).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML preset; its tokenizer: section is used.")
@click.option("--vocab-size", type=int, help="Vocabulary size, special tokens included.")
@click.option("--pretokenizer", help="How text is cut before BPE: gpt2, code, superword or superword-curriculum "
                                     "(tokenizer.pretokenizer; checked by TokenizerConfig).")
@click.option("--strict/--no-strict", default=None, help="A truncated or corrupt input file is an error (exit 2), not a warning.")
@executor_options
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@clean_errors
def tokenizer_command(run_dir: str | None, inputs: tuple[str, ...], output: str | None, config_path: str | None,
                      vocab_size: int | None, pretokenizer: str | None, strict: bool | None, workers: int | None,
                      executor: str | None, ray_address: str | None, partitions: int | None, force: bool,
                      dry_run: bool) -> None:
    """Train a byte-level BPE tokenizer on RUN/dedup; report chars/token against GPT-2 on held-out repos."""
    from preprocessing.stages.tokenizer import TokenizerConfig, run_tokenizer

    ex = executor_config(config_path, workers, executor, ray_address, partitions)
    cfg = stage_config(TokenizerConfig, config_path, {"vocab_size": vocab_size, "pretokenizer": pretokenizer, "strict": strict}, "tokenizer",
                       dry_run, ex)
    if cfg is None:
        return
    run_dir = resolve_run_dir(run_dir, inputs, output)
    stats = run_tokenizer(cfg, run_dir, inputs=list(inputs) or None, out_dir=output, force=force, executor=ex)
    tokenizer_summary(stats, output or os.path.join(run_dir or "", "tokenizer"))


@click.command("pack")
@click.argument("run_dir", required=False)
@click.option("-i", "--input", "inputs", multiple=True, help="JSONL shards or directories instead of RUN/dedup (repeatable).")
@click.option("-o", "--output", "output", help="Shard directory (default: RUN/shards).")
@click.option("--tokenizer", help="Tokenizer directory (default: pack.tokenizer, else RUN/tokenizer).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML preset; its pack: section is used.")
@click.option("--seq-length", type=int, help="Tokens per sample.")
@click.option("--strict/--no-strict", default=None, help="A truncated or corrupt input file is an error (exit 2), not a warning.")
@executor_options
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@clean_errors
def pack_command(run_dir: str | None, inputs: tuple[str, ...], output: str | None, tokenizer: str | None,
                 config_path: str | None, seq_length: int | None, strict: bool | None, workers: int | None,
                 executor: str | None, ray_address: str | None, partitions: int | None, force: bool,
                 dry_run: bool) -> None:
    """Tokenize RUN/dedup and pack it into constant-length train/valid token shards in RUN/shards."""
    from preprocessing.stages.pack import PackConfig, run_pack

    ex = executor_config(config_path, workers, executor, ray_address, partitions)
    cfg = stage_config(PackConfig, config_path, {"seq_length": seq_length, "tokenizer": tokenizer, "strict": strict},
                       "pack", dry_run, ex)
    if cfg is None:
        return
    run_dir = resolve_run_dir(run_dir, inputs, output)
    stats = run_pack(cfg, run_dir, ex, inputs=list(inputs) or None, out_dir=output, force=force)
    pack_summary(stats, output or os.path.join(run_dir or "", "shards"))
