"""Tests of preprocessing/stages/report.py: numbers equal the stages' stats, plots, escaping, partial runs, compare, Chromium."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sysconfig
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path

import pytest
import zstandard
from click.testing import CliRunner

from preprocessing.readers import InputConfig
from preprocessing.stages.report import (
    PLOT_IDS,
    STATS_FORMAT_VERSION,
    ReportConfig,
    build_report,
    render_html,
    write_report,
)
from preprocessing.cli.report import report_command
from preprocessing.stages.stream import StreamConfig, run_stream

HOSTILE = "</script><img src=x onerror=alert(1)>"
HOSTILE_REPO = "<script>alert('repo')</script>"


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every stage on a small real slice of the embedded default (site-packages: one repo per distribution)."""
    from preprocessing.dedup.minhash import NearDedupConfig
    from preprocessing.stages.dedup import run_dedup

    run = tmp_path_factory.mktemp("full") / "run"
    run_stream(StreamConfig(input=InputConfig(limit=200, include_stdlib=False)), run)
    run_dedup(NearDedupConfig(), run)
    _tokenize_and_pack(run)
    write_report(run)
    return run


def _tokenize_and_pack(run: Path) -> None:
    from preprocessing.stages.pack import PackConfig, run_pack
    from preprocessing.stages.tokenizer import TokenizerConfig, run_tokenizer

    # half the repositories held out / in valid, so both sides are non-empty whatever is installed
    cfg = TokenizerConfig(vocab_size=512, heldout_fraction=0.5, max_bytes=1 << 20, max_heldout_bytes=300_000)
    run_tokenizer(cfg, run)
    run_pack(PackConfig(seq_length=128, valid_fraction=0.5), run)


def _stdlib_rows(n: int) -> list[dict]:
    root = Path(sysconfig.get_paths()["stdlib"])
    rows = []
    for p in sorted(root.glob("*.py"))[:n]:
        text = p.read_text(encoding="utf-8")
        rows.append({"repo_name": f"python/{p.stem}", "path": f"Lib/{p.name}", "content": text, "license": "psf-2.0"})
    return rows


