"""Readers: every format streams real files; every kind of bad input gets a named reason or a clear error."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from preprocessing.readers import (
    ColumnsConfig, HFDatasetReader, InputConfig, InputError, JsonlReader, LocalReposReader, ParquetReader,
    PythonEnvReader, limit_units, open_reader,
)
from preprocessing.record import CodeFile, Rejected
from tests.conftest import stdlib_rows, write_jsonl


def split(items):
    items = list(items)
    ok = [i for i in items if isinstance(i, CodeFile)]
    bad = [i for i in items if isinstance(i, Rejected)]
    return ok, bad


def test_jsonl_plain_gz_zst_read_all_records_in_order(dump_dir: Path):
    reader = JsonlReader(str(dump_dir))
    ok, bad = split(reader.records())
    assert not bad
    assert [r.path for r in ok] == [r["path"] for r in stdlib_rows(60)]
    first = ok[0]
    assert first.repo_name == "python/cpython" and first.license == "psf-2.0"
    assert first.extra == {"copies": "1", "size": first.extra["size"]}
    assert first.source.endswith("a.jsonl") and first.line == 1
    # the output row keeps the input's fields
    assert set(first.to_json_dict()) == {"repo_name", "path", "copies", "size", "content", "license"}


def test_jsonl_glob_and_open_reader_auto(dump_dir: Path):
    reader = open_reader(InputConfig(paths=[str(dump_dir / "*.jsonl*")]))
    assert isinstance(reader, JsonlReader)
    assert len(reader.paths) == 3


def test_jsonl_bad_lines_get_named_reasons(tmp_path: Path):
    good = stdlib_rows(2)
    lines = [
        b"{not json\n",
        b'{"repo_name": "r", "path": "p", "content": "caf\xe9"}\n',  # latin-1 byte: invalid UTF-8
        b'{"repo_name": "r", "path": "p"}\n',
        b'{"repo_name": "r", "path": "p", "content": "a\\u0000b"}\n',
        b'{"repo_name": "r", "path": "p", "content": "   "}\n',
        b'{"repo_name": "r", "path": "p", "content": 5}\n',
        b"[1, 2]\n",
        b"\n",
    ]
    path = write_jsonl(tmp_path / "bad.jsonl", good, lines)
    ok, bad = split(JsonlReader(str(path)).records())
    assert len(ok) == 2
    assert [b.reason for b in bad] == [
        "invalid_json", "invalid_utf8", "missing_field:content", "binary", "empty_content",
        "invalid_field:content", "invalid_json",
    ]
    assert bad[0].line == 3 and bad[0].source == str(path)


def test_jsonl_too_large_file_rejected(tmp_path: Path):
    big = "x = 1\n" * (200_000)
    path = write_jsonl(tmp_path / "big.jsonl", [{"repo_name": "r", "path": "big.py", "content": big}])
    ok, bad = split(JsonlReader(str(path), max_file_bytes=1 << 20).records())
    assert not ok and [b.reason for b in bad] == ["too_large"]


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_truncated_compressed_file_keeps_complete_lines_and_names_the_rest(tmp_path: Path, suffix: str):
    rows = stdlib_rows(40)
    full = write_jsonl(tmp_path / f"full{suffix}", rows)
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    reader = JsonlReader(str(cut))
    ok, bad = split(reader.records())
    assert 0 < len(ok) < 40
    assert all(b.reason == "truncated_input" for b in bad)
    assert any("truncated" in w and str(cut) in w for w in reader.warnings)
    assert [r.path for r in ok] == [r["path"] for r in rows[: len(ok)]]


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
def test_iter_lines_splits_like_bytes_split_for_any_chunk_size(tmp_path: Path, monkeypatch, chunk: int):
    from preprocessing.readers import jsonl

    monkeypatch.setattr(jsonl, "_CHUNK", chunk)
    data = b"a\n\nbc\n" + b"x" * 5000 + b"\n" + b"yy\nlast line, no newline"
    path = tmp_path / "lines.jsonl"
    path.write_bytes(data)
    assert list(jsonl.iter_lines(path)) == list(enumerate(data.split(b"\n"), 1))
    path.write_bytes(data + b"\n")  # a final newline ends the last line, it does not open an empty one
    assert list(jsonl.iter_lines(path)) == list(enumerate(data.split(b"\n"), 1))


@pytest.mark.parametrize("chunk,batch", [(1, 3), (7, 5), (64, 256), (1 << 20, 4)])
def test_units_of_pieces_are_the_non_blank_lines_in_batches(tmp_path: Path, monkeypatch, chunk: int, batch: int):
    """A file read in pieces (plain, or a zstd frame too large to come whole) gives units of
    ``batch`` non-blank lines, numbered as in the file, whatever the piece boundaries; pieces
    without blank lines become units of one buffer (FrameLines), never split into lines."""
    from preprocessing.readers import jsonl
    from preprocessing.readers.jsonl import FrameLines

    monkeypatch.setattr(jsonl, "_CHUNK", chunk)
    lines = [f'{{"content": "line {i}", "path": "{"p" * (i % 9)}"}}'.encode() for i in range(60)]
    lines[17] = lines[40] = b""
    lines[41] = b"  \t"
    data = b"\n".join(lines) + b"\nno newline at the end"
    path = tmp_path / "pieces.jsonl"
    path.write_bytes(data)
    reader = JsonlReader([str(path)], batch_records=batch)
    units = list(reader.units())
    expected = [(n, line) for n, line in enumerate(data.split(b"\n"), 1) if line.strip()]
    assert [pair for u in units for pair in u.lines] == expected
    assert all(len(u.lines) == batch for u in units[:-1]) and 0 < len(units[-1].lines) <= batch
    assert [pair for u in units for pair in u.lines] == [pair for u in reader.units(frames=True) for pair in u.lines]
    path.write_bytes(b"\n".join(line for line in lines if line.strip()) + b"\nno newline at the end")
    units = list(JsonlReader([str(path)], batch_records=batch).units())
    assert [len(u.lines) for u in units] == [batch] * (58 // batch) + ([58 % batch] if 58 % batch else [])
    # no blank line: every unit is one buffer, but the one that ends with the last line (no newline)
    assert all(isinstance(u.lines, FrameLines) for u in units[:-1]) and isinstance(units[-1].lines, list)


def test_iter_lines_is_linear_in_one_long_line(tmp_path: Path):
    from preprocessing.readers.jsonl import iter_lines

    path = tmp_path / "long.jsonl"
    path.write_bytes(b"z" * (64 << 20) + b"\nend\n")  # 64 chunks: joined once, not copied per chunk
    assert [(n, len(line)) for n, line in iter_lines(path)] == [(1, 64 << 20), (2, 3)]


def test_empty_file_warns_and_empty_dir_or_missing_path_is_an_error(tmp_path: Path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    reader = JsonlReader(str(empty))
    assert list(reader.records()) == []
    assert reader.warnings == [f"{empty}: empty file (no records)"]
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InputError, match="holds no readable input files"):
        JsonlReader(str(tmp_path / "nothing"))
    with pytest.raises(InputError, match="input not found"):
        JsonlReader(str(tmp_path / "missing.jsonl"))
    with pytest.raises(InputError, match="no input files match"):
        JsonlReader(str(tmp_path / "*.parquet"))


def test_parquet_the_stack_schema_with_configured_columns(tmp_path: Path):
    rows = stdlib_rows(30)
    table = pa.table({
        "content": [r["content"] for r in rows],
        "max_stars_repo_name": ["org/repo"] * 30,
        "max_stars_repo_path": [r["path"] for r in rows],
        "max_stars_repo_licenses": [["MIT", "Apache-2.0"]] * 30,
        "max_stars_count": list(range(30)),
    })
    path = tmp_path / "stack.parquet"
    pq.write_table(table, path, row_group_size=8)
    cols = ColumnsConfig(repo_name="max_stars_repo_name", path="max_stars_repo_path", license="max_stars_repo_licenses")
    reader = open_reader(InputConfig(paths=[str(path)], columns=cols, batch_records=5))
    assert isinstance(reader, ParquetReader)
    assert len(list(reader.units())) == 4  # row groups
    ok, bad = split(reader.records())
    assert not bad and len(ok) == 30
    assert ok[3].license == "MIT OR Apache-2.0" and ok[3].extra == {"max_stars_count": 3} and ok[3].line == 4
    with pytest.raises(InputError, match="no column 'text'"):
        list(ParquetReader(str(path), ColumnsConfig(content="text")).units())


def test_hf_dataset_streaming_from_local_files(dump_dir: Path):
    reader = HFDatasetReader("json", data_files=[str(dump_dir / "a.jsonl")], batch_records=7)
    ok, bad = split(reader.records())
    assert not bad and [r.path for r in ok] == [r["path"] for r in stdlib_rows(20)]


def test_local_repos_one_repo_per_folder_with_license_files(tmp_path: Path):
    mit = tmp_path / "repos" / "alpha"
    mit.mkdir(parents=True)
    (mit / "LICENSE").write_text(
        "MIT License\n\nCopyright (c) 2020 A\n\nPermission is hereby granted, free of charge, to any person "
        "obtaining a copy of this software and associated documentation files (the \"Software\"), to deal in "
        "the Software without restriction, including without limitation the rights to use, copy, modify, merge, "
        "publish, distribute, sublicense, and/or sell copies of the Software.\n\nThe above copyright notice and this "
        "permission notice shall be included in all copies or substantial portions of the Software.\n\n"
        "THE SOFTWARE IS PROVIDED \"AS IS\"")
    (mit / "pkg").mkdir()
    (mit / "pkg" / "mod.py").write_text("def f(x):\n    return x + 1\n")
    (mit / "pkg" / "blob.py").write_bytes(b"\x00\x01\x02binary")
    (mit / "pkg" / "latin.py").write_bytes("s = 'caf\xe9'\n".encode("latin-1"))
    (mit / "pkg" / "empty.py").write_text("")
    other = tmp_path / "repos" / "beta"
    other.mkdir()
    (other / "run.py").write_text("print('hi')\n")
    reader = open_reader(InputConfig(paths=[str(tmp_path / "repos")]))
    assert isinstance(reader, LocalReposReader)
    ok, bad = split(reader.records())
    assert [(r.repo_name, r.path, r.license) for r in ok] == [("alpha", "pkg/mod.py", "MIT"), ("beta", "run.py", None)]
    assert sorted(b.reason for b in bad) == ["binary", "empty_content", "invalid_utf8"]


def test_python_installation_is_the_embedded_default():
    reader = open_reader(InputConfig())
    assert isinstance(reader, PythonEnvReader)
    plan = reader.plan()
    names = [name for name, *_ in plan]
    assert names[0] == "python/cpython" and plan[0][1] == "PSF-2.0"
    assert "numpy" in names and "click" in names
    licenses = {name: lic for name, lic, *_ in plan}
    assert licenses["click"] == "BSD-3-Clause"
    units = limit_units(reader.units(), 300)
    ok, bad = split(r for u in units for r in reader.decode(u))
    assert len(ok) + len(bad) == 300
    assert all(r.repo_name == "python/cpython" for r in ok)
    assert {"__future__.py", "abc.py"} <= {r.path for r in ok}


def _items(reader, units, files: dict | None = None) -> list:
    from preprocessing.record import FileRead

    out = []
    for unit in units:
        for item in reader.decode(unit):
            if isinstance(item, CodeFile):
                out.append(("file", item.source, item.line, item.repo_name, item.path, item.content))
            elif isinstance(item, Rejected):
                out.append(("rejected", item.reason, item.where, item.nbytes))
            elif isinstance(item, FileRead):  # parts of a file: summed, in input order
                entry = files.setdefault(item.file, {"file": item.file, "lines": 0, "clean": True})  # type: ignore[union-attr]
                entry["lines"] += item.lines
                entry["clean"] = entry["clean"] and item.clean
            else:
                out.append(("warning", item.text))
    return out


@pytest.mark.parametrize("range_bytes", [64, 1000, 8 << 20])
def test_work_units_read_by_the_worker_give_what_the_driver_read(tmp_path: Path, monkeypatch, range_bytes: int):
    """Byte ranges of plain files and whole compressed files, read in the worker: the same records,
    line numbers, rejections and warnings, in the same order, as the driver-side units."""
    import gzip
    import json

    import zstandard

    from preprocessing.readers import jsonl

    monkeypatch.setattr(jsonl, "RANGE_BYTES", range_bytes)
    monkeypatch.setattr(jsonl, "WORKER_FILES_MIN", 4 if range_bytes > 64 else 99)  # read whole, or split by the driver
    rows = stdlib_rows(12)
    write_jsonl(tmp_path / "a.jsonl", rows[:4], [b"\n", b"  \n", b"{broken\n", b'{"repo_name": "r", "path": "p", "content": "x"}'])
    (tmp_path / "b.jsonl").write_bytes(b"\r\n".join(b'{"repo_name": "r", "path": "%d.py", "content": "y = %d"}' % (i, i)
                                                   for i in range(30)) + b"\r\n")
    (tmp_path / "c.jsonl").write_bytes(b"")
    (tmp_path / "d.jsonl").write_bytes(b" \n\n")
    write_jsonl(tmp_path / "e.jsonl.gz", rows[4:8])
    (tmp_path / "f.jsonl.gz").write_bytes(gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows[8:]))[:-30])
    cctx = zstandard.ZstdCompressor()
    frames = [cctx.compress(json.dumps(r).encode() + b"\n") for r in rows[:6]]
    (tmp_path / "g.jsonl.zst").write_bytes(b"".join(frames))
    (tmp_path / "h.jsonl.zst").write_bytes(b"".join(frames)[:-20])
    paths = [str(tmp_path / n) for n in ("a.jsonl", "b.jsonl", "c.jsonl", "d.jsonl", "e.jsonl.gz", "f.jsonl.gz",
                                         "g.jsonl.zst", "h.jsonl.zst")]
    driver = JsonlReader(paths)
    expected = _items(driver, driver.units())
    expected += [("warning", w) for w in driver.warnings]
    workers = JsonlReader(paths)
    files: dict = {}
    got = _items(workers, workers.work_units(), files)
    assert workers.warnings == [] and workers.input_files == []  # all of it came through the units, in order
    assert [x for x in got if x[0] != "warning"] == [x for x in expected if x[0] != "warning"]
    assert [x for x in got if x[0] == "warning"] == [x for x in expected if x[0] == "warning"]
    assert list(files.values()) == driver.input_files
    assert any(x[0] == "rejected" and x[1] == "truncated_input" for x in got)


def test_a_stage_output_directory_reads_as_its_shards(tmp_path: Path):
    """`-i RUN/dedup` (a directory a stage wrote): its part-* shards are the input, not its stats.json
    (which `.json` matches: ~1,000 lines of invalid JSON) nor clusters.jsonl.zst; on a local disk and
    on memory://. Another folder's stats.json that is not a stage's stays an input."""
    import uuid

    import fsspec

    from preprocessing.dedup.minhash import NearDedupConfig
    from preprocessing.stages.dedup import run_near_dedup

    rows = stdlib_rows(30)
    rows += [dict(r, repo_name="fork/x", content=r["content"] + "\n# fork\n") for r in rows[:6]]
    (tmp_path / "in").mkdir()
    dump = write_jsonl(tmp_path / "in" / "dump.jsonl", rows)
    out = tmp_path / "dedup"
    st = run_near_dedup(NearDedupConfig(), InputConfig(paths=[str(dump)]), out)
    assert {p.name for p in out.iterdir()} >= {"stats.json", "clusters.jsonl.zst", "part-00000.jsonl.zst"}
    fs = fsspec.filesystem("memory")
    url = f"memory://stage-{uuid.uuid4().hex[:8]}"
    for p in out.iterdir():
        fs.put_file(str(p), f"{url[len('memory://'):]}/{p.name}")
    for where in (str(out), url):
        reader = open_reader(InputConfig(paths=[where]))
        assert [str(p).rsplit("/", 1)[1] for p in reader.paths] == ["part-00000.jsonl.zst"]
        items = list(reader.records())
        assert len(items) == st["totals"]["kept"] and all(isinstance(i, CodeFile) for i in items)
    other = tmp_path / "other"
    other.mkdir()
    write_jsonl(other / "stats.json", rows[:3])  # someone's JSON Lines that happen to be named so
    assert len(list(open_reader(InputConfig(paths=[str(other)])).records())) == 3
