"""`stream`'s repeats known by their raw content string (JsonlReader.scan, the C json_lines_scan,
stream._RawRepeats): the same output and stats as decoding every line."""

from __future__ import annotations

import gzip
import json
import random
import warnings
from pathlib import Path

import numpy as np
import orjson
import pytest
import xxhash
import zstandard

from preprocessing.dedup import native
from preprocessing.readers import InputConfig, JsonlReader
from preprocessing.readers import jsonl as jsonl_mod
from preprocessing.readers.jsonl import JsonlUnit
from preprocessing.stages import stream as stream_mod
from preprocessing.stages.stream import StreamConfig, run_stream
from tests.conftest import stdlib_rows
from tests.test_stream import assert_accounted, read_output, shard_bytes

pytestmark = pytest.mark.skipif(not native.available(), reason="the C extension is not built")

NAMES = (b"content", b"repo_name", b"path", b"license")


def _scan(lines: list[bytes]) -> tuple[list[int], list[tuple[int, int]]]:
    """The C scan of ``lines``: status and (h1, h2) per line."""
    data = b"\n".join(lines) + b"\n"
    starts, ends, pos = [], [], 0
    for line in lines:
        starts.append(pos)
        ends.append(pos + len(line))
        pos += len(line) + 1
    n = len(lines)
    status, h1, h2 = np.zeros(n, np.uint8), np.zeros(n, np.uint64), np.zeros(n, np.uint64)
    native.kernel("json_lines_scan")(data, np.array(starts, np.int64), np.array(ends, np.int64), *NAMES,
                                     status, h1, h2)
    return status.tolist(), list(zip(h1.tolist(), h2.tolist()))


def _edge_lines() -> list[bytes]:
    rows = stdlib_rows(6)
    rows.append(dict(rows[0], path="Lib/u.py", content='s = "caf\u00e9 \u2014 \U0001F600"\nt = "\\\\" + \'"\'\n'))
    out = [json.dumps(r).encode() for r in rows]
    out += [orjson.dumps(r) for r in rows]  # another writer: no spaces, UTF-8 raw (not simple)
    out += [json.dumps(r).replace("/", "\\/").encode() for r in rows]  # a writer that escapes "/"
    out += [json.dumps(r, indent=None, separators=(" ,", " : ")).encode() for r in rows]
    base = rows[1]
    out += [
        json.dumps(dict(base, stars=[1, 2.5, -0, {"k": True, "n": None}], license=None)).encode(),
        json.dumps({k: v for k, v in base.items() if k != "license"}).encode(),
        json.dumps(dict(base, repo_name="caf\u00e9/x")).encode(),  # \u in a field: not simple
        json.dumps(dict(base, size=10 ** 20)).encode(),  # 21 digits: not simple
        json.dumps(dict(base, size=1.5e300)).encode(),  # an exponent: not simple
        b'{"repo_name": "a", "path": "p", "content": "x", "content": "y"}',  # a mapped key twice
        b'{"repo\\u005fname": "a", "path": "p", "content": "x"}',  # an escaped key
        b'{"repo_name": "a", "path": "p", "content": "x"',  # cut
        b'{"repo_name": "a", "path": "p", "content": "x"} {}',  # something after the object
        b'{"repo_name": "a", "path": 3, "content": "x"}',  # a path that is no string
        b'{"repo_name": null, "path": "p", "content": "x"}',
        b'{"path": "p", "content": "x"}',  # no repository
        b'{"repo_name": "a", "path": "p", "content": "x", "n": 01}',
        b'{"repo_name": "a", "path": "p", "content": "x", "t": "tab\there"}',  # a raw control character
        b'{"repo_name": "a", "path": "p", "content": "x", "d": {"a": [[[[[[[[1]]]]]]]]}}',  # deep
        b'  {"repo_name":"a","path":"p","content":"a\\\\","license":"mit"}\r',
        b'\xef\xbb\xbf{"repo_name": "a", "path": "p", "content": "x"}',  # a byte order mark
        b'{"repo_name": "a", "path": "p", "content": ""}',
        b'[1, 2]',
        b'',
    ]
    return out


def _body(line: bytes) -> tuple[int, int]:
    """Where the first "content" string's body of ``line`` is (its start, its closing quote)."""
    start = line.index(b'"content"')
    start = line.index(b'"', start + 9) + 1
    i = start
    while True:
        j = line.index(b'"', i)
        k = j
        while line[k - 1] == 92:
            k -= 1
        if (j - k) % 2 == 0:
            return start, j
        i = j + 1


