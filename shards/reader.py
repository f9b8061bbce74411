"""ShardReader: random access to the samples of a shard directory, one zstd block decompressed per read."""

from __future__ import annotations

import bisect
import itertools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import xxhash
import zstandard

from shards.format import CONTENT_HASH, INDEX_NAME, ShardError, parse_dtype, validate_index

# Open file descriptors and cached blocks per process are bounded (oldest evicted first), so that a
# corpus of thousands of shards stays under the usual 1024-file limit and a few MB of cache per worker.
MAX_OPEN_SHARDS = 128


class ShardReader:
    """Opens `path`/index.json and checks it before any sample is read.

    At open: the format version, the index's own consistency (counts, block tables), that every shard
    file exists with exactly the size the index gives, the expected tokenizer hash and seq_length when
    given, and that there is at least one sample; with ``verify=True`` also each shard's content hash
    (reads every byte once). A corrupt block found later (zstd frame checksum) also raises ShardError
    naming the file. ``r[i]`` returns a read-only (seq_length,) array of the index dtype.

    File handles are opened lazily per process, so a reader can be shared with forked or spawned
    DataLoader workers. The last decompressed block of each shard is cached (for up to
    MAX_OPEN_SHARDS shards), so sequential reads decompress each block once.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        verify: bool = False,
        expected_tokenizer_hash: str | None = None,
        expected_seq_length: int | None = None,
    ) -> None:
        self.path = Path(path)
        index_path = self.path / INDEX_NAME
        if not index_path.is_file():
            hint = " (unfinished: a ShardWriter did not reach finish())" if any(self.path.glob("shard.*")) else ""
            raise ShardError(f"{index_path}: no shard index{hint}; point to a directory written by ShardWriter")
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ShardError(f"{index_path}: not valid JSON ({e}); the index is corrupt") from None
        validate_index(index, index_path)
        self.index: dict[str, Any] = index
        self.dtype = parse_dtype(index["dtype"], index_path)
        self.seq_length: int = index["seq_length"]
        self.vocab_size: int = index["vocab_size"]
        self.tokenizer_hash: str = index["tokenizer_hash"]
        self.samples_per_block: int = index["samples_per_block"]
        self.num_samples: int = index["num_samples"]

        if expected_seq_length is not None and expected_seq_length != self.seq_length:
            raise ShardError(
                f"{index_path}: seq_length is {self.seq_length} but {expected_seq_length} was expected; "
                "re-pack the shards or change the model's sequence length"
            )
        if expected_tokenizer_hash is not None and expected_tokenizer_hash != self.tokenizer_hash:
            raise ShardError(
                f"{index_path}: tokenizer hash is {self.tokenizer_hash} but {expected_tokenizer_hash} was "
                "expected; these shards were packed with another tokenizer"
            )
        if self.num_samples == 0:
            raise ShardError(f"{index_path}: empty dataset (0 samples); the packer wrote no full sample")

        self._files = [self.path / s["file"] for s in index["shards"]]
        for shard, file in zip(index["shards"], self._files):
            try:
                size = file.stat().st_size
            except FileNotFoundError:
                raise ShardError(f"{file}: shard listed in {INDEX_NAME} is missing") from None
            if size != shard["compressed_bytes"]:
                what = "truncated" if size < shard["compressed_bytes"] else "larger than indexed"
                raise ShardError(
                    f"{file}: {what}: {size} bytes but {INDEX_NAME} says {shard['compressed_bytes']}; "
                    "the shard does not match its index (re-pack the directory)"
                )
            if verify:
                self._verify(file, shard["hash"])

        # plain ints: scalar lookups on lists are faster than on numpy arrays, and the offset lists are
        # the parsed index's own (no copy)
        self._starts = list(itertools.accumulate((s["num_samples"] for s in index["shards"]), initial=0))
        self._offsets = [s["block_offsets"] for s in index["shards"]]
        self._sample_bytes = self.seq_length * self.dtype.itemsize
        self._reset_process_state()

    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._fds: dict[int, int] = {}
        self._cache: dict[int, tuple[int, np.ndarray]] = {}
        self._dctx = zstandard.ZstdDecompressor()

    @staticmethod
    def _verify(file: Path, expected: str) -> None:
        algo = expected.partition(":")[0]
        if algo != CONTENT_HASH:
            raise ShardError(f"{file}: unsupported content hash {algo!r}; this reader checks {CONTENT_HASH}")
        h = xxhash.xxh3_128()
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        if f"{CONTENT_HASH}:{h.hexdigest()}" != expected:
            raise ShardError(f"{file}: content hash mismatch: the shard is corrupt or was modified after packing")

    def __len__(self) -> int:
        return self.num_samples

    def locate(self, i: int) -> tuple[int, int, int]:
        """(shard, block within shard, row within block) of global sample i."""
        shard = bisect.bisect_right(self._starts, i) - 1
        j = i - self._starts[shard]
        return shard, j // self.samples_per_block, j % self.samples_per_block

    def __getitem__(self, i: int) -> np.ndarray:
        i = int(i)
        if i < 0:
            i += self.num_samples
        if not 0 <= i < self.num_samples:
            raise IndexError(f"sample {i} out of range for {self.num_samples} samples in {self.path}")
        shard, block, row = self.locate(i)
        return self.read_block(shard, block)[row]

    def read_block(self, shard: int, block: int) -> np.ndarray:
        """The decompressed (n, seq_length) block `block` of shard `shard` (read-only, cached per shard)."""
        if self._pid != os.getpid():  # forked into a DataLoader worker: do not share fds or caches
            self._reset_process_state()
        cached = self._cache.get(shard)
        if cached is not None and cached[0] == block:
            return cached[1]
        offsets = self._offsets[shard]
        start, end = offsets[block], offsets[block + 1]
        fd = self._fds.get(shard)
        if fd is None:
            if len(self._fds) >= MAX_OPEN_SHARDS:  # bounded: a big corpus has thousands of shards
                os.close(self._fds.pop(next(iter(self._fds))))
            try:
                fd = self._fds[shard] = os.open(self._files[shard], os.O_RDONLY)
            except FileNotFoundError:
                raise ShardError(f"{self._files[shard]}: shard disappeared after the index was opened") from None
        data = os.pread(fd, end - start, start)
        spb = self.samples_per_block
        n = min(spb, self._starts[shard + 1] - self._starts[shard] - block * spb)
        try:
            raw = self._dctx.decompress(data, max_output_size=n * self._sample_bytes)
        except zstandard.ZstdError as e:
            raise ShardError(f"{self._files[shard]}: block {block} at byte {start} is corrupt ({e})") from None
        if len(data) != end - start or len(raw) != n * self._sample_bytes:
            raise ShardError(
                f"{self._files[shard]}: block {block} at byte {start} decompressed to {len(raw)} bytes, "
                f"expected {n * self._sample_bytes}; the shard is corrupt"
            )
        arr = np.frombuffer(raw, dtype=self.dtype).reshape(n, self.seq_length)
        if shard not in self._cache and len(self._cache) >= MAX_OPEN_SHARDS:
            del self._cache[next(iter(self._cache))]
        self._cache[shard] = (block, arr)
        return arr

    def close(self) -> None:
        if getattr(self, "_pid", None) == os.getpid():
            for fd in self._fds.values():
                os.close(fd)
        self._fds = {}
        self._cache = {}

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_fds", "_cache", "_dctx", "_pid"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_process_state()
