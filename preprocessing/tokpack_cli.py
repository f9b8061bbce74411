"""The `cp-preprocess tokenizer` and `cp-preprocess pack` commands (thin wrappers over the library)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click


def _paths(run_dir: Path | None, inputs: tuple[Path, ...], output: Path | None, default_in: str,
           default_out: str) -> tuple[list[Path], Path]:
    if run_dir is None and (not inputs or output is None):
        raise click.UsageError(f"give RUN (reads RUN/{default_in}, writes RUN/{default_out}) or both --input and --output")
    ins = list(inputs) if inputs else [run_dir / default_in]  # type: ignore[operator]
    out = output if output is not None else run_dir / default_out  # type: ignore[operator]
    return ins, out


def _load(cls: type, config: Path | None, section: str, overrides: dict[str, Any]) -> Any:
    from preprocessing.config import ConfigError, load_config

    try:
        return load_config(cls, config, overrides={k: v for k, v in overrides.items() if v is not None}, section=section)
    except (ConfigError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from exc


def _run_stage(run_dir: Path | None, stage: str, cfg_dict: dict[str, Any], input_files: list[Path],
               outputs: list[Path], work) -> dict[str, Any] | None:
    """Run ``work()`` under RUN/manifest.json bookkeeping (skip when already done with this config and input)."""
    import time

    from preprocessing.manifest import RunManifest, fingerprint_files

    if run_dir is None:
        return work()
    manifest = RunManifest(run_dir)
    manifest.check(stage, cfg_dict)
    fp = fingerprint_files(input_files)
    if manifest.is_done(stage, cfg_dict, fp):
        click.echo(f"{stage}: already done in {run_dir} with this config and input; skipping")
        return None
    started = time.perf_counter()
    result = work()
    manifest.mark_done(stage, cfg_dict, fp, outputs=[str(p) for p in outputs], wall_time_s=time.perf_counter() - started)
    return result


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc)) from exc


@click.command("tokenizer")
@click.argument("run_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--input", "inputs", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="JSONL shards or a directory of them (default: RUN/dedup).")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), help="Tokenizer directory (default: RUN/tokenizer).")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="YAML preset (its `tokenizer:` section).")
@click.option("--workers", type=int, default=None, help="Threads of the Rust trainer (default: all cores).")
@click.option("--vocab-size", type=int, default=None, help="Override tokenizer.vocab_size.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
def tokenizer_command(run_dir: Path | None, inputs: tuple[Path, ...], output: Path | None, config: Path | None,
                      workers: int | None, vocab_size: int | None, dry_run: bool) -> None:
    """Train a byte-level BPE tokenizer on the deduplicated shards and report chars/token against GPT-2."""
    from preprocessing.config import to_dict
    from preprocessing.tokenizer import TokenizerConfig, resolve_inputs, train_tokenizer

    ins, out = _paths(run_dir, inputs, output, "dedup", "tokenizer")
    cfg = _load(TokenizerConfig, config, "tokenizer", {"vocab_size": vocab_size})
    cfg_dict = to_dict(cfg)
    if dry_run:
        click.echo(json.dumps({"tokenizer": cfg_dict, "input": [str(p) for p in ins], "output": str(out)}, indent=2))
        return
    if workers is not None:
        if workers < 1:
            raise click.BadParameter(f"{workers} must be >= 1", param_hint="--workers")
        os.environ.setdefault("RAYON_NUM_THREADS", str(workers))  # read when the Rust thread pool starts
    try:
        files = resolve_inputs(ins)
        stats = _run_stage(run_dir, "tokenizer", cfg_dict, files, [out], lambda: train_tokenizer(files, out, cfg))
    except ValueError as exc:
        _fail(exc)
    if stats is None:
        return
    t = stats["totals"]
    line = f"tokenizer: vocab {t['vocab_size']}, trained on {t['train_files']} files ({t['train_bytes'] / 1e6:.1f} MB)"
    if t["chars_per_token"]:
        line += f"; held-out chars/token {t['chars_per_token']:.3f}"
        if t["gpt2_chars_per_token"]:
            line += f" (GPT-2 {t['gpt2_chars_per_token']:.3f}, x{t['ratio_vs_gpt2']:.2f})"
        kw = stats["heldout"]["ours"]["keywords_not_single_token"]["after_space"]
        line += f"; keywords not one token after a space: {', '.join(kw) if kw else 'none'}"
    click.echo(f"{line} -> {out}")
    for note in (stats.get("gpt2_note"), stats.get("heldout_note")):
        if note:
            click.echo(f"note: {note}")


@click.command("pack")
@click.argument("run_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--input", "inputs", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="JSONL shards or a directory of them (default: RUN/dedup).")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), help="Shard directory (default: RUN/shards).")
@click.option("--tokenizer", type=click.Path(exists=True, path_type=Path), default=None,
              help="Tokenizer directory (default: pack.tokenizer, else RUN/tokenizer).")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="YAML preset (its `pack:` section).")
@click.option("--workers", type=int, default=1, show_default=True, help="Tokenizing worker processes.")
@click.option("--seq-length", type=int, default=None, help="Override pack.seq_length.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
def pack_command(run_dir: Path | None, inputs: tuple[Path, ...], output: Path | None, tokenizer: Path | None,
                 config: Path | None, workers: int, seq_length: int | None, dry_run: bool) -> None:
    """Tokenize the deduplicated shards and pack them into constant-length train/valid token shards."""
    from preprocessing.config import to_dict
    from preprocessing.pack import PackConfig, pack, tokenizer_json
    from preprocessing.tokenizer import resolve_inputs

    ins, out = _paths(run_dir, inputs, output, "dedup", "shards")
    cfg = _load(PackConfig, config, "pack", {"seq_length": seq_length, "tokenizer": str(tokenizer) if tokenizer else None})
    tok = Path(cfg.tokenizer) if cfg.tokenizer else (run_dir / "tokenizer" if run_dir else None)
    if tok is None:
        raise click.UsageError("give --tokenizer (or pack.tokenizer in the config, or RUN)")
    cfg_dict = to_dict(cfg)
    if dry_run:
        click.echo(json.dumps({"pack": cfg_dict, "input": [str(p) for p in ins], "tokenizer": str(tok),
                               "output": str(out), "workers": workers}, indent=2))
        return
    try:
        files = resolve_inputs(ins)
        tok_files = [tokenizer_json(tok)]
        stats = _run_stage(run_dir, "pack", cfg_dict, files + tok_files, [out / "train", out / "valid"],
                           lambda: pack(files, tok, out, cfg, workers=workers))
    except ValueError as exc:
        _fail(exc)
    if stats is None:
        return
    sp, th = stats["splits"], stats["throughput"]
    click.echo(
        f"pack: {stats['totals']['files']} files, {stats['totals']['tokens']} tokens -> "
        f"train {sp['train']['samples']} samples, valid {sp['valid']['samples']} samples of {stats['seq_length']} "
        f"(dropped tails {stats['totals']['dropped_tail_tokens']} tokens); {th['mb_per_s']} MB/s -> {out}"
    )
    for warning in stats["warnings"]:
        click.echo(f"warning: {warning}")
