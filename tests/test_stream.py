"""The stream stage end to end: accounting, determinism across workers, restart, bad input."""

from __future__ import annotations

from collections import Counter

import json
from pathlib import Path

import pytest
import zstandard

from common.config import ConfigError
from preprocessing.readers import InputConfig
from preprocessing.stages.stream import StreamConfig, run_stream
from tests.conftest import stdlib_rows, write_jsonl


def read_output(run: Path) -> list[dict]:
    rows = []
    for p in sorted((run / "clean").glob("part-*.jsonl.zst")):
        with zstandard.ZstdDecompressor().stream_reader(open(p, "rb"), read_across_frames=True) as r:
            rows += [json.loads(line) for line in r.read().splitlines()]
    return rows


def shard_bytes(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / "clean").glob("part-*.jsonl.zst"))}


def assert_accounted(stats: dict) -> None:
    stages = stats["stages"]
    for name, s in stages.items():
        assert s["records_in"] == s["kept"] + sum(s["dropped"].values()) + sum(s["rejected"].values()), name
    assert stages["filter"]["records_in"] == stages["read"]["kept"]
    assert stages["exact_dedup"]["records_in"] == stages["filter"]["kept"]
    t = stats["totals"]
    assert t["records_read"] == t["kept"] + sum(t["dropped"].values()) + sum(t["rejected"].values())


@pytest.fixture(scope="module")
def python_runs(tmp_path_factory) -> tuple[Path, Path, dict, dict]:
    """The embedded default (the local Python installation), 1500 files, with 1 and 2 workers."""
    base = tmp_path_factory.mktemp("runs")
    cfg1 = StreamConfig(input=InputConfig(limit=1500))
    cfg2 = StreamConfig(input=InputConfig(limit=1500))
    cfg1.output.max_shard_bytes = cfg2.output.max_shard_bytes = 2 << 20
    s1 = run_stream(cfg1, base / "w1", executor=1)
    s2 = run_stream(cfg2, base / "w2", executor=2)
    return base / "w1", base / "w2", s1, s2


