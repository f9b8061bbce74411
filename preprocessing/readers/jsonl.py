"""JSON Lines reader: plain, .gz and .zst files (the raw CodeParrot dump schema and any other)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import zstandard

from preprocessing.readers.base import ColumnsConfig, FileDumpReader, InputError, check_content
from preprocessing.record import CodeFile, Rejected

JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst", ".ndjson", ".ndjson.gz", ".ndjson.zst")
_CHUNK = 1 << 20


class TruncatedInput(Exception):
    """A compressed stream ended before its end marker."""


def _iter_zstd_chunks(f: BinaryIO) -> Iterator[bytes]:
    """Decompressed chunks of a (multi-frame) zstd file; raises TruncatedInput on a cut frame.

    zstandard's stream_reader returns a truncated frame silently, so frames are tracked by hand.
    """
    dctx = zstandard.ZstdDecompressor()
    obj = dctx.decompressobj()
    in_frame = False
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            break
        while chunk:
            out = obj.decompress(chunk)
            in_frame = True
            if out:
                yield out
            if obj.eof:
                chunk = obj.unused_data
                obj = dctx.decompressobj()
                in_frame = False
            else:
                chunk = b""
    if in_frame:
        raise TruncatedInput("zstd frame ended before its end marker")


def _iter_gzip_chunks(f: BinaryIO) -> Iterator[bytes]:
    """Decompressed chunks of a (multi-member) gzip file; raises TruncatedInput on a cut member
    after yielding everything before the cut (gzip.GzipFile would lose its last buffer)."""
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
                yield out
            if obj.eof:
                chunk = obj.unused_data
                obj = zlib.decompressobj(wbits=31)
                in_member = False
            else:
                chunk = b""
    if in_member:
        raise TruncatedInput("gzip stream ended before its end marker")


def _iter_plain_chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(_CHUNK):
        yield chunk


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line without newline) for a plain, .gz or .zst file. Raises TruncatedInput
    (after yielding the complete lines) and leaves the partial last line to the caller via the exception."""
    name = path.name
    if name.endswith(".zst"):
        chunks_of = _iter_zstd_chunks
    elif name.endswith(".gz"):
        chunks_of = _iter_gzip_chunks
    else:
        chunks_of = _iter_plain_chunks
    lineno = 0
    rest = b""
    with open(path, "rb") as f:
        try:
            for chunk in chunks_of(f):
                data = rest + chunk if rest else chunk
                lines = data.split(b"\n")
                rest = lines.pop()
                for line in lines:
                    lineno += 1
                    yield lineno, line
        except TruncatedInput as exc:
            exc.partial = rest  # type: ignore[attr-defined]
            exc.lineno = lineno + 1  # type: ignore[attr-defined]
            raise
    if rest:
        lineno += 1
        yield lineno, rest


@dataclass
class JsonlUnit:
    source: str
    lines: list[tuple[int, bytes]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines) + len(self.rejected)

    def head(self, n: int) -> JsonlUnit:
        return JsonlUnit(self.source, self.lines[:n], self.rejected[: max(0, n - len(self.lines))])


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

    def units(self) -> Iterator[JsonlUnit]:
        for path in self.paths:
            source = str(path)
            unit = JsonlUnit(source)
            nlines = 0
            try:
                for lineno, line in iter_lines(path):
                    if not line.strip():
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

    def decode(self, unit: JsonlUnit) -> Iterator[CodeFile | Rejected]:
        cols = self.columns
        for lineno, line in unit.lines:
            nbytes = len(line) + 1
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                yield Rejected("invalid_utf8", unit.source, lineno, nbytes)
                continue
            try:
                row = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                yield Rejected("invalid_json", unit.source, lineno, nbytes, detail=str(exc)[:200])
                continue
            if not isinstance(row, dict):
                yield Rejected("invalid_json", unit.source, lineno, nbytes, detail="not a JSON object")
                continue
            yield row_to_record(row, cols, unit.source, lineno, nbytes, self.max_file_bytes)
        yield from unit.rejected
