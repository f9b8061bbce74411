"""The per-record paths of `stream` (issue 16, seventh pass) give what the code before them gave:
the C pass over a chunk's ASCII texts (``ascii_text_stats``) = the numpy reference and
``file_metrics``, its newline and "=" counts = ``str.count``, and without the kernel a warning and
the same answers; the record keys shared with the quality filter = its own; the drop examples'
choice by numpy = ``chosen_examples``; ``has_blank`` by numpy = the line loop; ``decode_lines`` =
``decode_line`` line by line. On the installation's files (the toolkit's own reader), cut into
small files, and on generated edge cases."""

from __future__ import annotations

import json
import random
import warnings

import numpy as np
import pytest

from preprocessing.dedup import native
from preprocessing.filters import FiltersConfig, apply_filters_batch, build_filters
from preprocessing.filters import quality as quality_mod
from preprocessing.filters.quality import METRIC_NAMES, file_metrics, file_metrics_columns
from preprocessing.hashing import record_keys_of
from preprocessing.profile import CorpusProfile
from preprocessing.readers.jsonl import FrameLines, JsonlReader
from preprocessing.record import CodeFile
from tests.test_filters_batch import _installation_records


@pytest.fixture(scope="module")
def installation() -> list[CodeFile]:
    """Real files of the running installation, whole, then cut into runs of ~200 characters."""
    return _installation_records(400, 3000)


def _edge_texts() -> list[str]:
    """Texts made of line breaks (every one str.splitlines knows in ASCII), "=", alphanumerics and
    the rest, and the record boundaries between them (a "\\r" ending one text, "\\n" opening the next)."""
    rng = random.Random(11)
    alphabet = "ab=\n\r\x0b\x0c\x1c\x1d\x1e\x1f \t9Z_#"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14))) for _ in range(3000)]
    # longer ones: the C pass takes 16 bytes at a time (breaks and "\r\n" across its blocks' edges)
    texts += ["".join(rng.choice(alphabet + "xyzXYZ019" * 3) for _ in range(rng.randint(15, 70))) for _ in range(3000)]
    texts += ["a" * k + "\r\n" + "b" * j for k in range(12, 34) for j in (0, 1, 15)]
    return texts + ["\r", "\n", "\r\n", "a\r", "\na", "=", "x", "\r\r\n\n", "a" * 5000, "\n" * 40, "x = 1\r\n" * 7]


def test_ascii_text_stats_equals_the_numpy_reference_and_file_metrics(installation):
    texts = [r.content for r in installation] + _edge_texts()
    ascii_texts = [t for t in texts if t and t.isascii()]
    assert quality_mod._text_stats_kernel() is not None  # the extension is built in this checkout
    for size in (256, 37, 16):
        for start in range(0, len(ascii_texts), size * 7):  # every 7th chunk: seconds, not minutes
            chunk = ascii_texts[start:start + size]
            joined = "".join(chunk)
            got = quality_mod._ascii_columns(chunk, joined)
            ref = quality_mod._ascii_columns_numpy(chunk, joined, np.fromiter(map(len, chunk), np.int64, len(chunk)))
            for name in METRIC_NAMES:
                assert got.column(name).dtype == ref.column(name).dtype
                assert np.array_equal(got.column(name), ref.column(name)), name
            assert got.newlines.tolist() == [t.count("\n") for t in chunk]
            assert got.equals.tolist() == [t.count("=") for t in chunk]
            assert got.rows() == [file_metrics(t) for t in chunk]
            assert ref.newlines is None and ref.equals is None


def test_metric_columns_with_non_ascii_and_empty_texts_count_newlines_and_equals(installation):
    texts = [r.content for r in installation[:300]] + ["", "é = 1\n", "\u2028x==\n", "a\r\nb=\n"] + _edge_texts()[:100]
    random.Random(2).shuffle(texts)
    cols = file_metrics_columns(texts)
    assert cols.rows() == [file_metrics(t) for t in texts]
    assert cols.newlines.tolist() == [t.count("\n") for t in texts]
    assert cols.equals.tolist() == [t.count("=") for t in texts]
    sub = cols.take([5, 1, 1, 0])  # a list index: the extra columns follow
    assert sub.newlines.tolist() == [texts[i].count("\n") for i in (5, 1, 1, 0)]
    assert sub.rows() == [file_metrics(texts[i]) for i in (5, 1, 1, 0)]


