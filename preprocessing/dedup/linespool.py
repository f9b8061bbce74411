"""Pass 1's line units, kept on local disk for pass 2 and for the workers (`dedup` of lines the driver reads).

A file the workers cannot split themselves (one big zstd frame, a few large compressed files, a
plain file) is decompressed and cut into line units by the driver. Without this module each unit's
bytes travel to a worker through a pipe (pickled, copied four times: ~3.5 s of CPU per 840 MB on
this machine, more than the driver's decompression), and pass 2 decompresses and cuts the whole
input again. Here the driver appends each unit's lines to one file in the stage's work directory
(:class:`LineSpool`, ~0.3-0.5 s per 840 MB) and a unit that leaves for a worker process names its
bytes there (:class:`SpooledUnit`: file, offset, length; the worker reads them with one ``pread``).
Pass 2 then reads the same units back from that file (:meth:`LineSpool.replay`) and never opens
the input: the rows it writes are the ones pass 1 saw.

The units, their order and their lines are exactly the reader's, so the output is the same
whether a unit's bytes travel in the file or in the pipe, for any worker count and executor;
only where the bytes are differs. The file costs local disk: the decompressed size of the lines
the driver read, at most half the free space of the work directory's disk when pass 1 starts;
past that (or for a unit the reader gives as a whole zstd frame, which pass 2 copies from the
input) the spool stops, the units travel as before, and pass 2 reads the input again. In memory:
~100 bytes per unit (its place in the file, its rejections), plus 8 bytes per line for a unit
whose line numbers have gaps (blank lines left out).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from preprocessing.readers.jsonl import FrameLines, JsonlReader, JsonlUnit
from preprocessing.record import Rejected


_IOV_MAX = 1024  # buffers one writev takes (POSIX's least IOV_MAX; Linux's)

BUDGET: int | None = None
"""Bytes the spool may take; None: half the free space of the work directory's disk when pass 1 starts."""


