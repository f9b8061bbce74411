"""The token-shard format: constants, file names, the index.json schema and its validation."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from common.tokens import find_tokenizer_json

FORMAT_NAME = "codeparrot-token-shards"
FORMAT_VERSION = 1
INDEX_NAME = "index.json"
SHARD_PATTERN = "shard.{:05d}.zst"
CONTENT_HASH = "xxh3_128"

# 16 KiB of raw tokens per zstd block (8 samples of 1024 uint16 tokens): measured in docs/shards.md,
# 97% of the compression ratio of 32 KiB blocks for half the random-access cost of one sample.
DEFAULT_BLOCK_BYTES = 16 << 10
DEFAULT_ZSTD_LEVEL = 3
DEFAULT_MAX_SHARD_BYTES = 64 << 20

# Keys the writer owns; extra_index may not overwrite them.
RESERVED_KEYS = frozenset(
    {
        "format",
        "version",
        "dtype",
        "seq_length",
        "vocab_size",
        "tokenizer_hash",
        "compression",
        "samples_per_block",
        "content_hash",
        "num_samples",
        "num_tokens",
        "raw_bytes",
        "compressed_bytes",
        "shards",
    }
)


class ShardError(ValueError):
    """A shard directory that cannot be read as it is: the message names the file and what is wrong."""


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """uint16 while every id fits comfortably, uint32 from a 65536-token vocabulary up."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be > 0, got {vocab_size}")
    if vocab_size >= 1 << 32:
        raise ValueError(f"vocab_size must be < 2**32 because token ids are stored as uint32, got {vocab_size}")
    return np.dtype("<u2") if vocab_size < 1 << 16 else np.dtype("<u4")


def dtype_name(dtype: np.dtype) -> str:
    return {np.dtype("<u2"): "uint16", np.dtype("<u4"): "uint32"}[np.dtype(dtype)]


def parse_dtype(name: str, where: Path) -> np.dtype:
    if name == "uint16":
        return np.dtype("<u2")
    if name == "uint32":
        return np.dtype("<u4")
    raise ShardError(f"{where}: unsupported dtype {name!r}; this reader reads 'uint16' and 'uint32'")


def shard_name(i: int) -> str:
    return SHARD_PATTERN.format(i)


def content_hash(data: bytes | memoryview) -> str:
    """Hash of a shard's compressed bytes, as written in the index ("xxh3_128:<hex>")."""
    return f"{CONTENT_HASH}:{xxhash.xxh3_128_hexdigest(data)}"


def tokenizer_hash(path: str | os.PathLike) -> str:
    """"sha256:<hex>" of a tokenizer's tokenizer.json bytes; `path` is the file or the directory holding it."""
    p = find_tokenizer_json(path)
    if p is None:
        raise ValueError(
            f"{path}: no tokenizer.json there; pass a tokenizer directory saved in the HF format "
            "(tokenizer.save(...) / save_pretrained) or the path of its tokenizer.json"
        )
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def _require(index: dict, key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    if key not in index:
        raise ShardError(f"{where}: missing key {key!r}; the index was not written by ShardWriter")
    value = index[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ShardError(f"{where}: key {key!r} has the wrong type ({type(value).__name__})")
    return value


def validate_index(index: Any, where: Path) -> None:
    """Check the version first, then that the index is self-consistent (counts, sizes, block tables).

    Raises ShardError naming `where` (the index.json path). File sizes and hashes are the reader's job.
    """
    if not isinstance(index, dict):
        raise ShardError(f"{where}: not a JSON object; not a shard index")
    if index.get("format") != FORMAT_NAME:
        raise ShardError(f"{where}: format is {index.get('format')!r}, expected {FORMAT_NAME!r}")
    version = index.get("version")
    if version != FORMAT_VERSION:
        raise ShardError(
            f"{where}: unsupported format version {version!r}; this reader reads version {FORMAT_VERSION} "
            "(re-pack the shards with this version of the toolkit)"
        )
    dtype = parse_dtype(_require(index, "dtype", str, where), where)
    seq_length = _require(index, "seq_length", int, where)
    vocab_size = _require(index, "vocab_size", int, where)
    _require(index, "tokenizer_hash", str, where)
    spb = _require(index, "samples_per_block", int, where)
    compression = _require(index, "compression", dict, where)
    if compression.get("codec") != "zstd":
        raise ShardError(f"{where}: unsupported compression {compression!r}; this reader reads zstd")
    if seq_length <= 0 or spb <= 0:
        raise ShardError(f"{where}: seq_length and samples_per_block must be > 0")
    if dtype != dtype_for_vocab(vocab_size):
        raise ShardError(f"{where}: dtype {dtype_name(dtype)} does not match vocab_size {vocab_size}")
    shards = _require(index, "shards", list, where)
    totals = {"num_samples": 0, "num_tokens": 0, "raw_bytes": 0, "compressed_bytes": 0}
    for i, shard in enumerate(shards):
        if not isinstance(shard, dict):
            raise ShardError(f"{where}: shards[{i}] is not an object")
        name = _require(shard, "file", str, where)
        if Path(name).name != name:
            raise ShardError(f"{where}: shard file name {name!r} must be a plain file name in the directory")
        ns = _require(shard, "num_samples", int, where)
        _require(shard, "hash", str, where)
        offsets = _require(shard, "block_offsets", list, where)
        expected = {
            "num_tokens": ns * seq_length,
            "raw_bytes": ns * seq_length * dtype.itemsize,
            "compressed_bytes": offsets[-1] if offsets else -1,
        }
        for key, value in expected.items():
            if _require(shard, key, int, where) != value:
                raise ShardError(f"{where}: shard {name}: {key} is {shard[key]}, expected {value}")
        nblocks = -(-ns // spb)
        if ns <= 0 or len(offsets) != nblocks + 1 or offsets[0] != 0:
            raise ShardError(
                f"{where}: shard {name}: block table has {len(offsets)} offsets, "
                f"expected {nblocks + 1} starting at 0 for {ns} samples"
            )
        table = np.asarray(offsets)
        if table.dtype.kind not in "iu" or not bool(np.all(np.diff(table) > 0)):
            raise ShardError(f"{where}: shard {name}: block offsets are not strictly increasing integers")
        for key in totals:
            totals[key] += shard[key]
    for key, value in totals.items():
        if _require(index, key, int, where) != value:
            raise ShardError(f"{where}: {key} is {index[key]} but its shards sum to {value}")
