"""JSON Lines reader: plain, .gz and .zst files (the raw CodeParrot dump schema and any other)."""

from __future__ import annotations

import copy
import zlib
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import zstandard

from preprocessing.readers.base import (
    ColumnsConfig,
    FileDumpReader,
    InputError,
    check_content,
)
from preprocessing.record import CodeFile, InputWarning, Rejected

JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst", ".ndjson", ".ndjson.gz", ".ndjson.zst")
_CHUNK = 1 << 20


class TruncatedInput(Exception):
    """A compressed stream ended before its end marker."""


class _Cut(Exception):
    """The file ended inside a zstd frame."""


_ZSTD_MAGIC = 0xFD2FB528
_FCS_SIZES = (0, 2, 4, 8)
_DID_SIZES = (0, 1, 2, 4)
FRAME_RAW_MAX = 4 << 20
"""zstd frames up to this many compressed bytes are read whole, and come with their compressed
bytes (a writer can copy them); larger frames are decompressed block by block (bounded memory)."""


def _iter_zstd_frames(f: BinaryIO, skip: Container[int] = ()) -> Iterator[tuple[bytes | None, bytes | None, int]]:
    """(decompressed piece, the frame's compressed bytes or None, frame number) of a (multi-frame) zstd file.

    Frames are walked by their headers and block headers, so where a frame ends is known without
    decompressing it. A frame of up to FRAME_RAW_MAX compressed bytes is one piece that comes with
    its compressed bytes; a larger one comes as one piece per block, without. Raises TruncatedInput
    on a cut or corrupt frame, after yielding what could be decompressed before it (zstandard's
    stream_reader returns a cut frame silently, which is why frames are tracked by hand).
    A whole frame whose number (0, 1, ... among the file's frames with content) is in ``skip``
    comes as (None, its compressed bytes), not decompressed.
    """
    dctx = zstandard.ZstdDecompressor()
    frame_no = -1
    while True:
        parts: list[bytes] = []

        def take(n: int, parts: list[bytes] = parts) -> bytes:
            data = f.read(n)
            parts.append(data)
            if len(data) < n:
                raise _Cut
            return data

        obj = dctx.decompressobj()
        streaming = False
        try:
            try:
                head = f.read(4)
                if not head:
                    return
                parts.append(head)
                if len(head) < 4:
                    raise _Cut
                magic = int.from_bytes(head, "little")
                if magic & 0xFFFFFFF0 == 0x184D2A50:  # a skippable frame (metadata, no content)
                    take(int.from_bytes(take(4), "little"))
                    continue
                if magic != _ZSTD_MAGIC:
                    raise TruncatedInput("not zstd data (no frame magic number)")
                frame_no += 1
                d = take(1)[0]  # frame header descriptor
                single = (d >> 5) & 1
                rest = (1 - single) + _DID_SIZES[d & 3] + (_FCS_SIZES[d >> 6] or single)
                if rest:
                    take(rest)
                held = 5 + rest
                while True:
                    h = int.from_bytes(take(3), "little")  # block header: last, type, size
                    btype = (h >> 1) & 3
                    if btype == 3:
                        raise TruncatedInput("corrupt zstd data (reserved block type)")
                    size = 1 if btype == 1 else h >> 3  # an RLE block stores one byte
                    take(size)
                    held += 3 + size
                    if held > FRAME_RAW_MAX:
                        streaming = True
                    if streaming:
                        out = obj.decompress(b"".join(parts))
                        parts.clear()
                        held = 0
                        if out:
                            yield out, None, frame_no
                    if h & 1:
                        break
                if (d >> 2) & 1:
                    take(4)  # content checksum
            except _Cut:
                out = obj.decompress(b"".join(parts))
                if out:
                    yield out, None, frame_no
                raise TruncatedInput("zstd frame ended before its end marker") from None
            raw = b"".join(parts)
            if not streaming and frame_no in skip:
                yield None, raw, frame_no
                continue
            out = obj.decompress(raw)
        except zstandard.ZstdError as exc:
            raise TruncatedInput(f"corrupt zstd data ({exc})") from None
        if not obj.eof:
            raise TruncatedInput("corrupt zstd data (the frame did not end at its last block)")
        yield out, (None if streaming else raw), frame_no


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


