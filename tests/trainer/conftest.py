"""Fixtures for the trainer tests: a real packed corpus built from the local Python standard library."""

from __future__ import annotations

from pathlib import Path

import pytest


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
