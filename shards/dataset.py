"""ShardDataset: a resumable, rank- and worker-sliced IterableDataset over a shard directory."""

from __future__ import annotations

import operator
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from shards.reader import ShardReader


class ShardDataset(IterableDataset):
    """Yields LongTensor samples of shape (seq_length,) in the global order, sliced for one rank.

    The global stream: epoch e is a permutation of all samples (across shards), a pure function of
    (seed, e) - numpy's PCG64 seeded with (seed, e) - or the identity when shuffle=False; epochs are
    concatenated, global position p = e * samples_per_epoch + k. Step s consumes positions
    [c0 + s*G, c0 + (s+1)*G) where c0 is the loaded consumed_samples; rank r owns the contiguous slice
    r*G/world .. (r+1)*G/world of it, served as micro batches of m samples; DataLoader worker w of W
    serves the rank's micro batches t with t % W == w, so DataLoader's in-order round robin rebuilds
    the rank's sequence. Use ``DataLoader(ds, batch_size=micro_batch_size, num_workers=W)`` (keep its
    default in_order=True). Every new iterator starts again at consumed_samples.

    The stream is infinite unless num_epochs is given; then it stops after the last whole global batch
    (the incomplete tail of the last epoch is dropped, so every rank sees the same number of steps).

    Memory per process: the current epoch's permutation, 8 bytes per sample (80 MB for 10M samples).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        global_batch_size: int,
        micro_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        verify: bool = False,
        expected_tokenizer_hash: str | None = None,
        expected_seq_length: int | None = None,
        num_epochs: int | None = None,
    ) -> None:
        super().__init__()
        global_batch_size, micro_batch_size, rank, world_size = map(
            operator.index, (global_batch_size, micro_batch_size, rank, world_size)
        )
        if micro_batch_size <= 0 or global_batch_size <= 0 or world_size <= 0:
            raise ValueError("global_batch_size, micro_batch_size and world_size must be > 0")
        if global_batch_size % (world_size * micro_batch_size):
            raise ValueError(
                f"global_batch_size {global_batch_size} must be divisible by world_size * micro_batch_size = "
                f"{world_size} * {micro_batch_size}, so every rank gets whole micro batches of every step; "
                "change the batch sizes or gradient accumulation"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        seed = operator.index(seed)
        if seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if num_epochs is not None and num_epochs <= 0:
            raise ValueError(f"num_epochs must be > 0 or None (infinite), got {num_epochs}")
        self.reader = ShardReader(
            path,
            verify=verify,
            expected_tokenizer_hash=expected_tokenizer_hash,
            expected_seq_length=expected_seq_length,
        )
        self.global_batch_size = global_batch_size
        self.micro_batch_size = micro_batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.shuffle = shuffle
        self.num_epochs = num_epochs
        self.samples_per_epoch = self.reader.num_samples
        self.seq_length = self.reader.seq_length
        self.consumed_samples = 0
        if num_epochs is not None and num_epochs * self.samples_per_epoch < global_batch_size:
            raise ValueError(
                f"{num_epochs} epoch(s) of {self.samples_per_epoch} samples hold no whole global batch of "
                f"{global_batch_size}; lower global_batch_size or raise num_epochs"
            )

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self, consumed_samples: int | None = None) -> dict[str, int]:
        """{seed, epoch, consumed_samples}. The trainer passes consumed_samples = steps done * G.

        The dataset cannot see what DataLoader workers yielded, so without the argument this returns
        the position the next iterator starts from (0 or what load_state_dict set).
        """
        c = self.consumed_samples if consumed_samples is None else int(consumed_samples)
        if c < 0:
            raise ValueError(f"consumed_samples must be >= 0, got {c}")
        return {"seed": self.seed, "epoch": c // self.samples_per_epoch, "consumed_samples": c}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at global position state["consumed_samples"] with state["seed"]; call before iterating.

        "epoch" is informational: it is always consumed_samples // samples_per_epoch, so a state whose
        consumed_samples was updated without its epoch ({**ds.state_dict(), "consumed_samples": c}) resumes
        correctly.
        """
        missing = {"seed", "consumed_samples"} - state.keys()
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}; pass what state_dict() returned")
        c = operator.index(state["consumed_samples"])
        if c < 0:
            raise ValueError(f"consumed_samples must be >= 0, got {c}")
        seed = operator.index(state["seed"])
        if seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed}")
        self.seed = seed
        self.consumed_samples = c

    # -- order -----------------------------------------------------------------------------------
    def epoch_order(self, epoch: int) -> np.ndarray:
        """The sample indices of epoch `epoch` in stream order (a pure function of seed and epoch)."""
        n = self.samples_per_epoch
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        return np.random.Generator(np.random.PCG64([self.seed, epoch])).permutation(n)

    def _rank_micro_batches(self) -> Iterator[np.ndarray]:
        """This rank's micro batches as arrays of global positions, from consumed_samples on."""
        G, m = self.global_batch_size, self.micro_batch_size
        per_rank = G // self.world_size
        c0 = self.consumed_samples
        end = None if self.num_epochs is None else self.num_epochs * self.samples_per_epoch
        step = 0
        while True:
            first = c0 + step * G
            if end is not None and first + G > end:
                return
            base = first + self.rank * per_rank
            for j in range(per_rank // m):
                yield np.arange(base + j * m, base + (j + 1) * m, dtype=np.int64)
            step += 1

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = get_worker_info()
        num_workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        n = self.samples_per_epoch
        orders: dict[int, np.ndarray] = {}
        for t, positions in enumerate(self._rank_micro_batches()):
            if t % num_workers != worker:
                continue
            for p in positions.tolist():
                epoch, k = divmod(p, n)
                order = orders.get(epoch)
                if order is None:
                    orders = {epoch: self.epoch_order(epoch)}  # keep one epoch's permutation in memory
                    order = orders[epoch]
                yield torch.from_numpy(self.reader[int(order[k])].astype(np.int64))