def _mutants(lines: list[bytes], n: int, seed: int = 0) -> list[bytes]:
    """``n`` copies of the lines with a byte changed, inserted or removed outside their content
    string's body (so the body stays one a parse knows), seeded."""
    rng = random.Random(seed)
    out = []
    alphabet = b' "\\{}[],:0123456789.-etrufalsn/\t\r\x00\x7f\xc3\xa9u'
    for _ in range(n):
        line = rng.choice(lines)
        body, close = _body(line)
        b = bytearray(line)
        i = rng.choice([rng.randrange(0, body), rng.randrange(close, len(b))])
        op = rng.randrange(3)
        if op == 0:
            b[i] = rng.choice(alphabet)
        elif op == 1:
            b.insert(i, rng.choice(alphabet))
        else:
            del b[i]
        out.append(bytes(b))
    return out


def test_scan_says_simple_only_of_lines_any_parser_reads_as_a_record():
    """A line the scan calls simple parses (orjson) to an object whose content, repository and
    path are strings and whose license is a string or missing; lines whose raw content strings
    have the same key decode to the same content; json.dumps's own lines are simple (and those
    with `\\/` escapes, other spacing). Over edge cases and 4,000 one-byte mutants of them outside the body."""
    edge = _edge_lines()
    status, keys = _scan(edge)
    simple = [line for line, ok in zip(edge, status) if ok]
    assert all(status[:7]) and all(status[14:28])  # json.dumps's lines, `\/` escapes, other spacing
    assert b'{"repo_name": "a", "path": "p", "content": "x", "content": "y"}' not in simple
    assert b'{"repo\\u005fname": "a", "path": "p", "content": "x"}' not in simple
    assert b'  {"repo_name":"a","path":"p","content":"a\\\\","license":"mit"}\r' in simple  # no spaces, a \r
    body = json.dumps(stdlib_rows(1)[0]["content"])[1:-1].encode()  # the key is the raw body's
    assert keys[0] == (xxhash.xxh64_intdigest(body, 0), xxhash.xxh64_intdigest(body, 1))
    lines = edge + _mutants([line for line in simple if b'"content"' in line], 4000)
    status, keys = _scan(lines)
    known: dict[tuple[int, int], str] = {}  # raw body key -> content, from the lines that parse
    for line, ok, key in zip(lines, status, keys):
        if ok:
            try:
                known.setdefault(key, orjson.loads(line)["content"])
            except orjson.JSONDecodeError:
                pass
    n = 0
    for line, ok, key in zip(lines, status, keys):
        if ok and key in known:  # what stream counts unparsed: a simple line with a known body
            row = orjson.loads(line)  # raises if the scan was wrong
            assert type(row) is dict, line
            assert type(row["content"]) is str and type(row["repo_name"]) is str and type(row["path"]) is str, line
            assert row.get("license") is None or type(row["license"]) is str, line
            assert row["content"] == known[key], line
            n += 1
    assert 1000 < n < len(lines)


