"""Train and validation loaders over the packed token shards, each rank reading its own slice."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from shards import ShardDataset, ShardError, ShardReader
from training.config import TrainConfig


def local_inputs(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with a data_dir and tokenizer_dir given by URL (s3://, gs://, hf://, memory://)
    replaced by checked local copies under data_cache_dir (default output_dir/data-cache), made
    once (:mod:`shards.remote`); local paths are returned as they are. The reader needs local
    random access, as mosaicml-streaming's does."""
    import dataclasses

    from shards.remote import cache_dir_for, fetch_dir, fetch_split, is_url

    if not is_url(cfg.data_dir) and not is_url(cfg.tokenizer_dir):
        return cfg
    cache = Path(cfg.data_cache_dir or Path(cfg.output_dir) / "data-cache")
    changes: dict[str, str] = {}
    if is_url(cfg.data_dir):
        local = cache_dir_for(cfg.data_dir, cache)
        for split in ("train", "valid") if cfg.eval_batches else ("train",):
            fetch_split(f"{cfg.data_dir.rstrip('/')}/{split}", local / split)
        changes["data_dir"] = str(local)
    if is_url(cfg.tokenizer_dir):
        changes["tokenizer_dir"] = str(fetch_dir(cfg.tokenizer_dir, cache_dir_for(cfg.tokenizer_dir, cache)))
    return dataclasses.replace(cfg, **changes)


def check_shards(cfg: TrainConfig, expected: str) -> None:
    """Fail early, with a message naming the directory, when the shards cannot feed this run
    (``expected``: the tokenizer's hash, :func:`shards.tokenizer_hash`).

    valid/ is needed only when the run evaluates (eval_batches > 0).
    """
    splits = (cfg.train_dir, cfg.valid_dir) if cfg.eval_batches else (cfg.train_dir,)
    for split_dir in splits:
        if not (split_dir / "index.json").is_file():
            raise ValueError(f"{split_dir}: no index.json; data_dir must hold train/ and valid/ written by "
                             f"`cp-preprocess pack` (set data_dir=RUN/shards)")
    for split_dir in splits:
        # ShardReader raises ShardError (a ValueError) naming the file on a tokenizer or length mismatch.
        try:
            ShardReader(split_dir, expected_tokenizer_hash=expected, expected_seq_length=cfg.seq_length)
        except ShardError as exc:
            if split_dir == cfg.valid_dir and "empty" in str(exc):
                raise ShardError(f"{exc}; or set eval_batches=0 to train without evaluation") from None
            raise


def train_dataset(cfg: TrainConfig, rank: int, world_size: int, tok_hash: str) -> ShardDataset:
    """The shuffled, endless training stream; this rank's contiguous slice of every global batch."""
    return ShardDataset(cfg.train_dir, global_batch_size=cfg.global_batch_size,
                        micro_batch_size=cfg.micro_batch_size, rank=rank, world_size=world_size,
                        seed=cfg.seed, shuffle=True, expected_tokenizer_hash=tok_hash,
                        expected_seq_length=cfg.seq_length)


def valid_dataset(cfg: TrainConfig, rank: int, world_size: int) -> ShardDataset:
    """valid/ in file order (unshuffled, from position 0), this rank's slice of every global batch:
    the same samples on every evaluation and for every run and world size, so validation losses
    are comparable across runs. Opened once per run."""
    return ShardDataset(cfg.valid_dir, global_batch_size=cfg.global_batch_size,
                        micro_batch_size=cfg.micro_batch_size, rank=rank, world_size=world_size,
                        seed=cfg.seed, shuffle=False, expected_seq_length=cfg.seq_length)


def make_loader(dataset: ShardDataset, cfg: TrainConfig, pin_memory: bool) -> DataLoader:
    """A DataLoader over the rank's slice; workers split its micro batches round-robin, order preserved.

    It gets its own generator: a DataLoader otherwise draws its workers' base seed from the global torch
    RNG, which would shift the dropout stream whenever a loader is created (on resume, at each evaluation).
    """
    return DataLoader(dataset, batch_size=cfg.micro_batch_size, num_workers=cfg.num_workers,
                      pin_memory=pin_memory, prefetch_factor=4 if cfg.num_workers else None,
                      generator=torch.Generator().manual_seed(cfg.seed))


def valid_batches(dataset: ShardDataset, cfg: TrainConfig, world_size: int, num_batches: int,
                  pin_memory: bool) -> Iterator[torch.Tensor]:
    """This rank's micro batches of the first `num_batches` global batches of valid/ (:func:`valid_dataset`)."""
    micro_per_rank = num_batches * cfg.global_batch_size // (world_size * cfg.micro_batch_size)
    yield from itertools.islice(make_loader(dataset, cfg, pin_memory), micro_per_rank)


def num_valid_batches(cfg: TrainConfig, dataset: ShardDataset) -> int:
    """Validation batches actually used: eval_batches, capped so no sample is used twice."""
    return min(cfg.eval_batches, dataset.samples_per_epoch // cfg.global_batch_size)
