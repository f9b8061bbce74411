"""Token shards: zstd-block compressed fixed-length samples (writer, reader) and the ShardDataset over them."""

from typing import Any

from shards.format import FORMAT_VERSION, ShardError, tokenizer_hash
from shards.reader import ShardReader
from shards.writer import ShardWriter

__all__ = ["FORMAT_VERSION", "ShardDataset", "ShardError", "ShardReader", "ShardWriter", "tokenizer_hash"]


def __getattr__(name: str) -> Any:
    # ShardDataset needs torch (~200 MB per process); the writer and reader (used by `pack`) do not.
    if name == "ShardDataset":
        from shards.dataset import ShardDataset

        return ShardDataset
    raise AttributeError(f"module 'shards' has no attribute {name!r}")
