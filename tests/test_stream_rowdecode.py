"""The C row decoder of `stream` (``json_lines_decode``, issue 16, eighth pass) gives the records
the Python decode gives (``JsonlReader.decode_common`` and ``decode_line``): the same values,
types, ``extra`` key order, line numbers and rejections, on the installation's files written as
`json.dumps` rows and on generated lines of every form its grammar takes or refuses; lines it
does not decode are decoded as before; without the kernel, a RuntimeWarning and the same records.
The lowercasing of the filters' joined text in C (``ascii_lower``) = ``bytes.lower``, likewise."""

from __future__ import annotations

import json
import random
import warnings

import pytest

from preprocessing.dedup import native
from preprocessing.readers import jsonl as jsonl_mod
from preprocessing.readers.jsonl import FrameLines, JsonlReader, _raw_names, _record_slots
from preprocessing.record import CodeFile
from tests.test_filters_batch import _installation_records


@pytest.fixture(scope="module")
def installation() -> list[CodeFile]:
    return _installation_records(300, 2000)


def _key(x):
    """Everything a decoded item holds, with the types of its values (nested ones too)."""
    def typed(v):
        if type(v) is dict:
            return ("dict", [(k, typed(w)) for k, w in v.items()])
        if type(v) is list:
            return ("list", [typed(w) for w in v])
        return (type(v).__name__, repr(v))
    return type(x).__name__, [(k, typed(getattr(x, k))) for k in getattr(x, "__slots__", ())]


def _same(a: list, b: list) -> bool:
    return [_key(x) for x in a] == [_key(x) for x in b]


