"""Sharded zstd JSONL writer: rolls over at a size limit, every file written atomically."""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import orjson
import zstandard

from preprocessing.record import CodeFile

SYNC_BYTES = 32 << 20
"""Compressed bytes written to a shard between two flushes of it to disk in the background
(:class:`ShardedJsonlWriter`): its closing ``fsync`` then has at most this much left to write."""

FRAME_BYTES = 256 << 10
"""Uncompressed bytes per zstd frame of a shard: about 6% larger files than one frame per shard
(measured on Python code at level 3), in return for frames that `dedup` can copy unchanged."""


class FileFrame(NamedTuple):
    """A compressed frame that lies in an open file (descriptor ``fd``, ``length`` bytes from
    ``offset``), given to :meth:`ShardedJsonlWriter.write_frame` in place of its bytes: the kernel
    copies it into the shard (``os.copy_file_range``), not this process. How `dedup`'s workers on
    this machine hand their compressed frames over (:func:`preprocessing.dedup.near.hand_over`)."""

    fd: int
    offset: int
    length: int


_IN_KERNEL = hasattr(os, "copy_file_range")
_NOT_IN_KERNEL = (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)


def copy_frame(frame: FileFrame, fd: int) -> None:
    """Append ``frame`` to the file open at ``fd`` (at its position): by ``os.copy_file_range``;
    where the kernel or the filesystems cannot, through this process (with a warning, once)."""
    global _IN_KERNEL
    offset, left = frame.offset, frame.length
    while left:
        if _IN_KERNEL:
            try:
                n = os.copy_file_range(frame.fd, fd, left, offset)
            except OSError as exc:
                if exc.errno not in _NOT_IN_KERNEL:
                    raise
                _IN_KERNEL = False
                warnings.warn(f"os.copy_file_range cannot copy frames into the shards here ({exc.strerror}): "
                              "they are copied through the writer's process from now on", RuntimeWarning,
                              stacklevel=2)
                continue
        else:
            data = os.pread(frame.fd, min(left, 16 << 20), offset)
            n = len(data)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        if n == 0:
            raise OSError(f"a frame's file ends {left} bytes early (descriptor {frame.fd})")
        offset, left = offset + n, left - n


def read_frame(frame: FileFrame) -> bytes:
    """The bytes of ``frame``."""
    data = os.pread(frame.fd, frame.length, frame.offset)
    if len(data) != frame.length:
        raise OSError(f"a frame's file ends {frame.length - len(data)} bytes early (descriptor {frame.fd})")
    return data


def zstd_compressor(level: int) -> zstandard.ZstdCompressor:
    """The compressor of every frame of a shard: single-threaded, no content size in the header
    (one object per writer or per unit: a compressor is not shared between threads)."""
    return zstandard.ZstdCompressor(level=level, threads=0, write_content_size=False)


def compress_frame(cctx: zstandard.ZstdCompressor, data: bytes) -> bytes:
    """One zstd frame of ``data`` (whole JSON lines), compressed in one call: the same bytes for
    the same lines whichever process compresses them (the writer, or a worker for
    :func:`unit_frames`)."""
    return cctx.compress(data)


def joined_lines(lines: Sequence[bytes | tuple[bytes | memoryview, ...]]) -> bytes:
    """``lines`` (each bytes, or a tuple of a line's pieces) as one buffer, in one copy."""
    pieces: list[bytes | memoryview] = []
    for line in lines:
        if type(line) is tuple:
            pieces.extend(line)
        else:
            pieces.append(line)
    return b"".join(pieces)


def unit_frames(lines: Sequence[bytes | tuple[bytes | memoryview, ...]], cctx: zstandard.ZstdCompressor,
                frame_bytes: int = FRAME_BYTES, sizes: Sequence[int] | None = None) -> list[tuple[bytes, int, int]] | None:
    """The frames of their own of one work unit's ``lines`` (in order; each bytes, or a tuple of
    the pieces of a line assembled from parts of a buffer), as the writer's rule cuts them
    (:class:`ShardedJsonlWriter`): None when the lines are fewer than ``frame_bytes`` bytes (they
    join the writer's open frame), else (compressed frame, its uncompressed bytes, its lines) per
    frame, a frame ending after the line that brings it to ``frame_bytes`` bytes and at the last
    line. A pure function of the lines: a worker can compress its unit's output. Each frame is
    compressed from one buffer of its lines (:func:`joined_lines`), the only copy of a line given
    as pieces. ``sizes``: each line's bytes, when the caller has them (found here otherwise)."""
    if sizes is None:
        sizes = [sum(map(len, line)) if type(line) is tuple else len(line) for line in lines]
    if sum(sizes) < frame_bytes:
        return None
    frames = []
    start = size = 0
    for i, n in enumerate(sizes):
        size += n
        if size >= frame_bytes or i == len(sizes) - 1:
            frames.append((compress_frame(cctx, joined_lines(lines[start:i + 1])), size, i + 1 - start))
            start, size = i + 1, 0
    return frames


