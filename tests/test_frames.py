"""zstd frames: the writer ends a frame after whole lines, the reader walks frames by their headers
and hands whole-frame units their compressed bytes, and `dedup` copies untouched frames as they are."""

from __future__ import annotations

import errno
import json
import os
import warnings
from pathlib import Path

import orjson
import pytest
import zstandard

from preprocessing.dedup import near
from preprocessing.dedup.minhash import NearDedupConfig
from preprocessing.readers import InputConfig, JsonlReader
from preprocessing.readers import jsonl as jsonl_mod
from preprocessing.readers.jsonl import FrameLines
from preprocessing.record import CodeFile
from preprocessing.stages.dedup import run_near_dedup
from preprocessing.writers import ShardedJsonlWriter
from preprocessing.writers import jsonl as writer_mod
from tests.conftest import stdlib_rows


def frames_of(path: Path) -> list[tuple[bytes, bytes | None]]:
    with open(path, "rb") as f:
        return [(data, raw) for data, raw, _ in jsonl_mod._iter_zstd_frames(f)]


def decompressed(path: Path) -> bytes:
    with open(path, "rb") as f:
        return zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()


def test_writer_ends_frames_after_whole_lines_and_copies_frames(tmp_path: Path):
    rows = stdlib_rows(30)
    lines = [orjson.dumps(r) + b"\n" for r in rows]
    with ShardedJsonlWriter(tmp_path / "a", frame_bytes=40_000) as w:
        for line in lines:
            w.write_line(line)
    path = w.paths[0]
    frames = frames_of(path)
    assert len(frames) > 3
    assert b"".join(data for data, _ in frames) == b"".join(lines) == decompressed(path)
    for data, raw in frames:  # each frame: whole lines, reaching frame_bytes only with its last line
        assert raw is not None and data.endswith(b"\n")
        assert len(data) - len(data[:-1].rsplit(b"\n", 1)[-1]) - 1 < 40_000
    # write_frame appends a frame as it is, between lines compressed by the writer itself
    with ShardedJsonlWriter(tmp_path / "b", frame_bytes=1 << 30) as w2:
        w2.write_line(lines[0])
        w2.write_frame(frames[1][1], len(frames[1][0]), frames[1][0].count(b"\n"))
        w2.write_line(lines[-1])
    assert decompressed(w2.paths[0]) == lines[0] + frames[1][0] + lines[-1]
    assert w2.rows == 2 + frames[1][0].count(b"\n") and w2.bytes_written == len(decompressed(w2.paths[0]))
    assert frames_of(w2.paths[0])[1] == frames[1]  # copied byte for byte
    # a shard of empty lines only is still a valid zstd file (one empty frame)
    with ShardedJsonlWriter(tmp_path / "c") as w3:
        w3.write_line(b"")
    assert decompressed(w3.paths[0]) == b"" and w3.paths[0].stat().st_size > 0


def test_shards_are_flushed_and_published_in_the_background_with_the_same_bytes(tmp_path: Path, monkeypatch):
    """The writer's disk thread (a flush every SYNC_BYTES, a full shard fsynced and renamed while the
    next is written): the same shards, byte for byte, as with a flush only at each shard's end;
    when close() returns every shard has its final name and no temporary file is left; an error of
    that thread is raised by close(), and a shard it could not complete keeps no final name."""
    lines = [orjson.dumps(r) + b"\n" for r in stdlib_rows(60)]

    def shards(out: Path) -> dict[str, bytes]:
        with ShardedJsonlWriter(out, max_bytes=150_000, frame_bytes=30_000) as w:
            for line in lines:
                w.write_line(line)
        assert sorted(p.name for p in out.iterdir()) == [p.name for p in w.paths]  # (no .tmp left)
        return {p.name: p.read_bytes() for p in w.paths}

    monkeypatch.setattr(writer_mod, "SYNC_BYTES", 1 << 40)  # a flush at each shard's end only
    ref = shards(tmp_path / "ref")
    assert len(ref) > 3
    monkeypatch.setattr(writer_mod, "SYNC_BYTES", 5_000)  # a flush after every frame or two
    assert shards(tmp_path / "w") == ref

    def full_disk(fd: int, tmp: Path, final: Path) -> None:
        os.close(fd)
        raise OSError(28, "No space left on device", str(tmp))

    monkeypatch.setattr(writer_mod, "_publish", full_disk)
    with pytest.raises(OSError, match="No space left"):
        shards(tmp_path / "full")
    assert not list((tmp_path / "full").glob("part-*"))