def _read(path: str, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    if len(data) != length:
        raise OSError(f"{path}: the spooled lines at {offset} are cut ({len(data)} of {length} bytes)")
    return data


@dataclass
class _Entry:
    source: str
    offset: int
    length: int
    first: int  # the first line's number
    nlines: int
    numbers: array | None  # each line's number when they are not first, first + 1, ... (a list unit)
    frame: bool  # the unit's lines were a FrameLines (else a list of pairs)
    rejected: list[Rejected] = field(default_factory=list)

    def unit(self, path: str) -> JsonlUnit:
        data = _read(path, self.offset, self.length) if self.length else b""
        if self.frame:
            return JsonlUnit(self.source, FrameLines(data, self.first), list(self.rejected))
        lines = data.split(b"\n")[:-1] if data else []  # (the unit's lines hold no newline, nor are empty)
        numbers = self.numbers if self.numbers is not None else range(self.first, self.first + len(lines))
        return JsonlUnit(self.source, list(zip(numbers, lines)), list(self.rejected))


def _load(path: str, entry: _Entry) -> JsonlUnit:
    return entry.unit(path)


class SpooledUnit:
    """A line unit whose bytes are in a :class:`LineSpool` file: what the driver holds and ships
    (it pickles as the file's name and the unit's place in it); it arrives as the
    :class:`~preprocessing.readers.jsonl.JsonlUnit` it stands for, read from the file. The driver
    needs only its length."""

    __slots__ = ("entry", "path")

    def __init__(self, path: str, entry: _Entry):
        self.path, self.entry = path, entry

    def __reduce__(self) -> tuple:
        return _load, (self.path, self.entry)

    @property
    def source(self) -> str:
        return self.entry.source

    @property
    def nlines(self) -> int:
        return self.entry.nlines

    def __len__(self) -> int:
        return self.entry.nlines + len(self.entry.rejected)


class LineSpool:
    """Pass 1's line units in one file under ``directory``, for the workers (``refs``: units leave
    as :class:`SpooledUnit`) and for pass 2 (:meth:`replay`, when :attr:`complete`)."""

    def __init__(self, directory: Path, refs: bool, budget: int | None = None, share: int = 2):
        Path(directory).mkdir(parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="lines-", suffix=".bin", dir=directory)
        self.path = os.path.abspath(path)  # (a Ray worker need not share the driver's working directory)
        self._fd: int | None = fd
        self.refs = refs
        budget = BUDGET if budget is None else budget
        self.budget = shutil.disk_usage(directory).free // share if budget is None else budget
        self.size = 0
        self.entries: list[_Entry] = []
        self.complete = True
        """Every unit so far is in the file (pass 2 can replay them instead of reading the input)."""
        self.warnings: list[str] = []
        self.input_files: list[dict] = []

    def record(self, units: Iterator[JsonlUnit], reader: JsonlReader) -> Iterator[JsonlUnit | SpooledUnit]:
        """``units`` (of ``reader``) as they go to the workers, each appended to the file first; at
        their end, the reader's warnings and input files are kept for :meth:`replay`'s caller."""
        for unit in units:
            if self.complete:
                entry = self._put(unit)
                if entry is not None:
                    yield SpooledUnit(self.path, entry) if self.refs else unit
                    continue
            yield unit
        self.warnings = list(reader.warnings)
        self.input_files = [dict(f) for f in reader.input_files]

    def _put(self, unit: JsonlUnit) -> _Entry | None:
        if unit.raw is not None or unit.skipped:
            self._stop()  # a whole frame: pass 2 copies it from the input, which it must then read
            return None
        lines = unit.lines
        if isinstance(lines, FrameLines):  # (its pieces as the reader cut them: written, never joined here)
            parts, first, n, numbers = lines.parts(), lines.first, len(lines), None
        else:
            parts = [b"".join(line + b"\n" for _, line in lines)]
            first, n = (lines[0][0] if lines else 0), len(lines)
            numbers = None if all(no == first + i for i, (no, _) in enumerate(lines)) else \
                array("q", [no for no, _ in lines])
        size = sum(map(len, parts))
        if self.size + size > self.budget:
            self._stop(f"it would take over its budget of {self.budget:,} bytes (BUDGET; default half the free disk)")
            return None
        try:
            self._write(parts)
        except OSError as exc:  # (a full disk)
            self._stop(f"writing it failed ({exc})")
            return None
        entry = _Entry(unit.source, self.size, size, first, n, numbers, isinstance(lines, FrameLines),
                       list(unit.rejected))
        self.size += size
        self.entries.append(entry)
        return entry

    def _write(self, parts: list[bytes | memoryview]) -> None:
        """``parts`` appended, one after the other (``os.writev``: no joined copy of them)."""
        assert self._fd is not None, "units are recorded before the spool is closed"
        views = [memoryview(p) for p in parts if len(p)]
        while views:
            done = os.writev(self._fd, views[:_IOV_MAX])
            while views and done >= len(views[0]):  # (a short write: go on from where it stopped)
                done -= len(views.pop(0))
            if done:
                views[0] = views[0][done:]

    def _stop(self, why: str = "") -> None:
        """No more units go to the file (the units shipped before still read it, until :meth:`close`);
        ``why``: a fallback, which is said (a RuntimeWarning), not only a whole frame met."""
        if why:
            warnings.warn(f"dedup's line spool in {os.path.dirname(self.path)} stops: {why}; the units go "
                          "through the pipes and pass 2 reads the input again (the same output)", RuntimeWarning,
                          stacklevel=2)
        self.complete = False
        self.entries = []

    def replay(self) -> Iterator[JsonlUnit | SpooledUnit]:
        """Pass 1's units again, in order (as :class:`SpooledUnit` with ``refs``)."""
        assert self.complete, "only a complete spool is replayed"
        for entry in self.entries:
            yield SpooledUnit(self.path, entry) if self.refs else entry.unit(self.path)

    def detach(self) -> tuple[str, list[_Entry]] | None:
        """Close the file and keep it for another process to :func:`replay` (the stage's work
        directory goes at its end, with the file): its name and units; None (the file removed)
        when the spool is not complete."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.complete:
            return self.path, self.entries
        os.unlink(self.path)
        return None

    def close(self) -> None:
        """Remove the file: at the stage's end (a retried worker task may read it until then)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def remove(kept: tuple[str, list[_Entry]]) -> None:
    """Remove the file of a spool that :meth:`LineSpool.detach` kept, once every unit read from it
    is done (else it goes with the stage's work directory)."""
    try:
        os.unlink(kept[0])
    except FileNotFoundError:
        pass


def replay(kept: tuple[str, list[_Entry]], refs: bool = False) -> Iterator[JsonlUnit | SpooledUnit]:
    """The units of a spool that :meth:`LineSpool.detach` kept, read back from its file, in order
    (with ``refs``: as :class:`SpooledUnit`, read where they arrive)."""
    path, entries = kept
    for entry in entries:
        yield SpooledUnit(path, entry) if refs else entry.unit(path)
