"""The two streaming passes of MinHash LSH near-dedup into RUN/dedup: their map functions (sketch
a unit, write a unit's rows) and reduce steps (index, write); the stage that orders them for the
runner is :mod:`preprocessing.stages.dedup`.

Pass 1 decodes the input in worker processes and computes signatures and band keys there; the
main process appends them, in input order, to the :class:`NearDedupIndex` (band tables in RAM or
spilled, signatures in a disk memmap). Clustering verifies the candidate pairs and joins them
with a union-find. Pass 2 streams the input again and writes every record that is not a
removed near-duplicate, unchanged, plus ``clusters.jsonl.zst`` and ``stats.json``. The
outcome depends only on the input and the config: never on the number of workers.

With JSON Lines input, pass 1 also notes per line whether the line is exactly what pass 2
would write for its record (the case of RUN/clean), and spools each record's names: pass 2 then
copies such lines without parsing them, decodes again only the other kept lines and the rejected
ones, and takes the cluster members' names from the spool (a removed line is not decoded).
Bytes are counted as UTF-8 content bytes, as in `stream` and `pack`.
"""

from __future__ import annotations

import copy
import os
import re
import resource
import tempfile
import time
import warnings
from array import array
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from itertools import accumulate
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
import xxhash
import zstandard

from common.config import to_dict
from common.io import basename, open_file
from preprocessing.dedup import native
from preprocessing.dedup import linespool
from preprocessing.dedup.linespool import LineSpool
from preprocessing.dedup.index import (
    ClusterResult,
    NearDedupIndex,
    SketchBatch,
    sketch,
    sketch_of,
)
from preprocessing.dedup.minhash import (
    MinHashSignature,
    NearDedupConfig,
    SignatureBatch,
    encode_content,
)
from preprocessing.executors import Executor
from preprocessing.executors.pool import RECORDS_PER_TASK, Barrier
from preprocessing.readers import (
    ColumnsConfig,
    InputConfig,
    InputError,
    JsonlReader,
    Reader,
    limit_units,
)
from preprocessing.readers.jsonl import (
    MAX_WINDOW,
    WORKER_FILES_MIN,
    FrameLines,
    JsonlUnit,
    TruncatedInput,
    _iter_zstd_frames,
    row_to_record,
)
from preprocessing.record import CodeFile, Rejected
from preprocessing.stats import StageStats
from preprocessing.writers import ShardedJsonlWriter
from preprocessing.writers.jsonl import FileFrame, compress_frame, joined_lines, unit_frames, zstd_compressor

STATS_FORMAT_VERSION = 1
STAGE = "near_dedup"
DROP_REASON = "near_duplicate"
CHANGED = "the input changed between the two passes of near-dedup ({}); re-run"

# What pass 1 found on each JSON line (1 byte per line, kept in RAM between the passes).
LINE_VERBATIM = 0  # a record whose line is byte for byte the row pass 2 writes: copied unparsed
LINE_REWRITE = 1  # a record whose row pass 2 serialises again (other key order, spacing, escapes)
LINE_REJECTED = 2  # rejected by the reader (re-decoded in pass 2 for its reason)
LINE_REWRITE_HEAD = 3  # LINE_REWRITE whose content body is byte for byte orjson's: pass 2 rewrites the rest only
LINE_REWRITE_BODY = 4  # LINE_REWRITE whose content body pass 1 sketched (checked): pass 2 transcodes it in C
# Per record, what pass 2 must know about it (1 byte per record of a unit).
_MEMBER, _DROPPED = 1, 2
# A pass-2 work unit of lines (LineNotes.jobs): the unit, its LINE_*, its records' flags, whether
# its digest is checked, pass 1's body spans of its LINE_REWRITE_HEAD/BODY lines (b"": not noted).
Pass2Job = tuple[JsonlUnit, bytes, bytes, bool, bytes]


@dataclass
class UnitSketch:
    """Pass-1 result of one work unit: its rejected items and the sketch of its records."""

    rejected: list[tuple[str, int]]
    batch: SketchBatch
    lines: bytes = b""  # JSON Lines input: LINE_* of each line of the unit
    digest: int | None = 0  # JSON Lines input: hash of the unit's lines or frame (pass 2 checks it)
    frame: tuple[str, int, int] | None = None  # a whole-frame unit: (file, frame number, bytes)
    names: list[bytes] = field(default_factory=list)  # JSON Lines input: per record its member_names()
    bodies: bytes = b""
    """JSON Lines input: per LINE_REWRITE_HEAD/BODY line, in line order, where its content body starts
    and its closing quote, from the line's start (uint32 pairs, :func:`_noted_bodies`); empty: not noted."""
    ref: tuple[int, int] | None = None  # a frame the worker read itself (FrameRef): its (offset, length)


@dataclass
class UnitRows:
    """Pass-2 result of one work unit: per record in input order the line to write (None when the
    record is removed) with its repo_name and path (set for cluster members), and the rejections."""

    records: list[tuple[bytes | None, str, str]] = field(default_factory=list)
    rejected: list[tuple[str, int]] = field(default_factory=list)
    digest: int = 0
    frame: bytes | int | None = None  # the unit's zstd frame, to copy as it is (then no record is removed)
    frame_nbytes: int = 0  # its uncompressed size
    frames: list[tuple[bytes | int, int, int, list[int]]] | None = None
    """The frames of its own of a unit of lines the driver read whose kept lines fill a frame
    (:func:`~preprocessing.writers.jsonl.unit_frames`: compressed by the worker): (frame, its
    uncompressed bytes, its lines, each line's bytes); then ``records`` carry no line."""
    handed: str | None = None
    """The file a worker wrote the compressed frames to (:func:`hand_over`): ``frame``, then each
    of ``frames``, one after another; each of them is then its length in bytes."""