def _value(rng: random.Random, depth: int = 0):
    """A JSON value of the forms the C grammar knows (and some it refuses)."""
    kind = rng.randrange(12 if depth < 3 else 8)
    if kind == 0:
        return rng.randint(-10**6, 10**6)
    if kind == 1:
        return rng.choice([0, -0, 10**14, 10**15 - 1, 10**15, 10**18, -10**15 + 1, 123456789012345678])
    if kind == 2:
        return rng.choice([0.5, -0.0, 1.25, 3.141592653589793, 1e-7, 1e21, 2.5e-3, 12345.678901234, 0.1, 1e300])
    if kind == 3:
        return rng.choice([True, False, None])
    if kind in (4, 5, 6, 7):
        return "".join(rng.choice("ab \"\\/\n\t\r\b\f\x01\x1f\x7fé€\U0001f600z") for _ in range(rng.randint(0, 6)))
    if kind in (8, 9):
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["a", "b", "c", "a\"q", "é"]): _value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _generated_lines(seed: int, n: int) -> list[bytes]:
    """Rows with the four mapped fields (or not), extra fields of every kind, in json.dumps' forms
    (ASCII escapes or raw UTF-8, compact or spaced separators), some cut, spaced, doubled or broken."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        row = {}
        names = ["repo_name", "path", "content", "license", "size", "copies", "stars", "meta"]
        rng.shuffle(names)
        for name in names:
            if name == "content":
                if rng.random() < 0.95:
                    row[name] = rng.choice(["x = 1\n", "def f():\n    return 'a\\b'\n", "", "  \n\t", "\x1c\x1d",
                                            "a\x00b", "\x7fdel", "tab\there", "é", "y" * 300, "\"q\"", "\\"]) + \
                        "".join(rng.choice("ab=\n\\\"\t\x0b") for _ in range(rng.randint(0, 40)))
            elif name == "license":
                if rng.random() < 0.8:
                    row[name] = rng.choice(["mit", "", None, "apache-2.0", 3, "bsd\"x"])
            elif name in ("repo_name", "path"):
                if rng.random() < 0.97:
                    row[name] = rng.choice(["org/repo", "a/b.py", "", "sp ace", "é/x", "q\"t", 7])
            elif rng.random() < 0.6:
                row[name] = _value(rng)
        sep = rng.choice([(", ", ": "), (",", ":"), (" ,  ", " :\t")])
        line = json.dumps(row, ensure_ascii=rng.random() < 0.8, separators=sep)
        r = rng.random()
        if r < 0.03:
            line = line[:rng.randrange(len(line) + 1)]  # cut
        elif r < 0.06:
            line = " \t" + line + " \r"  # JSON whitespace around the object
        elif r < 0.08:
            line = line + " x"  # trailing bytes
        elif r < 0.10 and len(row) > 1:
            k = rng.choice(list(row))
            line = line[:-1] + f', "{k}": {json.dumps(row[k])}' + "}"  # a repeated key
        elif r < 0.11:
            line = line.replace('"path"', '"pa\\u0074h"')  # an escaped key
        elif r < 0.12:
            line = line.replace("1", "1e2", 1)  # an exponent somewhere
        out.append(line.encode("utf-8", "surrogatepass"))
    return out + [b"[1, 2]", b"{}", b"not json", b"\xff\xfe", b'{"content": "\\ud800", "repo_name": "r", "path": "p"}',
                  b'{"content": "\\u0041\\u007f\\u0001", "repo_name": "r", "path": "p"}',
                  b'{"content": "\\u0080", "repo_name": "r", "path": "p"}',
                  b'{"content": "\\u000", "repo_name": "r", "path": "p"}', b'{"content": "x\\q", "repo_name": "r", "path": "p"}',
                  b'{"content": "raw\ttab", "repo_name": "r", "path": "p"}',
                  b'{"content": "x", "repo_name": "r", "path": "p", "d": {"k": 1, "k": [2]}}',
                  b'{"content": "x", "repo_name": "r", "path": "p", "n": -0, "f": -0.0, "g": 10.50}',
                  b'{"content": "x", "repo_name": "r", "path": "p", "deep": [[[[[[[[[1]]]]]]]]]}',
                  b'{"content": "x", "repo_name": "r", "path": "p", "deep": [[[[[[[1]]]]]]]}',
                  b'{"content":"x","repo_name":"r","path":"p","license":null}',
                  b'{"content":"x","repo_name":"r","path":"p","license":"mit"}\r']


def _check(reader: JsonlReader, lines: list[bytes], first: int) -> int:
    pairs = list(enumerate(lines, first))
    got = reader.decode_lines("f", pairs)
    assert _same(got, reader.decode_common("f", pairs))
    assert _same(got, [reader.decode_line("f", n, line) for n, line in pairs])
    if lines and all(b"\n" not in line for line in lines):  # as a unit's FrameLines (read in its buffer)
        fl = FrameLines(b"\n".join(lines) + b"\n", first)
        assert _same(reader.decode_lines("f", fl), got)
        assert fl._lines is None or len(fl) == 0  # not split
    fast = jsonl_mod._json_lines_decode()(pairs, *_raw_names(("content", "repo_name", "path", "license")), CodeFile,
                                         _record_slots(), "f", reader.max_file_bytes)
    return sum(x is not None for x in fast)


def test_row_decoder_equals_the_python_decode_on_json_dumps_rows(installation):
    assert jsonl_mod._json_lines_decode() is not None  # the extension is built in this checkout
    assert _record_slots() is not None
    rows = [{"repo_name": r.repo_name, "path": r.path, "copies": "1", "size": str(len(r.content.encode())),
             "content": r.content, "license": r.license} for r in installation]
    for ascii_only in (True, False):
        lines = [json.dumps(row, ensure_ascii=ascii_only).encode() for row in rows]
        for reader in (JsonlReader([]), JsonlReader([], max_file_bytes=300)):
            decoded = sum(_check(reader, lines[i:i + 256], 1 + i) for i in range(0, len(lines), 256))
            if ascii_only:  # most rows are decoded in C (line 1 and the files with \u escapes of non-ASCII are not)
                assert decoded > 0.8 * len(lines)
    # a unit's FrameLines as the reader gives them
    data = b"\n".join(json.dumps(row).encode() for row in rows[:300]) + b"\n"
    reader = JsonlReader([])
    fl = FrameLines(data, 7)
    assert _same(reader.decode_lines("f", fl), [reader.decode_line("f", n, line) for n, line in fl])


def test_row_decoder_equals_the_python_decode_on_generated_lines():
    decoded = 0
    for seed in range(6):
        lines = _generated_lines(seed, 700)
        for reader in (JsonlReader([]), JsonlReader([], max_file_bytes=60)):
            for size in (256, 13):
                for i in range(0, len(lines), size):
                    decoded += _check(reader, lines[i:i + size], 1 if i == 0 and seed == 0 else 2 + i)
    assert decoded > 1000  # the C path ran on many of them
    # other column names (one of them spelled with an escape in JSON: never decoded in C)
    from preprocessing.readers.base import ColumnsConfig

    for columns in (ColumnsConfig(content="text", repo_name="repo", path="file", license="lic"),
                    ColumnsConfig(content='te"xt')):
        reader = JsonlReader([], columns=columns)
        lines = [json.dumps({"repo": "r", "file": "f", "text": "x = 1\n", "lic": "mit", 'te"xt': "y=2\n",
                             "repo_name": "a", "path": "b"}).encode()] * 5
        _check(reader, lines, 3)


def test_without_the_decode_kernel_a_warning_and_the_same_records(installation, monkeypatch):
    lines = [json.dumps({"repo_name": r.repo_name, "path": r.path, "content": r.content, "license": r.license}).encode()
             for r in installation[:400]] + _generated_lines(9, 300)
    pairs = list(enumerate(lines, 1))
    reader = JsonlReader([])
    with_kernel = reader.decode_lines("f", pairs)
    slow_class = jsonl_mod._json_lines_decode()(pairs, *_raw_names(("content", "repo_name", "path", "license")),
                                                CodeFile, None, "f", reader.max_file_bytes)
    fast = jsonl_mod._json_lines_decode()(pairs, *_raw_names(("content", "repo_name", "path", "license")),
                                          CodeFile, _record_slots(), "f", reader.max_file_bytes)
    assert _same(slow_class, fast)  # the record built by its class = built through its slots
    jsonl_mod._json_lines_decode.cache_clear()
    monkeypatch.setattr(native, "kernel", lambda name: (_ for _ in ()).throw(AttributeError(name)))
    try:
        with pytest.warns(RuntimeWarning, match="json_lines_decode"):
            assert jsonl_mod._json_lines_decode() is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once: no second warning
            assert _same(reader.decode_lines("f", pairs), with_kernel)
    finally:
        jsonl_mod._json_lines_decode.cache_clear()


def test_ascii_lower_equals_bytes_lower_and_without_it_a_warning(installation, monkeypatch):
    from preprocessing.filters import joined as joined_mod

    lower = joined_mod._ascii_lower_kernel()
    assert lower is not None
    rng = random.Random(4)
    every = "".join(map(chr, range(128)))
    texts = ["".join(rng.choice(every) for _ in range(n)) for n in list(range(40)) * 5 + [1000, 4099]]
    texts += [r.content for r in installation if r.content.isascii()][:500]
    for t in texts:
        assert lower(t) == t.encode("ascii").lower()
    with pytest.raises(ValueError):
        lower("é")
    ref = joined_mod.JoinedText.of(texts[:300], lower=True)
    monkeypatch.setattr(joined_mod, "_ASCII_LOWER", [])
    monkeypatch.setattr(native, "kernel", lambda name: (_ for _ in ()).throw(AttributeError(name)))
    with pytest.warns(RuntimeWarning, match="ascii_lower"):
        without = joined_mod.JoinedText.of(texts[:300], lower=True)
    assert without.text == ref.text and (without.ends == ref.ends).all() and (without.starts == ref.starts).all()


def test_small_records_from_the_metric_columns_equal_the_text_test(installation):
    """Batch.small read from the columns' ASCII flag and sizes = the length and isascii test."""
    from preprocessing.filters.joined import BATCH_MAX_CHARS, Batch
    from preprocessing.filters.quality import file_metrics_columns

    texts = [r.content for r in installation[:400]] + ["", "é = 1\n", "a" * BATCH_MAX_CHARS, "a" * (BATCH_MAX_CHARS + 1),
                                                       "é" * 3000, "x\n"]
    random.Random(8).shuffle(texts)
    for chunk in (texts, [t for t in texts if t and t.isascii()], texts[:20]):
        cols = file_metrics_columns(chunk)
        assert cols.ascii is not None and cols.ascii.tolist() == [t.isascii() for t in chunk]
        got = Batch(chunk, (), cols).small.tolist()
        assert got == Batch(chunk).small.tolist() == [len(t) <= BATCH_MAX_CHARS and t.isascii() for t in chunk]
        assert Batch(chunk, (), cols).view([3, 1]).small.tolist() == [got[3], got[1]]


def test_newline_ends_equal_the_numpy_and_find_paths(monkeypatch):
    rng = random.Random(6)
    datas = [b"\n", b"\n\n\n", b"x" * 5000 + b"\n"]
    for n in (1, 5, 300, 3000):  # short lines (numpy's path before) and long ones (bytes.find's)
        for width in (3, 80, 2000):
            datas.append(b"".join(bytes(rng.choice(b"ab \r\t{}\"") for _ in range(rng.randint(0, width))) + b"\n"
                                  for _ in range(n)))
    with_kernel = [FrameLines(d, 1).ends() for d in datas]
    for d, ends in zip(datas, with_kernel):
        assert ends == [i for i, c in enumerate(d) if c == 10]
    monkeypatch.setattr(native, "kernel", lambda name: (_ for _ in ()).throw(AttributeError(name)))
    jsonl_mod._newline_ends.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="newline_ends"):
            assert jsonl_mod._newline_ends() is None
        assert [FrameLines(d, 1).ends() for d in datas] == with_kernel
    finally:
        jsonl_mod._newline_ends.cache_clear()
