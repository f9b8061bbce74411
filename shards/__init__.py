"""Token shards: zstd-block compressed fixed-length samples (writer, reader) and the ShardDataset over them."""

from shards.dataset import ShardDataset
from shards.format import FORMAT_VERSION, ShardError, tokenizer_hash
from shards.reader import ShardReader
from shards.writer import ShardWriter

__all__ = ["FORMAT_VERSION", "ShardDataset", "ShardError", "ShardReader", "ShardWriter", "tokenizer_hash"]