def test_real_run_is_accounted_and_loadable(python_runs):
    run, _, stats, _ = python_runs
    assert_accounted(stats)
    assert stats["totals"]["records_read"] == 1500
    assert stats["totals"]["kept"] > 300
    assert stats["stages"]["filter"]["dropped"]  # real code trips real filters
    rows = read_output(run)
    assert len(rows) == stats["totals"]["kept"]
    assert set(rows[0]) == {"repo_name", "path", "license", "size", "content"}
    assert len(shard_bytes(run)) >= 2  # rolled over at 2 MB
    from datasets import load_dataset

    ds = load_dataset("json", data_files=sorted(str(p) for p in (run / "clean").glob("*.jsonl.zst")), split="train")
    assert len(ds) == len(rows) and ds[0]["path"] == rows[0]["path"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["stream"]["finished"] is True
    assert "zstandard" in manifest["stages"]["stream"]["versions"]


def test_one_and_two_workers_give_identical_bytes(python_runs):
    run1, run2, s1, s2 = python_runs
    assert shard_bytes(run1) == shard_bytes(run2)
    for key in ("stages", "totals", "histograms_kept", "examples", "licenses_kept"):
        assert s1[key] == s2[key]


def test_rerun_skips_and_killed_run_is_redone_identically(python_runs, tmp_path):
    run1, _, s1, _ = python_runs
    again = run_stream(StreamConfig(input=InputConfig(limit=1500), output=_small()), run1, executor=1)
    assert again.get("skipped") is True
    # simulate a kill: the manifest says started, a partial tmp file and a stale shard lie around
    cfg = StreamConfig(input=InputConfig(limit=1500), output=_small())
    victim = tmp_path / "victim"
    run_stream(cfg, victim)
    expected = shard_bytes(victim)
    manifest = json.loads((victim / "manifest.json").read_text())
    manifest["stages"]["stream"]["finished"] = False
    (victim / "manifest.json").write_text(json.dumps(manifest))
    (victim / "clean" / ".part-00003.jsonl.zst.tmp").write_bytes(b"partial")
    (victim / "clean" / "part-00099.jsonl.zst").write_bytes(b"stale")
    stats = run_stream(cfg, victim)
    assert not stats.get("skipped")
    assert shard_bytes(victim) == expected
    assert not list((victim / "clean").glob(".*.tmp"))


def _small():
    from preprocessing.stages.stream import OutputConfig

    return OutputConfig(max_shard_bytes=2 << 20)


def test_rerun_with_another_config_refuses_to_mix(python_runs):
    run1, *_ = python_runs
    cfg = StreamConfig(input=InputConfig(limit=1500))
    cfg.filters.quality.max_line_length = 500
    with pytest.raises(ConfigError, match="another config"):
        run_stream(cfg, run1)


def test_exact_duplicates_dropped_first_occurrence_kept(tmp_path):
    rows = stdlib_rows(10)
    dup = dict(rows[3], path="copy/of/file.py", repo_name="someone/fork")
    dup["content"] = rows[3]["content"].replace("\n", "\n\n")  # whitespace-only change
    write_jsonl(tmp_path / "d.jsonl", rows + [dup])
    cfg = StreamConfig(input=InputConfig(paths=[str(tmp_path / "d.jsonl")]))
    cfg.filters.quality.enabled = False
    cfg.filters.autogenerated.enabled = False
    stats = run_stream(cfg, tmp_path / "run")
    assert_accounted(stats)
    assert stats["stages"]["exact_dedup"]["dropped"] == {"exact_duplicate": 1}
    assert [r["path"] for r in read_output(tmp_path / "run")] == [r["path"] for r in rows]


def test_bad_input_is_counted_not_fatal(tmp_path):
    rows = stdlib_rows(5)
    lines = [b"{broken\n", b'{"repo_name": "r", "path": "p", "content": "\xff"}\n', b'{"path": "x.py"}\n',
             b'{"repo_name": "r", "path": "p", "content": "\\u0000"}\n']
    write_jsonl(tmp_path / "in.jsonl", rows, lines)
    big = "x = 1\n" * 2_000_000  # a 12 MB file
    write_jsonl(tmp_path / "in2.jsonl.zst", [{"repo_name": "r", "path": "big.py", "content": big}])
    (tmp_path / "empty.jsonl").write_bytes(b"")
    cfg = StreamConfig(input=InputConfig(paths=[str(tmp_path / "*.jsonl*")]))
    stats = run_stream(cfg, tmp_path / "run")
    assert_accounted(stats)
    assert stats["stages"]["read"]["rejected"] == {
        "binary": 1, "invalid_json": 1, "invalid_utf8": 1, "missing_field:content": 1, "too_large": 1}
    assert any("empty file" in w for w in stats["warnings"])
    assert stats["examples"]["rejected:invalid_json"][0]["where"].endswith("in.jsonl:6")


# --- near-dedup fused into stream (run_stream_and_dedup): one pass, same bytes as stream + dedup ---


def _dedup_files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / "dedup").glob("*.jsonl.zst"))}


def _same_dedup_stats(fused: dict, separate: dict) -> None:
    assert fused["pass1_in_stream"] and "pass1_in_stream" not in separate
    for key in ("stages", "totals", "near_dedup", "outputs", "config"):
        assert fused[key] == separate[key], key


def _fused_vs_separate(tmp_path: Path, cfg: StreamConfig, near_cfg, separate: Path | None = None) -> tuple[Path, dict]:
    """Run stream + dedup (into ``separate`` unless given) and the fused form with 1 and 2 workers."""
    from preprocessing.stages.dedup import run_dedup
    from preprocessing.runner.manifest import RunManifest
    from preprocessing.stages.stream import run_stream_and_dedup

    if separate is None:
        separate = tmp_path / "separate"
        run_stream(cfg, separate)
    sep_stats = run_dedup(near_cfg, separate, executor=1)
    assert not sep_stats.get("skipped")
    for workers in (1, 2):
        run = tmp_path / f"fused{workers}"
        out = run_stream_and_dedup(cfg, near_cfg, run, executor=workers)
        assert shard_bytes(run) == shard_bytes(separate)
        assert _dedup_files(run) == _dedup_files(separate)
        _same_dedup_stats(out["dedup"], sep_stats)
        assert RunManifest(run).entry("dedup")["finished"]
        assert not (run / "dedup" / ".work").exists()
        again = run_dedup(near_cfg, run, executor=1)  # the manifest says dedup is done: skipped
        assert again.get("skipped") and again["totals"] == sep_stats["totals"]
    return separate, sep_stats