@dataclass
class LineNotes:
    """What pass 1 noted about JSON lines for pass 2: LINE_* per line (1 byte), and per unit a
    digest (of its zstd frame's compressed bytes for a whole-frame unit, else of its lines) and,
    for a whole-frame unit, (file, frame number, uncompressed bytes): ~150 bytes per frame, which
    holds ~15 files of the benchmark's 17 KB average; per LINE_REWRITE_HEAD/BODY line (a foreign
    dump's, as json.dumps writes them) where its content body is (8 bytes: :attr:`bodies`).

    ``digests`` is None when pass 1 saw the lines before they were written (near-dedup fused into
    `stream`, :class:`StreamNearDedup`): pass 2 then checks the line and record counts only, and
    decompresses every frame.

    The records' (repo_name, path) go to ``spool`` as the clusters file writes them
    (:func:`member_names`; a file, ~80 bytes per record; 8 bytes per record in RAM say where each
    ends): the clusters file's members take their names from there, by record ordinal, so pass 2
    never decodes a removed record's line.
    """

    status: bytearray = field(default_factory=bytearray)
    digests: list[int] | None = field(default_factory=list)
    frames: dict[int, tuple[str, int, int]] = field(default_factory=dict)  # unit -> (file, frame, bytes)
    refs: array = field(default_factory=lambda: array("q"))
    """Per unit (while every unit so far is a frame the workers read themselves, :class:`FrameRef`):
    its frame's offset and length in its file, 16 bytes per frame; pass 2's workers read the
    frames again by these (:meth:`frame_units`), the driver does not open the input."""
    starts: list[int] = field(default_factory=list)  # unit -> its first line (index into status)
    spool_dir: Path | None = None  # where the spool is made (the work dir)
    spool: BinaryIO | None = None  # the records' names, in ordinal order (see :meth:`names_at`)
    name_ends: array = field(default_factory=lambda: array("q", [0]))  # ordinal -> where its names end
    line_spool: LineSpool | None = None
    """The lines pass 1 read in the driver, kept for the workers and pass 2 (:mod:`.linespool`)."""
    files: list[tuple[int, Any]] | None = None
    """Per input file, its line units and the spool its worker kept of them (or None), when
    workers read the files themselves (:func:`worker_files`)."""
    warnings: list[str] = field(default_factory=list)  # (then) what the workers' readers noted
    bodies: list[bytes] = field(default_factory=list)
    """Per unit, pass 1's body spans of its LINE_REWRITE_HEAD/BODY lines (:attr:`UnitSketch.bodies`;
    8 bytes per such line), so that pass 2 need not find them again; b"": not noted."""
    input_files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def replayed(self) -> bool:
        """Whether pass 2 reads pass 1's units from :attr:`line_spool` (and not the input)."""
        return self.line_spool is not None and self.line_spool.complete

    def add(self, status: bytes, digest: int | None = None, frame: tuple[str, int, int] | None = None,
            names: list[bytes] = (), bodies: bytes = b"", ref: tuple[int, int] | None = None
            ) -> None:  # type: ignore[assignment]
        self.bodies.append(bodies)
        if frame is not None:
            self.frames[len(self.starts)] = frame
        if ref is not None and frame is not None and len(self.refs) == 2 * len(self.starts):
            self.refs.extend(ref)
        self.starts.append(len(self.status))
        self.status += status
        if self.digests is not None:
            assert digest is not None, "a digest per unit is needed when digests are kept"
            self.digests.append(digest)
        if self.spool is None:
            self.spool = tempfile.TemporaryFile(dir=self.spool_dir)  # (gone once closed, or with the process)
        self.spool.write(b"".join(names))
        ends = accumulate(map(len, names), initial=self.name_ends[-1])
        next(ends)  # (the initial end is there already)
        self.name_ends.extend(ends)

    def add_file(self, sketch: FileSketch) -> None:
        """Pass 1 of a file a worker read: its units, then what its reader noted (in input order)."""
        for res in sketch.units:
            self.add(res.lines, res.digest, res.frame, res.names, res.bodies)
        assert self.files is not None, "files are added in the workers' file mode"
        self.files.append((len(sketch.units), sketch.spool))
        self.warnings += sketch.warnings
        self.input_files += sketch.input_files

    @property
    def by_ref(self) -> bool:
        """Whether every unit of pass 1 was a whole frame that a worker read by its place in the file
        (:class:`FrameRef`) and its digest is kept: pass 2 names the same frames (:meth:`frame_units`)."""
        return bool(self.starts) and self.digests is not None and len(self.refs) == 2 * len(self.starts)

    def frame_units(self, reader: JsonlReader) -> Iterator[FrameUnit]:
        """Pass 2's units when :attr:`by_ref`: pass 1's frames, as places in the files (each the
        frame's lines, not decompressed here); the input files' entries for the stats are set from
        them, as the reader's walk over the same frames gives them (every file read whole)."""
        ends = [*self.starts[1:], len(self.status)]
        files: dict[str, dict[str, Any]] = {str(p): {"file": str(p), "lines": 0, "clean": True} for p in reader.paths}
        for u, (start, end) in enumerate(zip(self.starts, ends)):
            source, frame_no, _nbytes = self.frames[u]
            entry = files[source]
            first = entry["lines"] + 1  # (frames of whole lines, none blank: line numbers run on)
            entry["lines"] += end - start
            yield FrameUnit(source, self.refs[2 * u], self.refs[2 * u + 1], frame_no, end - start, first)
        self.warnings, self.input_files = [], list(files.values())

    def notes(self, reader: Reader) -> Any:
        """Where the warnings and input files of the stats come from: what pass 1 noted when pass 2
        did not read the input in this process (replayed, read by the workers, or named by frame
        refs), else ``reader``."""
        if self.replayed:
            return self.line_spool
        return self if self.files is not None or self.by_ref else reader

    def names_at(self, ordinal: int, k: int, at: list[int]) -> list[bytes]:
        """:func:`member_names` of records ``ordinal + i`` for each ``i`` of ``at`` (ascending, each
        below ``k``), as pass 1 read them: one read of the spool, a slice of it per name asked for."""
        if ordinal + k >= len(self.name_ends):
            raise ValueError(CHANGED.format("more records"))
        if not at:
            return []
        ends = self.name_ends
        start, stop = ends[ordinal + at[0]], ends[ordinal + at[-1] + 1]
        assert self.spool is not None, "names of records that were added"
        self.spool.seek(start)
        data = self.spool.read(stop - start)
        self.spool.seek(0, 2)  # (the end: where add() writes)
        return [data[ends[ordinal + i] - start:ends[ordinal + i + 1] - start] for i in at]

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None
        if self.line_spool is not None:
            self.line_spool.close()

    def frame_lines(self) -> dict[str, dict[int, int]]:
        """{file: {frame number: lines}} of pass 1's whole-frame units: pass 2 reads them without
        decompressing them and leaves that to :func:`_rows_lines_unit`, which copies a frame with
        nothing removed and no cluster member as it is, and decodes the others. Empty when pass 1
        kept no digests (fused into `stream`), as changes could then not be detected."""
        if self.digests is None:
            return {}
        ends = [*self.starts[1:], len(self.status)]
        skip: dict[str, dict[int, int]] = {}
        for u, (source, frame_no, _nbytes) in self.frames.items():
            skip.setdefault(source, {})[frame_no] = ends[u] - self.starts[u]
        return skip

    def jobs(self, units: Iterator[JsonlUnit], result: ClusterResult) -> Iterator[Pass2Job]:
        """Pass-2 work units: each with its lines' LINE_* and its records' _MEMBER/_DROPPED flags,
        whether the unit's digest is checked (then a removed record's line is not decoded again) and
        pass 1's body spans (:attr:`bodies`)."""
        pos = ordinal = 0
        for u, unit in enumerate(units):
            status = bytes(self.status[pos : pos + unit.nlines])
            k = len(status) - status.count(LINE_REJECTED)
            if (self.digests is not None and u >= len(self.digests)) or len(status) != unit.nlines or ordinal + k > result.n:
                raise ValueError(CHANGED.format("more records"))
            flags = _flags(result, ordinal, k)
            pos, ordinal = pos + unit.nlines, ordinal + k
            yield unit, status, flags, self.digests is not None, self.bodies[u] if u < len(self.bodies) else b""
        if pos != len(self.status):
            raise ValueError(CHANGED.format("fewer records"))

    def file_jobs(self, result: ClusterResult) -> Iterator[FileJob]:
        """Pass-2 work units of the workers' file mode: per input file, the LINE_* of its lines and
        the _MEMBER/_DROPPED flags of its records (its units' slices of them, as :meth:`jobs` gives)."""
        assert self.files is not None, "the workers' file mode"
        u = ordinal = 0
        for index, (n, spool) in enumerate(self.files):
            start = self.starts[u] if u < len(self.starts) else len(self.status)
            end = self.starts[u + n] if u + n < len(self.starts) else len(self.status)
            status = bytes(self.status[start:end])
            k = len(status) - status.count(LINE_REJECTED)
            if ordinal + k > result.n:
                raise ValueError(CHANGED.format("more records"))
            yield FileJob(index, n, status, _flags(result, ordinal, k), self.digests is not None, spool,
                          self.bodies[u:u + n])
            u, ordinal = u + n, ordinal + k


def _flags(result: ClusterResult, ordinal: int, k: int) -> bytes:
    """The _MEMBER/_DROPPED flags of records ``ordinal`` to ``ordinal + k``, a byte each."""
    sl = slice(ordinal, ordinal + k)
    return ((result.cluster[sl] >= 0).astype(np.uint8) | (result.drop[sl].astype(np.uint8) << 1)).tobytes()


@dataclass
class FileSketch:
    """Pass-1 result of one input file a worker read itself: its line units' sketches, in order
    (the units the driver would have cut), and what its reader noted."""

    units: list[UnitSketch]
    warnings: list[str]
    input_files: list[dict[str, Any]]
    spool: Any = None
    """Where the worker kept the units' lines for pass 2 (:meth:`LineSpool.detach`), or None."""


@dataclass
class FileJob:
    """Pass-2 work unit of one input file a worker reads itself (see :meth:`LineNotes.file_jobs`)."""

    index: int  # the file's place in the reader's paths
    units: int  # its pass-1 units
    status: bytes
    flags: bytes
    checked: bool
    spool: Any = None  # pass 1's spool of the file's units: read back instead of the file
    bodies: list[bytes] = field(default_factory=list)  # per unit, pass 1's body spans (LineNotes.bodies)


def worker_files(reader: Reader, limit: int | None) -> bool:
    """Whether the workers read the input files themselves, a file per work unit, in both passes:
    JSON Lines input of compressed files only (.gz, or .zst that are not all whole-line frames),
    each of which :meth:`JsonlReader.read_whole` gives to a worker, and no ``limit``, as `stream`
    reads such a dump. A worker cuts its file into the line units the driver would cut (units never span
    files), so the output is the same as the driver's split; the choice depends on the input only."""
    if not isinstance(reader, JsonlReader) or limit is not None or len(reader.paths) < WORKER_FILES_MIN:
        return False
    if not all(basename(p).endswith((".gz", ".zst")) for p in reader.paths):
        return False
    try:
        return all(reader.read_whole(p, len(reader.paths)) for p in reader.paths)
    except OSError:
        return False  # (the driver-side units name the file that cannot be read)


def _file_reader(w: DedupWorker, index: int) -> JsonlReader:
    one = copy.copy(w.reader)  # (its columns and limits; one path)
    one.paths = [w.reader.paths[index]]  # type: ignore[attr-defined]
    return one  # type: ignore[return-value]


