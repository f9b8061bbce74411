"""Pack tokenized files into constant-length samples (the seed's ConstantLengthDataset, offline) as token shards."""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.tokens import EOS_TOKEN
from preprocessing.executors import Executor
from shards.packing import SamplePacker
from preprocessing.hashing import keyed_uniform
from common.io import is_dir, is_file, is_url, join, open_file, read_text
from preprocessing.record import CodeFile
from preprocessing.runner import ExecutorSpec, Stage, run_stage
from preprocessing.stats import StageStats
from preprocessing.stages.tokenizer import (
    iter_records,
    pretokenizer_of,
    resolve_inputs,
    safe_chunks,
)

SPLITS = ("train", "valid")
VALID_SALT = "pack_valid_split"


@dataclass
class PackConfig:
    """Settings of `cp-preprocess pack`."""

    seq_length: int = 1024
    """Tokens per sample (the model's context length)."""
    valid_fraction: float = 0.005
    """Fraction of repositories (by hash of repo_name) that go to the valid split; no repository straddles the split."""
    seed: int = 0
    """Seed of the train/valid split."""
    add_eos: bool = True
    """Append <|endoftext|> after every file, as the seed's ConstantLengthDataset does."""
    eos_token: str = EOS_TOKEN
    """The token appended after every file; must be in the tokenizer's vocabulary."""
    tokenizer: str | None = None
    """Tokenizer directory (or tokenizer.json); None = RUN/tokenizer."""
    max_shard_bytes: int = 64 << 20
    """A token shard rolls over at this many (compressed) bytes."""
    batch_chars: int = 1 << 20
    """Characters of content per worker task (one HF tokenizers batch call): bounds memory per worker."""
    max_file_bytes: int = 1 << 30
    """Records larger than this are rejected as too_large (the stream stage already applies its own limit;
    long files are packed in pieces, so this only bounds the memory of one record)."""
    strict: bool = False
    """Stop with an error naming the file at a truncated or corrupt input shard, instead of a warning
    (the outputs do not depend on it: not part of the config identity)."""
    chunk_chars: int = 256 << 10
    """Files longer than this are encoded in pieces of at most this size, cut where the ids stay exact."""

    def __post_init__(self) -> None:
        if self.seq_length < 2:
            raise ValueError(f"seq_length={self.seq_length} must be >= 2 (a causal LM predicts token t+1 from t)")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction={self.valid_fraction} must be in [0, 1): the train split cannot be empty")
        if self.batch_chars < 1 or self.chunk_chars < 64:
            raise ValueError(f"batch_chars={self.batch_chars} must be >= 1 and chunk_chars={self.chunk_chars} >= 64")


def split_of(record: CodeFile, cfg: PackConfig) -> str:
    """'valid' or 'train', a pure function of repo_name and the seed."""
    u = keyed_uniform(record.repo_name.encode("utf-8", "surrogatepass"), VALID_SALT, cfg.seed)
    return "valid" if u < cfg.valid_fraction else "train"


@dataclass
class EncodeTask:
    """Pieces of files for one worker, in input order: their split, and whether a piece ends its file."""

    tokenizer_path: str
    eos_id: int
    add_eos: bool
    pieces: list[str]
    splits: list[str]
    ends: list[bool]


@dataclass
class EncodedBatch:
    """The token stream of each split for one task (EOS already appended after each file's last piece)."""

    ids: dict[str, np.ndarray]
    files: dict[str, int]
    tokens: dict[str, int]


@functools.lru_cache(maxsize=4)
def _load_tokenizer(path: str) -> Any:
    from tokenizers import Tokenizer

    if is_url(path):  # the worker reads the tokenizer itself, through fsspec
        return Tokenizer.from_str(read_text(path))
    return Tokenizer.from_file(path)