def test_units_of_whole_frames_carry_their_bytes_and_split_the_same_way(tmp_path: Path):
    rows = stdlib_rows(40)
    with ShardedJsonlWriter(tmp_path, frame_bytes=50_000) as w:
        for r in rows:
            w.write_row(r)
    reader = JsonlReader(str(w.paths[0]))
    plain, framed = list(reader.units()), list(reader.units(frames=True))
    assert [u.lines for u in plain] == [u.lines for u in framed]
    assert all(u.raw is None for u in plain)
    frames = frames_of(w.paths[0])
    assert [u.raw for u in framed] == [raw for _, raw in frames]
    for u, (data, _) in zip(framed, frames):
        assert b"".join(line + b"\n" for _, line in u.lines) == data
    assert [r.path for r in reader.records()] == [r["path"] for r in rows]
    # a unit is never longer than batch_records: a frame with more lines is split, without its bytes
    small = JsonlReader(str(w.paths[0]), batch_records=2)
    assert all(len(u.lines) <= 2 for u in small.units(frames=True))
    assert [r.path for r in small.records()] == [r["path"] for r in rows]


def test_frame_walk_skips_skippable_frames_and_streams_large_frames(tmp_path: Path, monkeypatch):
    rows = stdlib_rows(12)
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    cctx = zstandard.ZstdCompressor(level=1, write_checksum=True)
    skippable = (0x184D2A53).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"meta!"
    path = tmp_path / "x.jsonl.zst"
    path.write_bytes(skippable + cctx.compress(data[:1000] + data[1000:].split(b"\n", 1)[0] + b"\n")
                     + cctx.compress(data[1000:].split(b"\n", 1)[1]))
    assert b"".join(d for d, _ in frames_of(path)) == data
    assert [r.path for r in JsonlReader(str(path)).records()] == [r["path"] for r in rows]
    monkeypatch.setattr(jsonl_mod, "FRAME_RAW_MAX", 1000)  # frames above it: block by block, no bytes
    pieces = frames_of(path)
    assert b"".join(d for d, _ in pieces) == data and all(raw is None for _, raw in pieces)
    assert [r.path for r in JsonlReader(str(path)).records()] == [r["path"] for r in rows]


@pytest.mark.parametrize("damage", ["garbage", "bad_block", "cut_in_header"])
def test_corrupt_zstd_is_named_not_a_traceback(tmp_path: Path, damage: str):
    rows = stdlib_rows(6)
    good = zstandard.ZstdCompressor().compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    path = tmp_path / "bad.jsonl.zst"
    if damage == "garbage":
        path.write_bytes(good + b"this is not zstd data at all\n")
    elif damage == "bad_block":
        path.write_bytes(good + good[:6] + b"\xff\xff\xff" + good[9:])
    else:
        path.write_bytes(good + good[:5])
    reader = JsonlReader(str(path))
    ok = [r for r in reader.records() if isinstance(r, CodeFile)]
    assert [r.path for r in ok] == [r["path"] for r in rows]  # the good frame before the damage
    assert len(reader.warnings) == 1 and str(path) in reader.warnings[0] and "truncated" in reader.warnings[0]


def test_dedup_copies_untouched_frames_and_writes_the_same_rows(tmp_path: Path, monkeypatch):
    """RUN/clean-like input in small frames, near-duplicates in some of them: pass 2 copies the
    frames with nothing removed, and the rows written are exactly those of a line-by-line pass 2."""
    rows = stdlib_rows(60)
    for i in range(0, 60, 12):  # a near-duplicate of file i, right after it
        copy = dict(rows[i], path=f"vendored/{rows[i]['path']}")
        copy["content"] = rows[i]["content"] + "\n# patched\n"
        rows.insert(i + 1, copy)
    with ShardedJsonlWriter(tmp_path / "clean", frame_bytes=60_000) as w:
        for r in rows:
            w.write(CodeFile(content=r["content"], repo_name=r["repo_name"], path=r["path"], license=r["license"]))
    copied = []
    write_frame = writer_mod.ShardedJsonlWriter.write_frame

    def spy(self, raw, nbytes, n):
        copied.append(n)
        return write_frame(self, raw, nbytes, n)

    opened = []
    decompress = jsonl_mod.JsonlUnit.decompress

    def spy_decompress(self):
        opened.append(self.skipped)
        return decompress(self)

    monkeypatch.setattr(writer_mod.ShardedJsonlWriter, "write_frame", spy)
    monkeypatch.setattr(jsonl_mod.JsonlUnit, "decompress", spy_decompress)
    inputs = InputConfig(paths=[str(tmp_path / "clean")])
    st = run_near_dedup(NearDedupConfig(), inputs, tmp_path / "out", executor=1)
    assert st["near_dedup"]["removed"] >= 5
    n_frames = len(frames_of(tmp_path / "clean" / "part-00000.jsonl.zst"))
    touched = sum(1 for n in opened if n)  # frames pass 2 decompressed (they hold cluster members)
    assert 0 < touched < n_frames  # the others were copied without being decompressed
    assert len(copied) <= n_frames  # every frame written as a frame (copied, or its kept rows) unless all removed
    assert sum(copied) == st["totals"]["kept"]
    monkeypatch.setattr(writer_mod.ShardedJsonlWriter, "write_frame", write_frame)
    run_near_dedup(NearDedupConfig(copy_frames=False), inputs, tmp_path / "lines", executor=2)
    assert decompressed(tmp_path / "out" / "part-00000.jsonl.zst") == decompressed(tmp_path / "lines" / "part-00000.jsonl.zst")
    assert decompressed(tmp_path / "out" / "clusters.jsonl.zst") == decompressed(tmp_path / "lines" / "clusters.jsonl.zst")


