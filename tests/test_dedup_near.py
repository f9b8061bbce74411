"""Tests of preprocessing/dedup/near.py and dedup/cli.py: the two-pass stage, outputs, determinism, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
import yaml
import zstandard
from click.testing import CliRunner

from common.config import ConfigError
from preprocessing.cli.dedup import dedup_command
from preprocessing.dedup.minhash import NearDedupConfig
from preprocessing.readers import InputConfig
from preprocessing.stages.dedup import run_dedup, run_near_dedup
from tests.conftest import stdlib_rows, write_jsonl


def read_rows(path: Path) -> list[dict]:
    with open(path, "rb") as f:
        data = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def dump_rows() -> list[dict]:
    """40 real stdlib files, 10 near-duplicate copies of some, short files and odd ones."""
    rows = stdlib_rows(40)
    for i, r in enumerate(rows[:10]):
        copy = dict(r, path=f"vendored/{r['path']}", repo_name=f"someone/vendor{i % 3}")
        copy["content"] = r["content"].replace("\n\n\n", "\n\n# vendored copy\n\n", 1) + "\n# patched\n"
        rows.append(copy)
    rows.append(dict(rows[0], path="short.py", content="x = 1\n"))
    rows.append(dict(rows[0], path="short2.py", content="x = 1\n"))  # identical but too short: kept
    rows.append(dict(rows[0], path="surrogate.py", content="s = '\udcff'\n" + rows[5]["content"]))  # rejected by the reader
    return rows


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    d = tmp_path / "dump"
    d.mkdir()
    rows = dump_rows()
    write_jsonl(d / "a.jsonl.zst", rows[:30])
    write_jsonl(d / "b.jsonl", rows[30:], raw_lines=[
        b"{not json\n",
        b'{"repo_name": "r", "path": "e.py", "content": ""}\n',
        b'{"repo_name": "r", "path": "latin1.py", "content": "caf\xe9 = 1"}\n',  # not UTF-8
    ])
    return d


def outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.jsonl.zst"))}


def decompressed_outputs(out: Path) -> dict[str, bytes]:
    d = zstandard.ZstdDecompressor()
    return {name: d.stream_reader(data, read_across_frames=True).read() for name, data in outputs(out).items()}


def test_stage_removes_near_duplicates_and_accounts_for_every_record(dump, tmp_path):
    stats = run_near_dedup(NearDedupConfig(), InputConfig(paths=[str(dump)]), tmp_path / "out")
    st = stats["stages"]["near_dedup"]
    assert st["records_in"] == 56
    assert st["records_in"] == st["kept"] + sum(st["dropped"].values()) + sum(st["rejected"].values())
    assert st["dropped"] == {"near_duplicate": 10}  # the 10 vendored copies
    assert st["rejected"] == {"empty_content": 1, "invalid_json": 2, "invalid_utf8": 1}
    nd = stats["near_dedup"]
    assert nd["too_short_to_cluster"] == 2 and nd["removed"] == 10 and nd["files_in_clusters"] == 20

    kept = read_rows(tmp_path / "out" / "part-00000.jsonl.zst")
    assert len(kept) == st["kept"] == 42
    originals = {(r["repo_name"], r["path"]): r for r in dump_rows()}
    for row in kept:  # records are written with their input fields unchanged
        assert row == originals[(row["repo_name"], row["path"])]
    assert not any(r["path"].startswith("vendored/") for r in kept)
    assert sum(r["path"].startswith("short") for r in kept) == 2

    clusters = read_rows(tmp_path / "out" / "clusters.jsonl.zst")
    assert len(clusters) == nd["clusters"] == 10
    assert sum(c["size"] for c in clusters) == 20
    for c in clusters:
        assert c["kept"] == c["cluster"] == min(m["ordinal"] for m in c["members"])
        assert all(0.85 <= m["similarity"] <= 1.0 for m in c["members"])
        assert not c["members"][0]["path"].startswith("vendored/")
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["totals"]["kept"] == 42
    assert not (tmp_path / "out" / ".work").exists()


def test_outputs_identical_for_any_workers_and_reruns(dump, tmp_path):
    cfg = NearDedupConfig()
    runs = []
    for name, workers, batch in [("w1", 1, 256), ("w2", 2, 256), ("w1b", 1, 256), ("w2s", 2, 7)]:
        run_near_dedup(cfg, InputConfig(paths=[str(dump)], batch_records=batch), tmp_path / name, executor=workers)
        runs.append(outputs(tmp_path / name))
    assert runs[0] == runs[1] == runs[2]
    assert set(runs[0]) == {"part-00000.jsonl.zst", "clusters.jsonl.zst"}
    # Other work units (batch_records) give the same rows; the zstd frames may be cut elsewhere.
    for name in runs[0]:
        assert read_rows(tmp_path / "w2s" / name) == read_rows(tmp_path / "w1" / name)


def test_spill_to_disk_gives_identical_outputs(dump, tmp_path):
    run_near_dedup(NearDedupConfig(), InputConfig(paths=[str(dump)], batch_records=16), tmp_path / "mem")
    st = run_near_dedup(NearDedupConfig(memory_budget_mb=0.004, spill_partitions=2),
                        InputConfig(paths=[str(dump)], batch_records=16), tmp_path / "disk")
    assert st["near_dedup"]["spilled_to_disk"]
    assert outputs(tmp_path / "mem") == outputs(tmp_path / "disk")


def test_exact_verification_and_keep_longest(dump, tmp_path):
    st = run_near_dedup(NearDedupConfig(verify="exact", keep="longest"), InputConfig(paths=[str(dump)]), tmp_path / "o")
    assert st["near_dedup"]["removed"] == 10
    kept_paths = {r["path"] for r in read_rows(tmp_path / "o" / "part-00000.jsonl.zst")}
    # The vendored copies are longer (two added comment lines): they are the ones kept.
    assert sum(p.startswith("vendored/") for p in kept_paths) == 10


def test_run_dir_stage_uses_manifest(tmp_path, dump):
    run = tmp_path / "run"
    (run / "clean").mkdir(parents=True)
    write_jsonl(run / "clean" / "part-00000.jsonl.zst", dump_rows())
    first = run_dedup(NearDedupConfig(), run)
    assert (run / "dedup" / "part-00000.jsonl.zst").exists() and not first.get("skipped")
    assert run_dedup(NearDedupConfig(), run)["skipped"]
    with pytest.raises(ConfigError, match="another config"):
        run_dedup(NearDedupConfig(threshold=0.7), run)
    with pytest.raises(ValueError, match="run `cp-preprocess stream` first"):
        run_dedup(NearDedupConfig(), tmp_path / "empty_run")


def test_cli_dedup_with_preset_and_flags(tmp_path, dump):
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({"near_dedup": {"threshold": 0.8, "ngram": 1}, "executor": {"workers": 1}}))
    runner = CliRunner()
    res = runner.invoke(dedup_command, ["--config", str(preset), "--num-perm", "128", "--dry-run"])
    assert res.exit_code == 0, res.output
    cfg = json.loads(res.output)
    assert cfg["threshold"] == 0.8 and cfg["num_perm"] == 128 and cfg["min_tokens"] == 10

    res = runner.invoke(dedup_command, ["-i", str(dump), "-o", str(tmp_path / "o"), "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert "removed 10 near-duplicates in 10 clusters" in res.output
    assert (tmp_path / "o" / "clusters.jsonl.zst").exists()

    res = runner.invoke(dedup_command, ["-i", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "x")])
    assert res.exit_code == 2 and "error: input not found" in res.output
    res = runner.invoke(dedup_command, ["--threshold", "2", "--dry-run"])
    assert res.exit_code == 2 and "threshold must be in (0, 1]" in res.output


@pytest.mark.parametrize("preset", ["codeparrot.yaml", "bigcode.yaml"])
def test_presets_load(preset):
    from common.config import load_config

    path = Path(__file__).resolve().parent.parent / "configs" / "preprocess" / preset
    if not path.exists():
        pytest.skip(f"{path} is not on this branch")
    cfg = load_config(NearDedupConfig, path, section="near_dedup")
    assert (cfg.threshold, cfg.ngram) == ((0.85, 1) if preset == "codeparrot.yaml" else (0.7, 5))


def test_keep_score_rules():
    from preprocessing.dedup.near import keep_score
    from preprocessing.record import CodeFile

    rec = CodeFile(content="abc", repo_name="r", path="p", license="Apache-2.0", extra={"stars": "12", "max_stars_count": None})
    assert keep_score(rec, 3, NearDedupConfig(keep="first")) == 0
    assert keep_score(rec, 4, NearDedupConfig(keep="longest")) == 4
    assert keep_score(rec, 0, NearDedupConfig(keep="license")) == 4  # second of five preferred
    assert keep_score(rec, 0, NearDedupConfig(keep="license", preferred_licenses=["gpl-3.0"])) == 0
    assert keep_score(rec, 0, NearDedupConfig(keep="stars")) == 12
    assert keep_score(rec, 0, NearDedupConfig(keep="stars", stars_field="max_stars_count")) == 0


def test_cli_run_directory(tmp_path):
    run = tmp_path / "run"
    (run / "clean").mkdir(parents=True)
    write_jsonl(run / "clean" / "part-00000.jsonl.zst", dump_rows())
    res = CliRunner().invoke(dedup_command, [str(run), "--keep", "longest"])
    assert res.exit_code == 0, res.output
    stats = json.loads((run / "dedup" / "stats.json").read_text())
    assert stats["config"]["keep"] == "longest" and stats["near_dedup"]["removed"] == 10
    assert json.loads((run / "manifest.json").read_text())["stages"]["dedup"]["finished"]
    res = CliRunner().invoke(dedup_command, [str(run), "--threshold", "0.7"])
    assert res.exit_code == 2 and "another config" in res.output


def test_file_over_reader_limit_is_rejected_by_default_and_deduped_when_allowed(tmp_path):
    # 12 MB here (the 50 MB case is tested on the signature kernel in test_dedup_minhash.py).
    line = "value_{i} = compute(alpha_{j}, beta) + {i}\n"
    big = "".join(line.format(i=i, j=i % 97) for i in range(300_000))
    assert len(big) > 10 << 20
    rows = [{"repo_name": "r", "path": "big.py", "content": big},
            {"repo_name": "r", "path": "big_copy.py", "content": big + "extra_tail = 1\n"}]
    write_jsonl(tmp_path / "big.jsonl", rows)
    st = run_near_dedup(NearDedupConfig(), InputConfig(paths=[str(tmp_path / "big.jsonl")]), tmp_path / "a")
    assert st["totals"]["rejected"] == {"too_large": 2}  # the reader's max_file_bytes (10 MB) applies
    st = run_near_dedup(NearDedupConfig(), InputConfig(paths=[str(tmp_path / "big.jsonl")], max_file_bytes=64 << 20),
                        tmp_path / "b")
    assert st["totals"]["kept"] == 1 and st["near_dedup"]["removed"] == 1


def canonical_line(row: dict) -> bytes:
    """A row as `stream` writes it (RUN/clean): pass 2 copies such lines without parsing them."""
    first = {k: row.get(k) for k in ("repo_name", "path", "license")}
    rest = {k: v for k, v in row.items() if k not in (*first, "content")}
    return orjson.dumps({**first, **rest, "content": row["content"]}) + b"\n"


@pytest.fixture
def mixed_dump(tmp_path: Path) -> Path:
    """Verbatim (canonical) lines and lines to rewrite (json.dumps spacing and escapes, other key
    order), near-duplicates in both forms, blank and rejected lines, in one .zst and one plain file."""
    rows = dump_rows()[:-1]
    lines = [canonical_line(r) if i % 3 else json.dumps(r).encode() + b"\n" for i, r in enumerate(rows)]
    lines.insert(7, b"\n")
    lines.insert(12, b'{"repo_name": "r", "path": "e.py", "content": "  \\n"}\n')
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b"".join(lines[:25])))
    (d / "b.jsonl").write_bytes(b"".join(lines[25:]) + b"{cut")
    return d


def test_pass2_writes_exactly_the_reserialised_rows_of_kept_records(mixed_dump, tmp_path):
    from preprocessing.readers import JsonlReader
    from preprocessing.record import CodeFile

    records = [r for r in JsonlReader(str(mixed_dump)).records() if isinstance(r, CodeFile)]
    for workers, batch in [(1, 256), (2, 256), (2, 5)]:
        out = tmp_path / f"out{workers}-{batch}"
        st = run_near_dedup(NearDedupConfig(), InputConfig(paths=[str(mixed_dump)], batch_records=batch), out,
                            executor=workers)
        removed = {m["ordinal"] for c in read_rows(out / "clusters.jsonl.zst") for m in c["members"]
                   if m["ordinal"] != c["kept"]}
        assert len(removed) == st["near_dedup"]["removed"] == 10
        expected = b"".join(orjson.dumps(r.to_json_dict()) + b"\n" for i, r in enumerate(records) if i not in removed)
        with open(out / "part-00000.jsonl.zst", "rb") as f:
            assert zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read() == expected
        assert st["totals"]["rejected"] == {"empty_content": 1, "invalid_json": 1}
    # the same bytes for any workers; the frames of units that fill one are cut by unit (batch_records)
    assert outputs(tmp_path / "out1-256") == outputs(tmp_path / "out2-256")
    assert decompressed_outputs(tmp_path / "out1-256") == decompressed_outputs(tmp_path / "out2-5")
    # All verbatim (RUN/clean): pass 2 runs in the main process whatever the workers, same outputs.
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "part-00000.jsonl").write_bytes(b"".join(canonical_line(r) for r in dump_rows()[:-1]))
    for workers in (1, 2):
        run_near_dedup(NearDedupConfig(), InputConfig(paths=[str(clean)], batch_records=9), tmp_path / f"c{workers}",
                       executor=workers)
    assert outputs(tmp_path / "c1") == outputs(tmp_path / "c2")
    with open(tmp_path / "c1" / "part-00000.jsonl.zst", "rb") as f:
        assert len(zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read().splitlines()) == len(dump_rows()) - 1 - 10


def test_bytes_are_utf8_content_bytes(mixed_dump, tmp_path):
    from preprocessing.readers import JsonlReader
    from preprocessing.record import CodeFile, Rejected

    items = list(JsonlReader(str(mixed_dump)).records())
    st = run_near_dedup(NearDedupConfig(), InputConfig(paths=[str(mixed_dump)]), tmp_path / "out")
    size = [len(r.content.encode("utf-8", "surrogatepass")) for r in items if isinstance(r, CodeFile)]
    rejected = sum(r.nbytes for r in items if isinstance(r, Rejected))
    kept = read_rows(tmp_path / "out" / "part-00000.jsonl.zst")
    assert st["totals"]["bytes_read"] == sum(size) + rejected
    assert st["totals"]["bytes_kept"] == sum(len(r["content"].encode()) for r in kept) < sum(size)


def test_input_changed_between_the_passes_is_an_error(mixed_dump, tmp_path, monkeypatch):
    """Pass 2 reads pass 1's line units back from the work dir (linespool): an edit of the input
    between the passes changes nothing then. Where pass 2 must read the input again (the spool
    has no room), the edit is found and named."""
    from preprocessing.dedup import linespool
    from preprocessing.dedup.index import NearDedupIndex

    cluster = NearDedupIndex.cluster
    plain = mixed_dump / "b.jsonl"
    original = plain.read_bytes()
    run_near_dedup(NearDedupConfig(), InputConfig(paths=[str(mixed_dump)]), tmp_path / "ref")

    def edit_then_cluster(self):  # a same-length edit of one verbatim line between the passes
        plain.write_bytes(original.replace(b"import", b"IMPORT", 1))
        return cluster(self)

    monkeypatch.setattr(NearDedupIndex, "cluster", edit_then_cluster)
    st = run_near_dedup(NearDedupConfig(), InputConfig(paths=[str(mixed_dump)]), tmp_path / "replayed")
    assert st["input_files"][1]["file"].endswith("b.jsonl") and st["totals"]["records_read"] > 0
    for name in ("part-00000.jsonl.zst", "clusters.jsonl.zst"):
        assert (tmp_path / "replayed" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
    plain.write_bytes(original)
    monkeypatch.setattr(linespool, "BUDGET", 0)
    with pytest.raises(ValueError, match=r"input changed between the two passes of near-dedup \(lines of work unit 1 differ"):
        run_near_dedup(NearDedupConfig(), InputConfig(paths=[str(mixed_dump)]), tmp_path / "out")


def _escape_all(row: dict) -> bytes:
    """A valid JSON line of ``row`` whose content escapes every letter as \\u00XX (no writer does
    this; a reader must still see the same tokens)."""
    body = "".join(f"\\u{ord(c):04x}" if c.isascii() and c.isalpha() else json.dumps(c)[1:-1] for c in row["content"])
    head = orjson.dumps({k: v for k, v in row.items() if k != "content"})[:-1]
    return head + b',"content":"' + body.encode() + b'"}\n'


@pytest.mark.parametrize("preset", [{}, {"ngram": 5, "lowercase": True, "threshold": 0.7}])  # CodeParrot, BigCode
def test_sketches_from_escaped_bodies_equal_those_of_decoded_contents(tmp_path, preset):
    """Pass 1 sketches a verbatim line from its content's JSON string body as it lies in the line;
    lines with other escapes (\\u00e9 for é, \\/ for /, letters as \\u00XX), a raw é, control
    characters or another layout are decoded first. Every form must give the signatures of its
    text: the outputs equal those of the numpy backend, which always decodes."""
    rows = stdlib_rows(12)
    rows[1]["content"] = "caf\u00e9 = '\\x01\x01\x1f\t\b\f'  # a/b \u2028\n" + rows[1]["content"]
    lines = [canonical_line(r) for r in rows]
    for i, r in enumerate(rows[:6]):  # near-duplicate copies written in other forms
        copy = dict(r, path=f"copy/{r['path']}", repo_name=f"someone/copy{i}")
        copy["content"] = r["content"] + "\n# copied\n"
        row = {k: copy[k] for k in ("repo_name", "path", "license", "content")}
        if i % 3 == 0:
            lines.append(json.dumps(row).encode() + b"\n")  # \uXXXX for non-ASCII, spaces
        elif i % 3 == 1:
            lines.append(_escape_all(row))
        else:
            lines.append(canonical_line(row).replace(b"/", b"\\/"))  # valid JSON, not orjson's
    head = b'{"repo_name":"r","path":"p.py","license":null'
    odd = [  # RUN/clean's layout, but a body or head that a reader rejects or pass 2 rewrites
        head + b',"content":"caf\xe9 = 1"}\n',  # not UTF-8
        head + b',"content":"x = \\u0000 + y"}\n',  # NUL: binary
        head + b',"content":"  \\n\\t "}\n',  # only whitespace
        head + b',"content":""}\n',
        head + b',"content":"+++ --- ***"}\n',  # no token: kept, too short to cluster
        head + b',"content":"' + b"big " * 600_000 + b'"}\n',  # over max_file_bytes below
        b'{"path":"p.py","license":null,"content":"no = repo_name"}\n',
        b'{"repo_name":"r","path":"p.py","license":"","content":"empty = license"}\n',  # head rewritten
        b'{"repo_name":"r","path":"p.py","meta":{"a":1,"content":"nested"},"content":"nested = key"}\n',
        b'{"repo_name":"r","path":"p.py","content":"first","content":"second = value"}\n',
        head + b',"content":"raw\x01control"}\n',
        head + b',"content":"cut \\"}\n',
        head + b',"content":"upper = \\u001F + hex"}\n',  # valid JSON, not orjson's escape (nor, lowercased)
    ]
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.jsonl").write_bytes(b"".join(lines[:9] + odd + lines[9:]))
    outs, stats = {}, {}
    for backend in ("native", "numpy"):
        inputs = InputConfig(paths=[str(d)], max_file_bytes=2_000_000)
        st = run_near_dedup(NearDedupConfig(backend=backend, **preset), inputs, tmp_path / backend)
        outs[backend] = outputs(tmp_path / backend)
        stats[backend] = (st["totals"], st["near_dedup"])
        assert st["near_dedup"]["removed"] == 6, backend
        assert st["totals"]["rejected"] == {"binary": 1, "empty_content": 2, "invalid_json": 2, "invalid_utf8": 1,
                                            "missing_field:repo_name": 1, "too_large": 1}
    assert outs["native"] == outs["numpy"]
    assert stats["native"] == stats["numpy"]


def test_remove_tree_deletes_nested_work_files(tmp_path):
    from common.io import remove_tree

    (tmp_path / "w" / "a" / "b").mkdir(parents=True)
    (tmp_path / "w" / "a" / "b" / "f.npy").write_bytes(b"x")
    (tmp_path / "w" / "g").write_bytes(b"y")
    (tmp_path / "keep").mkdir()
    (tmp_path / "w" / "link").symlink_to(tmp_path / "keep")
    remove_tree(tmp_path / "w")
    remove_tree(tmp_path / "missing")  # nothing there: no error
    assert not (tmp_path / "w").exists() and (tmp_path / "keep").is_dir()


def _foreign_lines() -> tuple[list[bytes], int]:
    """A dump as other tools write it: ``json.dumps`` with its defaults (\\uXXXX for non-ASCII,
    surrogate pairs for emoji, ", " and ": "), other key orders and spacing, \\/, plus near-duplicate
    copies and lines the reader rejects (lone surrogates). Returns the lines and how many of them
    must be decoded as a whole (the rest are sketched from their escaped bodies)."""
    rows = stdlib_rows(10)
    rows[0]["content"] = "caf\u00e9 = '\U0001F600'  # na\u00efve \u4e2d\u6587 a/b\tx\x7f\n" + rows[0]["content"]
    rows[1]["content"] = "emoji\U0001F600inside_word \U00010348 = 1\n" + rows[1]["content"]
    rows[2]["path"] = "Lib/p\u00e2th/\u00e9.py"  # an escaped head field
    lines = [json.dumps(r).encode() for r in rows]  # content, then license: not last
    for i, r in enumerate(rows[:6]):  # near-duplicate copies in other forms
        copy = dict(r, path=f"copy/{r['path']}", repo_name=f"someone/copy{i}", content=r["content"] + "\n# copied\n")
        order = [["content", "repo_name", "path", "license"], ["repo_name", "content", "path"],
                 ["repo_name", "path", "license", "content"]][i % 3]
        row = {k: copy[k] for k in order}
        if i == 0:
            lines.append(json.dumps(row, separators=(",", ":")).encode())
        elif i == 1:
            lines.append(json.dumps(row, separators=(" , ", " : ")).encode().replace(b"/", b"\\/"))
        elif i == 2:
            lines.append(b"  " + json.dumps(row, ensure_ascii=False).encode() + b" \r")
        else:
            lines.append(json.dumps(row).encode())
    head = {"repo_name": "r", "path": "p.py", "license": None}
    odd = [
        json.dumps(dict(head, content="lone \ud800 high = 1")).encode(),  # the reader: invalid_json
        json.dumps(dict(head, content="lone \udc00 low = 1")).encode(),
        json.dumps({"content": "ok = 1", "path": "p\u00e9.py", "repo_name": "r"}).encode(),  # an escape after the body
        json.dumps({"meta": {"content": "nested"}, "content": "outer = 1", "repo_name": "r", "path": "p"}).encode(),
        b'{"repo_name": "r", "path": "p", "x\\"content": "no content = 1"}',  # a key that is no content key
        json.dumps(dict(head, content="  \n\t ")).encode(),  # only whitespace
    ]
    # decoded whole: the two lone surrogates, the nested key (the first "content" key is not the
    # outer one), the key that is no content key, and the whitespace-only content (no token)
    return lines + odd, 5


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.zst"])
def test_foreign_jsonl_is_sketched_from_its_escaped_bodies_with_the_outputs_of_the_numpy_backend(tmp_path,
                                                                                              monkeypatch, name):
    """Lines written by json.dumps with its defaults and in other layouts take the fast path
    (their content's body sketched undecoded), and dedup gives the same records, rejections,
    stats and output bytes as the numpy backend, which decodes every line. (A zstd frame: pass 2
    rewrites the kept lines around their bodies, at the spans pass 1 noted.)"""
    from preprocessing.dedup.minhash import MinHashSignature
    from preprocessing.dedup.near import _sketch_lines
    from preprocessing.readers import JsonlReader, open_reader

    lines, n_decoded = _foreign_lines()
    d = tmp_path / "in"
    d.mkdir()
    raw = b"\n".join(lines) + b"\n"
    (d / name).write_bytes(zstandard.ZstdCompressor().compress(raw) if name.endswith(".zst") else raw)
    inputs = InputConfig(paths=[str(d)])
    reader = open_reader(inputs)
    calls = []
    real = JsonlReader.decode_line
    monkeypatch.setattr(JsonlReader, "decode_line", lambda self, *a: calls.append(a[1]) or real(self, *a))
    hasher = MinHashSignature(NearDedupConfig(backend="native"))
    res = _sketch_lines(reader, hasher, "a.jsonl", list(enumerate(lines, 1)))
    assert len(calls) == n_decoded, calls
    assert res.lines.count(0) == 0  # LINE_VERBATIM: none of them is byte for byte what pass 2 writes
    monkeypatch.undo()
    outs, stats = {}, {}
    for backend in ("native", "numpy"):
        st = run_near_dedup(NearDedupConfig(backend=backend), inputs, tmp_path / backend)
        outs[backend] = outputs(tmp_path / backend)
        stats[backend] = (st["totals"], st["near_dedup"])
        assert st["near_dedup"]["removed"] == 6, backend
        assert st["totals"]["rejected"] == {"invalid_json": 2, "empty_content": 1,
                                            "missing_field:content": 1}, backend
    assert outs["native"] == outs["numpy"]
    assert stats["native"] == stats["numpy"]


def test_rewritten_rows_equal_those_of_the_decoded_records():
    """Pass 2 serialises a kept foreign line straight from its parsed row (default columns): the
    bytes must be those of ``orjson.dumps(record.to_json_dict())``, or None (then it decodes)."""
    from preprocessing.dedup.near import _rewritten
    from preprocessing.readers import JsonlReader
    from preprocessing.record import CodeFile

    lines, _ = _foreign_lines()
    lines += [
        json.dumps({"content": "a = 1", "license": "", "repo_name": "r", "path": "p", "stars": 3}).encode(),
        json.dumps({"path": "p", "extra": [1, {"k": None}], "repo_name": "r", "content": "b = 2"}).encode(),
        json.dumps({"repo_name": "r", "path": "p", "license": ["MIT", "BSD"], "content": "c = 3"}).encode(),
        json.dumps({"repo_name": 7, "path": "p", "content": "d = 4"}).encode(),  # not a str: decoded
        b"\xef\xbb\xbf" + json.dumps({"repo_name": "r", "path": "p", "content": "e = 5"}).encode(),  # a BOM
    ]
    reader = JsonlReader([])
    fast = 0
    for line in lines:
        rec = reader.decode_line("a.jsonl", 1, line)
        if not isinstance(rec, CodeFile):
            continue
        got = _rewritten(line)
        if got is not None:
            fast += 1
            assert got == orjson.dumps(rec.to_json_dict()) + b"\n", line
    assert fast >= len(lines) - 8  # all but the license list, the int repo_name, the BOM, the rejected
    assert _rewritten(json.dumps({"repo_name": "r", "path": "p", "license": ["MIT"], "content": "x"}).encode()) is None


def test_kept_lines_sketched_from_their_bodies_rewrite_heads_and_transcode_bodies():
    """A kept line whose content body pass 1 sketched is LINE_REWRITE_HEAD when the body is
    already orjson's (json.dumps of ASCII code: no \\u escape but control ones; pass 2 copies
    it) and LINE_REWRITE_BODY otherwise (pass 2 transcodes it in C); either way only the rest of
    the line is parsed, and the bytes are those of :func:`_rewritten` and of
    ``orjson.dumps(record.to_json_dict())``. A line decoded whole stays LINE_REWRITE; a removed
    line is not looked at."""
    from preprocessing.dedup.minhash import MinHashSignature
    from preprocessing.dedup.near import (
        _DROPPED,
        LINE_REJECTED,
        LINE_REWRITE,
        LINE_REWRITE_BODY,
        LINE_REWRITE_HEAD,
        _bodies,
        _rewritten,
        _rewritten_head,
        _sketch_lines,
    )
    from preprocessing.readers import JsonlReader
    from preprocessing.readers.jsonl import FrameLines
    from preprocessing.record import CodeFile

    lines, _ = _foreign_lines()
    lines += [
        json.dumps({"repo_name": "r", "path": "p", "size": "9", "content": 'tab\tq"\\ \x01 end', "license": "mit"}).encode(),
        json.dumps({"content": "a = 1 / 2", "license": "", "repo_name": "r", "path": "p", "stars": 3}).encode(),
        json.dumps({"repo_name": "r", "path": "p", "license": ["MIT"], "content": "c = 3"}).encode(),  # decoded
        b'{"repo_name": "r", "path": "p", "content": "\\u00E9\\u0041\\u0022\\u005c\\u000A\\u001F\\u007f\\/ x"}',
    ]
    reader = JsonlReader([])
    frame = FrameLines(b"\n".join(lines) + b"\n", 1)
    hasher = MinHashSignature(NearDedupConfig(backend="native"))
    sketched = _sketch_lines(reader, hasher, "a.jsonl", frame)
    status = sketched.lines
    assert LINE_REWRITE_HEAD in status and LINE_REWRITE_BODY in status and LINE_REWRITE in status
    records = [i for i, st in enumerate(status) if st != LINE_REJECTED]
    heads = [i for i in records if status[i] in (LINE_REWRITE_HEAD, LINE_REWRITE_BODY)]
    flags = bytearray(len(records))
    flags[records.index(heads[0])] = _DROPPED  # a removed line: no body looked for
    spans = frame.spans()
    bodies = _bodies(frame.data, spans, status, bytes(flags))
    assert sorted(bodies) == [records.index(i) for i in heads[1:]]
    # Pass 1 notes the spans (from each line's start), so pass 2 need not find them again: the
    # same ones, whether pass 1 had the lines in a frame or as a list (another layout).
    assert len(sketched.bodies) == 8 * len(heads)
    as_list = _sketch_lines(reader, hasher, "a.jsonl", [(n + 1, line) for n, line in enumerate(lines)])
    assert as_list.bodies == sketched.bodies and as_list.lines == status
    assert _bodies(frame.data, spans, status, bytes(flags), sketched.bodies) == bodies
    assert _bodies(frame.data, spans, status, bytes(flags), sketched.bodies[:-8]) == bodies  # (not all: found again)
    fast = set()
    for i in heads[1:]:
        _lineno, start, end = spans[i]
        line = frame.data[start:end]
        got = _rewritten_head(frame.data, start, end, *bodies[records.index(i)], status[i] == LINE_REWRITE_HEAD)
        rec = reader.decode_line("a.jsonl", 1, line)
        assert isinstance(rec, CodeFile)
        if got is None:  # the license list: decoded, as _rewritten says
            assert _rewritten(line) is None
            continue
        fast.add(status[i])
        assert b"".join(got) == _rewritten(line) == orjson.dumps(rec.to_json_dict()) + b"\n", line
    assert fast == {LINE_REWRITE_HEAD, LINE_REWRITE_BODY} and len(heads) >= 12


def test_orjson_body_transcodes_every_escape_as_orjson_writes_it():
    """The C transcoder of pass 2 gives orjson's bytes for every character json.dumps may escape
    (all of Unicode, with and without ensure_ascii, upper-case hex, escaped slashes), and None for
    a lone surrogate or a malformed escape."""
    import re

    from preprocessing.dedup import native

    body = native.kernel("orjson_body")
    text = "".join(chr(c) for c in range(1, 0x30000, 7) if not 0xD800 <= c <= 0xDFFF) + "\x7f\"\\/\b\f\n\r\t\x01"
    for enc in (json.dumps(text), json.dumps(text, ensure_ascii=False), json.dumps(text).replace("/", "\\/"),
                re.sub(r"\\u[0-9a-f]{4}", lambda m: "\\u" + m.group(0)[2:].upper(), json.dumps(text))):
        raw = enc.encode()
        assert body(raw, 1, len(raw) - 1) == orjson.dumps(text)[1:-1]
    for bad in (b"\\ud800", b"\\udc00x", b"\\x", b"ab\\", b"\\u12"):
        assert body(bad, 0, len(bad)) is None


def test_pass2_decodes_no_removed_line_and_names_members_from_pass_1(tmp_path, monkeypatch):
    """A json.dumps dump with near-duplicates: pass 1 reads heads and escaped bodies, pass 2 parses
    only the kept lines (none through decode_line); the clusters file still names every member."""
    from preprocessing.readers import JsonlReader

    rows = dump_rows()[:-3]  # 40 files and 10 near-duplicate copies
    odd = ['say "hi"\\', "ünï/cödé", "emoji/\U0001f600", 'a\\"b', "tab\there", "/\u2028/"]
    for i, name in enumerate(odd):  # names a row's bytes must escape as orjson does
        rows[40 + i]["repo_name"], rows[40 + i]["path"] = name, odd[-1 - i] + ".py"
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.jsonl").write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    calls: list[int] = []
    real = JsonlReader.decode_line
    monkeypatch.setattr(JsonlReader, "decode_line", lambda self, *a: calls.append(a[1]) or real(self, *a))
    st = run_near_dedup(NearDedupConfig(backend="native"), InputConfig(paths=[str(d)], batch_records=16),
                        tmp_path / "out")
    assert calls == []
    assert st["near_dedup"]["removed"] == 10 and st["totals"]["kept"] == 40
    clusters = read_rows(tmp_path / "out" / "clusters.jsonl.zst")
    with open(tmp_path / "out" / "clusters.jsonl.zst", "rb") as f:  # (rows assembled from bytes: orjson's)
        raw = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()
    assert raw == b"".join(orjson.dumps(c) + b"\n" for c in clusters)
    members = [m for c in clusters for m in c["members"]]
    assert len(members) >= 20 and {m["repo_name"] for m in members} >= set(odd)
    for m in members:
        assert (m["repo_name"], m["path"]) == (rows[m["ordinal"]]["repo_name"], rows[m["ordinal"]]["path"])
    kept = {m["ordinal"] for c in clusters for m in c["members"] if m["ordinal"] == c["kept"]}
    removed = {m["ordinal"] for m in members} - kept
    expected = [orjson.loads(orjson.dumps({"repo_name": r["repo_name"], "path": r["path"], "license": r["license"] or None,
                                           **{k: v for k, v in r.items() if k not in ("repo_name", "path", "license", "content")},
                                           "content": r["content"]}))
                for i, r in enumerate(rows) if i not in removed]
    assert read_rows(tmp_path / "out" / "part-00000.jsonl.zst") == expected
