"""JSON Lines reader: plain, .gz and .zst files (the raw CodeParrot dump schema and any other)."""

from __future__ import annotations

import copy
import dataclasses
import functools
import types
import warnings
import zlib
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, compress, repeat
from operator import is_
from typing import Any, BinaryIO

import numpy as np
import orjson
import zstandard

from preprocessing.readers.base import (
    ColumnsConfig,
    FileDumpReader,
    InputError,
    check_content,
)
from common.io import Location, basename, file_info, open_file
from preprocessing.record import CodeFile, FileRead, InputWarning, Rejected

JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst", ".ndjson", ".ndjson.gz", ".ndjson.zst")
_CHUNK = 1 << 20


class TruncatedInput(Exception):
    """A compressed stream is cut before its end marker, or corrupt (the message says which)."""


class _Cut(Exception):
    """The file ended inside a zstd frame (``data``: the frame's bytes up to there)."""

    def __init__(self, data: bytes):
        self.data = data


_SKIPPABLE_MAGIC = 0x184D2A50
"""A skippable frame (metadata, no content; pzstd writes them) starts with this magic number in
any of its 16 low values, then its size (4 bytes little-endian) and that many bytes."""
FRAME_RAW_MAX = 4 << 20
"""zstd frames up to this many compressed bytes are read whole, and come with their compressed
bytes (a writer can copy them); larger frames are streamed through the decompressor (bounded
memory) and their lines are cut into units of up to ``batch_records`` lines, without the frame's bytes."""
_STREAM_IN = 64 << 10
"""Compressed bytes fed to the decompressor at a time in a streamed frame: its output (a few
hundred kB of JSON) is split into lines while still in the CPU's cache (1 MiB pieces, 5 MB of
output each, read ~4-6% slower in docs/benchmarks.md's measurement)."""
_STREAM_OUT = 1 << 20
"""The decompressor's output buffer for a streamed frame (what _STREAM_IN decompresses to, mostly)."""
_WHOLE_OUT_MAX = 64 << 20
"""The largest output buffer for a whole frame (its blocks' bound: 4 MiB of RLE blocks could claim 128 GiB)."""
WHOLE_PIECED_MIN = 16 << 20
"""A whole frame whose blocks may decompress to more than this (a highly compressible dump: the
`zstd` CLI writes 400 MB of repeated files as one 1.5 MB frame) is decompressed in pieces of about
_STREAM_OUT when the reader takes it as lines (:func:`iter_line_groups`' ``whole_lines``): once
its pieces hold more lines than a unit, its lines come as streamed pieces do, without the frame's
bytes, rather than in one buffer of the whole output (whose fresh pages cost as much as the
decompression); a frame of fewer lines still comes whole."""
MAX_WINDOW = 1 << 31
"""The largest zstd window the reader decodes (the format's limit on 64 bits): a file written with
`zstd --long=31` is read, at the cost of the memory its window needs, where the zstd CLI asks
for --memory."""


class _Pushback:
    """A binary file read through a buffer that the bytes after a zstd frame (which the
    decompressor read past its end, ``unused_data``) are handed back to."""

    __slots__ = ("buf", "f")

    def __init__(self, f: BinaryIO):
        self.f, self.buf = f, b""

    def read(self, n: int) -> bytes:
        """``n`` bytes (fewer only at the end of the file)."""
        if not self.buf:
            return self.f.read(n)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out + self.f.read(n - len(out)) if len(out) < n else out

    def unread(self, data: bytes) -> None:
        self.buf = data + self.buf


_BLOCK_MAX = 128 << 10  # the most a zstd block decompresses to


def _read_frame(src: _Pushback, head: bytes) -> tuple[bytes, bool, int]:
    """The bytes of the zstd frame that ``head`` (its magic number) starts, up to the block that
    brings them past FRAME_RAW_MAX, whether they are the whole frame and a bound on what they
    decompress to. Raises _Cut at the end of the file.

    The frame header is read with python-zstandard's API; the block headers that follow (3 bytes:
    last-block flag, type, size) are read by hand, as no public API says where a frame ends
    without decompressing it (which `dedup`'s second pass must not do for a frame it copies).
    """
    parts = [head]

    def take(n: int) -> bytes:
        data = src.read(n)
        parts.append(data)
        if len(data) < n:
            raise _Cut(b"".join(parts))
        return data

    start = head + take(1)
    try:
        header = start + take(zstandard.frame_header_size(start) - len(start))
        params = zstandard.get_frame_parameters(header)
    except zstandard.ZstdError as exc:
        raise TruncatedInput(f"corrupt zstd frame header ({exc})") from None
    held = len(header)
    bound = 0
    while True:
        h = int.from_bytes(take(3), "little")
        btype = (h >> 1) & 3
        if btype == 3:
            raise TruncatedInput("corrupt zstd data (reserved block type)")
        size = 1 if btype == 1 else h >> 3  # an RLE block stores one byte
        take(size)
        held += 3 + size
        bound += _BLOCK_MAX if btype == 2 else h >> 3  # compressed: at most a block; raw, RLE: its size
        if held > FRAME_RAW_MAX:
            return b"".join(parts), False, bound
        if h & 1:  # the last block
            if params.has_checksum:
                take(4)
            return b"".join(parts), True, bound