def _reader_notes(reader: JsonlReader) -> tuple[list[str], list[dict[str, Any]]]:
    """What a file's reader noted, for its FileSketch: (warnings, input files), copied."""
    return list(reader.warnings), [dict(f) for f in reader.input_files]


def _sketch_file(w: DedupWorker, index: int) -> FileSketch:
    """Pass 1 of input file ``index``, read and cut into line units here (in the worker). With a
    spool directory (the workers share the driver's disk), the units' lines are kept there for
    pass 2, which then does not decompress the file again: a file's spool may take a quarter of
    the free space when it starts, else pass 2 reads the file again."""
    reader = _file_reader(w, index)
    spool = LineSpool(Path(w.spool_dir), refs=False, share=4) if w.spool_dir is not None else None
    units = reader.units() if spool is None else spool.record(reader.units(), reader)
    sketches = [_sketch_lines_unit(w, unit) for unit in units]
    return FileSketch(sketches, *_reader_notes(reader),
                      spool.detach() if spool is not None else None)


def _rows_file(w: DedupWorker, job: FileJob) -> list[UnitRows]:
    """Pass 2 of one input file read here: :func:`_rows_lines_unit` of each of its line units."""
    out: list[UnitRows] = []
    pos = r = 0
    for unit in linespool.replay(job.spool) if job.spool is not None else _file_reader(w, job.index).units():
        status = job.status[pos:pos + unit.nlines]
        k = len(status) - status.count(LINE_REJECTED)
        if len(out) == job.units or len(status) != unit.nlines:
            raise ValueError(CHANGED.format("more records"))
        out.append(_rows_lines_unit(w, (unit, status, job.flags[r:r + k], job.checked, job.bodies[len(out)])))
        pos, r = pos + unit.nlines, r + k
    if len(out) != job.units or pos != len(job.status):
        raise ValueError(CHANGED.format("fewer records"))
    return out


@dataclass
class SpoolFile:
    """A pass-1 task of the workers' file mode for one of the last input files (:class:`FilePlan`):
    read input file ``index`` and keep its line units in a spool, sketch nothing."""

    index: int


@dataclass
class SpooledFile:
    """What :class:`SpoolFile` gives: the file's spool (:meth:`LineSpool.detach`: its path and
    units, which the driver hands out as sketch tasks) and what its reader noted."""

    index: int
    spool: tuple[str, list[Any]]
    warnings: list[str]
    input_files: list[dict[str, Any]]


def _spool_file(w: DedupWorker, index: int) -> SpooledFile | FileSketch:
    """:class:`SpoolFile`'s task. When the spool stops (no room), its file is sketched here after
    all, as :func:`_sketch_file` does (the units spooled before the stop are read back)."""
    reader = _file_reader(w, index)
    spool = LineSpool(Path(w.spool_dir), refs=True, share=4)  # type: ignore[arg-type]
    items: list[Any] = []
    for unit in spool.record(reader.units(), reader):
        items.append(unit if isinstance(unit, linespool.SpooledUnit) else _sketch_lines_unit(w, unit))
    if spool.complete:
        kept = spool.detach()
        assert kept is not None, "a complete spool is kept"
        return SpooledFile(index, kept, *_reader_notes(reader))
    sketches = [_sketch_lines_unit(w, item.entry.unit(item.path)) if isinstance(item, linespool.SpooledUnit) else item
                for item in items]
    spool.detach()  # (removes the file)
    return FileSketch(sketches, *_reader_notes(reader))


def _file_task(w: DedupWorker, task: Any) -> FileSketch | SpooledFile | UnitSketch:
    """Pass 1's task in the workers' file mode (:class:`FilePlan`): a whole file (its index), a
    :class:`SpoolFile`, or one spooled unit of such a file (it arrives read from the spool)."""
    if type(task) is int:
        return _sketch_file(w, task)
    if isinstance(task, SpoolFile):
        return _spool_file(w, task.index)
    if isinstance(task, linespool.SpooledUnit):  # (not pickled on its way: run in the driver)
        task = task.entry.unit(task.path)
    return _sketch_lines_unit(w, task)


class FilePlan:
    """Pass 1's tasks in the workers' file mode, and their results as one :class:`FileSketch` per
    file, in file order (:meth:`results`).

    A file is one task (:func:`_sketch_file`), except the last ``split`` files: for each, one task
    reads it into a spool (:class:`SpoolFile`), and once that is done its units are sketched as
    tasks of their own, read from the spool by whichever workers are free. A compressed file
    cannot be split before it is read, so without this the run's end waited for the last files
    one worker each (with 2 workers on 16 equal ``.gz`` files, ~0.24 s of one core idle, ~half a
    file); the decompression of the last files is still one worker's each, their sketching (about
    half of a file's pass 1) is spread. The sketches are those of the same units, so the output
    is the same whatever ``split``; it needs the spools (workers that share the driver's disk).
    """

    def __init__(self, files: int, split: int):
        self.files = files
        self.split = max(0, min(split, files))
        self.spooled: dict[int, SpooledFile] = {}

    def tasks(self) -> Iterator[Any]:
        """The tasks, in order: whole files, then a :class:`SpoolFile` per last file; then per such
        file a barrier on its spool task (the results before it are reduced, :meth:`results` has
        its spool) and its units."""
        first = self.files - self.split
        yield from range(first)
        yield from (SpoolFile(i) for i in range(first, self.files))
        for i in range(first, self.files):
            yield Barrier(i + 1)  # (the spool task of file i is task i)
            done = self.spooled.get(i)
            if done is not None:
                path, entries = done.spool
                yield from (linespool.SpooledUnit(path, entry) for entry in entries)

    def results(self, outs: Iterator[Any]) -> Iterator[FileSketch]:
        """Each file's :class:`FileSketch` from the tasks' results (in task order), in file order."""
        waiting: deque[tuple[SpooledFile | None, Any]] = deque()
        """The split files not yet given, in order: (its spool, its units' sketches so far), or
        (None, its FileSketch) for one whose spool task sketched it (no room for the spool)."""
        for out in outs:
            if isinstance(out, SpooledFile):
                self.spooled[out.index] = out
                waiting.append((out, []))
            elif isinstance(out, UnitSketch):  # (of the first file with units missing: they come in order)
                next(sketches for done, sketches in waiting
                     if done is not None and len(sketches) < len(done.spool[1])).append(out)
            elif waiting:  # (a FileSketch after a split file's: that of a spool task that found no room)
                waiting.append((None, out))
            else:
                yield out
            while waiting and (waiting[0][0] is None or len(waiting[0][1]) == len(waiting[0][0].spool[1])):
                done, got = waiting.popleft()
                yield got if done is None else FileSketch(got, done.warnings, done.input_files, done.spool)


class DedupWorker:
    """The maps' context, shipped with the work: the reader and the config. The hasher and the
    compressor are built on first use in each process (they are not pickled)."""

    def __init__(self, reader: Reader, cfg: NearDedupConfig, spool_dir: str | None = None,
                 handover_dir: str | None = None):
        self.reader, self.cfg = reader, cfg
        self.spool_dir = spool_dir
        """Where a worker that reads a whole input file keeps its lines for pass 2 (:func:`_sketch_file`)."""
        self.handover_dir = handover_dir
        """Where pass 2's workers leave their compressed frames for the driver (:func:`hand_over`)."""
        self.driver = os.getpid()  # (a unit run there, inline, hands nothing over)
        self._hasher: MinHashSignature | None = None
        self._compressor: zstandard.ZstdCompressor | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"reader": self.reader, "cfg": self.cfg, "spool_dir": self.spool_dir,
                "handover_dir": self.handover_dir, "driver": self.driver, "_hasher": None, "_compressor": None}

    @property
    def hasher(self) -> MinHashSignature:
        if self._hasher is None:
            self._hasher = MinHashSignature(self.cfg)
        return self._hasher

    @property
    def compressor(self) -> zstandard.ZstdCompressor:
        """The writer's frame compressor (:func:`~preprocessing.writers.jsonl.zstd_compressor`):
        a frame compressed here is byte for byte the one the writer would make."""
        if self._compressor is None:
            self._compressor = zstd_compressor(self.cfg.compression_level)
        return self._compressor


def keep_score(record: CodeFile, nbytes: int, cfg: NearDedupConfig) -> int:
    """The keep-rule score of a record of ``nbytes`` UTF-8 content bytes: the cluster keeps its
    highest score (ties: first)."""
    if cfg.keep == "longest":
        return nbytes
    if cfg.keep == "license":
        prefs = [p.lower() for p in cfg.preferred_licenses]
        lic = (record.license or "").lower()
        return len(prefs) - prefs.index(lic) if lic in prefs else 0
    if cfg.keep == "stars":
        value = record.extra.get(cfg.stars_field)
        try:
            return int(float(value)) if value is not None else 0
        except (TypeError, ValueError):
            return 0
    return 0


