"""Fixtures for the trainer tests: a real packed corpus built from the local Python standard library."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _trainer_one_torch_thread(one_torch_thread):
    """Every trainer test runs with one intra-op thread (tests/conftest.py's ``one_torch_thread``)."""


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """RUN/tokenizer (byte-level BPE, 2000 tokens) + RUN/shards/{train,valid} of 128-token samples."""
    from training.demo_data import build_demo_run

    return build_demo_run(tmp_path_factory.mktemp("demo_run"), seq_length=128, vocab_size=2000,
                          train_bytes=1 << 20, valid_bytes=128 << 10)
