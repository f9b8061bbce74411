"""ShardWriter: packs fixed-length token samples into zstd-block shards and writes index.json last."""

from __future__ import annotations

import json
import operator
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import xxhash
import zstandard

from shards.format import (
    CONTENT_HASH,
    DEFAULT_BLOCK_BYTES,
    DEFAULT_MAX_SHARD_BYTES,
    DEFAULT_ZSTD_LEVEL,
    FORMAT_NAME,
    FORMAT_VERSION,
    INDEX_NAME,
    RESERVED_KEYS,
    dtype_for_vocab,
    dtype_name,
    shard_name,
)

_SHARD_FILE = re.compile(r"^shard\.\d{5,}\.zst$")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _dump_index(index: dict[str, Any]) -> str:
    """JSON with one line per top-level key and per shard: readable, and compact for long block tables."""
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in index.items() if k != "shards"]
    shards = ",\n".join(f"  {json.dumps(s, separators=(',', ':'))}" for s in index["shards"])
    lines.append(f' "shards": [\n{shards}\n ]' if shards else ' "shards": []')
    return "{\n" + ",\n".join(lines) + "\n}\n"


class ShardWriter:
    """Writes samples of exactly `seq_length` token ids into `out_dir`.

    Samples are grouped into blocks of `samples_per_block` (default: 16 KiB of raw tokens) and each
    block is one independent zstd frame (with a checksum), so one sample is read by decompressing one
    block. A shard is rolled over before it would exceed `max_shard_bytes` of compressed data (a shard
    holds at least one block). Shards are written as `<name>.tmp` and renamed when complete; index.json
    is written last, by :meth:`finish` (or leaving the ``with`` block without an error), so a directory
    with an index.json is complete. Opening a writer removes an older index.json in `out_dir` first:
    from then on the directory is incomplete until this writer finishes.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        seq_length: int,
        vocab_size: int,
        tokenizer_hash: str,
        max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
        extra_index: dict[str, Any] | None = None,
        samples_per_block: int | None = None,
        zstd_level: int = DEFAULT_ZSTD_LEVEL,
    ) -> None:
        seq_length, vocab_size, max_shard_bytes = map(operator.index, (seq_length, vocab_size, max_shard_bytes))
        if seq_length <= 0:
            raise ValueError(f"seq_length must be > 0, got {seq_length}")
        self.dtype = dtype_for_vocab(vocab_size)
        if not isinstance(tokenizer_hash, str) or not tokenizer_hash:
            raise ValueError("tokenizer_hash must be a non-empty string; use shards.tokenizer_hash(tokenizer_dir)")
        if max_shard_bytes <= 0:
            raise ValueError(f"max_shard_bytes must be > 0, got {max_shard_bytes}")
        extra_index = dict(extra_index or {})
        clash = sorted(RESERVED_KEYS & extra_index.keys())
        if clash:
            raise ValueError(f"extra_index may not set {clash}: the writer owns these index keys")
        try:
            json.dumps(extra_index)
        except TypeError as e:
            raise ValueError(f"extra_index must be JSON-serialisable: {e}") from None
        if samples_per_block is None:
            samples_per_block = max(1, DEFAULT_BLOCK_BYTES // (seq_length * self.dtype.itemsize))
        samples_per_block = operator.index(samples_per_block)
        if samples_per_block <= 0:
            raise ValueError(f"samples_per_block must be > 0, got {samples_per_block}")

        self.out_dir = Path(out_dir)
        self.seq_length = seq_length
        self.vocab_size = vocab_size
        self.tokenizer_hash = tokenizer_hash
        self.max_shard_bytes = max_shard_bytes
        self.samples_per_block = samples_per_block
        self.zstd_level = zstd_level
        self.extra_index = extra_index

        self._cctx = zstandard.ZstdCompressor(level=zstd_level, write_checksum=True)
        self._buffer = np.empty((samples_per_block, seq_length), dtype=self.dtype)
        self._buffered = 0
        self._shards: list[dict[str, Any]] = []
        self._file = None  # the open temp file of the current shard
        self._closed = False

        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / INDEX_NAME).unlink(missing_ok=True)

    # -- writing ---------------------------------------------------------------------------------
    def write(self, sample: Any) -> None:
        """Add one sample: a 1-D integer array (or list) of exactly seq_length token ids."""
        arr = np.asarray(sample)
        if arr.ndim != 1:
            raise ValueError(f"a sample must be 1-D, got shape {arr.shape}; use write_many for a 2-D batch")
        self.write_many(arr[None, :])

    def write_many(self, samples: Any) -> None:
        """Add a (n, seq_length) array of samples (fast path: whole blocks are compressed straight away)."""
        if self._closed:
            raise ValueError("this ShardWriter is finished; open a new one to write more")
        arr = np.asarray(samples)
        if arr.ndim != 2 or arr.shape[1] != self.seq_length:
            raise ValueError(f"samples must have shape (n, {self.seq_length}), got {arr.shape}")
        if arr.size == 0:
            return
        if arr.dtype.kind not in "iu":
            raise ValueError(f"token ids must be integers, got dtype {arr.dtype}")
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= self.vocab_size:
            raise ValueError(f"token ids must be in [0, vocab_size={self.vocab_size}), got range [{lo}, {hi}]")
        arr = arr.astype(self.dtype, copy=False)
        spb, i, n = self.samples_per_block, 0, len(arr)
        if self._buffered:
            take = min(spb - self._buffered, n)
            self._buffer[self._buffered : self._buffered + take] = arr[:take]
            self._buffered += take
            i = take
            if self._buffered == spb:
                self._write_block(self._buffer)
                self._buffered = 0
        while n - i >= spb:
            self._write_block(arr[i : i + spb])
            i += spb
        if i < n:
            self._buffer[: n - i] = arr[i:]
            self._buffered = n - i

    def _write_block(self, block: np.ndarray) -> None:
        data = self._cctx.compress(np.ascontiguousarray(block).tobytes())
        if self._file is not None and self._cur["offsets"][-1] + len(data) > self.max_shard_bytes:
            self._close_shard()
        if self._file is None:
            self._open_shard()
        self._file.write(data)
        self._cur["hash"].update(data)
        self._cur["offsets"].append(self._cur["offsets"][-1] + len(data))
        self._cur["num_samples"] += len(block)

    def _open_shard(self) -> None:
        name = shard_name(len(self._shards))
        tmp = self.out_dir / (name + ".tmp")
        self._file = open(tmp, "wb")
        self._cur = {"name": name, "tmp": tmp, "offsets": [0], "num_samples": 0, "hash": xxhash.xxh3_128()}

    def _close_shard(self) -> None:
        cur, f = self._cur, self._file
        f.flush()
        os.fsync(f.fileno())
        f.close()
        self._file = None
        os.replace(cur["tmp"], self.out_dir / cur["name"])
        ns = cur["num_samples"]
        self._shards.append(
            {
                "file": cur["name"],
                "num_samples": ns,
                "num_tokens": ns * self.seq_length,
                "raw_bytes": ns * self.seq_length * self.dtype.itemsize,
                "compressed_bytes": cur["offsets"][-1],
                "hash": f"{CONTENT_HASH}:{cur['hash'].hexdigest()}",
                "block_offsets": cur["offsets"],
            }
        )

    # -- finishing -------------------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """Flush the last (possibly short) block, close the last shard, write index.json; returns the index."""
        if self._closed:
            raise ValueError("this ShardWriter is already finished")
        if self._buffered:
            self._write_block(self._buffer[: self._buffered])
            self._buffered = 0
        if self._file is not None:
            self._close_shard()
        self._closed = True
        keep = {s["file"] for s in self._shards}
        for p in self.out_dir.iterdir():  # shards left over from an older, larger write into this directory
            if _SHARD_FILE.match(p.name) and p.name not in keep:
                p.unlink()
        index = self._index()
        _write_atomic(self.out_dir / INDEX_NAME, _dump_index(index).encode())
        return index

    def abort(self) -> None:
        """Stop without an index: delete the current temp shard; finished shards stay but are not a dataset."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._cur["tmp"].unlink(missing_ok=True)
        self._closed = True

    def _index(self) -> dict[str, Any]:
        totals = {
            k: sum(s[k] for s in self._shards) for k in ("num_samples", "num_tokens", "raw_bytes", "compressed_bytes")
        }
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "dtype": dtype_name(self.dtype),
            "seq_length": self.seq_length,
            "vocab_size": self.vocab_size,
            "tokenizer_hash": self.tokenizer_hash,
            "compression": {"codec": "zstd", "level": self.zstd_level, "frame_checksum": True},
            "samples_per_block": self.samples_per_block,
            "content_hash": CONTENT_HASH,
            **totals,
            **self.extra_index,
            "shards": self._shards,
        }

    @property
    def summary(self) -> dict[str, int]:
        """num_samples, num_tokens, num_shards, raw_bytes, compressed_bytes of what is written so far."""
        shards = list(self._shards)
        if self._file is not None:
            ns = self._cur["num_samples"]
            shards.append({"num_samples": ns, "compressed_bytes": self._cur["offsets"][-1]})
        ns = sum(s["num_samples"] for s in shards) + self._buffered
        return {
            "num_samples": ns,
            "num_tokens": ns * self.seq_length,
            "num_shards": len(shards),
            "raw_bytes": ns * self.seq_length * self.dtype.itemsize,
            "compressed_bytes": sum(s["compressed_bytes"] for s in shards),
        }

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if not self._closed:
                self.finish()
        else:
            self.abort()