def test_without_the_stats_kernel_the_same_filters_and_a_warning(installation, monkeypatch):
    """No ascii_text_stats in the extension: a RuntimeWarning, the numpy columns (no newline and
    "=" columns), and the filters' answers unchanged."""
    records = installation[-600:]
    filters = build_filters(FiltersConfig())
    with_kernel = [apply_filters_batch(filters, records[i:i + 256], CorpusProfile(), None,
                                       file_metrics_columns([r.content for r in records[i:i + 256]]))
                   for i in range(0, len(records), 256)]
    monkeypatch.setattr(quality_mod, "_TEXT_STATS", [])
    monkeypatch.setattr(native, "kernel", lambda name: (_ for _ in ()).throw(AttributeError(name)))
    with pytest.warns(RuntimeWarning, match="ascii_text_stats"):
        assert quality_mod._text_stats_kernel() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: no second warning
        cols = file_metrics_columns([r.content for r in records[:256]])
        assert cols.newlines is None and cols.rows() == [file_metrics(r.content) for r in records[:256]]
        without = [apply_filters_batch(filters, records[i:i + 256], CorpusProfile(), None,
                                       file_metrics_columns([r.content for r in records[i:i + 256]]))
                   for i in range(0, len(records), 256)]
    assert [[v if type(v) is not tuple else v[0] for v in vs] for vs in without] == \
        [[v if type(v) is not tuple else v[0] for v in vs] for vs in with_kernel]


def test_shared_record_keys_give_the_quality_filters_own_answers(installation):
    """apply_filters_batch given the records' keys (stream shares them with the drop ranks) =
    without them; the drops cover every quality rule the small files meet."""
    records = installation[-3000:]
    filters = build_filters(FiltersConfig())
    reasons = set()
    for i in range(0, len(records), 256):
        chunk = records[i:i + 256]
        cols = file_metrics_columns([r.content for r in chunk])
        plain = apply_filters_batch(filters, chunk, CorpusProfile(), None, cols)
        shared = apply_filters_batch(filters, chunk, CorpusProfile(), None, cols, record_keys_of(chunk))
        assert [v if type(v) is not tuple else v[0] for v in shared] == [v if type(v) is not tuple else v[0] for v in plain]
        reasons.update(v[0] for v in plain if type(v) is tuple)
    assert {"quality:config_or_test", "quality:no_keywords", "quality:few_assignments"} <= reasons


def _rows_of(records: list[CodeFile]) -> list[bytes]:
    return [json.dumps({"repo_name": r.repo_name, "path": r.path, "copies": "1", "content": r.content,
                        "license": r.license}).encode() for r in records]


EDGE_LINES = [
    b'{"content": "", "repo_name": "a", "path": "p"}', b'{"content": "  \\n", "repo_name": "a", "path": "p"}',
    b'{"content": "a\\u0000b", "repo_name": "a", "path": "p"}', b'{"content": "x", "repo_name": 1, "path": "p"}',
    b'{"content": "x", "repo_name": "r", "path": "p", "license": ""}',
    b'{"content": "x", "repo_name": "r", "path": "p", "license": 3}', b"[1, 2]", b"not json",
    b'{"content": "h\\u00e9", "repo_name": "r", "path": "p"}', '{"content": "h\u00e9", "repo_name": "r", "path": "p"}'.encode(),
    b'\xef\xbb\xbf{"content": "bom", "repo_name": "r", "path": "p"}',
    b'{"content": "' + b"y" * 300 + b'", "repo_name": "r", "path": "p"}', b'{"content": "\\u001c", "repo_name": "r", "path": "p"}',
    b'{"content": "ok", "repo_name": "r", "path": "p", "license": "MIT", "x": {"a": 1}}', b"\xff\xfe",
    b'{"content": "\\ud800", "repo_name": "r", "path": "p"}', b'{"repo_name": "r", "path": "p"}',
]


def _same(a: list, b: list) -> bool:
    def key(x):
        return type(x).__name__, {k: getattr(x, k) for k in x.__slots__}
    return [key(x) for x in a] == [key(x) for x in b]


def test_decode_lines_group_wise_equals_decode_line(installation):
    lines = _rows_of(installation[:200] + installation[-500:])
    rng = random.Random(5)
    groups = [list(enumerate(lines[i:i + 256], 1 + i)) for i in range(0, len(lines), 256)]
    for t in range(120):
        g = [rng.choice(lines) for _ in range(rng.randint(1, 30))] + ([rng.choice(EDGE_LINES)] if t % 2 else [])
        rng.shuffle(g)
        groups.append(list(enumerate(g, rng.choice([1, 2, 50]))))
    groups += [[(1, e)] for e in EDGE_LINES] + [[(5, e)] for e in EDGE_LINES] + [[]]
    for reader in (JsonlReader([], max_file_bytes=200), JsonlReader([])):
        for g in groups:
            assert _same(reader.decode_lines("f", g), [reader.decode_line("f", n, line) for n, line in g])
            assert _same(reader.decode_lines("f", iter(g)), [reader.decode_line("f", n, line) for n, line in g])
        data = b"\n".join(lines[:300]) + b"\n"  # FrameLines, as a unit cut from a frame
        fl = FrameLines(data, 7)
        assert _same(reader.decode_lines("f", fl), [reader.decode_line("f", n, line) for n, line in fl])