_BLANK_START = frozenset(b" \t\r\x0b\x0c\n")  # bytes a blank line (only whitespace) starts with


class FrameLines(Sequence):
    """The lines of a decompressed zstd frame as (line number, line without newline) pairs, like
    the list ``data.split(b"\\n")`` numbers, but split (copied) only when first indexed or
    iterated: their number, positions and blank lines are found without copying them, and a
    worker receives ``data`` alone (this pickles as ``data`` and the first line number)."""

    __slots__ = ("_ends", "_lines", "data", "first")

    def __init__(self, data: bytes, first: int):
        assert data.endswith(b"\n"), "a frame's lines each end with a newline"
        self.data, self.first = data, first
        self._lines: list[tuple[int, bytes]] | None = None
        self._ends: list[int] | None = None

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
            out, find, pos, stop = [], self.data.find, -1, len(self.data) - 1
            while pos < stop:  # memchr from newline to newline: a few lines per frame
                pos = find(b"\n", pos + 1)
                out.append(pos)
            self._ends = out
        return self._ends

    def __len__(self) -> int:
        return len(self.ends())

    def _split(self) -> list[tuple[int, bytes]]:
        if self._lines is None:
            self._lines = list(enumerate(self.data[:-1].split(b"\n"), self.first))
        return self._lines

    def __getitem__(self, i):  # type: ignore[override]
        return self._split()[i]

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        return iter(self._split())

    def spans(self) -> list[tuple[int, int, int]]:
        """(line number, start, end) of each line in ``data`` (end at its newline)."""
        starts = [0] + [e + 1 for e in self.ends()[:-1]]
        return list(zip(range(self.first, self.first + len(starts)), starts, self.ends()))

    def has_blank(self) -> bool:
        """Whether a line is empty or only whitespace."""
        data, start = self.data, 0
        for end in self.ends():
            if end == start or (data[start] in _BLANK_START and data[start:end].isspace()):
                return True
            start = end + 1
        return False


LineGroup = tuple["list[tuple[int, bytes]] | FrameLines", "bytes | None", int, int]