def _sketch_unit(w: DedupWorker, unit: Any) -> UnitSketch:
    rejected: list[tuple[str, int]] = []
    contents: list[bytes] = []
    scores: list[int] = []
    cfg = w.hasher.cfg
    for item in w.reader.decode(unit):
        if isinstance(item, Rejected):
            rejected.append((item.reason, item.nbytes))
            continue
        data = encode_content(item.content)
        contents.append(data)
        scores.append(keep_score(item, len(data), cfg))
    return UnitSketch(rejected, sketch(contents, scores, w.hasher))


def _lines_digest(unit: JsonlUnit) -> int:
    """The digest pass 2 checks a unit's input against: of a whole zstd frame's compressed bytes,
    else of its lines, each with its newline (xxh3, streamed or in one piece: the same value)."""
    if unit.raw is not None:
        return xxhash.xxh3_64_intdigest(unit.raw)
    if isinstance(unit.lines, FrameLines):
        return xxhash.xxh3_64_intdigest(unit.lines.data)
    h = xxhash.xxh3_64()
    for _, line in unit.lines:
        h.update(line)
        h.update(b"\n")
    return h.intdigest()


def _sketch_lines_unit(w: DedupWorker, unit: JsonlUnit) -> UnitSketch:
    """Pass 1 over JSON lines: :func:`_sketch_unit`, plus the LINE_* of each line and a digest."""
    res = _sketch_lines(w.reader, w.hasher, unit.source, unit.lines, digest=True)  # type: ignore[arg-type]
    res.rejected.extend((item.reason, item.nbytes) for item in unit.rejected)
    if unit.raw is not None or res.digest is None:
        res.digest = _lines_digest(unit)
    if unit.raw is not None:
        res.frame = (unit.source, unit.frame_no, len(unit.lines.data))  # type: ignore[union-attr]
    return res


_CONTENT_KEY = re.compile(rb'"content"[ \t\r\n]*:[ \t\r\n]*"')  # the key and the body's opening quote
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_CANONICAL_KEY = b'"content":"'


def _outermost(head: bytes) -> bool:
    """Whether a key right after ``head`` (the line up to a quote) would be a key of the line's
    outermost object: after ``{`` or ``,`` (so that quote is no escaped one inside a string),
    with every string in ``head`` closed and every bracket opened after the first ``{`` closed."""
    last = head.rstrip(b" \t\r\n")[-1:]
    if last not in (b"{", b","):
        return False
    inner = head[head.find(b"{") + 1 :]
    if b"{" not in inner and b"[" not in inner:
        return True  # no nesting: the common case, without the string scan
    bare = _STRING.sub(b"", inner)
    return b'"' not in bare and bare.count(b"{") + bare.count(b"[") == bare.count(b"}") + bare.count(b"]")


def _split_row(reader: JsonlReader, source: str, lineno: int, data: bytes, start: int, end: int, key: int,
               body: int, close: int) -> tuple[CodeFile, bool] | None:
    """The record of the line data[start:end] read without its content: ``key`` is where a
    ``"content": "`` starts in the line, ``body`` where its string body starts and ``close`` the
    body's closing quote (found by the kernel, which checked and decoded the body). Returns the
    record (its content a placeholder) and whether the line without the body is byte for byte
    the row pass 2 writes (``<head>,"content":"<body>"}``, the layout of RUN/clean); None when the
    line is not a JSON object whose top-level "content" is that string, or its fields are not a
    valid record: such a line is decoded as a whole.

    The line with an empty body must parse as an object whose "content" is "" and the key must
    be a key of the outermost object (:func:`_outermost`); no other top-level "content" may
    follow (the rest of the line, parsed as an object of its own when it holds ``"content"`` or a
    backslash, which an escaped key would need, has no such key), and one before it is
    overridden by it (the last of duplicate keys wins, in orjson as in json)."""
    tail = data[close + 1 : end]
    if b"\\" in tail or b'"content"' in tail:  # perhaps a later "content" key: parse the rest alone
        rest = tail.lstrip(b" \t\r\n")
        if rest[:1] == b",":
            try:
                later = orjson.loads(b"{" + rest[1:])
            except orjson.JSONDecodeError:
                return None
            if not isinstance(later, dict) or "content" in later:
                return None
    head = data[start:key]
    if not _outermost(head):
        return None
    try:
        row = orjson.loads(data[start:body] + data[close:end])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(row, dict) or row.get("content") != "":
        return None
    row["content"] = "x"  # checked in the body by the kernel: a str, well-formed, not empty, no NUL
    rec = row_to_record(row, reader.columns, source, lineno, end - start + 1, reader.max_file_bytes, owned=True)
    if not isinstance(rec, CodeFile):
        return None
    canonical = (tail == b"}" and data[key:body] == _CANONICAL_KEY
                 and orjson.dumps(rec.json_head())[:-1] + b"," == head)
    return rec, canonical


def _sketch_lines(reader: JsonlReader, hasher: MinHashSignature, source: str,
                  lines: list[tuple[int, bytes]] | FrameLines, check_all: bool = False, digest: bool = False
                  ) -> UnitSketch:
    """Sketch of JSON lines (without their newline) as ``reader`` decodes them, with the LINE_* of each.

    With the native kernels (``verify: signature``, content in a "content" field) a line with a
    ``"content": "`` key is not parsed whole: the kernel sketches the content's string body where
    it lies in the frame (or the joined lines), still escaped, decoding its escapes and finding
    its closing quote (:meth:`MinHashSignature.signatures_escaped`), and the rest of the line is
    parsed with an empty body (:func:`_split_row`): any key order, spacing or escaping (as
    ``json.dumps`` writes with its defaults, ``\\uXXXX`` and surrogate pairs included); a frame's
    lines are never split. A body that fails a check (or has no token, or is over the reader's
    size limit), a line whose structure is not the one checked, and every other line are
    decoded as a whole, as :meth:`JsonlReader.decode_line` does:
    the same records, rejections and sketches either way. With ``digest``, the result's digest
    is that of the lines (:func:`_lines_digest`) when they were joined here (else None).
    """
    cfg = hasher.cfg
    n = len(lines)
    escaped = hasher.native and cfg.verify == "signature" and reader.columns.content == "content"
    data: bytes | None = None
    spans: list[tuple[int, int, int]] | None = None  # (line number, start, end) in data
    if isinstance(lines, FrameLines):
        data, spans = lines.data, lines.spans()
    elif escaped:
        data = b"\n".join([line for _, line in lines] + [b""])
        spans, pos = [], 0
        for lineno, line in lines:
            spans.append((lineno, pos, pos + len(line)))
            pos += len(line) + 1

    def line_at(i: int) -> tuple[int, bytes]:
        if spans is None:
            return lines[i]
        lineno, start, end = spans[i]
        return lineno, data[start:end]  # type: ignore[index]

    records: list[CodeFile | Rejected | None] = [None] * n
    status = bytearray(n)
    sketched = bytearray(n)  # 1: sketched from its body
    sig = np.empty((n, cfg.num_perm), dtype=np.uint32)
    ntok = np.empty(n, dtype=np.int64)
    nbytes = np.empty(n, dtype=np.int64)
    fast: list[int] = []
    spans_noted = array("I")  # per LINE_REWRITE_HEAD/BODY line: body start and closing quote, from the line's start
    keys: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    for i in range(n):
        m = None
        if escaped:
            lineno, start, end = spans[i]  # type: ignore[index]
            m = _CONTENT_KEY.search(data, start, end)  # type: ignore[arg-type]
        if m is None:
            records[i] = reader.decode_line(source, *line_at(i))
            continue
        fast.append(i)
        keys.append(m.start())
        starts.append(m.end())
        ends.append(end)
    if fast:
        eb = hasher.signatures_escaped(data, np.array(starts), np.array(ends))  # type: ignore[arg-type]
        idx = np.array(fast)
        sig[idx], ntok[idx], nbytes[idx] = eb.batch.sig, eb.batch.ntokens, eb.sizes
        ok = (eb.sizes >= 0) & (eb.batch.ntokens > 0) & (eb.sizes <= reader.max_file_bytes)
        close, canon = eb.close.tolist(), eb.canonical.tolist()
        for j, i in enumerate(fast):
            split = None
            if ok[j]:
                lineno, start, end = spans[i]  # type: ignore[index]
                split = _split_row(reader, source, lineno, data, start, end, keys[j], starts[j], close[j])  # type: ignore
            if split is None:
                records[i] = reader.decode_line(source, *line_at(i))
                continue
            records[i], head_canonical = split
            sketched[i] = 1
            status[i] = (LINE_VERBATIM if head_canonical else LINE_REWRITE_HEAD) if canon[j] else LINE_REWRITE_BODY
            if status[i] != LINE_VERBATIM and spans_noted is not None:
                if close[j] - start < 1 << 32:
                    spans_noted.extend((starts[j] - start, close[j] - start))
                else:
                    spans_noted = None  # (a line of 4 GiB: pass 2 finds them again)
    # Lines decoded as a whole: rejected, or sketched from their decoded content.
    decoded: list[int] = []
    contents: list[bytes] = []
    verbatim = rewrite = 0
    for i, rec in enumerate(records):
        if sketched[i]:
            continue
        if isinstance(rec, Rejected):
            status[i] = LINE_REJECTED
            continue
        # A dump in another layout has no verbatim line: after 16 records without one, the unit's
        # other lines are marked LINE_REWRITE unchecked (always a correct answer, only slower).
        if (check_all or verbatim or rewrite < 16) and orjson.dumps(rec.to_json_dict()) == line_at(i)[1]:  # type: ignore[union-attr]
            status[i] = LINE_VERBATIM
            verbatim += 1
        else:
            status[i] = LINE_REWRITE
            rewrite += 1
        decoded.append(i)
        contents.append(encode_content(rec.content))  # type: ignore[union-attr]
    if decoded:
        sb = hasher.signatures(contents)
        idx = np.array(decoded)
        sig[idx], ntok[idx] = sb.sig, sb.ntokens
        nbytes[idx] = [len(c) for c in contents]
    keep = [i for i, rec in enumerate(records) if isinstance(rec, CodeFile)]
    rejected = [(rec.reason, rec.nbytes) for rec in records if isinstance(rec, Rejected)]
    idx = np.array(keep, dtype=np.int64)
    sizes_kept = nbytes[idx]
    scores = [keep_score(records[i], size, cfg) for i, size in zip(keep, sizes_kept.tolist())]  # type: ignore[arg-type]
    batch = sketch_of(SignatureBatch(sig=sig[idx], ntokens=ntok[idx]), sizes_kept, scores, hasher,
                      contents if cfg.verify == "exact" else None)
    names = [member_names(records[i].repo_name, records[i].path) for i in keep]  # type: ignore[union-attr]
    joined = digest and data is not None and not isinstance(lines, FrameLines)
    return UnitSketch(rejected, batch, bytes(status), xxhash.xxh3_64_intdigest(data) if joined else None,  # type: ignore[arg-type]
                      names=names, bodies=spans_noted.tobytes() if spans_noted is not None else b"")


