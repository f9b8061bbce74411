"""Contracts shared by preprocessing/, shards/ and training/: config loading, atomic file publishing,
the tokenizer's special tokens. Nothing here imports any of the three."""