def test_a_skipped_frame_that_changed_between_the_passes_is_an_error(tmp_path: Path, monkeypatch):
    rows = stdlib_rows(30)
    with ShardedJsonlWriter(tmp_path / "clean", frame_bytes=60_000) as w:
        for r in rows:
            w.write(CodeFile(content=r["content"], repo_name=r["repo_name"], path=r["path"], license=r["license"]))
    path = w.paths[0]
    cluster = near.NearDedupIndex.cluster

    def edit_then_cluster(self):  # flip one byte of the last frame's compressed data (never decoded again)
        data = bytearray(path.read_bytes())
        data[-2] ^= 0xFF
        path.write_bytes(bytes(data))
        return cluster(self)

    monkeypatch.setattr(near.NearDedupIndex, "cluster", edit_then_cluster)
    with pytest.raises(ValueError, match=r"input changed between the two passes of near-dedup \(lines of work unit \d+ differ"):
        run_near_dedup(NearDedupConfig(), InputConfig(paths=[str(tmp_path / "clean")]), tmp_path / "out")


def foreign_dump(path: Path, monkeypatch) -> list[bytes]:
    """A dump as other tools write them, its lines returned: whole-line frames small and (with
    FRAME_RAW_MAX lowered to 30 kB) too large to be a unit, skippable frames, frames cut mid-line
    (multi_compress_to_buffer), near-duplicates among its rows."""
    monkeypatch.setattr(jsonl_mod, "FRAME_RAW_MAX", 30_000)
    rows = stdlib_rows(50)
    for i in range(0, 50, 10):
        rows.insert(i + 1, dict(rows[i], path=f"vendored/{rows[i]['path']}", content=rows[i]["content"] + "\n# patched\n"))
    lines = [json.dumps(r).encode() + b"\n" for r in rows]
    cctx = zstandard.ZstdCompressor(level=1, write_checksum=True)
    mid = b"".join(lines[30:45])
    cuts = zstandard.ZstdCompressor().multi_compress_to_buffer([mid[:len(mid) // 3], mid[len(mid) // 3:]])
    parts = [cctx.compress(b"".join(lines[:4])), cctx.compress(b"".join(lines[4:6])),
             (0x184D2A5F).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"pz!",
             cctx.compress(b"".join(lines[6:30])), cuts[0].tobytes(), cuts[1].tobytes(),
             *(cctx.compress(line) for line in lines[45:])]
    path.write_bytes(b"".join(parts))
    assert len(parts[3]) > 30_000 > max(len(p) for p in parts[:2] + parts[6:])
    return lines


def test_frame_units_of_a_foreign_dump_are_whole_frames_or_line_units_in_order(tmp_path: Path, monkeypatch):
    path = tmp_path / "foreign.jsonl.zst"
    lines = foreign_dump(path, monkeypatch)
    units = list(JsonlReader(str(path), batch_records=8).units(frames=True))
    assert [line + b"\n" for u in units for _, line in u.lines] == lines
    assert [n for u in units for n, _ in u.lines] == list(range(1, len(lines) + 1))
    framed = [u for u in units if u.raw is not None]
    assert [len(u.lines) for u in framed] == [4, 2] + [1] * (len(lines) - 45)  # the whole-line frames
    assert all(len(u.lines) <= 8 for u in units)  # the large frame and the cut ones: units of lines


def test_dedup_and_stream_of_a_foreign_dump_are_the_same_for_any_workers(tmp_path: Path, monkeypatch):
    from preprocessing.stages.stream import StreamConfig, run_stream

    path = tmp_path / "in" / "foreign.jsonl.zst"
    path.parent.mkdir()
    foreign_dump(path, monkeypatch)
    inputs = InputConfig(paths=[str(path)], batch_records=8)
    a = run_near_dedup(NearDedupConfig(), inputs, tmp_path / "copy", executor=1)
    b = run_near_dedup(NearDedupConfig(copy_frames=False), inputs, tmp_path / "lines", executor=2)
    assert a["near_dedup"]["removed"] >= 3 and a["totals"] == b["totals"] and a["warnings"] == []
    for name in ("part-00000.jsonl.zst", "clusters.jsonl.zst"):
        assert decompressed(tmp_path / "copy" / name) == decompressed(tmp_path / "lines" / name)
    runs = [run_stream(StreamConfig(input=inputs), tmp_path / f"s{w}", executor=w) for w in (1, 2)]
    assert runs[0]["totals"] == runs[1]["totals"] and runs[0]["totals"]["records_read"] == 55
    assert (tmp_path / "s1/clean/part-00000.jsonl.zst").read_bytes() == (tmp_path / "s2/clean/part-00000.jsonl.zst").read_bytes()

@pytest.mark.parametrize("workers", [1, 2])
def test_dedup_workers_read_the_frames_themselves_in_both_passes(tmp_path: Path, monkeypatch, workers: int):
    """Over RUN/clean-like frames, pass 1's units name frames (offset, length) found from their
    headers, and pass 2's units name the same frames: the driver decompresses none of them and
    never walks the input (it reads only the frames it copies as they are); the outputs and the
    stats' input files are those of driver-side units."""
    rows = stdlib_rows(40)
    with ShardedJsonlWriter(tmp_path / "clean", frame_bytes=60_000) as w:
        for r in rows + rows[:5]:  # exact copies: near-duplicates too
            w.write(CodeFile(content=r["content"], repo_name=r["repo_name"], path=r["path"], license=r["license"]))
    reads = []
    iter_line_groups = jsonl_mod.iter_line_groups

    def spy(path, skip=None, *args, **kw):
        reads.append(skip)
        return iter_line_groups(path, skip, *args, **kw)

    sketched = []
    sketch_frame = near._sketch_frame

    def spy_frame(w, ref):
        sketched.append(ref)
        return sketch_frame(w, ref)

    monkeypatch.setattr(jsonl_mod, "iter_line_groups", spy)
    if workers == 1:  # (a spy the pool's tasks could not carry)
        monkeypatch.setattr(near, "_sketch_frame", spy_frame)
    inputs = InputConfig(paths=[str(tmp_path / "clean")])
    st = run_near_dedup(NearDedupConfig(), inputs, tmp_path / "out", executor=workers)
    if workers == 1:
        assert len(sketched) == len(frames_of(w.paths[0]))
    assert reads == []  # no pass walked the input in the driver
    assert st["near_dedup"]["removed"] == 5
    assert st["input_files"] == [{"file": str(w.paths[0]), "lines": 45, "clean": True}]
    monkeypatch.setattr(near, "_sketch_frame", lambda w, ref: None)  # as if a frame were not a unit: driver units
    again = run_near_dedup(NearDedupConfig(), inputs, tmp_path / "driver", executor=1)
    assert reads  # (that run's units came from the driver's walk)
    for name in ("part-00000.jsonl.zst", "clusters.jsonl.zst"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "driver" / name).read_bytes()
    assert again["totals"] == st["totals"] and again["input_files"] == st["input_files"]
    assert again["warnings"] == st["warnings"] == []


def test_a_frame_cut_between_the_passes_is_an_error(tmp_path: Path, monkeypatch):
    """Pass 2 reads each frame where pass 1 found it: a file cut short in between is named."""
    rows = stdlib_rows(30)
    with ShardedJsonlWriter(tmp_path / "clean", frame_bytes=60_000) as w:
        for r in rows + rows[:3]:
            w.write(CodeFile(content=r["content"], repo_name=r["repo_name"], path=r["path"], license=r["license"]))
    path = w.paths[0]
    cluster = near.NearDedupIndex.cluster

    def cut_then_cluster(self):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 100])
        return cluster(self)

    monkeypatch.setattr(near.NearDedupIndex, "cluster", cut_then_cluster)
    with pytest.raises(ValueError, match=r"input changed between the two passes of near-dedup \(.*frame \d+ is cut"):
        run_near_dedup(NearDedupConfig(), InputConfig(paths=[str(tmp_path / "clean")]), tmp_path / "out")


def test_dedup_pass1_decides_on_frames_from_their_headers_before_any_work(tmp_path: Path, monkeypatch):
    """A later frame too large to be a unit is found by the header-only scan of every frame:
    pass 1 splits the input in the driver at once, no frame is sketched (or decompressed) first
    and thrown away; the outputs are those of driver-side units."""
    path = tmp_path / "in" / "foreign.jsonl.zst"
    path.parent.mkdir()
    foreign_dump(path, monkeypatch)  # two small whole-line frames, then one over FRAME_RAW_MAX
    sketched: list = []
    monkeypatch.setattr(near, "_sketch_frame", lambda w, ref: sketched.append(ref))
    with open(path, "rb") as f:
        scan = list(jsonl_mod._iter_zstd_frames(f, near._EveryFrame(), whole_only=True))
    decompressed_in_scan = [data for data, _raw, _no in scan if data is not None]
    assert [raw is None for _data, raw, _no in scan] == [False, False, True] and not decompressed_in_scan
    inputs = InputConfig(paths=[str(path)], batch_records=8)
    st = run_near_dedup(NearDedupConfig(), inputs, tmp_path / "out", executor=1)
    assert sketched == [] and st["near_dedup"]["removed"] >= 3
    ref = run_near_dedup(NearDedupConfig(copy_frames=False), inputs, tmp_path / "lines", executor=1)
    assert st["totals"] == ref["totals"]
    for name in ("part-00000.jsonl.zst", "clusters.jsonl.zst"):
        assert decompressed(tmp_path / "out" / name) == decompressed(tmp_path / "lines" / name)


@pytest.mark.parametrize("copies", [2, 300])
def test_a_highly_compressible_whole_frame_is_read_in_pieces_into_the_same_units(tmp_path: Path, monkeypatch,
                                                                                copies: int):
    """A whole frame of repeated files (`json.dumps` lines, one frame as the zstd CLI writes it)
    that may decompress to over WHOLE_PIECED_MIN: read in pieces once it holds more lines than a
    unit, the same units and records as read whole; a frame of fewer lines still comes whole."""
    rows = stdlib_rows(12)
    lines = [json.dumps(dict(rows[i % len(rows)], repo_name=f"fork{i}/x")).encode() + b"\n"
             for i in range(copies * len(rows))]
    path = tmp_path / "dump.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor(level=3).compress(b"".join(lines)))
    assert path.stat().st_size < jsonl_mod.FRAME_RAW_MAX  # a whole frame
    reader = JsonlReader([str(path)], batch_records=64)

    def read() -> tuple[list, list]:
        units = list(reader.units())
        return [(type(u.lines).__name__, list(u.lines), u.raw is not None) for u in units], \
            [r for u in units for r in reader.decode(u)]

    whole_units, whole_records = read()
    monkeypatch.setattr(jsonl_mod, "WHOLE_PIECED_MIN", 1000)
    monkeypatch.setattr(jsonl_mod, "_STREAM_OUT", 5000)  # pieces of about 5 kB
    pieced_units, pieced_records = read()
    assert pieced_records == whole_records and len(whole_records) == len(lines)
    if copies == 2:  # 24 lines: a unit of its own, as a whole frame
        assert pieced_units == whole_units and pieced_units[0][0] == "FrameLines"
    else:
        assert [u[1] for u in pieced_units] == [u[1] for u in whole_units] and len(pieced_units) > 50
        # units of pieces: one buffer each (FrameLines), without the frame's bytes, whose line ends
        # (taken from the pieces, not searched again) are those a search of the buffer finds
        assert {(u[0], u[2]) for u in pieced_units} == {("FrameLines", False)}
        units = list(reader.units())
        assert all(u.lines._ends is not None for u in units)
        assert [u.lines._ends for u in units] == [FrameLines(u.lines.data, u.lines.first).ends() for u in units]
        with open(path, "rb") as f:  # the pieces: about _STREAM_OUT each, none with the frame's bytes
            pieces = list(jsonl_mod._iter_zstd_frames(f, whole_lines=64))
        assert len(pieces) > 10 and all(raw is None for _, raw, _ in pieces)
        assert b"".join(p for p, _, _ in pieces) == b"".join(lines)



def test_unit_frames_cut_whole_lines_and_only_for_units_that_fill_a_frame(tmp_path: Path):
    lines = [orjson.dumps(r) + b"\n" for r in stdlib_rows(30)]
    cctx = writer_mod.zstd_compressor(3)
    assert writer_mod.unit_frames(lines[:2], cctx, frame_bytes=sum(map(len, lines[:2])) + 1) is None
    frames = writer_mod.unit_frames(lines, cctx, frame_bytes=40_000)
    assert sum(n for _, _, n in frames) == len(lines) and len(frames) > 2
    start = 0
    for raw, nbytes, n in frames:  # each frame: the unit's next lines, reaching 40,000 bytes only with its last
        data = zstandard.ZstdDecompressor().decompress(raw, max_output_size=nbytes)
        assert data == b"".join(lines[start:start + n]) and len(data) == nbytes
        assert nbytes - len(lines[start + n - 1]) < 40_000
        assert nbytes >= 40_000 or start + n == len(lines)
        start += n
    # the same bytes whoever compresses them: a worker, or the writer given those lines as a frame
    assert writer_mod.unit_frames(lines, writer_mod.zstd_compressor(3), frame_bytes=40_000) == frames
    # lines given as their pieces (views of a buffer, as dedup's pass 2 assembles them): the same frames
    pieces = [line if i % 3 == 0 else (line[:5], memoryview(line)[5:-2], line[-2:]) for i, line in enumerate(lines)]
    assert writer_mod.unit_frames(pieces, writer_mod.zstd_compressor(3), frame_bytes=40_000) == frames
    assert writer_mod.unit_frames(pieces, writer_mod.zstd_compressor(3), frame_bytes=40_000,
                                  sizes=[len(line) for line in lines]) == frames  # (the caller's sizes)
    assert writer_mod.joined_lines(pieces) == b"".join(lines)
    n0 = frames[0][2]
    with ShardedJsonlWriter(tmp_path) as w:
        w.write_lines_frame(lines[:n0])
    assert w.paths[0].read_bytes() == frames[0][0]


@pytest.mark.parametrize("given", ["bytes", "file", "file, no copy_file_range"])
@pytest.mark.parametrize("max_bytes", [30_000, 100_000, 1 << 30])
def test_whole_frames_end_shards_where_lines_one_by_one_would(tmp_path: Path, max_bytes: int, given: str,
                                                             monkeypatch):
    """A shard ends after the line that brings it to max_bytes, inside a whole frame too (that frame
    is split in two): the shards hold the same lines as when every line is written one by one. The
    same bytes whether the frames are given as bytes or as places in a file (FileFrame, a worker's
    hand-over), also where the kernel cannot copy between the files (then with a warning)."""
    lines = [orjson.dumps(r) + b"\n" for r in stdlib_rows(40)]
    with ShardedJsonlWriter(tmp_path / "ref", max_bytes=max_bytes) as ref:
        for line in lines:
            ref.write_line(line)
    frames = writer_mod.unit_frames(lines[10:], writer_mod.zstd_compressor(3), frame_bytes=25_000)
    handed = tmp_path / "handed.zst"
    handed.write_bytes(b"".join(raw for raw, _, _ in frames))
    if given == "file, no copy_file_range":
        def cannot(*_a):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        monkeypatch.setattr(os, "copy_file_range", cannot)
        monkeypatch.setattr(writer_mod, "_IN_KERNEL", True)
    fd = os.open(handed, os.O_RDONLY)
    try:
        with ShardedJsonlWriter(tmp_path / "w", max_bytes=max_bytes) as w, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for line in lines[:10]:  # a small unit's lines in the open frame, then a unit of frames of its own
                w.write_line(line)
            start, offset = 10, 0
            for raw, nbytes, n in frames:
                frame = raw if given == "bytes" else writer_mod.FileFrame(fd, offset, len(raw))
                w.write_frame(frame, nbytes, n, [len(x) for x in lines[start:start + n]])
                start, offset = start + n, offset + len(raw)
    finally:
        os.close(fd)
    expected = ["os.copy_file_range cannot copy"] if given.endswith("range") else []
    assert [str(c.message)[:len("os.copy_file_range cannot copy")] for c in caught] == expected
    if given == "file, no copy_file_range":
        assert writer_mod._IN_KERNEL is False  # (one warning: the rest are copied through the process)
    assert [p.name for p in w.paths] == [p.name for p in ref.paths]
    if given != "bytes":  # byte for byte the shards of the frames given as bytes
        with ShardedJsonlWriter(tmp_path / "b", max_bytes=max_bytes) as b:
            for line in lines[:10]:
                b.write_line(line)
            start = 10
            for raw, nbytes, n in frames:
                b.write_frame(raw, nbytes, n, [len(x) for x in lines[start:start + n]])
                start += n
        assert [p.read_bytes() for p in w.paths] == [p.read_bytes() for p in b.paths]
    assert [decompressed(p) for p in w.paths] == [decompressed(p) for p in ref.paths]
    assert w.rows == len(lines) and w.bytes_written == sum(map(len, lines))
    for p in w.paths:  # every frame still holds whole lines
        assert all(data.endswith(b"\n") for data, _ in frames_of(p) if data)


@pytest.mark.parametrize("max_bytes", [30_000, 1 << 30])
def test_write_lines_gives_the_bytes_of_lines_written_one_by_one(tmp_path: Path, max_bytes: int):
    """write_lines (the clusters file's rows of a unit in one call) cuts the same frames and shards
    as write_line of each line: batches that cross frame ends, fill a shard, or are empty."""
    lines = [orjson.dumps(r) + b"\n" for r in stdlib_rows(40)]
    with ShardedJsonlWriter(tmp_path / "ref", max_bytes=max_bytes, frame_bytes=2_000) as ref:
        for line in lines:
            ref.write_line(line)
    with ShardedJsonlWriter(tmp_path / "w", max_bytes=max_bytes, frame_bytes=2_000) as w:
        for start, stop in ((0, 1), (1, 1), (1, 9), (9, 30), (30, 40)):
            w.write_lines(lines[start:stop])
    assert [p.name for p in w.paths] == [p.name for p in ref.paths]
    assert [p.read_bytes() for p in w.paths] == [p.read_bytes() for p in ref.paths]
    assert sum(len(frames_of(p)) for p in ref.paths) > 2 * len(ref.paths)  # (frames did end among the batches)
    assert (w.rows, w.bytes_written) == (ref.rows, ref.bytes_written) == (len(lines), sum(map(len, lines)))


def test_stream_units_compress_their_frames_and_dedup_cuts_them(tmp_path: Path):
    """Units (whole .gz files) whose kept lines fill frames: the worker compresses them; exact
    duplicates inside them are cut out by the reduce (gathered) or where the result is held
    (partitioned): the same shards, whole lines, and the examples' content from the frames."""
    from preprocessing.executors import ExecutorConfig
    from preprocessing.stages.stream import StreamConfig, run_stream
    from tests.conftest import write_jsonl

    rows = stdlib_rows(40)
    dups = [dict(r, repo_name=f"fork{i}/x") for i, r in enumerate(rows[::3])]
    a = write_jsonl(tmp_path / "a.jsonl.gz", rows[:25])
    b = write_jsonl(tmp_path / "b.jsonl.gz", rows[25:] + dups)  # copies of a's rows and of its own
    sizes = [sum(len(json.dumps(r)) + 1 for r in part) for part in (rows[:25], rows[25:])]
    assert min(sizes) >= writer_mod.FRAME_BYTES  # both units get frames of their own
    cfg = StreamConfig(input=InputConfig(paths=[str(a), str(b)]))
    cfg.filters.quality.enabled = cfg.filters.autogenerated.enabled = False
    cfg.output.max_shard_bytes = 200_000
    outs = {}
    for name, ex in [("w1", ExecutorConfig(workers=1)), ("w2", ExecutorConfig(workers=2)),
                     ("p2", ExecutorConfig(workers=2, partitions=2))]:
        stats = run_stream(cfg, tmp_path / name, executor=ex)
        paths = sorted((tmp_path / name / "clean").glob("part-*.jsonl.zst"))
        outs[name] = {p.name: p.read_bytes() for p in paths}
        assert stats["stages"]["exact_dedup"]["dropped"] == {"exact_duplicate": len(dups)}
        examples = stats["examples"]["exact_duplicate"]
        assert examples and all(e["head"] for e in examples)
    assert outs["w1"] == outs["w2"] == outs["p2"]
    # the shards: the kept rows in order, split where a writer given them line by line splits them
    paths = sorted((tmp_path / "w1" / "clean").glob("part-*.jsonl.zst"))
    got = b"".join(decompressed(p) for p in paths)
    assert [(x["repo_name"], x["path"]) for x in map(json.loads, got.splitlines())] == \
        [(r["repo_name"], r["path"]) for r in rows]
    with ShardedJsonlWriter(tmp_path / "ref", max_bytes=200_000) as ref:
        for line in got.splitlines(keepends=True):
            ref.write_line(line)
    assert [decompressed(p) for p in paths] == [decompressed(p) for p in ref.paths]
    frames = [f for p in paths for f in frames_of(p)]
    assert len(frames) > len(paths) and all(data.endswith(b"\n") for data, _ in frames)


def test_dedup_pass2_workers_compress_the_frames_of_lines_the_driver_read(tmp_path: Path, monkeypatch):
    """A one-frame `json.dumps` dump (streamed, so the driver splits it into units of lines): in
    pass 2 a unit whose kept rows fill a frame comes back from its worker as compressed frames of
    whole lines, which the driver appends; 1 and 2 workers give the same bytes, and the rows are
    those written line by line (copy_frames off: every row through the writer's open frame)."""
    rows = stdlib_rows(80)
    for i in range(0, 80, 8):  # near-duplicates: a line added at the end
        rows.insert(i + 1, dict(rows[i], repo_name=f"fork/{i}", content=rows[i]["content"] + "\n# patched\n"))
    path = tmp_path / "in" / "dump.jsonl.zst"
    path.parent.mkdir()
    with open(path, "wb") as f, zstandard.ZstdCompressor(level=3).stream_writer(f) as out:
        out.write(b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    # units of 8 files fill a frame of 8 kB (the workers are forked: they see the patched module)
    monkeypatch.setattr(near, "unit_frames",
                        lambda lines, cctx, sizes=None: writer_mod.unit_frames(lines, cctx, 8_000, sizes))
    inputs = InputConfig(paths=[str(path)], batch_records=8)
    copies: list[int] = []  # the bytes the driver had the kernel copy from the workers' files into shards
    copy_file_range = os.copy_file_range

    def counted(src, dst, count, offset_src=None, *a):
        copies.append(count)
        return copy_file_range(src, dst, count, offset_src, *a)

    monkeypatch.setattr(os, "copy_file_range", counted)
    runs = {w: run_near_dedup(NearDedupConfig(), inputs, tmp_path / f"w{w}", executor=w) for w in (1, 2)}
    assert all(not (tmp_path / f"w{w}" / ".work").exists() for w in (1, 2))
    line_by_line = run_near_dedup(NearDedupConfig(copy_frames=False), inputs, tmp_path / "lines", executor=1)
    assert runs[1]["near_dedup"]["removed"] >= 5 and runs[1]["totals"] == runs[2]["totals"] == line_by_line["totals"]
    for name in ("part-00000.jsonl.zst", "clusters.jsonl.zst"):
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes()
        assert decompressed(tmp_path / "w1" / name) == decompressed(tmp_path / "lines" / name)

    def frames(path: Path) -> list[bytes]:  # each frame's decompressed bytes
        data, out = path.read_bytes(), []
        while data:
            obj = zstandard.ZstdDecompressor().decompressobj()
            out.append(obj.decompress(data))
            assert obj.eof
            data = obj.unused_data
        return out

    assert copies and all(c > 0 for c in copies)  # (2 workers: their frames came back in files)

    mine = frames(tmp_path / "w1" / "part-00000.jsonl.zst")
    assert all(data.endswith(b"\n") for data in mine)
    # the units' own frames (~8 kB each, a unit of 8 files each), not the writer's open frame of 256 KiB
    assert len(mine) >= runs[1]["totals"]["kept"] // 8 and max(map(len, mine)) < 256 << 10


def test_a_worker_that_cannot_write_its_frames_to_a_file_sends_them(tmp_path: Path):
    """hand_over: a unit's frames go to one file (the unit then carries their lengths); where the
    file cannot be made, the frames stay bytes, with a warning."""
    raws = [b"a" * 10, b"bb" * 7, b"c"]
    out = near.UnitRows(frame=raws[0], frame_nbytes=5, frames=[(raws[1], 3, 1, [3]), (raws[2], 2, 1, [2])])
    near.hand_over(out, str(tmp_path))
    assert out.handed is not None and Path(out.handed).read_bytes() == b"".join(raws)
    assert out.frame == 10 and out.frames == [(14, 3, 1, [3]), (1, 2, 1, [2])]
    kept = near.UnitRows(frames=[(raws[1], 3, 1, [3])])
    with pytest.warns(RuntimeWarning, match="cannot hand its frames over"):
        near.hand_over(kept, str(tmp_path / "gone"))
    assert kept.handed is None and kept.frames == [(raws[1], 3, 1, [3])]
