"""`dedup` of lines the driver reads: pass 1's units kept on local disk (preprocessing/dedup/linespool.py)
for the workers (units name their bytes there) and for pass 2 (which then does not read the input again)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import zstandard

from preprocessing.dedup import linespool, near
from preprocessing.dedup.linespool import LineSpool, SpooledUnit
from preprocessing.dedup.minhash import NearDedupConfig
from preprocessing.executors.local import LocalExecutor
from preprocessing.readers import InputConfig, JsonlReader
from preprocessing.stages.dedup import run_near_dedup
from tests.conftest import stdlib_rows


def one_frame_dump(path: Path, rows: list[dict], tail: bytes = b"") -> Path:
    """``rows`` as `json.dumps` writes them, in one zstd frame (streamed: the driver cuts it into units)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f, zstandard.ZstdCompressor(level=3).stream_writer(f) as out:
        out.write(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + tail)
    return path


def near_dup_rows(n: int) -> list[dict]:
    rows = stdlib_rows(n)
    for i in range(0, n, 6):  # near-duplicates: a line added at the end, another repository
        rows.insert(i + 1, dict(rows[i], repo_name=f"fork/{i}", content=rows[i]["content"] + "\n# patched\n"))
    return rows


def test_spooled_units_arrive_as_the_units_they_stand_for(tmp_path: Path):
    """Buffer units (FrameLines), list units with gaps (blank lines between records) and a last
    unit with a cut line (a rejection): each pickles as its place in the file (a few hundred bytes,
    whatever its size) and unpickles, in any process, as the reader's unit; replayed, the same."""
    rows = stdlib_rows(40)
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows[:20]) + b"\n  \n" + \
        b"".join(json.dumps(r).encode() + b"\n" for r in rows[20:])
    dump = tmp_path / "cut.jsonl.zst"  # blank lines, and a stream cut in its last line
    dump.write_bytes(zstandard.ZstdCompressor(level=3).compress(data)[:-300])
    plain = tmp_path / "frame.jsonl.zst"
    one_frame_dump(plain, rows)
    for path in (dump, plain):
        reader = JsonlReader(str(path), batch_records=7)
        units = list(reader.units())
        spool = LineSpool(tmp_path / f"work-{path.name}", refs=True)
        shipped = list(spool.record(iter(JsonlReader(str(path), batch_records=7).units()), reader))
        assert spool.complete and len(shipped) == len(units) and all(type(u) is SpooledUnit for u in shipped)
        kinds = {type(u.lines).__name__ for u in units}
        for unit, ref in zip(units, shipped):
            blob = pickle.dumps(ref)
            assert len(blob) < 600 < len(pickle.dumps(unit))
            assert pickle.loads(blob) == unit and len(ref) == len(unit) and ref.nlines == unit.nlines
        assert [pickle.loads(pickle.dumps(u)) for u in spool.replay()] == units
        spool.refs = False
        assert list(spool.replay()) == units
        assert spool.warnings == reader.warnings and spool.input_files == reader.input_files
        spool.close()
        assert not Path(spool.path).exists()
    assert kinds == {"FrameLines"}  # (the frame's units; the cut file's had gaps and a cut line:)
    assert any(u.rejected for u in JsonlReader(str(dump), batch_records=7).units())
    assert any(isinstance(u.lines, list) for u in JsonlReader(str(dump), batch_records=7).units())


def test_units_cut_from_pieces_are_written_to_the_spool_unjoined(tmp_path: Path, monkeypatch):
    """A unit that spans the decompressor's pieces holds them as parts (its length known, its bytes
    not joined), the spool writes them one after the other (``writev``, a few at a time here), and
    the unit read back, pickled or joined, is the same lines."""
    from preprocessing.readers import jsonl as jsonl_mod
    from preprocessing.readers.jsonl import FrameLines

    monkeypatch.setattr(jsonl_mod, "FRAME_RAW_MAX", 1024)  # a streamed frame, in small pieces: many per unit
    monkeypatch.setattr(jsonl_mod, "_STREAM_IN", 512)
    monkeypatch.setattr(jsonl_mod, "_STREAM_OUT", 4096)
    monkeypatch.setattr(linespool, "_IOV_MAX", 2)
    rows = stdlib_rows(60)
    path = one_frame_dump(tmp_path / "in" / "frame.jsonl.zst", rows)
    reader = JsonlReader(str(path), batch_records=9)
    units = list(reader.units())
    many = [u for u in units if len(u.lines.parts()) > 2]
    assert many and all(type(u.lines) is FrameLines for u in units)
    assert sum(len(u.lines) for u in units) == len(rows)
    assert all(len(u.lines.parts()) > 2 for u in many)  # (their lengths were known without joining them)
    joined = [FrameLines(b"".join(u.lines.parts()), u.lines.first) for u in units]
    spool = LineSpool(tmp_path / "work", refs=True)
    shipped = list(spool.record(iter(JsonlReader(str(path), batch_records=9).units()), reader))
    assert spool.complete and spool.size == sum(len(j.data) for j in joined)
    back = [pickle.loads(pickle.dumps(u)) for u in shipped]
    assert [u.lines for u in back] == joined == [u.lines for u in units]
    assert [pickle.loads(pickle.dumps(u.lines)) for u in units] == joined
    assert [line for u in back for _, line in u.lines] == [json.dumps(r).encode() for r in rows]
    spool.close()