def _rows_unit(w: DedupWorker, unit: Any) -> UnitRows:
    out = UnitRows()
    for item in w.reader.decode(unit):
        if isinstance(item, Rejected):
            out.rejected.append((item.reason, item.nbytes))
        else:
            out.records.append((orjson.dumps(item.to_json_dict()) + b"\n", item.repo_name, item.path))
    return out


def _job_records(job: Pass2Job) -> int:
    return len(job[2])


def _untouched(job: Pass2Job) -> bool:
    """A frame pass 2 copies without decompressing it: verbatim lines only, none removed (the
    cluster members' names come from pass 1's spool)."""
    unit, status, flags, _checked, _bodies = job
    return bool(unit.skipped) and status.count(LINE_VERBATIM) == len(status) and max(flags, default=0) < _DROPPED


_DEFAULT_COLUMNS = ColumnsConfig()


def _rewritten(line: bytes) -> bytes | None:
    """The row pass 2 writes for the line of a record pass 1 read (default columns), as
    ``orjson.dumps(record.to_json_dict())`` of :meth:`JsonlReader.decode_line`'s record gives it,
    without the record: the same keys in the same order (repo_name, path, license, the others,
    content last), license "" as null. None when the row is not that simple (a field of another
    type, a list of licenses, a byte order mark): then the caller decodes it as usual. The checks
    on the content (size, NUL, blank) are pass 1's: the unit's digest proves the line unchanged."""
    if line[:1] != b"{":
        return None
    try:
        head = _head(orjson.loads(line))
    except orjson.JSONDecodeError:
        return None
    if head is None or type(head[0]) is not str:
        return None
    content, out = head
    out["content"] = content
    return orjson.dumps(out) + b"\n"


def _head(row: Any) -> tuple[Any, dict[str, Any]] | None:
    """A parsed line as pass 2 writes it, less its content: (the content as parsed, {repo_name,
    path, license ("" as null), the other keys in their order}); None when the row is not that
    simple (not an object, a field of another type, a list of licenses)."""
    if type(row) is not dict:
        return None
    content, repo, path, lic = row.pop("content", None), row.pop("repo_name", None), row.pop("path", None), \
        row.pop("license", None)
    if type(repo) is not str or type(path) is not str or (lic is not None and type(lic) is not str):
        return None
    out = {"repo_name": repo, "path": path, "license": lic or None}
    out.update(row)
    return content, out


def _bodies(data: bytes, spans: list[tuple[int, int, int]], status: bytes, flags: bytes, noted: bytes = b""
            ) -> dict[int, tuple[int, int]]:
    """{record: (where its content body starts, its closing quote)} in ``data`` for the kept
    LINE_REWRITE_HEAD and LINE_REWRITE_BODY lines of a unit (``spans``, ``status`` per line; ``flags`` per record):
    from ``noted``, pass 1's spans of them (:attr:`UnitSketch.bodies`; the unit's digest proves its
    lines unchanged), else found again, the closing quotes in one kernel call
    (:func:`~preprocessing.dedup.native.kernel` ``string_ends``). Empty without the C kernels
    (then :func:`_rewritten` parses each line whole)."""
    if noted and len(noted) == 8 * (status.count(LINE_REWRITE_HEAD) + status.count(LINE_REWRITE_BODY)):
        return _noted_bodies(spans, status, flags, noted)
    want: list[tuple[int, int, int]] = []  # (record, body start, line end)
    r = 0
    for (_lineno, start, end), st in zip(spans, status):
        if st == LINE_REJECTED:
            continue
        if st >= LINE_REWRITE_HEAD and not flags[r] & _DROPPED:
            m = _CONTENT_KEY.search(data, start, end)  # pass 1's match (the line is unchanged: digest)
            if m is not None:
                want.append((r, m.end(), end))
        r += 1
    if not want or not native.available():
        return {}
    try:
        string_ends = native.kernel("string_ends")
        native.kernel("orjson_body")
    except AttributeError:  # an extension built before these calls (native.py warns it is stale)
        return {}
    rec, starts, ends = zip(*want)
    close = np.empty(len(want), dtype=np.int64)
    string_ends(data, np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64), close)
    return dict(zip(rec, zip(starts, close.tolist())))


def _noted_bodies(spans: list[tuple[int, int, int]], status: bytes, flags: bytes, noted: bytes
                  ) -> dict[int, tuple[int, int]]:
    """:func:`_bodies` from pass 1's spans (``noted``: per LINE_REWRITE_HEAD/BODY line, uint32 body
    start and closing quote from the line's start)."""
    pairs = array("I")
    pairs.frombytes(noted)
    out: dict[int, tuple[int, int]] = {}
    r = p = 0
    for (_lineno, start, _end), st in zip(spans, status):
        if st == LINE_REJECTED:
            continue
        if st >= LINE_REWRITE_HEAD:
            if not flags[r] & _DROPPED:
                out[r] = (start + pairs[p], start + pairs[p + 1])
            p += 2
        r += 1
    return out


_BODY_END = b'"}\n'


def _rewritten_head(data: bytes, start: int, end: int, body: int, close: int, canonical: bool = True
                    ) -> tuple[bytes, bytes | memoryview, bytes] | None:
    """:func:`_rewritten` of the LINE_REWRITE_HEAD (``canonical``) or LINE_REWRITE_BODY line
    ``data[start:end]`` whose content body is ``data[body:close]``, as its three pieces (joined:
    the line), so that the body is copied once, into the frame that holds it
    (:func:`~preprocessing.writers.jsonl.unit_frames` joins a frame's pieces): a canonical body
    (orjson's bytes already, pass 1's kernel found) is a view of ``data``, another one transcoded
    to orjson's escaping in C (``orjson_body``: ``\\uXXXX`` to UTF-8, ``\\/`` to ``/``); only the
    rest of the line is parsed and serialised again. The same bytes as :func:`_rewritten`
    (content is the last key it writes); None where that would be None, or without the body
    (``close`` < 0)."""
    if close < 0 or data[start:start + 1] != b"{":
        return None
    try:
        head = _head(orjson.loads(data[start:body] + data[close:end]))
    except orjson.JSONDecodeError:
        return None
    if head is None or head[0] != "":
        return None
    text = memoryview(data)[body:close] if canonical else native.kernel("orjson_body")(data, body, close)
    if text is None:
        return None
    return orjson.dumps(head[1])[:-1] + b',"content":"', text, _BODY_END


