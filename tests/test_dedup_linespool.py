"""`dedup` of lines the driver reads: pass 1's units kept on local disk (preprocessing/dedup/linespool.py)
for the workers (units name their bytes there) and for pass 2 (which then does not read the input again)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import zstandard

from preprocessing.dedup import linespool
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
