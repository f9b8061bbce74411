"""Writers of the run's output shards."""

from preprocessing.writers.jsonl import ShardedJsonlWriter

__all__ = ["ShardedJsonlWriter"]