def _joined(line: bytes | tuple[bytes | memoryview, ...]) -> bytes:
    """A line given as bytes or as its pieces (:func:`_rewritten_head`), as bytes."""
    return b"".join(line) if type(line) is tuple else line


def _rows_lines_unit(w: DedupWorker, job: Pass2Job) -> UnitRows:
    """:func:`_unit_rows`, its compressed frames handed over by a file where the worker shares the
    driver's disk (:func:`hand_over`)."""
    out = _unit_rows(w, job)
    if w.handover_dir is not None and os.getpid() != w.driver:
        hand_over(out, w.handover_dir)
    return out


def hand_over(out: UnitRows, directory: str) -> None:
    """Write ``out``'s compressed frames to a new file in ``directory`` (one ``writev``) and leave
    their lengths in their place (:attr:`UnitRows.handed`): the driver's writer has the kernel copy
    them into the shard (:class:`~preprocessing.writers.jsonl.FileFrame`), so they do not go
    through the pipes and the driver's memory (pickled, piped in 64 KiB pieces, unpickled, written
    again: ~0.2 s of pass 2's 1.2 s on the 642 MB `.gz` dump with 2 workers on 2 cores, measured
    by leaving the frames out). Nothing is handed over when the file cannot be written (a warning;
    the frames then travel as bytes)."""
    raws = ([out.frame] if out.frame is not None else []) + [f[0] for f in out.frames or ()]
    if not raws:
        return
    path = None
    try:
        fd, path = tempfile.mkstemp(dir=directory, suffix=".zst")
        try:
            left = sum(map(len, raws))
            while left:
                left -= os.writev(fd, raws)
                if left:  # (a partial write: the rest)
                    raws = [memoryview(b"".join(raws))[-left:]]
        finally:
            os.close(fd)
    except OSError as exc:
        if path is not None:
            os.unlink(path)
        warnings.warn(f"dedup's pass 2 cannot hand its frames over in {directory} ({exc.strerror}): "
                      "they go through the pipe", RuntimeWarning, stacklevel=2)
        return
    if out.frame is not None:
        out.frame = len(out.frame)  # type: ignore[arg-type]
    if out.frames:
        out.frames = [(len(raw), nbytes, rows, sizes) for raw, nbytes, rows, sizes in out.frames]  # type: ignore[arg-type]
    out.handed = path


def _unit_rows(w: DedupWorker, job: Pass2Job) -> UnitRows:
    """Pass 2 over JSON lines: a verbatim line of a kept file is written as read, the other kept
    lines are serialised again (:func:`_rewritten`; a line whose body pass 1 sketched only around
    its body, :func:`_rewritten_head`), rejected lines decoded again for their reason.
    A removed record's line is not decoded when the unit's digest is checked (``checked``; the
    cluster members' names come from pass 1, :meth:`LineNotes.names_at`); unchecked (pass 1 fused
    into `stream`), every line but a kept verbatim one is decoded as :meth:`JsonlReader.decode_line`
    does, and must still give a record.

    A whole zstd frame is copied as it is when its lines are verbatim and none is removed (and
    not even decompressed then); otherwise its kept rows are compressed here into one frame of
    their own, so the workers, not the main process, do the (de)compression.
    """
    unit, status, flags, checked, noted = job
    if isinstance(unit, FrameUnit):  # (read here: the driver ships its place, not its bytes)
        unit = unit.unit()
    reader: JsonlReader = w.reader  # type: ignore[assignment]
    out = UnitRows(digest=_lines_digest(unit))
    if _untouched(job):
        out.frame, out.frame_nbytes = unit.raw, -1
        out.records = [(None, "", "")] * unit.skipped
        return out
    unit = unit.decompress()
    records, r = out.records, 0
    if isinstance(unit.lines, FrameLines) and unit.raw is not None and not unit.rejected \
            and status.count(LINE_VERBATIM) == len(status):
        # A frame of verbatim lines: copied as it is when nothing is removed, else its runs of
        # kept lines (slices of the frame, newlines included) compressed as one new frame.
        data = unit.lines.data
        pieces: list[bytes] = []
        run = -1  # where the current run of kept lines starts (-1: in no run)
        for (lineno, start, end), f in zip(unit.lines.spans(), flags):
            if f & _DROPPED:
                if run >= 0:
                    pieces.append(data[run:start])
                    run = -1
            elif run < 0:
                run = start
            if f and not checked:
                item = reader.decode_line(unit.source, lineno, data[start:end])
                if not isinstance(item, CodeFile):
                    raise ValueError(CHANGED.format(f"{unit.source}:{lineno} is rejected now"))  # noqa: TRY004
            records.append((None, "", ""))
        if run == 0:  # nothing removed
            out.frame, out.frame_nbytes = unit.raw, len(data)
            return out
        if run > 0:
            pieces.append(data[run:])
        kept = b"".join(pieces)
        if kept:
            out.frame, out.frame_nbytes = compress_frame(w.compressor, kept), len(kept)
        return out
    fast = checked and reader.columns == _DEFAULT_COLUMNS
    # The lines of a FrameLines unit are sliced out of its buffer only when read (not a removed one)
    spans = unit.lines.spans() if isinstance(unit.lines, FrameLines) else None
    data = unit.lines.data if isinstance(unit.lines, FrameLines) else b""
    bodies = _bodies(data, spans, status, flags, noted) if fast and spans is not None else {}
    line: bytes | None
    for item, st in zip(spans if spans is not None else unit.lines, status):
        if spans is None:
            lineno, line = item
        else:
            lineno, start, end = item
            line = None
        if st == LINE_REJECTED:
            line = data[start:end] if line is None else line
            item = reader.decode_line(unit.source, lineno, line)
            if isinstance(item, CodeFile):
                raise ValueError(CHANGED.format(f"{unit.source}:{lineno} was rejected, now it is not"))
            out.rejected.append((item.reason, item.nbytes))
            continue
        f = flags[r]
        r += 1
        if f & _DROPPED and checked:
            records.append((None, "", ""))
            continue
        text = None
        if st >= LINE_REWRITE_HEAD and fast and line is None:
            text = _rewritten_head(data, start, end, *bodies.get(r - 1, (-1, -1)), st == LINE_REWRITE_HEAD)
            if text is not None:
                records.append((text, "", ""))
                continue
        line = data[start:end] if line is None else line
        if (f == 0 or checked) and st == LINE_VERBATIM:
            records.append((None if f & _DROPPED else line + b"\n", "", ""))
            continue
        text = _rewritten(line) if fast else None
        if text is None:
            item = reader.decode_line(unit.source, lineno, line)
            if not isinstance(item, CodeFile):
                raise ValueError(CHANGED.format(f"{unit.source}:{lineno} is rejected now"))  # noqa: TRY004 - not a type error
            if f & _DROPPED:
                text = None
            elif st == LINE_VERBATIM:
                text = line + b"\n"
            else:
                text = orjson.dumps(item.to_json_dict()) + b"\n"
            if not checked:
                records.append((text, item.repo_name, item.path))
                continue
        records.append((text, "", ""))
    out.rejected.extend((item.reason, item.nbytes) for item in unit.rejected)
    texts = [text for text, _, _ in records if text is not None]  # (bytes, or a line's pieces)
    if unit.raw is not None:  # a frame that lost rows: its kept rows as one new frame
        data = joined_lines(texts)
        if data:
            out.frame, out.frame_nbytes = compress_frame(w.compressor, data), len(data)
        out.records = [(None, a, b) for _, a, b in records]
        return out
    # Lines the driver read: their kept rows compressed here when they fill a frame (the writer's
    # rule for a unit's own frames), so that the driver only appends them; a line given as its
    # pieces is joined only there, into its frame.
    sizes = [sum(map(len, t)) if type(t) is tuple else len(t) for t in texts]  # (once: unit_frames too)
    packed = unit_frames(texts, w.compressor, sizes=sizes)
    if packed is not None:
        out.frames, i = [], 0
        for raw, nbytes, rows in packed:
            out.frames.append((raw, nbytes, rows, sizes[i:i + rows]))
            i += rows
        out.records = [(None, a, b) for _, a, b in records]
    elif any(type(t) is tuple for t in texts):  # (the lines go to the driver's writer as bytes)
        out.records = [(None if t is None else _joined(t), a, b) for t, a, b in records]
    return out


class _NotFrames(Exception):
    """The input is not all .zst files of whole-line frames: pass 1 splits it in the driver."""


class _EveryFrame:
    """``skip`` for the frame walker: every frame comes with its compressed bytes, not decompressed."""

    def __contains__(self, frame_no: object) -> bool:
        return True


@dataclass
class FrameRef:
    """A work unit that names its bytes: one zstd frame of a file (offset and length), found from
    the frame headers without decompressing it; the worker reads and decompresses it."""

    source: str
    offset: int
    length: int
    frame_no: int