def encode_task(task: EncodeTask) -> EncodedBatch:
    """Tokenize one task's pieces in one HF tokenizers batch call (runs in a worker process)."""
    tok = _load_tokenizer(task.tokenizer_path)
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)  # no offsets: faster, less memory
    eos = np.asarray([task.eos_id], dtype=np.uint32)
    out: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    files = dict.fromkeys(SPLITS, 0)
    tokens = dict.fromkeys(SPLITS, 0)
    for split, end, enc in zip(task.splits, task.ends, encode(task.pieces, add_special_tokens=False)):
        ids = np.asarray(enc.ids, dtype=np.uint32)
        tokens[split] += len(ids)
        out[split].append(ids)
        if end:
            files[split] += 1
            if task.add_eos:
                out[split].append(eos)
    ids = {s: (np.concatenate(a) if a else np.zeros(0, np.uint32)) for s, a in out.items()}
    return EncodedBatch(ids=ids, files=files, tokens=tokens)


@dataclass
class _SplitCounts:
    files: int = 0
    bytes: int = 0
    tokens: int = 0
    eos_tokens: int = 0
    inexact_cuts: int = 0


def _tasks(
    files: Sequence[Path], cfg: PackConfig, tokenizer_path: str, eos_id: int, stats: StageStats,
    counts: dict[str, _SplitCounts], warnings: list[str], pretokenizer: str | None = "gpt2",
) -> Iterator[EncodeTask]:
    """Read records, cut long files into exact pieces (so one huge file spreads over all workers), batch them.

    ``pretokenizer`` (the tokenizer's, :func:`preprocessing.stages.tokenizer.pretokenizer_of`) says where cuts are exact.
    """
    pieces: list[str] = []
    splits: list[str] = []
    ends: list[bool] = []
    size = 0
    for record in iter_records(files, stats, cfg.max_file_bytes, warnings, cfg.strict):
        nbytes = len(record.content.encode("utf-8", "surrogatepass"))
        if not record.content:
            stats.drop("empty_content", nbytes)
            continue
        stats.keep(nbytes)
        split = split_of(record, cfg)
        counts[split].bytes += nbytes
        chunks, inexact = safe_chunks(record.content, cfg.chunk_chars, pretokenizer)
        counts[split].inexact_cuts += inexact
        for i, chunk in enumerate(chunks):
            pieces.append(chunk)
            splits.append(split)
            ends.append(i == len(chunks) - 1)
            size += len(chunk)
            if size >= cfg.batch_chars:
                yield EncodeTask(tokenizer_path, eos_id, cfg.add_eos, pieces, splits, ends)
                pieces, splits, ends, size = [], [], [], 0
    if pieces:
        yield EncodeTask(tokenizer_path, eos_id, cfg.add_eos, pieces, splits, ends)


@contextlib.contextmanager
def _tokenizers_threads(enabled: bool) -> Iterator[None]:
    """With worker processes, each encodes on one thread (HF tokenizers would start a thread pool per process)."""
    if enabled or "TOKENIZERS_PARALLELISM" in os.environ:
        yield
        return
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        os.environ.pop("TOKENIZERS_PARALLELISM", None)


def tokenizer_json(tokenizer: str | os.PathLike) -> Path | str:
    """The tokenizer.json of a tokenizer directory (or the file itself), a path or a URL; ValueError if missing."""
    from common.tokens import find_tokenizer_json

    if is_url(tokenizer):
        url = str(tokenizer)
        path = join(url, "tokenizer.json") if is_dir(url) else url
        if not is_file(path):
            raise ValueError(f"tokenizer {tokenizer} has no tokenizer.json: run `cp-preprocess tokenizer` first")
        return path
    path = find_tokenizer_json(tokenizer)
    if path is None:
        raise ValueError(f"tokenizer {tokenizer} has no tokenizer.json: run `cp-preprocess tokenizer` first")
    return path


def pack(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    tokenizer: str | os.PathLike,
    out_dir: str | os.PathLike,
    cfg: PackConfig | None = None,
    executor: ExecutorSpec = None,
) -> dict[str, Any]:
    """Tokenize ``inputs``, join files with EOS, cut ``seq_length`` samples into ``out_dir/{train,valid}`` shards.

    Deterministic for any executor and workers. ``out_dir`` appears complete or not at all (built under a
    temporary name). Returns the stats dict, also written to ``out_dir/stats.json``; no run manifest.
    """
    return run_stage(PackStage(cfg or PackConfig(), inputs=inputs, out_dir=out_dir, tokenizer=tokenizer), None, executor)