def iter_line_groups(path: Path, skip: dict[int, int] | None = None) -> Iterator[LineGroup]:
    """Groups of (line number, raw line without newline): the lines each decompressed piece completes.

    Each group is (lines, raw, frame number, skipped). A group that is exactly one whole zstd frame
    (the frame starts at a line start and ends with a newline) comes as :class:`FrameLines` (which
    hold the decompressed frame) with the frame's compressed bytes as ``raw``, so a writer can copy
    the frame as it is; other groups are lists and come with None. A frame listed in ``skip``
    ({frame number: its number of lines}, as an earlier read found them) is not decompressed: it
    comes as ([(its first line number, b"")], raw, its number, its number of lines); ``skipped`` is
    0 for other groups. Frame numbers count a .zst file's frames with content from 0 (-1: not zstd).
    Raises TruncatedInput (after yielding the complete lines) and leaves the partial last line to
    the caller via the exception. Linear in the input: the pieces of a line that spans pieces are
    joined once, at its newline.
    """
    name = path.name
    if name.endswith(".zst"):
        def pieces_of(f: BinaryIO) -> Iterator[tuple[bytes | None, bytes | None, int]]:
            return _iter_zstd_frames(f, skip or ())
    elif name.endswith(".gz"):
        pieces_of = _iter_gzip_chunks
    else:
        pieces_of = _iter_plain_chunks
    lineno = 0
    pending: list[bytes] = []  # pieces of the line that is not complete yet
    with open(path, "rb") as f:
        try:
            for chunk, raw, frame_no in pieces_of(f):
                if chunk is None:  # a skipped whole frame of skip[frame_no] lines
                    if pending:
                        raise TruncatedInput(f"frame {frame_no} no longer starts at a line start (the file changed)")
                    yield [(lineno + 1, b"")], raw, frame_no, skip[frame_no]  # type: ignore[index]
                    lineno += skip[frame_no]  # type: ignore[index]
                    continue
                if b"\n" not in chunk:
                    pending.append(chunk)
                    continue
                if raw is not None and not pending and chunk.endswith(b"\n"):  # a whole frame of whole lines
                    group = FrameLines(chunk, lineno + 1)
                    yield group, raw, frame_no, 0
                    lineno += len(group)
                    continue
                lines = chunk.split(b"\n")
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


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
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
            data = zstandard.ZstdDecompressor().decompressobj().decompress(self.raw)  # type: ignore[arg-type]
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
    reads and decompresses it (:meth:`JsonlReader.decode`); ``warning`` is a problem the
    driver found while cutting (an empty file)."""

    source: str
    start: int = 0
    end: int = -1
    first_line: int = 1
    warning: str | None = None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # (reading it names the problem)


def _field(row: dict[str, Any], column: str | None) -> Any:
    return row.get(column) if column else None


def row_to_record(row: dict[str, Any], columns: ColumnsConfig, source: str, line: int, nbytes: int,
                  max_bytes: int) -> CodeFile | Rejected:
    """Map one input row onto a CodeFile (or a Rejected with the reason)."""
    if columns.content not in row or row[columns.content] is None:
        return Rejected(f"missing_field:{columns.content}", source, line, nbytes)
    content = row[columns.content]
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError:
            return Rejected("invalid_utf8", source, line, nbytes)
    if not isinstance(content, str):
        return Rejected(f"invalid_field:{columns.content}", source, line, nbytes)
    for col in (columns.repo_name, columns.path):
        if col and row.get(col) is None:
            return Rejected(f"missing_field:{col}", source, line, nbytes)
    size = len(content) if content.isascii() else len(content.encode("utf-8", "surrogatepass"))
    reason = check_content(content, size, max_bytes)
    if reason:
        return Rejected(reason, source, line, nbytes)
    lic = _field(row, columns.license)
    if isinstance(lic, (list, tuple)):
        lic = " OR ".join(str(x) for x in lic) if lic else None
    used = {columns.content, columns.repo_name, columns.path, columns.license}
    extra = {k: v for k, v in row.items() if k not in used}
    return CodeFile(
        content=content,
        repo_name=str(_field(row, columns.repo_name) or ""),
        path=str(_field(row, columns.path) or ""),
        license=str(lic) if lic not in (None, "") else None,
        extra=extra,
        source=source,
        line=line,
    )


class JsonlReader(FileDumpReader):
    """Streams JSON Lines files (plain, .gz, .zst); the main process only splits lines.

    Reject reasons: invalid_utf8, invalid_json, missing_field:<col>, invalid_field:<col>, binary,
    too_large, empty_content, truncated_input (the cut-off last line of a truncated .gz/.zst).
    """

    name = "jsonl"

    suffixes = JSONL_SUFFIXES

    def units(self, frames: bool = False, skip: dict[str, dict[int, int]] | None = None) -> Iterator[JsonlUnit]:
        """Units of up to ``batch_records`` lines; the lines of a whole zstd frame (of at most
        ``batch_records`` lines, no blank one) form a unit of their own, which with ``frames=True``
        carries the frame's compressed bytes. The split points never depend on ``frames``.

        ``skip`` ({file: {frame number: lines}}, from an earlier read of unchanged files) names
        whole-frame units not to decompress: they come with their bytes and no lines.
        """
        for path in self.paths:
            source = str(path)
            unit = JsonlUnit(source)
            nlines = 0
            try:
                for group, raw, frame_no, skipped in iter_line_groups(path, (skip or {}).get(source)):
                    if skipped or (isinstance(group, FrameLines) and len(group) <= self.batch_records
                                   and not group.has_blank()):
                        if unit.lines:
                            yield unit
                        nlines += skipped or len(group)  # a skipped frame's group is a stand-in line
                        if skipped:
                            yield JsonlUnit(source, raw=raw, frame_no=frame_no, skipped=skipped, first_line=group[0][0])
                        else:
                            yield JsonlUnit(source, group, raw=raw if frames else None, frame_no=frame_no)
                        unit = JsonlUnit(source)
                        continue
                    for lineno, line in group:
                        if not line or line.isspace():
                            continue
                        nlines += 1
                        unit.lines.append((lineno, line))
                        if len(unit.lines) >= self.batch_records:
                            yield unit
                            unit = JsonlUnit(source)
            except TruncatedInput as exc:
                partial = getattr(exc, "partial", b"")
                self._warnings.append(f"{source}: truncated ({exc}); read {nlines} complete lines")
                if partial.strip():
                    unit.rejected.append(Rejected("truncated_input", source, exc.lineno, len(partial)))
            except OSError as exc:
                raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from None
            if nlines == 0 and not unit.rejected:
                self._warnings.append(f"{source}: empty file (no records)")
            if unit.lines or unit.rejected:
                yield unit

    def work_units(self) -> Iterator[JsonlRange]:
        """Units whose bytes the workers read themselves: byte ranges of about RANGE_BYTES of a
        plain file (the driver reads it to find line ends and count lines, without parsing or
        shipping them), one unit per compressed file (the driver does not decompress it) when the
        input has WORKER_FILES_MIN of them, each at most WORKER_FILE_MAX; otherwise the driver splits
        a compressed file into line units, as :meth:`units` does. The choice depends on the input
        only. :meth:`decode` gives the same records and rejections either way."""
        compressed = [p for p in self.paths if p.name.endswith((".gz", ".zst"))]
        for path in self.paths:
            source = str(path)
            if path in compressed:
                if len(compressed) >= WORKER_FILES_MIN and _size(path) <= WORKER_FILE_MAX:
                    yield JsonlRange(source)
                else:
                    one = copy.copy(self)  # the driver-side units of this file; warnings go to this reader
                    one.paths = [path]
                    yield from one.units()
                continue
            try:
                yield from self._plain_ranges(path, source)
            except OSError as exc:
                raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from None

    def _plain_ranges(self, path: Path, source: str) -> Iterator[JsonlRange]:
        start, line, carry, content = 0, 1, b"", False
        with open(path, "rb") as f:
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
            yield JsonlRange(source, start, start, line, warning=f"{source}: empty file (no records)")

    def _decode_range(self, unit: JsonlRange) -> Iterator[CodeFile | Rejected | InputWarning]:
        source = unit.source
        if unit.warning is not None:
            yield InputWarning(unit.warning)
        if unit.end >= 0:
            try:
                with open(source, "rb") as f:
                    f.seek(unit.start)
                    data = f.read(unit.end - unit.start)
            except OSError as exc:
                raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from None
            lines = data.split(b"\n")
            if lines and not lines[-1]:
                lines.pop()
            for lineno, line in enumerate(lines, unit.first_line):
                if line and not line.isspace():
                    yield self.decode_line(source, lineno, line)
            return
        nlines = 0  # a whole compressed file: as units() reads it, in the worker
        partial = b""
        try:
            for group, _raw, _frame_no, _skipped in iter_line_groups(Path(source)):
                for lineno, line in group:
                    if not line or line.isspace():
                        continue
                    nlines += 1
                    yield self.decode_line(source, lineno, line)
        except TruncatedInput as exc:
            partial = getattr(exc, "partial", b"")
            yield InputWarning(f"{source}: truncated ({exc}); read {nlines} complete lines")
            if partial.strip():
                yield Rejected("truncated_input", source, exc.lineno, len(partial))  # type: ignore[attr-defined]
        except OSError as exc:
            raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from None
        if nlines == 0 and not partial.strip():
            yield InputWarning(f"{source}: empty file (no records)")

    def decode(self, unit: JsonlUnit | JsonlRange) -> Iterator[CodeFile | Rejected]:
        if isinstance(unit, JsonlRange):
            yield from self._decode_range(unit)  # type: ignore[misc]
            return
        for lineno, line in unit.lines:
            yield self.decode_line(unit.source, lineno, line)
        yield from unit.rejected

    def decode_line(self, source: str, lineno: int, line: bytes) -> CodeFile | Rejected:
        """The record (or rejection) of one raw line; :meth:`decode` is this for each line of a unit."""
        nbytes = len(line) + 1
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
        if not isinstance(row, dict):
            return Rejected("invalid_json", source, lineno, nbytes, detail="not a JSON object")
        return row_to_record(row, self.columns, source, lineno, nbytes, self.max_file_bytes)
