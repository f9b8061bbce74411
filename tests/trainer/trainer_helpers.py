"""Helpers shared by the trainer tests."""

from __future__ import annotations

from pathlib import Path

from training.config import TrainConfig


def tiny_config(run: Path, output_dir: Path, **overrides) -> TrainConfig:
    """A model small enough to take several steps per second on one CPU core."""
    values = dict(data_dir=str(run / "shards"), tokenizer_dir=str(run / "tokenizer"), output_dir=str(output_dir),
                  n_layer=2, n_head=2, n_embd=64, seq_length=128, global_batch_size=8, micro_batch_size=4,
                  lr=3e-3, min_lr=3e-4, warmup_steps=3, max_steps=12, eval_every=0, eval_batches=2,
                  save_every=0, keep_last=3, log_every=1, num_workers=0, trackers=[], progress_bar=False,
                  export=False)
    values.update(overrides)
    return TrainConfig(**values)
