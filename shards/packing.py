"""How a token stream becomes fixed-length samples in a shard (the ConstantLengthDataset packing):
shared by the pack stage and the trainer's demo data."""

from __future__ import annotations

from typing import Any

import numpy as np


class SamplePacker:
    """Cuts one split's token stream into ``seq_length`` samples for a ShardWriter; keeps the short tail."""

    def __init__(self, writer: Any, seq_length: int, flush_tokens: int = 1 << 20) -> None:
        self.writer = writer
        self.seq_length = seq_length
        self.flush_tokens = max(flush_tokens, seq_length)
        self.pending: list[np.ndarray] = []
        self.pending_tokens = 0
        self.samples = 0

    def add(self, ids: np.ndarray) -> None:
        if len(ids):
            self.pending.append(ids)
            self.pending_tokens += len(ids)
            if self.pending_tokens >= self.flush_tokens:
                self._flush()

    def _flush(self) -> None:
        buf = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        n = len(buf) // self.seq_length
        if n:
            self.writer.write_many(buf[: n * self.seq_length].reshape(n, self.seq_length))
            self.samples += n
        rest = buf[n * self.seq_length :]
        self.pending = [rest] if len(rest) else []
        self.pending_tokens = len(rest)

    def finish(self) -> int:
        """Write what is left in whole samples; returns the dropped tail (tokens), < seq_length."""
        if self.pending:
            self._flush()
        return self.pending_tokens
