"""Fixtures for the trainer tests: a real packed corpus built from the local Python standard library."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import TrainConfig


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine two threads wait on each other (measured 10x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """RUN/tokenizer (byte-level BPE, 2000 tokens) + RUN/shards/{train,valid} of 128-token samples."""
    from training.demo_data import build_demo_run

    return build_demo_run(tmp_path_factory.mktemp("demo_run"), seq_length=128, vocab_size=2000,
                          train_bytes=1 << 20, valid_bytes=128 << 10)


def tiny_config(run: Path, output_dir: Path, **overrides) -> TrainConfig:
    """A model small enough to take several steps per second on one CPU core."""
    values = dict(data_dir=str(run / "shards"), tokenizer_dir=str(run / "tokenizer"), output_dir=str(output_dir),
                  n_layer=2, n_head=2, n_embd=64, seq_length=128, global_batch_size=8, micro_batch_size=4,
                  lr=3e-3, min_lr=3e-4, warmup_steps=3, max_steps=12, eval_every=0, eval_batches=2,
                  save_every=0, keep_last=3, log_every=1, num_workers=0, trackers=[], progress_bar=False,
                  export=False)
    values.update(overrides)
    return TrainConfig(**values)