@dataclass
class FrameUnit:
    """A pass-2 unit that names its bytes: a whole zstd frame of ``skipped`` lines (the first is
    line ``first_line``) at ``offset`` in its file, as pass 1 found it (:class:`FrameRef`). What it
    carries to a worker is these numbers; :meth:`unit` (in the worker, or in the driver for a frame
    copied as it is) reads the frame and gives the reader's unit of a frame it did not decompress."""

    source: str
    offset: int
    length: int
    frame_no: int
    skipped: int
    first_line: int

    @property
    def nlines(self) -> int:
        return self.skipped

    def unit(self) -> JsonlUnit:
        try:
            with open_file(self.source) as f:  # (a URL: fsspec)
                f.seek(self.offset)
                raw = f.read(self.length)
        except OSError as exc:
            raise InputError(f"{self.source}: cannot read ({exc.strerror or exc})") from None
        if len(raw) != self.length:
            raise ValueError(CHANGED.format(f"{self.source}: frame {self.frame_no} is cut"))
        return JsonlUnit(self.source, raw=raw, frame_no=self.frame_no, skipped=self.skipped,
                         first_line=self.first_line)


def _frame_refs(reader: JsonlReader) -> Iterator[FrameRef]:
    """The frames of every input file (all .zst, checked by the caller), in order, found from the
    frame and block headers of every file before the first is yielded (nothing is decompressed);
    _NotFrames when an input is not made of frames read whole (an empty, truncated or corrupt file,
    a frame too large to read whole), so that pass 1 starts over on no work done. (Whether each
    frame holds whole lines is known only once it is decompressed: a worker that finds one that
    does not returns None, and pass 1 starts over then.)"""
    refs: list[array] = []  # per file: (offset, length, frame number) triples, 24 bytes per frame
    for path in reader.paths:
        found = array("q")
        try:
            with open_file(path) as f:
                for data, raw, frame_no in _iter_zstd_frames(f, _EveryFrame(), whole_only=True):
                    if data is not None or raw is None:
                        raise _NotFrames
                    found.extend((f.tell() - len(raw), len(raw), frame_no))
        except (TruncatedInput, OSError):
            raise _NotFrames from None  # the driver-side units name the problem as usual
        if not found:
            raise _NotFrames
        refs.append(found)
    for path, found in zip(reader.paths, refs):
        for i in range(0, len(found), 3):
            yield FrameRef(str(path), found[i], found[i + 1], found[i + 2])


def _frame_cost(ref: FrameRef) -> int:
    return max(1, ref.length >> 12)  # about one record per 4 KiB of compressed code


def _sketch_frame(w: DedupWorker, ref: FrameRef) -> UnitSketch | None:
    """Pass 1 of one frame the worker reads itself: what :func:`_sketch_lines_unit` gives for the
    frame's unit, or None when the frame is not a unit of its own (not whole lines, blank lines,
    more than batch_records lines): then the driver splits the input as before."""
    reader: JsonlReader = w.reader  # type: ignore[assignment]
    with open_file(ref.source) as f:  # the worker opens its own input (a URL: fsspec)
        f.seek(ref.offset)
        raw = f.read(ref.length)
    try:
        data = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW).decompressobj().decompress(raw)
    except zstandard.ZstdError:
        return None
    if not data.endswith(b"\n"):
        return None
    # Pass 1 counts rejections, it does not place them: only line 1 must be known (a BOM may open it).
    lines = FrameLines(data, 1 if ref.frame_no == 0 else 2)
    if len(lines) > reader.batch_records or lines.has_blank():
        return None
    res = _sketch_lines_unit(w, JsonlUnit(ref.source, lines, raw=raw, frame_no=ref.frame_no))
    res.ref = (ref.offset, ref.length)
    return res


def _units(reader: Reader, limit: int | None, frames: bool = False) -> Iterator[Any]:
    units = reader.units(frames=True) if frames and isinstance(reader, JsonlReader) else reader.units()
    return units if limit is None else limit_units(units, limit)


def _peak_rss_mb() -> dict[str, float]:
    # ru_maxrss is in KiB on Linux; children = the largest worker process.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"main": round(own, 1), "largest_worker": round(kids, 1)}


def _cluster_and_write(
    cfg: NearDedupConfig,
    index: NearDedupIndex,
    reader: Reader,
    limit: int | None,
    executor: Executor,
    out_dir: Path,
    lines: LineNotes | None,
    pass1_rejected: Counter,
    t0: float,
    pass1_in_stream: bool = False,
) -> dict[str, Any]:
    """After pass 1 (which started at ``t0``): cluster, pass 2 over ``reader`` into ``out_dir``; the stats."""
    stats = StageStats(STAGE)  # counted in pass 2; pass 1 counts rejections only to check the input
    t1 = time.perf_counter()
    result = index.cluster()
    t2 = time.perf_counter()
    # Pass 2: stream the input again, keep what is not a removed near-duplicate.
    with ShardedJsonlWriter(out_dir, "part", cfg.shard_max_bytes, cfg.compression_level) as writer, \
            ShardedJsonlWriter(out_dir, "clusters", 1 << 62, cfg.compression_level) as cluster_writer:
        _filter_pass(cfg, reader, limit, executor, result, stats, writer, cluster_writer, lines)
    t3 = time.perf_counter()
    if pass1_rejected != stats.rejected:
        raise ValueError(CHANGED.format("rejections differ"))
    (out_dir / "clusters-00000.jsonl.zst").replace(out_dir / "clusters.jsonl.zst")
    assert stats.balanced, f"accounting broken in {STAGE}: {stats.to_dict()}"
    wall = t3 - t0
    notes: Any = lines.notes(reader) if lines is not None else reader
    out = {
        "format_version": STATS_FORMAT_VERSION,
        "stage": "dedup",
        "stages": {STAGE: stats.to_dict()},
        "totals": {
            "records_read": stats.records_in,
            "kept": stats.kept,
            "dropped": dict(sorted(stats.dropped.items())),
            "rejected": dict(sorted(stats.rejected.items())),
            "bytes_read": stats.bytes_in,
            "bytes_kept": stats.bytes_out,
        },
        STAGE: result.stats,
        "outputs": [p.name for p in writer.paths] + ["clusters.jsonl.zst"],
        "warnings": notes.warnings,
        "input_files": notes.input_files,
        "workers": executor.workers,
        "wall_time_s": round(wall, 3),
        "pass1_s": round(t1 - t0, 3),
        "cluster_s": round(t2 - t1, 3),
        "pass2_s": round(t3 - t2, 3),
        "throughput_mb_s": round(stats.bytes_in / 1e6 / max(wall, 1e-9), 2),
        "peak_rss_mb": _peak_rss_mb(),
        "config": to_dict(cfg),
    }
    if pass1_in_stream:
        out["pass1_in_stream"] = True  # pass1_s is the whole `stream` pass that computed the sketches
    return out


def _filter_pass(
    cfg: NearDedupConfig,
    reader: Reader,
    limit: int | None,
    executor: Executor,
    result: ClusterResult,
    stats: StageStats,
    writer: ShardedJsonlWriter,
    cluster_writer: ShardedJsonlWriter,
    lines: LineNotes | None = None,
) -> None:
    """Write the kept records and, as each cluster's last member passes, its clusters.jsonl row."""
    by_file = lines is not None and lines.files is not None and any(spool is None for _, spool in lines.files)
    if by_file:
        units = iter(())  # (the workers read their files again: see below)
    elif lines is not None and lines.files is not None:  # every file's lines kept by its worker in pass 1
        refs = executor.workers > 1  # (the workers share this disk, or there would be no spools)
        units = (unit for _, spool in lines.files for unit in linespool.replay(spool, refs))
    elif lines is not None and lines.replayed:  # pass 1's units from the work dir: the input is not read again
        units = lines.line_spool.replay()  # type: ignore[union-attr]
    elif lines is None or not cfg.copy_frames:
        units = _units(reader, limit)
    elif lines.by_ref:  # every unit a frame the workers read in pass 1: they read it again, by its place
        units = lines.frame_units(reader)  # type: ignore[arg-type]
    elif limit is None and isinstance(reader, JsonlReader):
        units = reader.units(frames=True, skip=lines.frame_lines())
    else:
        units = _units(reader, limit, frames=True)
    context = DedupWorker(reader, cfg)
    if lines is not None and lines.spool_dir is not None and executor.workers > 1 and executor.local_disk \
            and hasattr(os, "copy_file_range"):  # the workers' frames come back in files (hand_over)
        handover = Path(lines.spool_dir, "frames").resolve()
        handover.mkdir(parents=True, exist_ok=True)
        context.handover_dir = str(handover)
    if by_file:  # the workers read their files again, a file per task
        results = (res for rows in executor.map(_rows_file, lines.file_jobs(result), context)
                   for res in rows)
    elif lines is None:
        results = executor.map(_rows_unit, units, context, batch=RECORDS_PER_TASK)
    else:
        # An untouched frame is copied here (no work for a worker). Workers decompress and
        # recompress the other frames themselves; lines this process read (a file that is one big
        # frame, a plain file) travel to them as one buffer per unit (FrameLines) and come back as
        # the unit's compressed frames when its kept rows fill one (UnitRows.frames), else as lines.
        frames = bool(lines.frames)  # (none without copy_frames)
        results = executor.map(_rows_lines_unit, lines.jobs(units, result), context, window=4 * executor.workers,
                               inline=_untouched if frames else None, batch=RECORDS_PER_TASK, cost=_job_records)
    # A file's spool is removed as the results of its last unit arrive (no task reads it again), in
    # a background thread: ~5 ms per 40 MB file that the stage's end would otherwise wait for.
    last_units: dict[int, Any] = {}  # unit -> the spool of the file it ends
    if lines is not None and lines.files is not None and not by_file:
        for end, (n, spool) in zip(accumulate(n for n, _ in lines.files), lines.files):
            if n:
                last_units[end - 1] = spool
    with ThreadPoolExecutor(1, thread_name_prefix="spool-removal") as removal:  # (no thread until a submit)
        def unit_done(u: int) -> None:
            spool = last_units.pop(u, None)
            if spool is not None:
                removal.submit(linespool.remove, spool)

        _reduce_rows(results, lines, result, stats, writer, cluster_writer, unit_done)