def _whole_frame_pieces(dctx: zstandard.ZstdDecompressor, raw: bytes, lines_max: int
                        ) -> Iterator[tuple[bytes, bytes | None]]:
    """(piece, None) of a whole frame's output in pieces of about _STREAM_OUT once they hold more
    than ``lines_max`` newlines, else one (its whole output, ``raw``) as a whole frame comes. The
    compressed bytes are fed a slice at a time, sized by the ratio so far, so that each output
    piece is about _STREAM_OUT (a frame of repeated files decompresses ~250x)."""
    obj = dctx.decompressobj(write_size=_STREAM_OUT)
    view = memoryview(raw)
    held: list[bytes] | None = []
    lines = pos = produced = 0
    step = 1 << 12
    while pos < len(raw):
        out = obj.decompress(view[pos:pos + step])
        pos += step
        produced += len(out)
        step = max(1 << 10, min(_STREAM_IN, _STREAM_OUT * pos // max(produced, 1)))
        if held is None:
            if out:
                yield out, None
            continue
        held.append(out)
        lines += out.count(b"\n")
        if lines > lines_max:
            yield from ((piece, None) for piece in held if piece)
            held = None
    if not obj.eof or obj.unused_data:
        raise TruncatedInput("corrupt zstd data (the frame did not end at its last block)")
    if held is not None:
        yield b"".join(held), raw


def _iter_zstd_frames(f: BinaryIO, skip: Container[int] = (), whole_only: bool = False,
                      whole_lines: int | None = None) -> Iterator[tuple[bytes | None, bytes | None, int]]:
    """(decompressed piece, the frame's compressed bytes or None, frame number) of a (multi-frame) zstd file.

    A frame of up to FRAME_RAW_MAX compressed bytes is one piece that comes with its compressed
    bytes; a larger one is streamed through a decompressor, which says where it ends (``eof``)
    and hands back the bytes it read past it (``unused_data``): it comes as pieces of _STREAM_IN
    compressed bytes each, without bytes. Skippable frames are passed over. Raises
    TruncatedInput on a cut or corrupt frame or on data that is no frame, after yielding what
    decompresses before it (zstandard's stream_reader returns a cut frame silently, which is why
    frames are tracked here). A whole frame whose number (0, 1, ... among the file's frames with
    content) is in ``skip`` comes as (None, its compressed bytes), not decompressed. With
    ``whole_only``, a frame too large to come whole comes as (None, None, its number), not
    decompressed either, and ends the walk (a header-only scan of the file's frames). With
    ``whole_lines``, a whole frame that may decompress to over WHOLE_PIECED_MIN comes whole only
    when it holds at most that many lines, else as pieces without bytes (:func:`_whole_frame_pieces`).
    """
    dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
    src = _Pushback(f)
    frame_no = -1
    while True:
        head = src.read(4)
        if not head:
            return
        if len(head) < 4:
            raise TruncatedInput("the file ends inside a zstd frame header")
        if head != zstandard.FRAME_HEADER:
            if int.from_bytes(head, "little") & 0xFFFFFFF0 != _SKIPPABLE_MAGIC:
                raise TruncatedInput("not zstd data (no frame magic number)" if frame_no < 0 else
                                     f"data after zstd frame {frame_no} is not a zstd frame (no magic number)")
            size = src.read(4)
            left = int.from_bytes(size, "little")
            while left and (got := len(src.read(min(left, _CHUNK)))):
                left -= got
            if len(size) < 4 or left:
                raise TruncatedInput("the file ends inside a skippable zstd frame")
            continue
        frame_no += 1
        try:
            try:
                raw, whole, bound = _read_frame(src, head)
            except _Cut as cut:
                out = dctx.decompressobj().decompress(cut.data)  # the frame's complete blocks
                if out:
                    yield out, None, frame_no
                raise TruncatedInput("zstd frame ended before its end marker") from None
            if whole_only and not whole:
                yield None, None, frame_no
                return
            # An output buffer that holds a whole frame (or a streamed piece): one copy out of it,
            # not a bytes object grown by 128 KiB at a time (a realloc that may copy it each time).
            obj = dctx.decompressobj(write_size=min(max(bound, 1), _WHOLE_OUT_MAX) if whole else _STREAM_OUT)
            if whole:
                if frame_no in skip:
                    yield None, raw, frame_no
                    continue
                if whole_lines is not None and bound > WHOLE_PIECED_MIN:
                    for out, whole_raw in _whole_frame_pieces(dctx, raw, whole_lines):
                        yield out, whole_raw, frame_no
                    continue
                out = obj.decompress(raw)
                if not obj.eof or obj.unused_data:
                    raise TruncatedInput("corrupt zstd data (the frame did not end at its last block)")
                yield out, raw, frame_no
                continue
            # A frame too large to come whole: streamed, _STREAM_IN compressed bytes at a time, its
            # first FRAME_RAW_MAX bytes (read to find that it is large) too: pieces of a few
            # hundred kB, not one of ~20 MB grown by resizing (fresh pages, copied).
            view, pos = memoryview(raw), 0
            while True:
                if pos < len(view):
                    data, pos = view[pos:pos + _STREAM_IN], pos + _STREAM_IN
                else:
                    data = src.read(_STREAM_IN)
                    if not data:
                        raise TruncatedInput("zstd frame ended before its end marker")
                out = obj.decompress(data)
                if out:
                    yield out, None, frame_no
                if obj.eof:
                    src.unread(obj.unused_data + view[pos:].tobytes())
                    break
        except zstandard.ZstdError as exc:
            raise TruncatedInput(f"corrupt zstd data ({exc})") from None


def _iter_gzip_chunks(f: BinaryIO) -> Iterator[tuple[bytes, None, int]]:
    """(decompressed chunk, None, -1) of a (multi-member) gzip file, shaped like _iter_zstd_frames;
    raises TruncatedInput on a cut member after yielding everything before the cut (gzip.GzipFile
    would lose its last buffer)."""
    obj = zlib.decompressobj(wbits=31)
    in_member = False
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            break
        while chunk:
            try:
                out = obj.decompress(chunk)
            except zlib.error as exc:
                raise TruncatedInput(f"corrupt gzip data ({exc})") from None
            in_member = True
            if out:
                yield out, None, -1
            if obj.eof:
                chunk = obj.unused_data
                obj = zlib.decompressobj(wbits=31)
                in_member = False
            else:
                chunk = b""
    if in_member:
        raise TruncatedInput("gzip stream ended before its end marker")


def _iter_plain_chunks(f: BinaryIO) -> Iterator[tuple[bytes, None, int]]:
    while chunk := f.read(_CHUNK):
        yield chunk, None, -1


def split_lines(data: bytes) -> list[bytes]:
    """``data.split(b"\\n")``, cut at each newline found by ``bytes.find`` (memchr) rather than by
    CPython's byte-by-byte loop of ``split``: ~3x faster on lines of a kilobyte and more (code
    files, `json.dumps` rows), the same on lines of a few hundred bytes."""
    out: list[bytes] = []
    append, find = out.append, data.find
    start = 0
    while (pos := find(b"\n", start)) >= 0:
        append(data[start:pos])
        start = pos + 1
    append(data[start:])
    return out


_BOM = b"\xef\xbb\xbf"
_BLANK_START = frozenset(b" \t\r\x0b\x0c\n")  # bytes a blank line (only whitespace) starts with
_BLANK_TABLE = np.zeros(256, dtype=bool)
_BLANK_TABLE[list(_BLANK_START)] = True


class FrameLines(Sequence):
    """The lines of a decompressed zstd frame as (line number, line without newline) pairs, like
    the list ``data.split(b"\\n")`` numbers, but split (copied) only when first indexed or
    iterated: their number, positions and blank lines are found without copying them, and a
    worker receives ``data`` alone (this pickles as ``data`` and the first line number)."""

    __slots__ = ("_data", "_ends", "_lines", "_parts", "first")

    def __init__(self, data: bytes, first: int, ends: list[int] | None = None):
        """``ends``: the position of each line's newline in ``data``, when the caller has them
        (:meth:`ends` finds them otherwise)."""
        assert data.endswith(b"\n"), "a frame's lines each end with a newline"
        self._data, self.first = data, first
        self._parts: list[bytes | memoryview] | None = None
        self._lines: list[tuple[int, bytes]] | None = None
        self._ends: list[int] | None = ends

    @classmethod
    def of_parts(cls, parts: list[bytes | memoryview], first: int, ends: list[int]) -> FrameLines:
        """The lines whose bytes are ``parts`` one after the other (slices of the pieces a reader
        decompressed; ``ends``: each line's newline in their join), joined into :attr:`data` only
        when that is first used: a driver that writes them somewhere (dedup's line spool, with
        ``os.writev``) never copies them."""
        assert parts and parts[-1][-1:] == b"\n", "a frame's lines each end with a newline"
        lines = cls.__new__(cls)
        lines._data, lines._parts, lines._ends, lines.first = None, parts, ends, first
        lines._lines = None
        return lines

    @property
    def data(self) -> bytes:
        """The lines, each with its newline, in one buffer."""
        if self._data is None:
            self._data, self._parts = b"".join(self._parts), None  # type: ignore[arg-type]
        return self._data

    def parts(self) -> list[bytes | memoryview]:
        """The buffers that hold :attr:`data` one after the other (not joined if they were not yet)."""
        return [self._data] if self._data is not None else list(self._parts)  # type: ignore[arg-type]

    def __reduce__(self) -> tuple:
        return FrameLines, (self.data, self.first)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrameLines):
            return self.first == other.first and self.data == other.data
        return self._split() == other if isinstance(other, list) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def ends(self) -> list[int]:
        """The position of each line's newline in ``data``."""
        if self._ends is None:
            data = self.data
            if (newline_ends := _newline_ends()) is not None:  # C: memchr from newline to newline, any length
                out = newline_ends(data)
            elif data.count(b"\n", 0, 1 << 13) < 12:  # lines over ~700 bytes: memchr from newline to newline
                out, find, pos, stop = [], data.find, -1, len(data) - 1
                while pos < stop:
                    pos = find(b"\n", pos + 1)
                    out.append(pos)
            else:  # shorter: numpy over blocks of 1 MiB (bounded scratch); ~2x the loop at ~400 bytes, even at ~700
                buf, out = np.frombuffer(data, dtype=np.uint8), []
                for start in range(0, buf.size, 1 << 20):
                    out.extend((np.flatnonzero(buf[start:start + (1 << 20)] == 10) + start).tolist())
            self._ends = out
        return self._ends

    def __len__(self) -> int:
        return len(self.ends())

    def _split(self) -> list[tuple[int, bytes]]:
        if self._lines is None:
            data, start, lines = self.data, 0, []
            for end in self.ends():
                lines.append(data[start:end])
                start = end + 1
            self._lines = list(enumerate(lines, self.first))
        return self._lines

    def lines_at(self, which: list[int]) -> list[tuple[int, bytes]]:
        """The (line number, line) pairs of the lines ``which`` (positions, ascending), copied alone
        (the others are not split) unless the lines were already split."""
        if self._lines is not None:
            return [self._lines[i] for i in which]
        data, ends, first = self.data, self.ends(), self.first
        return [(first + i, data[ends[i - 1] + 1 if i else 0:ends[i]]) for i in which]

    def __getitem__(self, i):  # type: ignore[override]
        return self._split()[i]

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        return iter(self._split())

    def spans(self) -> list[tuple[int, int, int]]:
        """(line number, start, end) of each line in ``data`` (end at its newline)."""
        starts = [0] + [e + 1 for e in self.ends()[:-1]]
        return list(zip(range(self.first, self.first + len(starts)), starts, self.ends()))

    def has_blank(self) -> bool:
        """Whether a line is empty or only whitespace (the lines' first bytes looked at together,
        by numpy; ``isspace`` only for the lines that start with a blank byte)."""
        ends = self.ends()
        n = len(ends)
        if n == 0:
            return False
        data = self.data
        e = np.fromiter(ends, dtype=np.int64, count=n)
        s = np.empty(n, dtype=np.int64)
        s[0] = 0
        s[1:] = e[:-1] + 1
        if (e == s).any():
            return True
        first = np.frombuffer(data, dtype=np.uint8)[s]
        for i in _BLANK_TABLE[first].nonzero()[0].tolist():
            if data[s[i]:e[i]].isspace():
                return True
        return False


LineGroup = tuple["list[tuple[int, bytes]] | FrameLines", "bytes | None", int, int]


def iter_line_groups(path: Location, skip: dict[int, int] | None = None, whole_lines: int | None = 0,
                     pieces: bool = False) -> Iterator[LineGroup]:
    """Groups of (line number, raw line without newline): the lines each decompressed piece completes.

    Each group is (lines, raw, frame number, skipped). A group that is exactly one whole zstd frame
    (the frame starts at a line start and ends with a newline) comes as :class:`FrameLines` (which
    hold the decompressed frame) with the frame's compressed bytes as ``raw``, so a writer can copy
    the frame as it is; other groups are lists and come with None (with ``pieces``: as
    :class:`FrameLines` of the piece's complete lines, never split, also with None). A frame listed in ``skip``
    ({frame number: its number of lines}, as an earlier read found them) is not decompressed: it
    comes as ([(its first line number, b"")], raw, its number, its number of lines); ``skipped`` is
    0 for other groups. Frame numbers count a .zst file's frames with content from 0 (-1: not zstd).
    Raises TruncatedInput (after yielding the complete lines) and leaves the partial last line to
    the caller via the exception. Linear in the input: the pieces of a line that spans pieces are
    joined once, at its newline. A frame that may decompress to over WHOLE_PIECED_MIN comes whole
    only if it holds at most ``whole_lines`` lines (None: any; 0, the default: none), else as
    groups of its pieces' lines (the same lines).
    """
    name = basename(path)
    if name.endswith(".zst"):
        def pieces_of(f: BinaryIO) -> Iterator[tuple[bytes | None, bytes | None, int]]:
            return _iter_zstd_frames(f, skip or (), whole_lines=whole_lines)
    elif name.endswith(".gz"):
        pieces_of = _iter_gzip_chunks
    else:
        pieces_of = _iter_plain_chunks
    lineno = 0
    pending: list[bytes] = []  # pieces of the line that is not complete yet
    with open_file(path) as f:  # a local path: builtin open; a URL: fsspec
        try:
            for chunk, raw, frame_no in pieces_of(f):
                if chunk is None:  # a skipped whole frame of skip[frame_no] lines
                    if pending:
                        raise TruncatedInput(f"frame {frame_no} no longer starts at a line start (the file changed)")
                    yield [(lineno + 1, b"")], raw, frame_no, skip[frame_no]  # type: ignore[index]
                    lineno += skip[frame_no]  # type: ignore[index]
                    continue
                if not chunk:  # an empty frame: no line, not even an empty one
                    continue
                if b"\n" not in chunk:
                    pending.append(chunk)
                    continue
                if raw is not None and not pending and chunk.endswith(b"\n"):  # a whole frame of whole lines
                    group = FrameLines(chunk, lineno + 1)
                    yield group, raw, frame_no, 0
                    lineno += len(group)
                    continue
                if pieces:  # the piece's complete lines in one buffer (one copy), not a bytes object each
                    cut = chunk.rfind(b"\n") + 1
                    if pending:
                        pending.append(memoryview(chunk)[:cut])
                        data = b"".join(pending)
                    else:
                        data = chunk if cut == len(chunk) else chunk[:cut]
                    pending = [chunk[cut:]] if cut < len(chunk) else []
                    group = FrameLines(data, lineno + 1)
                    yield group, None, frame_no, 0
                    lineno += len(group)
                    continue
                lines = split_lines(chunk)
                if pending:
                    pending.append(lines[0])
                    lines[0] = b"".join(pending)
                last = lines.pop()
                pending = [last] if last else []
                yield list(enumerate(lines, lineno + 1)), None, frame_no, 0
                lineno += len(lines)
        except TruncatedInput as exc:
            exc.partial = b"".join(pending)  # type: ignore[attr-defined]
            exc.lineno = lineno + 1  # type: ignore[attr-defined]
            raise
    if pending:
        yield [(lineno + 1, b"".join(pending))], None, -1, 0


def iter_lines(path: Location) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line without newline) for a plain, .gz or .zst file (see iter_line_groups)."""
    for group, _raw, _frame_no, _skipped in iter_line_groups(path):
        yield from group


@dataclass
class JsonlUnit:
    source: str
    lines: list[tuple[int, bytes]] | FrameLines = field(default_factory=list)
    """(line number, line) pairs: a whole frame's come as :class:`FrameLines` (split when first used)."""
    rejected: list[Rejected] = field(default_factory=list)
    raw: bytes | None = None
    """With ``units(frames=True)``: the compressed bytes of the zstd frame whose lines are exactly
    this unit's (each line and its newline, in order), else None."""
    frame_no: int = -1
    """The number of that frame in its file (also without ``frames=True``); -1: not a whole frame."""
    skipped: int = 0
    """A frame that ``units(skip=...)`` did not decompress: its number of lines (``lines`` is empty)."""
    first_line: int = 0
    """The line number of a skipped frame's first line."""

    def decompress(self) -> JsonlUnit:
        """A skipped frame's unit with its lines (the frame must still hold ``skipped`` whole lines)."""
        if not self.skipped:
            return self
        try:
            data = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW).decompressobj().decompress(self.raw)  # type: ignore[arg-type]
        except zstandard.ZstdError as exc:
            raise InputError(f"{self.source}: frame {self.frame_no} no longer decompresses ({exc})") from None
        lines = FrameLines(data, self.first_line) if data.endswith(b"\n") else None
        if lines is None or len(lines) != self.skipped:
            raise InputError(f"{self.source}: frame {self.frame_no} no longer holds {self.skipped} whole lines")
        return JsonlUnit(self.source, lines, raw=self.raw, frame_no=self.frame_no)

    def __len__(self) -> int:
        return len(self.lines) + len(self.rejected) + self.skipped

    @property
    def nlines(self) -> int:
        """The unit's lines, decoded or skipped."""
        return len(self.lines) + self.skipped

    def head(self, n: int) -> JsonlUnit:
        return JsonlUnit(self.source, self.lines[:n], self.rejected[: max(0, n - len(self.lines))])