def test_fused_near_dedup_on_the_embedded_default(python_runs, tmp_path):
    import shutil

    from preprocessing.dedup.minhash import NearDedupConfig

    separate = tmp_path / "separate"
    shutil.copytree(python_runs[0] / "clean", separate / "clean")
    cfg = StreamConfig(input=InputConfig(limit=1500))
    cfg.output.max_shard_bytes = 2 << 20
    _, stats = _fused_vs_separate(tmp_path, cfg, NearDedupConfig(shard_max_bytes=1 << 20), separate)
    assert stats["totals"]["records_read"] == python_runs[2]["totals"]["kept"]


def _near_dup_dump(tmp_path: Path) -> Path:
    rows = stdlib_rows(30)
    for i, r in enumerate(rows[:8]):
        copy = dict(r, path=f"src/{r['path']}", repo_name=f"someone/fork{i % 3}")
        copy["content"] = r["content"].replace("\n\n\n", "\n\n# forked copy\n\n", 1) + "\n# patched\n"
        rows.append(copy)
    rows.append(dict(rows[3], path="exact_copy.py"))  # exact duplicate: never reaches the index
    return write_jsonl(tmp_path / "dump.jsonl", rows, raw_lines=[b"{not json\n"])


def test_fused_near_dedup_on_near_duplicates(tmp_path):
    from preprocessing.dedup.minhash import NearDedupConfig

    cfg = StreamConfig(input=InputConfig(paths=[str(_near_dup_dump(tmp_path))], batch_records=7))
    _, stats = _fused_vs_separate(tmp_path, cfg, NearDedupConfig(verify="exact", keep="longest"))
    assert stats["near_dedup"]["removed"] >= 5
    assert stats["totals"]["dropped"]["near_duplicate"] == stats["near_dedup"]["removed"]


def test_stream_cli_near_dedup_is_one_pass(tmp_path):
    from click.testing import CliRunner

    from preprocessing.cli import main

    dump, run = _near_dup_dump(tmp_path), tmp_path / "run"
    res = CliRunner().invoke(main, ["stream", str(dump), "-o", str(run), "--near-dedup"])
    assert res.exit_code == 0, res.output
    assert "stream:" in res.output and "dedup:" in res.output
    stats = json.loads((run / "dedup" / "stats.json").read_text())
    assert stats["pass1_in_stream"] and stats["near_dedup"]["removed"] >= 5
    res = CliRunner().invoke(main, ["dedup", str(run)])
    assert res.exit_code == 0 and "already done: skipped" in res.output