@pytest.fixture(scope="module")
def crafted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JSONL dump with hostile text in a dropped file, a kept file of a hostile repo, near-copies and a bad line."""
    from preprocessing.dedup.minhash import NearDedupConfig
    from preprocessing.stages.dedup import run_dedup

    base = tmp_path_factory.mktemp("crafted")
    rows = _stdlib_rows(30)
    original = next(r for r in rows if len(r["content"]) > 5000)
    for i in range(5):  # near-copies: one changed line each, in other repositories
        rows.append({**original, "repo_name": f"fork{i}/cpython", "content": original["content"] + f"\n# fork {i}\n"})
    # few '=' signs: dropped by quality:few_assignments, so it becomes an example with its first lines
    rows.append({"repo_name": f"evil/{HOSTILE}", "path": f"{HOSTILE}.py", "license": "mit",
                 "content": f"{HOSTILE}\n<b>bold</b> & \"quotes\" \x01\nprint('hi')\n"})
    kept = original["content"].replace("\n", "\n\n", 3) + "\n# " + HOSTILE + "\n" * 50
    rows.append({"repo_name": HOSTILE_REPO, "path": "ok.py", "license": "mit", "content": kept})
    dump = base / "dump.jsonl"
    dump.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + b'{"content": "broken json\n')
    run = base / "run"
    cfg = StreamConfig(input=InputConfig(paths=[str(dump)]))
    cfg.filters.quality.config_or_test_drop_prob = 0.0
    cfg.filters.quality.no_keywords_drop_prob = 0.0
    run_stream(cfg, run)
    run_dedup(NearDedupConfig(threshold=0.7), run)
    _tokenize_and_pack(run)
    write_report(run)
    return run


# ---------------------------------------------------------------------------------------------
# numbers


def test_report_numbers_equal_stage_stats(full_run: Path) -> None:
    report = _read(full_run / "report" / "report.json")
    stream = _read(full_run / "clean" / "stats.json")
    dedup = _read(full_run / "dedup" / "stats.json")
    tok = _read(full_run / "tokenizer" / "stats.json")
    pack = _read(full_run / "shards" / "stats.json")
    assert report["missing"] == []  # every stage ran; chars/token per file comes from the tokenizer's held-out files
    assert report["problems"] == []
    cpt = report["histograms"]["chars_per_token"]
    ours = tok["heldout"]["ours"]["chars_per_token_histogram"]
    assert cpt["series"]["ours, held-out files"] == ours["counts"]
    assert sum(ours["counts"]) == tok["heldout"]["ours"]["files"] == tok["totals"]["heldout_files"]
    assert [s["status"] for s in report["stages"]] == ["ok"] * 4

    funnel = {r["stage"]: r for r in report["funnel"]}
    assert list(funnel) == ["read", "filter", "exact_dedup", "near_dedup", "pack"]
    sources = {**stream["stages"], **dedup["stages"], **pack["stages"]}
    for name, row in funnel.items():
        s = sources[name]
        assert (row["files_in"], row["files_out"], row["bytes_in"], row["bytes_out"]) == \
            (s["records_in"], s["kept"], s["bytes_in"], s["bytes_out"])
        assert row["dropped"] == sum(s["dropped"].values()) and row["rejected"] == sum(s["rejected"].values())
        # the funnel adds up: within each stage, and from each stage to the next
        assert row["files_in"] == row["files_out"] + row["dropped"] + row["rejected"]
        assert row["removed_pct"] == pytest.approx(100 * (s["records_in"] - s["kept"]) / s["records_in"], abs=1e-3)
    names = list(funnel)
    for a, b in pairwise(names):
        assert funnel[a]["files_out"] == funnel[b]["files_in"]
    assert funnel["read"]["files_in"] == stream["totals"]["records_read"]
    assert funnel["pack"]["tokens_in"] == pack["totals"]["tokens"]
    assert funnel["pack"]["tokens_out"] == sum(pack["splits"][s]["packed_tokens"] for s in ("train", "valid"))
    assert report["checks"] and all(c["ok"] for c in report["checks"]), report["checks"]

    reasons = {(r["stage"], r["kind"], r["reason"]): r["count"] for r in report["reasons"]}
    expected = {(name, kind, reason): n for name, s in sources.items() for kind in ("dropped", "rejected")
                for reason, n in s[kind].items()}
    assert reasons == expected
    for r in report["reasons"]:
        ex_key = r["reason"] if r["kind"] == "dropped" else f"rejected:{r['reason']}"
        assert len(r["examples"]) == len(stream["examples"].get(ex_key, [])) if r["file"] == "clean/stats.json" else True

    for metric, h in report["histograms"].items():
        if metric == "chars_per_token":
            continue  # from the tokenizer stage, checked above
        assert h["before_filters"] == stream["histograms_before_filters"][metric]["counts"]
        assert h["kept"] == stream["histograms_kept"][metric]["counts"]
        assert sum(h["kept"]) == stream["totals"]["kept"]
    assert set(report["histograms"]) == {"size", "max_line_length", "mean_line_length", "alnum_fraction", "chars_per_token"}
    assert report["licenses"] == stream["licenses_kept"]
    assert report["top_repos"] == stream["top_repos_kept"]

    near = report["duplicates"]["near"]
    assert near["removed"] == dedup["near_dedup"]["removed"] == dedup["totals"]["dropped"].get("near_duplicate", 0)
    assert near["cluster_size_histogram"] == dedup["near_dedup"]["cluster_size_histogram"]
    assert report["duplicates"]["exact"]["removed"] == sum(stream["stages"]["exact_dedup"]["dropped"].values())

    t = report["tokenizer"]
    assert t["chars_per_token"] == tok["totals"]["chars_per_token"] and t["chars_per_token"] > 1
    assert t["gpt2_chars_per_token"] == tok["totals"]["gpt2_chars_per_token"]
    assert t["vocab_used"] == tok["heldout"]["ours"]["vocab_used"] and t["vocab_size"] == 512
    assert t["pretokenizer"] == tok["config"]["pretokenizer"] == tok["totals"]["pretokenizer"]
    assert t["ratio_vs_gpt2"] == tok["totals"]["ratio_vs_gpt2"]

    sh = report["shards"]
    for split in ("train", "valid"):
        row, s = sh["splits"][split], pack["splits"][split]
        assert (row["tokens"], row["eos_tokens"], row["packed_tokens"], row["packing_efficiency"]) == \
            (s["tokens"], s["eos_tokens"], s["packed_tokens"], s["packing_efficiency"])
        assert row["eos_tokens"] == row["files"]  # one EOS after every file
        assert row["index"]["num_tokens"] == s["packed_tokens"]
    assert sh["eos_tokens"] == sum(pack["splits"][s]["eos_tokens"] for s in ("train", "valid"))

    wall = {r["stage"]: r["wall_time_s"] for r in report["runtime"]}
    assert wall == {"stream": stream["wall_time_s"], "dedup": dedup["wall_time_s"], "tokenizer": tok["wall_time_s"],
                    "pack": pack["wall_time_s"]}
    run = report["run"]
    assert run["versions"]["stream"]["python"] and run["configs"]["stream"] == stream["config"]
    assert set(run["versions"]) == {"stream", "dedup", "tokenizer", "pack"} and run["not_in_manifest"] == []
    assert run["seeds"]["tokenizer.seed"] == 0 and "stream.filters.quality.seed" in run["seeds"]
    assert report["headline"]["files_read"] == 200 and report["headline"]["tokens"] == pack["totals"]["tokens"]


class _Tags(HTMLParser):
    """Collects start tags with their attributes, and the text inside <pre>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.pre: list[str] = []
        self._in_pre = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        self._in_pre -= tag == "pre"

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_pre:
            self.pre.append(data)