RANGE_BYTES = 8 << 20
"""Bytes of a plain JSONL file per work unit that a worker reads itself (cut after a line end)."""
WORKER_FILES_MIN = 4
"""Compressed files are read whole by the workers when the input has at least this many (a dump
of many files); fewer (one big .zst) are split into line units by the driver, which keeps all the
workers busy on them."""
WORKER_FILE_MAX = 256 << 20
"""A compressed file larger than this is split by the driver: a worker returns a unit's kept rows
at once, so this bounds the memory a result takes."""


@dataclass
class JsonlRange:
    """A work unit that names its bytes and does not carry them: the lines in bytes [start, end)
    of a plain file (cut at line ends; ``first_line`` is the number of its first line), or a whole
    compressed file (``end == -1``: .gz cannot be split, .zst is read frame by frame). The worker
    reads and decompresses it (:meth:`JsonlReader.decode`). ``notes`` are what the driver found
    (an empty file; the warnings and line counts of a file it split itself, then ``read`` is
    False): the stage gets them in unit order, with those the worker finds."""

    source: str
    start: int = 0
    end: int = -1
    first_line: int = 1
    notes: list[InputWarning | FileRead] = field(default_factory=list)
    read: bool = True


def _size(path: Location) -> int:
    try:
        return file_info(path)[0]
    except OSError:
        return 0  # (reading it names the problem)


