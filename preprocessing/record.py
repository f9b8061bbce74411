"""The one record type that flows through every preprocessing stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class CodeFile:
    """One source file of a dump.

    ``extra`` holds the input's remaining fields (size, copies, stars, ...); they are written
    back unchanged. ``source`` and ``line`` say where the record came from (input file and
    1-based line or row) and are never written to the output; nor is ``metrics`` (size and line
    statistics computed once by the pipeline and shared by the filters and the report).
    """

    content: str
    repo_name: str
    path: str
    license: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    line: int = 0
    metrics: dict[str, float] | None = None  # computed once per record by the pipeline, never written

    def to_json_dict(self) -> dict[str, Any]:
        """The output row: the canonical fields plus the input's other fields, content last."""
        row = self.json_head()
        row["content"] = self.content
        return row

    def json_head(self) -> dict[str, Any]:
        """The output row without its content (which :meth:`to_json_dict` appends last, unless
        ``extra`` has a "content" key of its own)."""
        row: dict[str, Any] = {
            "repo_name": self.repo_name,
            "path": self.path,
            "license": self.license,
        }
        row.update(self.extra)
        return row

    @property
    def where(self) -> str:
        """``file:line`` for messages."""
        return f"{self.source}:{self.line}" if self.line else self.source


@dataclass(slots=True)
class Rejected:
    """A record that could not be read or is invalid, with its named reason."""

    reason: str
    source: str = ""
    line: int = 0
    nbytes: int = 0
    detail: str = ""

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


@dataclass(slots=True)
class InputWarning:
    """A problem a worker found in the bytes it read itself (an empty or truncated file): the
    stage puts it in stats.json's warnings, in input order. Not a record."""

    text: str


@dataclass(slots=True)
class FileRead:
    """What a worker read of one input file (or a part of it), for stats.json's ``input_files``:
    the complete non-blank lines, and whether the file ended at its end (False: cut or corrupt).
    Parts of one file are summed in unit order. Not a record."""

    file: str
    lines: int
    clean: bool | None


@dataclass(slots=True)
class KnownLines:
    """In place of records the caller need not see: lines whose records are known to repeat ones
    already counted (`stream`'s :class:`~preprocessing.stages.stream._RawRepeats`: lines whose
    raw content strings decoded lines had). ``tokens``: what the caller counts each by. Not a record."""

    tokens: list[Any]