def _url_hash(url: str) -> str:
    """shards.tokenizer_hash of a tokenizer.json named by URL: "sha256:<hex>" of its bytes."""
    import hashlib

    with open_file(url) as f:
        return "sha256:" + hashlib.sha256(f.read()).hexdigest()


def _pack_into(files: Sequence[Path], tok_path: Path, tmp: Path, cfg: PackConfig, executor: Executor) -> dict[str, Any]:
    """The map (:func:`encode_task`) on ``executor``, the packing and shard writing (reduce) here, into ``tmp``."""
    from shards import ShardWriter, tokenizer_hash

    workers = executor.workers
    tok = _load_tokenizer(str(tok_path))
    eos_id = tok.token_to_id(cfg.eos_token)
    if eos_id is None:
        raise ValueError(f"eos_token {cfg.eos_token!r} is not in the vocabulary of {tok_path}: set pack.eos_token")
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    thash = tokenizer_hash(str(tok_path)) if not is_url(tok_path) else _url_hash(str(tok_path))

    started = time.perf_counter()
    stats = StageStats("pack")
    counts = {s: _SplitCounts() for s in SPLITS}
    extra_index = {"eos_id": eos_id, "add_eos": cfg.add_eos}
    warnings: list[str] = []
    with contextlib.ExitStack() as stack:
        writers = {
            s: stack.enter_context(
                ShardWriter(
                    tmp / s, seq_length=cfg.seq_length, vocab_size=vocab_size, tokenizer_hash=thash,
                    max_shard_bytes=cfg.max_shard_bytes, extra_index={**extra_index, "split": s},
                )
            )
            for s in SPLITS
        }
        packers = {s: SamplePacker(writers[s], cfg.seq_length) for s in SPLITS}
        stack.enter_context(_tokenizers_threads(workers == 1))
        tasks = _tasks(files, cfg, str(tok_path), eos_id, stats, counts, warnings, pretokenizer_of(tok))
        for batch in executor.map(_encode, tasks, None):
            for s in SPLITS:
                counts[s].files += batch.files[s]
                counts[s].tokens += batch.tokens[s]
                counts[s].eos_tokens += batch.files[s] if cfg.add_eos else 0
                packers[s].add(batch.ids[s])
        tails = {s: packers[s].finish() for s in SPLITS}
        if stats.kept == 0:
            where = ", ".join(str(f) for f in files[:3]) + (" ..." if len(files) > 3 else "")
            raise ValueError(
                f"no content to pack in {where}: {stats.records_in} records read, "
                f"dropped {dict(stats.dropped)}, rejected {dict(stats.rejected)}"
            )
        if packers["train"].samples == 0:
            raise ValueError(
                f"the train split of {files[0].parent} has {counts['train'].tokens + counts['train'].eos_tokens} tokens, "
                f"fewer than seq_length={cfg.seq_length}: give more input or lower pack.seq_length"
            )
    wall = time.perf_counter() - started

    splits: dict[str, Any] = {}
    for s in SPLITS:
        c, p = counts[s], packers[s]
        stream = c.tokens + c.eos_tokens
        splits[s] = {
            "files": c.files,
            "bytes": c.bytes,
            "tokens": c.tokens,
            "eos_tokens": c.eos_tokens,
            "samples": p.samples,
            "packed_tokens": p.samples * cfg.seq_length,
            "dropped_tail_tokens": tails[s],
            "packing_efficiency": round(p.samples * cfg.seq_length / stream, 6) if stream else None,
            "shards": writers[s].summary,
        }
    inexact = sum(c.inexact_cuts for c in counts.values())
    if cfg.valid_fraction > 0 and splits["valid"]["samples"] == 0:
        warnings.append(
            f"the valid split is empty ({splits['valid']['files']} files, {splits['valid']['tokens']} tokens): "
            "raise pack.valid_fraction or give more repositories"
        )
    if inexact:
        warnings.append(f"{inexact} cuts of very long lines were not at an exact place (ids next to them may differ)")
    total_tokens = sum(splits[s]["tokens"] + splits[s]["eos_tokens"] for s in SPLITS)
    result: dict[str, Any] = {
        "format_version": 1,
        "stage": "pack",
        "stages": {"pack": stats.to_dict()},
        "totals": {
            "files": stats.kept,
            "tokens": total_tokens,
            "samples": sum(splits[s]["samples"] for s in SPLITS),
            "dropped_tail_tokens": sum(tails.values()),
            "inexact_cuts": inexact,
        },
        "splits": splits,
        "seq_length": cfg.seq_length,
        "vocab_size": vocab_size,
        "tokenizer_hash": thash,
        "throughput": {
            "workers": workers,
            "tokens_per_s": round(total_tokens / wall, 1) if wall else None,
            "mb_per_s": round(stats.bytes_in / 1e6 / wall, 3) if wall else None,
            "mb_per_s_per_worker": round(stats.bytes_in / 1e6 / wall / workers, 3) if wall else None,
        },
        "warnings": warnings,
        "config": asdict(cfg),
        "wall_time_s": round(wall, 3),
    }
    return result