def _field(row: dict[str, Any], column: str | None) -> Any:
    return row.get(column) if column else None


def row_to_record(row: dict[str, Any], columns: ColumnsConfig, source: str, line: int, nbytes: int,
                  max_bytes: int, owned: bool = False) -> CodeFile | Rejected:
    """Map one input row onto a CodeFile (or a Rejected with the reason).

    ``owned``: the row is this call's to take apart (a dict just decoded): the mapped fields are
    popped from it and it becomes the record's ``extra`` (same keys, same order), not copied.
    """
    col = columns.content
    content = row.get(col)
    if content is None:
        return Rejected(f"missing_field:{col}", source, line, nbytes)
    if type(content) is not str:
        if isinstance(content, bytes):
            try:
                content = content.decode("utf-8")
            except UnicodeDecodeError:
                return Rejected("invalid_utf8", source, line, nbytes)
        if not isinstance(content, str):
            return Rejected(f"invalid_field:{col}", source, line, nbytes)
    repo_col, path_col, lic_col = columns.repo_name, columns.path, columns.license
    repo = row.get(repo_col) if repo_col else ""
    if repo is None:
        return Rejected(f"missing_field:{repo_col}", source, line, nbytes)
    path = row.get(path_col) if path_col else ""
    if path is None:
        return Rejected(f"missing_field:{path_col}", source, line, nbytes)
    size = len(content) if content.isascii() else len(content.encode("utf-8", "surrogatepass"))
    reason = check_content(content, size, max_bytes)
    if reason:
        return Rejected(reason, source, line, nbytes)
    lic = row.get(lic_col) if lic_col else None
    if isinstance(lic, (list, tuple)):
        lic = " OR ".join(str(x) for x in lic) if lic else None
    if owned:
        extra = row
        for k in (col, repo_col, path_col, lic_col):
            if k is not None:
                extra.pop(k, None)
    else:
        used = {col, repo_col, path_col, lic_col}
        extra = {k: v for k, v in row.items() if k not in used}
    return CodeFile(
        content,
        repo if type(repo) is str else str(repo or ""),
        path if type(path) is str else str(path or ""),
        lic if type(lic) is str and lic else (str(lic) if lic not in (None, "") else None),
        extra,
        source,
        line,
    )