def _reduce_rows(results: Iterator[UnitRows], lines: LineNotes | None, result: ClusterResult, stats: StageStats,
                 writer: ShardedJsonlWriter, cluster_writer: ShardedJsonlWriter, unit_done: Any) -> None:
    """Pass 2's reduce, in unit order: the kept lines and frames to ``writer``, the counts to
    ``stats``, each cluster's row to ``cluster_writer`` as its last member passes; ``unit_done(u)``
    after unit ``u``."""
    nbytes_of = np.asarray(result.nbytes)  # (a plain view of the memmap: slicing a memmap costs ~20 µs)
    cluster, kept, sim, drop = result.cluster, result.kept, result.similarity, result.drop
    left = (np.bincount(cluster[cluster >= 0], minlength=result.n) if result.n else np.zeros(0, np.int64)).tolist()
    open_clusters: dict[int, list[bytes]] = {}  # cluster -> its members so far (clusters.jsonl bytes)
    ordinal = 0
    for u, res in enumerate(results):
        if lines is not None and lines.digests is not None and res.digest != lines.digests[u]:
            raise ValueError(CHANGED.format(f"lines of work unit {u} differ"))
        for reason, nbytes in res.rejected:
            stats.reject(reason, nbytes)
        k = len(res.records)
        if ordinal + k > result.n:
            raise ValueError(CHANGED.format("more records"))
        # (per unit in numpy; a Python step only per line written here and per cluster member)
        sl = slice(ordinal, ordinal + k)
        sizes, dropped = nbytes_of[sl], drop[sl]
        n_drop = int(np.count_nonzero(dropped))
        if res.frame is not None or res.frames:
            with _frames_of(res) as (frame, frames):
                if frame is not None:
                    nbytes = res.frame_nbytes if res.frame_nbytes >= 0 else lines.frames[u][2]  # type: ignore[union-attr]
                    writer.write_frame(frame, nbytes, k - n_drop)
                for raw, nbytes, rows, line_sizes in frames:
                    writer.write_frame(raw, nbytes, rows, line_sizes)
        stats.records_in += k  # (StageStats.keep and .drop for each record, summed)
        stats.kept += k - n_drop
        total = int(sizes.sum())
        stats.bytes_in += total
        stats.bytes_out += total - (int(sizes[dropped].sum()) if n_drop else 0)
        if n_drop:
            stats.dropped[DROP_REASON] += n_drop
        if res.frame is None and not res.frames:  # (else no record carries a line)
            write_line = writer.write_line
            for (line, _a, _b), d in zip(res.records, dropped.tolist()):
                if line is not None and not d:
                    write_line(line)
        clusters = cluster[sl]
        at = np.flatnonzero(clusters >= 0)
        if len(at):
            closed = []  # (the unit's rows, in the order their clusters close: one write)
            for c, kc, member in zip(clusters[at].tolist(), kept[sl][at].tolist(),
                                     _members(res, lines, ordinal, k, at, sim[sl][at])):
                members = open_clusters.setdefault(c, [])
                members.append(member)
                left[c] -= 1
                if left[c] == 0:
                    closed.append(_CLUSTER_ROW % (c, len(members), kc, b",".join(members)))
                    del open_clusters[c]
            cluster_writer.write_lines(closed)
        ordinal += k
        unit_done(u)
    if ordinal != result.n:
        raise ValueError(CHANGED.format("fewer records"))
    if cluster_writer.rows == 0:
        cluster_writer.write_line(b"")  # an empty (but valid) clusters file


@contextmanager
def _frames_of(res: UnitRows) -> Iterator[tuple[bytes | FileFrame | None, list[tuple[bytes | FileFrame, int, int, list[int]]]]]:
    """``res.frame`` and ``res.frames`` to write: their bytes, or where a worker handed them over
    (:func:`hand_over`) each one's place in that file (:class:`FileFrame`); the file is closed and
    removed after."""
    if res.handed is None:
        yield res.frame, res.frames or []  # type: ignore[misc]
        return
    fd = os.open(res.handed, os.O_RDONLY)
    try:
        frame, offset = None, 0
        if res.frame is not None:
            frame, offset = FileFrame(fd, 0, res.frame), res.frame  # type: ignore[arg-type]
        frames = []
        for length, nbytes, rows, line_sizes in res.frames or ():
            frames.append((FileFrame(fd, offset, length), nbytes, rows, line_sizes))  # type: ignore[arg-type]
            offset += length  # type: ignore[operator]
        yield frame, frames
    finally:
        os.close(fd)
        os.unlink(res.handed)


def member_names(repo_name: str, path: str) -> bytes:
    """A cluster member's names as its clusters.jsonl row holds them: ``"repo_name":…,"path":…``
    (orjson's bytes, what pass 1 keeps of each record)."""
    return orjson.dumps({"repo_name": repo_name, "path": path})[1:-1]


_MEMBER = b'{"ordinal":%d,%s,"similarity":%s}'
_CLUSTER_ROW = b'{"cluster":%d,"size":%d,"kept":%d,"members":[%s]}\n'
"""A clusters.jsonl row and its members, as ``orjson.dumps`` writes the dicts ``{"cluster", "size",
"kept", "members": [{"ordinal", "repo_name", "path", "similarity"}, ...]}`` (compact, keys in this
order), assembled from bytes: no dict per member in the driver."""


def _members(res: UnitRows, lines: LineNotes | None, ordinal: int, k: int, at: np.ndarray,
             similarity: np.ndarray) -> list[bytes]:
    """The clusters.jsonl members of a unit's records ``at`` (records ``ordinal`` to ``ordinal + k``)."""
    where = at.tolist()
    if lines is not None:
        picked = lines.names_at(ordinal, k, where)
    else:
        picked = [member_names(res.records[i][1], res.records[i][2]) for i in where]
    # (each similarity rounded as before, written by orjson as in the row's dict; a float has no comma)
    sims = orjson.dumps([round(s, 4) for s in similarity.tolist()])[1:-1].split(b",")
    return [_MEMBER % (ordinal + i, name, s) for i, name, s in zip(where, picked, sims)]


class CleanRowSketcher:
    """Worker side of near-dedup fused into `stream`: pass 1 over the rows before they are written.

    Each row is decoded as `dedup` would decode its line from RUN/clean (same reader, columns and
    limits), so the sketches, keep scores, LINE_* and rejections are exactly those of a separate
    pass 1. Rows are sketched before exact dedup (a worker does not know which survive); the main
    process keeps the sketches of the rows it writes.
    """

    def __init__(self, cfg: NearDedupConfig, inputs: InputConfig):
        self.cfg = cfg
        self.reader = JsonlReader([], inputs.columns, inputs.batch_records, inputs.max_file_bytes)
        self._hasher: MinHashSignature | None = None  # built in the worker, on first use

    def __call__(self, rows: list[bytes]) -> UnitSketch:
        """Sketch of serialised rows (each ending in a newline), LINE_* per row, rejections in order."""
        if self._hasher is None:
            self._hasher = MinHashSignature(self.cfg)
        lines = [(0, row[:-1]) for row in rows]
        return _sketch_lines(self.reader, self._hasher, "RUN/clean", lines, check_all=True)