def test_chosen_of_equals_chosen_examples():
    rng = random.Random(3)
    for _ in range(1500):
        profile = CorpusProfile()
        pool = [f"r{k}" for k in range(rng.randint(1, 8))]
        for reason in pool:  # buckets empty, partly full and full
            for _ in range(rng.randint(0, 4)):
                profile.offer_example(reason, rng.choice([rng.getrandbits(64), rng.getrandbits(8)]), {})
        n = rng.randint(0, 300)
        bits = 6 if rng.random() < 0.3 else 64  # ties too
        ranks = [rng.getrandbits(bits) for _ in range(n)]
        reasons = [rng.choice(pool) for _ in range(n)]
        assert profile.chosen_of(reasons, ranks) == profile.chosen_examples(list(zip(reasons, ranks)))
        # with a floor: the offers past their reason's floor are left out, nothing else changes
        floor = {reason: rng.choice([rng.getrandbits(bits), 0, (1 << 64) - 1]) for reason in pool if rng.random() < 0.7}
        kept = [i for i in range(n) if ranks[i] <= floor.get(reasons[i], 1 << 64)]
        want = [kept[j] for j in profile.chosen_examples([(reasons[i], ranks[i]) for i in kept])]
        assert profile.chosen_of(reasons, ranks, floor) == profile.chosen_examples(list(zip(reasons, ranks)), floor) \
            == want


def test_example_floor_leaves_the_report_as_it_was(installation, tmp_path, monkeypatch):
    """stream with the per-process example floor (ExampleFloor: a unit builds no example that
    EXAMPLES_PER_REASON smaller-ranked drops of its reason, met by earlier units in the process,
    keep out of the report) writes the same stats.json examples as without it, with 1 and 2
    workers, on many small units of real files; with it, far fewer examples are built; a new run
    empties the floor."""
    import zstandard

    from preprocessing.readers import InputConfig
    from preprocessing.stages import stream as stream_mod
    from preprocessing.stages.stream import ExampleFloor, StreamConfig, run_stream

    rows = [{"repo_name": r.repo_name, "path": r.path, "content": r.content, "license": "mit"} for r in installation]
    path = tmp_path / "dump.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows)))
    built = []
    real_example_of = stream_mod.example_of
    monkeypatch.setattr(stream_mod, "example_of", lambda *a: built.append(1) or real_example_of(*a))

    def run(name: str, workers: int) -> dict:
        built.clear()
        cfg = StreamConfig(input=InputConfig(paths=[str(path)], batch_records=64))
        stats = run_stream(cfg, tmp_path / name, executor=workers)
        return {"examples": stats["examples"], "built": len(built), "dropped": stats["totals"]["dropped"]}

    floor = {w: run(f"floor{w}", w) for w in (1, 2)}
    monkeypatch.setattr(ExampleFloor, "of", lambda self, run: None)
    plain = {w: run(f"plain{w}", w) for w in (1, 2)}
    assert sum(floor[1]["dropped"].values()) > 1000 and len(floor[1]["examples"]) >= 4
    for w in (1, 2):
        assert floor[w]["examples"] == plain[w]["examples"] == plain[1]["examples"], w
    assert floor[1]["built"] * 3 < plain[1]["built"], (floor[1]["built"], plain[1]["built"])
    # one process, two runs: the second's floor is its own
    monkeypatch.undo()
    f = ExampleFloor()
    assert f.of("a") == {}
    f.update("a", {"quality:x": [(5, {}), (9, {}), (7, {})], "rejected:y": [(1, {})] * 3})
    assert f.of("a") == {"quality:x": 9}
    f.update("a", {"quality:x": [(6, {})]})
    assert f.of("a") == {"quality:x": 7} and f.of("b") == {} and f.of("") is None


def _has_blank_loop(fl: FrameLines) -> bool:
    data, start = fl.data, 0
    for end in fl.ends():
        if end == start or (data[start] in b" \t\r\x0b\x0c\n" and data[start:end].isspace()):
            return True
        start = end + 1
    return False


def test_has_blank_equals_the_line_loop():
    rng = random.Random(9)
    pieces = [b"{}", b"x", b" x", b"\tx", b" ", b"\t \r", b"", b"\x0b", b" \x0c", b"\xa0", b"  y  "]
    for _ in range(3000):
        lines = [rng.choice(pieces) for _ in range(rng.randint(1, 12))]
        fl = FrameLines(b"\n".join(lines) + b"\n", 1)
        assert fl.has_blank() == _has_blank_loop(fl)


def test_first_fresh_equals_the_loop():
    """_first_fresh (C-level maps over the first position of each key) = the loop it replaced: a
    record is fresh and the first of its key in the chunk (an earlier one not fresh counts too)."""
    from preprocessing.stages.stream import _first_fresh

    rng = random.Random(2)
    for _ in range(2000):
        n = rng.randint(0, 40)
        keys = [rng.randint(0, 8) for _ in range(n)]
        fresh = [rng.random() < 0.7 for _ in range(n)]
        seen: set = set()
        want = []
        for key, f in zip(keys, fresh):
            want.append(f and key not in seen)
            seen.add(key)
        got = _first_fresh(keys, fresh)
        assert got == want and all(type(g) is bool for g in got)