@dataclass(slots=True)
class ScannedLines:
    """Lines as :meth:`JsonlReader.scan` gives them: where they are in ``data`` ((line number,
    start, end) each) and the key of each line's raw content string (None: the line is not of the
    simple form, decode it)."""

    source: str
    data: bytes
    spans: list[tuple[int, int, int]]
    keys: list[tuple[int, int] | None]


@functools.lru_cache(maxsize=1)
def _json_lines_scan() -> Any:
    """The C ``json_lines_scan``, or None (a RuntimeWarning, once)."""
    from preprocessing.dedup import native

    return native.optional_kernel("json_lines_scan", "stream decodes every line, repeated content "
                                  "strings too (the same output, slower)")


@functools.lru_cache(maxsize=1)
def _newline_ends() -> Any:
    """The C ``newline_ends``, or None (a RuntimeWarning, once)."""
    from preprocessing.dedup import native

    return native.optional_kernel("newline_ends", "the lines' ends are found by "
                                  "numpy or bytes.find (the same lines, slower)")


@functools.lru_cache(maxsize=1)
def _json_lines_decode() -> Any:
    """The C ``json_lines_decode``, or None (a RuntimeWarning, once)."""
    from preprocessing.dedup import native

    return native.optional_kernel("json_lines_decode", "every JSON line is decoded by "
                                  "orjson and Python (the same records, slower)")


_RECORD_FIELDS = ("content", "repo_name", "path", "license", "extra", "source", "line", "metrics")


@functools.lru_cache(maxsize=1)
def _record_slots() -> tuple[Any, ...] | None:
    """The descriptors of CodeFile's slots, in the order ``json_lines_decode`` sets them (it makes
    an empty record and sets its fields: what the dataclass's ``__init__`` does, without a Python
    frame per record), or None when CodeFile is not that plain slotted dataclass (then the C
    decoder calls the class)."""
    names = tuple(f.name for f in dataclasses.fields(CodeFile))
    descrs = tuple(CodeFile.__dict__.get(name) for name in names)
    plain = (names == _RECORD_FIELDS and not hasattr(CodeFile, "__post_init__")
             and all(isinstance(d, types.MemberDescriptorType) for d in descrs))
    return descrs if plain else None


@functools.lru_cache(maxsize=16)
def _raw_names(names: tuple[str, ...]) -> tuple[bytes, ...]:
    """Field names as a JSON line spells them without escapes (orjson's string body)."""
    return tuple(orjson.dumps(name)[1:-1] for name in names)