def _parse(page: str) -> _Tags:
    p = _Tags()
    p.feed(page)
    return p


@pytest.mark.parametrize("which", ["full_run", "crafted_run"])
def test_every_plot_present(which: str, request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue(which)
    page = (run / "report" / "report.html").read_text()
    tags = _parse(page)
    imgs = {a["data-plot"]: a["src"] for t, a in tags.tags if t == "img"}
    expected = set(PLOT_IDS)
    if which == "full_run" and _read(run / "dedup" / "stats.json")["near_dedup"]["clusters"] == 0:
        expected.discard("cluster_sizes")  # a slice of site-packages may hold no near-duplicate
        assert "no near-duplicate cluster was found" in page
    assert set(imgs) == expected
    for pid, src in imgs.items():
        assert src.startswith("data:image/svg+xml;base64,"), pid
        svg = base64.b64decode(src.split(",", 1)[1])
        assert b"<svg" in svg and b"<path" in svg, pid
    # a plot that cannot be drawn says why instead
    missing = [a["data-plot-missing"] for t, a in tags.tags if a.get("data-plot-missing")]
    assert set(missing) == set(PLOT_IDS) - expected
    # self-contained: no script, no external resource
    assert not any(t == "script" for t, _ in tags.tags)
    assert not any(t == "link" and not (a.get("href") or "").startswith("data:") for t, a in tags.tags)
    urls = [v for _, a in tags.tags for k, v in a.items() if k in ("src", "href") and not (v or "").startswith(("data:", "#"))]
    assert urls == []


def test_report_is_deterministic(full_run: Path, tmp_path: Path) -> None:
    paths = write_report(full_run, output_dir=tmp_path)
    assert paths["html"].read_bytes() == (full_run / "report" / "report.html").read_bytes()
    assert paths["json"].read_bytes() == (full_run / "report" / "report.json").read_bytes()


def test_tokenizer_section_compares_with_plain_bpe(full_run: Path, tmp_path: Path) -> None:
    from preprocessing.stages.tokenizer import TokenizerConfig, run_tokenizer

    run = tmp_path / "run"
    shutil.copytree(full_run, run)
    cfg = dict(vocab_size=512, heldout_fraction=0.5, max_bytes=1 << 20, max_heldout_bytes=300_000)
    plain = run_tokenizer(TokenizerConfig(**cfg, pretokenizer="gpt2"), run, force=True)
    assert "plain BPE (same vocabulary)" not in write_report(run)["html"].read_text()  # gpt2 is plain BPE: no column
    tok = run_tokenizer(TokenizerConfig(**cfg, pretokenizer="superword"), run, force=True)
    paths = write_report(run)
    t = _read(paths["json"])["tokenizer"]
    assert t["pretokenizer"] == "superword"
    # the plain BPE trained beside it is the gpt2 option's tokenizer: the same held-out figures
    assert t["plain_bpe_chars_per_token"] == tok["totals"]["plain_bpe_chars_per_token"] == plain["totals"]["chars_per_token"]
    assert t["tokens_vs_plain_bpe"] == tok["totals"]["tokens_vs_plain_bpe"]
    assert t["plain_bpe_vocab_used"] == plain["heldout"]["ours"]["vocab_used"]
    page = paths["html"].read_text()
    assert "plain BPE (same vocabulary)" in page and "held-out tokens vs plain BPE" in page
    assert f"{100 * t['tokens_vs_plain_bpe']:.2f} %" in page


# ---------------------------------------------------------------------------------------------
# clusters and escaping


def test_largest_clusters_list_member_paths(crafted_run: Path) -> None:
    report = _read(crafted_run / "report" / "report.json")
    near = report["duplicates"]["near"]
    rows = [json.loads(line) for line in zstandard.ZstdDecompressor().stream_reader(
        (crafted_run / "dedup" / "clusters.jsonl.zst").read_bytes(), read_across_frames=True).read().decode().splitlines() if line.strip()]
    assert near["cluster_rows"] == len(rows) >= 1
    sizes = sorted((r["size"] for r in rows), reverse=True)
    assert [c["size"] for c in near["largest"]] == sizes[:ReportConfig().largest_clusters]
    top = near["largest"][0]
    assert top["size"] == near["largest_cluster"] >= 6  # the original and its five near-copies
    assert {f"fork{i}/cpython" for i in range(5)} <= {m["repo_name"] for m in top["members"]}
    assert sum(m["kept"] for m in top["members"]) == 1
    page = (crafted_run / "report" / "report.html").read_text()
    assert "fork4/cpython" in page and 'data-plot="cluster_sizes"' in page


def test_hostile_content_is_shown_as_text(crafted_run: Path) -> None:
    report = _read(crafted_run / "report" / "report.json")
    few = next(r for r in report["reasons"] if r["reason"] == "quality:few_assignments")
    assert any(e["head"].startswith(HOSTILE) for e in few["examples"])  # it is one of the examples
    assert HOSTILE_REPO in report["top_repos"]
    assert any(r["kind"] == "rejected" for r in report["reasons"])
    page = (crafted_run / "report" / "report.html").read_text()
    assert HOSTILE not in page and HOSTILE_REPO not in page and "<b>bold</b>" not in page
    tags = _parse(page)
    assert not any(t == "script" for t, _ in tags.tags)
    assert all(a["src"].startswith("data:image/svg+xml;base64,") for t, a in tags.tags if t == "img")
    assert not any(k.startswith("on") for _, a in tags.tags for k in a)
    # ... and the hostile text is there, as text: in the example's first lines, the paths and the repo table
    assert any(HOSTILE in chunk for chunk in tags.pre)
    text = "".join(tags.text)
    assert f"evil/{HOSTILE}" in text and HOSTILE_REPO in text
    assert "\\x01" in text and "\x01" not in page  # control characters are shown, not passed through


# ---------------------------------------------------------------------------------------------
# partial runs


def _copy_stream_only(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    shutil.copytree(src / "clean", dst / "clean")
    shutil.copy(src / "manifest.json", dst / "manifest.json")
    return dst


def test_missing_stages_are_named(crafted_run: Path, tmp_path: Path) -> None:
    run = _copy_stream_only(crafted_run, tmp_path / "run")
    report = build_report(run)
    status = {s["stage"]: s["status"] for s in report["stages"]}
    assert status == {"stream": "ok", "dedup": "missing", "tokenizer": "missing", "pack": "missing"}
    fixes = " ".join(m["fix"] for m in report["missing"])
    for command in ("cp-preprocess dedup", "cp-preprocess tokenizer", "cp-preprocess pack"):
        assert command in fixes
    assert report["duplicates"]["near"] is None and report["tokenizer"] is None and report["shards"] is None
    assert all(c["ok"] for c in report["checks"])
    page = render_html(report, cfg=ReportConfig(plots=False))
    assert "dedup/stats.json not found" in page and "cp-preprocess pack" in page


def test_damaged_clusters_file(crafted_run: Path, tmp_path: Path) -> None:
    run = _copy_stream_only(crafted_run, tmp_path / "run")
    shutil.copytree(crafted_run / "dedup", run / "dedup")
    (run / "dedup" / "clusters.jsonl.zst").write_bytes(b"not zstd at all")
    report = build_report(run)
    assert any("clusters.jsonl.zst could not be read" in p for p in report["problems"])
    assert report["duplicates"]["near"]["removed"] == _read(run / "dedup" / "stats.json")["near_dedup"]["removed"]
    (run / "dedup" / "clusters.jsonl.zst").unlink()
    report = build_report(run)
    assert any(m["what"] == "largest near-duplicate clusters" for m in report["missing"])


def test_empty_run_dir_and_no_run_dir(tmp_path: Path) -> None:
    report = build_report(tmp_path)
    assert report["funnel"] == [] and len(report["missing"]) == 4 and report["headline"]["files_read"] is None
    page = render_html(report)
    assert page.count("data-plot-missing") == len(PLOT_IDS)
    with pytest.raises(ValueError, match="does not exist"):
        build_report(tmp_path / "nope")


def test_empty_stage(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    run_stream(StreamConfig(input=InputConfig(paths=[str(empty)])), tmp_path / "run")
    paths = write_report(tmp_path / "run")
    report = _read(paths["json"])
    assert report["stages"][0]["status"] == "empty" and "0 files" in report["stages"][0]["detail"]
    assert all(r["files_in"] == 0 and r["removed_pct"] is None for r in report["funnel"])
    assert report["problems"] == [] and "read 0 files" in paths["html"].read_text()


def test_old_format_and_damaged_stats(crafted_run: Path, tmp_path: Path) -> None:
    run = _copy_stream_only(crafted_run, tmp_path / "run")
    stats = _read(run / "clean" / "stats.json")
    old = {"format_version": 0, "stage": "stream", "totals": stats["totals"], "wall_time_s": 1.0}
    (run / "clean" / "stats.json").write_text(json.dumps(old))
    (run / "dedup").mkdir()
    (run / "dedup" / "stats.json").write_text("{not json")
    (run / "tokenizer").mkdir()
    (run / "tokenizer" / "stats.json").write_text("[1, 2]")
    (run / "shards").mkdir()
    weird = {"format_version": STATS_FORMAT_VERSION + 1, "stages": {"pack": "oops"}, "splits": {"train": [1]},
             "totals": {"tokens": "many"}}
    (run / "shards" / "stats.json").write_text(json.dumps(weird))
    report = build_report(run)
    status = {s["stage"]: s for s in report["stages"]}
    assert status["stream"]["status"] == "other_format" and "older format" in status["stream"]["detail"]
    assert status["pack"]["status"] == "other_format" and "newer format" in status["pack"]["detail"]
    assert status["dedup"]["status"] == status["tokenizer"]["status"] == "unreadable"
    # the old stream stats have no per-substage counts: one funnel row from its totals
    assert report["funnel"][0]["stage"] == "stream" and report["funnel"][0]["files_in"] == stats["totals"]["records_read"]
    assert report["problems"], "the damaged pack stats are reported as problems"
    assert report["histograms"] == {} and any("file size" in m["what"] for m in report["missing"])
    render_html(report, cfg=ReportConfig(plots=False))  # never crashes


# ---------------------------------------------------------------------------------------------
# compare and CLI


def test_compare_two_runs(full_run: Path, crafted_run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(report_command, [str(full_run), "--compare", str(crafted_run), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output and "missing:" not in result.output
    doc = _read(tmp_path / "report.json")
    assert doc["run_dir"] == str(full_run) and doc["compare"]["run_dir"] == str(crafted_run)
    page = (tmp_path / "report.html").read_text()
    tags = _parse(page)
    ids = {a.get("id") for _, a in tags.tags}
    assert {"compare", "a-summary", "b-summary", "a-funnel", "b-funnel"} <= ids
    plots = [a["data-plot"] for t, a in tags.tags if t == "img"]
    assert "compare_funnel" in plots and "compare_hist_size" in plots
    assert plots.count("funnel") == 2
    a_read = _read(full_run / "clean" / "stats.json")["totals"]["records_read"]
    b_read = _read(crafted_run / "clean" / "stats.json")["totals"]["records_read"]
    assert f"<td>files read</td><td>{a_read:,}</td><td>{b_read:,}</td><td>{b_read - a_read:,}</td>" in page


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(report_command, [str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = CliRunner().invoke(report_command, [str(tmp_path), "--no-plots"])
    assert result.exit_code == 0 and "missing: stream" in result.output
    assert "data-plot-missing" in (tmp_path / "report" / "report.html").read_text()
    preset = tmp_path / "p.yaml"
    preset.write_text("report:\n  largest_clusters: 3\n")
    result = CliRunner().invoke(report_command, [str(tmp_path), "--config", str(preset), "--dry-run"])
    assert result.exit_code == 0 and json.loads(result.output)["largest_clusters"] == 3
    preset.write_text("report:\n  largest_clustrs: 3\n")
    result = CliRunner().invoke(report_command, [str(tmp_path), "--config", str(preset)])
    assert result.exit_code == 2 and "largest_clustrs" in result.output


# ---------------------------------------------------------------------------------------------
# the page in a real browser


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium (installed by the test set-up); the test is skipped without it."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not on PATH (Debian: apt-get install -y chromium)")
    return exe


def _chromium(exe: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=120, check=False)


def _console_errors(stderr: str) -> list[str]:
    # the page has no script, so any console message (an error, a blocked resource) is unexpected
    return [line for line in stderr.splitlines()
            if ":CONSOLE" in line or "Uncaught" in line or "Refused to" in line or "Content Security Policy" in line]


def test_page_renders_in_chromium(chromium: str, full_run: Path, crafted_run: Path, tmp_path: Path) -> None:
    import numpy as np
    from matplotlib.image import imread

    page = full_run / "report" / "report.html"
    png = tmp_path / "shot.png"
    proc = _chromium(chromium, [f"--screenshot={png}", "--window-size=1280,2000", page.as_uri()], tmp_path)
    assert png.exists(), proc.stderr[-2000:]
    assert _console_errors(proc.stderr) == []
    assert _console_errors('[1:1:1128/1:INFO:CONSOLE:1] "boom", source: file:///x.html (1)')  # the filter works
    img = imread(png)
    assert img.shape[:2] == (2000, 1280)
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50  # text, tables and plots, not a blank page
    assert (img[..., :3].mean(axis=2) < 0.5).mean() > 0.01  # some dark pixels: text is drawn

    # the hostile page: the browser's DOM holds the text, and no element made from it
    hostile = crafted_run / "report" / "report.html"
    proc = _chromium(chromium, ["--dump-dom", hostile.as_uri()], tmp_path)
    assert _console_errors(proc.stderr) == []
    dom = _parse(proc.stdout)
    assert any(t == "h2" for t, _ in dom.tags), proc.stdout[:500]
    assert not any(t == "script" for t, _ in dom.tags)
    assert not any(t == "img" and a.get("src") == "x" for t, a in dom.tags)
    assert HOSTILE in "".join(dom.text)


def test_stats_and_report_show_each_input_file_lines_read_and_how_it_ended(tmp_path: Path) -> None:
    from preprocessing.dedup.minhash import NearDedupConfig
    from preprocessing.stages.dedup import run_dedup
    from tests.conftest import stdlib_rows, write_jsonl

    dump = tmp_path / "dump"
    dump.mkdir()
    write_jsonl(dump / "a.jsonl.gz", stdlib_rows(12))
    full = write_jsonl(tmp_path / "b.jsonl.zst", stdlib_rows(30, 12))
    (dump / "b.jsonl.zst").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    run = tmp_path / "run"
    stats = run_stream(StreamConfig(input=InputConfig(paths=[str(dump)])), run)
    a, b = stats["input_files"]
    assert a == {"file": str(dump / "a.jsonl.gz"), "lines": 12, "clean": True}
    assert b["file"] == str(dump / "b.jsonl.zst") and b["clean"] is False and 0 < b["lines"] < 30
    assert _read(run / "clean" / "stats.json")["input_files"] == [a, b]
    dedup = run_dedup(NearDedupConfig(), run)
    assert [f["clean"] for f in dedup["input_files"]] == [True] and dedup["input_files"][0]["lines"] == stats["totals"]["kept"]
    report = build_report(run)
    assert report["input_files"]["files"] == 3 and report["input_files"]["cut"] == 1
    assert report["input_files"]["rows"][0] == {"stage": "stream", **b}  # the cut file first
    html = render_html(report)
    assert "Input files: 3, 1 cut" in html and "cut or corrupt (see the warnings)" in html and str(dump / "b.jsonl.zst") in html