def _publish(fd: int, tmp: Path, final: Path) -> None:
    """A complete shard: to disk (``fsync`` of a duplicate of its descriptor), then its final name."""
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)


class ShardedJsonlWriter:
    """Writes rows as JSON lines into ``out_dir/{prefix}-{NNNNN}.jsonl.zst``.

    Every zstd frame holds whole lines: a reader can hand a frame's compressed bytes to another
    writer (:meth:`write_frame`), which is how `dedup` copies the unchanged part of its input
    without recompressing it. The frames:

    - lines given one by one (:meth:`write_line`) go into the open frame, which ends after the line
      that brings it to ``frame_bytes`` uncompressed bytes (or when the shard closes);
    - a frame given whole (:meth:`write_frame`: copied by `dedup`, or compressed by a worker,
      :func:`unit_frames`) ends the open frame and is appended as it is. A `stream` unit (and a
      unit of lines in `dedup`'s pass 2) whose kept lines reach ``frame_bytes`` gets frames of its own, cut as the open frame would be
      but starting at the unit's first line and ending at its last; where exact dedup drops some of
      a frame's lines, the surviving lines of that frame are one frame (compressed by
      :func:`compress_frame`, as :meth:`write_lines_frame` does), a frame none of whose lines
      survive is left out. So the frames are a pure function of the
      units and of which of their rows survive, whatever the executor or the number of workers.

    Every frame is compressed in one call by the same settings (:func:`compress_frame`), so the
    bytes do not depend on which process compressed it. A shard is closed after the line that
    brings it to ``max_bytes`` uncompressed bytes (the count of uncompressed bytes makes the split
    points independent of the compressor): a whole frame given with its lines' sizes is split
    there, so a shard holds the same lines whether its frames came whole or line by line; one
    given without (`dedup`'s copies) ends the shard after it, which then passes ``max_bytes`` by
    up to a frame. Each shard is written as ``.<name>.tmp`` and renamed when complete, so a
    partial file is never visible under its final name.

    The disk's part runs in one background thread of the writer, in order: every
    :data:`SYNC_BYTES` compressed bytes the open shard is flushed (``fdatasync`` on a duplicate of
    its descriptor), and a full shard is ``fsync``-ed and renamed there while the next one is
    written, so the caller does not wait for the disk at a roll-over and its last ``fsync`` has
    little left to write. :meth:`close` waits for that thread: when it returns, every shard is on
    disk under its final name (an error of the thread is raised there).
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
        self._cctx = zstd_compressor(level)
        self._tmp: Path | None = None
        self._shard_bytes = 0
        self._frame: list[bytes] = []  # the lines of the open frame (compressed when it ends)
        self._frame_bytes = 0  # uncompressed bytes in the open frame
        self._disk: ThreadPoolExecutor | None = None  # the background thread (see the class doc)
        self._jobs: list[Future] = []  # its jobs not yet waited for
        self._fd = -1  # the open shard's descriptor, duplicated for that thread
        self._unsynced = 0  # compressed bytes written to the open shard since its last flush

    def _open(self) -> None:
        name = f"{self.prefix}-{self._index:05d}.jsonl.zst"
        self._final = self.out_dir / name
        self._tmp = self.out_dir / f".{name}.tmp"
        self._file = open(self._tmp, "wb")
        self._fd = os.dup(self._file.fileno())
        self._shard_bytes = self._unsynced = 0

    def _write(self, raw: bytes | FileFrame) -> None:
        """Append compressed bytes to the open shard; flush it in the background every :data:`SYNC_BYTES`."""
        if type(raw) is FileFrame:
            self._file.flush()  # (then the kernel appends the frame at the file's position)
            copy_frame(raw, self._file.fileno())
            self._unsynced += raw.length
        else:
            self._file.write(raw)
            self._unsynced += len(raw)
        if self._unsynced >= SYNC_BYTES:
            self._file.flush()
            self._unsynced = 0
            self._background(os.fdatasync, self._fd)

    def _background(self, fn: Any, *args: Any) -> None:
        if self._disk is None:
            self._disk = ThreadPoolExecutor(1, thread_name_prefix="shard-disk")
        self._jobs = [job for job in self._jobs if not job.done() or job.exception() is not None]
        self._jobs.append(self._disk.submit(fn, *args))

    def _close_shard(self) -> None:
        if self._file is None:
            return
        self.end_frame()
        if self._file.tell() == 0:
            self._file.write(compress_frame(self._cctx, b""))  # nothing but empty lines: one empty, valid frame
        self._file.close()  # (flushed: what is left to write to disk, the background thread's fsync writes)
        self._background(_publish, self._fd, self._tmp, self._final)
        self.paths.append(self._final)
        self._file = self._tmp = None
        self._fd = -1
        self._index += 1

    def _wait(self) -> None:
        """Wait for the background thread's jobs; raise the first error among them."""
        jobs, self._jobs = self._jobs, []
        errors = [job.exception() for job in jobs]  # (waits for each)
        if self._disk is not None:
            self._disk.shutdown()
            self._disk = None
        for error in errors:
            if error is not None:
                raise error

    def end_frame(self) -> None:
        """End the open frame (if it holds bytes): the next line starts a new one."""
        if self._frame_bytes:
            self._write(compress_frame(self._cctx, b"".join(self._frame)))
        self._frame.clear()
        self._frame_bytes = 0

    def write_row(self, row: dict[str, Any]) -> None:
        self.write_line(orjson.dumps(row) + b"\n")

    def write_line(self, line: bytes) -> None:
        """Write one already-serialised JSON line (ending in a newline)."""
        if self._file is None:
            self._open()
        self._frame.append(line)
        self._frame_bytes += len(line)
        if not self._count(len(line), 1) and self._frame_bytes >= self.frame_bytes:
            self.end_frame()

    def write_lines(self, lines: Sequence[bytes]) -> None:
        """:meth:`write_line` of each of ``lines`` in order (the same bytes), in one call: while the
        open shard cannot fill up among them, the frames are cut here and the shard's counts added
        once, with no call per line."""
        if not lines:
            return
        total = sum(map(len, lines))
        if self._file is None:
            self._open()
        if self._shard_bytes + total >= self.max_bytes:  # (the shard may end among them: line by line)
            for line in lines:
                self.write_line(line)
            return
        frame, limit = self._frame, self.frame_bytes
        nbytes = self._frame_bytes
        for line in lines:
            frame.append(line)
            nbytes += len(line)
            if nbytes >= limit:
                self._frame_bytes = nbytes
                self.end_frame()  # (clears frame, which is self._frame)
                nbytes = 0
        self._frame_bytes = nbytes
        self._shard_bytes += total
        self.bytes_written += total
        self.rows += len(lines)

    def write_frame(self, raw: bytes | FileFrame, nbytes: int, rows: int, sizes: list[int] | None = None) -> None:
        """Append one whole zstd frame as it is: ``raw`` (its bytes, or where they lie:
        :class:`FileFrame`) decompresses to ``rows`` complete JSON lines of ``nbytes`` bytes (as a
        frame from ``JsonlReader.units(frames=True)`` or from :func:`unit_frames` does). With ``sizes`` (the bytes of each of its lines), a frame that
        would take the shard past ``max_bytes`` is split after the line that reaches it (that frame
        decompressed and its two parts compressed again, once per shard), so the shards end where
        they would with the lines written one by one; without, the shard ends after the frame."""
        if sizes is not None:
            self._put(raw, None, sizes)
            return
        if self._file is None:
            self._open()
        self.end_frame()
        self._write(raw)
        self._count(nbytes, rows)

    def write_lines_frame(self, lines: list[bytes]) -> None:
        """Append ``lines`` (whole JSON lines) as one frame of their own, compressed here (the same
        bytes as :func:`unit_frames` gives for those lines as one frame), split at the shard's end
        as :meth:`write_frame` with ``sizes``; nothing for no lines."""
        if lines:
            self._put(None, b"".join(lines), [len(x) for x in lines])

    def _put(self, raw: bytes | FileFrame | None, data: bytes | None, sizes: list[int]) -> None:
        """Append one frame, given compressed (``raw``) or not (``data``), of lines of ``sizes`` bytes."""
        self.end_frame()
        while True:
            if self._file is None:
                self._open()
            nbytes = sum(sizes)
            room = self.max_bytes - self._shard_bytes
            if nbytes >= room and len(sizes) > 1:
                cut = j = 0
                for j, n in enumerate(sizes):
                    cut += n
                    if cut >= room:
                        break
                if j < len(sizes) - 1:  # the shard ends inside the frame: a frame for each part
                    if data is None:
                        compressed = read_frame(raw) if type(raw) is FileFrame else raw
                        data = zstandard.ZstdDecompressor().decompress(compressed, max_output_size=nbytes)
                    self._write(compress_frame(self._cctx, data[:cut]))
                    self._count(cut, j + 1)  # (closes the shard)
                    raw, data, sizes = None, data[cut:], sizes[j + 1:]
                    continue
            self._write(raw if raw is not None else compress_frame(self._cctx, data))
            self._count(nbytes, len(sizes))
            return

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
        """Close the open shard; return when every shard is on disk under its final name."""
        try:
            self._close_shard()
        finally:
            self._wait()

    def abort(self) -> None:
        """Drop the shard in progress (its temporary file) after an error (the shards closed
        before it are still completed)."""
        try:
            self._wait()  # (first: a flush of the open shard may be queued on its descriptor)
        except OSError:
            pass  # (the error that aborted the writer is the one raised)
        if self._file is not None:
            try:
                self._file.close()
            finally:
                os.close(self._fd)
                if self._tmp is not None:
                    self._tmp.unlink(missing_ok=True)
            self._file = self._tmp = None
            self._fd = -1
            self._frame.clear()
            self._frame_bytes = 0

    def __enter__(self) -> ShardedJsonlWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