class JsonlReader(FileDumpReader):
    """Streams JSON Lines files (plain, .gz, .zst); the main process only splits lines.

    Reject reasons: invalid_utf8, invalid_json, missing_field:<col>, invalid_field:<col>, binary,
    too_large, empty_content, truncated_input (the cut-off last line of a truncated .gz/.zst).
    """

    name = "jsonl"

    suffixes = JSONL_SUFFIXES

    def __init__(self, paths: list[str] | str, columns: ColumnsConfig | None = None, batch_records: int = 256,
                 max_file_bytes: int = 10 << 20, strict: bool = False):
        super().__init__(paths, columns, batch_records, max_file_bytes)
        self.strict = strict
        """A truncated or corrupt file is an InputError (naming it), not a warning."""
        self._files: dict[str, dict[str, Any]] = {}

    @property
    def input_files(self) -> list[dict[str, Any]]:
        """Per file that :meth:`units` started, in order: ``{"file", "lines", "clean"}`` — the
        complete non-blank lines read, and whether the file ended at its end (True), was cut or
        corrupt (False, also a warning) or was not read to its end (None: a record limit)."""
        return list(self._files.values())

    def units(self, frames: bool = False, skip: dict[str, dict[int, int]] | None = None) -> Iterator[JsonlUnit]:
        """Units of up to ``batch_records`` lines; the lines of a whole zstd frame (of at most
        ``batch_records`` lines, no blank one) form a unit of their own, which with ``frames=True``
        carries the frame's compressed bytes. The split points never depend on ``frames``.

        ``skip`` ({file: {frame number: lines}}, from an earlier read of unchanged files) names
        whole-frame units not to decompress: they come with their bytes and no lines.
        ``warnings`` and ``input_files`` are those of the latest read.
        """
        self._warnings, self._files = [], {}
        for path in self.paths:
            source = str(path)
            unit = JsonlUnit(source)
            nlines = 0
            status = self._files[source] = {"file": source, "lines": 0, "clean": None}
            # The unit being filled from pieces without blank lines: its lines as slices of the
            # pieces (each line with its newline), joined into one FrameLines when it is full (one
            # copy; a list of lines costs a bytes object per line). ``unit.lines`` is empty then.
            parts: list[bytes | memoryview] = []
            part_ends: list[int] = []  # the newlines of its lines in the joined parts (no search again)
            first = count = size = 0  # its first line number, its lines, its bytes
            batch = self.batch_records
            try:
                for group, raw, frame_no, skipped in iter_line_groups(path, (skip or {}).get(source), batch,
                                                                      pieces=True):
                    # (a piece's lines, or a whole frame's that are more than a unit)
                    if isinstance(group, FrameLines) and (raw is None or len(group) > batch) and not unit.lines \
                            and not group.has_blank():
                        data, ends = group.data, group.ends()
                        k = pos = 0
                        while k < len(ends):
                            if not parts:
                                first = group.first + k
                            take = min(len(ends) - k, batch - count)
                            stop = ends[k + take - 1] + 1
                            parts.append(data if stop - pos == len(data) else memoryview(data)[pos:stop])
                            shift = size - pos
                            part_ends.extend([e + shift for e in ends[k:k + take]] if shift else ends[k:k + take])
                            size += stop - pos
                            count += take
                            nlines += take
                            k += take
                            pos = stop
                            if count >= batch:
                                status["lines"] = nlines
                                yield JsonlUnit(source, FrameLines.of_parts(parts, first, part_ends))
                                parts, part_ends, count, size = [], [], 0, 0
                        continue
                    if parts:  # the unit goes on as a list (or ends, before a whole frame)
                        unit.lines = list(FrameLines(b"".join(parts), first, part_ends))
                        parts, part_ends, count, size = [], [], 0, 0
                    if skipped or (raw is not None and isinstance(group, FrameLines) and len(group) <= batch
                                   and not group.has_blank()):
                        if unit.lines:
                            yield unit
                        nlines += skipped or len(group)  # a skipped frame's group is a stand-in line
                        status["lines"] = nlines
                        if skipped:
                            yield JsonlUnit(source, raw=raw, frame_no=frame_no, skipped=skipped, first_line=group[0][0])
                        else:
                            yield JsonlUnit(source, group, raw=raw if frames else None, frame_no=frame_no)
                        unit = JsonlUnit(source)
                        continue
                    good = [pair for pair in group if pair[1] and not pair[1].isspace()]  # blank lines are no records
                    i = 0
                    while i < len(good):  # into units of batch_records lines, the current one filled first
                        take = good[i:i + self.batch_records - len(unit.lines)]
                        unit.lines.extend(take)
                        nlines += len(take)
                        i += len(take)
                        if len(unit.lines) >= self.batch_records:
                            status["lines"] = nlines
                            yield unit
                            unit = JsonlUnit(source)
            except TruncatedInput as exc:
                partial = getattr(exc, "partial", b"")
                self._warnings.append(self._truncation_message(source, exc, nlines))
                if partial.strip():
                    unit.rejected.append(Rejected("truncated_input", source, exc.lineno, len(partial)))
                cut = True
            except OSError as exc:
                raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from None
            else:
                cut = False
            if parts:
                unit.lines = FrameLines.of_parts(parts, first, part_ends)
            status["lines"], status["clean"] = nlines, not cut
            if nlines == 0 and not unit.rejected and not cut:
                self._warnings.append(f"{source}: empty file (no records)")
            if unit.lines or unit.rejected:
                yield unit

    def work_units(self) -> Iterator[JsonlUnit | JsonlRange]:
        """Units whose bytes the workers read themselves: byte ranges of about RANGE_BYTES of a
        plain file (the driver reads it to find line ends and count lines, without parsing or
        shipping them), one unit per compressed file (the driver does not decompress it) when the
        input has WORKER_FILES_MIN of them, each at most WORKER_FILE_MAX; otherwise the driver splits
        a compressed file into line units, as :meth:`units` does. The choice depends on the input
        only. :meth:`decode` gives the same records and rejections either way, and the warnings and
        ``input_files`` entries (InputWarning, FileRead) in input order, not in this reader's lists."""
        self._warnings, self._files = [], {}
        compressed = [p for p in self.paths if basename(p).endswith((".gz", ".zst"))]
        for path in self.paths:
            source = str(path)
            if path not in compressed:
                try:
                    yield from self._plain_ranges(path, source)
                except OSError as exc:
                    raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from None
            elif self.read_whole(path, len(compressed)):
                yield JsonlRange(source)
            else:
                one = copy.copy(self)  # the driver-side units of this file
                one.paths = [path]
                yield from one.units()
                notes = [InputWarning(w) for w in one.warnings] + [FileRead(**f) for f in one.input_files]
                yield JsonlRange(source, notes=notes, read=False)

    def read_whole(self, path: Location, compressed: int) -> bool:
        """Whether a worker reads the compressed file ``path`` whole (one work unit), in an input
        of ``compressed`` compressed files: WORKER_FILES_MIN of them, each at most WORKER_FILE_MAX."""
        return compressed >= WORKER_FILES_MIN and _size(path) <= WORKER_FILE_MAX

    def _plain_ranges(self, path: Location, source: str) -> Iterator[JsonlRange]:
        start, line, carry, content = 0, 1, b"", False
        with open_file(path) as f:
            while True:
                chunk = f.read(RANGE_BYTES)
                data = carry + chunk if carry else chunk
                if chunk:
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:  # a line longer than RANGE_BYTES: read on
                        carry = data
                        continue
                else:
                    cut = len(data)  # the end: the last line, without its newline
                    if cut == 0:
                        break
                content = content or not data.isspace()
                yield JsonlRange(source, start, start + cut, line)
                line += data.count(b"\n", 0, cut)
                start, carry = start + cut, data[cut:]
                if not chunk:
                    break
        if not content:
            yield JsonlRange(source, start, start, line, notes=[InputWarning(f"{source}: empty file (no records)")])

    def _decode_range(self, unit: JsonlRange, groups: Callable[[str, Any], Iterable[list]]) -> Iterator[list]:
        source = unit.source
        if unit.notes:
            yield list(unit.notes)
        if not unit.read:
            return
        if unit.end >= 0:
            try:
                with open_file(source) as f:  # the worker opens its own input (a URL: fsspec)
                    f.seek(unit.start)
                    data = f.read(unit.end - unit.start)
            except OSError as exc:
                raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from None
            lines = split_lines(data)
            if lines and not lines[-1]:
                lines.pop()
            good = [pair for pair in enumerate(lines, unit.first_line) if pair[1] and not pair[1].isspace()]
            yield from groups(source, good)
            yield [FileRead(source, len(good), True)]
            return
        nlines = 0  # a whole compressed file: as units() reads it, in the worker
        partial = b""
        cut = False
        try:
            for group, _raw, _frame_no, _skipped in iter_line_groups(source):
                good = [pair for pair in group if pair[1] and not pair[1].isspace()]  # blank lines are no records
                nlines += len(good)
                yield from groups(source, good)
        except TruncatedInput as exc:
            partial = getattr(exc, "partial", b"")
            yield [InputWarning(self._truncation_message(source, exc, nlines))]
            if partial.strip():
                yield [Rejected("truncated_input", source, exc.lineno, len(partial))]  # type: ignore[attr-defined]
            cut = True
        except OSError as exc:
            raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from None
        if nlines == 0 and not partial.strip() and not cut:
            yield [InputWarning(f"{source}: empty file (no records)")]
        yield [FileRead(source, nlines, not cut)]

    def decode(self, unit: JsonlUnit | JsonlRange, lines: Callable[[str, Any], list] | None = None
               ) -> Iterator[CodeFile | Rejected]:
        """The unit's records (and rejections, warnings, what was read) in line order. ``lines``
        (optional): what decodes each group of its lines instead of :meth:`decode_lines`, with the
        same arguments (a unit's lines, or the lines a worker read of a range or a file in turn).
        The items of :meth:`decode_groups`, one by one."""
        return chain.from_iterable(self.decode_groups(unit, None if lines is None else
                                                      lambda source, group: (lines(source, group),)))

    def decode_groups(self, unit: JsonlUnit | JsonlRange, groups: Callable[[str, Any], Iterable[list]] | None = None
                      ) -> Iterator[list]:
        """:meth:`decode`'s items in lists, in order (a consumer takes them by
        ``chain.from_iterable``: no Python frame resumed per item). ``groups`` (optional): what
        decodes each group of the unit's lines into lists of items, in order, instead of
        ``(decode_lines(source, lines),)``; it is asked for each list when the one before is used up."""
        groups = groups or (lambda source, group: (self.decode_lines(source, group),))
        if isinstance(unit, JsonlRange):
            yield from self._decode_range(unit, groups)
            return
        yield from groups(unit.source, unit.lines)
        if unit.rejected:
            yield unit.rejected

    def _truncation_message(self, source: str, exc: TruncatedInput, nlines: int) -> str:
        """The warning for a cut or corrupt file (its last complete line named); with ``strict``, the error."""
        last = exc.lineno - 1  # type: ignore[attr-defined]
        message = (f"{source}: truncated ({exc}); read {nlines} complete lines"
                   + (f", the last complete one is line {last}" if last else ""))
        if self.strict:
            raise InputError(message) from None
        return message

    def decode_lines(self, source: str, lines: Iterable[tuple[int, bytes]]) -> list[CodeFile | Rejected]:
        """``[self.decode_line(source, n, line) for n, line in lines]``: the lines of the simple
        form that the C ``json_lines_decode`` reads (``json_lines_scan``'s, with ASCII strings:
        most `json.dumps` dumps, whose escapes make every line ASCII) become their records there,
        with no Python step per line; the others go through :meth:`decode_common`, in place.
        Without the C extension (a RuntimeWarning, once), all lines go through
        :meth:`decode_common`: the same records."""
        cols = self.columns
        names = (cols.content, cols.repo_name, cols.path, cols.license)
        if not (all(names) and len(set(names)) == 4) or (decode := _json_lines_decode()) is None:
            return self.decode_common(source, lines)
        if type(lines) is FrameLines:  # its lines read in its buffer (not split into bytes and pairs)
            args: Any = (lines.data, lines.ends(), lines.first)
        else:
            args = lines if type(lines) is list else list(lines)
        out = decode(args, *_raw_names(names), CodeFile, _record_slots(), source, self.max_file_bytes)
        missing = list(compress(range(len(out)), map(is_, out, repeat(None))))
        if missing:
            todo = list(map(args.__getitem__, missing)) if type(args) is list else lines.lines_at(missing)  # type: ignore[union-attr]
            for i, item in zip(missing, self.decode_common(source, todo)):
                out[i] = item
        return out

    def decode_common(self, source: str, lines: Iterable[tuple[int, bytes]]) -> list[CodeFile | Rejected]:
        """``[self.decode_line(source, n, line) for n, line in lines]``, the common row mapped in
        one loop: a JSON object whose content, repo_name and path are strings, its license a
        string or missing, its content fit to keep (its fields popped, the rest its ``extra``).
        Any other line is decoded again by :meth:`decode_line`, so the answers are the same."""
        cols = self.columns
        col, repo_col, path_col, lic_col = cols.content, cols.repo_name, cols.path, cols.license
        if not (col and repo_col and path_col and lic_col and len({col, repo_col, path_col, lic_col}) == 4):
            return [self.decode_line(source, n, line) for n, line in lines]
        loads, decode_error, max_bytes = orjson.loads, orjson.JSONDecodeError, self.max_file_bytes
        out: list[CodeFile | Rejected] = []
        append = out.append
        for lineno, line in lines:
            if lineno == 1:  # a byte order mark may open the file
                append(self.decode_line(source, lineno, line))
                continue
            try:
                row = loads(line)
            except decode_error:
                append(self.decode_line(source, lineno, line))
                continue
            if type(row) is not dict:
                append(self.decode_row(source, lineno, len(line) + 1, row))
                continue
            # the mapped fields taken out of the row (what is left is the record's extra); a row
            # that is not the common one is decoded again, whole, by decode_line
            pop = row.pop
            content, repo, path, lic = pop(col, None), pop(repo_col, None), pop(path_col, None), pop(lic_col, None)
            if type(content) is str and type(repo) is str and type(path) is str and (lic is None or type(lic) is str):
                size = len(content) if content.isascii() else len(content.encode("utf-8", "surrogatepass"))
                if size <= max_bytes and content and not content.isspace() and "\x00" not in content:
                    append(CodeFile(content, repo, path, lic or None, row, source, lineno))
                    continue
            append(self.decode_line(source, lineno, line))
        return out

    def decode_row(self, source: str, lineno: int, nbytes: int, row: Any) -> CodeFile | Rejected:
        """The record (or rejection) of a raw line of ``nbytes`` (its newline counted) that decoded to ``row``."""
        if type(row) is not dict:
            return Rejected("invalid_json", source, lineno, nbytes, detail="not a JSON object")
        return row_to_record(row, self.columns, source, lineno, nbytes, self.max_file_bytes, owned=True)

    def scan(self, source: str, lines: list[tuple[int, bytes]] | FrameLines) -> ScannedLines | None:
        """Lines (as :meth:`decode_lines` takes them) with, per line, the key of its raw content
        string where the line is of the simple form the C scan checks (``json_lines_scan`` in
        preprocessing/dedup/_cminhash.c): two such lines with the same key give records of the
        same content (same raw bytes), whatever their other fields. None where that cannot be
        had: no lines, columns that are not four distinct names, or no C extension (then a
        RuntimeWarning, once: the caller decodes as usual, the same records)."""
        cols = self.columns
        names = (cols.content, cols.repo_name, cols.path, cols.license)
        if not lines or not all(names) or len(set(names)) != 4:
            return None
        scan_fn = _json_lines_scan()
        if scan_fn is None:
            return None
        if isinstance(lines, FrameLines):
            data, first = lines.data, lines.first
            ends = np.array(lines.ends(), np.int64)
            linenos: Any = range(first, first + len(ends))
        else:
            data = b"\n".join([line for _, line in lines])
            ends = np.cumsum(np.fromiter((len(line) + 1 for _, line in lines), np.int64, len(lines))) - 1
            linenos = [lineno for lineno, _ in lines]
        n = len(ends)
        starts = np.empty(n, np.int64)
        starts[:1] = 0
        starts[1:] = ends[:-1] + 1
        status, h1, h2 = np.empty(n, np.uint8), np.empty(n, np.uint64), np.empty(n, np.uint64)
        scan_fn(data, starts, ends, *(orjson.dumps(name)[1:-1] for name in names), status, h1, h2)
        spans = list(zip(linenos, starts.tolist(), ends.tolist()))
        keys = [(a, b) if ok else None for ok, a, b in zip(status.tolist(), h1.tolist(), h2.tolist())]
        return ScannedLines(source, data, spans, keys)

    def decode_line(self, source: str, lineno: int, line: bytes) -> CodeFile | Rejected:
        """The record (or rejection) of one raw line; :meth:`decode` is this for each line of a unit."""
        nbytes = len(line) + 1
        if lineno == 1 and line.startswith(_BOM):  # a UTF-8 byte order mark opens the file, not the row
            line = line[len(_BOM):]
        try:
            row = orjson.loads(line)  # validates UTF-8 itself: no decoded copy for the common case
        except orjson.JSONDecodeError:
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                return Rejected("invalid_utf8", source, lineno, nbytes)
            try:
                row = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                return Rejected("invalid_json", source, lineno, nbytes, detail=str(exc)[:200])
        return self.decode_row(source, lineno, nbytes, row)