def _dump_lines() -> list[bytes]:
    """A duplicate-heavy dump of real files in one frame: repeats under fork names, written by
    json.dumps (\\uXXXX escapes, surrogate pairs), some copies by a writer that escapes "/" (the
    same content, other raw bytes), a file whose first copies are dropped (a license the filter
    refuses) and whose later copies are kept, cut and non-object lines among the repeats."""
    rows = stdlib_rows(12)
    rows.append(dict(rows[0], path="Lib/unicode.py",
                     content='s = "caf\u00e9 \u2014 \U0001F600"  # non-ASCII, an astral character\nt = "\\\\" + \'"\'\n' * 8))
    rows.append(dict(rows[1], path="Lib/slashes.py", content="# see http://example.com/a/b\nx = '/'\n" * 10))
    gpl = dict(rows[2], path="Lib/first_dropped.py", license="gpl-3.0", content=rows[2]["content"] + "\n# its own copy\n")
    lines: list[bytes] = []
    for i in range(1400):
        r = rows[i % len(rows)]
        if i >= len(rows):
            r = dict(r, repo_name=f"fork{i}/x")
        line = json.dumps(r)
        if i % 7 == 3:
            line = line.replace("/", "\\/")
        lines.append(line.encode())
        if i % 50 == 5:
            lines.append(json.dumps(dict(gpl, repo_name=f"gpl{i}/x") if i < 700 else dict(gpl, license="mit",
                                                                                          repo_name=f"mit{i}/x")).encode())
        if i % 97 == 50:
            lines.append(lines[-1][: len(lines[-1]) // 2])  # a cut copy: invalid JSON
        elif i % 131 == 70:
            lines.append(b"[1, 2]")
    return lines


def _dump(tmp_path: Path, shape: str = "frame") -> list[Path]:
    """The lines of :func:`_dump_lines` as one zstd frame (the driver cuts it into line units),
    as 4 gzip files (the workers read each whole) or as a plain file (the workers read its ranges)."""
    lines = _dump_lines()
    if shape == "frame":
        path = tmp_path / "dump.jsonl.zst"
        path.write_bytes(zstandard.ZstdCompressor(level=3).compress(b"\n".join(lines) + b"\n"))
        return [path]
    if shape == "plain":
        path = tmp_path / "dump.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        return [path]
    paths = []
    for k in range(4):
        path = tmp_path / f"dump-{k}.jsonl.gz"
        path.write_bytes(gzip.compress(b"\n".join(lines[k::4]) + b"\n"))
        paths.append(path)
    return paths


class _CountedKnownLines(stream_mod.KnownLines):
    __slots__ = ()
    made = 0

    def __init__(self, tokens):
        super().__init__(tokens)
        _CountedKnownLines.made += len(tokens)


@pytest.mark.parametrize("workers, shape", [(1, "frame"), (2, "frame"), (1, "gzip"), (2, "plain")])
def test_repeats_by_raw_content_string_equal_decoding_every_line(tmp_path, monkeypatch, workers, shape):
    """The run with the raw repeats counted unparsed gives the bytes and every stats.json field
    (times aside) of the run that decodes every line: a repeat written with other escapes is
    still an exact duplicate (by content), the copies of a file whose first copies the filters
    dropped still run the filters (and the later ones are kept), bad lines are rejected. Units of
    lines the driver cut, and units a worker reads itself (whole gzip files, ranges of a plain file)."""
    paths = _dump(tmp_path, shape)
    cfg = StreamConfig(input=InputConfig(paths=[str(p) for p in paths], batch_records=16))
    cfg.filters.secrets.mode = "off"  # a rewriting step turns the raw repeats off (its keys need the record)
    monkeypatch.setattr(stream_mod, "KnownLines", _CountedKnownLines)
    _CountedKnownLines.made = 0
    fast = run_stream(cfg, tmp_path / "fast", executor=workers)
    if workers == 1:
        assert _CountedKnownLines.made > 100  # the raw path ran (in this process)
    monkeypatch.setattr(stream_mod.RawBodyKeys, "wanted", lambda self, n: False)
    slow = run_stream(cfg, tmp_path / "slow", executor=workers)
    assert shard_bytes(tmp_path / "fast") == shard_bytes(tmp_path / "slow")
    drop = {"wall_time_s", "throughput_mb_s"}
    assert {k: v for k, v in fast.items() if k not in drop} == {k: v for k, v in slow.items() if k not in drop}
    assert_accounted(fast)
    kept = read_output(tmp_path / "fast")
    assert any(r["path"] == "Lib/first_dropped.py" and r["license"] == "mit" for r in kept)
    assert not any(r["path"] == "Lib/first_dropped.py" and r["license"] == "gpl-3.0" for r in kept)
    assert sum(r["path"] == "Lib/slashes.py" for r in kept) == 1  # its `\/` copies: exact duplicates
    assert fast["totals"]["rejected"]["invalid_json"] > 20
    assert fast["totals"]["dropped"]["exact_duplicate"] > 1000


def test_without_the_scan_kernel_the_same_records_and_a_warning(tmp_path, monkeypatch):
    """No json_lines_scan in the extension (built before it): a RuntimeWarning, and scan() gives
    None (stream decodes every line: the same output)."""
    monkeypatch.setattr(native, "kernel", lambda name: (_ for _ in ()).throw(AttributeError(name)))
    with pytest.warns(RuntimeWarning, match="json_lines_scan"):
        assert jsonl_mod._json_lines_scan.__wrapped__() is None
    monkeypatch.setattr(jsonl_mod, "_json_lines_scan", lambda: None)
    line = json.dumps(stdlib_rows(1)[0]).encode()
    (tmp_path / "x.jsonl").write_bytes(line + b"\n")
    reader = JsonlReader([str(tmp_path / "x.jsonl")])
    unit = JsonlUnit(str(tmp_path / "x.jsonl"), [(1, line)])
    assert reader.scan(unit.source, unit.lines) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = StreamConfig(input=InputConfig(paths=[str(p) for p in _dump(tmp_path)], batch_records=16))
        cfg.filters.secrets.mode = "off"
        assert_accounted(run_stream(cfg, tmp_path / "run", executor=1))
