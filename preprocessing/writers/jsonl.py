"""Sharded zstd JSONL writer: rolls over at a size limit, every file written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
import zstandard

from preprocessing.record import CodeFile

FRAME_BYTES = 256 << 10
"""Uncompressed bytes per zstd frame of a shard: about 6% larger files than one frame per shard
(measured on Python code at level 3), in return for frames that `dedup` can copy unchanged."""


class ShardedJsonlWriter:
    """Writes rows as JSON lines into ``out_dir/{prefix}-{NNNNN}.jsonl.zst``.

    A shard is closed once ``max_bytes`` of uncompressed JSON went into it (the count of
    uncompressed bytes makes the split points independent of the compressor). Inside a shard a
    zstd frame ends after the line that brings it to ``frame_bytes`` uncompressed bytes, so every
    frame holds whole lines: a reader can hand a frame's compressed bytes to another writer
    (:meth:`write_frame`), which is how `dedup` copies the unchanged part of its input without
    recompressing it. Each shard is written as ``.<name>.tmp`` and renamed when complete, so a
    partial file is never visible under its final name. Output is byte-identical for identical
    rows and frames (single-threaded zstd).
    """

    def __init__(self, out_dir: str | Path, prefix: str = "part", max_bytes: int = 256 << 20, level: int = 3,
                 frame_bytes: int = FRAME_BYTES):
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        if frame_bytes <= 0:
            raise ValueError(f"frame_bytes must be > 0, got {frame_bytes}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.level = level
        self.frame_bytes = frame_bytes
        self.paths: list[Path] = []
        self.rows = 0
        self.bytes_written = 0  # uncompressed
        self._index = 0
        self._file = None
        self._stream = None
        self._tmp: Path | None = None
        self._shard_bytes = 0
        self._frame_bytes = 0  # uncompressed bytes in the frame being written

    def _open(self) -> None:
        name = f"{self.prefix}-{self._index:05d}.jsonl.zst"
        self._final = self.out_dir / name
        self._tmp = self.out_dir / f".{name}.tmp"
        self._file = open(self._tmp, "wb")
        cctx = zstandard.ZstdCompressor(level=self.level, threads=0, write_content_size=False)
        self._stream = cctx.stream_writer(self._file, closefd=False)
        self._shard_bytes = 0
        self._frame_bytes = 0

    def _close_shard(self) -> None:
        if self._stream is None:
            return
        self._end_frame()  # (closing the zstd writer would add an empty frame)
        if self._file.tell() == 0:
            self._stream.flush(zstandard.FLUSH_FRAME)  # nothing but empty lines: one empty, valid frame
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self._final)
        self.paths.append(self._final)
        self._stream = self._file = self._tmp = None
        self._index += 1

    def _end_frame(self) -> None:
        if self._frame_bytes:
            self._stream.flush(zstandard.FLUSH_FRAME)
            self._frame_bytes = 0

    def write_row(self, row: dict[str, Any]) -> None:
        self.write_line(orjson.dumps(row) + b"\n")

    def write_line(self, line: bytes) -> None:
        """Write one already-serialised JSON line (ending in a newline)."""
        if self._stream is None:
            self._open()
        self._stream.write(line)
        self._frame_bytes += len(line)
        if not self._count(len(line), 1) and self._frame_bytes >= self.frame_bytes:
            self._end_frame()

    def write_frame(self, raw: bytes, nbytes: int, rows: int) -> None:
        """Append one whole zstd frame as it is: ``raw`` decompresses to ``rows`` complete JSON
        lines of ``nbytes`` bytes (as a frame from ``JsonlReader.units(frames=True)`` does)."""
        if self._stream is None:
            self._open()
        self._end_frame()
        self._file.write(raw)
        self._count(nbytes, rows)

    def _count(self, nbytes: int, rows: int) -> bool:
        """Count what went into the shard; close it when full (then True)."""
        self._shard_bytes += nbytes
        self.bytes_written += nbytes
        self.rows += rows
        if self._shard_bytes >= self.max_bytes:
            self._close_shard()
            return True
        return False

    def write(self, record: CodeFile) -> None:
        self.write_row(record.to_json_dict())

    def close(self) -> None:
        self._close_shard()

    def abort(self) -> None:
        """Drop the shard in progress (its temporary file) after an error."""
        if self._stream is not None:
            try:
                self._stream.close()
                self._file.close()
            finally:
                if self._tmp is not None:
                    self._tmp.unlink(missing_ok=True)
            self._stream = self._file = self._tmp = None

    def __enter__(self) -> ShardedJsonlWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