def test_a_one_frame_dump_is_read_once_with_the_same_output(tmp_path: Path, monkeypatch):
    """A one-frame `json.dumps` dump of real files and near-duplicates: pass 2 replays pass 1's
    units (the input is read once), the workers read their units from the work dir; the output
    bytes are those of a run whose spool has no room (the input read twice, units through the
    pipe) and of one whose spool fills half-way, for 1 and 2 workers."""
    dump = one_frame_dump(tmp_path / "in" / "dump.jsonl.zst", near_dup_rows(60))
    reads = []
    units = JsonlReader.units

    def counted(self, *a, **k):
        reads.append(1)
        return units(self, *a, **k)

    monkeypatch.setattr(JsonlReader, "units", counted)
    inputs = InputConfig(paths=[str(dump)], batch_records=8)
    size = sum(len(u.lines.data) for u in units(JsonlReader(str(dump), batch_records=8)))
    outs, stats = {}, {}
    for budget in (None, 0, size // 2):
        monkeypatch.setattr(linespool, "BUDGET", budget)
        for w in (1, 2):
            reads.clear()
            out = tmp_path / f"out-{budget}-{w}"
            st = run_near_dedup(NearDedupConfig(), inputs, out, executor=w)
            assert len(reads) == (1 if budget is None else 2), budget
            outs[budget, w] = [(out / n).read_bytes() for n in ("part-00000.jsonl.zst", "clusters.jsonl.zst")]
            stats[budget, w] = {k: st[k] for k in ("totals", "near_dedup", "warnings", "input_files")}
            assert not list((out / ".work").glob("*")) if (out / ".work").exists() else True
    # workers that do not share this disk (a Ray cluster): units carry their bytes, pass 2 still replays
    monkeypatch.setattr(linespool, "BUDGET", None)
    remote = LocalExecutor(2)
    remote.local_disk = False
    shipped = []
    record = LineSpool.record

    def watched(self, *a, **k):
        for unit in record(self, *a, **k):
            shipped.append(type(unit).__name__)
            yield unit

    monkeypatch.setattr(LineSpool, "record", watched)
    reads.clear()
    out = tmp_path / "out-remote"
    st = run_near_dedup(NearDedupConfig(), inputs, out, executor=remote)
    assert len(reads) == 1 and set(shipped) == {"JsonlUnit"}
    shipped.clear()
    run_near_dedup(NearDedupConfig(), inputs, tmp_path / "out-local", executor=LocalExecutor(2))
    assert set(shipped) == {"SpooledUnit"}  # (the workers here read the spool)
    outs["remote"] = [(out / n).read_bytes() for n in ("part-00000.jsonl.zst", "clusters.jsonl.zst")]
    stats["remote"] = {k: st[k] for k in ("totals", "near_dedup", "warnings", "input_files")}
    first = next(iter(outs.values()))
    assert all(o == first for o in outs.values()) and all(s == stats[None, 1] for s in stats.values())
    assert stats[None, 1]["near_dedup"]["removed"] >= 8


@pytest.mark.parametrize("workers", [1, 2])
def test_a_spool_without_disk_space_falls_back(tmp_path: Path, monkeypatch, workers: int):
    """A disk that is full when the spool writes: the units travel as before and pass 2 reads the
    input again; the same output (no error, nothing lost)."""
    dump = one_frame_dump(tmp_path / "in" / "dump.jsonl.zst", near_dup_rows(30))
    inputs = InputConfig(paths=[str(dump)], batch_records=8)
    ref = run_near_dedup(NearDedupConfig(), inputs, tmp_path / "ref", executor=workers)
    calls = []
    real_write = LineSpool._write

    def full(self, data):
        calls.append(len(data))
        if len(calls) > 2:
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(LineSpool, "_write", full)
    with pytest.warns(RuntimeWarning, match=r"line spool .* stops: writing it failed .*No space left"):
        st = run_near_dedup(NearDedupConfig(), inputs, tmp_path / "full", executor=workers)
    assert len(calls) == 3 and st["totals"] == ref["totals"]
    for name in ("part-00000.jsonl.zst", "clusters.jsonl.zst"):
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()


def compressed_dump(directory: Path, rows: list[dict], files: int = 5) -> list[str]:
    """``rows`` as `json.dumps` lines over ``files`` files: gzip (one with blank lines, one cut
    short in its last line) and one-frame zstd (by python-zstandard's stream_writer)."""
    import gzip

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(files):
        part = b"".join(json.dumps(r).encode() + b"\n" + (b"\n" if i == 1 and j % 5 == 0 else b"")
                        for j, r in enumerate(rows[i::files]))
        if i % 3 == 2:
            path = one_frame_dump(directory / f"part-{i}.jsonl.zst", rows[i::files])
        else:
            path = directory / f"part-{i}.jsonl.gz"
            data = gzip.compress(part)
            path.write_bytes(data[:-40] if i == 3 else data)  # (part 3: cut in its last line)
        paths.append(str(path))
    return paths


def test_a_dump_of_compressed_files_is_read_by_the_workers_with_the_same_output(tmp_path: Path, monkeypatch):
    """Five .gz / .zst files: each worker reads and cuts its own file in both passes (the driver
    decompresses nothing), and keeps the file's lines for pass 2 when it shares the driver's disk
    (each file is then decompressed once); the output bytes and stats equal the driver's split of
    the same files (the units are the same), for 1 and 2 workers, with or without the spools, and
    with workers that do not share the disk."""
    paths = compressed_dump(tmp_path / "in", near_dup_rows(80))
    inputs = InputConfig(paths=paths, batch_records=8)
    reads: list[int] = []
    units = JsonlReader.units

    def counted(self, *a, **k):
        reads.append(len(self.paths))
        return units(self, *a, **k)

    monkeypatch.setattr(JsonlReader, "units", counted)
    keys = ("totals", "near_dedup", "warnings", "input_files")
    outs, stats = {}, {}

    def run(name, executor):
        out = tmp_path / f"out-{name}"
        reads.clear()
        st = run_near_dedup(NearDedupConfig(), inputs, out, executor=executor)
        outs[name] = [(out / n).read_bytes() for n in ("part-00000.jsonl.zst", "clusters.jsonl.zst")]
        stats[name] = {k: st[k] for k in keys}
        assert not (out / ".work").exists()
        return list(reads)

    removed: list[str] = []
    remove = linespool.remove

    def removing(kept):  # (each spool goes as its file's last unit passes pass 2, not at the stage's end)
        assert Path(kept[0]).exists()
        removed.append(kept[0])
        remove(kept)

    monkeypatch.setattr(linespool, "remove", removing)
    assert near.worker_files(JsonlReader(paths), None) and not near.worker_files(JsonlReader(paths), 10)
    assert run("files-1", 1) == [1] * 5  # (inline: each file read once, by its own reader)
    assert len(removed) == len(set(removed)) == 5
    run("files-2", 2)
    assert len(set(removed)) == 10
    monkeypatch.setattr(linespool, "BUDGET", 0)  # no room for the spools: pass 2 reads each file again
    with pytest.warns(RuntimeWarning, match="line spool"):
        assert run("files-nospool", 1) == [1] * 10
    monkeypatch.setattr(linespool, "BUDGET", None)
    remote = LocalExecutor(1)
    remote.local_disk = False  # (workers elsewhere: no spool, each file read again)
    assert run("files-remote", remote) == [1] * 10
    monkeypatch.setattr(near, "WORKER_FILES_MIN", 10**6)  # the driver's split, as before
    assert run("driver-1", 1)[0] == 5
    run("driver-2", 2)
    first = outs["driver-1"]
    assert all(o == first for o in outs.values()), {k: o == first for k, o in outs.items()}
    assert all(s == stats["driver-1"] for s in stats.values())
    st = stats["driver-1"]
    assert st["near_dedup"]["removed"] >= 8 and st["totals"]["rejected"] == {"truncated_input": 1}
    assert any("truncated" in w for w in st["warnings"]) and len(st["input_files"]) == 5


def _sketch_view(fs: near.FileSketch) -> tuple:
    """What a FileSketch says of its file, comparable across processes (the spool's path aside)."""
    units = [(u.batch.sig.tobytes(), u.batch.keys.tobytes(), u.batch.scores.tobytes(), u.batch.nbytes.tobytes(),
              u.lines, u.digest, u.names, u.bodies, u.rejected) for u in fs.units]
    return units, fs.warnings, fs.input_files, None if fs.spool is None else len(fs.spool[1])


@pytest.mark.parametrize("split", [2, 5])
def test_the_last_files_are_sketched_unit_by_unit_with_the_sketches_of_whole_files(tmp_path: Path, monkeypatch,
                                                                                   split):
    """The workers' file mode (FilePlan): the last ``split`` files are read into spools by one
    task each, then their units are sketched as tasks of their own by any worker; each file's
    FileSketch, in file order, equals the one a whole-file task gives (sketches, LINE_*, digests,
    names, rejections, the reader's notes, the spool's units). Without room for a spool, the
    spool task sketches its file itself: the same sketches."""
    paths = compressed_dump(tmp_path / "in", near_dup_rows(80))
    reader = JsonlReader(paths, batch_records=8)
    spools = tmp_path / "spools"
    spools.mkdir()
    ctx = near.DedupWorker(reader, NearDedupConfig(), str(spools))
    whole = [_sketch_view(near._sketch_file(ctx, i)) for i in range(len(paths))]
    assert sum(len(units) for units, *_ in whole) > 10 and all(n for *_, n in whole)

    plan = near.FilePlan(len(paths), split)
    tasks: list = []

    def counted():
        for t in plan.tasks():
            tasks.append(type(t).__name__)
            yield t

    got = [_sketch_view(fs) for fs in plan.results(LocalExecutor(2).map(near._file_task, counted(), ctx))]
    assert got == whole
    assert tasks.count("SpoolFile") == split and tasks.count("Barrier") == split
    assert tasks.count("SpooledUnit") == sum(len(units) for units, *_ in whole[-split:])

    plan = near.FilePlan(len(paths), split)  # in this process (the spooled units not pickled)
    assert [_sketch_view(fs) for fs in plan.results(LocalExecutor(1).map(near._file_task, plan.tasks(), ctx))] == whole

    monkeypatch.setattr(linespool, "BUDGET", 0)  # no room: each spool task sketches its file itself
    plan = near.FilePlan(len(paths), split)
    got = [_sketch_view(fs) for fs in plan.results(LocalExecutor(2).map(near._file_task, plan.tasks(), ctx))]
    assert [g[:3] for g in got] == [w[:3] for w in whole] and not plan.spooled  # (it warned in the workers)
    assert all(n is None for *_, n in got)


def test_a_compressed_file_edited_between_the_passes(tmp_path: Path, monkeypatch):
    """The workers' file mode: where a worker kept its file's lines, pass 2 writes what pass 1
    read (an edit between the passes changes nothing); where it did not (no room), the edit is
    found by the units' digests and named."""
    import gzip

    from preprocessing.dedup.index import NearDedupIndex

    paths = compressed_dump(tmp_path / "in", near_dup_rows(40))
    inputs = InputConfig(paths=paths, batch_records=8)
    edited = Path(paths[0])
    original = edited.read_bytes()
    run_near_dedup(NearDedupConfig(), inputs, tmp_path / "ref", executor=1)
    cluster = NearDedupIndex.cluster

    def edit_then_cluster(self):
        edited.write_bytes(gzip.compress(gzip.decompress(original).replace(b"import", b"IMPORT", 1)))
        return cluster(self)

    monkeypatch.setattr(NearDedupIndex, "cluster", edit_then_cluster)
    run_near_dedup(NearDedupConfig(), inputs, tmp_path / "kept", executor=2)
    for name in ("part-00000.jsonl.zst", "clusters.jsonl.zst"):
        assert (tmp_path / "kept" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
    edited.write_bytes(original)
    monkeypatch.setattr(linespool, "BUDGET", 0)
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match=r"input changed between the two passes of "
                                                                        r"near-dedup \(lines of work unit \d+ differ"):
        run_near_dedup(NearDedupConfig(), inputs, tmp_path / "out", executor=1)