def _encode(_context: None, task: EncodeTask) -> EncodedBatch:
    return encode_task(task)  # an EncodeTask carries its whole context (the tokenizer's path)


class PackStage(Stage):
    """`pack` for the runner: units are EncodeTasks (pieces of files, cut in the driver), the map
    tokenizes them, the reduce cuts samples and writes the shards in input order."""

    name = "pack"

    def __init__(self, cfg: PackConfig, run_dir: str | os.PathLike | None = None,
                 inputs: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
                 out_dir: str | os.PathLike | None = None, tokenizer: str | os.PathLike | None = None):
        tokenizer = tokenizer if tokenizer is not None else cfg.tokenizer
        if run_dir is None and (not inputs or out_dir is None or tokenizer is None):
            raise ValueError("give a run directory, or inputs, an output directory and pack.tokenizer")
        self.cfg = cfg
        self.files = resolve_inputs(inputs if inputs else join(run_dir, "dedup"))  # type: ignore[arg-type]
        self.out_dir = join(out_dir if out_dir is not None else join(run_dir, "shards"))  # type: ignore[arg-type]
        self.tokenizer = tokenizer_json(tokenizer if tokenizer is not None else join(run_dir, "tokenizer"))  # type: ignore[arg-type]

    def identity(self) -> dict[str, Any]:
        from common.config import to_dict

        return {k: v for k, v in to_dict(self.cfg).items() if k != "strict"}  # strict changes no output

    def fingerprint(self) -> str:
        """The inputs and the tokenizer: a retrained tokenizer re-packs."""
        from preprocessing.runner.manifest import fingerprint_files

        return fingerprint_files([*self.files, self.tokenizer])

    def worker_inputs(self) -> list[str]:
        return [str(self.tokenizer)]  # each worker loads the tokenizer itself

    def run(self, executor: Executor, out: Path) -> dict[str, Any]:
        return _pack_into(self.files, self.tokenizer, out, self.cfg, executor)

    def outputs(self, stats: dict[str, Any]) -> list[str]:
        return list(SPLITS)


def run_pack(
    cfg: PackConfig,
    run_dir: str | os.PathLike | None,
    executor: ExecutorSpec = None,
    inputs: Sequence[str | os.PathLike] | None = None,
    out_dir: str | os.PathLike | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """The `pack` stage: RUN/dedup (or ``inputs``) + the tokenizer (``cfg.tokenizer``, else RUN/tokenizer) ->
    RUN/shards/{train,valid} (or ``out_dir``), recorded in RUN/manifest.json (lifecycle: :func:`run_stage`).

    The input fingerprint covers the tokenizer, so a retrained tokenizer re-packs; the executor is not
    part of the config identity (outputs do not depend on it).
    """
    stage = PackStage(cfg, run_dir, list(inputs) if inputs else None, out_dir)
    return run_stage(stage, run_dir, executor, force)