def test_fused_near_dedup_counts_rows_dedup_rejects(tmp_path):
    """A row `stream` keeps but `dedup` rejects on reading it back (too_large for dedup's reader)."""
    from preprocessing.dedup.minhash import NearDedupConfig

    rows = stdlib_rows(12)
    big = rows[4]["content"]
    rows.append(dict(rows[4], path="big.py", content=big * ((10 << 20) // len(big) + 1)))
    cfg = StreamConfig(input=InputConfig(paths=[str(write_jsonl(tmp_path / "d.jsonl", rows))], max_file_bytes=32 << 20))
    cfg.filters.quality.max_size = None
    _, stats = _fused_vs_separate(tmp_path, cfg, NearDedupConfig())
    assert stats["totals"]["rejected"] == {"too_large": 1}


def test_fused_near_dedup_with_nothing_kept_says_so(tmp_path):
    from preprocessing.dedup.minhash import NearDedupConfig
    from preprocessing.stages.stream import run_stream_and_dedup

    dump = write_jsonl(tmp_path / "d.jsonl", [{"repo_name": "r", "path": "a.py", "content": "x = 1\n"}])
    with pytest.raises(ValueError, match="kept no records, so there is nothing to near-dedup"):
        run_stream_and_dedup(StreamConfig(input=InputConfig(paths=[str(dump)])), NearDedupConfig(), tmp_path / "run")


def _filters_then_dedup(cfg: StreamConfig) -> list[bytes]:
    """The rows `stream` must keep, the plain way: every filter on every record, then exact dedup."""
    import orjson

    from preprocessing.dedup.exact import content_hash
    from preprocessing.filters import apply_filters, build_filters
    from preprocessing.filters.quality import file_metrics
    from preprocessing.readers import open_reader
    from preprocessing.record import CodeFile

    reader, filters, seen, kept = open_reader(cfg.input), build_filters(cfg.filters), set(), []
    for unit in reader.units():
        for rec in reader.decode(unit):
            if not isinstance(rec, CodeFile):
                continue
            rec.metrics = file_metrics(rec.content)
            if apply_filters(filters, rec) is None:
                h = content_hash(rec.content, cfg.exact_dedup.normalize_whitespace)
                if h not in seen:
                    seen.add(h)
                    kept.append(orjson.dumps(rec.to_json_dict()) + b"\n")
    return kept


def test_known_duplicates_skip_the_filters_and_keep_the_same_rows(tmp_path):
    """A repeat of a record the filters passed is counted exact_duplicate without running them,
    even where a filter would drop it (license, path rules); the kept rows are those of filters
    then dedup. Same content under a lock-file path is redacted differently: not a known duplicate."""
    rows = stdlib_rows(6)
    secret = dict(rows[0], path="Lib/keys.py", content='API_KEY = "q8Zr3xT0vLp9WmN2bYc7KdF4hJs6GtUa"\n' * 3)
    dump = []
    for r in [*rows, secret]:
        dump.append(dict(r, repo_name="closed/src", license="proprietary"))  # dropped by the license filter
        dump.append(r)  # kept: the first copy that passes
        dump.append(dict(r, repo_name="a/fork"))  # exact duplicate
        dump.append(dict(r, repo_name="closed/fork", license="proprietary"))  # was license-dropped: now a duplicate
    dump.append(dict(secret, repo_name="js/app", path="package-lock.json"))  # not redacted there: a new row
    dump.append(dict(secret, repo_name="js/app2", path="yarn.lock"))  # a duplicate of that one
    write_jsonl(tmp_path / "d.jsonl", dump)
    cfg = StreamConfig(input=InputConfig(paths=[str(tmp_path / "d.jsonl")]))
    cfg.filters.quality.enabled = False
    cfg.filters.autogenerated.enabled = False
    s1 = run_stream(cfg, tmp_path / "w1", executor=1)
    s2 = run_stream(cfg, tmp_path / "w2", executor=2)
    assert_accounted(s1)
    out = []
    for p in sorted((tmp_path / "w1" / "clean").glob("part-*.jsonl.zst")):
        with zstandard.ZstdDecompressor().stream_reader(open(p, "rb"), read_across_frames=True) as r:
            out += r.read().splitlines(keepends=True)
    assert out == _filters_then_dedup(cfg)
    assert len(out) == 8 and b"<SECRET:" in out[6] and b"<SECRET:" not in out[7]
    assert shard_bytes(tmp_path / "w1") == shard_bytes(tmp_path / "w2")
    assert s1["stages"] == s2["stages"]
    stages = s1["stages"]
    assert stages["filter"]["dropped"] == {"license:unknown": 7}  # only the copies before the kept one (was 14)
    assert stages["exact_dedup"]["dropped"] == {"exact_duplicate": 7 * 2 + 1}  # was 7 + 1
    assert stages["read"]["records_in"] == len(dump)


def test_repeats_in_a_chunk_are_decided_with_it(tmp_path):
    """Without a rewriting step a chunk's repeats of a key are decided by its batch with the rest:
    a copy the keyed draws drop before any copy of its content passed keeps its drop; the copies
    after the first that passes are known duplicates (exact_duplicate), whatever their draws. The
    rows and every count equal the plain way, record by record, with 1 and 2 workers."""
    from preprocessing.filters import apply_filters, build_filters
    from preprocessing.filters.quality import file_metrics
    from preprocessing.readers import open_reader
    from preprocessing.record import CodeFile

    rows = stdlib_rows(8)
    drawn = [dict(rows[0], content="def test_a():\n    config = 1\n    test = 2\n" * 3),  # config/test: p = 0.7
             dict(rows[0], content="x = 1\ny = 2\nz = 3\nw = 4\nv = 5\nu = 6\n")]  # no keyword: p = 0.7
    dump = []
    for k in range(60):
        dump += [dict(drawn[k % 2], path=f"tests/t{k}.py"), rows[k % 8]]
    write_jsonl(tmp_path / "d.jsonl", dump)
    cfg = StreamConfig(input=InputConfig(paths=[str(tmp_path / "d.jsonl")]))
    cfg.filters.secrets.mode = "off"  # (no rewriting step)
    stats = {w: run_stream(cfg, tmp_path / f"w{w}", executor=w) for w in (1, 2)}
    assert read_output(tmp_path / "w1") == [json.loads(line) for line in _filters_then_dedup(cfg)]
    reader, filters = open_reader(cfg.input), build_filters(cfg.filters)
    want: Counter = Counter()
    passed: set = set()
    for unit in reader.units():
        for rec in reader.decode(unit):
            if isinstance(rec, CodeFile):
                if rec.content in passed:
                    want["exact_duplicate"] += 1
                    continue
                rec.metrics = file_metrics(rec.content)
                dropped = apply_filters(filters, rec)
                if dropped:
                    want[dropped[0]] += 1
                else:
                    passed.add(rec.content)
    assert want["quality:config_or_test"] and want["quality:no_keywords"] and want["exact_duplicate"] > 60
    for w in (1, 2):
        assert stats[w]["totals"]["dropped"] == dict(sorted(want.items())), w
        assert_accounted(stats[w])
    assert stats[1]["examples"] == stats[2]["examples"]


def rounds_dump(tmp_path: Path) -> StreamConfig:
    """A file (a unit) each: originals, their repeats in later rounds (known, or not yet), a
    redacted file (its key is not shared), fillers to make the rounds (0-15 | 16-31 | 32-63 | 64-)."""
    rows = stdlib_rows(6)
    r, x = [rows[i] for i in (0, 1, 3, 4)], rows[2]  # x: the secrets filter redacts it (an e-mail)

    def p(row):  # a copy the license filter drops when it runs
        return dict(row, repo_name=f"closed/{row['path']}", license="proprietary")

    def f(row):  # a fork: passes the filters, an exact duplicate
        return dict(row, repo_name="a/fork")

    units = {0: [r[0], r[1], r[2], x],  # x is kept redacted, so its key is not shared
             16: [r[3], p(r[0]), p(r[1]), p(r[3])],  # round 16-31 sees no other unit's keys; p(r[3]): in-unit
             32: [p(r[0]), p(x), p(r[3]), f(r[1])],  # round 32-63 sees units 0-15: r[3] is not among them
             33: [p(r[2]), f(r[3])],
             64: [p(r[3]), p(r[0]), f(x), p(x)]}  # round 64- sees units 0-31; p(x) repeats f(x) of its unit
    paths = []
    for u in range(65):
        unit = units.get(u) or [dict(r[0], path=f"filler{u}.py", content=f"value_{u} = {u}\n")]
        paths.append(str(write_jsonl(tmp_path / f"d{u:02d}.jsonl", unit)))
    cfg = StreamConfig(input=InputConfig(paths=paths))
    cfg.filters.quality.enabled = False
    cfg.filters.autogenerated.enabled = False
    return cfg


def test_known_duplicates_across_units_by_round(tmp_path):
    """A repeat of a record passed unchanged in a unit of two rounds before (or earlier in its
    unit) skips the filters and is counted exact_duplicate, other repeats run them; the kept rows
    are those of filters then dedup, and every executor gives the same bytes and stats."""
    from preprocessing.executors import ExecutorConfig

    cfg = rounds_dump(tmp_path)
    runs = {"1": 1, "2": 2, "2p3": ExecutorConfig(workers=2, partitions=3)}
    stats = {name: run_stream(cfg, tmp_path / name, executor=ex) for name, ex in runs.items()}
    s = stats["1"]
    assert_accounted(s)
    assert s["stages"]["filter"]["dropped"] == {"license:unknown": 4}  # was 8 with the per-unit check alone
    assert s["stages"]["exact_dedup"]["dropped"] == {"exact_duplicate": 9}
    assert s["totals"]["kept"] == 65 and s["exact_dedup_memory"]["known_keys_shared"] == 18 + 16
    assert s["edits"]
    assert [json.loads(line) for line in _filters_then_dedup(cfg)] == read_output(tmp_path / "1")
    for name in runs:
        assert shard_bytes(tmp_path / name) == shard_bytes(tmp_path / "1")
        assert stats[name]["stages"] == s["stages"] and stats[name]["exact_dedup_memory"] == s["exact_dedup_memory"]
        assert stats[name]["examples"] == s["examples"]


def test_fused_near_dedup_with_known_duplicates(tmp_path):
    """Known duplicates (skipped filters) carry no row: the fused sketches stay aligned with the rows."""
    from preprocessing.dedup.minhash import NearDedupConfig

    rows = stdlib_rows(8)
    dump = [*rows, *[dict(r, repo_name=f"fork{i}/x") for i, r in enumerate(rows * 3)]]
    write_jsonl(tmp_path / "d.jsonl", dump)
    cfg = StreamConfig(input=InputConfig(paths=[str(tmp_path / "d.jsonl")]))
    separate, stats = _fused_vs_separate(tmp_path, cfg, NearDedupConfig(verify="exact"))
    s = json.loads((separate / "clean" / "stats.json").read_text())
    assert s["stages"]["exact_dedup"]["dropped"]["exact_duplicate"] == s["stages"]["exact_dedup"]["records_in"] - s["totals"]["kept"]
    assert s["stages"]["exact_dedup"]["dropped"]["exact_duplicate"] >= 3 * s["totals"]["kept"]


def test_unit_histograms_and_examples_equal_the_per_record_ones():
    """What _process_unit now does per unit (numpy histograms, examples built only when they can
    be kept) gives the per-record answers: the same bins (values on bin edges, the infinite last
    edge, alnum fraction 1.0 included) and the same examples."""
    from preprocessing.filters.quality import file_metrics
    from preprocessing.hashing import record_key
    from preprocessing.profile import HISTOGRAM_EDGES, CorpusProfile, Histograms

    metrics = [file_metrics(row["content"]) for row in stdlib_rows(200)]
    for name, edges in HISTOGRAM_EDGES.items():  # exactly on every finite edge, and past the last
        for e in edges[:-1]:
            metrics.append({"size": 0, "max_line_length": 0, "mean_line_length": 0.0, "alnum_fraction": 0.0, name: e})
        metrics.append({"size": 1 << 40, "max_line_length": 10**9, "mean_line_length": 1e12, "alnum_fraction": 1.0})
    one, batch = Histograms(), Histograms()
    for m in metrics:
        one.add(m)
    batch.add_batch(metrics)
    batch.add_batch(metrics[:5])  # a short batch goes record by record
    for m in metrics[:5]:
        one.add(m)
    assert batch.counts == one.counts and sum(one.counts["size"]) == len(metrics) + 5
    weighted, repeated = Histograms(), Histograms()  # repeats (known duplicates counted per key) = records
    for chunk in (metrics, metrics[:5]):
        ns = [1 + i % 4 for i in range(len(chunk))]
        weighted.add_batch(chunk, ns)
        repeated.add_batch([m for m, n in zip(chunk, ns) for _ in range(n)])
    assert weighted.counts == repeated.counts

    eager, lazy = CorpusProfile(), CorpusProfile()
    for i, row in enumerate(stdlib_rows(200)):
        path = row["path"]
        reason, key = f"r{i % 3}", record_key(row["repo_name"], path)
        eager.add_example(reason, key, {"path": path})
        rank = lazy.example_rank(reason, key)
        if rank is not None:
            lazy.offer_example(reason, rank, {"path": path})
    assert lazy.examples == eager.examples


def test_owned_rows_become_the_records_extra_unchanged():
    """row_to_record(owned=True) (the JSONL reader: the row was just decoded) takes the row apart
    instead of copying it: the same record, the same output line, for every column mapping."""
    import orjson

    from preprocessing.readers.base import ColumnsConfig
    from preprocessing.readers.jsonl import row_to_record

    rows = [{"size": "3", "repo_name": "a/b", "path": "x.py", "content": "x = 1\n", "license": ["MIT", "BSD-3-Clause"],
             "stars": 5},
            {"content": "y = 2\n", "repo": 7, "file": "", "license": "", "meta": {"k": [1, 2]}},
            {"content": b"z = 3\n", "repo_name": "r", "path": "p", "license": None},
            {"content": None, "repo_name": "r", "path": "p"},
            {"content": "q", "repo_name": None, "path": "p"}]
    for columns in (ColumnsConfig(), ColumnsConfig(repo_name="repo", path="file"), ColumnsConfig(license=None)):
        for row in rows:
            copied = row_to_record(dict(row), columns, "s", 1, 10, 1 << 20)
            owned = row_to_record(dict(row), columns, "s", 1, 10, 1 << 20, owned=True)
            assert owned == copied
            if hasattr(owned, "to_json_dict"):
                assert orjson.dumps(owned.to_json_dict()) == orjson.dumps(copied.to_json_dict())


def test_duplicate_heavy_foreign_dump_with_escapes_and_bad_lines(tmp_path, monkeypatch):
    """A duplicate-heavy `json.dumps` dump in one zstd frame (as the zstd CLI writes it): files
    with non-ASCII text (escaped as \\uXXXX, astral characters as surrogate pairs), quotes and
    backslashes, repeated under other names, with truncated and invalid lines and blank lines
    among the repeats, in many small units (the known duplicates past a unit's first few are
    counted in bulk). The kept rows are those of filters then dedup; the bad lines are rejected
    for their reason wherever they fall; 1 and 2 workers, and the frame read whole or in pieces,
    give the same bytes and stats."""
    from preprocessing.readers import jsonl as jsonl_mod

    rows = stdlib_rows(10)
    rows.append(dict(rows[0], path="Lib/unicode.py",
                     content='s = "caf\u00e9 \u2014 \U0001F600"  # non-ASCII, an astral character\nt = "\\\\" + \'"\'\n' * 8))
    rows.append(dict(rows[1], path="Lib/quotes.py", content='x = "a \\"quoted\\" \\\\ word"\ny = 1\nz = 2\n' * 6))
    lines: list[bytes] = []
    for i in range(900):
        r = rows[i % len(rows)]
        line = json.dumps(r if i < len(rows) else dict(r, repo_name=f"fork{i}/x")).encode()
        if i % 97 == 50:
            lines.append(line[: len(line) // 2])  # a cut copy: invalid JSON
        elif i % 131 == 70:
            lines.append(b"[1, 2]")  # not an object
        elif i % 151 == 80:
            lines.append(b"   ")  # blank: no record
        lines.append(line)
    path = tmp_path / "dump.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor(level=3).compress(b"\n".join(lines) + b"\n"))
    cfg = StreamConfig(input=InputConfig(paths=[str(path)], batch_records=16))
    stats = {"1": run_stream(cfg, tmp_path / "1", executor=1), "2": run_stream(cfg, tmp_path / "2", executor=2)}
    monkeypatch.setattr(jsonl_mod, "WHOLE_PIECED_MIN", 0)
    monkeypatch.setattr(jsonl_mod, "_STREAM_OUT", 20_000)
    stats["pieced"] = run_stream(cfg, tmp_path / "pieced", executor=1)
    s = stats["1"]
    assert_accounted(s)
    kept = [json.loads(line) for line in _filters_then_dedup(cfg)]
    assert read_output(tmp_path / "1") == kept and len(kept) >= 8
    assert any("\U0001F600" in r["content"] for r in kept)
    assert s["totals"]["rejected"] == {"invalid_json": sum(1 for i in range(900) if i % 97 == 50 or i % 131 == 70)}
    assert s["totals"]["records_read"] == 900 + s["totals"]["rejected"]["invalid_json"]
    assert s["stages"]["exact_dedup"]["dropped"]["exact_duplicate"] > 600
    for name in ("2", "pieced"):
        assert shard_bytes(tmp_path / name) == shard_bytes(tmp_path / "1")
        for key in ("stages", "totals", "examples", "histograms_before_filters", "histograms_kept", "exact_dedup_memory"):
            assert stats[name][key] == s[key], (name, key)
